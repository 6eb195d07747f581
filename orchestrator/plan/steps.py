"""The execution plan: immutable, JSON-serializable steps (one per selected op).

A plan is everything a worker needs besides the job's code: which inputs come from where, the
validated config of each step, tags, retry policy, queue and priority.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from orchestrator.definitions.retry import RetryPolicy

DEFAULT_QUEUE = "orchestrator"
QUEUE_TAG = "orchestrator/queue"
PRIORITY_TAG = "orchestrator/priority"


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


class InputKind(StrEnum):
    """Where a step input's value comes from."""

    STEP_OUTPUT = "step_output"  # outputs of steps of this run (several: fan-in list)
    VALUE = "value"  # a JSON value from run config ``inputs``
    INPUT_VALUE = "input_value"  # a Python object given as input_values (``key`` names it)
    PARENT_RUN = "parent_run"  # outputs stored by the parent run (re-execution)
    DEFAULT = "default"  # the In's default_value
    INPUT_MANAGER = "input_manager"  # loaded by the input manager resource ``key``
    NOTHING = "nothing"  # ordering only; nothing is passed to the op


@dataclass(frozen=True)
class StepOutputHandle:
    """Names one output of one step: of this run, or (``run_id`` set) of the parent run a
    re-execution reads it from (a fan-in mixing re-run steps and stored outputs)."""

    step_key: str
    output_name: str = "result"
    run_id: str | None = None
    mapping_key: str | None = None  # one value of a dynamic output

    def to_dict(self) -> dict[str, str]:
        out = {"step_key": self.step_key, "output_name": self.output_name}
        if self.run_id is not None:
            out["run_id"] = self.run_id
        if self.mapping_key is not None:
            out["mapping_key"] = self.mapping_key
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepOutputHandle:
        return cls(
            data["step_key"], data["output_name"], data.get("run_id"), data.get("mapping_key")
        )


@dataclass(frozen=True)
class StepInput:
    """One input of a step and where its value comes from."""

    name: str
    kind: InputKind
    sources: tuple[StepOutputHandle, ...] = ()
    fan_in: bool = False
    value: Any = None
    key: str | None = None
    parent_run_id: str | None = None
    # "map": one value of a dynamic output per mapped step; "collect": every mapped value, a
    # list (sources named by op handle until the mapping keys are known; see plan.dynamic)
    mode: str = ""
    # a collect input: the dynamic output (``"producer:output"``, the producer as a template
    # key) whose mapping keys it gathers over
    over: str | None = None

    @property
    def upstream_keys(self) -> set[str]:
        """Steps of this run the input waits for."""
        if self.kind in (InputKind.STEP_OUTPUT, InputKind.NOTHING):
            return {s.step_key for s in self.sources if s.run_id is None}
        return set()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "sources": [s.to_dict() for s in self.sources],
            "fan_in": self.fan_in,
            "value": self.value,
            "key": self.key,
            "parent_run_id": self.parent_run_id,
            "mode": self.mode,
            "over": self.over,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepInput:
        return cls(
            name=data["name"],
            kind=InputKind(data["kind"]),
            sources=tuple(StepOutputHandle.from_dict(s) for s in data["sources"]),
            fan_in=data["fan_in"],
            value=data["value"],
            key=data["key"],
            parent_run_id=data["parent_run_id"],
            mode=data.get("mode", ""),
            over=data.get("over"),
        )


@dataclass(frozen=True)
class StepOutput:
    """One declared output of a step."""

    name: str
    is_required: bool = True
    is_nothing: bool = False
    io_manager_key: str = "io_manager"
    config: Any = None  # run config ``ops.<op>.outputs.<name>``, for its IO manager
    is_dynamic: bool = False  # a DynamicOut: one value per mapping key

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "is_required": self.is_required,
            "is_nothing": self.is_nothing,
            "io_manager_key": self.io_manager_key,
            "config": self.config,
            "is_dynamic": self.is_dynamic,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepOutput:
        return cls(**data)


@dataclass(frozen=True)
class ExecutionStep:
    """One op of the job as it will run.

    Attributes:
        key: the op's node handle (``outer.inner.op``), unique in the plan; for an op mapped
            over dynamic outputs, the handle with one ``[mapping_key]`` per mapping
            (``process[a]``, ``inner[a][b]``), or ``[?]`` for the plan's template of it.
        op_name: the op definition's name.
        inputs: where each input's value comes from.
        outputs: the op's declared outputs.
        tags: the op's tags (definition, invocation and enclosing graphs merged).
        retry_policy: how failures are retried (None: not retried).
        queue: the Celery queue for the step (tag ``orchestrator/queue``).
        priority: op tag plus run tag ``orchestrator/priority``; higher runs first.
        config: the step's validated op config in JSON form.
        resource_keys: the resources the step needs.
        mapped_over: the dynamic outputs (op handle, output) the op is mapped over,
            outermost first (empty: not mapped).
        mapping_keys: the mapping keys of a mapped step (empty in a template).
    """

    key: str
    op_name: str
    inputs: tuple[StepInput, ...]
    outputs: tuple[StepOutput, ...]
    tags: Mapping[str, str] = field(default_factory=dict)
    retry_policy: RetryPolicy | None = None
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    config: Any = None
    resource_keys: tuple[str, ...] = ()
    mapped_over: tuple[tuple[str, str], ...] = ()
    mapping_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _frozen(self.tags))

    @property
    def handle(self) -> str:
        """The op's node handle (the key without mapping keys)."""
        return self.key.split("[", 1)[0]

    @property
    def is_template(self) -> bool:
        """A mapped op as planned: its steps are made once its mapping keys are known."""
        return bool(self.mapped_over) and not self.mapping_keys

    @property
    def mapping_key(self) -> str | None:
        """The innermost mapping key of a mapped step (``context.get_mapping_key()``)."""
        return self.mapping_keys[-1] if self.mapping_keys else None

    @property
    def upstream_keys(self) -> frozenset[str]:
        keys: set[str] = set()
        for step_input in self.inputs:
            keys |= step_input.upstream_keys
        return frozenset(keys)

    def input_named(self, name: str) -> StepInput:
        return next(i for i in self.inputs if i.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "op_name": self.op_name,
            "inputs": [i.to_dict() for i in self.inputs],
            "outputs": [o.to_dict() for o in self.outputs],
            "tags": dict(self.tags),
            "retry_policy": self.retry_policy.to_dict() if self.retry_policy else None,
            "queue": self.queue,
            "priority": self.priority,
            "config": self.config,
            "resource_keys": list(self.resource_keys),
            "mapped_over": [list(d) for d in self.mapped_over],
            "mapping_keys": list(self.mapping_keys),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionStep:
        rp = data.get("retry_policy")
        return cls(
            key=data["key"],
            op_name=data["op_name"],
            inputs=tuple(StepInput.from_dict(i) for i in data["inputs"]),
            outputs=tuple(StepOutput.from_dict(o) for o in data["outputs"]),
            tags=data["tags"],
            retry_policy=RetryPolicy.from_dict(rp) if rp else None,
            queue=data["queue"],
            priority=data["priority"],
            config=data["config"],
            resource_keys=tuple(data["resource_keys"]),
            mapped_over=tuple((h, o) for h, o in data.get("mapped_over") or ()),
            mapping_keys=tuple(data.get("mapping_keys") or ()),
        )


@dataclass(frozen=True)
class MappedSelection:
    """What a re-execution takes over from its parent run about mapped steps.

    Attributes:
        parent_run_id: the parent run.
        resolved: mapping keys each dynamic output of the parent produced
            (``"step_key:output"`` -> keys, in order).
        keys: per mapped op handle selected with mapping keys, the step keys to run
            (``process`` -> ``("process[b]",)``); a selected handle not here runs them all.
        stored: outputs of mapped steps the parent stored (``"step_key:output"``).
    """

    parent_run_id: str
    resolved: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    keys: Mapping[str, frozenset[str]] = field(default_factory=dict)
    stored: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        return {
            "parent_run_id": self.parent_run_id,
            "resolved": {k: list(v) for k, v in self.resolved.items()},
            "keys": {k: sorted(v) for k, v in self.keys.items()},
            "stored": sorted(self.stored),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MappedSelection:
        return cls(
            parent_run_id=data["parent_run_id"],
            resolved={k: tuple(v) for k, v in data.get("resolved", {}).items()},
            keys={k: frozenset(v) for k, v in data.get("keys", {}).items()},
            stored=frozenset(data.get("stored", ())),
        )


@dataclass(frozen=True)
class ExecutionPlan:
    """The steps of one run, in a topological order, with the run config they were built from.

    Attributes:
        job_name: the job.
        steps: one per selected op, upstream before downstream.
        run_config: the effective raw run config (after defaults, mappings and partitions).
        op_selection: the selection queries, or None for the whole job.
        partition_key: the partition, if any.
        resource_config: validated config of each resource the steps need, in JSON form.
        mapped: for a re-execution, the mapping keys the parent run's dynamic outputs
            produced (``"step:output"`` -> keys), the mapped steps selected to run again
            (op handle -> step keys; a handle not listed runs for every key), and the
            outputs of mapped steps the parent stored (``"step:output"``): see
            :class:`MappedSelection`.
    """

    job_name: str
    steps: tuple[ExecutionStep, ...]
    run_config: Mapping[str, Any] = field(default_factory=dict)
    op_selection: tuple[str, ...] | None = None
    partition_key: str | None = None
    resource_config: Mapping[str, Any] = field(default_factory=dict)
    mapped: MappedSelection | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_config", _frozen(self.run_config))
        object.__setattr__(self, "resource_config", _frozen(self.resource_config))
        object.__setattr__(self, "_by_key", {s.key: s for s in self.steps})
        object.__setattr__(self, "_by_handle", {s.handle: s for s in self.steps})
        by_dim: dict[tuple[str, str], list[ExecutionStep]] = {}
        for s in self.steps:
            if s.mapped_over:
                by_dim.setdefault(s.mapped_over[-1], []).append(s)
        object.__setattr__(self, "_by_dim", by_dim)

    def templates_over(self, handle: str, output: str) -> list[ExecutionStep]:
        """The templates mapped over output ``output`` of op ``handle`` (innermost), in plan
        order."""
        return self._by_dim.get((handle, output), [])  # type: ignore[attr-defined]

    def step(self, key: str) -> ExecutionStep:
        """A step of the plan; a mapped step (``op[k]``) is derived from its template unless it
        collects (then it travels with its launch: see ``orchestrator.plan.dynamic``)."""
        found = self._by_key.get(key)  # type: ignore[attr-defined]
        if found is not None:
            return found
        from orchestrator.plan.dynamic import mapped_step

        return mapped_step(self, key)

    def by_handle(self, handle: str) -> ExecutionStep | None:
        """The step (or template) of op ``handle``, if the plan has it."""
        return self._by_handle.get(handle)  # type: ignore[attr-defined]

    def is_stored(self, step: ExecutionStep) -> bool:
        """Whether a process holding this plan gets ``step`` from its key alone (one of the
        plan's own steps, or a mapped step its template makes): a launch then need not carry
        the step. A step that collects mapped outputs depends on mapping keys only the run's
        loop knows."""
        if self._by_key.get(step.key) is step:  # type: ignore[attr-defined]
            return True
        template = self.by_handle(step.handle)
        return (
            template is not None
            and bool(step.mapping_keys)
            and not any(i.mode == "collect" for i in template.inputs)
        )

    def to_ship(self, step: ExecutionStep | None) -> dict[str, Any] | None:
        """What a launch sends to a process holding this plan so it can run ``step``: the
        step itself (``to_dict``) when the plan cannot make it from its key, else None."""
        return step.to_dict() if step is not None and not self.is_stored(step) else None

    @property
    def step_keys(self) -> list[str]:
        return [s.key for s in self.steps]

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_name": self.job_name,
            "steps": [s.to_dict() for s in self.steps],
            "run_config": json.loads(json.dumps(dict(self.run_config))),
            "op_selection": list(self.op_selection) if self.op_selection is not None else None,
            "partition_key": self.partition_key,
            "resource_config": json.loads(json.dumps(dict(self.resource_config))),
            "mapped": self.mapped.to_dict() if self.mapped is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionPlan:
        sel = data.get("op_selection")
        return cls(
            job_name=data["job_name"],
            steps=tuple(ExecutionStep.from_dict(s) for s in data["steps"]),
            run_config=data["run_config"],
            op_selection=tuple(sel) if sel is not None else None,
            partition_key=data.get("partition_key"),
            resource_config=data.get("resource_config") or {},
            mapped=MappedSelection.from_dict(data["mapped"]) if data.get("mapped") else None,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ExecutionPlan:
        return cls.from_dict(json.loads(text))
