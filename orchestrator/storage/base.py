"""The run-storage interface: run records, run filters, and the ``Instance`` API.

An :class:`Instance` stores runs and each run's event log. Backends are one file each
(``memory.py`` for one process, Redis for anything shared) and implement the abstract methods
below with exactly the same behaviour; ``tests/test_storage_contract.py`` runs the same tests
against every backend.

Values stored in a record (``tags``, ``run_config``, ``pointer``, ``extra``) and in events must be
JSON-serializable: shared backends store them as JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import TracebackType
from typing import Any

from orchestrator.errors import InvalidInputError
from orchestrator.events import Event, EventType


class RunStatus(StrEnum):
    """The status of a run; values are Dagster's names verbatim."""

    QUEUED = "QUEUED"
    STARTING = "STARTING"
    STARTED = "STARTED"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELING = "CANCELING"
    CANCELED = "CANCELED"


TERMINAL_STATUSES: frozenset[RunStatus] = frozenset(
    {RunStatus.SUCCESS, RunStatus.FAILURE, RunStatus.CANCELED}
)

# Storing one of these run events moves the run to the given status (every backend uses this).
RUN_EVENT_STATUSES: Mapping[str, RunStatus] = {
    EventType.RUN_ENQUEUED.value: RunStatus.QUEUED,
    EventType.RUN_STARTING.value: RunStatus.STARTING,
    EventType.RUN_START.value: RunStatus.STARTED,
    EventType.RUN_SUCCESS.value: RunStatus.SUCCESS,
    EventType.RUN_FAILURE.value: RunStatus.FAILURE,
    EventType.RUN_CANCELING.value: RunStatus.CANCELING,
    EventType.RUN_CANCELED.value: RunStatus.CANCELED,
}


def status_for_event(event: Event) -> RunStatus | None:
    """Return the run status that storing ``event`` sets, or None if it sets none."""
    return RUN_EVENT_STATUSES.get(event.event_type_value)


@dataclass(frozen=True)
class RunRecord:
    """One run as stored.

    Attributes:
        run_id: unique id of the run.
        job_name: name of the job the run executes.
        status: where the run is in its life cycle.
        tags: run tags (string keys and values).
        run_config: the run config, as a raw dict.
        op_selection: the op selection query the run was launched with, or None for all ops.
        partition_key: the partition the run is for, if any.
        pointer: the JSON job pointer workers rebuild the job from, if the run has one.
        parent_run_id: the run this one re-executes, if any.
        root_run_id: the first run of a re-execution chain, if any.
        created_at: when the run was created (seconds since the epoch; 0 means "set on create").
        updated_at: when the record last changed.
        start_time: when the run reached STARTED.
        end_time: when the run reached a terminal status.
        extra: free JSON for executors (e.g. the serialized plan or input values).
    """

    run_id: str
    job_name: str
    status: RunStatus
    tags: Mapping[str, str]
    run_config: Mapping[str, Any]
    op_selection: tuple[str, ...] | None = None
    partition_key: str | None = None
    pointer: Mapping[str, Any] | None = None
    parent_run_id: str | None = None
    root_run_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    start_time: float | None = None
    end_time: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_finished(self) -> bool:
        """True once the run has reached SUCCESS, FAILURE or CANCELED."""
        return self.status in TERMINAL_STATUSES

    @property
    def dagster_run(self) -> RunRecord:
        """The record itself (Dagster's ``RunRecord.dagster_run`` alias)."""
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict that :meth:`from_dict` turns back into this record."""
        return {
            "run_id": self.run_id,
            "job_name": self.job_name,
            "status": self.status.value,
            "tags": dict(self.tags),
            "run_config": dict(self.run_config),
            "op_selection": list(self.op_selection) if self.op_selection is not None else None,
            "partition_key": self.partition_key,
            "pointer": dict(self.pointer) if self.pointer is not None else None,
            "parent_run_id": self.parent_run_id,
            "root_run_id": self.root_run_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """Build a record from :meth:`to_dict` output (missing optional keys take defaults)."""
        op_selection = data.get("op_selection")
        pointer = data.get("pointer")
        return cls(
            run_id=data["run_id"],
            job_name=data["job_name"],
            status=RunStatus(data["status"]),
            tags=dict(data.get("tags") or {}),
            run_config=dict(data.get("run_config") or {}),
            op_selection=tuple(op_selection) if op_selection is not None else None,
            partition_key=data.get("partition_key"),
            pointer=dict(pointer) if pointer is not None else None,
            parent_run_id=data.get("parent_run_id"),
            root_run_id=data.get("root_run_id"),
            created_at=float(data.get("created_at") or 0.0),
            updated_at=float(data.get("updated_at") or 0.0),
            start_time=data.get("start_time"),
            end_time=data.get("end_time"),
            extra=dict(data.get("extra") or {}),
        )


@dataclass(frozen=True)
class RunsFilter:
    """Selects runs: every given field must match; None means "any".

    Attributes:
        run_ids: the run's id is one of these.
        job_name: the run's job has this name.
        statuses: the run's status is one of these.
        tags: every given key is a tag of the run, with the given value.
    """

    run_ids: Sequence[str] | None = None
    job_name: str | None = None
    statuses: Sequence[RunStatus] | None = None
    tags: Mapping[str, str] | None = None

    def matches(self, record: RunRecord) -> bool:
        """Return True if ``record`` passes every condition of the filter."""
        if self.run_ids is not None and record.run_id not in self.run_ids:
            return False
        if self.job_name is not None and record.job_name != self.job_name:
            return False
        if self.statuses is not None and record.status not in self.statuses:
            return False
        return self.tags is None or all(
            record.tags.get(key) == value for key, value in self.tags.items()
        )


@dataclass(frozen=True)
class RunsPage:
    """One page of runs (see :meth:`Instance.runs_page`).

    Attributes:
        records: the page's runs, newest first.
        cursor: pass it back to :meth:`Instance.runs_page` for the next page; None when there
            are no more runs.
    """

    records: list[RunRecord]
    cursor: str | None


# Where a run sits in the order of pages: newest first, runs created at the same instant in
# descending run id order (the order of a Redis sorted set's members of equal score).
PagePosition = tuple[float, str]


def page_position(record: RunRecord) -> PagePosition:
    """The position of ``record`` in the order of :meth:`Instance.runs_page` (larger: earlier)."""
    return (record.created_at, record.run_id)


def encode_page_cursor(position: PagePosition) -> str:
    """An opaque, URL-safe cursor for the page that starts after ``position``."""
    text = json.dumps([position[0], position[1]], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_page_cursor(cursor: str | None) -> PagePosition | None:
    """The position a cursor of :func:`encode_page_cursor` names (None for no cursor).

    Raises:
        InvalidInputError: ``cursor`` was not made by :func:`encode_page_cursor`.
    """
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, run_id = json.loads(raw)
    except (TypeError, ValueError, binascii.Error):
        created_at = run_id = None
    if (
        isinstance(created_at, int | float)
        and not isinstance(created_at, bool)
        and math.isfinite(created_at)
        and isinstance(run_id, str)
    ):
        return (float(created_at), run_id)
    raise InvalidInputError(f"{cursor!r} is not a runs cursor of this backend")


def check_page_limit(limit: int) -> None:
    """Raise ``InvalidInputError`` unless ``limit`` is an integer >= 1."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInputError(f"limit must be an integer >= 1, got {limit!r}")


def check_limit(limit: int | None) -> None:
    """Raise ``InvalidInputError`` unless ``limit`` is None or a non-negative integer."""
    if limit is not None and limit < 0:
        raise InvalidInputError(f"limit must be None or >= 0, got {limit}")


def page_of(records: Sequence[RunRecord], limit: int) -> RunsPage:
    """The page of the first ``limit`` of ``records`` (sorted in page order, read one past
    the page when there are more, so the cursor is None exactly when nothing follows)."""
    page = list(records[:limit])
    more = len(records) > limit
    return RunsPage(page, encode_page_cursor(page_position(page[-1])) if more else None)


def normalized_record(record: RunRecord, now: float) -> RunRecord:
    """Return ``record`` as ``create_run`` stores it: own copies of its mappings, and
    ``created_at`` / ``updated_at`` set to ``now`` where they are 0."""
    return replace(
        record,
        status=RunStatus(record.status),
        tags=dict(record.tags),
        run_config=dict(record.run_config),
        op_selection=tuple(record.op_selection) if record.op_selection is not None else None,
        pointer=dict(record.pointer) if record.pointer is not None else None,
        created_at=record.created_at or now,
        updated_at=record.updated_at or now,
        extra=dict(record.extra),
    )


# Where a run that has not ended is in its life: a status never moves back to an earlier one
# (a late RUN_STARTING after RUN_START, or a coordinator starting a run being cancelled).
_PROGRESS: Mapping[RunStatus, int] = {
    RunStatus.QUEUED: 0,
    RunStatus.STARTING: 1,
    RunStatus.STARTED: 2,
    RunStatus.CANCELING: 3,
}


def status_change_allowed(current: RunStatus, new: RunStatus) -> bool:
    """Runs move forward only: a finished run keeps its status, and a run that has not ended
    never goes back (STARTED to STARTING, CANCELING to QUEUED, STARTING or STARTED)."""
    if current in TERMINAL_STATUSES:
        return new == current
    if new in TERMINAL_STATUSES:
        return True
    return _PROGRESS[new] >= _PROGRESS[current]


def updated_record(
    record: RunRecord,
    *,
    now: float,
    status: RunStatus | None = None,
    tags: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> RunRecord:
    """Apply an update to ``record`` (the rules of :meth:`Instance.update_run`) and return it.

    Args:
        record: the stored record.
        now: the time of the change: ``updated_at``, and ``start_time`` / ``end_time`` when the
            status reaches STARTED (if not started yet) or a terminal status.
        status: the new status, if it changes.
        tags: tags merged into the record's tags.
        extra: keys merged into the record's ``extra``.

    Returns:
        The new record.
    """
    changes: dict[str, Any] = {"updated_at": now}
    if status is not None and not status_change_allowed(record.status, RunStatus(status)):
        status = None  # a late event must not move a run back (or out of its end)
    if status is not None:
        status = RunStatus(status)
        changes["status"] = status
        if status is RunStatus.STARTED and record.start_time is None:
            changes["start_time"] = now
        if status in TERMINAL_STATUSES and record.status not in TERMINAL_STATUSES:
            changes["end_time"] = now
    if tags:
        changes["tags"] = {**record.tags, **tags}
    if extra:
        changes["extra"] = {**record.extra, **extra}
    return replace(record, **changes)


class Instance(ABC):
    """Stores runs and each run's event log.

    ``Instance.ephemeral()`` keeps everything in this process's memory. Instances are context
    managers: leaving the ``with`` block calls :meth:`close`. Every method is thread-safe.
    """

    # -- runs ------------------------------------------------------------------------------

    @abstractmethod
    def create_run(self, record: RunRecord) -> RunRecord:
        """Store a new run.

        Args:
            record: the run; ``created_at`` and ``updated_at`` are set to now where they are 0.

        Returns:
            The record as stored.

        Raises:
            InvalidInputError: a run with this id already exists.
        """

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord | None:
        """Return the run with id ``run_id``, or None if there is none."""

    @abstractmethod
    def get_runs(
        self, filters: RunsFilter | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        """Return the runs that match ``filters``, newest first.

        Args:
            filters: which runs; None for all.
            limit: at most this many runs; None for all.

        Returns:
            Runs sorted by ``created_at``, newest first; runs created at the same time come
            last-created first.

        Raises:
            InvalidInputError: ``limit`` is negative.
        """

    @abstractmethod
    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        tags: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """Change a stored run and set its ``updated_at`` to now.

        Args:
            run_id: the run.
            status: the new status. Reaching STARTED sets ``start_time`` (unless already set);
                reaching SUCCESS, FAILURE or CANCELED from another status sets ``end_time``.
            tags: merged into the run's tags (given keys replace existing ones).
            extra: merged into the run's ``extra``.

        Returns:
            The record as stored after the change.

        Raises:
            InvalidInputError: there is no run with this id.
        """

    @abstractmethod
    def delete_run(self, run_id: str) -> None:
        """Delete a run and its event log; does nothing if there is no such run."""

    def runs_page(
        self, filters: RunsFilter | None = None, limit: int = 50, cursor: str | None = None
    ) -> RunsPage:
        """Return one page of the runs that match ``filters``, newest first.

        Pages are stable while runs are added: a page starts right after the last run of the
        previous one, so paging with the returned cursors yields every matching run at most once
        and skips none that existed (and matched) throughout.

        Args:
            filters: which runs; None for all.
            limit: at most this many runs (>= 1).
            cursor: the ``cursor`` of the previous page; None for the first page.

        Returns:
            The page: runs sorted by ``created_at``, newest first (the order of
            :meth:`get_runs`, except that runs created at the same instant come in descending
            ``run_id`` order), and the cursor of the next page (None when there are no more).

        Raises:
            InvalidInputError: ``cursor`` is not a cursor of this backend, or ``limit`` < 1.
        """
        # The default reads every matching run: fine in memory; shared backends use indexes.
        check_page_limit(limit)
        after = decode_page_cursor(cursor)
        records = sorted(self.get_runs(filters), key=page_position, reverse=True)
        if after is not None:
            records = [r for r in records if page_position(r) < after]
        return page_of(records, limit)

    def count_runs_by_status(self, job_name: str | None = None) -> dict[RunStatus, int]:
        """Return how many runs there are in each status (every status, zeros included).

        Args:
            job_name: count only the runs of this job; None for all runs.
        """
        counts = dict.fromkeys(RunStatus, 0)
        for record in self.get_runs(RunsFilter(job_name=job_name)):
            counts[record.status] += 1
        return counts

    # -- events ----------------------------------------------------------------------------

    @abstractmethod
    def store_event(self, event: Event) -> str:
        """Append ``event`` to the log of run ``event.run_id``.

        A run event (see ``RUN_EVENT_STATUSES``) also sets the run's status, as
        :meth:`update_run` does, with the event's timestamp as the time of the change. Events of
        a run that has no record are stored all the same (no status to update).

        Returns:
            The event's cursor: opaque, increasing within the run's log; pass it as ``after``
            to read the events stored after this one.
        """

    @abstractmethod
    def get_events(
        self, run_id: str, after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, Event]]:
        """Return ``(cursor, event)`` pairs of a run's log, oldest first.

        Args:
            run_id: the run; an unknown run has no events.
            after: only events stored after the event with this cursor; None for all.
            limit: at most this many events (the oldest ones); None for all.

        Raises:
            InvalidInputError: ``after`` is not a cursor of this backend, or ``limit`` is
                negative.
        """

    @abstractmethod
    def wait_for_events(
        self,
        run_id: str,
        after: str | None,
        timeout: float,
        limit: int | None = None,
    ) -> list[tuple[str, Event]]:
        """Like :meth:`get_events`, but block until there is an event after ``after``.

        Returns at once if there are such events; otherwise waits (without polling) until one is
        stored or ``timeout`` seconds have passed.

        Returns:
            The new ``(cursor, event)`` pairs, oldest first; an empty list on timeout.

        Raises:
            InvalidInputError: ``after`` is not a cursor of this backend, or ``limit`` is
                negative.
        """

    # -- helpers ---------------------------------------------------------------------------

    def store_events(self, events: Sequence[Event]) -> list[str]:
        """Store several events in order (backends may batch the round trips)."""
        return [self.store_event(event) for event in events]

    def all_events(self, run_id: str) -> list[Event]:
        """Return every event of a run's log, oldest first."""
        return [event for _, event in self.get_events(run_id)]

    def get_run_ids(self, filters: RunsFilter | None = None, limit: int | None = None) -> list[str]:
        """Return the ids of the runs :meth:`get_runs` returns, in the same order."""
        return [record.run_id for record in self.get_runs(filters, limit)]

    @classmethod
    def ephemeral(cls) -> Instance:
        """Return a new instance that keeps runs and events in this process's memory."""
        # Imported here: the backend module imports this one.
        from orchestrator.storage.memory import InMemoryInstance

        return InMemoryInstance()

    @classmethod
    def from_url(cls, url: str, key_prefix: str | None = None) -> Instance:
        """Return an instance on the Redis server at ``url`` (``redis://``, ``rediss://`` for
        TLS, ``unix://``); keys start with ``key_prefix`` (default: the settings' prefix)."""
        from orchestrator.settings import get_settings
        from orchestrator.storage.redis import RedisInstance

        return RedisInstance.from_url(url, key_prefix or get_settings().key_prefix)

    @classmethod
    def from_settings(cls) -> Instance:
        """Return the deployment's shared instance: ``ORCHESTRATOR_REDIS_URL``, or the
        embedded Valkey server under ``ORCHESTRATOR_HOME`` (started if not running)."""
        from orchestrator.settings import get_settings

        settings = get_settings()
        return cls.from_url(settings.resolved_redis_url(), settings.key_prefix)

    def close(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Release connections and other resources; the instance is not used afterwards."""

    def __enter__(self) -> Instance:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
