"""Launched runs and the run coordinator.

``launch_run`` validates and plans a run, stores it QUEUED with its plan, and puts it on the
run queue (a Redis sorted set ranked by run priority, then arrival). A coordinator process
(``orchestrator coordinator start``) takes runs off that queue in batches and drives up to
``max_concurrent_runs`` of them at once: Celery runs all from one scheduler thread (their step
results arrive through one stream read per process), runs on thread executors each in a thread
of their own. It never takes step slots itself.

Each driven run has an owner record renewed by the coordinator's lease keeper. A coordinator
that starts, and every coordinator now and then, adopts runs in the active set whose owner
lapsed (a dead coordinator, or a ``job execute`` process that was killed): it rebuilds their
loop from the stored event log and goes on where the dead one stopped. Coordinators register
themselves with a heartbeat, so ``run show`` can say whether anyone will adopt a run.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.concurrency.limits import UnlimitedArbiter
from orchestrator.definitions.job import JobDefinition
from orchestrator.definitions.reconstruct import (
    CodeLocation,
    JobPointer,
    ReconstructableJob,
    load_job,
    reconstructable,
)
from orchestrator.distributed.ownership import RunOwnership, claim_next_runs, owner_info
from orchestrator.distributed.pump import ring
from orchestrator.distributed.services import renewal_interval
from orchestrator.distributed.workers import ProcessRegistry
from orchestrator.errors import InvalidInputError, OrchestratorError
from orchestrator.events import EventType, make_event
from orchestrator.execution.context import RunContext
from orchestrator.execution.loop import CANCEL_REQUESTED, ExecutionLoop
from orchestrator.executors.base import Executor
from orchestrator.executors.registry import build_executor
from orchestrator.plan.build import build_plan, parse_priority, resolve_effective_config
from orchestrator.plan.run_config import ResolvedConfig
from orchestrator.plan.steps import PRIORITY_TAG, ExecutionPlan
from orchestrator.runs.api import build_loggers, prepare_run
from orchestrator.runs.driver import RunDriver, fail_run
from orchestrator.runs.scheduler import DRIVEN_ELSEWHERE, RunScheduler
from orchestrator.settings import Settings, get_settings
from orchestrator.storage.base import Instance, RunRecord, RunStatus
from orchestrator.storage.batch import current_batch, write_batch
from orchestrator.storage.redis import RedisInstance

log = logging.getLogger("orchestrator.coordinator")

CLAIM_BATCH = 100  # runs taken off the queue in one call
CONFIG_CACHE = 256  # validated run configs kept (see Coordinator._resolved)


def launch_run(
    job: JobDefinition | ReconstructableJob | None,
    instance: Instance | None = None,
    *,
    run_config: Any = None,
    op_selection: Sequence[str] | None = None,
    partition_key: str | None = None,
    tags: Mapping[str, Any] | None = None,
    reexecution_options: Any = None,
    run_id: str | None = None,
) -> str:
    """Queue a run for the coordinators and return its id at once (Python's
    ``orchestrator job launch``). The run is validated and planned here; a coordinator
    (``orchestrator coordinator start``, or ``orchestrator dev``) drives it.

    Args:
        job: a module-level ``@job`` (or anything ``reconstructable`` accepts), or a
            ``ReconstructableJob``; coordinators and workers load it again from its module.
        instance: the shared Redis instance; by default the deployment's
            (``Instance.from_settings()``: ``ORCHESTRATOR_REDIS_URL`` or the embedded server).
        reexecution_options: ``ReexecutionOptions`` to re-execute a finished run (``job`` may
            then be None); as in ``execute_job``, the parent's config, partition and tags are
            the defaults and unselected steps read the parent's stored outputs.
        run_id: the new run's id (default: a fresh uuid).

    Raises:
        ReconstructionError: the job cannot be loaded in another process (a nested or REPL
            definition); the message says how to define it instead.
        InvalidInputError: ``instance`` is not a shared (Redis) instance.
        ConfigError, SelectionError, MissingInputError, ...: bad input, before anything is
            stored.
    """
    if instance is None:
        instance = Instance.from_settings()
    if not isinstance(instance, RedisInstance):
        raise InvalidInputError(
            f"launch_run needs a shared Redis instance for coordinators to read, got "
            f"{type(instance).__name__}; pass Instance.from_url('redis://...') or leave "
            "instance out to use the deployment's (ORCHESTRATOR_REDIS_URL or the embedded server)"
        )
    from orchestrator.execution.reexecution import reexecution_arguments

    job, run_config, op_selection, partition_key, tags, parent = reexecution_arguments(
        instance, reexecution_options, job, run_config, op_selection, partition_key, tags
    )
    recon = reconstructable(job)
    if op_selection:
        recon = recon.get_subset(op_selection)
    definition = recon.get_definition()
    prepared = prepare_run(
        definition,
        instance=instance,
        run_config=run_config,
        partition_key=partition_key,
        tags=tags,
        pointer=recon.pointer.to_dict(),
        parent=parent,
        run_id=run_id,
        store=False,
    )
    run_id = prepared.record.run_id
    priority = parse_priority(prepared.record.tags.get(PRIORITY_TAG, 0), "run tags")
    enqueued = make_event(
        EventType.RUN_ENQUEUED, run_id, f"Run of {definition.name!r} queued for a coordinator"
    )
    instance.create_launched_run(prepared.record, prepared.plan.to_json(), enqueued, priority)
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
    ring(instance.client, instance.keys, run_id)  # its driver reads the request at once
    return RunStatus.CANCELING.value


@dataclass(frozen=True)
class DriverState:
    """Who drives a run that has not ended, as ``run show`` tells it.

    Attributes:
        owner: the process holding the run (a coordinator or a ``job execute``), or None.
        lapsed_at: when its lease lapsed (seconds since the epoch), or None while it renews.
        coordinators: live coordinators (ids), which adopt runs whose driver is gone.
    """

    owner: str | None
    lapsed_at: float | None
    coordinators: tuple[str, ...]

    def describe(self, now: float) -> str:
        if self.owner is not None and self.lapsed_at is None:
            return f"driven by {self.owner}"
        if self.coordinators:
            then = f"coordinator {self.coordinators[0]} will adopt it"
        else:
            then = (
                "no coordinator is running to adopt it: start one with "
                "`orchestrator coordinator start -f/-m ...`"
            )
        if self.owner is None:
            return f"no process drives it; {then}"
        ago = max(0.0, now - (self.lapsed_at or now))
        return (
            f"its driver {self.owner} stopped renewing its lease, which lapsed "
            f"{ago:.0f}s ago; {then}"
        )


def driver_state(instance: RedisInstance, run_id: str) -> DriverState:
    """Who drives ``run_id`` now (see :class:`DriverState`)."""
    info = owner_info(instance.client, instance.keys, run_id)
    live = ProcessRegistry(
        instance.client, instance.keys, get_settings().lease_seconds, "coordinator"
    ).live()
    if info is None:
        return DriverState(None, None, tuple(sorted(live)))
    return DriverState(info.owner, info.expires if info.lapsed else None, tuple(sorted(live)))


@dataclass
class _Prepared:
    """A claimed run, ready to be driven."""

    ctx: RunContext
    executor: Executor
    loop: ExecutionLoop | None  # rebuilt from the log (a resumed run), else None
    resume: bool


class Coordinator:
    """Drives launched runs (see module docstring).

    Runs whose steps report through the run's stream (Celery) are all driven by one run
    scheduler thread (``orchestrator.runs.scheduler``); runs of executors that need a
    thread of their own (multiprocess, in-process) get one each.

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
        self._wake = threading.Event()  # set by stop() and when a run ends (room to claim)
        self.registry = ProcessRegistry(
            instance.client, instance.keys, self.settings.lease_seconds, "coordinator"
        )
        self.scheduler = RunScheduler(lambda: write_batch(instance.client))
        self._driving: dict[str, RunOwnership] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._configs: dict[str, ResolvedConfig] = {}  # see _resolved
        self._plans: dict[str, ExecutionPlan] = {}  # by digest, see _plan
        self._lock = threading.Lock()

    # -- ownership ------------------------------------------------------------------------

    def _ownership(self, run_id: str) -> RunOwnership:
        return RunOwnership(
            self.instance.client, self.instance.keys, run_id, self.id, self.settings.lease_seconds
        )

    def adopt_orphans(self) -> list[str]:
        """Claim active runs whose owner lapsed (their coordinator or ``job execute`` process
        died) and resume them."""
        client, keys = self.instance.client, self.instance.keys
        with self._lock:
            candidates = [
                str(r) for r in client.smembers(keys.active_runs) if r not in self._driving
            ]
        if not candidates:
            return []
        pipe = client.pipeline(transaction=False)
        for run_id in candidates:
            pipe.hget(keys.run_owner(run_id), "expires")
        pipe.time()
        *expiries, (sec, usec) = pipe.execute()
        now_ms = sec * 1000 + usec // 1000
        adopted = []
        for run_id, expires in zip(candidates, expiries, strict=True):
            if expires is not None and int(expires) > now_ms:
                continue  # its owner is alive
            if self.free_slots <= 0:
                break
            ownership = self._ownership(run_id)
            if ownership.claim():
                adopted.append(run_id)
                self._start(ownership)
        return adopted

    # -- serving --------------------------------------------------------------------------

    @property
    def free_slots(self) -> int:
        with self._lock:
            return self.max_runs - len(self._driving)

    @property
    def driving(self) -> list[str]:
        """Ids of the runs this coordinator is driving now."""
        with self._lock:
            return list(self._driving)

    def claim_queued(self) -> list[str]:
        """Take launched runs off the run queue while there is room (atomically popped and
        owned, see ``claim_run.lua``)."""
        free = self.free_slots
        if free <= 0:
            return []
        claimed = claim_next_runs(
            self.instance.client,
            self.instance.keys,
            self.id,
            self.settings.lease_seconds,
            min(free, CLAIM_BATCH),
        )
        for run_id in claimed:
            self._start(self._ownership(run_id))
        return claimed

    def serve(self) -> None:
        """Take runs off the queue and drive them until :meth:`stop`.

        Rides out Redis outages: every call waits until the server answers again (see
        ``orchestrator.redis_client``), and the runs being driven carry on from there.
        """
        client = self.instance.client
        keys = self.instance.keys
        block = renewal_interval(self.settings)
        self.registry.register(self.id, {"locations": [str(loc) for loc in self.locations]})
        next_maintenance = 0.0
        try:
            while not self.stop_event.is_set():
                if time.monotonic() >= next_maintenance:
                    next_maintenance = time.monotonic() + block
                    self.registry.beat(self.id)
                    self.adopt_orphans()
                if self.claim_queued():
                    continue  # more may be queued
                if self.free_slots <= 0:
                    self._wake.wait(block)  # a run ending makes room
                    self._wake.clear()
                    continue
                client.blpop([keys.run_wakeup], timeout=block)  # a launch wakes us at once
        finally:
            self.scheduler.stop()
            self.registry.deregister(self.id)

    def stop(self) -> None:
        self.stop_event.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait (at most ``timeout`` seconds) until the runs being driven have ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.driving and (deadline is None or time.monotonic() < deadline):
            with self._lock:
                threads = list(self._threads.values())
            for thread in threads:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if not threads:
                time.sleep(0.05)  # scheduled runs end in the scheduler thread

    # -- driving one run ------------------------------------------------------------------

    def _start(self, ownership: RunOwnership) -> None:
        """Hand a claimed run to the scheduler, which prepares it in its next pass (so what
        preparing writes goes out with the pass) and drives it, or gives it a thread."""
        run_id = ownership.run_id
        with self._lock:
            self._driving[run_id] = ownership
        self.scheduler.add(
            run_id,
            lambda poke: self._setup(ownership, poke),
            lambda loop: self._ended(ownership, loop),
        )

    def _setup(self, ownership: RunOwnership, poke: Callable[[], None]) -> RunDriver | object:
        """(Scheduler thread.) The run's driver; :data:`DRIVEN_ELSEWHERE` when its executor
        needs a thread of its own (started here); None when there is nothing to drive."""
        prepared = self._prepare(ownership)
        if prepared is None:
            return None
        if prepared.executor.events_via_stream:
            return self._driver(ownership, prepared, poke)
        thread = threading.Thread(
            target=self._drive_in_thread,
            args=(ownership, prepared),
            daemon=True,
            name=f"run-{ownership.run_id[:8]}",
        )
        with self._lock:
            self._threads[ownership.run_id] = thread
        thread.start()
        return DRIVEN_ELSEWHERE

    def _driver(
        self, ownership: RunOwnership, prepared: _Prepared, poke: Callable[[], None] | None
    ) -> RunDriver:
        return RunDriver(
            prepared.ctx,
            prepared.executor,
            self.instance,
            loop=prepared.loop,
            resume=prepared.resume,
            ownership=ownership,
            max_lost_attempts=self.settings.max_lost_attempts,
            on_poke=poke,
        )

    def _drive_in_thread(self, ownership: RunOwnership, prepared: _Prepared) -> None:
        loop = None
        try:
            loop = self._driver(ownership, prepared, None).run_to_end()
        except Exception:
            log.exception("run %s failed in the coordinator", ownership.run_id)
        finally:
            self._ended(ownership, loop)

    def _ended(self, ownership: RunOwnership, loop: ExecutionLoop | None) -> None:
        """The run is done with here: give it up (finished, or for another to adopt)."""
        run_id = ownership.run_id
        try:
            batch = current_batch()
            if loop is not None and not loop.abandoned and batch is not None:
                batch.redis(lambda pipe: ownership.queue_release(pipe, finished=True))
            elif loop is not None and not loop.abandoned:
                ownership.release(finished=True)  # its driver stored how it ended
            elif loop is None:
                record = self.instance.get_run(run_id)
                ownership.release(finished=record is None or record.is_finished)
            elif self.stop_event.is_set() and not ownership.lost:
                ownership.release(finished=False)  # stopping: others may adopt it at once
        finally:
            with self._lock:
                self._driving.pop(run_id, None)
                self._threads.pop(run_id, None)
            self._wake.set()

    def _drive(self, ownership: RunOwnership) -> None:
        """Drive one claimed run to its end in this thread (whatever its executor)."""
        run_id = ownership.run_id
        with self._lock:
            self._driving[run_id] = ownership
        prepared = None
        try:
            prepared = self._prepare(ownership)
        finally:
            if prepared is None:
                self._ended(ownership, None)
        if prepared is not None:
            self._drive_in_thread(ownership, prepared)

    def _resolved(self, pointer: Any, job: Any, run_config: Mapping[str, Any]) -> ResolvedConfig:
        """The validated config of a stored run, cached: the runs of a job launched with
        the same config (a thousand at once, say) are validated once."""
        key = json.dumps([pointer, run_config], sort_keys=True, default=str)
        found = self._configs.get(key)
        if found is None:
            found = self._configs[key] = resolve_effective_config(job, run_config)
            while len(self._configs) > CONFIG_CACHE:
                self._configs.pop(next(iter(self._configs)))
        return found

    def _plan(self, link: str) -> ExecutionPlan | None:
        """A stored plan by its link (a digest: parsed once, cached; or the JSON itself)."""
        if link.startswith("{"):
            return ExecutionPlan.from_json(link)
        found = self._plans.get(link)
        if found is None:
            text = self.instance.plan_json_by_digest(link)
            if text is None:
                return None
            found = self._plans[link] = ExecutionPlan.from_json(text)
            while len(self._plans) > CONFIG_CACHE:
                self._plans.pop(next(iter(self._plans)))
        return found

    def _prepare(self, ownership: RunOwnership) -> _Prepared | None:
        """Load a claimed run's job and plan, and rebuild its loop if it had started. None
        when there is nothing to drive (the run ended, was canceled before it started, or
        cannot be driven here: then it is failed with the reason)."""
        instance = self.instance
        run_id = ownership.run_id
        record, stored, plan_link = instance.run_to_drive(run_id)
        if record is None or record.is_finished:
            return None
        refusal = self._refusal(record)
        if refusal is not None:
            fail_run(instance, run_id, refusal)
            return None
        events = [event for _, event in stored]
        started = any(e.event_type_value == EventType.RUN_START.value for e in events)
        if not started and record.status is RunStatus.CANCELING:
            instance.store_event(
                make_event(EventType.RUN_CANCELED, run_id, "Run canceled before it started")
            )
            return None
        try:
            job, plan, resolved, executor = self._load(record, plan_link)
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
            plan_digest=plan_link if plan_link and not plan_link.startswith("{") else None,
        )
        if started:
            loop = ExecutionLoop.from_events(
                plan, run_id, UnlimitedArbiter(), events, self.settings.max_lost_attempts
            )
            return _Prepared(ctx, executor, loop, started)
        starting = make_event(
            EventType.RUN_STARTING, run_id, f"Coordinator {self.id} is starting the run"
        )
        if executor.events_via_stream:
            instance.store_events([starting])  # with the scheduler's pass, as RUN_START
        else:  # its own thread stores RUN_START at once: this one must come first
            instance.store_event(starting)
        return _Prepared(ctx, executor, None, started)

    def _refusal(self, record: RunRecord) -> OrchestratorError | None:
        """Why this coordinator cannot drive the run at all, if it cannot."""
        if not record.pointer:
            return OrchestratorError(
                "the process driving this run stopped, and the run cannot be resumed "
                "elsewhere: it has no job pointer (it was run with execute_in_process)"
            )
        location = JobPointer.from_dict(record.pointer).location
        if self.locations and location not in self.locations:
            return InvalidInputError(
                f"this coordinator does not load {location}; start one with that code "
                "location (orchestrator coordinator start -f/-m ...)"
            )
        return None

    def _load(
        self, record: RunRecord, plan_link: str | None
    ) -> tuple[JobDefinition, ExecutionPlan, ResolvedConfig, Executor]:
        """The run's job (loaded from its pointer), plan (the stored one, else built again),
        validated config and executor."""
        assert record.pointer is not None
        job = load_job(JobPointer.from_dict(record.pointer))
        plan = self._plan(plan_link) if plan_link else None
        if plan is not None:
            resolved = self._resolved(record.pointer, job, record.run_config)
        else:
            plan, resolved = build_plan(
                job, record.run_config, record.partition_key, run_tags=record.tags
            )
        return job, plan, resolved, build_executor(job.executor_def, resolved.executor_config)
