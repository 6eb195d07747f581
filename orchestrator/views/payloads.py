"""JSON views of runs, steps, events and concurrency limits, shared by the CLI's ``--json``
output and the HTTP API (``orchestrator/web``).

Pure functions, no I/O: each turns one stored object into a dict that ``json.dumps`` accepts,
with string keys, times as floats (seconds since the epoch) or null, and no internal fields
(a run's ``extra`` and raw job pointer stay out). A field once published keeps its name and
meaning; new fields may be added.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from orchestrator.concurrency.redis import BucketState, LeaseInfo, LimitState
from orchestrator.events import ErrorInfo, Event, EventType
from orchestrator.execution.loop import ATTEMPT_LOST, NO_CONSUMER, RESENT, WAITING_FOR_SLOT
from orchestrator.storage.base import RunRecord
from orchestrator.views.groups import StepGroup, group_counts, mapped_handle
from orchestrator.views.steps import StepSummary, describe_pointer

# Levels of events that are not log lines (a LOG_MESSAGE carries its own, in data.level).
_ERROR_TYPES = frozenset({EventType.STEP_FAILURE, EventType.RUN_FAILURE, EventType.HOOK_ERRORED})
_WARNING_TYPES = frozenset(
    {EventType.STEP_UP_FOR_RETRY, EventType.STEP_SKIPPED, EventType.RUN_CANCELED}
)
# Engine events that say a step is stuck or lost something: waiting for a slot or a consumer,
# an attempt lost, a message sent again because its worker died.
_WARNING_KINDS = frozenset({WAITING_FOR_SLOT, NO_CONSUMER, ATTEMPT_LOST, RESENT})


def run_json(record: RunRecord) -> dict[str, Any]:
    """A run: identity, status, what it runs, its lineage and its times.

    Keys: ``run_id``, ``job_name``, ``status`` (``RunStatus`` value), ``tags``, ``run_config``,
    ``op_selection`` (list or null: all ops), ``partition_key``, ``parent_run_id``,
    ``root_run_id``, ``created_at``, ``updated_at``, ``start_time``, ``end_time``,
    ``duration_seconds`` (end minus start, null until both are known) and ``code_location``
    (``"file jobs.py"`` / ``"module my.jobs"``, or null).
    """
    return {
        "run_id": record.run_id,
        "job_name": record.job_name,
        "status": record.status.value,
        "tags": dict(record.tags),
        "run_config": json_safe(record.run_config),
        "op_selection": list(record.op_selection) if record.op_selection is not None else None,
        "partition_key": record.partition_key,
        "parent_run_id": record.parent_run_id,
        "root_run_id": record.root_run_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "start_time": record.start_time,
        "end_time": record.end_time,
        "duration_seconds": _duration(record.start_time, record.end_time),
        "code_location": describe_pointer(record.pointer) or None,
    }


def step_json(step: StepSummary) -> dict[str, Any]:
    """A step as its run's event log tells it (see :class:`StepSummary`).

    Keys: ``step_key``, ``state`` (e.g. ``"succeeded"``, ``"waiting for slot"``), ``attempts``,
    ``start_time``, ``end_time``, ``duration_seconds`` (first start to outcome, retries
    included), ``error`` (``"Type: message"`` or null), ``note``, ``worker`` (or null) and
    ``group``: the handle of the mapped op the step belongs to (``process`` for
    ``process[a]``, see :func:`group_json`), null for a step that is not mapped.
    """
    return {
        "step_key": step.step_key,
        "state": step.status.value,
        "attempts": step.attempts,
        "start_time": step.start_time,
        "end_time": step.end_time,
        "duration_seconds": _duration(step.start_time, step.end_time),
        "error": step.error,
        "note": step.note,
        "worker": step.worker,
        "group": mapped_handle(step.step_key),
    }


def group_json(group: StepGroup) -> dict[str, Any]:
    """The steps of one mapped op, counted (see :class:`~orchestrator.views.groups.StepGroup`).

    Keys: ``group`` (the op handle, as the ``group`` of its steps), ``label``
    (``"process[*]"``), ``depth`` (mappings it is under), ``state`` (its most active
    unfinished state, else ``failed``, ``succeeded`` or ``skipped``), ``step_count``,
    ``counts`` (steps per state, every state named), ``start_time`` (first start),
    ``end_time`` (last outcome, null while a step is unfinished), ``duration_seconds``,
    ``note`` (e.g. ``"nothing to map: ..."``, or null), ``unmapped`` (placeholder keys such as
    ``process[?]`` skipped because nothing was mapped) and ``producer`` (the op whose dynamic
    output it maps over, or null).
    """
    return {
        "group": group.handle,
        "label": group.label,
        "depth": group.depth,
        "state": group.status.value,
        "step_count": group.size,
        "counts": group_counts(group),
        "start_time": group.start_time,
        "end_time": group.end_time,
        "duration_seconds": _duration(group.start_time, group.end_time),
        "note": group.note,
        "unmapped": list(group.unmapped),
        "producer": group.producer,
    }


def event_json(cursor: str, event: Event) -> dict[str, Any]:
    """One event of a run's log.

    Args:
        cursor: the event's position in the log (a Redis stream id); events after it are read
            with ``Instance.get_events(run_id, after=cursor)``.
        event: the event.

    Returns:
        Keys: ``id`` (the cursor), ``run_id``, ``type`` (Dagster's event type name),
        ``step_key``, ``timestamp``, ``message``, ``level`` (see :func:`event_level`),
        ``data`` (the event's details, without ``error``) and ``error`` (see
        :func:`error_json`; null when the event carries none).
    """
    error = event.error
    return {
        "id": cursor,
        "run_id": event.run_id,
        "type": event.event_type_value,
        "step_key": event.step_key,
        "timestamp": event.timestamp,
        "message": event.message,
        "level": event_level(event),
        "data": json_safe({k: v for k, v in event.data.items() if k != "error"}),
        "error": error_json(error) if error is not None else None,
    }


def event_level(event: Event) -> str:
    """A log level for an event: a log line's own level (``INFO`` if it has none); ``ERROR``
    for failures (step, run, hook) and engine events carrying an error; ``WARNING`` for
    retries, skips, cancels and engine events saying a step waits (for a slot, for a worker
    on its queue), lost an attempt or was sent again; ``INFO`` otherwise."""
    etype = event.event_type_value
    if etype == EventType.LOG_MESSAGE:
        return str(event.data.get("level") or "INFO").upper()
    if etype in _ERROR_TYPES:
        return "ERROR"
    if etype in _WARNING_TYPES:
        return "WARNING"
    if etype == EventType.ENGINE_EVENT:
        if event.data.get("error"):
            return "ERROR"
        if event.data.get("kind") in _WARNING_KINDS:
            return "WARNING"
    return "INFO"


def error_json(error: ErrorInfo) -> dict[str, Any]:
    """An error: ``type`` (class name), ``message``, ``stack`` (traceback text) and ``cause``
    (the same shape, or null)."""
    return {
        "type": error.cls_name,
        "message": error.message,
        "stack": error.stack,
        "cause": error_json(error.cause) if error.cause is not None else None,
    }


def lease_json(lease: LeaseInfo, now: float) -> dict[str, Any]:
    """A lease on concurrency slots, held or waiting.

    Args:
        lease: the lease.
        now: the current time (seconds since the epoch; Redis time, as the lease's are).

    Returns:
        Keys: ``lease_id`` (the step attempt id), ``run_id``, ``step_key``, ``attempt``,
        ``worker`` (who renews it), ``state`` (``held`` or ``waiting``), ``buckets``,
        ``priority``, ``token`` (fencing token; 0 while waiting), ``queued`` (when it asked),
        ``since`` (when granted; while waiting, when it asked), ``expires``, and
        ``held_seconds`` (held: since the grant, else null) and ``waited_seconds`` (waiting:
        since it asked, else null).
    """
    held = lease.state == "held"
    return {
        "lease_id": lease.lease_id,
        "run_id": lease.run_id,
        "step_key": lease.step_key,
        "attempt": lease.attempt,
        "worker": lease.worker,
        "state": lease.state,
        "buckets": list(lease.buckets),
        "priority": lease.priority,
        "token": lease.token,
        "queued": lease.queued,
        "since": lease.since,
        "expires": lease.expires,
        "held_seconds": _elapsed(lease.since, now) if held else None,
        "waited_seconds": None if held else _elapsed(lease.queued, now),
    }


def limit_state_json(state: LimitState, now: float) -> dict[str, Any]:
    """A cross-run limit with its buckets' holders and waiters.

    Args:
        state: the limit, as ``RedisLimiter.snapshot`` returns it.
        now: the current time (seconds since the epoch; Redis time).

    Returns:
        Keys: ``spec`` (``key``, ``key=value`` or ``key=*``), ``key``, ``value`` (the tag
        value, or null: key-wide or per unique value), ``per_unique_value``, ``limit`` (null
        for a deleted limit whose buckets still have holders or waiters) and ``buckets``: one
        object per counter with ``bucket``, ``limit``, ``holders`` (:func:`lease_json`, oldest
        grant first) and ``waiters`` (next in line first, each with its 1-based
        ``position``).
    """
    if state.limit is not None:
        lim = state.limit
        key = lim.key
        value = lim.value if isinstance(lim.value, str) else None
        per_unique = lim.per_unique_value
    else:
        key, value, per_unique = _parse_bucket(state.spec)
    return {
        "spec": state.spec,
        "key": key,
        "value": value,
        "per_unique_value": per_unique,
        "limit": state.limit.limit if state.limit is not None else None,
        "buckets": [_bucket_json(bucket, now) for bucket in state.buckets],
    }


def _bucket_json(bucket: BucketState, now: float) -> dict[str, Any]:
    return {
        "bucket": bucket.bucket,
        "limit": bucket.limit,
        "holders": [lease_json(h, now) for h in bucket.holders],
        "waiters": [
            {**lease_json(w, now), "position": i} for i, w in enumerate(bucket.waiters, start=1)
        ],
    }


def _parse_bucket(bucket: str) -> tuple[str, str | None, bool]:
    """Key, value and per-unique-ness of a bucket name (``k``, ``k=v``, ``k=*v``)."""
    key, sep, rest = bucket.partition("=")
    if not sep:
        return key, None, False
    if rest.startswith("*"):
        return key, None, True
    return key, rest, False


def json_safe(value: Any) -> Any:
    """``value`` with mappings as dicts (keys as strings), sequences as lists, non-finite
    floats and other objects as their ``str``: what ``json.dumps`` writes as strict JSON."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    return str(value)


def _duration(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, end - start)


def _elapsed(since: float, now: float) -> float:
    # Milliseconds are what the stored times hold; a clock a little behind gives 0, not < 0.
    return round(max(0.0, now - since), 3)
