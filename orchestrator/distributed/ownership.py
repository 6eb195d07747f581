"""Run ownership: the one process driving a run holds its owner key, renewed while it drives.

A coordinator (or a process running ``execute_job`` on a shared instance) that stops renewing
loses the run after the lease time; another coordinator then adopts it from the active set.
Renewal and release compare the owner first (``own.lua``), so a process that stalled past its
lease finds it has lost the run instead of taking it back from the new owner.
"""

from __future__ import annotations

from typing import Any

import redis

from orchestrator.distributed.attempts import _script
from orchestrator.redis_keys import RedisKeys


class RunOwnership:
    """Ownership of one run by ``owner_id``.

    Args:
        client: redis-py client (``decode_responses=True``).
        keys: key builder.
        run_id: the run.
        owner_id: who drives it (``coordinator-<id>`` or ``caller:<host>:<pid>``).
        lease_seconds: how long the key lives unless renewed.
    """

    def __init__(
        self, client: redis.Redis, keys: RedisKeys, run_id: str, owner_id: str, lease_seconds: float
    ):
        self.client = client
        self.keys = keys
        self.run_id = run_id
        self.owner_id = owner_id
        self.lease_ms = int(lease_seconds * 1000)
        self._own = _script(client, "own")

    def _call(self, op: str) -> bool:
        keys = [self.keys.run_owner(self.run_id), self.keys.active_runs]
        return bool(self._own(keys=keys, args=[op, self.owner_id, self.lease_ms, self.run_id]))

    def claim(self) -> bool:
        """Take the run if nobody owns it; it joins the active set (adoptable if we die)."""
        if not self.client.set(
            self.keys.run_owner(self.run_id), self.owner_id, nx=True, px=self.lease_ms
        ):
            return False
        self.client.sadd(self.keys.active_runs, self.run_id)
        return True

    def renew(self) -> bool:
        """Extend the lease; False when another owner has taken the run over."""
        return self._call("renew")

    def release(self, finished: bool) -> bool:
        """Give the run up: ``finished`` removes it from the active set, otherwise another
        coordinator adopts it."""
        return self._call("finish" if finished else "release")


def claim_next_run(client: Any, keys: RedisKeys, owner_id: str, lease_seconds: float) -> str | None:
    """Pop the best-ranked launched run and own it, atomically (``claim_run.lua``)."""
    script = _script(client, "claim_run")
    owner_key = keys.run_owner("\0")
    prefix, suffix = owner_key.split("\0")
    reply = script(
        keys=[keys.run_queue, keys.active_runs],
        args=[owner_id, int(lease_seconds * 1000), prefix, suffix],
    )
    return str(reply) if reply else None
