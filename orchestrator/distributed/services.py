"""What one process shares among the runs it drives on a shared (Redis) instance.

Built once per instance and process (:func:`services_for`): the cross-run limiter, the attempt
and worker registries, the lease keeper (one thread renewing every lease and ownership the
process holds) and the stream pump (one thread reading every driven run's event stream). Per-run
set-up then costs no new connections, script registrations or threads.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from orchestrator.concurrency.redis import RedisLimiter
from orchestrator.distributed.attempts import AttemptRegistry
from orchestrator.distributed.keeper import LeaseKeeper
from orchestrator.distributed.pump import StreamPump
from orchestrator.distributed.workers import WorkerRegistry
from orchestrator.settings import Settings, get_settings

if TYPE_CHECKING:
    from orchestrator.storage.redis import RedisInstance


def renewal_interval(settings: Settings) -> float:
    """How often leases, heartbeats and ownerships are renewed and checked: the heartbeat
    interval, or a third of the lease time if that is shorter."""
    return max(0.05, min(settings.heartbeat_interval, settings.lease_seconds / 3))


class RunServices:
    """The shared pieces (see the module docstring).

    Attributes:
        renewer: the name this process records on the concurrency leases it renews
            (``coordinator:<host>/<pid>/<id>``; the limiter lets another driver take over a
            lease whose renewer has this prefix).
    """

    def __init__(self, instance: RedisInstance, settings: Settings | None = None):
        settings = settings or get_settings()
        self.settings = settings
        self.instance = instance
        client, keys = instance.client, instance.keys
        self.renewer = f"coordinator:{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"
        self.limiter = RedisLimiter(client, keys, settings.lease_seconds)
        self.attempts = AttemptRegistry(client, keys)
        self.workers = WorkerRegistry(client, keys, settings.lease_seconds)
        self.keeper = LeaseKeeper(self.limiter, renewal_interval(settings))
        self._lock = threading.Lock()
        self._live: tuple[float, dict[str, dict[str, Any]]] | None = None
        self._live_ttl = renewal_interval(settings) / 2
        self.pump = StreamPump(client, keys, renewal_interval(settings))

    def live_workers(self) -> dict[str, dict[str, Any]]:
        """Live workers (see ``WorkerRegistry``), read at most once per half renewal
        interval: every run's periodic checks ask."""
        with self._lock:
            now = time.monotonic()
            if self._live is None or now >= self._live[0]:
                self._live = (now + self._live_ttl, self.workers.live_workers())
            return self._live[1]

    def close(self) -> None:
        self.keeper.stop()
        self.pump.stop()


_lock = threading.Lock()


def services_for(instance: RedisInstance) -> RunServices:
    """The process's services for ``instance`` (built on first use, rebuilt after a fork)."""
    with _lock:
        found: RunServices | None = getattr(instance, "_services", None)
        if found is None or getattr(instance, "_services_pid", None) != os.getpid():
            found = RunServices(instance)
            instance._services = found  # type: ignore[attr-defined]
            instance._services_pid = os.getpid()  # type: ignore[attr-defined]
        return found
