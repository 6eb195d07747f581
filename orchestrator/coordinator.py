"""Launched runs and the run coordinator.

``launch_run`` validates and plans a run, stores it QUEUED with its plan, and puts it on the
run queue (a Redis sorted set ranked by run priority, then arrival). A coordinator process
(``orchestrator coordinator start``) takes runs off that queue with a blocking pop and drives
each in a thread of its own (a run waiting on its event stream costs one idle thread), up to
``max_concurrent_runs`` at once. It never takes step slots itself.

Each driven run has an owner key renewed by its coordinator. A coordinator that starts, and
every coordinator now and then, adopts runs in the active set whose owner key lapsed: it
rebuilds their loop from the stored event log and goes on where the dead one stopped.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.definitions.reconstruct import CodeLocation, JobPointer, ReconstructableJob
from orchestrator.errors import InvalidInputError
from orchestrator.execution.api import build_loggers, prepare_run
from orchestrator.execution.context import RunContext
from orchestrator.execution.driver import drive_run, fail_run
from orchestrator.execution.events import RUN_TERMINAL, EventType, make_event
from orchestrator.execution.loop import CANCEL_REQUESTED, ExecutionLoop
from orchestrator.plan.build import build_plan
from orchestrator.plan.steps import PRIORITY_TAG, ExecutionPlan
from orchestrator.settings import Settings, get_settings
from orchestrator.storage.base import RunStatus
from orchestrator.storage.redis import RedisInstance

log = logging.getLogger("orchestrator.coordinator")


def _rank(priority: int, seq: int) -> float:
    """Queue score: higher run priority first, then arrival (scores are popped lowest first)."""
    return -priority * 1e12 + seq


def launch_run(
    recon: ReconstructableJob,
    instance: RedisInstance,
    *,
    run_config: Any = None,
    op_selection: Sequence[str] | None = None,
    partition_key: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> str:
    """Queue a run for the coordinators; returns its id at once.

    Raises:
        ConfigError, SelectionError, MissingInputError, ...: bad input, before anything is
            stored.
    """
    if op_selection:
        recon = recon.get_subset(op_selection)
    job = recon.get_definition()
    prepared = prepare_run(
        job,
        instance=instance,
        run_config=run_config,
        partition_key=partition_key,
        tags=tags,
        pointer=recon.pointer.to_dict(),
    )
    run_id = prepared.record.run_id
    keys = instance.keys
    client = instance.client
    priority = int(prepared.record.tags.get(PRIORITY_TAG, 0) or 0)
    seq = int(client.incr(keys.seq))
    client.set(keys.run_plan(run_id), prepared.plan.to_json(), ex=7 * 24 * 3600)
    instance.store_event(
        make_event(EventType.RUN_ENQUEUED, run_id, f"Run of {job.name!r} queued for a coordinator")
    )
    client.zadd(keys.run_queue, {run_id: _rank(priority, seq)})
    return run_id


def cancel_run(instance: RedisInstance, run_id: str) -> str:
    """Cancel a run: a queued run ends CANCELED at once; a running one is told to stop (its
    coordinator revokes queued steps, terminates running ones and frees their slots).

    Returns:
        The run's status after the request.

    Raises:
        InvalidInputError: no such run.
    """
    record = instance.get_run(run_id)
    if record is None:
        raise InvalidInputError(f"no run with id {run_id!r}")
    if record.is_finished:
        return record.status.value
    if instance.client.zrem(instance.keys.run_queue, run_id):
        instance.store_event(
            make_event(
                EventType.RUN_CANCELED, run_id, "Run canceled before a coordinator picked it up"
            )
        )
        return RunStatus.CANCELED.value
    instance.store_event(make_event(EventType.RUN_CANCELING, run_id, "Cancel requested"))
    instance.store_event(
        make_event(
            EventType.ENGINE_EVENT,
            run_id,
            "Cancel requested; stopping steps",
            kind=CANCEL_REQUESTED,
        )
    )
    return RunStatus.CANCELING.value


class Coordinator:
    """Drives launched runs (see module docstring).

    Args:
        instance: the shared Redis instance.
        locations: code locations this coordinator may load jobs from (empty: any).
        settings: deployment settings.
        max_concurrent_runs: runs driven at once (default from settings).
    """

    def __init__(
        self,
        instance: RedisInstance,
        locations: Sequence[CodeLocation] = (),
        settings: Settings | None = None,
        max_concurrent_runs: int | None = None,
    ):
        self.instance = instance
        self.locations = list(locations)
        self.settings = settings or get_settings()
        self.max_runs = max_concurrent_runs or self.settings.max_concurrent_runs
        self.id = f"coordinator-{uuid.uuid4().hex[:10]}"
        self.stop_event = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    # -- ownership ------------------------------------------------------------------------

    def _claim(self, run_id: str) -> bool:
        keys = self.instance.keys
        ttl = int(self.settings.lease_seconds * 1000)
        if not self.instance.client.set(keys.run_owner(run_id), self.id, nx=True, px=ttl):
            return False
        self.instance.client.sadd(keys.active_runs, run_id)
        return True

    def _renew_owned(self) -> None:
        keys = self.instance.keys
        ttl = int(self.settings.lease_seconds * 1000)
        with self._lock:
            owned = list(self._threads)
        for run_id in owned:
            if self.instance.client.get(keys.run_owner(run_id)) == self.id:
                self.instance.client.pexpire(keys.run_owner(run_id), ttl)

    def _release(self, run_id: str) -> None:
        keys = self.instance.keys
        if self.instance.client.get(keys.run_owner(run_id)) == self.id:
            self.instance.client.delete(keys.run_owner(run_id))
        self.instance.client.srem(keys.active_runs, run_id)

    def adopt_orphans(self) -> list[str]:
        """Claim active runs whose owner lapsed (their coordinator died) and resume them."""
        adopted = []
        for run_id in self.instance.client.smembers(self.instance.keys.active_runs):
            run_id = str(run_id)
            if run_id in self._threads or self.instance.client.exists(
                self.instance.keys.run_owner(run_id)
            ):
                continue
            if self._free_slots() <= 0:
                break
            if self._claim(run_id):
                adopted.append(run_id)
                self._start(run_id)
        return adopted

    # -- serving --------------------------------------------------------------------------

    def _free_slots(self) -> int:
        with self._lock:
            for run_id, thread in list(self._threads.items()):
                if not thread.is_alive():
                    del self._threads[run_id]
            return self.max_runs - len(self._threads)

    def _start(self, run_id: str) -> None:
        thread = threading.Thread(
            target=self._drive, args=(run_id,), daemon=True, name=f"run-{run_id[:8]}"
        )
        with self._lock:
            self._threads[run_id] = thread
        thread.start()

    def serve(self) -> None:
        """Take runs off the queue and drive them until :meth:`stop`."""
        client = self.instance.client
        keys = self.instance.keys
        block = max(0.05, min(self.settings.heartbeat_interval, self.settings.lease_seconds / 3))
        next_maintenance = 0.0
        while not self.stop_event.is_set():
            if time.monotonic() >= next_maintenance:
                next_maintenance = time.monotonic() + block
                self._renew_owned()
                self.adopt_orphans()
            if self._free_slots() <= 0:
                self.stop_event.wait(block)
                continue
            popped = client.bzpopmin(keys.run_queue, timeout=block)
            if not popped:
                continue
            run_id = str(popped[1])
            if self._claim(run_id):
                self._start(run_id)

    def stop(self) -> None:
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> None:
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)

    # -- driving one run ------------------------------------------------------------------

    def _drive(self, run_id: str) -> None:
        try:
            self._drive_run(run_id)
        except Exception:
            log.exception("run %s failed in the coordinator", run_id)
        finally:
            self._release(run_id)

    def _drive_run(self, run_id: str) -> None:
        instance = self.instance
        record = instance.get_run(run_id)
        if record is None or record.is_finished or not record.pointer:
            return
        pointer = JobPointer.from_dict(record.pointer)
        if self.locations and pointer.location not in self.locations:
            fail_run(
                instance,
                run_id,
                InvalidInputError(
                    f"this coordinator does not load {pointer.location}; start one with that code "
                    "location (orchestrator coordinator start -f/-m ...)"
                ),
            )
            return
        events = instance.all_events(run_id)
        try:
            job = ReconstructableJob(pointer).get_definition()
            plan_text = instance.client.get(instance.keys.run_plan(run_id))
            if plan_text:
                plan = ExecutionPlan.from_json(str(plan_text))
                _, resolved = build_plan(
                    job, record.run_config, record.partition_key, run_tags=record.tags
                )
            else:
                plan, resolved = build_plan(
                    job, record.run_config, record.partition_key, run_tags=record.tags
                )
            executor = job.executor_def.build(resolved.executor_config)
        except Exception as exc:
            fail_run(instance, run_id, exc)
            return
        ctx = RunContext(
            run_id=run_id,
            job=job,
            plan=plan,
            run_tags=record.tags,
            emit=instance.store_event,
            input_values=dict(record.extra.get("input_values") or {}),
            retries_enabled=executor.retries_enabled,
            loggers=build_loggers(job, resolved, run_id),
            instance=instance,
            pointer=record.pointer,
        )
        started = any(e.event_type_value == EventType.RUN_START.value for e in events)
        if any(e.event_type_value in {t.value for t in RUN_TERMINAL} for e in events):
            return
        loop = None
        if started:
            arbiter = executor.make_arbiter(ctx)
            loop = ExecutionLoop.from_events(
                plan, run_id, arbiter, events, self.settings.max_lost_attempts
            )
        else:
            instance.store_event(
                make_event(
                    EventType.RUN_STARTING, run_id, f"Coordinator {self.id} is starting the run"
                )
            )
        drive_run(
            ctx,
            executor,
            instance,
            loop=loop,
            resume=started,
            max_lost_attempts=self.settings.max_lost_attempts,
        )
