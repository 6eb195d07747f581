"""Run and step events: JSON-serializable records, named with Dagster's event type names."""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    """Event types; values are Dagster's names verbatim (plus LOG_MESSAGE for log lines)."""

    RUN_ENQUEUED = "RUN_ENQUEUED"
    RUN_STARTING = "RUN_STARTING"
    RUN_START = "RUN_START"
    RUN_SUCCESS = "RUN_SUCCESS"
    RUN_FAILURE = "RUN_FAILURE"
    RUN_CANCELING = "RUN_CANCELING"
    RUN_CANCELED = "RUN_CANCELED"
    STEP_START = "STEP_START"
    STEP_INPUT = "STEP_INPUT"
    STEP_OUTPUT = "STEP_OUTPUT"
    STEP_SUCCESS = "STEP_SUCCESS"
    STEP_FAILURE = "STEP_FAILURE"
    STEP_SKIPPED = "STEP_SKIPPED"
    STEP_UP_FOR_RETRY = "STEP_UP_FOR_RETRY"
    STEP_RESTARTED = "STEP_RESTARTED"
    HANDLED_OUTPUT = "HANDLED_OUTPUT"
    LOADED_INPUT = "LOADED_INPUT"
    HOOK_COMPLETED = "HOOK_COMPLETED"
    HOOK_ERRORED = "HOOK_ERRORED"
    HOOK_SKIPPED = "HOOK_SKIPPED"
    ASSET_MATERIALIZATION = "ASSET_MATERIALIZATION"
    ASSET_OBSERVATION = "ASSET_OBSERVATION"
    STEP_EXPECTATION_RESULT = "STEP_EXPECTATION_RESULT"
    ENGINE_EVENT = "ENGINE_EVENT"
    LOG_MESSAGE = "LOG_MESSAGE"


STEP_TERMINAL = frozenset({EventType.STEP_SUCCESS, EventType.STEP_FAILURE, EventType.STEP_SKIPPED})
RUN_TERMINAL = frozenset({EventType.RUN_SUCCESS, EventType.RUN_FAILURE, EventType.RUN_CANCELED})


@dataclass(frozen=True)
class ErrorInfo:
    """An error as it travels in events: type name, message, traceback text, and its cause."""

    cls_name: str
    message: str
    stack: str
    cause: ErrorInfo | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        cause = exc.__cause__ or exc.__context__
        return cls(
            cls_name=type(exc).__name__,
            message=str(exc),
            stack="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            cause=cls.from_exception(cause) if cause is not None and cause is not exc else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cls_name": self.cls_name,
            "message": self.message,
            "stack": self.stack,
            "cause": self.cause.to_dict() if self.cause else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ErrorInfo:
        cause = data.get("cause")
        return cls(
            data["cls_name"],
            data["message"],
            data["stack"],
            cls.from_dict(cause) if cause else None,
        )


@dataclass(frozen=True)
class Event:
    """One entry of a run's event log.

    Attributes:
        event_type_value: Dagster's event type name, e.g. ``STEP_SUCCESS``.
        run_id: the run.
        timestamp: seconds since the epoch.
        step_key: the step (node handle) for step events, else None.
        message: a human-readable line.
        data: JSON-serializable details (``attempt``, ``output_name``, ``error``, ...).
    """

    event_type_value: str
    run_id: str
    timestamp: float
    step_key: str | None = None
    message: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def event_type(self) -> EventType:
        return EventType(self.event_type_value)

    @property
    def is_step_event(self) -> bool:
        return self.step_key is not None

    @property
    def is_step_success(self) -> bool:
        return self.event_type_value == EventType.STEP_SUCCESS.value

    @property
    def is_step_failure(self) -> bool:
        return self.event_type_value == EventType.STEP_FAILURE.value

    @property
    def is_failure(self) -> bool:
        return self.event_type_value in (EventType.STEP_FAILURE.value, EventType.RUN_FAILURE.value)

    def _is(self, *types: EventType) -> bool:
        return self.event_type_value in {t.value for t in types}

    @property
    def is_step_start(self) -> bool:
        return self._is(EventType.STEP_START)

    @property
    def is_step_skipped(self) -> bool:
        return self._is(EventType.STEP_SKIPPED)

    @property
    def is_step_up_for_retry(self) -> bool:
        return self._is(EventType.STEP_UP_FOR_RETRY)

    @property
    def is_step_restarted(self) -> bool:
        return self._is(EventType.STEP_RESTARTED)

    @property
    def is_successful_output(self) -> bool:
        return self._is(EventType.STEP_OUTPUT)

    @property
    def is_handled_output(self) -> bool:
        return self._is(EventType.HANDLED_OUTPUT)

    @property
    def is_loaded_input(self) -> bool:
        return self._is(EventType.LOADED_INPUT)

    @property
    def is_hook_event(self) -> bool:
        return self._is(EventType.HOOK_COMPLETED, EventType.HOOK_ERRORED, EventType.HOOK_SKIPPED)

    @property
    def is_asset_materialization(self) -> bool:
        return self._is(EventType.ASSET_MATERIALIZATION)

    is_step_materialization = is_asset_materialization

    @property
    def is_asset_observation(self) -> bool:
        return self._is(EventType.ASSET_OBSERVATION)

    @property
    def is_expectation_result(self) -> bool:
        return self._is(EventType.STEP_EXPECTATION_RESULT)

    @property
    def is_run_success(self) -> bool:
        return self._is(EventType.RUN_SUCCESS)

    @property
    def is_run_failure(self) -> bool:
        return self._is(EventType.RUN_FAILURE)

    is_job_success = is_run_success
    is_job_failure = is_run_failure

    @property
    def is_engine_event(self) -> bool:
        return self._is(EventType.ENGINE_EVENT)

    @property
    def event_specific_data(self) -> Any:
        """What Dagster code reads off an event, by its type: ``.metadata`` of an output,
        ``.error`` and ``.user_failure_data`` of a failure, ``.materialization``,
        ``.asset_observation``, ``.expectation_result``; None for other events."""
        from orchestrator.execution.event_data import specific_data

        return specific_data(self)

    @property
    def node_handle(self) -> str | None:
        return self.step_key

    @property
    def attempt(self) -> int | None:
        return self.data.get("attempt")

    @property
    def error(self) -> ErrorInfo | None:
        err = self.data.get("error")
        return ErrorInfo.from_dict(err) if err else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_type_value": self.event_type_value,
            "run_id": self.run_id,
            "timestamp": self.timestamp,
            "step_key": self.step_key,
            "message": self.message,
            "data": dict(self.data),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        return cls(
            event_type_value=data["event_type_value"],
            run_id=data["run_id"],
            timestamp=data["timestamp"],
            step_key=data.get("step_key"),
            message=data.get("message", ""),
            data=data.get("data") or {},
        )


def make_event(
    event_type: EventType,
    run_id: str,
    message: str = "",
    step_key: str | None = None,
    timestamp: float | None = None,
    **data: Any,
) -> Event:
    """Build an event stamped with the current time (unless ``timestamp`` is given)."""
    return Event(
        event_type_value=event_type.value,
        run_id=run_id,
        timestamp=time.time() if timestamp is None else timestamp,
        step_key=step_key,
        message=message,
        data={k: v for k, v in data.items() if v is not None},
    )
