"""Worker start-up: load the code locations, register, and run a plain Celery worker."""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

from orchestrator.definitions.reconstruct import CodeLocation
from orchestrator.distributed.step_worker import LOCATIONS_ENV
from orchestrator.settings import get_settings

log = logging.getLogger("orchestrator.worker")


def start_worker(
    locations: Sequence[CodeLocation],
    queues: Sequence[str] = ("orchestrator",),
    concurrency: int | None = None,
    loglevel: str = "INFO",
    name: str | None = None,
    quiet: bool = False,
) -> None:
    """Run a Celery worker (blocks until it stops) that runs steps of ``locations`` only.

    The code locations are imported here first, so errors show at start-up and forked pool
    processes start with the code already loaded. Once started, the worker rides out outages
    of Redis and of the broker: it reconnects for as long as it takes, and the steps it runs
    go on meanwhile (their events are written when Redis answers again).
    """
    from celery import signals

    from orchestrator.distributed.attempts import AttemptRegistry
    from orchestrator.distributed.celery_app import STEP_TASK, create_app
    from orchestrator.distributed.workers import WorkerRegistry
    from orchestrator.redis_client import connect
    from orchestrator.redis_keys import RedisKeys

    os.environ[LOCATIONS_ENV] = json.dumps([loc.to_dict() for loc in locations])
    for location in locations:
        location.load()
    settings = get_settings()
    app = create_app(settings)
    worker_name = name or f"orchestrator-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    url = settings.resolved_redis_url()
    keys = RedisKeys(settings.key_prefix)
    # Bounded patience: a worker stopped during an outage must not hang deregistering.
    registry = WorkerRegistry(connect(url, settings.lease_seconds), keys, settings.lease_seconds)
    # The consumer thread must never wait out an outage: a reservation it cannot note is
    # only a missed shortcut (the message still comes back through the broker).
    reservations = AttemptRegistry(connect(url, patience=0.0), keys)

    def ready(**_: Any) -> None:
        registry.register_worker(worker_name, queues, [str(loc) for loc in locations])
        registry.beat_forever(worker_name, settings.heartbeat_interval)

    def shutdown(**_: Any) -> None:
        registry.deregister(worker_name)

    def received(request: Any = None, **_: Any) -> None:
        if request is None or request.name != STEP_TASK:
            return
        try:
            reservations.reserve(request.id, worker_name)
        except Exception as exc:  # never let bookkeeping refuse a step
            log.warning("could not note that this worker took %s: %s", request.id, exc)

    signals.worker_ready.connect(ready, weak=False)
    signals.worker_shutdown.connect(shutdown, weak=False)
    signals.task_received.connect(received, weak=False)
    argv = [
        *(["--quiet"] if quiet else []),  # no start-up banner
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
