"""The runtime interface every executor implements.

An :class:`Executor` only knows how to *launch* a step and hand back the events steps produce.
Deciding what to launch is the execution loop's job, shared by all. What a job declares (name,
config model, defaults) is an ``ExecutorDefinition`` (``orchestrator.definitions.executor``);
``orchestrator.executors.registry.build_executor`` turns one plus validated config into an
executor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.concurrency.limits import SlotArbiter
    from orchestrator.distributed.pump import Inbox
    from orchestrator.events import Event
    from orchestrator.execution.context import RunContext
    from orchestrator.execution.loop import Launch


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
