"""Run and step events: JSON-serializable records, named with Dagster's event type names."""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from orchestrator.errors import StepError
from orchestrator.metadata import (
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    ExpectationResult,
    MetadataValue,
    metadata_from_json,
    metadata_to_json,
)


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


def step_failure(
    run_id: str,
    step_key: str,
    attempt: int | None,
    message: str,
    *,
    error: ErrorInfo | BaseException | str,
    timestamp: float | None = None,
    **data: Any,
) -> Event:
    """A STEP_FAILURE the framework writes for a step whose own code could not report one: its
    process died, its worker was lost, it could not start, it was canceled.

    Args:
        message: the event's message (what happened, said for a person).
        error: the error it carries: an ``ErrorInfo``, an exception (its traceback is kept), or
            the class name of a synthetic error (the message is then its message, with no
            traceback).
        data: more event data (e.g. ``exit_code``).
    """
    if isinstance(error, str):
        info = ErrorInfo(cls_name=error, message=message, stack="")
    elif isinstance(error, BaseException):
        info = ErrorInfo.from_exception(error)
    else:
        info = error
    return make_event(
        EventType.STEP_FAILURE,
        run_id,
        message,
        step_key=step_key,
        timestamp=timestamp,
        attempt=attempt,
        error=info.to_dict(),
        **data,
    )


# -- attempt ids -------------------------------------------------------------------------------
# One attempt of one step: ``<run id>:<step key>:<attempt number>``. Deterministic, so a rebuilt
# loop names attempts as the original did; it is also the Celery task id and the concurrency
# lease id of the attempt. Step keys may hold ':' (never run ids), so parsing splits at the first
# and the last one.


def attempt_id_for(run_id: str, step_key: str, attempt: int) -> str:
    """The id of attempt ``attempt`` of ``step_key`` in ``run_id``."""
    return f"{run_id}:{step_key}:{attempt}"


def parse_attempt_id(attempt_id: str) -> tuple[str, str, int]:
    """``(run id, step key, attempt)`` of an attempt id.

    Raises:
        ValueError: ``attempt_id`` is not of the form ``<run id>:<step key>:<attempt>``.
    """
    run_id, _, rest = attempt_id.partition(":")
    step_key, _, attempt = rest.rpartition(":")
    if not run_id or not step_key or not attempt.isdigit():
        raise ValueError(f"not an attempt id (<run id>:<step key>:<attempt>): {attempt_id!r}")
    return run_id, step_key, int(attempt)


# -- what ops log, and the typed views Dagster code reads off an event ----------------------


def metadata_fields(metadata: Any) -> dict[str, Any]:
    """Event data for a metadata mapping: ``metadata`` (plain JSON values) and, for entries
    given as ``MetadataValue``, ``metadata_kinds``."""
    values, kinds = metadata_to_json(metadata)
    return {"metadata": values or None, "metadata_kinds": kinds or None}


def logged_event(run_id: str, step_key: str | None, attempt: int | None, item: Any) -> Event:
    """The event of something an op logs with ``context.log_event`` (or yields)."""
    if isinstance(item, AssetMaterialization):
        observed = isinstance(item, AssetObservation)
        kind = EventType.ASSET_OBSERVATION if observed else EventType.ASSET_MATERIALIZATION
        verb = "Observed" if observed else "Materialized"
        return make_event(
            kind,
            run_id,
            f"{verb} asset {item.label!r}" + (f": {item.description}" if item.description else ""),
            step_key=step_key,
            attempt=attempt,
            asset_key=list(item.asset_key.path),
            description=item.description,
            partition=item.partition,
            **metadata_fields(item.metadata),
        )
    if isinstance(item, ExpectationResult):
        outcome = "passed" if item.success else "failed"
        return make_event(
            EventType.STEP_EXPECTATION_RESULT,
            run_id,
            f"Expectation {item.label or ''!r} {outcome}"
            + (f": {item.description}" if item.description else ""),
            step_key=step_key,
            attempt=attempt,
            success=item.success,
            label=item.label,
            description=item.description,
            **metadata_fields(item.metadata),
        )
    raise StepError(
        f"cannot log {item!r}: log_event takes AssetMaterialization, AssetObservation or "
        "ExpectationResult"
    )


@dataclass(frozen=True)
class StepOutputData:
    output_name: str
    metadata: dict[str, MetadataValue] = field(default_factory=dict)


@dataclass(frozen=True)
class UserFailureData:
    description: str | None
    metadata: dict[str, MetadataValue] = field(default_factory=dict)


@dataclass(frozen=True)
class StepFailureData:
    error: ErrorInfo | None
    user_failure_data: UserFailureData | None


@dataclass(frozen=True)
class StepMaterializationData:
    materialization: AssetMaterialization


@dataclass(frozen=True)
class AssetObservationData:
    asset_observation: AssetObservation


@dataclass(frozen=True)
class StepExpectationResultData:
    expectation_result: ExpectationResult


def _metadata(event: Event) -> dict[str, MetadataValue]:
    return metadata_from_json(event.data.get("metadata"), event.data.get("metadata_kinds"))


def specific_data(event: Event) -> Any:
    kind, data = event.event_type_value, event.data
    if kind == EventType.STEP_OUTPUT.value:
        return StepOutputData(data.get("output_name", "result"), _metadata(event))
    if kind == EventType.STEP_FAILURE.value:
        user = None
        if data.get("user_failure"):
            user = UserFailureData(data.get("description"), _metadata(event))
        return StepFailureData(event.error, user)
    if kind in (EventType.ASSET_MATERIALIZATION.value, EventType.ASSET_OBSERVATION.value):
        observed = kind == EventType.ASSET_OBSERVATION.value
        cls = AssetObservation if observed else AssetMaterialization
        asset = cls(
            AssetKey(data["asset_key"]),
            data.get("description"),
            _metadata(event),
            data.get("partition"),
        )
        if observed:
            return AssetObservationData(asset)  # type: ignore[arg-type]
        return StepMaterializationData(asset)
    if kind == EventType.STEP_EXPECTATION_RESULT.value:
        return StepExpectationResultData(
            ExpectationResult(
                bool(data.get("success")),
                data.get("label"),
                data.get("description"),
                _metadata(event),
            )
        )
    return None
