"""Config models of the built-in executors (validated like any other config)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.concurrency.config import TagConcurrencyLimit


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetriesConfig(_Strict):
    """``{"enabled": {}}`` (default) or ``{"disabled": {}}``: whether ``RetryPolicy`` applies."""

    enabled: dict[str, Any] | None = None
    disabled: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> RetriesConfig:
        if self.enabled is not None and self.disabled is not None:
            raise ValueError("give one of 'enabled' or 'disabled', not both")
        return self

    @property
    def is_enabled(self) -> bool:
        return self.disabled is None


class InProcessConfig(_Strict):
    retries: RetriesConfig = Field(default_factory=RetriesConfig)


class ForkserverConfig(_Strict):
    preload_modules: list[str] = Field(default_factory=list)


class StartMethod(_Strict):
    """``{"spawn": {}}`` or ``{"forkserver": {"preload_modules": [...]}}``."""

    spawn: dict[str, Any] | None = None
    forkserver: ForkserverConfig | None = None

    @model_validator(mode="after")
    def _one(self) -> StartMethod:
        if self.spawn is not None and self.forkserver is not None:
            raise ValueError("give one of 'spawn' or 'forkserver', not both")
        return self

    @property
    def name(self) -> str:
        return "forkserver" if self.forkserver is not None else "spawn"


class MultiprocessConfig(_Strict):
    """Config of ``multiprocess_executor``.

    Attributes:
        max_concurrent: step processes at once (default: CPU count).
        start_method: ``spawn`` or ``forkserver`` (with ``preload_modules``).
        tag_concurrency_limits: per-run limits.
        retries: whether op ``RetryPolicy`` applies.
        reuse_processes: run successive steps in the same child processes (at most
            ``max_concurrent`` of them) instead of a fresh process per step: much less
            start-up per step, but steps share a process's module state; a child that dies
            still fails only the step it was running, and is replaced.
    """

    max_concurrent: int | None = Field(default=None, ge=0)
    start_method: StartMethod = Field(default_factory=StartMethod)
    tag_concurrency_limits: list[TagConcurrencyLimit] = Field(default_factory=list)
    retries: RetriesConfig = Field(default_factory=RetriesConfig)
    reuse_processes: bool = False


class MultiOrInProcessConfig(_Strict):
    """``{"multiprocess": {...}}`` (default) or ``{"in_process": {...}}``."""

    in_process: InProcessConfig | None = None
    multiprocess: MultiprocessConfig | None = None

    @model_validator(mode="after")
    def _one(self) -> MultiOrInProcessConfig:
        if self.in_process is not None and self.multiprocess is not None:
            raise ValueError("give one of 'in_process' or 'multiprocess', not both")
        return self


class CeleryConfig(_Strict):
    """Config of ``celery_executor``.

    Attributes:
        broker: broker URL (default: ``ORCHESTRATOR_BROKER_URL``, else the Redis URL).
        backend: Celery result backend (unused by the executor; events travel in Redis).
        include: extra task modules for the Celery app.
        config_source: Celery settings applied on top of the defaults.
        retries: whether op ``RetryPolicy`` applies (lost attempts are counted apart).
        tag_concurrency_limits: per-run limits, on top of the cross-run limits in Redis.
    """

    broker: str | None = None
    backend: str | None = None
    include: list[str] = Field(default_factory=list)
    config_source: dict[str, Any] = Field(default_factory=dict)
    retries: RetriesConfig = Field(default_factory=RetriesConfig)
    tag_concurrency_limits: list[TagConcurrencyLimit] = Field(default_factory=list)
