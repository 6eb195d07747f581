"""Worker start-up: load the code locations, register, and run a plain Celery worker."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

from orchestrator.definitions.reconstruct import CodeLocation
from orchestrator.settings import get_settings
from workers.tasks import LOCATIONS_ENV


def start_worker(
    locations: Sequence[CodeLocation],
    queues: Sequence[str] = ("orchestrator",),
    concurrency: int | None = None,
    loglevel: str = "INFO",
    name: str | None = None,
) -> None:
    """Run a Celery worker (blocks until it stops) that runs steps of ``locations`` only.

    The code locations are imported here first, so errors show at start-up and forked pool
    processes start with the code already loaded.
    """
    from celery import signals

    from orchestrator.distributed.workers import WorkerRegistry
    from orchestrator.redis_keys import RedisKeys
    from orchestrator.storage.redis import RedisInstance
    from workers.app import create_app

    os.environ[LOCATIONS_ENV] = json.dumps([loc.to_dict() for loc in locations])
    for location in locations:
        location.load()
    settings = get_settings()
    app = create_app(settings)
    worker_name = name or f"orchestrator-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    client = RedisInstance.from_url(settings.resolved_redis_url(), settings.key_prefix).client
    registry = WorkerRegistry(client, RedisKeys(settings.key_prefix), settings.lease_seconds)

    def ready(**_: Any) -> None:
        registry.register(worker_name, queues, [str(loc) for loc in locations])
        registry.beat_forever(worker_name, settings.heartbeat_interval)

    def shutdown(**_: Any) -> None:
        registry.deregister(worker_name)

    signals.worker_ready.connect(ready, weak=False)
    signals.worker_shutdown.connect(shutdown, weak=False)
    argv = [
        "worker",
        "-Q",
        ",".join(queues),
        "-n",
        worker_name,
        "--loglevel",
        loglevel,
        "--without-mingle",
        "--without-gossip",
        "-P",
        "prefork",
    ]
    if concurrency:
        argv += ["-c", str(concurrency)]
    app.worker_main(argv)
