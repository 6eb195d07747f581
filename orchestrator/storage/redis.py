"""The Redis instance: runs and event logs shared by every process and machine.

A run is one JSON string plus a small hash of the fields run events change (status, times);
its event log is a Redis stream, so readers block on ``XREAD`` instead of polling. An event
that changes the run's status is appended and applied in one script (``status_event.lua``,
the same rules as ``storage.base.updated_record``, which the contract tests hold every backend
to); other updates (tags, extra) are optimistic transactions (``WATCH``/``MULTI``). A launched
run is stored and queued in one script (``launch.lua``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis

from orchestrator import lua
from orchestrator.errors import InvalidInputError
from orchestrator.execution.events import Event
from orchestrator.redis_keys import RedisKeys
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
from orchestrator.storage.batch import current_batch

PLAN_TTL_SECONDS = 7 * 24 * 3600  # plans outlive their runs' re-execution window


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
        key = self.keys.run(record.run_id)
        if not self.client.set(key, _dump(record), nx=True):
            raise InvalidInputError(f"a run with id {record.run_id!r} already exists")
        seq = self.client.incr(self.keys.seq)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.runs_seq, record.run_id, seq)
        pipe.zadd(self.keys.runs, {record.run_id: record.created_at})
        pipe.execute()
        return record

    def get_run(self, run_id: str) -> RunRecord | None:
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.keys.run(run_id))
        pipe.hgetall(self.keys.run_state(run_id))
        text, state = pipe.execute()
        return _load(str(text), state) if text else None

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
                    record = change(_load(text, pipe.hgetall(state_key)))  # type: ignore[arg-type]
                    pipe.multi()
                    pipe.set(key, _dump(record))
                    pipe.hset(state_key, mapping=_state_of(record))
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
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(
            self.keys.run(run_id), self.keys.run_state(run_id), self.keys.run_events(run_id)
        )
        pipe.zrem(self.keys.runs, run_id)
        pipe.hdel(self.keys.runs_seq, run_id)
        pipe.execute()

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
        script = lua.script(self.client, "orchestrator.storage", "launch")
        rank = script(
            keys=[
                keys.run(run_id),
                keys.runs,
                keys.runs_seq,
                keys.seq,
                keys.run_events(run_id),
                keys.plan(digest),
                keys.run_plan(run_id),
                keys.run_queue,
                keys.run_wakeup,
            ],
            args=[
                _dump(record),
                run_id,
                record.created_at,
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
        keys = [self.keys.run(event.run_id), self.keys.run_state(event.run_id), stream]
        return script(keys=keys, args=[text, status.value, repr(event.timestamp)], client=client)

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
