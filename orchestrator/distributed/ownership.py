"""Run ownership: the one process driving a run holds its owner record, renewed while it drives.

A coordinator (or a process running ``execute_job`` on a shared instance) that stops renewing
loses the run after the lease time; another coordinator then adopts it from the active set.
Renewal and release compare the owner first (``own.lua``), so a process that stalled past its
lease finds it has lost the run instead of taking it back from the new owner. The record keeps
its expiry as a time, so a lapsed owner stays visible (``run show`` says whose lease lapsed and
when) until a coordinator adopts the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from orchestrator import lua
from orchestrator.redis_keys import RedisKeys


def _own(client: redis.Redis) -> Any:
    return lua.script(client, "orchestrator.distributed", "own")


@dataclass(frozen=True)
class OwnerInfo:
    """The stored owner of a run.

    Attributes:
        owner: ``coordinator-<id>`` or ``caller:<host>:<pid>:<id>`` (a ``job execute``).
        since: when it took the run (seconds since the epoch, Redis time).
        expires: when its lease lapses unless renewed.
        now: Redis time when this was read.
    """

    owner: str
    since: float
    expires: float
    now: float

    @property
    def lapsed(self) -> bool:
        return self.expires <= self.now


def owner_info(client: redis.Redis, keys: RedisKeys, run_id: str) -> OwnerInfo | None:
    """Who drives ``run_id`` (None: nobody has an owner record for it)."""
    pipe = client.pipeline(transaction=True)
    pipe.hgetall(keys.run_owner(run_id))
    pipe.time()
    fields, (sec, usec) = pipe.execute()
    if not fields:
        return None
    return OwnerInfo(
        owner=fields.get("owner", ""),
        since=int(fields.get("since") or 0) / 1000,
        expires=int(fields.get("expires") or 0) / 1000,
        now=sec + usec / 1e6,
    )


class RunOwnership:
    """Ownership of one run by ``owner_id``.

    Args:
        client: redis-py client (``decode_responses=True``).
        keys: key builder.
        run_id: the run.
        owner_id: who drives it (``coordinator-<id>`` or ``caller:<host>:<pid>:<id>``).
        lease_seconds: how long the lease lasts unless renewed.
    """

    def __init__(
        self, client: redis.Redis, keys: RedisKeys, run_id: str, owner_id: str, lease_seconds: float
    ):
        self.client = client
        self.keys = keys
        self.run_id = run_id
        self.owner_id = owner_id
        self.lease_ms = int(lease_seconds * 1000)
        self.lost = False  # set once a renewal found another owner: stop driving the run

    def _call(self, op: str, client: Any = None) -> Any:
        return _own(self.client)(
            keys=[self.keys.run_owner(self.run_id), self.keys.active_runs],
            args=[op, self.owner_id, self.lease_ms, self.run_id],
            client=client or self.client,
        )

    def claim(self) -> bool:
        """Take the run if nobody owns it or its owner lapsed; it joins the active set."""
        return bool(self._call("claim"))

    def renew(self) -> bool:
        """Extend the lease; False (and :attr:`lost` set) when another owner has the run."""
        return self.renewed(self._call("renew"))

    def release(self, finished: bool) -> bool:
        """Give the run up: ``finished`` removes it from the active set, otherwise another
        coordinator adopts it."""
        return bool(self._call("finish" if finished else "release"))

    def queue_release(self, pipe: Any, finished: bool) -> None:
        """Queue :meth:`release` on ``pipe``."""
        self._call("finish" if finished else "release", client=pipe)

    def queue_renew(self, pipe: Any) -> None:
        """Queue :meth:`renew` on ``pipe``; hand its reply to :meth:`renewed`."""
        self._call("renew", client=pipe)

    def renewed(self, reply: Any) -> bool:
        """Apply a renewal's reply: False (and :attr:`lost` set) when another owner has the
        run."""
        if not reply:
            self.lost = True
        return not self.lost


def claim_next_runs(
    client: Any, keys: RedisKeys, owner_id: str, lease_seconds: float, count: int = 1
) -> list[str]:
    """Pop up to ``count`` best-ranked launched runs and own them, atomically
    (``claim_run.lua``)."""
    prefix, suffix = keys.run_owner("\0").split("\0")
    reply = lua.script(client, "orchestrator.distributed", "claim_run")(
        keys=[keys.run_queue, keys.active_runs],
        args=[owner_id, int(lease_seconds * 1000), prefix, suffix, int(count)],
    )
    return [str(run_id) for run_id in reply or []]


def claim_next_run(client: Any, keys: RedisKeys, owner_id: str, lease_seconds: float) -> str | None:
    """Pop the best-ranked launched run and own it, atomically; None when none is queued."""
    taken = claim_next_runs(client, keys, owner_id, lease_seconds, 1)
    return taken[0] if taken else None
