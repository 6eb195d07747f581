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
from orchestrator.execution.context import RunContext
from orchestrator.execution.events import ErrorInfo, Event, EventType, make_event
from orchestrator.execution.loop import CANCEL_REQUESTED, SLOT_GRANTED, ExecutionLoop
from orchestrator.executors.base import Executor
from orchestrator.storage.base import Instance, RunStatus

if TYPE_CHECKING:
    from orchestrator.concurrency.redis_arbiter import RedisArbiter
    from orchestrator.distributed.ownership import RunOwnership
    from orchestrator.distributed.services import RunServices

CONTROL_KINDS = frozenset({SLOT_GRANTED, CANCEL_REQUESTED})
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
    ):
        from orchestrator.concurrency.redis_arbiter import RedisArbiter
        from orchestrator.distributed.pump import Inbox

        self.services = services
        self.inbox = Inbox(ctx.run_id, None if executor.events_via_stream else CONTROL_KINDS)
        self.arbiter: RedisArbiter = RedisArbiter(
            services.limiter, ctx.run_id, worker=services.renewer, on_grant=self.inbox.poke
        )
        services.pump.subscribe(self.inbox, cursor)
        self.handle = services.keeper.register(self.arbiter, ownership, self.inbox.poke)

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
) -> _SharedLinks | None:
    from orchestrator.storage.redis import RedisInstance

    if not isinstance(instance, RedisInstance):
        return None
    from orchestrator.distributed.services import services_for

    return _SharedLinks(services_for(instance), ctx, executor, ownership, cursor)


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
    """Run ``ctx``'s plan to the end on ``executor``; returns the finished loop.

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
    store: Callable[[Event], object] = instance.store_event
    if resume:
        store(make_event(EventType.ENGINE_EVENT, ctx.run_id, "Resuming the run from its event log"))
        cursor = ctx.event_cursor
    else:
        start = make_event(
            EventType.RUN_START, ctx.run_id, f"Started execution of run for {ctx.plan.job_name!r}"
        )
        cursor = str(store(start))
    started = time.perf_counter()
    links: _SharedLinks | None = None
    arbiter: SlotArbiter | None = None
    try:
        links = _links(ctx, executor, instance, ownership, cursor)
        arbiter = executor.make_arbiter(ctx)
        if links is not None:
            arbiter = ChainedArbiter(arbiter, links.arbiter)
        elif should_cancel is None:
            should_cancel = _status_check(instance, ctx.run_id)
        if loop is None:
            loop = ExecutionLoop(ctx.plan, ctx.run_id, arbiter, max_lost_attempts)
        else:
            loop.attach_arbiter(arbiter)
        executor.inbox = links.inbox if links is not None else None
        executor.start(ctx)
        if resume:
            executor.adopt_in_flight(loop.in_flight_launches())
        next_check = 0.0
        while True:
            if ownership is not None and ownership.lost:
                loop.abandoned = True
                executor.detach()
                return loop
            if should_cancel is not None and time.monotonic() >= next_check:
                next_check = time.monotonic() + CANCEL_CHECK_SECONDS
                if not loop.canceled and should_cancel():
                    loop.cancel()
            for step_key, attempt_id, reason in executor.lost_attempts():
                if attempt_id in loop.in_flight_attempts():
                    store(loop.attempt_lost(step_key, attempt_id, reason, clock()))
            tick = loop.tick(clock())
            if tick.terminate:
                executor.terminate(tick.terminate)
            # Launch first: storing the loop's own events (one batch) then overlaps the steps'
            # start. Replay tolerates a worker's events logged before the launch record.
            for launch in tick.launch:
                executor.launch(launch)
            if tick.events:
                instance.store_events(tick.events)
            if tick.done:
                break
            timeout = None if tick.wake_at is None else max(0.0, tick.wake_at - clock())
            if should_cancel is not None and not loop.canceled:
                timeout = min(timeout or CANCEL_CHECK_SECONDS, CANCEL_CHECK_SECONDS)
            for event in executor.wait(timeout):
                if not executor.stores_events:
                    store(event)
                loop.handle(event)
            if links is not None:
                _take_from_stream(links, executor, loop)
        for event in executor.finish():  # e.g. hook events of steps whose process is ending
            if not executor.stores_events:
                store(event)
    except BaseException as exc:
        fail_run(instance, ctx.run_id, exc)
        raise
    finally:
        executor.close()
        if links is not None:
            links.close(abandoned=loop is not None and loop.abandoned)
        if arbiter is not None:
            arbiter.close()
    store(_end_event(ctx, loop, round((time.perf_counter() - started) * 1000, 3)))
    return loop


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
