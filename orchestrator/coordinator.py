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
from orchestrator.distributed.ownership import RunOwnership, claim_next_run
from orchestrator.errors import InvalidInputError
from orchestrator.execution.api import build_loggers, prepare_run
from orchestrator.execution.context import RunContext
from orchestrator.execution.driver import drive_run, fail_run
from orchestrator.execution.events import EventType, make_event
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
    pipe = client.pipeline(transaction=True)
    pipe.zadd(keys.run_queue, {run_id: _rank(priority, seq)})
    pipe.lpush(keys.run_wakeup, run_id)
    pipe.ltrim(keys.run_wakeup, 0, 9999)  # wake-ups only; the queue is the zset
    pipe.execute()
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
        self._owned: dict[str, RunOwnership] = {}
        self._lock = threading.Lock()

    # -- ownership ------------------------------------------------------------------------

    def _ownership(self, run_id: str) -> RunOwnership:
        return RunOwnership(
            self.instance.client, self.instance.keys, run_id, self.id, self.settings.lease_seconds
        )

    def _renew_owned(self) -> None:
        """Renew every owned run from the serving thread too (a driver blocked in a long
        in-process step cannot renew its own)."""
        with self._lock:
            owned = list(self._owned.values())
        for ownership in owned:
            ownership.renew()

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
            ownership = self._ownership(run_id)
            if ownership.claim():
                adopted.append(run_id)
                self._start(ownership)
        return adopted

    # -- serving --------------------------------------------------------------------------

    def _free_slots(self) -> int:
        with self._lock:
            for run_id, thread in list(self._threads.items()):
                if not thread.is_alive():
                    del self._threads[run_id]
                    self._owned.pop(run_id, None)
            return self.max_runs - len(self._threads)

    def _start(self, ownership: RunOwnership) -> None:
        run_id = ownership.run_id
        thread = threading.Thread(
            target=self._drive, args=(ownership,), daemon=True, name=f"run-{run_id[:8]}"
        )
        with self._lock:
            self._threads[run_id] = thread
            self._owned[run_id] = ownership
        thread.start()

    def claim_queued(self) -> list[str]:
        """Take launched runs off the run queue while there is room (each atomically popped
        and owned, see ``claim_run.lua``)."""
        claimed = []
        while self._free_slots() > 0:
            run_id = claim_next_run(
                self.instance.client, self.instance.keys, self.id, self.settings.lease_seconds
            )
            if run_id is None:
                break
            claimed.append(run_id)
            self._start(self._ownership(run_id))
        return claimed

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
            self.claim_queued()
            if self._free_slots() <= 0:
                self.stop_event.wait(block)
                continue
            client.blpop([keys.run_wakeup], timeout=block)  # a launch wakes us at once

    def stop(self) -> None:
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> None:
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)

    # -- driving one run ------------------------------------------------------------------

    def _drive(self, ownership: RunOwnership) -> None:
        run_id = ownership.run_id
        loop = None
        try:
            loop = self._drive_run(ownership)
        except Exception:
            log.exception("run %s failed in the coordinator", run_id)
        finally:
            if loop is None or not loop.abandoned:
                record = self.instance.get_run(run_id)
                ownership.release(finished=record is None or record.is_finished)

    def _drive_run(self, ownership: RunOwnership) -> ExecutionLoop | None:
        instance = self.instance
        run_id = ownership.run_id
        record = instance.get_run(run_id)
        if record is None or record.is_finished or not record.pointer:
            return None
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
            return None
        stored = instance.get_events(run_id)
        events = [event for _, event in stored]
        started = any(e.event_type_value == EventType.RUN_START.value for e in events)
        if not started and record.status is RunStatus.CANCELING:
            instance.store_event(
                make_event(EventType.RUN_CANCELED, run_id, "Run canceled before it started")
            )
            return None
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
            return None
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
            # Events stored after this read (a worker's result, a cancel) must not be missed.
            event_cursor=stored[-1][0] if stored else None,
        )
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
        return drive_run(
            ctx,
            executor,
            instance,
            loop=loop,
            resume=started,
            still_owner=ownership.renew,
            max_lost_attempts=self.settings.max_lost_attempts,
        )
