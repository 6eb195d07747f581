"""The Celery executor: each step attempt is one Celery task; events come back on the run's
Redis stream, which this executor reads with a blocking XREAD (no polling tick).

Liveness does not rest on the broker: every attempt has a record in Redis that a worker claims
and heartbeats (``orchestrator.distributed.attempts``). At each maintenance pass (a fraction of
the lease time) this executor renews the leases of queued steps, declares attempts whose
heartbeat lapsed lost (the loop starts a new attempt, up to ``max_lost_attempts``), and reports
steps queued where no live worker listens.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from orchestrator.concurrency.limits import ChainedArbiter, LocalArbiter, SlotArbiter
from orchestrator.errors import InvalidInputError, ReconstructionError
from orchestrator.execution.context import RunContext
from orchestrator.execution.events import STEP_TERMINAL, Event, EventType, make_event
from orchestrator.execution.loop import NO_CONSUMER, SLOT_GRANTED, Launch
from orchestrator.executors.base import Executor
from orchestrator.executors.config import CeleryConfig
from orchestrator.settings import Settings, get_settings

_ENDS_ATTEMPT = {e.value for e in STEP_TERMINAL} | {EventType.STEP_UP_FOR_RETRY.value}
PLAN_TTL_SECONDS = 7 * 24 * 3600


_apps: dict[str, Any] = {}
_apps_lock = threading.Lock()


def _celery_app(settings: Settings, config: CeleryConfig) -> Any:
    """One Celery app (and broker connection pool) per process and configuration: building
    an app and connecting cost more than a whole short run."""
    from workers.app import create_app

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


class CeleryExecutor(Executor):
    """Launches steps as Celery tasks; see the module docstring."""

    stores_events = True
    watches_run_stream = True

    def __init__(self, config: CeleryConfig | None = None):
        self.config = config or CeleryConfig()
        self.retries_enabled = self.config.retries.is_enabled
        self.settings = get_settings()
        self.coordinator_id = f"coordinator:{uuid.uuid4().hex[:10]}"
        self._ctx: RunContext | None = None
        self._app: Any = None
        self._inflight: dict[str, tuple[str, str, float]] = {}  # attempt -> (step, queue, t)
        self._lost: list[tuple[str, str, str]] = []
        self._reported: set[str] = set()
        self._cursor: str | None = None
        self._next_check = 0.0
        self.check_interval = max(
            0.05, min(self.settings.heartbeat_interval, self.settings.lease_seconds / 3)
        )

    # -- set-up ---------------------------------------------------------------------------

    def _connect(self, ctx: RunContext) -> None:
        if self._ctx is not None:
            return
        from orchestrator.concurrency.redis import RedisLimiter
        from orchestrator.concurrency.redis_arbiter import RedisArbiter
        from orchestrator.distributed.attempts import AttemptRegistry
        from orchestrator.distributed.workers import WorkerRegistry
        from orchestrator.storage.redis import RedisInstance

        if not isinstance(ctx.instance, RedisInstance):
            raise InvalidInputError(
                "the celery executor needs a shared instance that workers can reach: pass "
                "instance=Instance.from_settings() (or Instance.from_url('redis://...'))"
            )
        self._ctx = ctx
        self.instance = ctx.instance
        client = ctx.instance.client
        keys = ctx.instance.keys
        self.attempts = AttemptRegistry(client, keys)
        self.workers = WorkerRegistry(client, keys, self.settings.lease_seconds)
        self.limiter = RedisLimiter(client, keys, self.settings.lease_seconds)
        self.redis_arbiter = RedisArbiter(self.limiter, ctx.run_id, worker=self.coordinator_id)

    def make_arbiter(self, ctx: RunContext) -> SlotArbiter:
        self._connect(ctx)
        return ChainedArbiter(LocalArbiter(self.config.tag_concurrency_limits), self.redis_arbiter)

    def start(self, ctx: RunContext) -> None:
        self._connect(ctx)
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
        client = self.instance.client
        client.set(self.instance.keys.run_plan(ctx.run_id), ctx.plan.to_json(), ex=PLAN_TTL_SECONDS)
        if input_values:
            self.instance.update_run(ctx.run_id, extra={"input_values": input_values})
        if ctx.event_cursor is not None:
            self._cursor = ctx.event_cursor  # a resumed run: from where its log was read
        else:
            last = client.xrevrange(self.instance.keys.run_events(ctx.run_id), count=1)
            self._cursor = str(last[0][0]) if last else None
        self._app = _celery_app(self.settings, self.config)
        self._broker_url = self._app.conf.broker_url

    # -- launching ------------------------------------------------------------------------

    def launch(self, launch: Launch) -> None:
        from workers.app import STEP_TASK, broker_priority

        assert self._ctx is not None
        token = self.redis_arbiter.tokens.get(launch.attempt_id)
        message = {
            "run_id": launch.run_id,
            "step_key": launch.step_key,
            "attempt": launch.attempt,
            "attempt_id": launch.attempt_id,
            "pointer": dict(self._ctx.pointer or {}),
            "lease_token": token,
            "retries_enabled": self.retries_enabled,
        }
        self._inflight[launch.attempt_id] = (launch.step_key, launch.queue, time.time())
        self._app.send_task(
            STEP_TASK,
            args=[message],
            queue=launch.queue,
            routing_key=launch.queue,
            task_id=launch.attempt_id,
            priority=broker_priority(launch.priority, self._broker_url, self.settings.max_priority),
        )

    def wait(self, timeout: float | None) -> list[Event]:
        assert self._ctx is not None
        block = self.check_interval if timeout is None else min(timeout, self.check_interval)
        events = []
        for cursor, event in self.instance.wait_for_events(self._ctx.run_id, self._cursor, block):
            self._cursor = cursor
            data = event.data
            if data.get("kind") == SLOT_GRANTED:
                self.redis_arbiter.note_granted(str(data["attempt_id"]), int(data["token"]))
            elif event.event_type_value in _ENDS_ATTEMPT and event.step_key is not None:
                attempt_id = f"{self._ctx.run_id}:{event.step_key}:{data.get('attempt')}"
                self._inflight.pop(attempt_id, None)
            events.append(event)
        if time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + self.check_interval
            self._maintain()
        return events

    def _maintain(self) -> None:
        """Renew leases of queued steps; find lost attempts and unconsumed queues."""
        assert self._ctx is not None
        self.redis_arbiter.renew_all()
        self.limiter.sweep()  # slots of dead holders come back, and go to waiters at once
        if not self._inflight:
            return
        infos = self.attempts.info(list(self._inflight))
        live_queues: set[str] | None = None
        now = time.time()
        for attempt_id, info in infos.items():
            step_key, queue, launched = self._inflight[attempt_id]
            reason = None
            if info.state == "running" and not info.heartbeat_alive:
                if self.attempts.settle(attempt_id, "lost"):
                    reason = f"worker {info.worker} stopped heartbeating"
            elif info.state == "lost":
                reason = f"worker {info.worker} was lost"
            elif info.state == "canceled":
                reason = "its concurrency lease expired before a worker started it"
            elif (
                info.state == "queued"
                and attempt_id not in self._reported
                and now - launched >= self.settings.no_consumer_delay
            ):
                if live_queues is None:
                    live_queues = self.workers.live_queues()
                if queue not in live_queues:
                    self._reported.add(attempt_id)
                    self.instance.store_event(
                        make_event(
                            EventType.ENGINE_EVENT,
                            self._ctx.run_id,
                            f"Step {step_key!r} has waited {now - launched:.0f}s on queue "
                            f"{queue!r}, "
                            "which no live worker consumes; start one with "
                            f"`orchestrator worker start ... -Q {queue}`",
                            step_key=step_key,
                            kind=NO_CONSUMER,
                            queue=queue,
                            attempt=int(attempt_id.rsplit(":", 1)[1]),
                        )
                    )
            if reason is not None:
                del self._inflight[attempt_id]
                self._lost.append((step_key, attempt_id, reason))

    def detach(self) -> None:
        """Another coordinator drives the run now: leave its steps to it."""
        self._inflight.clear()
        self.redis_arbiter.forget_all()

    def adopt_in_flight(self, launches: list[Launch]) -> None:
        now = time.time()
        for launch in launches:
            self._inflight[launch.attempt_id] = (launch.step_key, launch.queue, now)

    def lost_attempts(self) -> list[tuple[str, str, str]]:
        lost, self._lost = self._lost, []
        return lost

    def terminate(self, attempt_ids: list[str]) -> None:
        assert self._ctx is not None
        for attempt_id in attempt_ids:
            canceled = self.attempts.settle(attempt_id, "canceled")
            self._app.control.revoke(attempt_id, terminate=True, signal="SIGTERM")
            step_key, attempt = attempt_id.rsplit(":", 2)[1:]
            if not canceled:
                continue  # it had just finished: its own final event is on the stream
            self._inflight.pop(attempt_id, None)
            self.instance.store_event(
                make_event(
                    EventType.STEP_FAILURE,
                    self._ctx.run_id,
                    f"Step {step_key!r} was canceled with its run",
                    step_key=step_key,
                    attempt=int(attempt),
                    error={
                        "cls_name": "RunCanceled",
                        "message": "run canceled",
                        "stack": "",
                        "cause": None,
                    },
                )
            )

    def close(self) -> None:
        """Attempts still in flight when the run's driver stops (an engine error, an
        interrupt) are canceled and revoked, and their slots freed, so no worker runs a
        step of a run that has ended. The Celery app stays cached for the next run."""
        if self._ctx is None:
            return
        for attempt_id in list(self._inflight):
            self.attempts.settle(attempt_id, "canceled")
            if self._app is not None:
                self._app.control.revoke(attempt_id, terminate=True, signal="SIGTERM")
        self._inflight.clear()
        self.redis_arbiter.release_all()
