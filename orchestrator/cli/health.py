"""Health checks of long-lived processes, for container orchestrators (``HEALTHCHECK``,
compose ``healthcheck``): ``orchestrator worker health`` and ``orchestrator coordinator
health`` exit 0 when a process of that kind **on this host** is alive, 1 otherwise, with one
line saying what was seen.

A coordinator is alive while its heartbeat in Redis is fresh (its serve loop renews it). A
worker is alive when its own Celery node answers a ping through the broker: that proves the
worker's consumer loop, not only that Redis answers.
"""

from __future__ import annotations

import socket
from typing import Any

import click

from orchestrator.cli.common import bad_input_exits, get_instance

PATIENCE_SECONDS = 5.0  # a health check answers within its own timeout, never waits longer
PING_TIMEOUT_SECONDS = 5.0


def _live_here(instance: Any, kind: str) -> dict[str, dict[str, Any]]:
    from orchestrator.distributed.workers import ProcessRegistry
    from orchestrator.settings import get_settings

    registry = ProcessRegistry(instance.client, instance.keys, get_settings().lease_seconds, kind)
    host = socket.gethostname()
    return {m: info for m, info in registry.live().items() if info.get("hostname") == host}


def coordinator_health() -> None:
    with bad_input_exits(), get_instance(patience=PATIENCE_SECONDS) as instance:
        mine = _live_here(instance, "coordinator")
    host = socket.gethostname()
    if not mine:
        click.echo(f"unhealthy: no coordinator on {host} has a live heartbeat")
        raise SystemExit(1)
    click.echo(f"healthy: coordinator {', '.join(sorted(mine))} on {host}")


def worker_health() -> None:
    from orchestrator.distributed.celery_app import create_app
    from orchestrator.settings import get_settings

    with bad_input_exits(), get_instance(patience=PATIENCE_SECONDS) as instance:
        mine = _live_here(instance, "worker")
    host = socket.gethostname()
    if not mine:
        click.echo(f"unhealthy: no worker on {host} is registered with a live heartbeat")
        raise SystemExit(1)
    app = create_app(get_settings())
    try:
        replies = app.control.ping(destination=sorted(mine), timeout=PING_TIMEOUT_SECONDS)
    finally:
        app.close()
    answered = sorted(node for reply in replies for node in reply)
    if not answered:
        click.echo(
            f"unhealthy: worker {', '.join(sorted(mine))} on {host} did not answer a ping "
            f"within {PING_TIMEOUT_SECONDS:.0f} s"
        )
        raise SystemExit(1)
    click.echo(f"healthy: worker {', '.join(answered)} on {host} answered")
