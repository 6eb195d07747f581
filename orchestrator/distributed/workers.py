"""Registries of live processes: workers (and the queues they consume, so a step queued where
nobody listens is reported instead of waiting silently) and coordinators (so a run whose
driver is gone can say whether anyone will adopt it)."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from orchestrator.redis_keys import RedisKeys


class ProcessRegistry:
    """Processes of one kind announce themselves and renew a heartbeat; readers see who is
    alive.

    Args:
        client: redis-py client (``decode_responses=True``).
        keys: key builder.
        ttl: seconds a heartbeat lives unless renewed.
        kind: ``worker`` or ``coordinator``.
    """

    def __init__(self, client: redis.Redis, keys: RedisKeys, ttl: float, kind: str = "worker"):
        self.client = client
        self.keys = keys
        self.ttl = ttl
        self.kind = kind
        self._stop = threading.Event()

    def _hash(self) -> str:
        return self.keys.registry(self.kind)

    def _beat_key(self, member: str) -> str:
        return self.keys.registry_beat(self.kind, member)

    def register(self, member: str, info: Mapping[str, Any] | None = None) -> None:
        """Announce ``member`` (with its host, pid and ``info``) and start its heartbeat."""
        data = {"hostname": socket.gethostname(), "pid": os.getpid(), **(info or {})}
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self._hash(), member, json.dumps(data))
        pipe.set(self._beat_key(member), "1", px=int(self.ttl * 1000))
        pipe.execute()

    def beat(self, member: str) -> None:
        self.client.set(self._beat_key(member), "1", px=int(self.ttl * 1000))

    def beat_forever(self, member: str, interval: float) -> threading.Thread:
        """Renew the heartbeat from a daemon thread until :meth:`deregister`."""

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.beat(member)
                except redis.RedisError:
                    continue  # the next beat retries; the key outlives a few misses

        thread = threading.Thread(target=run, daemon=True, name=f"orchestrator-{self.kind}-beat")
        thread.start()
        return thread

    def deregister(self, member: str) -> None:
        self._stop.set()
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self._hash(), member)
        pipe.delete(self._beat_key(member))
        pipe.execute()

    def live(self) -> dict[str, dict[str, Any]]:
        """Member -> info, for members whose heartbeat is alive. Members whose heartbeat
        lapsed long ago are dropped from the registry on the way."""
        infos = {str(k): str(v) for k, v in self.client.hgetall(self._hash()).items()}
        if not infos:
            return {}
        members = list(infos)
        pipe = self.client.pipeline(transaction=False)
        for member in members:
            pipe.exists(self._beat_key(member))
        alive = pipe.execute()
        return {m: json.loads(infos[m]) for m, ok in zip(members, alive, strict=True) if ok}

    def is_alive(self, member: str) -> bool:
        return bool(self.client.exists(self._beat_key(member)))


class WorkerRegistry(ProcessRegistry):
    """Live Celery workers and the queues and code locations they serve."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, ttl: float):
        super().__init__(client, keys, ttl, "worker")

    def register_worker(
        self, worker_id: str, queues: Sequence[str], locations: Sequence[str]
    ) -> None:
        self.register(worker_id, {"queues": list(queues), "locations": list(locations)})

    def live_workers(self) -> dict[str, dict[str, Any]]:
        """Worker id -> info, for workers whose heartbeat is alive."""
        return self.live()

    def live_queues(self) -> set[str]:
        queues: set[str] = set()
        for info in self.live().values():
            queues.update(info.get("queues") or [])
        return queues
