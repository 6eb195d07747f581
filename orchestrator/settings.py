"""Settings from the environment (``ORCHESTRATOR_*``), read with pydantic-settings."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.embedded import resolve_redis_url


class Settings(BaseSettings):
    """Deployment settings. Every field reads ``ORCHESTRATOR_<FIELD>`` from the environment.

    Attributes:
        home: local state (embedded server data, filesystem IO manager storage).
        redis_url: shared Redis; empty means "start or reuse the embedded Valkey server".
        key_prefix: prefix of every Redis key, so deployments and tests can share a server.
        storage_url: where the filesystem IO manager keeps outputs (a path or fsspec URL);
            empty means ``<home>/storage``.
        code_locations: what ``worker start``, ``coordinator start`` and ``ui`` serve when
            given no ``-f``/``-m``: comma-separated entries, each a Python file (ending in
            ``.py``, relative to the working directory) or a module name.
        api_token: the token the web UI and HTTP API ask for (empty: none, loopback only).
    """

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".orchestrator")
    redis_url: str = ""
    key_prefix: str = "orchestrator"
    storage_url: str = ""
    code_locations: str = ""
    # Celery: broker defaults to the Redis URL; queues are declared with this max priority.
    broker_url: str = ""
    result_backend: str = ""  # Celery results are not used by steps; set for `ping` round trips
    max_priority: int = 9
    # Liveness: a step attempt (and its concurrency slots) is held under a lease renewed every
    # heartbeat_interval; an attempt whose lease lapses is lost and started again.
    lease_seconds: float = 30.0
    heartbeat_interval: float = 5.0
    max_lost_attempts: int = 3
    # Redis broker only: unacknowledged messages of a dead worker come back after this long.
    visibility_timeout: float = 3600.0
    # A step queued this long on a queue no live worker consumes is reported.
    no_consumer_delay: float = 60.0
    # Run coordinator: runs driven at once by one coordinator process.
    max_concurrent_runs: int = 200
    # Web UI and HTTP API (`orchestrator ui`): when set, every endpoint but /api/health asks
    # for this token (Authorization: Bearer ..., or the UI's login cookie).
    api_token: str = ""

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
