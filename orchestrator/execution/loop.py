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

Mapped steps: when a step with dynamic outputs ends, the mapping keys its STEP_OUTPUT events
named resolve the plan's templates over them into steps ``op[key]`` (``orchestrator.plan.
dynamic``), which join the loop as PENDING; collect inputs over them learn their sources. The
loop records each resolution (a ``mapping_resolved`` engine event) and, when there is nothing to
map (no keys, or the output never came), a STEP_SKIPPED for ``op[?]``. Replaying the same log
makes the same steps, so nothing here is executor-specific.

The loop is incremental: each step counts its unfinished upstream steps, so a tick costs what
changed, not the size of the run (runs of many thousands of mapped steps).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from orchestrator.concurrency.limits import SlotArbiter, SlotRequest
from orchestrator.errors import OrchestratorError
from orchestrator.events import (
    ErrorInfo,
    Event,
    EventType,
    attempt_id_for,
    make_event,
    step_failure,
)
from orchestrator.plan.dynamic import (
    UNRESOLVED,
    concrete_input,
    concrete_step,
    in_run,
    needed_outputs,
    output_id,
    split_step_key,
    step_key_for,
)
from orchestrator.plan.steps import ExecutionPlan, ExecutionStep, InputKind

LAUNCHED = "step_launched"
WAITING_FOR_SLOT = "waiting_for_slot"
ATTEMPT_LOST = "attempt_lost"
SLOT_GRANTED = "slot_granted"  # written by the cross-run limiter onto the run's stream
CANCEL_REQUESTED = "cancel_requested"  # written by `orchestrator run cancel`
NO_CONSUMER = "no_consumer"  # a queued step's queue has no live worker (Celery executor)
RESENT = "step_resent"  # its message was sent again: the worker holding it died (Celery)
MAPPING_RESOLVED = "mapping_resolved"  # a dynamic output's mapping keys made mapped steps


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
    step: ExecutionStep | None = None  # the step to run (a mapped step is not in the plan)

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
        self.state: dict[str, StepState] = {}
        self.steps: dict[str, ExecutionStep] = {}  # every step the run has so far
        self.attempt: dict[str, int] = {}  # launches so far
        self.lost: dict[str, int] = {}  # attempts lost
        self.retry_at: dict[str, float] = {}  # RETRY_WAIT steps -> when they are READY
        self.produced: dict[str, set[str]] = {}
        self.mapping: dict[str, dict[str, dict[str, None]]] = {}  # step -> output -> keys
        self.resolved: dict[str, tuple[str, ...]] = {}  # "step:output" -> mapping keys
        self.canceled = False  # cancel requested: launch nothing more
        self.abandoned = False  # another coordinator took the run over (see drive_run)
        self._terminate_sent = False
        self._order: dict[str, int] = {}
        self._by_attempt: dict[str, str] = {}  # attempt id -> step key
        # incremental bookkeeping: unfinished upstream steps per step, and who waits on whom
        self._blockers: dict[str, int] = {}
        self._downstream: dict[str, list[str]] = {}
        self._unresolved: dict[str, tuple[ExecutionStep, tuple[str, ...]]] = {}
        self._waiting_on: dict[str, list[str]] = {}  # "step:output" -> steps collecting it
        self._upstream: dict[str, set[str]] = {}  # of steps whose collect is unresolved
        self._settle: list[str] = []  # PENDING steps whose upstream all finished
        self._ready: list[str] = []
        self._in_flight: set[str] = set()
        self._waiting_slot: set[str] = set()
        self._open = 0  # steps not in a terminal state
        self._failed = 0
        self._unrecorded: dict[str, list[Event]] = {}  # resolution events not yet logged
        for step in plan.steps:
            if step.is_template:
                continue
            if any(i.mode == "collect" for i in step.inputs):
                self._add_unresolved(step, ())
            else:
                self._add(step)
        self._inherit()

    # -- building the run's steps ------------------------------------------------------------

    def _add(self, step: ExecutionStep, upstream: set[str] | None = None) -> None:
        key = step.key
        self.steps[key] = step
        self._register(key)
        self._wire(key, step.upstream_keys if upstream is None else upstream)

    def _register(self, key: str) -> None:
        self.state[key] = StepState.PENDING
        self.attempt[key] = 0
        self.lost[key] = 0
        self.produced[key] = set()
        self._order[key] = len(self._order)
        self._open += 1
        self._blockers[key] = 0

    def _wire(self, key: str, upstream: Iterable[str]) -> None:
        for up in upstream:
            state = self.state.get(up)
            if state is None or state in TERMINAL:
                continue  # not of this run (read from the parent), or finished already
            self._blockers[key] += 1
            self._downstream.setdefault(up, []).append(key)
        if self._blockers[key] == 0:
            self._settle.append(key)

    def _add_unresolved(self, base: ExecutionStep, keys: tuple[str, ...]) -> None:
        """A step with collect inputs: it waits for the steps producing the dynamic outputs it
        gathers; once their keys are known it also waits for the mapped steps it gathers."""
        made = concrete_step(self.plan, base, keys, self.resolved)
        if made is not None:
            self._add(made)
            return
        key = step_key_for(base.handle, keys) if base.is_template else base.key
        self.steps[key] = base
        self._register(key)
        self._unresolved[key] = (base, keys)
        upstream = self._known_upstream(base, keys)
        self._upstream[key] = set(upstream)
        for producer, output in needed_outputs(base, keys):
            oid = output_id(producer, output)
            if oid not in self.resolved:
                self._waiting_on.setdefault(oid, []).append(key)
        self._wire(key, upstream)

    def _known_upstream(self, base: ExecutionStep, keys: tuple[str, ...]) -> set[str]:
        """Upstream steps of a step whose collect inputs are not all resolved: what the
        resolved inputs read, and the producers of the dynamic outputs still unknown."""
        upstream: set[str] = set()
        for step_input in base.inputs:
            made = concrete_input(self.plan, step_input, keys, self.resolved)
            if made is not None:
                upstream |= made.upstream_keys
        for producer, output in needed_outputs(base, keys):
            if output_id(producer, output) not in self.resolved:
                upstream.add(producer)
        return upstream

    def _inherit(self) -> None:
        """A re-execution: dynamic outputs of steps not run again resolve from the parent."""
        mapped = self.plan.mapped
        if mapped is None:
            return
        for oid, keys in mapped.resolved.items():
            producer = oid.rpartition(":")[0]
            if not in_run(self.plan, producer):
                self._resolve(producer, oid.rpartition(":")[2], keys, record=False)

    def _resolve(
        self, producer: str, output: str, keys: tuple[str, ...] | None, record: bool = True
    ) -> None:
        """Dynamic output ``output`` of step ``producer`` ended with mapping keys ``keys``
        (None: it was not produced). Makes the mapped steps and tells the collects."""
        oid = output_id(producer, output)
        if oid in self.resolved:
            return
        handle, prefix = split_step_key(producer)
        events: list[Event] = []
        if keys is not None:
            self.resolved[oid] = keys
        templates = self.plan.templates_over(handle, output)
        if record:
            count = len(keys) if keys is not None else 0
            what = "was not produced" if keys is None else f"produced {count} mapping key(s)"
            events.append(
                make_event(
                    EventType.ENGINE_EVENT,
                    self.run_id,
                    f"Dynamic output {output!r} of step {producer!r} {what}; mapping "
                    f"{', '.join(repr(t.handle) for t in templates) or 'nothing'} over it",
                    step_key=producer,
                    kind=MAPPING_RESOLVED,
                    output_name=output,
                    mapping_keys=list(keys) if keys is not None else None,
                    steps=[t.handle for t in templates],
                )
            )
        for template in templates:
            if not keys:
                placeholder = step_key_for(template.handle, prefix) + UNRESOLVED
                if placeholder in self.state:
                    continue
                self._register(placeholder)
                self._set(placeholder, StepState.SKIPPED)
                why = "it was not produced" if keys is None else "it produced no mapping keys"
                if record:
                    events.append(
                        make_event(
                            EventType.STEP_SKIPPED,
                            self.run_id,
                            f"Skipping step {placeholder!r}: dynamic output {output!r} of "
                            f"{producer!r} maps nothing ({why})",
                            step_key=placeholder,
                        )
                    )
                continue
            for key in keys:
                made_key = step_key_for(template.handle, (*prefix, key))
                if made_key in self.state or not in_run(self.plan, made_key):
                    continue
                if any(i.mode == "collect" for i in template.inputs):
                    self._add_unresolved(template, (*prefix, key))
                else:
                    made = concrete_step(self.plan, template, (*prefix, key), self.resolved)
                    assert made is not None
                    self._add(made)
        for waiting in self._waiting_on.pop(oid, []):
            self._collect_resolved(waiting)
        if events:
            self._unrecorded[oid] = events

    def _collect_resolved(self, key: str) -> None:
        """A dynamic output a collecting step waits on resolved: it now also waits for what
        it gathers (the step itself is made when its upstream has finished)."""
        base, keys = self._unresolved[key]
        upstream = self._known_upstream(base, keys)
        new = upstream - self._upstream[key]
        self._upstream[key] |= new
        for up in new:
            state = self.state.get(up)
            if state is None or state in TERMINAL:
                continue
            self._blockers[key] += 1
            self._downstream.setdefault(up, []).append(key)
        if self._blockers[key] == 0:
            self._settle.append(key)

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
        for key in list(loop._waiting_slot):
            loop._set(key, StepState.READY)
            loop.attempt[key] -= 1
        loop.attach_arbiter(arbiter)
        return loop

    def attach_arbiter(self, arbiter: SlotArbiter) -> None:
        """Use ``arbiter`` from now on; in-flight attempts are counted as holding slots."""
        self.arbiter = arbiter
        for key in self._in_flight:
            step = self.steps[key]
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
        if kind == MAPPING_RESOLVED and key is not None:
            # logged already: what resolving it again on a replay would record is not new
            self._unrecorded.pop(output_id(key, str(event.data.get("output_name"))), None)
            return
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
                self._set(key, StepState.IN_FLIGHT if kind == LAUNCHED else StepState.WAITING_SLOT)
            elif kind == ATTEMPT_LOST and attempt == self.attempt[key]:
                self.lost[key] += 1
                self._set(key, StepState.READY)
            return
        if etype == EventType.STEP_SKIPPED.value:
            if self.state[key] not in TERMINAL:
                self._finish(key, StepState.SKIPPED)
            return
        if replay and attempt is not None and attempt > self.attempt[key]:
            # A worker's event logged before the coordinator's launch record of that attempt.
            self._begin_attempt(key, attempt)
            self._set(key, StepState.IN_FLIGHT)
        if attempt is not None and attempt != self.attempt[key]:
            return  # stale attempt
        if self.state[key] in TERMINAL:
            return  # a step never completes twice
        if etype == EventType.STEP_OUTPUT.value:
            name = event.data["output_name"]
            self.produced[key].add(name)
            mapping_key = event.data.get("mapping_key")
            if mapping_key is not None:  # (a dict: the keys in order, each once)
                self.mapping.setdefault(key, {}).setdefault(name, {})[str(mapping_key)] = None
        elif etype == EventType.STEP_SUCCESS.value:
            self._finish(key, StepState.SUCCEEDED)
        elif etype == EventType.STEP_FAILURE.value:
            self._finish(key, StepState.FAILED)
        elif etype == EventType.STEP_UP_FOR_RETRY.value:
            self._release(key)
            self._set(key, StepState.RETRY_WAIT)
            self.retry_at[key] = event.timestamp + float(event.data.get("seconds_to_wait") or 0)
            self._new_outputs(key)

    def _new_outputs(self, key: str) -> None:
        self.produced[key] = set()
        self.mapping.pop(key, None)

    def _begin_attempt(self, key: str, attempt: int) -> None:
        """Replay: attempt ``attempt`` of ``key`` was launched."""
        if attempt > self.attempt[key]:
            self._new_outputs(key)  # outputs of earlier (lost) attempts don't count
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
            event = step_failure(
                self.run_id,
                step_key,
                attempt,
                f"Step {step_key!r} lost {self.max_lost_attempts} attempts (last: {reason}); "
                "giving up (max_lost_attempts)",
                error=ErrorInfo("StepLostError", reason, ""),
                timestamp=now,
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
        for events in self._unrecorded.values():
            out.events.extend(events)
        self._unrecorded.clear()
        if self.canceled:
            for key in list(self._waiting_slot):
                self._release(key)
                self._set(key, StepState.READY)
            in_flight = self.in_flight_attempts()
            if not self._terminate_sent:
                out.terminate = in_flight
                self._terminate_sent = True
            out.done = not in_flight
            return out
        for key, when in list(self.retry_at.items()):
            if when <= now:
                del self.retry_at[key]
                self._set(key, StepState.READY)
        self._promote(now, out)
        for events in self._unrecorded.values():  # what skips resolved (nothing to map)
            out.events.extend(events)
        self._unrecorded.clear()
        ready = sorted(
            {k for k in self._ready if self.state[k] is StepState.READY},
            key=lambda k: (-self.steps[k].priority, self._order[k]),
        )
        self._ready.clear()
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
        out.done = self._open == 0
        if (
            not out.done
            and not out.launch
            and out.wake_at is None
            and not self._in_flight
            and not self._waiting_slot
        ):
            stuck = [k for k, s in self.state.items() if s not in TERMINAL]
            raise LoopStalledError(f"steps {stuck} can never run; nothing is in flight")
        return out

    def _promote(self, now: float, out: Tick) -> None:
        """Steps whose upstream all finished become READY or SKIPPED (skips cascade)."""
        while self._settle:
            key = self._settle.pop()
            if self.state.get(key) is not StepState.PENDING or self._blockers[key]:
                continue
            if key in self._unresolved:
                base, keys = self._unresolved[key]
                made = concrete_step(self.plan, base, keys, self.resolved)
                if made is not None:
                    del self._unresolved[key]
                    del self._upstream[key]
                    self.steps[key] = made
            reason = self._skip_reason(key)
            if reason is None:
                self._set(key, StepState.READY)
                continue
            out.events.append(
                make_event(
                    EventType.STEP_SKIPPED,
                    self.run_id,
                    f"Skipping step {key!r}: {reason}",
                    step_key=key,
                    timestamp=now,
                )
            )
            self._finish(key, StepState.SKIPPED)

    def _skip_reason(self, key: str) -> str | None:
        if key in self._unresolved:
            base, keys = self._unresolved[key]
            for producer, output in needed_outputs(base, keys):
                if output_id(producer, output) not in self.resolved:
                    state = self.state.get(producer)
                    if state is StepState.FAILED:
                        return f"upstream step {producer!r} failed"
                    if state is StepState.SKIPPED:
                        return f"upstream step {producer!r} was skipped"
                    if state is StepState.SUCCEEDED:
                        return f"dynamic output {output!r} of {producer!r} was not produced"
                    return f"the mapping keys of output {output!r} of {producer!r} are not known"
        step = self.steps[key]
        for step_input in step.inputs:
            if step_input.kind not in (InputKind.STEP_OUTPUT, InputKind.NOTHING):
                continue
            missing = []
            here = [src for src in step_input.sources if src.run_id is None]
            for src in here:  # (a fan-in's sources read from the parent run are stored)
                state = self.state.get(src.step_key)
                if state is None:
                    continue
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
        step = self.steps[key]
        req = SlotRequest(attempt_id, self.run_id, key, dict(step.tags), step.priority)
        if self.arbiter.request(req):
            self._launch(key, now, out)
            return
        self._set(key, StepState.WAITING_SLOT)
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
        attempt = self.attempt[key]
        self._set(key, StepState.IN_FLIGHT)
        self._new_outputs(key)
        out.launch.append(self._launch_of(key))
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

    def _launch_of(self, key: str) -> Launch:
        step = self.steps[key]
        attempt_id = self.current_attempt_id(key)
        return Launch(
            self.run_id,
            key,
            self.attempt[key],
            attempt_id,
            step.priority,
            step.queue,
            self.arbiter.token(attempt_id),
            step,
        )

    def _release(self, key: str) -> None:
        if self.attempt[key]:
            self.arbiter.release(self.current_attempt_id(key))

    def _set(self, key: str, state: StepState) -> None:
        old = self.state[key]
        if old is state:
            return
        self.state[key] = state
        for members, which in (
            (self._in_flight, StepState.IN_FLIGHT),
            (self._waiting_slot, StepState.WAITING_SLOT),
        ):
            if old is which:
                members.discard(key)
            elif state is which:
                members.add(key)
        if state is StepState.READY:
            self._ready.append(key)
        if state in TERMINAL and old not in TERMINAL:
            self._open -= 1
            self._failed += state is StepState.FAILED

    def _finish(self, key: str, state: StepState) -> None:
        self._release(key)
        self._set(key, state)
        self.retry_at.pop(key, None)
        step = self.steps.get(key)
        if step is not None:
            for output in step.outputs:
                if output.is_dynamic:
                    produced = state is StepState.SUCCEEDED and output.name in self.produced[key]
                    keys = self.mapping.get(key, {}).get(output.name, {})
                    self._resolve(key, output.name, tuple(keys) if produced else None)
        for down in self._downstream.pop(key, ()):
            self._blockers[down] -= 1
            if self._blockers[down] == 0:
                self._settle.append(down)

    # -- queries ----------------------------------------------------------------------------

    def in_flight_launches(self) -> list[Launch]:
        """The launches of the attempts now in flight (to re-attach after a resume)."""
        return [self._launch_of(key) for key in self._in_flight]

    def in_flight_attempts(self) -> list[str]:
        return [self.current_attempt_id(k) for k in self._in_flight]

    def abandon(self, attempt_id: str) -> None:
        """Forget an in-flight attempt after cancellation (its process was terminated)."""
        key = self._by_attempt.get(attempt_id)
        if key is not None and self.state[key] is StepState.IN_FLIGHT:
            self._finish(key, StepState.FAILED)

    @property
    def succeeded(self) -> bool:
        return self._open == 0 and self._failed == 0

    def summary(self) -> dict[str, Any]:
        return {k: s.value for k, s in self.state.items()}
