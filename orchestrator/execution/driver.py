"""Drives one run: feeds the execution loop's decisions to an executor and the executor's
events back to the loop, storing every event in the instance on the way."""

from __future__ import annotations

import time
from collections.abc import Callable

from orchestrator.execution.context import RunContext
from orchestrator.execution.events import ErrorInfo, Event, EventType, make_event
from orchestrator.execution.loop import ExecutionLoop
from orchestrator.executors.base import Executor
from orchestrator.storage.base import Instance, RunStatus


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


CANCEL_CHECK_SECONDS = 0.5


def _cancel_requested(instance: Instance, run_id: str, executor: Executor) -> Callable[[], bool]:
    """How the driver learns of `orchestrator run cancel`: executors that read the run's stream
    see its cancel event themselves; for the others the run's status is checked."""
    if executor.watches_run_stream:
        return lambda: False

    def check() -> bool:
        record = instance.get_run(run_id)
        return record is not None and record.status is RunStatus.CANCELING

    return check


def drive_run(
    ctx: RunContext,
    executor: Executor,
    instance: Instance,
    *,
    loop: ExecutionLoop | None = None,
    clock: Callable[[], float] = time.time,
    should_cancel: Callable[[], bool] | None = None,
    still_owner: Callable[[], bool] | None = None,
    resume: bool = False,
    max_lost_attempts: int = 3,
) -> ExecutionLoop:
    """Run ``ctx``'s plan to the end on ``executor``; returns the finished loop.

    The run's status follows from the events stored: RUN_START, then RUN_SUCCESS,
    RUN_FAILURE or RUN_CANCELED. An error in the machinery itself (not in an op) fails the
    run with that error rather than leaving it hanging, and is re-raised.

    Args:
        still_owner: checked now and then (it also renews the caller's ownership of the run);
            once it returns False another coordinator drives the run: this driver stops at
            once, leaving the run and its steps as they are (``loop.abandoned`` is set).
    """
    store: Callable[[Event], object] = instance.store_event
    if resume:
        note = "Resuming the run from its event log"
        store(make_event(EventType.ENGINE_EVENT, ctx.run_id, note))
    else:
        store(
            make_event(
                EventType.RUN_START,
                ctx.run_id,
                f"Started execution of run for {ctx.plan.job_name!r}",
            )
        )
    started = time.perf_counter()
    if should_cancel is None:
        should_cancel = _cancel_requested(instance, ctx.run_id, executor)
    next_check = 0.0
    arbiter = None
    try:
        arbiter = executor.make_arbiter(ctx)
        if loop is None:
            loop = ExecutionLoop(ctx.plan, ctx.run_id, arbiter, max_lost_attempts)
        else:
            loop.attach_arbiter(arbiter)
        executor.start(ctx)
        if resume:
            executor.adopt_in_flight(loop.in_flight_launches())
        while True:
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + CANCEL_CHECK_SECONDS
                if still_owner is not None and not still_owner():
                    loop.abandoned = True
                    executor.detach()
                    return loop
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
            if still_owner is not None or (not executor.watches_run_stream and not loop.canceled):
                timeout = min(timeout or CANCEL_CHECK_SECONDS, CANCEL_CHECK_SECONDS)
            for event in executor.wait(timeout):
                if not executor.stores_events:
                    store(event)
                loop.handle(event)
        for event in executor.finish():  # e.g. hook events of steps whose process is ending
            if not executor.stores_events:
                store(event)
    except BaseException as exc:
        fail_run(instance, ctx.run_id, exc)
        raise
    finally:
        executor.close()
        if arbiter is not None:
            arbiter.close()
    duration = round((time.perf_counter() - started) * 1000, 3)
    if loop.canceled:
        store(make_event(EventType.RUN_CANCELED, ctx.run_id, "Run canceled", duration_ms=duration))
    elif loop.succeeded:
        store(
            make_event(
                EventType.RUN_SUCCESS,
                ctx.run_id,
                f"Finished execution of run for {ctx.plan.job_name!r}",
                duration_ms=duration,
            )
        )
    else:
        failed = [k for k, s in loop.summary().items() if s == "failed"]
        store(
            make_event(
                EventType.RUN_FAILURE,
                ctx.run_id,
                f"Execution of run for {ctx.plan.job_name!r} failed: steps {failed}",
                duration_ms=duration,
                failed_steps=failed,
            )
        )
    return loop
