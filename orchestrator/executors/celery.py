"""The Celery executor: each step attempt is one Celery task; events come back on the run's
Redis stream, which the process's stream pump reads with a blocking XREAD (no polling tick) and
hands to the run's driver.

Liveness does not rest on the broker: every attempt has a record in Redis that a worker claims
and heartbeats (``orchestrator.distributed.attempts``). At each maintenance pass (a fraction of
the lease time) this executor declares attempts whose heartbeat lapsed lost (the loop starts a
new attempt, up to ``max_lost_attempts``), sends again a step whose message was taken by a
worker that died before claiming it (rather than waiting for the broker's visibility timeout),
and reports steps queued where no live worker listens. Leases of queued steps are renewed by the
process's lease keeper.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

from orchestrator.concurrency.limits import LocalArbiter, SlotArbiter
from orchestrator.definitions.executor_config import CeleryConfig
from orchestrator.distributed.messages import StepMessage
from orchestrator.distributed.pump import ring
from orchestrator.errors import InvalidInputError, ReconstructionError
from orchestrator.events import (
    STEP_TERMINAL,
    ErrorInfo,
    Event,
    EventType,
    attempt_id_for,
    make_event,
    step_failure,
)
from orchestrator.execution.context import RunContext
from orchestrator.execution.loop import NO_CONSUMER, RESENT, Launch
from orchestrator.executors.base import Executor
from orchestrator.settings import Settings, get_settings
from orchestrator.storage.batch import current_batch

_ENDS_ATTEMPT = {e.value for e in STEP_TERMINAL} | {EventType.STEP_UP_FOR_RETRY.value}


log = logging.getLogger("orchestrator.executors.celery")

_apps: dict[str, Any] = {}
_apps_lock = threading.Lock()


def _celery_app(settings: Settings, config: CeleryConfig) -> Any:
    """One Celery app (and broker connection pool) per process and configuration: building
    an app and connecting cost more than a whole short run."""
    from orchestrator.distributed.celery_app import create_app

    key = json.dumps(
        [settings.model_dump(mode="json"), config.model_dump(mode="json")], sort_keys=True
    )
    with _apps_lock:
        if key not in _apps:
            _apps[key] = create_app(
                settings,
                broker=config.broker,
                backend=config.backend,
                include=config.include,
                config_source=config.config_source,
            )
        return _apps[key]


_local = threading.local()


class _ThreadProducers:
    """A thread's producers; their broker connections are closed when the thread ends (its
    locals are dropped), not left to the garbage collector."""

    def __init__(self) -> None:
        self.by_app: dict[int, Any] = {}
        weakref.finalize(self, _close_producers, self.by_app)


def _close_producers(by_app: dict[int, Any]) -> None:
    for producer in by_app.values():
        try:
            producer.connection.release()
        except Exception:  # a broker already gone: nothing more to free
            log.debug("closing a producer's broker connection failed", exc_info=True)
    by_app.clear()


def _producer(app: Any) -> Any:
    """This thread's producer for ``app``, kept for the thread's life: acquiring one from the
    pool for every step cost more than sending the message (a coordinator's run scheduler
    sends every step of every run from one thread)."""
    mine = _local.__dict__.get("producers")
    if mine is None:
        mine = _local.producers = _ThreadProducers()
    producer = mine.by_app.get(id(app))
    if producer is None:
        producer = mine.by_app[id(app)] = app.amqp.Producer(app.connection_for_write())
    return producer


class CeleryExecutor(Executor):
    """Launches steps as Celery tasks; see the module docstring."""

    stores_events = True
    events_via_stream = True

    def __init__(self, config: CeleryConfig | None = None):
        self.config = config or CeleryConfig()
        self.retries_enabled = self.config.retries.is_enabled
        self.settings = get_settings()
        self._ctx: RunContext | None = None
        self._app: Any = None
        self._inflight: dict[str, _InFlight] = {}
        self._lost: list[tuple[str, str, str]] = []
        self._reported: set[str] = set()
        self._lock = threading.Lock()  # _inflight and _lost: the lease keeper checks them too
        self._checking: list[str] = []
        self._plan_digest: str | None = None
        self._has_input_values = False

    # -- set-up ---------------------------------------------------------------------------

    def make_arbiter(self, ctx: RunContext) -> SlotArbiter:
        return LocalArbiter(self.config.tag_concurrency_limits)

    def start(self, ctx: RunContext) -> None:
        from orchestrator.distributed.services import services_for
        from orchestrator.storage.redis import RedisInstance

        if not isinstance(ctx.instance, RedisInstance) or self.inbox is None:
            raise InvalidInputError(
                "the celery executor needs a shared instance that workers can reach: pass "
                "instance=Instance.from_settings() (or Instance.from_url('redis://...'))"
            )
        if ctx.pointer is None:
            raise ReconstructionError(
                f"job {ctx.job.name!r} must be reconstructable to run on Celery workers: run it "
                "with execute_job(reconstructable(job)), `orchestrator job launch` or "
                "`orchestrator job execute`"
            )
        try:
            input_values = json.loads(json.dumps(dict(ctx.input_values)))
        except TypeError as exc:
            raise InvalidInputError(
                f"input_values must be JSON-serializable to reach Celery workers ({exc})"
            ) from exc
        self._ctx = ctx
        self.instance = ctx.instance
        self.services = services_for(ctx.instance)
        self.attempts = self.services.attempts
        # Workers read the plan from Redis (launched runs stored it already).
        self._plan_digest = ctx.plan_digest or self.instance.store_plan(
            ctx.run_id, ctx.plan.to_json()
        )
        if input_values:
            self.instance.update_run(ctx.run_id, extra={"input_values": input_values})
        self._has_input_values = bool(input_values)
        self._app = _celery_app(self.settings, self.config)
        self._broker_url = self._app.conf.broker_url

    # -- launching ------------------------------------------------------------------------

    def launch(self, launch: Launch) -> None:
        with self._lock:
            self._inflight[launch.attempt_id] = _InFlight(launch, time.time())
        self._send(launch)

    def _send(self, launch: Launch) -> None:
        from orchestrator.distributed.celery_app import STEP_TASK, broker_priority

        assert self._ctx is not None
        message = StepMessage(
            run_id=launch.run_id,
            step_key=launch.step_key,
            attempt=launch.attempt,
            attempt_id=launch.attempt_id,
            pointer=self._ctx.pointer or {},
            lease_token=launch.lease_token,
            retries_enabled=self.retries_enabled,
            plan=self._plan_digest,
            run_tags=self._ctx.run_tags,
            has_input_values=self._has_input_values,
            step=self._ctx.plan.to_ship(launch.step),
        )
        self._app.send_task(
            STEP_TASK,
            args=[message.to_dict()],
            queue=launch.queue,
            routing_key=launch.queue,
            task_id=launch.attempt_id,
            priority=broker_priority(
                # A step holding cross-run slots goes one level ahead of its peers, so the
                # slots are not idle while it waits behind unlimited steps in the broker.
                launch.priority + (1 if launch.lease_token else 0),
                self._broker_url,
                self.settings.max_priority,
            ),
            # The step task stores no result: never subscribe to one. A short repr spares
            # Celery formatting the whole message for its logs.
            ignore_result=True,
            argsrepr=f"[{launch.attempt_id}]",
            kwargsrepr="{}",
            producer=self._producer(),
        )

    def _producer(self) -> Any:
        """This thread's producer, in the write batch of a scheduler pass if one is open."""
        producer = _producer(self._app)
        batch = current_batch()
        return batch.producer(producer) if batch is not None else producer

    def wait(self, timeout: float | None) -> list[Event]:
        assert self.inbox is not None
        self.inbox.wait(timeout)
        return []  # the steps' events reach the driver through its inbox

    def observe(self, events: list[Event]) -> None:
        assert self._ctx is not None
        with self._lock:
            for event in events:
                if event.event_type_value in _ENDS_ATTEMPT and event.step_key is not None:
                    attempt_id = attempt_id_for(
                        self._ctx.run_id, event.step_key, event.data.get("attempt") or 0
                    )
                    self._inflight.pop(attempt_id, None)

    def queue_checks(self, pipe: Any) -> int:
        with self._lock:
            self._checking = list(self._inflight)
        return self.attempts.queue_info(pipe, self._checking) if self._checking else 0

    def take_checks(self, replies: list[Any]) -> bool:
        """Find lost attempts, messages held by dead workers, and unconsumed queues (lease
        keeper thread; every run's checks go in one round trip per renewal interval)."""
        assert self._ctx is not None
        infos = self.attempts.read_info(self._checking, replies)
        now = time.time()
        found_lost = False
        for attempt_id, info in infos.items():
            with self._lock:
                flight = self._inflight.get(attempt_id)
            if flight is None:
                continue  # it ended meanwhile
            reason = None
            if info.state == "running" and not info.heartbeat_alive:
                if self.attempts.settle(attempt_id, "lost"):
                    reason = f"worker {info.worker} stopped heartbeating"
            elif info.state == "lost":
                reason = f"worker {info.worker} was lost"
            elif info.state == "canceled":
                reason = "its concurrency lease expired before a worker started it"
            elif info.state == "queued" and info.reserved_by is not None:
                if info.reserved_by != flight.resent_after and info.reserved_by not in (
                    self.services.live_workers()
                ):
                    self._resend(flight, info.reserved_by)
            elif (
                info.state == "queued"
                and attempt_id not in self._reported
                and now - flight.sent >= self.settings.no_consumer_delay
            ):
                queues: set[str] = set()
                for worker in self.services.live_workers().values():
                    queues.update(worker.get("queues") or [])
                if flight.launch.queue not in queues:
                    self._reported.add(attempt_id)
                    self._report_no_consumer(flight, now)
            if reason is not None:
                with self._lock:
                    self._inflight.pop(attempt_id, None)
                    self._lost.append((flight.launch.step_key, attempt_id, reason))
                found_lost = True
                # the operator reading this process's log sees it, not only the run's log
                log.warning(
                    "run %s: attempt %s of step %r was lost (%s)",
                    flight.launch.run_id,
                    flight.launch.attempt,
                    flight.launch.step_key,
                    reason,
                )
        return found_lost

    def _resend(self, flight: _InFlight, dead_worker: str) -> None:
        """The worker that took this step's message died before claiming it: the message
        would only come back after the broker's visibility timeout, so send it again (a late
        copy finds the attempt claimed and does nothing)."""
        assert self._ctx is not None
        launch = flight.launch
        flight.resent_after = dead_worker
        self.instance.store_event(
            make_event(
                EventType.ENGINE_EVENT,
                self._ctx.run_id,
                f"Step {launch.step_key!r} (attempt {launch.attempt}) was taken by worker "
                f"{dead_worker}, which is gone before it started the step; sending it again",
                step_key=launch.step_key,
                kind=RESENT,
                attempt=launch.attempt,
                worker=dead_worker,
            )
        )
        self._send(launch)

    def _report_no_consumer(self, flight: _InFlight, now: float) -> None:
        assert self._ctx is not None
        launch = flight.launch
        queue = launch.queue
        self.instance.store_event(
            make_event(
                EventType.ENGINE_EVENT,
                self._ctx.run_id,
                f"Step {launch.step_key!r} has waited {now - flight.sent:.0f}s on queue "
                f"{queue!r}, which no live worker consumes; start one with "
                f"`orchestrator worker start ... -Q {queue}`",
                step_key=launch.step_key,
                kind=NO_CONSUMER,
                queue=queue,
                attempt=launch.attempt,
            )
        )

    def detach(self) -> None:
        """Another coordinator drives the run now: leave its steps to it."""
        with self._lock:
            self._inflight.clear()

    def adopt_in_flight(self, launches: list[Launch]) -> None:
        now = time.time()
        with self._lock:
            for launch in launches:
                self._inflight[launch.attempt_id] = _InFlight(launch, now)

    def lost_attempts(self) -> list[tuple[str, str, str]]:
        with self._lock:
            lost, self._lost = self._lost, []
        return lost

    def terminate(self, attempt_ids: list[str]) -> None:
        assert self._ctx is not None
        stored = False
        for attempt_id in attempt_ids:
            canceled = self.attempts.settle(attempt_id, "canceled")
            self._app.control.revoke(attempt_id, terminate=True, signal="SIGTERM")
            with self._lock:
                flight = self._inflight.pop(attempt_id, None) if canceled else None
            if flight is None:
                continue  # it had just finished: its own final event is on the stream
            launch = flight.launch
            self.instance.store_event(
                step_failure(
                    self._ctx.run_id,
                    launch.step_key,
                    launch.attempt,
                    f"Step {launch.step_key!r} was canceled with its run",
                    error=ErrorInfo("RunCanceled", "run canceled", ""),
                )
            )
            stored = True
        if stored:  # the loop learns of these failures from the run's stream, like the others
            ring(self.instance.client, self.instance.keys, self._ctx.run_id)

    def close(self) -> None:
        """Attempts still in flight when the run's driver stops (an engine error, an
        interrupt) are canceled and revoked, so no worker runs a step of a run that has
        ended (the driver frees their slots). The Celery app stays cached for the next run."""
        if self._ctx is None:
            return
        with self._lock:
            left, self._inflight = list(self._inflight), {}
        for attempt_id in left:
            self.attempts.settle(attempt_id, "canceled")
            if self._app is not None:
                self._app.control.revoke(attempt_id, terminate=True, signal="SIGTERM")


@dataclass
class _InFlight:
    """A launched attempt this executor watches until its final event."""

    launch: Launch
    sent: float  # when it was (first) sent
    resent_after: str | None = None  # the dead worker it was sent again after
