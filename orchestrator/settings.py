"""Settings from the environment (``ORCHESTRATOR_*``), read with pydantic-settings."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.embedded import resolve_redis_url


class Settings(BaseSettings):
    """Deployment settings. Every field reads ``ORCHESTRATOR_<FIELD>`` from the environment;
    each field's description is what ``docs/reference/settings.md`` shows."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".orchestrator",
        description="Local state: the embedded server's data, and the filesystem IO manager's "
        "outputs unless storage_url says otherwise.",
    )
    redis_url: str = Field(
        default="",
        description="The shared Redis (redis://, rediss:// or unix://); empty starts or reuses "
        "the embedded Valkey server under home.",
    )
    key_prefix: str = Field(
        default="orchestrator",
        description="Prefix of every Redis key, so deployments and tests can share a server.",
    )
    storage_url: str = Field(
        default="",
        description="Where the filesystem IO manager keeps outputs (a path or fsspec URL); "
        "empty means <home>/storage.",
    )
    code_locations: str = Field(
        default="",
        description="What worker start, coordinator start and ui serve when given no -f/-m: "
        "comma-separated Python files (ending in .py) or module names.",
    )
    broker_url: str = Field(
        default="",
        description="The Celery broker (redis:// or amqp://); empty uses the Redis URL.",
    )
    result_backend: str = Field(
        default="",
        description="A Celery result backend. Steps never use results (their events travel "
        "in Redis streams); set it only for ping round trips.",
    )
    max_priority: int = Field(
        default=9,
        description="Highest broker priority level: queues are declared with it "
        "(x-max-priority on RabbitMQ; sub-queues per level on Redis).",
    )
    lease_seconds: float = Field(
        default=30.0,
        description="Lease of a running step attempt and of its concurrency slots; an attempt "
        "whose lease lapses (its worker or coordinator died) is lost and started again.",
    )
    heartbeat_interval: float = Field(
        default=5.0,
        description="How often workers and coordinators renew the leases they hold.",
    )
    max_lost_attempts: int = Field(
        default=3,
        description="Lost attempts (worker or process died) after which a step fails instead "
        "of starting again.",
    )
    visibility_timeout: float = Field(
        default=3600.0,
        description="Redis broker only: seconds after which unacknowledged messages of a dead "
        "worker come back.",
    )
    no_consumer_delay: float = Field(
        default=60.0,
        description="Seconds a step may wait on a queue no live worker consumes before it is "
        "reported.",
    )
    max_concurrent_runs: int = Field(
        default=200,
        description="Runs one coordinator process drives at once.",
    )
    api_token: str = Field(
        default="",
        description="When set, every web UI page and HTTP API endpoint but /api/health asks for "
        "this token (Authorization: Bearer, or the UI's login cookie); when empty, the server "
        "binds to loopback only unless told otherwise.",
    )

    @property
    def storage_dir(self) -> str:
        return self.storage_url or str(self.home / "storage")

    def resolved_redis_url(self) -> str:
        """The Redis URL, starting the embedded server when none is configured."""
        return resolve_redis_url(self.redis_url, self.home)

    def resolved_broker_url(self) -> str:
        return self.broker_url or self.resolved_redis_url()

    def broker_transport_options(self) -> dict[str, object]:
        """kombu transport options of every broker connection (workers, executors, the UI's
        queue depths): one sub-queue per priority level on Redis, under our key prefix."""
        return {
            "visibility_timeout": self.visibility_timeout,
            "priority_steps": list(range(self.max_priority + 1)),
            "sep": ":",
            "queue_order_strategy": "priority",
            # Redis broker: Celery's keys under our prefix too, so deployments sharing a
            # server do not share queues (ignored by other transports).
            "global_keyprefix": f"{self.key_prefix}:celery:",
        }


_cache: dict[tuple[str | None, ...], Settings] = {}
_VARIABLES = tuple(f"ORCHESTRATOR_{name.upper()}" for name in Settings.model_fields)


def get_settings() -> Settings:
    """Settings as the environment says now: cached per value of the ``ORCHESTRATOR_*``
    variables (building them is slow; the step hot path asks often, and tests change the
    environment). Only the variables of known settings are looked at, one by one: walking
    the whole environment on every call cost more than the step itself."""
    key = tuple(os.environ.get(name) for name in _VARIABLES)
    settings = _cache.get(key)
    if settings is None:
        settings = _cache[key] = Settings()
    return settings
