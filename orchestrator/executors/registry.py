"""Builds the runtime executor an ``ExecutorDefinition`` names, from validated config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.definitions.executor import ExecutorDefinition
from orchestrator.definitions.executor_config import (
    CeleryConfig,
    InProcessConfig,
    MultiOrInProcessConfig,
    MultiprocessConfig,
)
from orchestrator.errors import DefinitionError
from orchestrator.executors.base import Executor


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


def _celery(config: CeleryConfig) -> Executor:
    # imported on use: Celery and kombu cost a noticeable start-up time
    from orchestrator.executors.celery import CeleryExecutor

    return CeleryExecutor(config)


BUILTIN: dict[str, Callable[[Any], Executor]] = {
    "in_process": _in_process,
    "multiprocess": _multiprocess,
    "multi_or_in_process": _multi_or_in_process,
    "celery": _celery,
}


def build_executor(definition: ExecutorDefinition, config: Any) -> Executor:
    """The runtime executor of ``definition`` for validated ``config``.

    Raises:
        DefinitionError: the definition has neither a factory nor a known built-in name.
    """
    if definition.factory is not None:
        executor: Executor = definition.factory(config)
        return executor
    if definition.builtin in BUILTIN:
        return BUILTIN[definition.builtin](config)
    raise DefinitionError(
        f"executor {definition.name!r} has no factory: give ExecutorDefinition(factory=...) a "
        f"function building an Executor from its config (built-in executors: "
        f"{', '.join(sorted(BUILTIN))})"
    )
