"""Drives one run: feeds the execution loop's decisions to an executor and the executor's
events back to the loop, storing every event in the instance on the way.

On a shared (Redis) instance the driver also links the run to what the process shares
(``orchestrator.distributed.services``), whatever the executor:

- **cross-run limits**: the loop's arbiter is the executor's per-run arbiter chained with the
  Redis limiter, so deployment-wide tag limits bind in-process, multiprocess and Celery runs
  alike; the lease keeper renews the run's leases (and its ownership) from another thread;
- **the run's stream**: the stream pump hands the driver what other processes write there:
  slot grants, cancel requests and, for executors whose steps report through the stream
  (Celery), the steps' own events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from orchestrator.concurrency.limits import ChainedArbiter, SlotArbiter
from orchestrator.events import ErrorInfo, Event, EventType, make_event
from orchestrator.execution.context import RunContext
from orchestrator.execution.loop import CANCEL_REQUESTED, SLOT_GRANTED, ExecutionLoop
from orchestrator.executors.base import Executor
from orchestrator.storage.base import Instance, RunStatus

if TYPE_CHECKING:
    from orchestrator.concurrency.redis_arbiter import RedisArbiter
    from orchestrator.distributed.ownership import RunOwnership
    from orchestrator.distributed.services import RunServices

# What a driver takes from its run's stream: grants and cancel requests always; and, when the
# steps report through the stream (Celery), the events that move the loop.
CONTROL_KINDS = frozenset({SLOT_GRANTED, CANCEL_REQUESTED})
STEP_EVENT_TYPES = frozenset(
    t.value
    for t in (
        EventType.STEP_OUTPUT,
        EventType.STEP_SUCCESS,
        EventType.STEP_FAILURE,
        EventType.STEP_UP_FOR_RETRY,
    )
)
CANCEL_CHECK_SECONDS = 0.5


def fail_run(instance: Instance, run_id: str, exc: BaseException) -> None:
    """Store RUN_FAILURE for a run that could not be driven at all (so it never stays QUEUED)."""
    info = ErrorInfo.from_exception(exc)
    instance.store_event(
        make_event(
            EventType.RUN_FAILURE,
            run_id,
            f"Run failed in the engine: {info.cls_name}: {info.message}",
            error=info.to_dict(),
        )
    )


def _status_check(instance: Instance, run_id: str) -> Callable[[], bool]:
    """How a driver on an unshared instance learns of a cancel: the run's status, now and then
    (on a shared instance the cancel request reaches it on the run's stream)."""

    def check() -> bool:
        record = instance.get_run(run_id)
        return record is not None and record.status is RunStatus.CANCELING

    return check


class _SharedLinks:
    """A run's links to the process's shared services (see the module docstring)."""

    def __init__(
        self,
        services: RunServices,
        ctx: RunContext,
        executor: Executor,
        ownership: RunOwnership | None,
        cursor: str | None,
        on_poke: Callable[[], None] | None,
    ):
        from orchestrator.concurrency.redis_arbiter import RedisArbiter
        from orchestrator.distributed.pump import Inbox

        self.services = services
        types = STEP_EVENT_TYPES if executor.events_via_stream else frozenset()
        self.inbox = Inbox(ctx.run_id, types, CONTROL_KINDS, on_poke)
        self.arbiter: RedisArbiter = RedisArbiter(
            services.limiter, ctx.run_id, worker=services.renewer, on_grant=self.inbox.poke
        )
        services.pump.subscribe(self.inbox, cursor)
        self.handle = services.keeper.register(self.arbiter, ownership, self.inbox.poke, executor)

    def close(self, abandoned: bool) -> None:
        self.services.keeper.unregister(self.handle)
        self.services.pump.unsubscribe(self.inbox)
        if abandoned:
            self.arbiter.forget_all()  # the new owner takes the leases over
        else:
            self.arbiter.release_all()  # nothing of an ended run keeps a slot


def _links(
    ctx: RunContext,
    executor: Executor,
    instance: Instance,
    ownership: RunOwnership | None,
    cursor: str | None,
    on_poke: Callable[[], None] | None,
) -> _SharedLinks | None:
    from orchestrator.storage.redis import RedisInstance

    if not isinstance(instance, RedisInstance):
        return None
    from orchestrator.distributed.services import services_for

    return _SharedLinks(services_for(instance), ctx, executor, ownership, cursor, on_poke)


class RunDriver:
    """Drives one run a move at a time, so one thread can drive one run or many.

    Use: :meth:`begin`; then :meth:`advance` whenever something may have changed (the
    executor's :meth:`~Executor.wait` returned events, handed over with :meth:`absorb`; the
    run's inbox was poked; the deadline the last :meth:`advance` returned has passed); once
    :attr:`finished` or :attr:`abandoned`, :meth:`end`. If anything raises, :meth:`fail`.
    :func:`drive_run` does this in a loop for one run; a coordinator's run scheduler
    (``orchestrator.runs.scheduler``) does it for many runs in one thread.

    Args: as :func:`drive_run`, and ``on_poke``: called (from any thread) when the run's inbox
    gets something, instead of waking a thread blocked on it.
    """

    def __init__(
        self,
        ctx: RunContext,
        executor: Executor,
        instance: Instance,
        *,
        loop: ExecutionLoop | None = None,
        clock: Callable[[], float] = time.time,
        should_cancel: Callable[[], bool] | None = None,
        ownership: RunOwnership | None = None,
        resume: bool = False,
        max_lost_attempts: int = 3,
        on_poke: Callable[[], None] | None = None,
    ):
        self.ctx = ctx
        self.executor = executor
        self.instance = instance
        self.loop = loop
        self.clock = clock
        self.should_cancel = should_cancel
        self.ownership = ownership
        self.resume = resume
        self.max_lost_attempts = max_lost_attempts
        self.on_poke = on_poke
        self.finished = False  # every step is done (or the run was canceled and drained)
        self.abandoned = False  # another coordinator took the run over
        self._links: _SharedLinks | None = None
        self._arbiter: SlotArbiter | None = None
        self._started = 0.0
        self._next_cancel_check = 0.0

    def begin(self) -> None:
        """Record the run's start (or resumption) and start the executor."""
        ctx, instance, executor = self.ctx, self.instance, self.executor
        if self.resume:
            note = "Resuming the run from its event log"
            instance.store_events([make_event(EventType.ENGINE_EVENT, ctx.run_id, note)])
            cursor = ctx.event_cursor
        else:
            start = make_event(
                EventType.RUN_START,
                ctx.run_id,
                f"Started execution of run for {ctx.plan.job_name!r}",
            )
            if ctx.event_cursor is not None:  # read from after what the caller read
                instance.store_events([start])
                cursor = ctx.event_cursor
            else:
                cursor = str(instance.store_event(start))
        self._started = time.perf_counter()
        self._links = _links(ctx, executor, instance, self.ownership, cursor, self.on_poke)
        arbiter = executor.make_arbiter(ctx)
        if self._links is not None:
            arbiter = ChainedArbiter(arbiter, self._links.arbiter)
        elif self.should_cancel is None:
            self.should_cancel = _status_check(instance, ctx.run_id)
        self._arbiter = arbiter
        if self.loop is None:
            self.loop = ExecutionLoop(ctx.plan, ctx.run_id, arbiter, self.max_lost_attempts)
        else:
            self.loop.attach_arbiter(arbiter)
        executor.inbox = self._links.inbox if self._links is not None else None
        executor.start(ctx)
        if self.resume:
            executor.adopt_in_flight(self.loop.in_flight_launches())

    def advance(self) -> float | None:
        """Take in what changed, then let the loop decide and carry its decisions out.

        Returns the ``time.monotonic()`` by which to call again (a retry delay, a periodic
        check), or None when only new events or a poke can change anything.
        """
        loop, executor = self.loop, self.executor
        assert loop is not None
        if self.ownership is not None and self.ownership.lost:
            self.abandon()
            return None
        if self._links is not None:
            _take_from_stream(self._links, executor, loop)
        now = time.monotonic()
        if self.should_cancel is not None and now >= self._next_cancel_check:
            self._next_cancel_check = now + CANCEL_CHECK_SECONDS
            if not loop.canceled and self.should_cancel():
                loop.cancel()
        for step_key, attempt_id, reason in executor.lost_attempts():
            if attempt_id in loop.in_flight_attempts():
                self.instance.store_event(
                    loop.attempt_lost(step_key, attempt_id, reason, self.clock())
                )
        tick = loop.tick(self.clock())
        if tick.terminate:
            executor.terminate(tick.terminate)
        # Launch first: storing the loop's own events (one batch) then overlaps the steps'
        # start. Replay tolerates a worker's events logged before the launch record.
        for launch in tick.launch:
            executor.launch(launch)
        if tick.events:
            self.instance.store_events(tick.events)
        if tick.done:
            self.finished = True
            return None
        deadlines = []
        if tick.wake_at is not None:
            deadlines.append(now + max(0.0, tick.wake_at - self.clock()))
        if self.should_cancel is not None and not loop.canceled:
            deadlines.append(self._next_cancel_check)
        poll = executor.poll()
        if poll is not None:
            deadlines.append(now + poll)
        return min(deadlines, default=None)

    def abandon(self) -> None:
        """Stop driving the run and leave it as it is (its steps go on) for another owner."""
        if self.loop is not None:
            self.loop.abandoned = True
        self.abandoned = True
        self.executor.detach()

    def absorb(self, events: list[Event]) -> None:
        """Hand the loop events the executor's :meth:`~Executor.wait` returned."""
        assert self.loop is not None
        for event in events:
            if not self.executor.stores_events:
                self.instance.store_event(event)
            self.loop.handle(event)

    def end(self) -> ExecutionLoop:
        """Collect the steps' last events, release everything, and record how the run
        ended (nothing is recorded for an abandoned run: its new owner goes on with it)."""
        assert self.loop is not None
        if not self.abandoned:
            self.absorb(self.executor.finish())  # e.g. hooks of steps whose process is ending
        self._close()
        if not self.abandoned:
            duration = round((time.perf_counter() - self._started) * 1000, 3)
            self.instance.store_events([_end_event(self.ctx, self.loop, duration)])
        return self.loop

    def fail(self, exc: BaseException) -> None:
        """The machinery failed (not an op): fail the run with the error and release
        everything (queued Celery steps are revoked, slots freed)."""
        try:
            fail_run(self.instance, self.ctx.run_id, exc)
        finally:
            self._close()

    def _close(self) -> None:
        self.executor.close()
        if self._links is not None:
            self._links.close(abandoned=self.abandoned)
            self._links = None
        if self._arbiter is not None:
            self._arbiter.close()
            self._arbiter = None

    def run_to_end(self) -> ExecutionLoop:
        """Drive the run in this thread until it ends (or another coordinator takes it);
        returns the finished loop. An error of the machinery fails the run and is re-raised."""
        try:
            self.begin()
            while True:
                deadline = self.advance()
                if self.finished or self.abandoned:
                    break
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                self.absorb(self.executor.wait(timeout))
        except BaseException as exc:
            self.fail(exc)
            raise
        return self.end()


def drive_run(
    ctx: RunContext,
    executor: Executor,
    instance: Instance,
    *,
    loop: ExecutionLoop | None = None,
    clock: Callable[[], float] = time.time,
    should_cancel: Callable[[], bool] | None = None,
    ownership: RunOwnership | None = None,
    resume: bool = False,
    max_lost_attempts: int = 3,
) -> ExecutionLoop:
    """Run ``ctx``'s plan to the end on ``executor`` in this thread; returns the finished loop.

    The run's status follows from the events stored: RUN_START, then RUN_SUCCESS,
    RUN_FAILURE or RUN_CANCELED. An error in the machinery itself (not in an op) fails the
    run with that error rather than leaving it hanging, and is re-raised.

    Args:
        loop: a loop rebuilt from the run's event log (a resumed run).
        clock: time source of the loop.
        should_cancel: polled now and then on an unshared instance (default: the run's
            status says CANCELING).
        ownership: the caller's ownership of the run, renewed by the lease keeper; once
            another coordinator has taken the run over, this driver stops at once, leaving the
            run and its steps as they are (``loop.abandoned`` is set).
        resume: the run was started before (its RUN_START is stored).
        max_lost_attempts: attempts lost to dead workers before a step fails.
    """
    driver = RunDriver(
        ctx,
        executor,
        instance,
        loop=loop,
        clock=clock,
        should_cancel=should_cancel,
        ownership=ownership,
        resume=resume,
        max_lost_attempts=max_lost_attempts,
    )
    return driver.run_to_end()


def _take_from_stream(links: _SharedLinks, executor: Executor, loop: ExecutionLoop) -> None:
    """Hand the loop what the pump read from the run's stream (already stored there)."""
    events = links.inbox.drain()
    for event in events:
        if event.data.get("kind") == SLOT_GRANTED:
            links.arbiter.note_granted(str(event.data["attempt_id"]), int(event.data["token"]))
    if events:
        executor.observe(events)
    for event in events:
        loop.handle(event)


def _end_event(ctx: RunContext, loop: ExecutionLoop, duration_ms: float) -> Event:
    if loop.canceled:
        return make_event(
            EventType.RUN_CANCELED, ctx.run_id, "Run canceled", duration_ms=duration_ms
        )
    if loop.succeeded:
        return make_event(
            EventType.RUN_SUCCESS,
            ctx.run_id,
            f"Finished execution of run for {ctx.plan.job_name!r}",
            duration_ms=duration_ms,
        )
    failed = [k for k, s in loop.summary().items() if s == "failed"]
    return make_event(
        EventType.RUN_FAILURE,
        ctx.run_id,
        f"Execution of run for {ctx.plan.job_name!r} failed: steps {failed}",
        duration_ms=duration_ms,
        failed_steps=failed,
    )
