"""Builds the Celery app from settings; no module-level app that import order could break.

Both sides use it: executors send step tasks by name (``STEP_TASK``), and workers run them. The
task functions themselves live in ``workers.tasks``, which the app names in Celery's ``include``
setting: a worker imports it when it starts; the orchestrator package never does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from celery import Celery

from orchestrator.settings import Settings, get_settings

STEP_TASK = "orchestrator.execute_step"
PING_TASK = "orchestrator.ping"


def is_redis_broker(url: str) -> bool:
    return url.split("://", 1)[0] in ("redis", "rediss", "unix", "redis+socket", "valkey")


def broker_priority(priority: int, broker_url: str, max_priority: int) -> int:
    """Map our priority (any integer, higher runs first, 0 default) onto the broker's scale.

    RabbitMQ serves higher numbers first (0..max_priority, queues declared with
    ``x-max-priority``); kombu's Redis transport serves *lower* numbers first. Default 0 maps
    to the middle of the scale on both.
    """
    middle = max_priority // 2
    rabbit = min(max(priority + middle, 0), max_priority)
    return max_priority - rabbit if is_redis_broker(broker_url) else rabbit


def create_app(
    settings: Settings | None = None,
    *,
    broker: str | None = None,
    backend: str | None = None,
    include: Sequence[str] = (),
    config_source: Mapping[str, Any] | None = None,
) -> Celery:
    """A Celery app for orchestrator steps.

    Late acknowledgement, rejection on worker loss and prefetch 1 (on a Redis broker, no
    prefetch at all), so a message is only gone once its step has ended; priorities honoured
    on RabbitMQ (``x-max-priority`` on every queue Celery declares) and on Redis (one sub-queue
    per priority level). A worker that loses its broker connection reconnects for as long as
    it takes and lets its running steps finish (their results are recorded through Redis; the
    attempt claim makes a redelivered copy harmless).

    Args:
        settings: deployment settings (default: from the environment).
        broker: broker URL (default: ``ORCHESTRATOR_BROKER_URL``, else the Redis URL).
        backend: result backend (results are not used; events travel in Redis streams).
        include: extra task modules to import in workers (``workers.tasks``, the step and
            ping tasks, always).
        config_source: Celery settings applied last (override anything above).
    """
    settings = settings or get_settings()
    broker_url = broker or settings.resolved_broker_url()
    app = Celery(
        "orchestrator",
        broker=broker_url,
        backend=backend or settings.result_backend or None,
        include=["workers.tasks", *include],
        set_as_current=False,
    )
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue="orchestrator",
        task_create_missing_queues=True,
        task_queue_max_priority=settings.max_priority,
        task_default_priority=broker_priority(0, broker_url, settings.max_priority),
        broker_transport_options=settings.broker_transport_options(),
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_disable_prefetch=is_redis_broker(broker_url),
    )
    if config_source:
        app.conf.update(dict(config_source))
    return app
