"""Queue depths read from the Celery broker (Redis or RabbitMQ) with kombu, for the workers
page and ``/metrics``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from kombu import Connection

from orchestrator.settings import Settings

BROKER_TIMEOUT_SECONDS = 3.0


def queue_depths(settings: Settings, queues: Iterable[str]) -> dict[str, int | None]:
    """Messages waiting in each queue (all priority levels); None where the broker did not
    say (unreachable, or the queue was never declared on RabbitMQ: nothing was sent to it)."""
    names = sorted(set(queues))
    out: dict[str, int | None] = dict.fromkeys(names)
    if not names:
        return out
    try:
        with Connection(
            settings.resolved_broker_url(),
            transport_options=settings.broker_transport_options(),
            connect_timeout=BROKER_TIMEOUT_SECONDS,
        ) as conn:
            conn.ensure_connection(max_retries=1)
            for name in names:
                channel = conn.channel()
                try:
                    out[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
                except Exception:  # not declared yet (RabbitMQ closes the channel)
                    out[name] = 0 if _is_redis(settings) else None
                finally:
                    with contextlib.suppress(Exception):
                        channel.close()
    except Exception:
        return out
    return out


def _is_redis(settings: Settings) -> bool:
    return settings.resolved_broker_url().startswith(("redis", "rediss", "unix", "valkey"))
