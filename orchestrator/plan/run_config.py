"""Run config resolution and validation against a job's structure.

Resolution picks the effective raw config (launch config replaces the job's default; config
mappings and partitioned config produce it). Validation walks ``ops`` (nested through graphs),
``resources``, ``execution``, ``loggers`` and top-level ``inputs``, and collects every problem
with its path before raising one :class:`ConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.definitions.config import run_config_to_dict
from orchestrator.definitions.graph import GraphDefinition
from orchestrator.errors import ConfigError, PartitionError, did_you_mean

if TYPE_CHECKING:
    from orchestrator.definitions.job import JobDefinition
    from orchestrator.definitions.resources import ResourceDefinition

TOP_LEVEL_KEYS = ("ops", "resources", "execution", "loggers", "inputs")


@dataclass
class ResolvedConfig:
    """Run config after validation, in JSON form, keyed the way the planner needs it."""

    raw: dict[str, Any]
    op_config: dict[str, Any] = field(default_factory=dict)  # op handle -> config
    op_inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # handle -> {input: v}
    op_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # handle -> {out: cfg}
    job_inputs: dict[str, Any] = field(default_factory=dict)
    resource_config: dict[str, Any] = field(default_factory=dict)
    executor_config: Any = None
    logger_config: dict[str, Any] = field(default_factory=dict)


def effective_run_config(
    job: JobDefinition, run_config: Any, partition_key: str | None
) -> dict[str, Any]:
    """The raw run config a run uses: launch config replaces the job's default config.

    Raises:
        PartitionError: a partition key for an unpartitioned job, or an unknown key.
        ConfigError: the job's config mapping rejects the config.
    """
    given = run_config_to_dict(run_config) if run_config is not None else None
    partitioned = job.partitioned_config
    if partition_key is not None and partitioned is None:
        raise PartitionError(
            f"job {job.name!r} is not partitioned; drop the partition key {partition_key!r}"
        )
    if job.config_mapping is not None:
        return job.config_mapping.resolve(given or {})
    if given is not None:
        if partitioned is not None and partition_key is not None:
            partitioned.partitions_def.validate_key(partition_key)
        return given
    if partitioned is not None and partition_key is not None:
        return run_config_to_dict(partitioned.get_run_config_for_partition_key(partition_key))
    return job.default_run_config


def _check_keys(
    value: Any,
    allowed: tuple[str, ...] | list[str],
    path: str,
    problems: list[tuple[str, str]],
    what: str = "key",
) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append((path, f"expected a mapping, got {type(value).__name__} {value!r}"))
        return {}
    for key in value:
        if key not in allowed:
            hint = did_you_mean(str(key), allowed) if allowed else f" This {what} takes nothing."
            problems.append((f"{path}.{key}", f"unknown {what}.{hint}"))
    return value


class _Validator:
    def __init__(self, job: JobDefinition, resource_defs: Mapping[str, ResourceDefinition]):
        self.job = job
        self.resource_defs = resource_defs
        self.selected = job.selected_handles
        self.problems: list[tuple[str, str]] = []

    def ops(
        self, graph: GraphDefinition, cfg: Any, path: str, prefix: str, out: ResolvedConfig
    ) -> None:
        cfg = _check_keys(cfg, list(graph.nodes), path, self.problems, "op or graph")
        for name, node in graph.nodes.items():
            node_path, handle = f"{path}.{name}", f"{prefix}{name}"
            node_cfg = cfg.get(name)
            if isinstance(node.definition, GraphDefinition):
                mapping = node.definition.config_mapping
                keys = ["ops", "inputs", *(["config"] if mapping is not None else [])]
                node_cfg = _check_keys(node_cfg, keys, node_path, self.problems)
                inner = node_cfg.get("ops")
                if mapping is not None:
                    if inner:
                        self.problems.append(
                            (
                                f"{node_path}.ops",
                                f"graph {name!r} maps its config onto its ops: give "
                                f"{node_path}.config instead",
                            )
                        )
                    inner, probs = mapping.map_config(node_cfg.get("config"), f"{node_path}.config")
                    self.problems += probs
                self.ops(node.definition, inner, f"{node_path}.ops", f"{handle}.", out)
                self.inputs(node_cfg, list(node.definition.input_defs), node_path, handle, out)
                continue
            op_def = node.definition
            node_cfg = _check_keys(
                node_cfg, ["config", "inputs", "outputs"], node_path, self.problems
            )
            if handle not in self.selected:
                continue  # config of unselected ops is allowed and ignored
            schema = op_def.config_schema
            if schema is None:  # as in Dagster: no schema accepts any config, unchecked
                if node_cfg.get("config") is not None:
                    out.op_config[handle] = node_cfg["config"]
            else:
                value, probs = schema.validate(
                    node_cfg.get("config"), f"{node_path}.config", resolve=False
                )
                self.problems += probs
                if not probs:
                    out.op_config[handle] = schema.to_json(value)
            self.inputs(node_cfg, list(op_def.ins), node_path, handle, out)
            self.outputs(node_cfg, op_def, node_path, handle, out)

    def outputs(
        self, node_cfg: Mapping[str, Any], op_def: Any, node_path: str, handle: str, out: Any
    ) -> None:
        """``outputs``: config of each output for its IO manager (``output_config_schema``)."""
        given = _check_keys(
            node_cfg.get("outputs"),
            list(op_def.outs),
            f"{node_path}.outputs",
            self.problems,
            "output",
        )
        for name, value in given.items():
            path = f"{node_path}.outputs.{name}"
            manager = self.resource_defs.get(op_def.outs[name].io_manager_key)
            schema = getattr(manager, "output_config_schema", None)
            if schema is not None:
                value, probs = schema.validate(value, path, resolve=False)
                self.problems += probs
                if probs:
                    continue
            out.op_outputs.setdefault(handle, {})[name] = value

    def inputs(
        self,
        node_cfg: Mapping[str, Any],
        names: list[str],
        node_path: str,
        handle: str,
        out: ResolvedConfig,
    ) -> None:
        """``inputs`` of an op, or of a graph (for ops inside it whose producer is not run)."""
        inputs = _check_keys(
            node_cfg.get("inputs"), names, f"{node_path}.inputs", self.problems, "input"
        )
        if inputs:
            out.op_inputs[handle] = {
                k: v["value"] if isinstance(v, Mapping) and set(v) == {"value"} else v
                for k, v in inputs.items()
            }

    def resources(self, cfg: Any, needed: set[str], out: ResolvedConfig) -> None:
        cfg = _check_keys(cfg, sorted(self.resource_defs), "resources", self.problems, "resource")
        for key in sorted(needed):
            definition = self.resource_defs.get(key)
            if definition is None:
                continue  # reported as a missing resource by the planner
            path = f"resources.{key}"
            res_cfg = _check_keys(cfg.get(key), ["config"], path, self.problems)
            given = res_cfg.get("config")
            schema = definition.config_schema
            if schema is None:  # no schema accepts any config, unchecked
                if given is not None:
                    out.resource_config[key] = given
                continue
            default = definition.default_config
            if isinstance(default, Mapping) and (given is None or isinstance(given, Mapping)):
                given = {**default, **(given or {})}
            elif given is None:
                given = default
            value, probs = schema.validate(given, f"{path}.config", resolve=False)
            self.problems += probs
            if not probs:
                out.resource_config[key] = schema.to_json(value)

    def execution(self, cfg: Any, out: ResolvedConfig) -> None:
        cfg = _check_keys(cfg, ["config"], "execution", self.problems)
        value, probs = self.job.executor_def.validate_config(cfg.get("config"))
        self.problems += probs
        out.executor_config = value

    def loggers(self, cfg: Any, out: ResolvedConfig) -> None:
        defs = self.job.loggers
        cfg = _check_keys(cfg, sorted(defs), "loggers", self.problems, "logger")
        for name, definition in defs.items():
            logger_cfg = _check_keys(cfg.get(name), ["config"], f"loggers.{name}", self.problems)
            if definition.config_schema is None:
                continue
            value, probs = definition.config_schema.validate(
                logger_cfg.get("config"), f"loggers.{name}.config"
            )
            self.problems += probs
            if not probs:
                out.logger_config[name] = definition.config_schema.to_json(value)


def validate_run_config(
    job: JobDefinition,
    raw: Mapping[str, Any],
    resource_defs: Mapping[str, ResourceDefinition],
    needed_resources: set[str],
) -> ResolvedConfig:
    """Validate ``raw`` run config for ``job`` (its selected ops).

    Raises:
        ConfigError: listing every problem with its path, e.g.
            ``ops.do_something.config.config_param: missing required config value``.
    """
    out = ResolvedConfig(raw=dict(raw))
    v = _Validator(job, resource_defs)
    _check_keys(raw, TOP_LEVEL_KEYS, "<root>", v.problems, "top-level key")
    v.problems = [(p.removeprefix("<root>."), m) for p, m in v.problems]
    v.ops(job.graph_def, raw.get("ops"), "ops", "", out)
    v.resources(raw.get("resources"), needed_resources, out)
    v.execution(raw.get("execution"), out)
    v.loggers(raw.get("loggers"), out)
    inputs = _check_keys(
        raw.get("inputs"), list(job.graph_def.input_defs), "inputs", v.problems, "job input"
    )
    out.job_inputs = {
        k: val["value"] if isinstance(val, Mapping) and set(val) == {"value"} else val
        for k, val in inputs.items()
    }
    if v.problems:
        raise ConfigError(v.problems, heading=f"Invalid run config for job {job.name!r}")
    return out
