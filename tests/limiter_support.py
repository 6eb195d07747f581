"""Helpers of the cross-run limiter tests: the backends the contract tests run on (the memory
twin with a clock moved by hand, Redis with real time and a tiny lease time), and short ways
to take a lease and look at buckets."""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import redis

from orchestrator.concurrency.config import APPLY_PER_UNIQUE, TagConcurrencyLimit
from orchestrator.concurrency.limiter import Limiter
from orchestrator.concurrency.memory import MemoryLimiter, MemoryPipeline
from orchestrator.concurrency.redis import RedisLimiter
from orchestrator.redis_keys import RedisKeys

PER_UNIQUE = {APPLY_PER_UNIQUE: True}
TINY_TTL = 0.2  # a lease that is let expire (on Redis, real seconds)
BOUND = 5.0  # upper bound on anything that should happen promptly


class Backend(ABC):
    """A limiter under test, with the means to let its time pass and to see its grant
    announcements (``slot_granted`` events) per run."""

    limiter: Limiter

    @abstractmethod
    def pass_time(self, seconds: float) -> None:
        """Let ``seconds`` pass on the limiter's clock."""

    def expire(self, lease_id: str) -> None:
        """Let a lease taken with ``ttl=TINY_TTL`` lapse; checked through the API."""
        self.pass_time(TINY_TTL)
        deadline = time.monotonic() + BOUND
        while self.limiter.lease(lease_id) is not None:
            assert time.monotonic() < deadline, f"lease {lease_id} did not expire"
            self.pass_time(0.01)

    @abstractmethod
    def grants(self, run_id: str) -> list[dict[str, Any]]:
        """The grant events announced to ``run_id`` so far, oldest first."""

    @abstractmethod
    def wait_grant(self, run_id: str, lease_id: str) -> int:
        """Wait (at most BOUND seconds) for the grant of ``lease_id``; returns its token."""

    @abstractmethod
    def pipeline(self) -> Any:
        """What the limiter's ``queue_*`` methods queue on; ``execute()`` runs it."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds."""


class ManualClock:
    """Seconds since the epoch that move only when told to."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class MemoryBackend(Backend):
    def __init__(self) -> None:
        self.clock = ManualClock()
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._changed = threading.Condition()
        self.limiter = MemoryLimiter(lease_ttl=30.0, clock=self.clock, notify=self._note)

    def _note(self, run_id: str, event: dict[str, Any]) -> None:
        with self._changed:
            self._events.setdefault(run_id, []).append(event)
            self._changed.notify_all()

    def pass_time(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def grants(self, run_id: str) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._events.get(run_id, []))

    def wait_grant(self, run_id: str, lease_id: str) -> int:
        def token() -> int | None:
            for event in self._events.get(run_id, []):
                if event["data"]["attempt_id"] == lease_id:
                    return int(event["data"]["token"])
            return None

        with self._changed:
            found = self._changed.wait_for(token, BOUND)
        assert found is not None, f"{lease_id} never granted"
        return found

    def pipeline(self) -> MemoryPipeline:
        return MemoryPipeline()


class RedisBackend(Backend):
    def __init__(self, url: str, key_prefix: str):
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.keys = RedisKeys(key_prefix)
        self.limiter = RedisLimiter(self.client, self.keys, lease_ttl=30.0)

    def pass_time(self, seconds: float) -> None:
        time.sleep(seconds)  # Redis time is real time

    def grants(self, run_id: str) -> list[dict[str, Any]]:
        return run_events(self.client, self.keys, run_id)

    def wait_grant(self, run_id: str, lease_id: str) -> int:
        stream = self.keys.run_events(run_id)
        cursor = "0-0"
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            reply: Any = self.client.xread({stream: cursor}, block=1000)
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    cursor = entry_id
                    data = json.loads(fields["e"])["data"]
                    if data["attempt_id"] == lease_id:
                        return int(data["token"])
        raise AssertionError(f"{lease_id} never granted")

    def pipeline(self) -> Any:
        return self.client.pipeline(transaction=False)

    def close(self) -> None:
        self.client.close()


def run_events(client: redis.Redis, keys: RedisKeys, run_id: str) -> list[dict[str, Any]]:
    """The events on a run's stream in Redis."""
    entries: Any = client.xrange(keys.run_events(run_id))
    return [json.loads(f["e"]) for _, f in entries]


def lim(key: str, value: str | dict[str, bool] | None, limit: int) -> TagConcurrencyLimit:
    return TagConcurrencyLimit(key=key, value=value, limit=limit)


def acquire(
    limiter: Limiter,
    run_id: str,
    step: str,
    tags: Mapping[str, str],
    priority: int = 0,
    attempt: int = 1,
    ttl: float | None = None,
) -> int | None:
    """Lease ``run_id:step:attempt`` for a coordinator (``ttl=TINY_TTL``: one about to die)."""
    lease_id = f"{run_id}:{step}:{attempt}"
    return limiter.acquire(
        lease_id, run_id, step, attempt, tags, priority, "coordinator:test", ttl=ttl
    )


def held(limiter: Limiter, lease_id: str) -> bool:
    info = limiter.lease(lease_id)
    return info is not None and info.state == "held"


def holders_of(limiter: Limiter, bucket: str) -> list[str]:
    (state,) = limiter.bucket_states([bucket])
    return [h.lease_id for h in state.holders]


def waiters_of(limiter: Limiter, bucket: str) -> list[str]:
    (state,) = limiter.bucket_states([bucket])
    return [w.lease_id for w in state.waiters]
