"""The cross-run limiter in process memory: :class:`MemoryLimiter`, the twin of
:class:`~orchestrator.concurrency.redis.RedisLimiter` for fast tests (SPEC §5).

It has the Redis limiter's operations, return values and rules (see
``concurrency/limiter.py``); the Lua scripts in ``concurrency/lua`` are the reference, and each
method here does what its script does, in the same order: purge the expired leases, change
the lease, then grant every waiter that can be granted. ``tests/test_limiter_contract.py``
holds both to the same tests. Where having no server makes it differ:

- The state lives in this object, for the threads of one process, behind one lock: each
  method is atomic, as each script is.
- Time is the injected ``clock`` (seconds since the epoch by default), read once per
  operation and counted in whole milliseconds, as the scripts count Redis ``TIME``. A test
  moves the clock instead of sleeping.
- A grant announced to its run (a waiter granted by another call) goes to the ``notify``
  callback as ``(run_id, event)``: the same engine-event dict the scripts append to the run's
  event stream (there is no stream and no bell to ring). Callbacks run after the lock is
  released, in grant order within one operation.
- The ``queue_*`` methods queue on a :class:`MemoryPipeline` instead of a Redis pipeline.
- Limit definitions are not cached: :meth:`MemoryLimiter.buckets_for` sees a new limit at
  once (the Redis limiter caches them for ``limits_ttl`` seconds, for other processes' changes).
"""

from __future__ import annotations

import math
import threading
import time
from bisect import insort
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from orchestrator.concurrency.config import TagConcurrencyLimit
from orchestrator.concurrency.limiter import (
    GONE,
    NOT_OWNER,
    RENEWED,
    SLOT_GRANTED,
    BucketState,
    LeaseInfo,
    Limiter,
    LimitState,
    buckets_of,
    check_settable,
    clamp_priority,
    group_by_limit,
    limit_spec,
    spec_for,
)

Notify = Callable[[str, dict[str, Any]], None]
"""Receives ``(run_id, event)`` for each grant announced to a run."""

_ARRIVAL_SPAN = 1 << 40  # rank = -priority * 2^40 + arrival, as acquire.lua


class MemoryPipeline:
    """What :class:`MemoryLimiter`'s ``queue_*`` methods queue on, in place of a Redis pipeline
    (``transaction=False``): nothing happens until :meth:`execute`, which runs the queued
    operations in order, each atomic on its own, and returns their replies in order (one per
    released lease, one per renewed lease, one per sweep), as Redis does."""

    def __init__(self) -> None:
        self._ops: list[Callable[[], int]] = []

    def __len__(self) -> int:
        return len(self._ops)

    def queue(self, op: Callable[[], int]) -> None:
        """Add an operation; its reply comes back from :meth:`execute`."""
        self._ops.append(op)

    def execute(self) -> list[int]:
        """Run the queued operations and empty the pipeline. Returns their replies."""
        ops, self._ops = self._ops, []
        return [op() for op in ops]


@dataclass
class _Lease:
    """A lease's fields, as the ``lease:<id>`` hash of ``_lib.lua`` (times in ms)."""

    run_id: str
    step_key: str
    attempt: int
    worker: str  # who renews it
    buckets: tuple[str, ...]
    priority: int
    rank: int  # place in line: -priority * 2^40 + arrival (low first)
    ttl: int  # lease time, ms
    queued: int  # when it asked
    since: int  # when granted (while waiting: when it asked)
    expiry: int  # when it lapses
    state: str = "waiting"  # or "held"
    token: int = 0  # fencing token of the grant (0 while waiting)

    def info(self, lease_id: str) -> LeaseInfo:
        return LeaseInfo(
            lease_id=lease_id,
            run_id=self.run_id,
            step_key=self.step_key,
            attempt=self.attempt,
            worker=self.worker,
            state=self.state,
            buckets=self.buckets,
            priority=self.priority,
            token=self.token,
            queued=self.queued / 1000,
            since=self.since / 1000,
            expires=self.expiry / 1000,
        )


@dataclass
class _Op:
    """One atomic operation: its time, and the grants it announces once it is over."""

    now_ms: int
    now_s: float
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def grant_event(lease_id: str, lease: _Lease, now_s: float) -> dict[str, Any]:
    """The ``slot_granted`` engine event of a grant (the dict ``_lib.lua``'s notify writes)."""
    return {
        "event_type_value": "ENGINE_EVENT",
        "run_id": lease.run_id,
        "timestamp": now_s,
        "step_key": lease.step_key,
        "message": (
            f"Concurrency slot granted to step '{lease.step_key}' (attempt {lease.attempt}) "
            f"for {', '.join(lease.buckets)} (fencing token {lease.token})"
        ),
        "data": {
            "kind": SLOT_GRANTED,
            "attempt": lease.attempt,
            "attempt_id": lease_id,
            "token": lease.token,
        },
    }


class MemoryLimiter(Limiter):
    """Cross-run tag concurrency limits held in this process (see the module docstring).

    Args:
        lease_ttl: seconds a lease lives unless renewed.
        clock: seconds since the epoch (default :func:`time.time`); tests pass a clock they
            move by hand.
        notify: receives ``(run_id, slot_granted event)`` for each grant announced to a run.
    """

    def __init__(
        self,
        lease_ttl: float = 30.0,
        clock: Callable[[], float] = time.time,
        notify: Notify | None = None,
    ):
        super().__init__(lease_ttl)
        self.clock = clock
        self.notify = notify
        self._lock = threading.Lock()
        self._defs: dict[str, TagConcurrencyLimit] = {}  # spec -> definition
        self._leases: dict[str, _Lease] = {}  # lease id -> lease
        self._holders: dict[str, dict[str, None]] = {}  # bucket -> holders (never empty)
        self._waiters: dict[str, list[tuple[int, str]]] = {}  # bucket -> sorted (rank, id)
        self._runs: dict[str, set[str]] = {}  # run id -> its lease ids (never empty)
        self._arrival = 0  # counter behind waiter ranks
        self._fence = 0  # counter of fencing tokens

    # -- limit definitions ----------------------------------------------------------------

    def set_limit(self, limit: TagConcurrencyLimit) -> None:
        check_settable(limit)
        with self._op() as op:
            self._defs[limit_spec(limit)] = TagConcurrencyLimit.model_validate(
                limit.model_dump(mode="json")
            )
            self._sweep(op)

    def delete_limit(self, key: str, value: str | Mapping[str, bool] | None = None) -> bool:
        with self._op() as op:
            removed = self._defs.pop(spec_for(key, value), None) is not None
            if removed:
                self._sweep(op)
            return removed

    def list_limits(self) -> list[TagConcurrencyLimit]:
        with self._lock:
            return self._sorted_defs()

    def buckets_for(self, tags: Mapping[str, str]) -> list[tuple[str, int]]:
        with self._lock:
            return buckets_of(self._sorted_defs(), tags)

    # -- leases ---------------------------------------------------------------------------

    def acquire(
        self,
        lease_id: str,
        run_id: str,
        step_key: str,
        attempt: int,
        tags: Mapping[str, str],
        priority: int = 0,
        worker: str = "",
        ttl: float | None = None,
    ) -> int | None:
        prio = clamp_priority(priority)
        ttl_ms = self._ttl_ms(ttl)
        with self._op() as op:
            buckets = tuple(b for b, _ in buckets_of(self._sorted_defs(), tags))
            affected = self._purge(op)
            lease = self._leases.get(lease_id)
            if lease is not None and lease.state == "held":
                # a resumed run asks again: it takes over renewal from a (dead) coordinator
                if lease.worker.startswith("coordinator:"):
                    lease.worker = worker
                self._admit(op, affected, quiet=lease_id)
                return lease.token
            expiry = op.now_ms + ttl_ms
            if lease is not None:  # waiting: keeps its place in line
                lease.worker, lease.ttl, lease.expiry = worker, ttl_ms, expiry
            else:
                self._arrival += 1
                rank = -prio * _ARRIVAL_SPAN + self._arrival
                lease = _Lease(
                    run_id=run_id,
                    step_key=step_key,
                    attempt=int(attempt),
                    worker=worker,
                    buckets=buckets,
                    priority=prio,
                    rank=rank,
                    ttl=ttl_ms,
                    queued=op.now_ms,
                    since=op.now_ms,
                    expiry=expiry,
                )
                self._leases[lease_id] = lease
                for b in buckets:
                    insort(self._waiters.setdefault(b, []), (rank, lease_id))
                self._runs.setdefault(run_id, set()).add(lease_id)
            if not lease.buckets:  # nothing limits this step
                return self._grant(op, lease_id, announce=False)
            affected.update(lease.buckets)
            self._admit(op, affected, quiet=lease_id)
            return lease.token if lease.state == "held" else None

    def release(self, lease_id: str, token: int) -> bool:
        with self._op() as op:
            affected = self._purge(op)
            lease = self._leases.get(lease_id)
            released = lease is not None and lease.token == int(token)
            if released:
                affected.update(self._drop(lease_id))
            self._admit(op, affected)
            return released

    def queue_release(self, pipe: Any, lease_id: str, token: int) -> None:
        """Queue :meth:`release` on ``pipe``, a :class:`MemoryPipeline` (one reply: 1
        released, 0 gone or stale).

        Raises:
            TypeError: ``pipe`` is not a :class:`MemoryPipeline`.
        """
        _pipeline(pipe).queue(lambda: int(self.release(lease_id, token)))

    def renew_many(
        self,
        leases: Sequence[tuple[str, int]],
        worker: str = "",
        ttl: float | None = None,
        owner: str = "",
    ) -> list[int]:
        if not leases:
            return []
        ttl_ms = self._ttl_ms(ttl)
        return [
            self._renew(lease_id, int(token), ttl_ms, worker, owner) for lease_id, token in leases
        ]

    def queue_renewals(
        self,
        pipe: Any,
        leases: Sequence[tuple[str, int]],
        worker: str = "",
        ttl: float | None = None,
        owner: str = "",
    ) -> None:
        """Queue :meth:`renew_many`'s renewals on ``pipe``, a :class:`MemoryPipeline` (one
        reply per lease).

        Raises:
            TypeError: ``pipe`` is not a :class:`MemoryPipeline`.
        """
        ttl_ms = self._ttl_ms(ttl)
        target = _pipeline(pipe)
        for lease_id, token in leases:
            target.queue(partial(self._renew, lease_id, int(token), ttl_ms, worker, owner))

    def queue_sweep(self, pipe: Any) -> None:
        """Queue :meth:`sweep` on ``pipe``, a :class:`MemoryPipeline` (one reply: the number
        of grants).

        Raises:
            TypeError: ``pipe`` is not a :class:`MemoryPipeline`.
        """
        _pipeline(pipe).queue(self.sweep)

    def _renew(self, lease_id: str, token: int, ttl_ms: int, worker: str, owner: str) -> int:
        with self._op() as op:
            affected = self._purge(op)
            lease = self._leases.get(lease_id)
            result = GONE
            if lease is not None and lease.token == token:
                if owner and lease.worker != owner:
                    result = NOT_OWNER
                else:
                    lease.expiry, lease.ttl = op.now_ms + ttl_ms, ttl_ms
                    lease.worker = worker or lease.worker
                    result = RENEWED
            self._admit(op, affected)
            return result

    def confirm(self, lease_id: str, token: int, worker: str, ttl: float | None = None) -> bool:
        ttl_ms = self._ttl_ms(ttl)
        with self._op() as op:
            affected = self._purge(op)
            lease = self._leases.get(lease_id)
            confirmed = lease is not None and lease.token == int(token) and lease.state == "held"
            if lease is not None and confirmed:
                lease.expiry, lease.ttl, lease.worker = op.now_ms + ttl_ms, ttl_ms, worker
            self._admit(op, affected)
            return confirmed

    def free_run(self, run_id: str) -> int:
        with self._op() as op:
            affected = self._purge(op)
            lease_ids = sorted(self._runs.get(run_id, ()))
            for lease_id in lease_ids:
                affected.update(self._drop(lease_id))
            self._admit(op, affected)
            return len(lease_ids)

    def free_lease(self, lease_id: str) -> bool:
        with self._op() as op:
            affected = self._purge(op)
            existed = lease_id in self._leases
            affected.update(self._drop(lease_id))
            self._admit(op, affected)
            return existed

    def sweep(self) -> int:
        with self._op() as op:
            return self._sweep(op)

    def lease(self, lease_id: str) -> LeaseInfo | None:
        with self._lock:
            lease = self._leases.get(lease_id)
            if lease is None or lease.expiry / 1000 <= self.clock():
                return None
            return lease.info(lease_id)

    def run_leases(self, run_id: str) -> list[LeaseInfo]:
        with self._lock:
            now = self.clock()
            leases = [(i, self._leases[i]) for i in sorted(self._runs.get(run_id, ()))]
            return [lease.info(i) for i, lease in leases if lease.expiry / 1000 > now]

    # -- views ----------------------------------------------------------------------------

    def bucket_states(self, buckets: Sequence[str]) -> list[BucketState]:
        with self._lock:
            return self._bucket_states(buckets, self._now_ms())

    def snapshot(self) -> list[LimitState]:
        with self._lock:
            states = self._bucket_states(sorted(self._bucket_names()), self._now_ms())
            return group_by_limit(dict(self._defs), states)

    # -- the scripts' shared steps (_lib.lua), called with the lock held --------------------

    @contextmanager
    def _op(self) -> Iterator[_Op]:
        with self._lock:
            now = self.clock()
            op = _Op(self._to_ms(now), now)
            yield op
        if self.notify is not None:
            for run_id, event in op.events:
                self.notify(run_id, event)

    @staticmethod
    def _to_ms(now: float) -> int:
        return math.floor(now * 1000)

    def _now_ms(self) -> int:
        return self._to_ms(self.clock())

    def _sorted_defs(self) -> list[TagConcurrencyLimit]:
        return [self._defs[spec] for spec in sorted(self._defs)]

    def _bucket_names(self) -> set[str]:
        """Buckets with holders or waiters (live or not)."""
        return {*self._holders, *self._waiters}

    def _limit_of(self, bucket: str) -> int | None:
        """The bucket's limit: the definition under its own name, else (per unique value)
        under ``key=*``; None when no definition covers it."""
        lim = self._defs.get(bucket)
        at = bucket.find("=*")
        if lim is None and at >= 0:
            lim = self._defs.get(bucket[: at + 2])
        return None if lim is None else lim.limit

    def _has_room(self, bucket: str) -> bool:
        limit = self._limit_of(bucket)
        return limit is None or len(self._holders.get(bucket, ())) < limit

    def _first_waiter(self, bucket: str) -> str | None:
        line = self._waiters.get(bucket)
        return line[0][1] if line else None

    def _unqueue(self, bucket: str, rank: int, lease_id: str) -> None:
        line = self._waiters.get(bucket, [])
        if (rank, lease_id) in line:
            line.remove((rank, lease_id))
        if not line:
            self._waiters.pop(bucket, None)

    def _drop(self, lease_id: str) -> tuple[str, ...]:
        """Remove a lease everywhere (held or waiting). Returns the buckets it was in."""
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            return ()
        for b in lease.buckets:
            holders = self._holders.get(b, {})
            holders.pop(lease_id, None)
            if not holders:
                self._holders.pop(b, None)
            self._unqueue(b, lease.rank, lease_id)
        run = self._runs.get(lease.run_id, set())
        run.discard(lease_id)
        if not run:
            self._runs.pop(lease.run_id, None)
        return lease.buckets

    def _purge(self, op: _Op) -> set[str]:
        """Drop every lease whose expiry has passed. Returns the buckets they were in."""
        expired = sorted((ls.expiry, i) for i, ls in self._leases.items() if ls.expiry <= op.now_ms)
        affected: set[str] = set()
        for _, lease_id in expired:
            affected.update(self._drop(lease_id))
        return affected

    def _grant(self, op: _Op, lease_id: str, announce: bool) -> int:
        """Turn a waiting lease into a holder with a new fencing token."""
        lease = self._leases[lease_id]
        self._fence += 1
        for b in lease.buckets:
            self._unqueue(b, lease.rank, lease_id)
            self._holders.setdefault(b, {})[lease_id] = None
        lease.state, lease.token, lease.since = "held", self._fence, op.now_ms
        lease.expiry = op.now_ms + lease.ttl
        if announce:
            op.events.append((lease.run_id, grant_event(lease_id, lease, op.now_s)))
        return lease.token

    def _admit(self, op: _Op, affected: Iterable[str], quiet: str | None = None) -> int:
        """Grant every waiter that can be granted, starting from the heads of the
        ``affected`` buckets; ``quiet`` (the caller's own lease) is granted without an event.
        Returns the number of grants."""
        queue = sorted(affected)
        grants = 0
        for bucket in queue:  # grows: a grant's buckets get a new head to look at
            head = self._first_waiter(bucket)
            if head is None:
                continue
            buckets = self._leases[head].buckets
            if all(self._first_waiter(b) == head and self._has_room(b) for b in buckets):
                self._grant(op, head, announce=head != quiet)
                grants += 1
                queue.extend(buckets)
        return grants

    def _sweep(self, op: _Op) -> int:
        self._purge(op)
        return self._admit(op, self._bucket_names())

    def _bucket_states(self, buckets: Iterable[str], now_ms: int) -> list[BucketState]:
        """Per bucket its live holders (oldest grant first) and live waiters (in line)."""
        out = []
        for b in buckets:
            held = [(i, self._leases[i]) for i in self._holders.get(b, ())]
            holders = sorted(
                (lease.info(i) for i, lease in held if lease.expiry > now_ms),
                key=lambda h: (h.since, h.lease_id),
            )
            waiting = [(i, self._leases[i]) for _, i in self._waiters.get(b, ())]
            waiters = [lease.info(i) for i, lease in waiting if lease.expiry > now_ms]
            out.append(BucketState(b, self._limit_of(b), tuple(holders), tuple(waiters)))
        return out


def _pipeline(pipe: Any) -> MemoryPipeline:
    if not isinstance(pipe, MemoryPipeline):
        raise TypeError(f"MemoryLimiter queues on a MemoryPipeline, not {type(pipe).__name__}")
    return pipe
