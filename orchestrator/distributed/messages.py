"""The message a Celery worker receives for one step attempt: data only (JSON), never code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import OrchestratorError

# The version of the step message this code writes and reads. Raise it when a field changes
# meaning or a new field must be understood (old workers then refuse new messages, clearly,
# instead of running them wrongly); a field whose absence means its default needs no new version.
MESSAGE_VERSION = 1


class MessageVersionError(OrchestratorError):
    """A step message of a version this worker does not understand."""


@dataclass(frozen=True)
class StepMessage:
    """One step attempt to run.

    Attributes:
        run_id, step_key, attempt, attempt_id: the attempt.
        pointer: the job pointer (JSON) the worker rebuilds the job from.
        lease_token: fencing token of the attempt's cross-run slots, if it has limited tags
            (the worker confirms it before running the step).
        retries_enabled: whether the op's ``RetryPolicy`` applies (executor config).
        plan: digest of the run's stored plan (``RedisKeys.plan``); workers cache plans by
            digest, so runs with the same plan cost one read per worker process.
        run_tags: the run's tags (what the op's context shows).
        has_input_values: the run record holds ``input_values`` the step may need (read only
            then).
        step: the step itself (``ExecutionStep.to_dict``) when the stored plan does not hold
            it: a mapped step ``op[key]`` made once its mapping keys were known.
        version: the message format (``MESSAGE_VERSION``).
    """

    run_id: str
    step_key: str
    attempt: int
    attempt_id: str
    pointer: Mapping[str, Any]
    lease_token: int | None = None
    retries_enabled: bool = True
    plan: str | None = None
    run_tags: Mapping[str, str] = field(default_factory=dict)
    has_input_values: bool = False
    step: Mapping[str, Any] | None = None
    version: int = MESSAGE_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "run_id": self.run_id,
            "step_key": self.step_key,
            "attempt": self.attempt,
            "attempt_id": self.attempt_id,
            "pointer": dict(self.pointer),
            "lease_token": self.lease_token,
            "retries_enabled": self.retries_enabled,
            "plan": self.plan,
            "run_tags": dict(self.run_tags),
            "has_input_values": self.has_input_values,
            "step": dict(self.step) if self.step is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepMessage:
        """Read a message written by ``to_dict``.

        Raises:
            MessageVersionError: the message is of another version than ``MESSAGE_VERSION``
                (a message without one is version 1, the first format).
        """
        version = data.get("version", 1)
        if version != MESSAGE_VERSION:
            raise MessageVersionError(
                f"step message version {version!r} is not one this worker reads (it reads "
                f"version {MESSAGE_VERSION}); run workers of the same orchestrator release as "
                "the coordinators that send them steps"
            )
        return cls(
            run_id=str(data["run_id"]),
            step_key=str(data["step_key"]),
            attempt=int(data["attempt"]),
            attempt_id=str(data["attempt_id"]),
            pointer=dict(data["pointer"]),
            lease_token=int(data["lease_token"]) if data.get("lease_token") else None,
            retries_enabled=bool(data.get("retries_enabled", True)),
            plan=data.get("plan"),
            run_tags={str(k): str(v) for k, v in (data.get("run_tags") or {}).items()},
            has_input_values=bool(data.get("has_input_values", True)),
            step=data.get("step"),
        )
