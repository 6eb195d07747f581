"""A run's steps as the views show them, folded from its stored event log.

:func:`step_summaries` folds a run's event log into one :class:`StepSummary` per step (state,
attempts, duration, error). Pure functions: nothing here reads storage or prints, so the command
line (``orchestrator run ...``), the JSON views and the web UI share them and they are tested
without a server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from orchestrator.events import ErrorInfo, Event, EventType
from orchestrator.execution.loop import ATTEMPT_LOST, LAUNCHED, NO_CONSUMER, WAITING_FOR_SLOT
from orchestrator.plan.dynamic import UNRESOLVED


class StepStatus(StrEnum):
    """A step's state as ``run show`` names it."""

    NOT_STARTED = "not started"  # no event of the step yet (listed only when the plan is known)
    WAITING_FOR_SLOT = "waiting for slot"  # asked for concurrency slots, none granted yet
    QUEUED = "queued"  # launched (sent to a worker queue), not started yet
    RUNNING = "running"  # started, no outcome yet
    UP_FOR_RETRY = "up for retry"  # an attempt failed or was lost; another one will start
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


_FINISHED = frozenset({StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED})
_RUN_END = frozenset({"RUN_SUCCESS", "RUN_FAILURE", "RUN_CANCELED"})


@dataclass(frozen=True)
class StepSummary:
    """One step of a run as its event log tells it.

    Attributes:
        step_key: the step.
        status: where the step is.
        attempts: attempts that reached the step runner (0 if none did).
        start_time: STEP_START of the first attempt (seconds since the epoch), if any.
        end_time: STEP_SUCCESS or STEP_FAILURE, if the step finished that way.
        error: ``Type: message`` of the failure (or of the last failed attempt while up for
            retry).
        note: what the engine said last while no outcome was known (waiting for a slot, an
            attempt lost) or why the step was skipped.
        worker: where the latest attempt started (a Celery worker's node and process), if its
            executor says.
    """

    step_key: str
    status: StepStatus
    attempts: int = 0
    start_time: float | None = None
    end_time: float | None = None
    error: str | None = None
    note: str | None = None
    worker: str | None = None

    @property
    def duration_ms(self) -> float | None:
        """From the first STEP_START to STEP_SUCCESS/STEP_FAILURE (retries included)."""
        if self.start_time is None or self.end_time is None:
            return None
        return max(0.0, (self.end_time - self.start_time) * 1000)


@dataclass
class _Step:
    status: StepStatus = StepStatus.NOT_STARTED
    attempts: int = 0
    start_time: float | None = None
    end_time: float | None = None
    error: str | None = None
    note: str | None = None
    worker: str | None = None

    def apply(self, event: Event) -> None:
        if self.status in _FINISHED:
            return  # a step never finishes twice; later events (hooks, logs) change nothing
        etype, data = event.event_type_value, event.data
        attempt = data.get("attempt")
        if isinstance(attempt, int) and attempt < self.attempts:
            return  # a late event of an earlier attempt
        if etype == EventType.ENGINE_EVENT:
            kind = data.get("kind")
            if kind == WAITING_FOR_SLOT:
                self.status, self.note = StepStatus.WAITING_FOR_SLOT, event.message
            elif kind == LAUNCHED:
                if self.status is not StepStatus.RUNNING:  # a worker may have logged first
                    self.status, self.note = StepStatus.QUEUED, None
            elif kind == NO_CONSUMER and self.status is StepStatus.QUEUED:
                self.note = event.message
            elif kind == ATTEMPT_LOST:
                self.status, self.note = StepStatus.UP_FOR_RETRY, event.message
            return
        if etype == EventType.STEP_SKIPPED:
            self.status = StepStatus.SKIPPED
            self.note = event.message.partition(": ")[2] or event.message
            return
        if etype not in _OUTCOME_TYPES:
            return
        if isinstance(attempt, int):
            self.attempts = max(self.attempts, attempt)
        if etype in (EventType.STEP_START, EventType.STEP_RESTARTED):
            self.status, self.note = StepStatus.RUNNING, None
            if data.get("worker"):
                self.worker = str(data["worker"])
            if self.start_time is None:
                self.start_time = event.timestamp
        elif etype == EventType.STEP_UP_FOR_RETRY:
            self.status = StepStatus.UP_FOR_RETRY
            self.error = error_summary(event.error) or event.message
        elif etype == EventType.STEP_SUCCESS:
            self.status, self.end_time, self.error, self.note = (
                StepStatus.SUCCEEDED,
                event.timestamp,
                None,
                None,
            )
        elif etype == EventType.STEP_FAILURE:
            self.status, self.end_time, self.note = StepStatus.FAILED, event.timestamp, None
            self.error = error_summary(event.error) or event.message


_OUTCOME_TYPES = frozenset(
    {
        EventType.STEP_START,
        EventType.STEP_RESTARTED,
        EventType.STEP_UP_FOR_RETRY,
        EventType.STEP_SUCCESS,
        EventType.STEP_FAILURE,
    }
)


def step_summaries(events: Iterable[Event], step_keys: Sequence[str] = ()) -> list[StepSummary]:
    """Fold a run's event log (oldest first) into one summary per step.

    Args:
        events: the run's events, in the order they were stored.
        step_keys: the plan's steps, if known: listed first, in this order, and shown as
            ``not started`` when they have no event yet. Steps met only in events follow in the
            order of their first event.

    Returns:
        One :class:`StepSummary` per step.
    """
    steps: dict[str, _Step] = {key: _Step() for key in step_keys}
    run_ended = None
    for event in events:
        if event.step_key is not None:
            steps.setdefault(event.step_key, _Step()).apply(event)
        elif event.event_type_value in _RUN_END:
            run_ended = event.event_type_value
    if run_ended is not None:
        for s in steps.values():  # the run is over: nothing is waiting or queued any more
            if s.status in (StepStatus.WAITING_FOR_SLOT, StepStatus.QUEUED):
                s.status = StepStatus.NOT_STARTED
                s.note = "never ran (run canceled)" if run_ended == "RUN_CANCELED" else s.note
    return [
        StepSummary(key, s.status, s.attempts, s.start_time, s.end_time, s.error, s.note, s.worker)
        for key, s in steps.items()
    ]


def plan_step_keys(plan_json: str | None) -> list[str]:
    """The step keys, in plan order, of a stored execution plan (``ExecutionPlan.to_json``);
    an empty list when there is none or it cannot be read. Templates of mapped ops
    (``process[?]``) are left out: they are not steps (see :mod:`orchestrator.views.groups`
    for the steps their mapping keys make)."""
    if not plan_json:
        return []
    try:
        steps = json.loads(plan_json).get("steps")
    except (ValueError, AttributeError):
        return []
    if not isinstance(steps, list):
        return []
    return [
        s["key"]
        for s in steps
        if isinstance(s, Mapping) and isinstance(s.get("key"), str) and UNRESOLVED not in s["key"]
    ]


def describe_pointer(pointer: Mapping[str, Any] | None) -> str:
    """``file jobs.py`` or ``module my.jobs``, from a stored job pointer (no import)."""
    location = (pointer or {}).get("location")
    if not isinstance(location, Mapping):
        return ""
    if location.get("module"):
        return f"module {location['module']}"
    if location.get("file"):
        return f"file {location['file']}"
    return ""


def format_duration(ms: float | None) -> str:
    """``0.8 ms``, ``12.3 ms``, ``4.56 s``, ``2m 03s``."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.1f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s"


def error_summary(error: ErrorInfo | None) -> str:
    """``ValueError: boom`` for an op's own exception (unwrapping the user-code boundary)."""
    if error is None:
        return ""
    if error.cls_name == "UserCodeError" and error.cause is not None:
        error = error.cause
    return f"{error.cls_name}: {error.message}" if error.message else error.cls_name
