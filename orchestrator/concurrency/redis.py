"""Cross-run tag concurrency limits in Redis (SPEC §5).

Limits are deployment-wide: ``{key, value?, limit}`` definitions in one Redis hash, managed by
``orchestrator concurrency list|set|delete|free``. A step attempt takes all the slots its tags
need at once (all or nothing) under a *lease* named by its attempt id and renewed while the step
is queued or running; waiters are admitted per limit in order of priority, then arrival. Every
change is one atomic Lua script (``concurrency/lua/*.lua``; ``_lib.lua`` states the key schema)
timed by Redis ``TIME``. Releasing a slot grants the next waiters in the same script, appends
a ``slot_granted`` engine event to each one's run event stream and rings the bell of the
process driving that run (``orchestrator.distributed.pump``), so it goes on at once.

Each grant carries a *fencing token* (a counter): release, renew and confirm need it, so a
stale holder whose lease expired can never free or extend a newer holder's slot. Redis
replication is asynchronous: after a failover, recently granted leases may be lost; a protected
system that must reject stale holders can compare tokens.

:class:`RedisLimiter` is the limiter itself (any number of runs), the real backend of
:class:`~orchestrator.concurrency.limiter.Limiter` (its in-memory twin for tests is
``concurrency/memory.py``); the slot arbiter of one run that the execution loop asks is
``orchestrator.concurrency.redis_arbiter.RedisArbiter``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from orchestrator import lua
from orchestrator.concurrency.config import TagConcurrencyLimit
from orchestrator.concurrency.limiter import (
    GONE,
    NOT_OWNER,
    PRIORITY_BOUND,
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
from orchestrator.redis_keys import RedisKeys

__all__ = [  # the shared names stay importable from here
    "GONE",
    "NOT_OWNER",
    "PRIORITY_BOUND",
    "RENEWED",
    "SLOT_GRANTED",
    "BucketState",
    "LeaseInfo",
    "LimitState",
    "RedisLimiter",
    "limit_spec",
    "spec_for",
]

_SCRIPTS = ("acquire", "release", "renew", "confirm", "free", "sweep", "snapshot")


def _load_script(client: redis.Redis, name: str) -> Any:
    return lua.script(client, "orchestrator.concurrency", name, lib="_lib")


def _as_list(value: Any) -> list[Any]:
    # cjson encodes an empty Lua table as {}.
    return list(value) if isinstance(value, list) else []


class RedisLimiter(Limiter):
    """Cross-run tag concurrency limits held in Redis (see the module docstring).

    Args:
        client: redis-py client with ``decode_responses=True``.
        keys: key builder (its prefix scopes the limits).
        lease_ttl: seconds a lease lives unless renewed; a dead holder's slots come back
            within this time.
        limits_ttl: seconds the limit definitions are cached for :meth:`buckets_for` (a step
            with no limited tag makes no Redis call while the cache is warm).
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: RedisKeys | None = None,
        lease_ttl: float = 30.0,
        limits_ttl: float = 2.0,
    ):
        super().__init__(lease_ttl)
        self.client = client
        self.keys = keys or RedisKeys()
        self.limits_ttl = limits_ttl
        self._scripts = {name: _load_script(client, name) for name in _SCRIPTS}
        self._fixed_keys = [
            self.keys.limit_defs,
            self.keys.limit_buckets,
            self.keys.limit_expiry,
            self.keys.limit_arrival,
            self.keys.limit_fence,
        ]
        head, tail = self.keys.run_events_parts()
        self._fixed_args = [self.keys.limits_base, head, tail, self.keys.run_bell_tail()]
        self._cache: tuple[float, list[TagConcurrencyLimit]] | None = None

    @classmethod
    def from_url(cls, url: str, key_prefix: str | None = None, **kwargs: Any) -> RedisLimiter:
        """A limiter on the server at ``url`` (``redis://``, ``rediss://``, ``unix://``)."""
        from orchestrator.redis_client import connect

        client = connect(url)
        return cls(client, RedisKeys(key_prefix or "orchestrator"), **kwargs)

    def _run(self, name: str, *args: Any, client: Any = None) -> Any:
        return self._scripts[name](
            keys=self._fixed_keys,
            args=[*self._fixed_args, *(str(a) for a in args)],
            client=client or self.client,
        )

    # -- limit definitions ----------------------------------------------------------------

    def set_limit(self, limit: TagConcurrencyLimit) -> None:
        """Create or replace a limit. Waiters that a higher limit lets in are granted at once.

        Raises:
            InvalidInputError: ``value`` is the string ``"*"`` (that name is the per-unique
                form's).
        """
        check_settable(limit)
        self.client.hset(
            self.keys.limit_defs, limit_spec(limit), json.dumps(limit.model_dump(mode="json"))
        )
        self._cache = None
        self.sweep()

    def delete_limit(self, key: str, value: str | Mapping[str, bool] | None = None) -> bool:
        """Delete the limit on ``key`` (``value`` as in :func:`spec_for`). Its waiters are
        granted (nothing limits them any more). Returns whether it existed."""
        removed = bool(self.client.hdel(self.keys.limit_defs, spec_for(key, value)))
        self._cache = None
        if removed:
            self.sweep()
        return removed

    def list_limits(self) -> list[TagConcurrencyLimit]:
        """Every limit definition, sorted by spec."""
        raw: dict[str, str] = self.client.hgetall(self.keys.limit_defs)  # type: ignore[assignment]
        limits = [TagConcurrencyLimit.model_validate(json.loads(raw[s])) for s in sorted(raw)]
        self._cache = (time.monotonic() + self.limits_ttl, limits)
        return limits

    def _limits(self) -> list[TagConcurrencyLimit]:
        cached = self._cache
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return self.list_limits()

    def buckets_for(self, tags: Mapping[str, str]) -> list[tuple[str, int]]:
        """The buckets a step with ``tags`` takes a slot of, with their limits, from the
        definitions cached for ``limits_ttl`` seconds."""
        return buckets_of(self._limits(), tags)

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
        """Take every slot the step's tags need, all or nothing.

        Returns the fencing token when granted (now, or already: idempotent), else None: the
        lease waits in line (a repeated call keeps its place and refreshes its expiry) and its
        grant arrives later as a ``slot_granted`` engine event on the run's event stream.
        """
        buckets = [b for b, _ in self.buckets_for(tags)]
        prio = clamp_priority(priority)
        reply = self._run(
            "acquire",
            lease_id,
            run_id,
            step_key,
            int(attempt),
            prio,
            worker,
            self._ttl_ms(ttl),
            json.dumps(buckets),
        )
        return int(reply[1]) if int(reply[0]) == 1 else None

    def release(self, lease_id: str, token: int) -> bool:
        """Free the lease's slots (or withdraw a waiting lease with token 0) if ``token`` is
        its fencing token; the next waiters are granted at once. False: gone or stale."""
        return int(self._run("release", lease_id, int(token))) == 1

    def queue_release(self, pipe: Any, lease_id: str, token: int) -> None:
        """Queue :meth:`release` on ``pipe`` (one reply: 1 released, 0 gone or stale)."""
        self._run("release", lease_id, int(token), client=pipe)

    def renew_many(
        self,
        leases: Sequence[tuple[str, int]],
        worker: str = "",
        ttl: float | None = None,
        owner: str = "",
    ) -> list[int]:
        """:meth:`renew` for several ``(lease_id, token)`` in one round trip. Returns one code
        per lease: :data:`RENEWED`, :data:`GONE` or :data:`NOT_OWNER`."""
        if not leases:
            return []
        pipe = self.client.pipeline(transaction=False)
        self.queue_renewals(pipe, leases, worker, ttl, owner)
        return [int(code) for code in pipe.execute()]

    def queue_renewals(
        self,
        pipe: Any,
        leases: Sequence[tuple[str, int]],
        worker: str = "",
        ttl: float | None = None,
        owner: str = "",
    ) -> None:
        """Queue :meth:`renew_many`'s commands on ``pipe`` (one reply per lease)."""
        ttl_ms = self._ttl_ms(ttl)
        for lease_id, token in leases:
            self._run("renew", lease_id, int(token), ttl_ms, worker, owner, client=pipe)

    def queue_sweep(self, pipe: Any) -> None:
        """Queue :meth:`sweep` on ``pipe`` (one reply: the number of grants)."""
        self._run("sweep", client=pipe)

    def confirm(self, lease_id: str, token: int, worker: str, ttl: float | None = None) -> bool:
        """What a worker calls right before it runs a step: True if the lease is still held
        under ``token``, and the worker now renews it (expiry extended). False: the lease is
        gone; the step must not run."""
        return int(self._run("confirm", lease_id, int(token), self._ttl_ms(ttl), worker)) == 1

    def free_run(self, run_id: str) -> int:
        """Free every lease of a run (held or waiting), whatever its token. Returns how many."""
        return int(self._run("free", "run", run_id))

    def free_lease(self, lease_id: str) -> bool:
        """Free one lease (held or waiting), whatever its token. Returns whether it existed."""
        return int(self._run("free", "lease", lease_id)) == 1

    def sweep(self) -> int:
        """Drop expired leases and grant every waiter that can be granted. Returns the number
        of grants. Coordinators call it periodically (a fraction of the lease time)."""
        return int(self._run("sweep"))

    def lease(self, lease_id: str) -> LeaseInfo | None:
        """The live lease ``lease_id``, or None (absent or expired)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(self.keys.limit_lease(lease_id))
        pipe.time()
        fields, (sec, usec) = pipe.execute()
        if not fields:
            return None
        info = LeaseInfo.from_fields(lease_id, fields)
        return info if info.expires > sec + usec / 1e6 else None

    def run_leases(self, run_id: str) -> list[LeaseInfo]:
        """The live leases (held or waiting) of one run's steps, in two round trips."""
        lease_ids = sorted(str(i) for i in self.client.smembers(self.keys.limit_run(run_id)))
        if not lease_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for lease_id in lease_ids:
            pipe.hgetall(self.keys.limit_lease(lease_id))
        pipe.time()
        *rows, (sec, usec) = pipe.execute()
        now = sec + usec / 1e6
        leases = [LeaseInfo.from_fields(i, f) for i, f in zip(lease_ids, rows, strict=True) if f]
        return [lease for lease in leases if lease.expires > now]

    # -- views ----------------------------------------------------------------------------

    def _view(self, buckets: Sequence[str] | None) -> dict[str, Any]:
        arg = "" if buckets is None else json.dumps(list(buckets))
        return dict(json.loads(self._run("snapshot", arg)))

    @staticmethod
    def _bucket_states(view: Mapping[str, Any]) -> list[BucketState]:
        out = []
        for row in _as_list(view.get("buckets")):
            holders = [LeaseInfo.from_fields(f["lease_id"], f) for f in _as_list(row["holders"])]
            holders.sort(key=lambda h: (h.since, h.lease_id))
            waiters = [LeaseInfo.from_fields(f["lease_id"], f) for f in _as_list(row["waiters"])]
            limit = int(row["limit"])
            out.append(
                BucketState(row["bucket"], None if limit < 0 else limit, (*holders,), (*waiters,))
            )
        return out

    def bucket_states(self, buckets: Sequence[str]) -> list[BucketState]:
        """Holders and waiters of the given buckets (one atomic read)."""
        return self._bucket_states(self._view(buckets))

    def snapshot(self) -> list[LimitState]:
        """Every limit with its buckets' holders and waiters (one atomic read), sorted by
        spec; buckets still in use under a deleted limit come last, with ``limit`` None."""
        view = self._view(None)
        flat = _as_list(view.get("defs"))
        defs = {
            flat[i]: TagConcurrencyLimit.model_validate(json.loads(flat[i + 1]))
            for i in range(0, len(flat), 2)
        }
        return group_by_limit(defs, self._bucket_states(view))
