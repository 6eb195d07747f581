"""``/api/health``, ``/api/jobs`` (and the Launchpad's checks), ``/api/concurrency`` and
``/api/workers``."""

from __future__ import annotations

import time
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from orchestrator import __version__
from orchestrator.concurrency.config import APPLY_PER_UNIQUE, TagConcurrencyLimit
from orchestrator.concurrency.redis import spec_for
from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.events import parse_attempt_id
from orchestrator.plan.steps import DEFAULT_QUEUE, QUEUE_TAG
from orchestrator.storage.base import RunsFilter
from orchestrator.views.payloads import limit_state_json
from orchestrator.web.broker import queue_depths
from orchestrator.web.errors import ApiError, as_api_error
from orchestrator.web.launch import (
    CheckRequest,
    LaunchSpec,
    find_job,
    job_json,
    scaffold_config,
    selected,
    validate,
    yaml_line,
)
from orchestrator.web.state import WebState


class LimitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(ge=0, le=1_000_000, description="Slots; 0 holds every match back.")
    value: str | None = Field(None, description="Limit only KEY=VALUE.")
    per_unique_value: bool = Field(False, description="Each value of KEY its own limit.")


class FreeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str | None = Field(None, min_length=1)
    lease_id: str | None = Field(None, min_length=1)


def _state(request: Request) -> WebState:
    return request.app.state.web


def check_launch(state: WebState, spec: LaunchSpec) -> dict[str, Any]:
    """``{valid, errors: [{path, message, line}], selected_ops}`` for a launch: config
    errors carry the YAML line of their path."""
    found = find_job(state, spec.job, spec.location)
    errors: list[dict[str, Any]] = []
    ops: list[str] = []
    try:
        job = selected(found, spec.op_selection)
        ops = list(job.op_nodes)
        validate(state, spec, job)
    except ApiError as exc:
        if exc.status == 404:
            raise
        errors = exc.errors or [{"path": "", "message": exc.message}]
    except ConfigError as exc:
        errors = [
            {"path": path, "message": message, "line": yaml_line(spec.run_config_yaml, path)}
            for path, message in exc.problems
        ]
    except OrchestratorError as exc:
        errors = [{"path": "", "message": as_api_error(exc).message}]
    return {"valid": not errors, "errors": errors, "selected_ops": ops}


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api")

    @router.get("/health", tags=["health"])
    def health(request: Request) -> Any:
        """Liveness: answers without a token; 503 when Redis does not answer."""
        state = _state(request)
        try:
            state.client.ping()
        except Exception as exc:
            return JSONResponse(
                {"status": "unavailable", "message": f"Redis does not answer: {exc}"},
                status_code=503,
            )
        return {"status": "ok", "version": __version__, "auth": bool(state.token)}

    @router.get("/jobs", tags=["jobs"])
    def jobs(request: Request) -> dict[str, Any]:
        """Code locations and their jobs: ops (with upstream ops), config JSON Schema,
        default config, partitions."""
        state = _state(request)
        listed = [job_json(j) for j in state.catalog.jobs()]
        locations = [
            {"location": str(loc), "error": state.catalog.errors.get(str(loc))}
            for loc in state.catalog.locations
        ]
        return {"locations": locations, "jobs": listed}

    @router.post("/jobs/{job}/check", tags=["jobs"])
    def check_endpoint(job: str, body: CheckRequest, request: Request) -> dict[str, Any]:
        """Validate a launch without launching: 200 with ``valid`` and each error's config
        path and YAML line; 404 for an unknown job."""
        return check_launch(_state(request), body.spec(job))

    @router.post("/jobs/{job}/scaffold", tags=["jobs"])
    def scaffold_endpoint(job: str, body: CheckRequest, request: Request) -> dict[str, Any]:
        """The given config with required fields it lacks filled in (defaults or typed
        placeholders), as JSON and as YAML."""
        config = scaffold_config(_state(request), body.spec(job))
        text = yaml.safe_dump(config, sort_keys=False) if config else ""
        return {"run_config": config, "run_config_yaml": text}

    # -- concurrency -------------------------------------------------------------------------

    @router.get("/concurrency", tags=["concurrency"])
    def concurrency(request: Request) -> dict[str, Any]:
        """Each cross-run limit, its holders (lease, run, step, attempt, worker, since;
        ``run_ended`` flags a slot whose run has ended) and waiters (priority, time waited,
        place in line)."""
        state = _state(request)
        now = time.time()
        limits = [limit_state_json(s, now) for s in state.limiter.snapshot()]
        run_ids = {
            lease["run_id"]
            for lim in limits
            for bucket in lim["buckets"]
            for lease in [*bucket["holders"], *bucket["waiters"]]
            if lease["run_id"]
        }
        ended = {r.run_id for r in _records(state, run_ids) if r.is_finished}
        for lim in limits:
            for bucket in lim["buckets"]:
                for lease in [*bucket["holders"], *bucket["waiters"]]:
                    lease["run_ended"] = lease["run_id"] in ended
        return {"limits": limits, "time": now}

    @router.put("/concurrency/limits/{key}", tags=["concurrency"])
    def set_limit(key: str, body: LimitRequest, request: Request) -> dict[str, Any]:
        """Set the limit of tag ``key`` (``value``: of KEY=VALUE only; ``per_unique_value``:
        each value its own limit)."""
        if body.per_unique_value and body.value is not None:
            raise ApiError(422, "per_unique_value takes KEY alone, not a value")
        value: str | dict[str, bool] | None = (
            {APPLY_PER_UNIQUE: True} if body.per_unique_value else body.value
        )
        limit = TagConcurrencyLimit(key=key, value=value, limit=body.limit)
        _state(request).limiter.set_limit(limit)
        return {"spec": spec_for(key, value), "limit": body.limit}

    @router.delete("/concurrency/limits/{key}", tags=["concurrency"])
    def delete_limit(
        key: str, request: Request, value: str | None = None, per_unique_value: bool = False
    ) -> dict[str, Any]:
        """Delete a limit (slots already held stay until released); 404 if there is none."""
        lim_value: str | dict[str, bool] | None = (
            {APPLY_PER_UNIQUE: True} if per_unique_value else value
        )
        limiter = _state(request).limiter
        if not limiter.delete_limit(key, lim_value):
            same_key = sorted(
                spec_for(lim.key, lim.value) for lim in limiter.list_limits() if lim.key == key
            )
            hint = f"; limits on {key!r}: {', '.join(same_key)}" if same_key else ""
            raise ApiError(
                404,
                f"no limit {spec_for(key, lim_value)!r}{hint} (give value=... or "
                "per_unique_value=true to name one)",
            )
        return {"deleted": spec_for(key, lim_value)}

    @router.post("/concurrency/free", tags=["concurrency"])
    def free(body: FreeRequest, request: Request) -> dict[str, Any]:
        """Free every slot held or awaited by a run, or one lease (e.g. of a run whose
        coordinator is gone for good)."""
        if (body.run_id is None) == (body.lease_id is None):
            raise ApiError(422, "give exactly one of run_id and lease_id")
        limiter = _state(request).limiter
        if body.run_id is not None:
            return {"freed": limiter.free_run(body.run_id)}
        assert body.lease_id is not None
        if not limiter.free_lease(body.lease_id):
            raise ApiError(404, f"no lease {body.lease_id!r}")
        return {"freed": 1}

    # -- workers -----------------------------------------------------------------------------

    @router.get("/workers", tags=["workers"])
    def workers(
        request: Request, depths: Annotated[bool, Query(description="Ask the broker.")] = True
    ) -> dict[str, Any]:
        """Live workers (queues, code locations, running steps), live coordinators, and
        each known queue's depth and consumers; ``no_consumer`` flags a queue holding
        messages that no live worker consumes."""
        return workers_view(_state(request), depths)

    return router


def _records(state: WebState, run_ids: set[str]) -> list[Any]:
    if not run_ids:
        return []
    return state.instance.get_runs(RunsFilter(run_ids=sorted(run_ids)))


def running_attempts(state: WebState) -> list[dict[str, Any]]:
    """Step attempts a worker runs now (claimed, not finished, lost or canceled)."""
    keys = state.instance.keys
    rows = state.client.zrange(keys.running_attempts, 0, -1, withscores=True)
    if not rows:
        return []
    pipe = state.client.pipeline(transaction=False)
    for attempt_id, _ in rows:
        pipe.hmget(keys.attempt(attempt_id), "state", "worker", "reserved_by")
    out = []
    for (attempt_id, since), (st, worker, node) in zip(rows, pipe.execute(), strict=True):
        if st != "running":
            continue
        try:
            run_id, step_key, attempt = parse_attempt_id(str(attempt_id))
        except ValueError:
            continue  # not an attempt of a run (nothing writes such entries)
        out.append(
            {
                "attempt_id": attempt_id,
                "run_id": run_id,
                "step_key": step_key,
                "attempt": attempt,
                "worker": node or worker,
                "process": worker,
                "since": since / 1000,
            }
        )
    return out


def workers_view(state: WebState, with_depths: bool = True) -> dict[str, Any]:
    live = state.workers.live_workers()
    running = running_attempts(state)
    workers: list[dict[str, Any]] = []
    for worker_id, info in sorted(live.items()):
        host = str(info.get("hostname") or "")
        mine = [
            r
            for r in running
            if r["worker"] == worker_id or (not r["worker"] and host and host in r["process"])
        ]
        workers.append(
            {
                "id": worker_id,
                "hostname": host,
                "pid": info.get("pid"),
                "queues": list(info.get("queues") or []),
                "locations": list(info.get("locations") or []),
                "running": mine,
            }
        )
    known = {DEFAULT_QUEUE}
    for w in workers:
        known.update(w["queues"])
    for found in state.catalog.jobs():
        known.update(n.tags.get(QUEUE_TAG, DEFAULT_QUEUE) for n in found.job.all_op_nodes.values())
    depths = queue_depths(state.settings, known) if with_depths else dict.fromkeys(known)
    queues = []
    for name in sorted(known):
        consumers = [w["id"] for w in workers if name in w["queues"]]
        depth = depths.get(name)
        queues.append(
            {
                "name": name,
                "depth": depth,
                "consumers": consumers,
                "no_consumer": not consumers and bool(depth),
            }
        )
    coordinators = [
        {"id": cid, "hostname": info.get("hostname"), "pid": info.get("pid")}
        for cid, info in sorted(state.coordinators.live().items())
    ]
    return {
        "workers": workers,
        "queues": queues,
        "coordinators": coordinators,
        "running": len(running),
    }
