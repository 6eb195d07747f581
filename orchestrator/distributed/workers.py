"""Registry of live workers and the queues they consume (so a step queued where nobody
listens is reported instead of waiting silently)."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Sequence

import redis

from orchestrator.redis_keys import RedisKeys


class WorkerRegistry:
    """Workers announce themselves and renew a heartbeat; readers see who is alive."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, ttl: float):
        self.client = client
        self.keys = keys
        self.ttl = ttl
        self._stop = threading.Event()

    def register(self, worker_id: str, queues: Sequence[str], locations: Sequence[str]) -> None:
        info = {
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "queues": list(queues),
            "locations": list(locations),
        }
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.workers, worker_id, json.dumps(info))
        pipe.set(self.keys.worker(worker_id), "1", px=int(self.ttl * 1000))
        pipe.execute()

    def beat_forever(self, worker_id: str, interval: float) -> threading.Thread:
        """Renew the heartbeat from a daemon thread until :meth:`stop`."""

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.client.set(self.keys.worker(worker_id), "1", px=int(self.ttl * 1000))
                except redis.RedisError:
                    continue  # the next beat retries; the key outlives a few misses

        thread = threading.Thread(target=run, daemon=True, name="orchestrator-worker-beat")
        thread.start()
        return thread

    def deregister(self, worker_id: str) -> None:
        self._stop.set()
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.keys.workers, worker_id)
        pipe.delete(self.keys.worker(worker_id))
        pipe.execute()

    def live_workers(self) -> dict[str, dict[str, object]]:
        """Worker id -> info, for workers whose heartbeat is alive."""
        infos = {str(k): str(v) for k, v in self.client.hgetall(self.keys.workers).items()}
        ids = list(infos)
        if not ids:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for worker_id in ids:
            pipe.exists(self.keys.worker(worker_id))
        alive = pipe.execute()
        return {w: json.loads(infos[w]) for w, ok in zip(ids, alive, strict=True) if ok}

    def live_queues(self) -> set[str]:
        queues: set[str] = set()
        for info in self.live_workers().values():
            queues.update(info.get("queues") or [])  # type: ignore[arg-type]
        return queues
