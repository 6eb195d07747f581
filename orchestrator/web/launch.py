"""Checking and launching runs for the API: YAML run config with line numbers for each error
path, op selection previews, config scaffolds, and launches deduplicated by idempotency key."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.coordinator import launch_run
from orchestrator.definitions.job import JobDefinition
from orchestrator.definitions.reconstruct import ReconstructableJob
from orchestrator.runs.api import prepare_run
from orchestrator.web.config_schema import run_config_schema, scaffold
from orchestrator.web.errors import ApiError
from orchestrator.web.state import CatalogJob, UnknownJob, WebState

IDEMPOTENCY_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class LaunchSpec:
    """What a launch (or a check of one) asks for."""

    job: str
    location: str | None = None
    run_config: Any = None
    run_config_yaml: str | None = None
    tags: Mapping[str, str] | None = None
    op_selection: Sequence[str] | None = None
    partition_key: str | None = None


class CheckRequest(BaseModel):
    """What a launch asks for but the job (in the path of ``/api/jobs/{job}/check``): the
    Launchpad sends one as you type; ``POST /api/runs`` adds ``job``."""

    model_config = ConfigDict(extra="forbid")

    location: str | None = None
    run_config: dict[str, Any] | None = None
    run_config_yaml: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    op_selection: list[str] | None = None
    partition_key: str | None = None

    def spec(self, job: str) -> LaunchSpec:
        return LaunchSpec(
            job=job,
            location=self.location,
            run_config=self.run_config,
            run_config_yaml=self.run_config_yaml,
            tags=self.tags,
            op_selection=self.op_selection,
            partition_key=self.partition_key,
        )


def parse_run_config(spec: LaunchSpec) -> dict[str, Any] | None:
    """The run config of ``spec``: given as JSON, or as YAML text (errors name the line);
    None when none is given (an empty editor): the job's default or partition config
    applies."""
    if spec.run_config_yaml is not None and spec.run_config is not None:
        raise ApiError(422, "give run_config or run_config_yaml, not both")
    if spec.run_config_yaml is None:
        value = spec.run_config
    else:
        try:
            value = yaml.safe_load(spec.run_config_yaml)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc)
            raise ApiError(
                422,
                f"the run config is not valid YAML: {problem}"
                + (f" (line {line})" if line else ""),
                [{"path": "", "message": f"YAML: {problem}", "line": line}],
            ) from None
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ApiError(
            422,
            f"the run config must be a mapping (ops:, resources: ...), got {type(value).__name__}",
            [{"path": "", "message": "expected a mapping", "line": 1}],
        )
    return dict(value)


def yaml_line(text: str | None, path: str) -> int | None:
    """The 1-based line of config ``path`` (``ops.a.config.x``) in YAML ``text``: the line of
    the deepest key of the path that is there (where a missing key belongs)."""
    if not text:
        return None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in (p for p in path.split(".") if p):
        if not isinstance(node, yaml.MappingNode):
            break
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                line, node = key.start_mark.line + 1, value
                break
        else:
            break
    return line


def find_job(state: WebState, name: str, location: str | None = None) -> CatalogJob:
    try:
        return state.catalog.find(name, location)
    except UnknownJob as exc:
        raise ApiError(404, str(exc)) from None


def selected(found: CatalogJob, op_selection: Sequence[str] | None) -> JobDefinition:
    """The job with ``op_selection`` applied (SelectionError: a 422 naming the op)."""
    if not op_selection:
        return found.job
    return found.job.get_subset(list(op_selection))


def validate(state: WebState, spec: LaunchSpec, job: JobDefinition) -> None:
    """Validate a launch of ``job`` (the job of ``spec`` with its op selection applied) as
    the coordinator would plan it.

    Raises:
        ApiError: bad YAML (422); engine errors (ConfigError with each path,
            PartitionError, MissingInputError, ...) propagate as 422s.
    """
    prepare_run(
        job,
        instance=state.instance,
        run_config=parse_run_config(spec),
        partition_key=spec.partition_key,
        tags=spec.tags,
        store=False,
    )


def scaffold_config(state: WebState, spec: LaunchSpec) -> dict[str, Any]:
    """The given config with every required field it lacks filled in (defaults, else typed
    placeholders); the job's default config when nothing is given."""
    from orchestrator.plan.run_config import effective_run_config

    found = find_job(state, spec.job, spec.location)
    given = parse_run_config(spec)
    job = selected(found, spec.op_selection)
    if given or job.config_mapping is not None:  # a mapping's own config is the outer one
        base = given or {}
    else:
        base = dict(effective_run_config(job, None, spec.partition_key or None) or {})
    return dict(scaffold(base, run_config_schema(job)))


def _fingerprint(spec: LaunchSpec) -> str:
    """What a launch asked for, so a reused idempotency key is matched to the same request."""
    fields = {
        "job": spec.job,
        "location": spec.location,
        "run_config": spec.run_config,
        "run_config_yaml": spec.run_config_yaml,
        "tags": dict(spec.tags or {}),
        "op_selection": list(spec.op_selection or []),
        "partition_key": spec.partition_key,
    }
    text = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


def _claim_key(state: WebState, key: str, run_id: str, fingerprint: str) -> str | None:
    """Take idempotency key ``key`` for ``run_id``; None when taken now, else the run it
    launched before (ApiError 409 when that was a different request)."""
    client, name = state.client, state.instance.keys.idempotency(key)
    value = json.dumps({"run_id": run_id, "request": fingerprint})
    if client.set(name, value, nx=True, ex=IDEMPOTENCY_TTL_SECONDS):
        return None
    stored = client.get(name)
    if not stored:  # expired meanwhile
        client.set(name, value, ex=IDEMPOTENCY_TTL_SECONDS)
        return None
    earlier = json.loads(str(stored))
    if earlier.get("request") != fingerprint:
        raise ApiError(
            409,
            f"idempotency key {key!r} was used for a different request (run "
            f"{earlier.get('run_id')}); use a new key for a new launch",
        )
    return str(earlier["run_id"])


def launch(state: WebState, spec: LaunchSpec, idempotency_key: str | None) -> tuple[str, bool]:
    """Queue a run; returns (run id, created). A reused idempotency key returns the run it
    launched first (created False) and launches nothing; with a different request it is a
    409."""
    run_id = str(uuid.uuid4())
    if idempotency_key is not None:
        earlier = _claim_key(state, idempotency_key, run_id, _fingerprint(spec))
        if earlier is not None:
            return earlier, False
    try:
        found = find_job(state, spec.job, spec.location)
        run_config = parse_run_config(spec)
        launch_run(  # validates and plans (ConfigError, SelectionError, ...: 422s)
            ReconstructableJob(found.pointer, found.job),
            state.instance,
            run_config=run_config,
            op_selection=list(spec.op_selection) if spec.op_selection else None,
            partition_key=spec.partition_key,
            tags=spec.tags,
            run_id=run_id,
        )
    except BaseException:
        if idempotency_key is not None:  # nothing launched: free the key
            name = state.instance.keys.idempotency(idempotency_key)
            stored = state.client.get(name)
            if stored and json.loads(str(stored)).get("run_id") == run_id:
                state.client.delete(name)
        raise
    return run_id, True


def job_json(found: CatalogJob) -> dict[str, Any]:
    """A job as ``GET /api/jobs`` lists it."""
    job = found.job
    partitions = job.partitions_def
    keys: list[str] | None = None
    if partitions is not None:
        try:
            keys = list(partitions.get_partition_keys())
        except Exception:  # a dynamic partitions definition that cannot list keys here
            keys = []
    ops = []
    for handle, node in job.all_op_nodes.items():
        ops.append(
            {
                "handle": handle,
                "op": node.op_def.name,
                "description": node.op_def.description,
                "upstream": sorted(node.upstream_steps),
                "tags": dict(node.tags),
            }
        )
    try:
        schema = run_config_schema(job)
    except Exception as exc:  # shown, not fatal: the server still validates launches
        schema = {"description": f"schema unavailable: {type(exc).__name__}: {exc}"}
    return {
        "location": found.location,
        "name": found.name,
        "description": job.description,
        "tags": dict(job.tags),
        "ops": ops,
        "config_schema": schema,
        "default_run_config": job.default_run_config or {},
        "partitions": keys,
    }
