"""The in-memory ``Instance``: runs and event logs kept in this process (tests, in-process runs)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.errors import InvalidInputError
from orchestrator.events import Event
from orchestrator.storage.base import (
    Instance,
    RunRecord,
    RunsFilter,
    RunStatus,
    check_limit,
    normalized_record,
    status_for_event,
    updated_record,
)


class InMemoryInstance(Instance):
    """An :class:`Instance` that keeps everything in this process's memory.

    Thread-safe: one lock guards all state, and a condition on that lock wakes
    :meth:`wait_for_events` callers when an event is stored. A cursor is the event's 1-based
    position in its run's log, as a string.

    Args:
        clock: returns the current time in seconds since the epoch (injectable for tests).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # Notified (under _lock) whenever an event is stored.
        self._new_event = threading.Condition(self._lock)
        # run id -> record, in creation order.
        self._runs: dict[str, RunRecord] = {}
        # run id -> creation sequence number: breaks created_at ties, last created first.
        self._run_seq: dict[str, int] = {}
        self._next_run_seq = itertools.count()
        # run id -> event log, oldest first; an event's cursor is its index + 1.
        self._events: dict[str, list[Event]] = {}

    # -- runs ------------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> RunRecord:
        with self._lock:
            if record.run_id in self._runs:
                raise InvalidInputError(f"A run with id {record.run_id!r} already exists.")
            stored = normalized_record(record, self._clock())
            self._runs[record.run_id] = stored
            self._run_seq[record.run_id] = next(self._next_run_seq)
            return stored

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._lock:
            return self._runs.get(run_id)

    def get_runs(
        self, filters: RunsFilter | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        check_limit(limit)
        with self._lock:
            records = [r for r in self._runs.values() if filters is None or filters.matches(r)]
            records.sort(key=lambda r: (r.created_at, self._run_seq[r.run_id]), reverse=True)
        return records if limit is None else records[:limit]

    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        tags: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        with self._lock:
            record = self._runs.get(run_id)
            if record is None:
                raise InvalidInputError(f"No run with id {run_id!r}.")
            stored = updated_record(
                record, now=self._clock(), status=status, tags=tags, extra=extra
            )
            self._runs[run_id] = stored
            return stored

    def delete_run(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)
            self._run_seq.pop(run_id, None)
            self._events.pop(run_id, None)

    # -- events ----------------------------------------------------------------------------

    def store_event(self, event: Event) -> str:
        with self._new_event:
            log = self._events.setdefault(event.run_id, [])
            log.append(event)
            status = status_for_event(event)
            record = self._runs.get(event.run_id)
            if status is not None and record is not None:
                self._runs[event.run_id] = updated_record(
                    record, now=event.timestamp, status=status
                )
            self._new_event.notify_all()
            return str(len(log))

    def get_events(
        self, run_id: str, after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, Event]]:
        start = _position(after)
        check_limit(limit)
        with self._lock:
            return self._read(run_id, start, limit)

    def wait_for_events(
        self,
        run_id: str,
        after: str | None,
        timeout: float,
        limit: int | None = None,
    ) -> list[tuple[str, Event]]:
        start = _position(after)
        check_limit(limit)
        with self._new_event:
            self._new_event.wait_for(
                lambda: len(self._events.get(run_id, ())) > start, timeout=max(timeout, 0.0)
            )
            return self._read(run_id, start, limit)

    def _read(self, run_id: str, start: int, limit: int | None) -> list[tuple[str, Event]]:
        """The events after position ``start`` (caller holds the lock)."""
        log = self._events.get(run_id, [])
        stop = len(log) if limit is None else min(len(log), start + limit)
        return [(str(i + 1), log[i]) for i in range(start, stop)]


def _position(cursor: str | None) -> int:
    """Turn a cursor into the number of events it comes after (0 for None)."""
    if cursor is None:
        return 0
    try:
        position = int(cursor)
    except (TypeError, ValueError):
        position = -1
    if position < 0:
        raise InvalidInputError(f"Not an event cursor of the in-memory instance: {cursor!r}")
    return position
