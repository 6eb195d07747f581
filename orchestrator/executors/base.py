"""Executor definitions and the runtime interface every executor implements.

An ``ExecutorDefinition`` is declarative (name, config model, defaults); ``build`` turns validated
config into an :class:`Executor`, which only knows how to *launch* a step and hand back the
events steps produce. Deciding what to launch is the execution loop's job, shared by all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pydantic
from pydantic import BaseModel

from orchestrator.definitions.config import ConfigMapping, deep_merge, pydantic_problems

if TYPE_CHECKING:
    from orchestrator.concurrency.limits import SlotArbiter
    from orchestrator.distributed.pump import Inbox
    from orchestrator.execution.context import RunContext
    from orchestrator.execution.events import Event
    from orchestrator.execution.loop import Launch


@dataclass(frozen=True, eq=False)
class ExecutorDefinition:
    """How a job's steps are executed, plus the config it accepts.

    Attributes:
        name: e.g. ``in_process``, ``multiprocess``, ``celery``.
        config_model: pydantic model validating ``execution: {config: ...}``.
        factory: builds the runtime :class:`Executor` from validated config.
        default_config: config used under whatever run config provides (``configured``).
    """

    name: str
    config_model: type[BaseModel]
    factory: Callable[[Any], Executor]
    default_config: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None
    # set by configured(fn, config_schema=...): run config is the fn's input, mapped onto ours
    config_mapping: Any = None

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

    def build(self, config: Any) -> Executor:
        """The runtime executor for validated ``config``."""
        return self.factory(config)


class Executor(ABC):
    """Runtime side of an executor: launches steps, returns the events they produce."""

    #: True when steps run in the calling process (outputs may stay in memory).
    in_process: bool = False
    #: Whether ``RetryPolicy`` applies (executor config ``retries``).
    retries_enabled: bool = True
    #: True when step events are already in the instance when the driver sees them (the
    #: step runner stores them as they come, or workers write them to the run's stream);
    #: otherwise the driver stores what ``wait`` returns.
    stores_events: bool = False
    #: True when steps report through the run's event stream (Celery workers): the driver's
    #: inbox then carries every event of the run, and ``wait`` only waits on it.
    events_via_stream: bool = False
    #: Set by the driver before ``start`` on a shared instance: the run's inbox, fed by the
    #: process's stream pump. ``wait`` must return early when it is poked (a slot granted, a
    #: cancel requested, an event from a worker).
    inbox: Inbox | None = None

    @abstractmethod
    def make_arbiter(self, ctx: RunContext) -> SlotArbiter:
        """The slot arbiter enforcing this executor's per-run limits (the driver chains the
        cross-run limiter after it on a shared instance)."""

    @abstractmethod
    def start(self, ctx: RunContext) -> None:
        """Prepare to run steps of ``ctx``'s run (start pools, connections)."""

    @abstractmethod
    def launch(self, launch: Launch) -> None:
        """Start one step attempt; must not block on the step's completion."""

    @abstractmethod
    def wait(self, timeout: float | None) -> list[Event]:
        """Block until some step events are available, the inbox is poked, or ``timeout``
        seconds pass (None: no limit)."""

    def poll(self) -> float | None:
        """Periodic work that does not wait (e.g. finding steps whose worker is gone); returns
        the seconds until it wants to run again, or None if it never needs to. The driver
        calls it after every move and wakes in time for the next one."""
        return None

    def queue_checks(self, pipe: Any) -> int:
        """Periodic checks that read Redis (e.g. whether the workers running its steps are
        alive): queue the reads on ``pipe``, which the process's lease keeper runs for every
        run at once each renewal interval; returns how many replies they take."""
        return 0

    def take_checks(self, replies: list[Any]) -> bool:
        """(Lease keeper thread.) Act on the replies of :meth:`queue_checks`; True when the
        run's driver must look again (a step found lost)."""
        return False

    def observe(self, events: list[Event]) -> None:  # noqa: B027 - optional hook
        """Events the driver took from the run's stream (inbox), before the loop sees them."""

    def adopt_in_flight(self, launches: list[Launch]) -> None:
        """A resumed run had these attempts in flight under a coordinator that stopped. By
        default they are lost (their processes were that coordinator's); executors whose
        steps outlive the coordinator (Celery) keep watching them instead."""
        self._orphans = [
            (lch.step_key, lch.attempt_id, "its process belonged to a coordinator that stopped")
            for lch in launches
        ]

    def lost_attempts(self) -> list[tuple[str, str, str]]:
        """(step key, attempt id, reason) of in-flight attempts found dead since the last call
        (their worker is gone)."""
        lost: list[tuple[str, str, str]] = getattr(self, "_orphans", [])
        self._orphans = []
        return lost

    def finish(self) -> list[Event]:
        """The run's steps are all done: wait (bounded) for their processes to end and return
        their last events (hooks and teardown run after a step's final event)."""
        return []

    def detach(self) -> None:  # noqa: B027 - optional hook
        """Another coordinator now drives the run: stop watching its steps, leave them be."""

    @abstractmethod
    def terminate(self, attempt_ids: list[str]) -> None:
        """Stop attempts in flight (cancellation)."""

    @abstractmethod
    def close(self) -> None:
        """Release everything ``start`` acquired."""
