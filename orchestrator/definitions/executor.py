"""Executor definitions: what a job declares about how its steps run (name, config model,
defaults), and the built-in ones with Dagster's names.

Declarative only: the runtime executors live in ``orchestrator.executors``, whose registry builds
one from a definition and validated config. Definitions therefore never import the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pydantic
from pydantic import BaseModel

from orchestrator.definitions.config import ConfigMapping, deep_merge, pydantic_problems
from orchestrator.definitions.executor_config import (
    CeleryConfig,
    InProcessConfig,
    MultiOrInProcessConfig,
    MultiprocessConfig,
)


@dataclass(frozen=True, eq=False)
class ExecutorDefinition:
    """How a job's steps are executed, plus the config it accepts.

    Attributes:
        name: e.g. ``in_process``, ``multiprocess``, ``celery``.
        config_model: pydantic model validating ``execution: {config: ...}``.
        factory: builds the runtime executor (an ``orchestrator.executors.base.Executor``)
            from validated config; ``None`` for the built-in executors, which
            ``orchestrator.executors.registry`` builds by ``builtin`` name.
        default_config: config used under whatever run config provides (``configured``).
        builtin: which built-in executor this is (kept by ``configured`` copies, which may
            rename it).
    """

    name: str
    config_model: type[BaseModel]
    factory: Callable[[Any], Any] | None = None
    default_config: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None
    # set by configured(fn, config_schema=...): run config is the fn's input, mapped onto ours
    config_mapping: Any = None
    builtin: str | None = None

    def configured(
        self,
        config_or_config_fn: Any,
        name: str | None = None,
        config_schema: Any = None,
        description: str | None = None,
    ) -> ExecutorDefinition:
        """A copy of this executor with fixed config (a dict, merged over its defaults), or
        whose run config (validated by ``config_schema``) a function maps onto its own."""
        if callable(config_or_config_fn):
            return replace(
                self,
                name=name or self.name,
                description=description or self.description,
                config_mapping=ConfigMapping(config_or_config_fn, config_schema),
            )
        return replace(
            self,
            name=name or self.name,
            description=description or self.description,
            default_config=deep_merge(self.default_config, config_or_config_fn),
        )

    def validate_config(self, raw: Mapping[str, Any] | None) -> tuple[Any, list[tuple[str, str]]]:
        """Validate run config ``execution.config`` merged over the defaults."""
        if self.config_mapping is not None:
            mapped, problems = self.config_mapping.map_config(raw, "execution.config")
            if problems:
                return None, problems
            raw = mapped
        merged = deep_merge(self.default_config, raw or {})
        try:
            return self.config_model.model_validate(merged), []
        except pydantic.ValidationError as exc:
            return None, pydantic_problems(exc, "execution.config", self.config_model)


in_process_executor = ExecutorDefinition(
    name="in_process",
    config_model=InProcessConfig,
    builtin="in_process",
    description="Runs steps one at a time in the launching process.",
)

multiprocess_executor = ExecutorDefinition(
    name="multiprocess",
    config_model=MultiprocessConfig,
    builtin="multiprocess",
    description="Runs each step in a child process, up to max_concurrent at once.",
)

multi_or_in_process_executor = ExecutorDefinition(
    name="multi_or_in_process",
    config_model=MultiOrInProcessConfig,
    builtin="multi_or_in_process",
    description="Multiprocess unless run config says execution: {config: {in_process: {}}}.",
)

celery_executor = ExecutorDefinition(
    name="celery",
    config_model=CeleryConfig,
    builtin="celery",
    description="Runs each step as a Celery task on the queue named by its "
    "orchestrator/queue tag, under cross-run tag concurrency limits held in Redis.",
)
