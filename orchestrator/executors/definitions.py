"""The built-in executor definitions (public names, as in Dagster)."""

from __future__ import annotations

from typing import Any

from orchestrator.executors.base import Executor, ExecutorDefinition
from orchestrator.executors.config import (
    CeleryConfig,
    InProcessConfig,
    MultiOrInProcessConfig,
    MultiprocessConfig,
)


def _in_process(config: InProcessConfig) -> Executor:
    from orchestrator.executors.in_process import InProcessExecutor

    return InProcessExecutor(config)


def _multiprocess(config: MultiprocessConfig) -> Executor:
    from orchestrator.executors.multiprocess import MultiprocessExecutor

    return MultiprocessExecutor(config)


def _multi_or_in_process(config: MultiOrInProcessConfig) -> Executor:
    if config.in_process is not None:
        return _in_process(config.in_process)
    return _multiprocess(config.multiprocess or MultiprocessConfig())


in_process_executor = ExecutorDefinition(
    name="in_process",
    config_model=InProcessConfig,
    factory=_in_process,
    description="Runs steps one at a time in the launching process.",
)

multiprocess_executor = ExecutorDefinition(
    name="multiprocess",
    config_model=MultiprocessConfig,
    factory=_multiprocess,
    description="Runs each step in a child process, up to max_concurrent at once.",
)

multi_or_in_process_executor = ExecutorDefinition(
    name="multi_or_in_process",
    config_model=MultiOrInProcessConfig,
    factory=_multi_or_in_process,
    description="Multiprocess unless run config says execution: {config: {in_process: {}}}.",
)


def executor_summary(definition: ExecutorDefinition) -> dict[str, Any]:
    return {"name": definition.name, "config": dict(definition.default_config)}


def _celery(config: CeleryConfig) -> Executor:
    from orchestrator.executors.celery import CeleryExecutor

    return CeleryExecutor(config)


celery_executor = ExecutorDefinition(
    name="celery",
    config_model=CeleryConfig,
    factory=_celery,
    description="Runs each step as a Celery task on the queue named by its "
    "orchestrator/queue tag, under cross-run tag concurrency limits held in Redis.",
)
