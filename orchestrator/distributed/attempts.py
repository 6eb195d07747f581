"""Step attempts in Redis: queued by the coordinator, claimed and heartbeated by the worker
that runs them, finished exactly once.

The broker may deliver a message twice (redelivery after a worker dies, visibility timeout);
the attempt record, not the broker, decides: only a *queued* attempt can be claimed, and only
the claiming worker's *running* attempt can report its outcome (``finish.lua``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from orchestrator import lua
from orchestrator.events import Event
from orchestrator.redis_keys import RedisKeys

ATTEMPT_TTL_SECONDS = 7 * 24 * 3600


def _script(client: redis.Redis, name: str) -> Any:
    return lua.script(client, "orchestrator.distributed", name)


@dataclass(frozen=True)
class AttemptInfo:
    """The stored state of one attempt."""

    attempt_id: str
    state: str  # queued (no state yet) | running | done | lost | canceled
    worker: str | None  # the worker process that claimed it
    heartbeat_alive: bool
    reserved_by: str | None = None  # the worker (node) whose main process took its message


class AttemptRegistry:
    """Reads and changes attempt records (see module docstring).

    Args:
        client: redis-py client with ``decode_responses=True``.
        keys: key builder.
    """

    def __init__(self, client: redis.Redis, keys: RedisKeys):
        self.client = client
        self.keys = keys
        self._claim = _script(client, "claim")
        self._beat = _script(client, "beat")
        self._finish = _script(client, "finish")
        self._settle = _script(client, "settle")

    # -- coordinator side -----------------------------------------------------------------

    def info(self, attempt_ids: list[str]) -> dict[str, AttemptInfo]:
        """States of several attempts in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        self.queue_info(pipe, attempt_ids)
        return self.read_info(attempt_ids, pipe.execute())

    def queue_info(self, pipe: Any, attempt_ids: list[str]) -> int:
        """Queue :meth:`info`'s reads on ``pipe``; returns how many replies they take."""
        for attempt_id in attempt_ids:
            pipe.hgetall(self.keys.attempt(attempt_id))
            pipe.exists(self.keys.attempt_heartbeat(attempt_id))
        return 2 * len(attempt_ids)

    @staticmethod
    def read_info(attempt_ids: list[str], replies: list[Any]) -> dict[str, AttemptInfo]:
        """The states :meth:`queue_info`'s replies tell."""
        out = {}
        for i, attempt_id in enumerate(attempt_ids):
            data, alive = replies[2 * i], replies[2 * i + 1]
            out[attempt_id] = AttemptInfo(
                attempt_id,
                data.get("state", "queued"),
                data.get("worker"),
                bool(alive),
                data.get("reserved_by"),
            )
        return out

    def settle(self, attempt_id: str, state: str) -> bool:
        """Mark an attempt ``lost`` (running, heartbeat lapsed) or ``canceled``."""
        keys = [
            self.keys.attempt(attempt_id),
            self.keys.attempt_heartbeat(attempt_id),
            self.keys.running_attempts,
        ]
        return bool(self._settle(keys=keys, args=[state, ATTEMPT_TTL_SECONDS, attempt_id]))

    # -- worker side ----------------------------------------------------------------------

    def reserve(self, attempt_id: str, worker_node: str) -> None:
        """Note that ``worker_node``'s main process took the attempt's message (before a pool
        process claims it): if that worker dies first, the coordinator sends the step again
        instead of waiting for the broker to give the message back."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.keys.attempt(attempt_id), "reserved_by", worker_node)
        pipe.expire(self.keys.attempt(attempt_id), ATTEMPT_TTL_SECONDS)
        pipe.execute()

    def claim(
        self, attempt_id: str, worker: str, token: str, ttl: float, start_event: Event | None = None
    ) -> str:
        """Take a queued attempt (appending ``start_event`` to its run's log in the same
        step); returns ``claimed`` or why not (the attempt's state)."""
        run_id = start_event.run_id if start_event else ""
        keys = [
            self.keys.attempt(attempt_id),
            self.keys.attempt_heartbeat(attempt_id),
            self.keys.run_events(run_id),
            self.keys.running_attempts,
        ]
        start = json.dumps(start_event.to_dict()) if start_event else ""
        args = [worker, token, int(ttl * 1000), start, ATTEMPT_TTL_SECONDS, attempt_id]
        return str(self._claim(keys=keys, args=args))

    def beat(self, attempt_id: str, token: str, ttl: float) -> bool:
        keys = [self.keys.attempt(attempt_id), self.keys.attempt_heartbeat(attempt_id)]
        return bool(self._beat(keys=keys, args=[token, int(ttl * 1000)]))

    def finish(
        self,
        attempt_id: str,
        token: str,
        event: Event,
        held: list[Event] | None = None,
        also: Callable[[Any], None] | None = None,
    ) -> str | None:
        """Append ``held`` events then the attempt's final ``event``, unless the attempt is no
        longer ours (then nothing is appended and None is returned). ``also`` queues more
        commands on the same round trip (after the finish)."""
        keys = [
            self.keys.attempt(attempt_id),
            self.keys.attempt_heartbeat(attempt_id),
            self.keys.run_events(event.run_id),
            self.keys.run_bell(event.run_id),
            self.keys.running_attempts,
        ]
        payload = [json.dumps(e.to_dict()) for e in [*(held or []), event]]
        args = [token, event.run_id, attempt_id, *payload]
        if also is None:
            reply = self._finish(keys=keys, args=args)
        else:
            pipe = self.client.pipeline(transaction=False)
            self._finish(keys=keys, args=args, client=pipe)
            also(pipe)
            reply = pipe.execute()[0]
        return str(reply) if reply else None
