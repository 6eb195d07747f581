"""Contexts: what a run carries to its steps (``RunContext``) and what an op sees
(``OpExecutionContext``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.events import Event, EventType, make_event
from orchestrator.execution.resource_scope import Resources, ResourceScope

if TYPE_CHECKING:
    from orchestrator.definitions.job import JobDefinition
    from orchestrator.plan.steps import ExecutionPlan


@dataclass
class RunContext:
    """Everything the step runner needs about a run, in whatever process it runs.

    Attributes:
        run_id: the run.
        job: the job definition (resources overridden as the run asked).
        plan: the run's plan.
        run_tags: the run's tags.
        emit: where step events go (a list, a queue, a Redis stream...).
        input_values: Python values for ``input_value`` step inputs.
        retries_enabled: whether ``RetryPolicy`` applies (executor config).
        resources: a run-wide resource scope (in-process), or None to build per step.
        loggers: Python loggers that ``context.log`` also writes to.
    """

    run_id: str
    job: JobDefinition
    plan: ExecutionPlan
    run_tags: Mapping[str, str]
    emit: Callable[[Event], object]
    input_values: Mapping[str, Any] = field(default_factory=dict)
    retries_enabled: bool = True
    resources: ResourceScope | None = None
    loggers: list[logging.Logger] = field(default_factory=list)
    instance: Any = None
    pointer: Mapping[str, Any] | None = None  # the job pointer (JSON), for out-of-process steps
    event_cursor: str | None = None  # resumed runs: read the run's stream after this event
    plan_digest: str | None = None  # the plan is stored under this digest already (launched)

    @property
    def partition_key(self) -> str | None:
        return self.plan.partition_key


class LogManager:
    """``context.log``: writes to the run's loggers and records a LOG_MESSAGE event."""

    def __init__(
        self,
        run_id: str,
        step_key: str | None,
        loggers: list[logging.Logger],
        emit: Callable[[Event], object] | None,
    ):
        self.run_id = run_id
        self.step_key = step_key
        self.loggers = loggers or [logging.getLogger("orchestrator")]
        self._emit = emit

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        text = msg % args if args else str(msg)
        prefix = f"{self.run_id[:8]} - {self.step_key} - " if self.step_key else ""
        for lg in self.loggers:
            lg.log(level, prefix + text, **kwargs)
        if self._emit is not None:
            self._emit(
                make_event(
                    EventType.LOG_MESSAGE,
                    self.run_id,
                    text,
                    step_key=self.step_key,
                    level=logging.getLevelName(level),
                )
            )

    def debug(self, msg: str, *args: Any, **kw: Any) -> None:
        self.log(logging.DEBUG, msg, *args, **kw)

    def info(self, msg: str, *args: Any, **kw: Any) -> None:
        self.log(logging.INFO, msg, *args, **kw)

    def warning(self, msg: str, *args: Any, **kw: Any) -> None:
        self.log(logging.WARNING, msg, *args, **kw)

    warn = warning

    def error(self, msg: str, *args: Any, **kw: Any) -> None:
        self.log(logging.ERROR, msg, *args, **kw)

    def exception(self, msg: str, *args: Any, **kw: Any) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=True, **kw)

    def critical(self, msg: str, *args: Any, **kw: Any) -> None:
        self.log(logging.CRITICAL, msg, *args, **kw)


_current_log: ContextVar[LogManager | None] = ContextVar("orchestrator_step_log", default=None)
USER_LOGGER = "orchestrator.user"


@contextmanager
def logging_to(log: LogManager) -> Iterator[None]:
    """While an op runs, lines of :func:`get_dagster_logger` loggers go to its run log."""
    token = _current_log.set(log)
    try:
        yield
    finally:
        _current_log.reset(token)


class _ToStepLog(logging.Filter):
    """On the user loggers' root: inside a running op, a record becomes a line of that op's
    run log (and goes no further); outside one, it propagates as usual."""

    def filter(self, record: logging.LogRecord) -> bool:
        log = _current_log.get()
        if log is None:
            return True
        log.log(record.levelno, record.getMessage())
        return False


def get_dagster_logger(name: str | None = None) -> logging.Logger:
    """A Python logger for code an op calls (helpers that have no ``context``): inside a running
    op its lines are written to the run's log like ``context.log``'s; elsewhere it is a plain
    logger under ``orchestrator.user``."""
    logger = logging.getLogger(f"{USER_LOGGER}.{name}" if name else USER_LOGGER)
    if not any(isinstance(f, _ToStepLog) for f in logger.filters):
        logger.addFilter(_ToStepLog())
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.DEBUG)
    return logger


class OpExecutionContext:
    """What an op's ``context`` parameter receives.

    Attributes:
        log: logger whose lines also go to the run's event log.
        op_config: the op's validated config.
        resources: the resources the op asked for.
        run_id: the run.
        op_handle: the op's node handle (``outer.inner.op``); also ``step_key``. For a
            mapped op, the step key (``process[a]``).
        retry_number: 0 on the first attempt, then 1, 2, ...
        partition_key: the run's partition (raises if the run has none).
        run_tags: the run's tags.
        job_name: the job.
    """

    def __init__(
        self,
        *,
        run_id: str,
        job_name: str,
        op_handle: str,
        op_def: Any,
        op_config: Any,
        resources: Resources,
        log: LogManager,
        retry_number: int = 0,
        partition_key: str | None = None,
        run_tags: Mapping[str, str] | None = None,
        run_config: Mapping[str, Any] | None = None,
        instance: Any = None,
        mapping_key: str | None = None,
    ):
        self.run_id = run_id
        self._mapping_key = mapping_key
        self.job_name = job_name
        self.op_handle = op_handle
        self.step_key = op_handle
        self.op_def = op_def
        self.op_config = op_config
        self.resources = resources
        self.log = log
        self.retry_number = retry_number
        self._partition_key = partition_key
        self.run_tags = dict(run_tags or {})
        self.run_config = dict(run_config or {})
        self.instance = instance
        self._logged: list[Any] = []
        self._output_metadata: dict[str, dict[str, Any]] = {}

    def get_mapping_key(self) -> str | None:
        """The mapping key of a mapped step (``a`` for ``process[a]``), else None."""
        return self._mapping_key

    def log_event(self, event: Any) -> None:
        """Record an ``AssetMaterialization``, ``AssetObservation`` or ``ExpectationResult``
        as an event of this step (``get_events()`` returns them in a unit test)."""
        from orchestrator.events import logged_event

        built = logged_event(self.run_id, self.op_handle, self.retry_number + 1, event)
        self._logged.append(event)
        if self.log._emit is not None:
            self.log._emit(built)

    def get_events(self) -> list[Any]:
        """What this context logged with :meth:`log_event` (for unit tests)."""
        return list(self._logged)

    def add_output_metadata(
        self, metadata: Mapping[str, Any], output_name: str | None = None
    ) -> None:
        """Metadata for an output of this step, recorded on its ``STEP_OUTPUT`` event (merged
        with ``Output(metadata=...)``). ``output_name`` may be left out for one output."""
        if output_name is None:
            outs = list(getattr(self.op_def, "outs", None) or ["result"])
            if len(outs) != 1:
                from orchestrator.errors import InvalidInvocationError

                raise InvalidInvocationError(
                    f"op {self.op_handle!r} has outputs {outs}: name one with output_name="
                )
            output_name = outs[0]
        self._output_metadata.setdefault(output_name, {}).update(metadata)

    def get_output_metadata(self, output_name: str = "result") -> dict[str, Any]:
        return dict(self._output_metadata.get(output_name, {}))

    @property
    def partition_key(self) -> str:
        if self._partition_key is None:
            from orchestrator.errors import PartitionError

            raise PartitionError("this run has no partition; check has_partition_key first")
        return self._partition_key

    @property
    def has_partition_key(self) -> bool:
        return self._partition_key is not None

    @property
    def op(self) -> Any:
        return self.op_def

    def get_tag(self, key: str) -> str | None:
        return self.run_tags.get(key)

    def has_tag(self, key: str) -> bool:
        return key in self.run_tags
