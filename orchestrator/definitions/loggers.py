"""Loggers: ``@logger``, ``LoggerDefinition`` and the default console logger."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.definitions.config import (
    ConfigSchema,
    ConfiguredSchema,
    Field,
    as_config_schema,
    configured_schema,
)


@dataclass
class InitLoggerContext:
    """What a logger function receives: its validated config and the run's identity."""

    logger_config: Any
    run_id: str | None = None
    job_name: str | None = None


class LoggerDefinition:
    """Builds a ``logging.Logger`` for a run from config.

    Args:
        logger_fn: called with an ``InitLoggerContext``; returns a ``logging.Logger``.
        config_schema: schema of the logger's config.
        description: shown in docs.
    """

    def __init__(
        self,
        logger_fn: Callable[[InitLoggerContext], logging.Logger],
        config_schema: Any = None,
        description: str | None = None,
    ):
        self.logger_fn = logger_fn
        self.config_schema: ConfigSchema | ConfiguredSchema | None = as_config_schema(
            config_schema, "logger"
        )
        self.description = description

    def __call__(self, init_context: InitLoggerContext) -> logging.Logger:
        """Build the logger directly (tests): ``my_logger(build_init_logger_context(...))``."""
        return self.logger_fn(init_context)

    def configured(
        self, config_or_config_fn: Any, config_schema: Any = None, name: str | None = None
    ) -> LoggerDefinition:
        """A new logger whose config is fixed (a dict) or computed by a function of new
        config (validated by ``config_schema``) onto this logger's config."""
        copy = LoggerDefinition(self.logger_fn, description=self.description)
        copy.config_schema = configured_schema(
            self.config_schema, config_or_config_fn, config_schema, name or "logger"
        )
        return copy


def logger(
    fn: Any = None,
    description: str | None = None,
    *,
    config_schema: Any = None,
) -> Any:
    """Decorator turning ``fn(init_context) -> logging.Logger`` into a ``LoggerDefinition``;
    also ``@logger(config_schema, description)`` with the schema first, as in Dagster."""
    if fn is not None and not inspect.isfunction(fn):
        config_schema, fn = fn, None

    def wrap(f: Callable[..., Any]) -> LoggerDefinition:
        return LoggerDefinition(f, config_schema, description or f.__doc__)

    return wrap(fn) if fn is not None else wrap


def _console(init_context: InitLoggerContext) -> logging.Logger:
    cfg = init_context.logger_config or {}
    log = logging.getLogger(cfg.get("name", "orchestrator"))
    log.setLevel(cfg.get("log_level", "INFO").upper())
    if not log.hasHandlers():  # nothing configured logging: print, as Dagster's console does
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(message)s"))
        log.addHandler(handler)
    return log


colored_console_logger = LoggerDefinition(
    _console,
    config_schema={
        "log_level": Field(str, default_value="INFO"),
        "name": Field(str, default_value="orchestrator"),
    },
    description="Logs to Python's logging under the given name and level.",
)

default_loggers: dict[str, LoggerDefinition] = {"console": colored_console_logger}


def build_init_logger_context(
    logger_config: Any = None, job_def: Any = None, run_id: str | None = None
) -> InitLoggerContext:
    """An ``InitLoggerContext`` for building a logger directly in a unit test."""
    return InitLoggerContext(logger_config=logger_config, run_id=run_id)
