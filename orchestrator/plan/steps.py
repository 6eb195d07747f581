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

    def to_dict(self) -> dict[str, str]:
        out = {"step_key": self.step_key, "output_name": self.output_name}
        if self.run_id is not None:
            out["run_id"] = self.run_id
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepOutputHandle:
        return cls(data["step_key"], data["output_name"], data.get("run_id"))


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
        )


@dataclass(frozen=True)
class StepOutput:
    """One declared output of a step."""

    name: str
    is_required: bool = True
    is_nothing: bool = False
    io_manager_key: str = "io_manager"
    config: Any = None  # run config ``ops.<op>.outputs.<name>``, for its IO manager

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "is_required": self.is_required,
            "is_nothing": self.is_nothing,
            "io_manager_key": self.io_manager_key,
            "config": self.config,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepOutput:
        return cls(**data)


@dataclass(frozen=True)
class ExecutionStep:
    """One op of the job as it will run.

    Attributes:
        key: the op's node handle (``outer.inner.op``), unique in the plan.
        op_name: the op definition's name.
        inputs: where each input's value comes from.
        outputs: the op's declared outputs.
        tags: the op's tags (definition, invocation and enclosing graphs merged).
        retry_policy: how failures are retried (None: not retried).
        queue: the Celery queue for the step (tag ``orchestrator/queue``).
        priority: op tag plus run tag ``orchestrator/priority``; higher runs first.
        config: the step's validated op config in JSON form.
        resource_keys: the resources the step needs.
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _frozen(self.tags))

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
    """

    job_name: str
    steps: tuple[ExecutionStep, ...]
    run_config: Mapping[str, Any] = field(default_factory=dict)
    op_selection: tuple[str, ...] | None = None
    partition_key: str | None = None
    resource_config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_config", _frozen(self.run_config))
        object.__setattr__(self, "resource_config", _frozen(self.resource_config))
        object.__setattr__(self, "_by_key", {s.key: s for s in self.steps})

    def step(self, key: str) -> ExecutionStep:
        return self._by_key[key]  # type: ignore[attr-defined]

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
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ExecutionPlan:
        return cls.from_dict(json.loads(text))
