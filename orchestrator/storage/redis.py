"""The Redis instance: runs and event logs shared by every process and machine.

A run is one JSON string plus a small hash of the fields run events change (status, times);
its event log is a Redis stream, so readers block on ``XREAD`` instead of polling. An event
that changes the run's status is appended and applied in one script (``status_event.lua``,
the same rules as ``storage.base.updated_record``, which the contract tests hold every backend
to); other updates (tags, extra) are optimistic transactions (``WATCH``/``MULTI``). A launched
run is stored and queued in one script (``launch.lua``).

Runs are listed through indexes: ``<p>:runs`` (every run), one sorted set per status and one per
job, all scored by ``created_at``. Every write keeps them exact (``create.lua``, ``launch.lua``,
``status_event.lua``, the ``update_run`` transaction, ``delete_run``), so a page of runs or the
count of runs per status reads what the page needs, not every run. Runs stored before the
indexes existed are added once by :meth:`RedisInstance.ensure_run_indexes`.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import redis

from orchestrator import lua
from orchestrator.errors import InvalidInputError
from orchestrator.events import Event
from orchestrator.redis_keys import RedisKeys
from orchestrator.storage.base import (
    TERMINAL_STATUSES,
    Instance,
    PagePosition,
    RunRecord,
    RunsFilter,
    RunsPage,
    RunStatus,
    check_limit,
    check_page_limit,
    decode_page_cursor,
    encode_page_cursor,
    normalized_record,
    status_for_event,
    updated_record,
)
from orchestrator.storage.batch import current_batch

PLAN_TTL_SECONDS = 7 * 24 * 3600  # plans outlive their runs' re-execution window
FEED_LENGTH = 10_000  # entries the runs feed keeps (about; readers further behind resync)
INDEX_BATCH = 200  # runs added to the indexes per transaction by ensure_run_indexes
# Version of the run indexes (``<p>:runs:indexed``): "2" added the tag indexes, so a store
# indexed by an older release gets them on first use.
INDEX_VERSION = "2"


def _dump(record: RunRecord) -> str:
    return json.dumps(record.to_dict(), sort_keys=True)


_STATE_FIELDS = ("status", "updated_at", "start_time", "end_time")


def _load(text: str, state: Mapping[str, str] | None = None) -> RunRecord:
    """A record from its JSON and its state hash (which overrides what run events changed)."""
    data = json.loads(text)
    if state:
        for name in _STATE_FIELDS:
            if name in state:
                data[name] = state[name] if name == "status" else float(state[name])
    return RunRecord.from_dict(data)


def _state_of(record: RunRecord) -> dict[Any, Any]:
    state: dict[Any, Any] = {"status": record.status.value, "updated_at": repr(record.updated_at)}
    if record.start_time is not None:
        state["start_time"] = repr(record.start_time)
    if record.end_time is not None:
        state["end_time"] = repr(record.end_time)
    return state


def _create_args(record: RunRecord) -> list[str]:
    """ARGV[1..5] of the scripts that store a new run (``_create.lua``)."""
    return [
        _dump(record),
        record.run_id,
        repr(record.created_at),
        record.parent_run_id or "",
        record.status.value,
    ]


def _scored(rows: Any) -> list[PagePosition]:
    """``(score, member)`` pairs of a ``WITHSCORES`` reply of ``(member, score)`` pairs."""
    return [(float(score), str(member)) for member, score in rows]


def _after_id(cursor: str | None) -> str:
    if cursor is None:
        return "0-0"
    ms, _, seq = cursor.partition("-")
    if not (ms.isdigit() and seq.isdigit()):
        raise InvalidInputError(f"{cursor!r} is not an event cursor of the Redis instance")
    return cursor


class RedisInstance(Instance):
    """Runs and event logs in Redis.

    Args:
        client: a redis-py client (``decode_responses=True``).
        key_prefix: prefix of every key (``ORCHESTRATOR_KEY_PREFIX``).
        clock: time source for ``created_at``/``updated_at`` (tests may inject one).
    """

    def __init__(
        self,
        client: redis.Redis,
        key_prefix: str = "orchestrator",
        clock: Callable[[], float] = time.time,
    ):
        self.client = client
        self.keys = RedisKeys(key_prefix)
        self._clock = clock
        self.url: str | None = None  # set by from_url (processes started from here reuse it)
        # True once this instance has seen the run indexes complete (ensure_run_indexes).
        self._indexed = False
        self._index_lock = threading.Lock()

    @classmethod
    def from_url(
        cls, url: str, key_prefix: str | None = None, patience: float | None = None
    ) -> RedisInstance:
        """A Redis instance for ``url`` (``redis://``, ``rediss://`` for TLS, ``unix://``).

        Args:
            patience: seconds a command rides out an outage before it raises (None: as long
                as it takes; see ``orchestrator.redis_client``).
        """
        from orchestrator.redis_client import connect

        client = connect(url, patience)
        instance = cls(client, key_prefix or "orchestrator")
        instance.url = url
        return instance

    # -- runs ------------------------------------------------------------------------------

    def create_run(self, record: RunRecord) -> RunRecord:
        record = normalized_record(record, self._clock())
        script = lua.script(self.client, "orchestrator.storage", "create", lib="_create")
        keys = [*self._create_keys(record), *self._tag_indexes(record.tags)]
        if script(keys=keys, args=_create_args(record)) is None:
            raise InvalidInputError(f"a run with id {record.run_id!r} already exists")
        return record

    def _create_keys(self, record: RunRecord) -> list[str]:
        """KEYS[1..8] of the scripts that store a new run (``_create.lua``)."""
        keys = self.keys
        return [
            keys.run(record.run_id),
            keys.runs,
            keys.runs_seq,
            keys.seq,
            keys.runs_by_status(record.status.value),
            keys.runs_by_job(record.job_name),
            keys.runs_feed,
            keys.run_children(record.parent_run_id or record.run_id),
        ]

    def _tag_indexes(self, tags: Mapping[str, str]) -> list[str]:
        """The index keys of the runs with each of ``tags``."""
        return [self.keys.runs_by_tag(key, value) for key, value in sorted(tags.items())]

    def get_run(self, run_id: str) -> RunRecord | None:
        return self._load_many([run_id])[0]

    def _load_many(self, run_ids: Sequence[str]) -> list[RunRecord | None]:
        """The records of ``run_ids`` (None where there is none), in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.get(self.keys.run(run_id))
            pipe.hgetall(self.keys.run_state(run_id))
        replies = pipe.execute() if run_ids else []
        return [
            _load(str(text), state) if text else None
            for text, state in zip(replies[0::2], replies[1::2], strict=True)
        ]

    def get_runs(
        self, filters: RunsFilter | None = None, limit: int | None = None
    ) -> list[RunRecord]:
        check_limit(limit)
        if filters is not None and filters.run_ids is not None:
            ids = list(dict.fromkeys(filters.run_ids))
        else:
            ids = [str(i) for i in self.client.zrange(self.keys.runs, 0, -1)]
        if not ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for run_id in ids:
            pipe.get(self.keys.run(run_id))
            pipe.hgetall(self.keys.run_state(run_id))
        pipe.hmget(self.keys.runs_seq, ids)
        *replies, seqs = pipe.execute()
        rows = []
        for text, state, seq in zip(replies[0::2], replies[1::2], seqs, strict=True):
            if text:
                record = _load(text, state)
                if filters is None or filters.matches(record):
                    rows.append((record.created_at, int(seq or 0), record))
        rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
        records = [r[2] for r in rows]
        return records if limit is None else records[:limit]

    def _transact(self, run_id: str, change: Callable[[RunRecord], RunRecord]) -> RunRecord | None:
        """Read-modify-write a run record (JSON and state) atomically; returns the new one."""
        key, state_key = self.keys.run(run_id), self.keys.run_state(run_id)
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key, state_key)
                    text = pipe.get(key)
                    if not text:
                        pipe.unwatch()
                        return None
                    old = _load(text, pipe.hgetall(state_key))  # type: ignore[arg-type]
                    record = change(old)
                    pipe.multi()
                    pipe.set(key, _dump(record))
                    pipe.hset(state_key, mapping=_state_of(record))
                    if record.tags != old.tags:
                        was = set(self._tag_indexes(old.tags))
                        now = set(self._tag_indexes(record.tags))
                        for index in was - now:
                            pipe.zrem(index, run_id)
                        for index in now - was:
                            pipe.zadd(index, {run_id: record.created_at})
                    if record.status != old.status:
                        pipe.zrem(self.keys.runs_by_status(old.status.value), run_id)
                        pipe.zadd(
                            self.keys.runs_by_status(record.status.value),
                            {run_id: record.created_at},
                        )
                        pipe.xadd(
                            self.keys.runs_feed,
                            {"r": run_id, "s": record.status.value},
                            maxlen=FEED_LENGTH,
                            approximate=True,
                        )
                    pipe.execute()
                    return record
                except redis.WatchError:
                    continue

    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        tags: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        now = self._clock()
        done = self._transact(
            run_id, lambda r: updated_record(r, now=now, status=status, tags=tags, extra=extra)
        )
        if done is None:
            raise InvalidInputError(f"there is no run with id {run_id!r}")
        return done

    def delete_run(self, run_id: str) -> None:
        text = self.client.get(self.keys.run(run_id))  # its job names its job index
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(
            self.keys.run(run_id), self.keys.run_state(run_id), self.keys.run_events(run_id)
        )
        pipe.zrem(self.keys.runs, run_id)
        pipe.hdel(self.keys.runs_seq, run_id)
        for index in self._status_indexes():
            pipe.zrem(index, run_id)
        pipe.delete(self.keys.run_children(run_id))
        if text:
            data = json.loads(str(text))
            pipe.zrem(self.keys.runs_by_job(data["job_name"]), run_id)
            for index in self._tag_indexes(data.get("tags") or {}):
                pipe.zrem(index, run_id)
            if data.get("parent_run_id"):
                pipe.zrem(self.keys.run_children(data["parent_run_id"]), run_id)
        pipe.execute()

    def _status_indexes(self) -> list[str]:
        """The index key of every status, in ``RunStatus`` order."""
        return [self.keys.runs_by_status(status.value) for status in RunStatus]

    def create_launched_run(
        self, record: RunRecord, plan_json: str, enqueued: Event, priority: int
    ) -> RunRecord:
        """Store a run, its plan and its RUN_ENQUEUED event and put it on the run queue, in one
        step (``launch.lua``): a launched run is never half stored.

        Raises:
            InvalidInputError: a run with this id exists already.
        """
        record = normalized_record(record, self._clock())
        digest = hashlib.sha1(plan_json.encode()).hexdigest()
        keys = self.keys
        run_id = record.run_id
        script = lua.script(self.client, "orchestrator.storage", "launch", lib="_create")
        rank = script(
            keys=[
                *self._create_keys(record),
                keys.run_events(run_id),
                keys.plan(digest),
                keys.run_plan(run_id),
                keys.run_queue,
                keys.run_wakeup,
                *self._tag_indexes(record.tags),
            ],
            args=[
                *_create_args(record),
                json.dumps(enqueued.to_dict()),
                plan_json,
                digest,
                PLAN_TTL_SECONDS,
                int(priority),
            ],
        )
        if rank is None:
            raise InvalidInputError(f"a run with id {run_id!r} already exists")
        return record

    def run_to_drive(
        self, run_id: str
    ) -> tuple[RunRecord | None, list[tuple[str, Event]], str | None]:
        """What a coordinator reads to drive a run, in one round trip: the record, the whole
        event log, and the run's plan link (a digest for :meth:`plan_json_by_digest`; the plan
        JSON itself for runs stored before plans were shared; None: no stored plan)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.keys.run(run_id))
        pipe.hgetall(self.keys.run_state(run_id))
        pipe.xrange(self.keys.run_events(run_id))
        pipe.get(self.keys.run_plan(run_id))
        text, state, entries, plan = pipe.execute()
        record = _load(str(text), state) if text else None
        return record, self._decode(entries), str(plan) if plan else None

    # -- listing through the indexes ------------------------------------------------------

    def runs_page(
        self, filters: RunsFilter | None = None, limit: int = 50, cursor: str | None = None
    ) -> RunsPage:
        """See :meth:`Instance.runs_page`. Walks the smallest index that serves the filter
        (the statuses' indexes, the job's, or ``<p>:runs``) newest first, in chunks, loads the
        records it meets and applies the whole filter; a filter the index serves entirely
        reads about ``limit`` records."""
        check_page_limit(limit)
        after = decode_page_cursor(cursor)
        filters = filters or RunsFilter()
        if filters.run_ids is not None:  # the ids are the index: read just those runs
            return super().runs_page(filters, limit, cursor)
        self._ensure_indexed()
        sources, exact = self._page_sources(filters)
        chunk = max(limit * 2, 100)
        positions = self._walk(sources, after, chunk)
        found: list[tuple[PagePosition, RunRecord]] = []
        while len(found) <= limit:  # one past the page: is there a next one?
            # All runs of an exact index match (but for concurrent changes): load no more
            # than the page needs; otherwise a chunk at a time.
            batch = list(itertools.islice(positions, limit + 1 - len(found) if exact else chunk))
            if not batch:
                break
            records = self._load_many([run_id for _, run_id in batch])
            found.extend(
                (position, record)
                for position, record in zip(batch, records, strict=True)
                if record is not None and filters.matches(record)
            )
        page = found[:limit]
        more = len(found) > limit
        return RunsPage([r for _, r in page], encode_page_cursor(page[-1][0]) if more else None)

    def _page_sources(self, filters: RunsFilter) -> tuple[list[str], bool]:
        """The indexes to walk for ``filters`` (their union; none: nothing matches), and
        whether every run in them matches (no condition left to check on the records).

        Each condition has its index: the union of the wanted statuses' indexes, the job's,
        and one per tag; the smallest serves the page, and the records it meets are checked
        against the others."""
        statuses = (
            None if filters.statuses is None else [s for s in RunStatus if s in filters.statuses]
        )
        if statuses is not None and not statuses:
            return [], True
        if statuses is not None and len(statuses) == len(RunStatus):
            statuses = None  # every status: no condition
        conditions: list[list[str]] = []
        if statuses is not None:
            conditions.append([self.keys.runs_by_status(s.value) for s in statuses])
        if filters.job_name is not None:
            conditions.append([self.keys.runs_by_job(filters.job_name)])
        conditions += [[key] for key in self._tag_indexes(filters.tags or {})]
        if not conditions:
            return [self.keys.runs], True
        if len(conditions) == 1:
            return conditions[0], True
        pipe = self.client.pipeline(transaction=False)
        for keys in conditions:
            for key in keys:
                pipe.zcard(key)
        sizes = iter(pipe.execute())
        totals = [sum(next(sizes) for _ in keys) for keys in conditions]
        return conditions[totals.index(min(totals))], False

    def _walk(
        self, keys: Sequence[str], after: PagePosition | None, chunk: int
    ) -> Iterator[PagePosition]:
        """The positions of the runs in the union of the indexes ``keys`` that come after
        ``after`` in page order (newest first, equal scores by run id descending)."""
        walks = [self._walk_one(key, after, chunk) for key in keys]
        merged = walks[0] if len(walks) == 1 else heapq.merge(*walks, reverse=True)
        last = None
        for position in merged:
            if position != last:  # a run that changed status during the walk: once
                yield position
            last = position

    def _walk_one(self, key: str, after: PagePosition | None, chunk: int) -> Iterator[PagePosition]:
        """:meth:`_walk` of one index: ``chunk`` members per ZREVRANGEBYSCORE."""
        top = "+inf" if after is None else repr(after[0])  # inclusive: ties of `after` remain
        while True:
            positions = _scored(
                self.client.zrevrangebyscore(key, top, "-inf", start=0, num=chunk, withscores=True)
            )
            if after is not None and len(positions) == chunk and positions[-1][0] == after[0]:
                # A whole chunk of runs created at the same instant as `after`: read that
                # instant's runs at once rather than again with every chunk, then go below it.
                at = repr(after[0])
                group = _scored(self.client.zrevrangebyscore(key, at, at, withscores=True))
                yield from (p for p in group if p < after)
                top, after = f"({at}", (after[0], "")
                continue
            yield from (p for p in positions if after is None or p < after)
            if len(positions) < chunk:
                return
            after = positions[-1]
            top = repr(after[0])

    def count_runs_by_status(self, job_name: str | None = None) -> dict[RunStatus, int]:
        """See :meth:`Instance.count_runs_by_status`: the sizes of the status indexes (with a
        job: of their intersections with the job's index, ZINTERCARD, Redis 7), in one round
        trip."""
        self._ensure_indexed()
        pipe = self.client.pipeline(transaction=False)
        for index in self._status_indexes():
            if job_name is None:
                pipe.zcard(index)
            else:
                pipe.zintercard(2, [index, self.keys.runs_by_job(job_name)])
        return {s: int(n) for s, n in zip(RunStatus, pipe.execute(), strict=True)}

    def ensure_run_indexes(self) -> int:
        """Add the runs stored before the run indexes existed to them, once per store.

        Guarded by ``<p>:runs:indexed`` (``INDEX_VERSION`` once done): new writes index their
        runs, so the indexes stay exact afterwards. Each batch of runs is indexed in a
        transaction that watches the runs, so a run changed or deleted meanwhile is indexed as
        it now is.
        Deleting ``<p>:runs:indexed`` makes the next call repair the indexes: each run is put
        in its own status's index only, and runs no longer stored leave the status indexes and
        the job and tag indexes of stored runs.

        Returns:
            How many runs were indexed; 0 when the indexes were complete already.
        """
        if self.client.get(self.keys.runs_indexed) == INDEX_VERSION:
            return 0
        entries = _scored(self.client.zrange(self.keys.runs, 0, -1, withscores=True))
        records: list[RunRecord] = []
        for start in range(0, len(entries), INDEX_BATCH):
            records += self._index_runs(entries[start : start + INDEX_BATCH])
        pipe = self.client.pipeline(transaction=False)
        jobs = {record.job_name for record in records}
        tagged = {index for record in records for index in self._tag_indexes(record.tags)}
        for index in [
            *self._status_indexes(),
            *map(self.keys.runs_by_job, sorted(jobs)),
            *sorted(tagged),
        ]:
            # Keep the members that are runs (in <p>:runs), with their own scores.
            pipe.zinterstore(index, {index: 1, self.keys.runs: 0})
        pipe.set(self.keys.runs_indexed, INDEX_VERSION)
        pipe.execute()
        return len(records)

    def _index_runs(self, entries: Sequence[PagePosition]) -> list[RunRecord]:
        """Put each ``(created_at, run_id)`` run in its status's and its job's index (and in
        no other status's); returns the records of the runs that exist."""
        watched = [key for _, run_id in entries for key in self._record_keys(run_id)]
        with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(*watched)
                    # Read on another connection, after WATCH: a change from here on fails
                    # the EXEC below, and the batch is read again.
                    records = self._load_many([run_id for _, run_id in entries])
                    pipe.multi()
                    for (score, run_id), record in zip(entries, records, strict=True):
                        if record is None:
                            continue
                        for status, index in zip(RunStatus, self._status_indexes(), strict=True):
                            if status != record.status:
                                pipe.zrem(index, run_id)
                        pipe.zadd(self.keys.runs_by_status(record.status.value), {run_id: score})
                        pipe.zadd(self.keys.runs_by_job(record.job_name), {run_id: score})
                        for index in self._tag_indexes(record.tags):
                            pipe.zadd(index, {run_id: score})
                    pipe.execute()
                    return [record for record in records if record is not None]
                except redis.WatchError:
                    continue

    def _record_keys(self, run_id: str) -> tuple[str, str]:
        return self.keys.run(run_id), self.keys.run_state(run_id)

    def _ensure_indexed(self) -> None:
        """Run :meth:`ensure_run_indexes` the first time this instance lists runs."""
        if self._indexed:
            return
        with self._index_lock:
            if not self._indexed:
                self.ensure_run_indexes()
                self._indexed = True

    # -- plans -----------------------------------------------------------------------------

    def store_plan(self, run_id: str, plan_json: str, pipe: Any = None) -> str:
        """Store a run's plan (by digest, so runs with the same plan share one copy) and link
        the run to it; returns the digest. With ``pipe``, the commands are queued there."""
        digest = hashlib.sha1(plan_json.encode()).hexdigest()
        target = pipe if pipe is not None else self.client.pipeline(transaction=False)
        target.set(self.keys.plan(digest), plan_json, ex=PLAN_TTL_SECONDS)
        target.set(self.keys.run_plan(run_id), digest, ex=PLAN_TTL_SECONDS)
        if pipe is None:
            target.execute()
        return digest

    def plan_json(self, run_id: str) -> str | None:
        """The stored plan of a run (None: it has none, e.g. it was never launched)."""
        value = self.client.get(self.keys.run_plan(run_id))
        if not value or str(value).startswith("{"):
            return str(value) if value else None
        return self.plan_json_by_digest(str(value))

    def plan_json_by_digest(self, digest: str) -> str | None:
        value = self.client.get(self.keys.plan(digest))
        return str(value) if value else None

    # -- runs feed and lineage ---------------------------------------------------------------

    def child_run_ids(self, run_id: str, limit: int = 100) -> list[str]:
        """The runs that re-execute ``run_id``, newest first (at most ``limit``)."""
        ids = self.client.zrevrange(self.keys.run_children(run_id), 0, max(0, limit - 1))
        return [str(i) for i in ids]

    def _changes(self, entries: Any) -> list[dict[str, Any]]:
        rows = [(str(entry_id), fields) for entry_id, fields in entries]
        records = self._load_many([f.get("r", "") for _, f in rows]) if rows else []
        return [
            {
                "id": entry_id,
                "run_id": fields.get("r"),
                "status": fields.get("s"),
                "job_name": record.job_name if record is not None else None,
                "ended": fields.get("s") in {s.value for s in TERMINAL_STATUSES},
            }
            for (entry_id, fields), record in zip(rows, records, strict=True)
        ]

    def run_changes_after(self, cursor: str, limit: int = 500) -> list[dict[str, Any]]:
        """Run changes (created, or status changed) after feed id ``cursor``, oldest first:
        ``{id, run_id, status, job_name, ended}``."""
        start = _after_id(cursor)
        try:
            entries = self.client.xrange(self.keys.runs_feed, min=f"({start}", count=limit)
        except redis.ResponseError as exc:
            raise InvalidInputError(f"bad feed cursor {cursor!r}: {exc}") from exc
        return self._changes(entries)

    def wait_for_run_changes(
        self, cursor: str, timeout: float, limit: int = 500
    ) -> tuple[str, list[dict[str, Any]]]:
        """Block until there are run changes after ``cursor`` (a feed id, or ``$`` for "from
        now"), or ``timeout`` seconds pass. Returns the cursor to pass next and the changes."""
        from orchestrator.redis_client import MAX_BLOCK_SECONDS

        if cursor == "$":
            last = self.client.xrevrange(self.keys.runs_feed, count=1)
            cursor = str(last[0][0]) if last else "0-0"
        block = max(1, int(min(timeout, MAX_BLOCK_SECONDS) * 1000))
        try:
            reply: Any = self.client.xread(
                {self.keys.runs_feed: _after_id(cursor)}, count=limit, block=block
            )
        except redis.ResponseError as exc:
            raise InvalidInputError(f"bad feed cursor {cursor!r}: {exc}") from exc
        if not reply:
            return cursor, []
        entries: list[Any] = reply[0][1]
        return str(entries[-1][0]), self._changes(entries)

    # -- events ----------------------------------------------------------------------------

    def store_event(self, event: Event) -> str:
        return str(self._queue_event(self.client, event))

    def _queue_event(self, client: Any, event: Event) -> Any:
        """Append ``event`` (with ``client``: a client, or a pipeline to queue it on)."""
        stream = self.keys.run_events(event.run_id)
        text = json.dumps(event.to_dict())
        status = status_for_event(event)
        if status is None:
            return client.xadd(stream, {"e": text})
        script = lua.script(self.client, "orchestrator.storage", "status_event")
        run_id = event.run_id
        keys = [
            self.keys.run(run_id),
            self.keys.run_state(run_id),
            stream,
            self.keys.runs,
            *self._status_indexes(),
            self.keys.runs_feed,
        ]
        args = [text, status.value, repr(event.timestamp), run_id, *(s.value for s in RunStatus)]
        return script(keys=keys, args=args, client=client)

    def store_events(self, events: Sequence[Event]) -> list[str]:
        """One round trip for many events. Inside a write batch of this thread (a coordinator's
        scheduler pass, ``storage.batch``) they are queued for its end and no ids are
        returned."""
        events = list(events)
        batch = current_batch()
        if batch is not None and batch.client is self.client:

            def queue(pipe: Any) -> None:
                for event in events:
                    self._queue_event(pipe, event)

            batch.redis(queue)
            return []
        if len(events) == 1:
            return [self.store_event(events[0])]
        pipe = self.client.pipeline(transaction=False)
        for event in events:
            self._queue_event(pipe, event)
        return [str(entry_id) for entry_id in pipe.execute()]

    @staticmethod
    def _decode(entries: Any) -> list[tuple[str, Event]]:
        return [
            (entry_id, Event.from_dict(json.loads(fields["e"]))) for entry_id, fields in entries
        ]

    def get_events(
        self, run_id: str, after: str | None = None, limit: int | None = None
    ) -> list[tuple[str, Event]]:
        check_limit(limit)
        if limit == 0:
            return []
        start = _after_id(after)
        try:
            entries = self.client.xrange(self.keys.run_events(run_id), min=f"({start}", count=limit)
        except redis.ResponseError as exc:
            raise InvalidInputError(f"bad event cursor {after!r}: {exc}") from exc
        return self._decode(entries)

    def wait_for_events(
        self, run_id: str, after: str | None, timeout: float, limit: int | None = None
    ) -> list[tuple[str, Event]]:
        if timeout <= 0 or limit == 0:
            return self.get_events(run_id, after, limit)
        check_limit(limit)
        from orchestrator.redis_client import MAX_BLOCK_SECONDS

        stream = self.keys.run_events(run_id)
        deadline = time.monotonic() + timeout
        while True:  # blocks of at most MAX_BLOCK_SECONDS (see orchestrator.redis_client)
            block = min(deadline - time.monotonic(), MAX_BLOCK_SECONDS)
            if block <= 0:
                return []
            try:  # XREAD returns at once when entries are there
                reply = self.client.xread(
                    {stream: _after_id(after)}, count=limit, block=max(1, int(block * 1000))
                )
            except redis.ResponseError as exc:
                raise InvalidInputError(f"bad event cursor {after!r}: {exc}") from exc
            if reply:
                return self._decode(reply[0][1])  # type: ignore[index]

    def close(self) -> None:
        services = getattr(self, "_services", None)
        if services is not None:
            services.close()
        self.client.close()
