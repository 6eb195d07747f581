"""The execution loop: one pure state machine that every executor drives.

It takes events in (from steps, wherever they ran) and the current time, and says which step
attempts to launch next and when it next needs to be called. It never blocks, never sleeps and
knows nothing of processes or Celery. Its state can be rebuilt from a run's event log.

Step states::

    PENDING --upstream done--> READY --slots asked--> WAITING_SLOT --granted--> IN_FLIGHT
                 \\--upstream failed/skipped--> SKIPPED          (granted at once ^)
    IN_FLIGHT --STEP_SUCCESS--> SUCCEEDED
              --STEP_FAILURE--> FAILED
              --STEP_UP_FOR_RETRY--> RETRY_WAIT --delay passed--> READY
              --attempt lost--> READY (new attempt) or FAILED after max_lost_attempts
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from orchestrator.concurrency.limits import SlotArbiter, SlotRequest
from orchestrator.errors import OrchestratorError
from orchestrator.execution.events import Event, EventType, make_event
from orchestrator.plan.steps import ExecutionPlan, ExecutionStep, InputKind

LAUNCHED = "step_launched"
WAITING_FOR_SLOT = "waiting_for_slot"
ATTEMPT_LOST = "attempt_lost"
SLOT_GRANTED = "slot_granted"  # written by the cross-run limiter onto the run's stream
CANCEL_REQUESTED = "cancel_requested"  # written by `orchestrator run cancel`
NO_CONSUMER = "no_consumer"  # a queued step's queue has no live worker (Celery executor)
RESENT = "step_resent"  # its message was sent again: the worker holding it died (Celery)


class StepState(StrEnum):
    PENDING = "pending"  # some upstream step has not finished
    READY = "ready"  # upstream done; asks for slots on the next tick
    WAITING_SLOT = "waiting_slot"  # asked the arbiter; no grant yet
    IN_FLIGHT = "in_flight"  # launched under an attempt id; outcome not known yet
    RETRY_WAIT = "retry_wait"  # up for retry; READY again at its retry time
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


TERMINAL = frozenset({StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED})


def attempt_id_for(run_id: str, step_key: str, attempt: int) -> str:
    """Deterministic attempt id, so a rebuilt loop names attempts as the original did."""
    return f"{run_id}:{step_key}:{attempt}"


@dataclass(frozen=True)
class Launch:
    """An order to start one step attempt."""

    run_id: str
    step_key: str
    attempt: int  # 1 for the first attempt
    attempt_id: str
    priority: int
    queue: str
    lease_token: int | None = None  # fencing token of its cross-run slots, if limited

    @property
    def retry_number(self) -> int:
        return self.attempt - 1


@dataclass
class Tick:
    """What the loop wants done now.

    Attributes:
        launch: attempts to start, highest priority first.
        events: events the loop produced (skips, launches, waits) for the run's log.
        terminate: in-flight attempts to stop (after a cancel request).
        wake_at: call ``tick`` again no later than this time (retry delays), or None.
        done: every step has finished (or the run was cancelled and nothing is in flight).
    """

    launch: list[Launch] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    terminate: list[str] = field(default_factory=list)
    wake_at: float | None = None
    done: bool = False


class LoopStalledError(OrchestratorError):
    """The loop has unfinished steps and nothing that could ever finish them (a bug guard)."""


class ExecutionLoop:
    """Drives one run's plan. See the module docstring for the states.

    Args:
        plan: the run's plan.
        run_id: the run.
        arbiter: grants concurrency slots (per-run and/or cross-run limits).
        max_lost_attempts: attempts lost to dead workers before the step fails.
    """

    def __init__(
        self, plan: ExecutionPlan, run_id: str, arbiter: SlotArbiter, max_lost_attempts: int = 3
    ):
        self.plan = plan
        self.run_id = run_id
        self.arbiter = arbiter
        self.max_lost_attempts = max_lost_attempts
        self.state: dict[str, StepState] = {k: StepState.PENDING for k in plan.step_keys}
        self.attempt: dict[str, int] = dict.fromkeys(plan.step_keys, 0)  # launches so far
        self.lost: dict[str, int] = dict.fromkeys(plan.step_keys, 0)  # attempts lost
        self.retry_at: dict[str, float] = {}  # RETRY_WAIT steps -> when they are READY
        self.produced: dict[str, set[str]] = {k: set() for k in plan.step_keys}
        self.canceled = False  # cancel requested: launch nothing more
        self.abandoned = False  # another coordinator took the run over (see drive_run)
        self._terminate_sent = False
        self._order = {k: i for i, k in enumerate(plan.step_keys)}
        self._by_attempt: dict[str, str] = {}  # attempt id -> step key

    # -- inputs ---------------------------------------------------------------------------

    @classmethod
    def from_events(
        cls,
        plan: ExecutionPlan,
        run_id: str,
        arbiter: SlotArbiter,
        events: Iterable[Event],
        max_lost_attempts: int = 3,
    ) -> ExecutionLoop:
        """Rebuild a loop from a run's stored event log (a restarted coordinator resumes so).

        Steps that were waiting for slots ask again; in-flight steps stay in flight under
        their attempt id (the executor decides whether they are still alive).
        """
        loop = cls(plan, run_id, arbiter, max_lost_attempts)
        for event in events:
            loop.handle(event, replay=True)
        for key, state in loop.state.items():
            if state is StepState.WAITING_SLOT:
                loop.state[key] = StepState.READY
                loop.attempt[key] -= 1
        loop.attach_arbiter(arbiter)
        return loop

    def attach_arbiter(self, arbiter: SlotArbiter) -> None:
        """Use ``arbiter`` from now on; in-flight attempts are counted as holding slots."""
        self.arbiter = arbiter
        for key, state in self.state.items():
            if state is StepState.IN_FLIGHT:
                step = self.plan.step(key)
                arbiter.adopt(
                    SlotRequest(
                        self.current_attempt_id(key),
                        self.run_id,
                        key,
                        dict(step.tags),
                        step.priority,
                    )
                )

    def current_attempt_id(self, step_key: str) -> str:
        return attempt_id_for(self.run_id, step_key, self.attempt[step_key])

    def handle(self, event: Event, replay: bool = False) -> None:
        """Apply one event. Events of an attempt other than the step's current one are
        ignored (a late duplicate from a lost worker changes nothing).

        ``replay`` is set when rebuilding from a stored log: only then are the loop's own
        decisions (launched, waiting, attempt lost) applied; live, they are echoes of what the
        loop already did (executors that read the run's stream hand them back)."""
        etype = event.event_type_value
        kind = event.data.get("kind") if etype == EventType.ENGINE_EVENT.value else None
        if kind == CANCEL_REQUESTED:
            self.cancel()
            return
        key = event.step_key
        if key is None or key not in self.state:
            return
        attempt = event.data.get("attempt")
        if etype == EventType.ENGINE_EVENT.value:
            if kind == SLOT_GRANTED:
                return  # grants reach the loop through its arbiter (the executor notes them)
            if not replay:
                return
            if kind in (LAUNCHED, WAITING_FOR_SLOT) and attempt is not None:
                if attempt < self.attempt[key] or (
                    attempt == self.attempt[key] and self.state[key] is not StepState.WAITING_SLOT
                ):
                    return  # the attempt's own events were logged first (workers write directly)
                self._begin_attempt(key, attempt)
                self.state[key] = (
                    StepState.IN_FLIGHT if kind == LAUNCHED else StepState.WAITING_SLOT
                )
            elif kind == ATTEMPT_LOST and attempt == self.attempt[key]:
                self.lost[key] += 1
                self.state[key] = StepState.READY
            return
        if etype == EventType.STEP_SKIPPED.value:
            self.state[key] = StepState.SKIPPED
            return
        if replay and attempt is not None and attempt > self.attempt[key]:
            # A worker's event logged before the coordinator's launch record of that attempt.
            self._begin_attempt(key, attempt)
            self.state[key] = StepState.IN_FLIGHT
        if attempt is not None and attempt != self.attempt[key]:
            return  # stale attempt
        if self.state[key] in TERMINAL:
            return  # a step never completes twice
        if etype == EventType.STEP_OUTPUT.value:
            self.produced[key].add(event.data["output_name"])
        elif etype == EventType.STEP_SUCCESS.value:
            self._finish(key, StepState.SUCCEEDED)
        elif etype == EventType.STEP_FAILURE.value:
            self._finish(key, StepState.FAILED)
        elif etype == EventType.STEP_UP_FOR_RETRY.value:
            self._release(key)
            self.state[key] = StepState.RETRY_WAIT
            self.retry_at[key] = event.timestamp + float(event.data.get("seconds_to_wait") or 0)
            self.produced[key] = set()

    def _begin_attempt(self, key: str, attempt: int) -> None:
        """Replay: attempt ``attempt`` of ``key`` was launched."""
        if attempt > self.attempt[key]:
            self.produced[key] = set()  # outputs of earlier (lost) attempts don't count
        self.attempt[key] = max(self.attempt[key], attempt)
        self._by_attempt[attempt_id_for(self.run_id, key, attempt)] = key
        self.retry_at.pop(key, None)  # a retry's new attempt has begun

    def attempt_lost(self, step_key: str, attempt_id: str, reason: str, now: float) -> Event:
        """The attempt's worker is gone (lease or heartbeat lapsed). Returns the event to
        store: a new attempt is scheduled, or the step fails after ``max_lost_attempts``."""
        attempt = self.attempt[step_key]
        if attempt_id != attempt_id_for(self.run_id, step_key, attempt) or (
            self.state[step_key] is not StepState.IN_FLIGHT
        ):
            raise OrchestratorError(f"attempt {attempt_id} is not the one in flight")
        self._release(step_key)
        if self.lost[step_key] + 1 >= self.max_lost_attempts:
            event = make_event(
                EventType.STEP_FAILURE,
                self.run_id,
                f"Step {step_key!r} lost {self.max_lost_attempts} attempts (last: {reason}); "
                "giving up (max_lost_attempts)",
                step_key=step_key,
                timestamp=now,
                attempt=attempt,
                error={"cls_name": "StepLostError", "message": reason, "stack": "", "cause": None},
            )
            self.handle(event)
            return event
        event = make_event(
            EventType.ENGINE_EVENT,
            self.run_id,
            f"Attempt {attempt} of step {step_key!r} was lost ({reason}); starting a new one",
            step_key=step_key,
            timestamp=now,
            kind=ATTEMPT_LOST,
            attempt=attempt,
        )
        self.handle(event, replay=True)
        return event

    def cancel(self) -> None:
        """Launch nothing more; in-flight attempts are listed in ``Tick.terminate`` once."""
        self.canceled = True

    # -- decisions --------------------------------------------------------------------------

    def tick(self, now: float) -> Tick:
        """Decide what to do at time ``now``."""
        out = Tick()
        if self.canceled:
            for key, state in self.state.items():
                if state is StepState.WAITING_SLOT:
                    self._release(key)
                    self.state[key] = StepState.READY
            in_flight = self.in_flight_attempts()
            if not self._terminate_sent:
                out.terminate = in_flight
                self._terminate_sent = True
            out.done = not in_flight
            return out
        for key, when in list(self.retry_at.items()):
            if when <= now:
                del self.retry_at[key]
                self.state[key] = StepState.READY
        self._promote(now, out)
        ready = sorted(
            (k for k, s in self.state.items() if s is StepState.READY),
            key=lambda k: (-self.plan.step(k).priority, self._order[k]),
        )
        for key in ready:
            self._ask_for_slots(key, now, out)
        for attempt_id in self.arbiter.granted():
            granted_key = self._by_attempt.get(attempt_id)
            if (
                granted_key is not None
                and self.state[granted_key] is StepState.WAITING_SLOT
                and (attempt_id == self.current_attempt_id(granted_key))
            ):
                self._launch(granted_key, now, out)
        out.launch.sort(key=lambda launch: -launch.priority)
        out.wake_at = min(self.retry_at.values(), default=None)
        out.done = all(s in TERMINAL for s in self.state.values())
        if (
            not out.done
            and not out.launch
            and out.wake_at is None
            and not any(
                s in (StepState.IN_FLIGHT, StepState.WAITING_SLOT) for s in self.state.values()
            )
        ):
            stuck = [k for k, s in self.state.items() if s not in TERMINAL]
            raise LoopStalledError(f"steps {stuck} can never run; nothing is in flight")
        return out

    def _promote(self, now: float, out: Tick) -> None:
        # Plan order is topological, so one pass settles cascades of skips.
        for step in self.plan.steps:
            if self.state[step.key] is not StepState.PENDING:
                continue
            if any(self.state[u] not in TERMINAL for u in step.upstream_keys):
                continue
            reason = self._skip_reason(step)
            if reason is None:
                self.state[step.key] = StepState.READY
            else:
                self.state[step.key] = StepState.SKIPPED
                out.events.append(
                    make_event(
                        EventType.STEP_SKIPPED,
                        self.run_id,
                        f"Skipping step {step.key!r}: {reason}",
                        step_key=step.key,
                        timestamp=now,
                    )
                )

    def _skip_reason(self, step: ExecutionStep) -> str | None:
        for step_input in step.inputs:
            if step_input.kind not in (InputKind.STEP_OUTPUT, InputKind.NOTHING):
                continue
            missing = []
            here = [src for src in step_input.sources if src.run_id is None]
            for src in here:  # (a fan-in's sources read from the parent run are stored)
                state = self.state[src.step_key]
                if state is StepState.FAILED:
                    return f"upstream step {src.step_key!r} failed"
                if state is StepState.SKIPPED:
                    missing.append(f"upstream step {src.step_key!r} was skipped")
                elif (
                    step_input.kind is InputKind.STEP_OUTPUT
                    and src.output_name not in self.produced[src.step_key]
                ):
                    missing.append(
                        f"output {src.output_name!r} of {src.step_key!r} was not produced"
                    )
            if missing and (not step_input.fan_in or len(missing) == len(step_input.sources)):
                return missing[0]
        return None

    def _ask_for_slots(self, key: str, now: float, out: Tick) -> None:
        self.attempt[key] += 1
        attempt_id = self.current_attempt_id(key)
        self._by_attempt[attempt_id] = key
        step = self.plan.step(key)
        req = SlotRequest(attempt_id, self.run_id, key, dict(step.tags), step.priority)
        if self.arbiter.request(req):
            self._launch(key, now, out)
            return
        self.state[key] = StepState.WAITING_SLOT
        out.events.append(
            make_event(
                EventType.ENGINE_EVENT,
                self.run_id,
                f"Step {key!r} {self.arbiter.describe_wait(attempt_id)}",
                step_key=key,
                timestamp=now,
                kind=WAITING_FOR_SLOT,
                attempt=self.attempt[key],
            )
        )

    def _launch(self, key: str, now: float, out: Tick) -> None:
        step = self.plan.step(key)
        attempt = self.attempt[key]
        self.state[key] = StepState.IN_FLIGHT
        self.produced[key] = set()
        attempt_id = self.current_attempt_id(key)
        out.launch.append(
            Launch(
                self.run_id,
                key,
                attempt,
                attempt_id,
                step.priority,
                step.queue,
                self.arbiter.token(attempt_id),
            )
        )
        out.events.append(
            make_event(
                EventType.ENGINE_EVENT,
                self.run_id,
                f"Launching step {key!r} (attempt {attempt})",
                step_key=key,
                timestamp=now,
                kind=LAUNCHED,
                attempt=attempt,
            )
        )

    def _release(self, key: str) -> None:
        if self.attempt[key]:
            self.arbiter.release(self.current_attempt_id(key))

    def _finish(self, key: str, state: StepState) -> None:
        self._release(key)
        self.state[key] = state
        self.retry_at.pop(key, None)

    # -- queries ----------------------------------------------------------------------------

    def in_flight_launches(self) -> list[Launch]:
        """The launches of the attempts now in flight (to re-attach after a resume)."""
        out = []
        for key, state in self.state.items():
            if state is StepState.IN_FLIGHT:
                step = self.plan.step(key)
                attempt_id = self.current_attempt_id(key)
                out.append(
                    Launch(
                        self.run_id,
                        key,
                        self.attempt[key],
                        attempt_id,
                        step.priority,
                        step.queue,
                        self.arbiter.token(attempt_id),
                    )
                )
        return out

    def in_flight_attempts(self) -> list[str]:
        return [
            self.current_attempt_id(k) for k, s in self.state.items() if s is StepState.IN_FLIGHT
        ]

    def abandon(self, attempt_id: str) -> None:
        """Forget an in-flight attempt after cancellation (its process was terminated)."""
        key = self._by_attempt.get(attempt_id)
        if key is not None and self.state[key] is StepState.IN_FLIGHT:
            self._release(key)
            self.state[key] = StepState.FAILED

    @property
    def succeeded(self) -> bool:
        return all(
            s in (StepState.SUCCEEDED, StepState.SKIPPED) for s in self.state.values()
        ) and not any(s is StepState.FAILED for s in self.state.values())

    def summary(self) -> dict[str, Any]:
        return {k: s.value for k, s in self.state.items()}
