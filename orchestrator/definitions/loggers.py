"""Loggers: ``@logger``, ``LoggerDefinition`` and the default console logger."""

from __future__ import annotations

import inspect
import logging
import sys
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

    def __call__(self, init_context: InitLoggerContext | None = None) -> logging.Logger:
        """Build the logger directly (tests): ``my_logger(build_init_logger_context(...))``,
        or ``my_logger(None)`` for its default config; the config given is validated and its
        defaults filled in, as for a run."""
        given = init_context.logger_config if init_context is not None else None
        config = given
        if self.config_schema is not None:
            config, problems = self.config_schema.validate(given, "logger config")
            if problems:
                from orchestrator.errors import ConfigError

                raise ConfigError(problems, heading="Invalid logger config")
        run_id = init_context.run_id if init_context is not None else None
        return self.logger_fn(InitLoggerContext(logger_config=config, run_id=run_id))

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


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged (test runners and
    notebooks swap it after the handler is made)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _prints(log: logging.Logger) -> bool:
    """Whether records of ``log`` already reach the console through a handler on it or an
    ancestor (an application's logging set-up), so a console handler would print them
    twice. Capturing handlers (pytest's, writing to memory) do not count."""
    consoles = (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
    current: logging.Logger | None = log
    while current is not None:
        for handler in current.handlers:
            if isinstance(handler, CurrentStderrHandler):
                return True
            if isinstance(handler, logging.StreamHandler) and handler.stream in consoles:
                return True
        current = current.parent if current.propagate else None
    return False


def _console(init_context: InitLoggerContext) -> logging.Logger:
    cfg = init_context.logger_config or {}
    log = logging.getLogger(cfg.get("name", "orchestrator"))
    log.setLevel(cfg.get("log_level", "INFO").upper())
    if not _prints(log):  # print, as Dagster's console logger does, unless already printed
        handler = CurrentStderrHandler()
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
