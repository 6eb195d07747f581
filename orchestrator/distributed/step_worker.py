"""What a worker does with one step message: claim the attempt, confirm its concurrency lease,
run the step, report. (``workers.tasks`` is the Celery task that calls it.)

A message carries data only: job pointer, run id, step key, attempt (and the attempt's lease
token). Everything else (plan, run tags) is read from Redis. Events go straight to the run's
event stream; the attempt's final event goes through ``finish.lua`` so it is written at most
once, and only while this worker still owns the attempt.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import redis

from orchestrator.definitions.reconstruct import CodeLocation, JobPointer, load_job
from orchestrator.distributed.attempts import AttemptRegistry
from orchestrator.distributed.messages import MessageVersionError, StepMessage
from orchestrator.errors import OrchestratorError
from orchestrator.events import (
    STEP_TERMINAL,
    Event,
    EventType,
    make_event,
    parse_attempt_id,
    step_failure,
)
from orchestrator.execution.context import RunContext
from orchestrator.execution.step_runner import StepRunner, start_event
from orchestrator.plan.steps import ExecutionPlan, ExecutionStep
from orchestrator.redis_keys import RedisKeys
from orchestrator.settings import Settings, get_settings
from orchestrator.storage.redis import RedisInstance

log = logging.getLogger("orchestrator.worker")

LOCATIONS_ENV = "ORCHESTRATOR_WORKER_LOCATIONS"
_ENDS_ATTEMPT = {e.value for e in STEP_TERMINAL} | {EventType.STEP_UP_FOR_RETRY.value}
# Written with the attempt's final event, in its one round trip (not one each)
_HELD = {EventType.STEP_OUTPUT.value, EventType.HANDLED_OUTPUT.value}


def allowed_locations() -> list[CodeLocation]:
    """Code locations this worker was started with (``orchestrator worker start -f/-m``)."""
    raw = os.environ.get(LOCATIONS_ENV, "[]")
    return [CodeLocation.from_dict(d) for d in json.loads(raw)]


@dataclass
class WorkerRuntime:
    """Per-process connections and caches (built lazily in each pool process)."""

    settings: Settings
    instance: RedisInstance
    attempts: AttemptRegistry
    locations: list[CodeLocation]
    worker_id: str
    _plans: OrderedDict[str, ExecutionPlan] = field(default_factory=OrderedDict)
    _runs: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    _limiter: Any = None

    @classmethod
    def build(cls) -> WorkerRuntime:
        settings = get_settings()
        instance = RedisInstance.from_url(settings.resolved_redis_url(), settings.key_prefix)
        keys = RedisKeys(settings.key_prefix)
        worker_id = f"{socket.gethostname()}:{os.getpid()}"
        return cls(
            settings,
            instance,
            AttemptRegistry(instance.client, keys),
            allowed_locations(),
            worker_id,
        )

    @property
    def keys(self) -> RedisKeys:
        return self.instance.keys

    @property
    def limiter(self) -> Any:
        """The cross-run limiter (built once per process)."""
        if self._limiter is None:
            from orchestrator.concurrency.redis import RedisLimiter

            self._limiter = RedisLimiter(
                self.instance.client, self.keys, self.settings.lease_seconds
            )
        return self._limiter

    def plan(self, message: StepMessage) -> ExecutionPlan:
        """The run's plan, cached by digest: the runs of one job with the same config share
        one plan, read and parsed once per process."""
        key = message.plan or message.run_id
        if key not in self._plans:
            if message.plan:
                text = self.instance.plan_json_by_digest(message.plan)
            else:
                text = self.instance.plan_json(message.run_id)
            if not text:
                raise LookupError(f"no stored plan for run {message.run_id}")
            _remember(self._plans, key, ExecutionPlan.from_json(text))
        return self._plans[key]

    def input_values(self, message: StepMessage) -> dict[str, Any]:
        """The run's input values (read from its record only when it has some)."""
        if not message.has_input_values:
            return {}
        if message.run_id not in self._runs:
            _remember(self._runs, message.run_id, self.instance.get_run(message.run_id))
        record = self._runs[message.run_id]
        return dict(record.extra.get("input_values") or {}) if record else {}


CACHED_RUNS = 64  # plans and run records kept per worker process (most recently used)


def _remember(cache: OrderedDict[str, Any], key: str, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > CACHED_RUNS:
        cache.popitem(last=False)


_runtime: WorkerRuntime | None = None
_runtime_pid: int | None = None


def runtime() -> WorkerRuntime:
    """This process's runtime (rebuilt after a fork: connections are not shared)."""
    global _runtime, _runtime_pid
    if _runtime is None or _runtime_pid != os.getpid():
        _runtime, _runtime_pid = WorkerRuntime.build(), os.getpid()
    return _runtime


class _Heartbeats(threading.Thread):
    """One thread per worker process renewing the heartbeat (and concurrency lease) of every
    attempt this process is running; starting a thread per step cost more than the step."""

    def __init__(self, rt: WorkerRuntime):
        super().__init__(daemon=True, name="orchestrator-heartbeats")
        self.rt = rt
        self.active: dict[str, tuple[str, int | None]] = {}  # attempt -> (token, lease token)
        self.lock = threading.Lock()

    def add(self, attempt_id: str, token: str, lease_token: int | None) -> None:
        with self.lock:
            self.active[attempt_id] = (token, lease_token)

    def remove(self, attempt_id: str) -> None:
        with self.lock:
            self.active.pop(attempt_id, None)

    def run(self) -> None:
        rt = self.rt
        while True:
            time.sleep(rt.settings.heartbeat_interval)  # a timer, not a wait for an event
            with self.lock:
                active = dict(self.active)
            for attempt_id, (token, lease_token) in active.items():
                try:
                    if not rt.attempts.beat(attempt_id, token, rt.settings.lease_seconds):
                        log.warning("attempt %s is no longer this worker's", attempt_id)
                    if lease_token:
                        rt.limiter.renew(attempt_id, lease_token, worker=rt.worker_id)
                except Exception:  # a Redis hiccup must not kill the step; the next beat retries
                    log.exception("heartbeat of attempt %s failed", attempt_id)


_heartbeats: _Heartbeats | None = None


def heartbeats(rt: WorkerRuntime) -> _Heartbeats:
    """This process's heartbeat thread (started on first use, again after a fork)."""
    global _heartbeats
    if _heartbeats is None or _heartbeats.rt is not rt or not _heartbeats.is_alive():
        _heartbeats = _Heartbeats(rt)
        _heartbeats.start()
    return _heartbeats


def _location_allowed(rt: WorkerRuntime, location: CodeLocation) -> bool:
    return any(location == allowed for allowed in rt.locations)


class AttemptTakenAway(OrchestratorError):
    """This worker's attempt was declared lost or canceled meanwhile: stop reporting."""


class RequeueMessage(OrchestratorError):
    """Redis failed before the attempt was claimed: the message must go back to the broker
    (``workers.tasks`` turns this into Celery's ``Reject(requeue=True)``)."""


def run_step_message(message: dict[str, Any], node: str | None = None) -> str:
    """Run one step attempt described by ``message``; returns what happened (for logs).

    Round trips on the way: confirm the concurrency lease (limited steps only), claim the
    attempt and store STEP_START (one script), log lines as they come, and one script at the
    end storing the outputs and the final event.

    Raises:
        RequeueMessage: Redis failed before the attempt was claimed; the message must go back
            to the broker rather than being lost.
    """
    try:
        return _run_step_message(message, node)
    except MessageVersionError as exc:
        return _refuse(message, exc)
    except redis.RedisError as exc:
        if _claimed.get(message["attempt_id"]):
            raise  # claimed: its heartbeat lapses and the coordinator starts a new attempt
        log.warning(
            "Redis failed before attempt %s was claimed (%s); requeueing it",
            message["attempt_id"],
            exc,
        )
        time.sleep(1.0)  # do not spin on a server that is down
        raise RequeueMessage(str(exc)) from exc
    finally:
        _claimed.pop(str(message.get("attempt_id")), None)


_claimed: dict[str, bool] = {}


def _refuse(raw: dict[str, Any], exc: MessageVersionError) -> str:
    """A message this worker cannot read: fail its attempt, saying why, when the message
    names one (every version does); otherwise only log it."""
    log.error("%s", exc)
    try:
        run_id, step_key, attempt = parse_attempt_id(str(raw.get("attempt_id", "")))
    except ValueError:
        return "refused (unreadable message)"
    rt = runtime()
    text = f"worker {rt.worker_id} refuses step {step_key!r}: {exc}"
    _fail_unrun(
        rt, str(raw["attempt_id"]), step_failure(run_id, step_key, attempt, text, error=exc)
    )
    return "refused (message version)"


def _fail_unrun(rt: WorkerRuntime, attempt_id: str, failure: Event) -> None:
    """End an attempt this worker will not run with ``failure``: claimed first, so a copy of
    the message already run elsewhere (or an attempt already settled) is left alone."""
    token = uuid.uuid4().hex
    if rt.attempts.claim(attempt_id, rt.worker_id, token, rt.settings.lease_seconds) == "claimed":
        rt.attempts.finish(attempt_id, token, failure)


def _run_step_message(raw: dict[str, Any], node: str | None) -> str:
    attempt = _Attempt(runtime(), StepMessage.from_dict(raw))
    if not attempt.location_allowed():
        return "rejected"
    if not attempt.lease_confirmed():
        return "lease expired"
    state = attempt.claim(node)
    if state != "claimed":
        log.info("ignoring delivery of attempt %s: it is %s", attempt.id, state)
        return f"ignored ({state})"
    _claimed[attempt.id] = True
    return attempt.run()


class _Attempt:
    """One delivery of a step message on this worker, from the checks before the claim to the
    final event.

    Attributes:
        token: this delivery's claim token (a newer claim of the attempt makes it stale).
        held: STEP_OUTPUT and HANDLED_OUTPUT events, written with the final event in its one
            round trip.
    """

    def __init__(self, rt: WorkerRuntime, message: StepMessage):
        self.rt = rt
        self.message = message
        self.id = message.attempt_id
        self.pointer = JobPointer.from_dict(message.pointer)
        self.token = uuid.uuid4().hex
        self.held: list[Event] = []

    def location_allowed(self) -> bool:
        """Whether the job's code location is one this worker was started with; if not, the
        attempt fails, naming both."""
        rt, msg = self.rt, self.message
        if _location_allowed(rt, self.pointer.location):
            return True
        allowed = ", ".join(str(loc) for loc in rt.locations) or "none"
        text = (
            f"worker {rt.worker_id} refuses step {msg.step_key!r}: its code location "
            f"({self.pointer.location}) is not one this worker was started with ({allowed})"
        )
        failure = step_failure(
            msg.run_id, msg.step_key, msg.attempt, text, error="CodeLocationRejected"
        )
        _fail_unrun(rt, self.id, failure)
        return False

    def lease_confirmed(self) -> bool:
        """Whether the attempt's concurrency lease (if it has one) is still granted; if it
        expired while the message waited in the broker, the attempt is settled as canceled."""
        rt, msg = self.rt, self.message
        if not msg.lease_token or rt.limiter.confirm(self.id, msg.lease_token, rt.worker_id):
            return True
        if rt.attempts.settle(self.id, "canceled"):
            rt.instance.store_event(
                make_event(
                    EventType.ENGINE_EVENT,
                    msg.run_id,
                    f"step {msg.step_key!r} attempt {msg.attempt} was not run: its concurrency "
                    "lease expired while the message waited in the broker (its coordinator "
                    "stopped renewing it)",
                    step_key=msg.step_key,
                    attempt=msg.attempt,
                    kind="attempt_rejected",
                )
            )
        return False

    def claim(self, node: str | None) -> str:
        """Claim the attempt and store its STEP_START (one script); returns its state."""
        rt, msg = self.rt, self.message
        worker = f"{node or rt.worker_id} pid {os.getpid()}"
        return rt.attempts.claim(
            self.id,
            rt.worker_id,
            self.token,
            rt.settings.lease_seconds,
            start_event(msg.run_id, msg.step_key, msg.attempt, worker=worker),
        )

    def report(self, event: Event) -> None:
        """Where each event of the step goes: the final one (with the held outputs, and the
        slot release) through ``finish.lua``, outputs held for it, the rest straight to the
        run's stream."""
        if event.event_type_value in _ENDS_ATTEMPT:
            also = self._release_slots if self.message.lease_token else None
            finished = self.rt.attempts.finish(self.id, self.token, event, self.held, also)
            self.held.clear()
            if finished is None:  # no hooks, no more events: a newer attempt owns the step
                raise AttemptTakenAway(self.id)
        elif event.event_type_value in _HELD:
            self.held.append(event)
        else:
            self.rt.instance.store_event(event)

    def _release_slots(self, pipe: Any) -> None:
        # The step is over: its slots go to the next waiter now, in the same round trip,
        # rather than once its coordinator has read the result.
        assert self.message.lease_token is not None
        self.rt.limiter.queue_release(pipe, self.id, self.message.lease_token)

    def run(self) -> str:
        """Run the claimed attempt with its heartbeat; returns the step runner's outcome."""
        rt, msg = self.rt, self.message
        beats = heartbeats(rt)
        beats.add(self.id, self.token, msg.lease_token)
        try:
            ctx = RunContext(
                run_id=msg.run_id,
                job=load_job(self.pointer),
                plan=rt.plan(msg),
                run_tags=msg.run_tags,
                emit=self.report,
                input_values=rt.input_values(msg),
                retries_enabled=msg.retries_enabled,
                loggers=[logging.getLogger("orchestrator")],
                instance=rt.instance,
            )
            step = ExecutionStep.from_dict(msg.step) if msg.step is not None else None
            return StepRunner(ctx).run(msg.step_key, msg.attempt, announce=False, step=step).status
        except AttemptTakenAway:
            log.warning("attempt %s was taken away; its result is dropped", self.id)
            return "taken away"
        except redis.RedisError:
            raise
        except Exception as exc:  # the job or plan could not be loaded: fail it, loudly
            text = (
                f"step {msg.step_key!r} could not start on {rt.worker_id}: "
                f"{type(exc).__name__}: {exc}"
            )
            self.report(step_failure(msg.run_id, msg.step_key, msg.attempt, text, error=exc))
            return "failed to start"
        finally:
            beats.remove(self.id)
