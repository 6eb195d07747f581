"""The execution loop and per-run slot arbitration as pure logic: no processes, no sleeps; the
clock is a plain float given to ``tick``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pydantic
import pytest

from orchestrator.concurrency.config import TagConcurrencyLimit
from orchestrator.concurrency.limits import (
    ChainedArbiter,
    LocalArbiter,
    SlotRequest,
    UnlimitedArbiter,
)
from orchestrator.definitions.retry import RetryPolicy
from orchestrator.errors import InvalidInputError, OrchestratorError
from orchestrator.events import Event, EventType, make_event
from orchestrator.execution.loop import ExecutionLoop, StepState, Tick
from orchestrator.plan.steps import (
    ExecutionPlan,
    ExecutionStep,
    InputKind,
    StepInput,
    StepOutput,
    StepOutputHandle,
)

RUN = "run-1"


def step(
    key: str,
    *upstream: str,
    tags: dict[str, str] | None = None,
    priority: int = 0,
    nothing: Sequence[str] = (),
    fan_in: Sequence[str] = (),
    outputs: Sequence[StepOutput] = (StepOutput("result"),),
    source_output: str = "result",
) -> ExecutionStep:
    """A step whose input ``in_<u>`` reads output ``source_output`` of each upstream ``u``."""
    inputs = [
        StepInput(f"in_{u}", InputKind.STEP_OUTPUT, sources=(StepOutputHandle(u, source_output),))
        for u in upstream
    ]
    inputs += [
        StepInput(f"after_{u}", InputKind.NOTHING, sources=(StepOutputHandle(u, "result"),))
        for u in nothing
    ]
    if fan_in:
        sources = tuple(StepOutputHandle(u, "result") for u in fan_in)
        inputs.append(StepInput("many", InputKind.STEP_OUTPUT, sources=sources, fan_in=True))
    return ExecutionStep(
        key=key,
        op_name=key,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        tags=tags or {},
        priority=priority,
        retry_policy=RetryPolicy(1),
    )


def plan_of(*steps: ExecutionStep) -> ExecutionPlan:
    return ExecutionPlan(job_name="job", steps=steps)


class Log:
    """Collects every event the loop and the 'steps' produce, as a run's event log would."""

    def __init__(self, loop: ExecutionLoop):
        self.loop = loop
        self.events: list[Event] = []

    def tick(self, now: float) -> Tick:
        out = self.loop.tick(now)
        self.events.extend(out.events)
        return out

    def feed(
        self, etype: EventType, key: str, now: float, attempt: int | None = None, **data: Any
    ) -> None:
        attempt = self.loop.attempt[key] if attempt is None else attempt
        event = make_event(etype, RUN, step_key=key, timestamp=now, attempt=attempt, **data)
        self.events.append(event)
        self.loop.handle(event)

    def succeed(
        self, key: str, now: float, outputs: Sequence[str] = ("result",), attempt: int | None = None
    ) -> None:
        for name in outputs:
            self.feed(EventType.STEP_OUTPUT, key, now, attempt, output_name=name)
        self.feed(EventType.STEP_SUCCESS, key, now, attempt)

    def fail(self, key: str, now: float) -> None:
        self.feed(EventType.STEP_FAILURE, key, now)

    def retry(self, key: str, now: float, seconds: float) -> None:
        self.feed(EventType.STEP_UP_FOR_RETRY, key, now, seconds_to_wait=seconds)


def make(*steps: ExecutionStep, arbiter: Any = None) -> Log:
    return Log(ExecutionLoop(plan_of(*steps), RUN, arbiter or UnlimitedArbiter()))


def launched(out: Tick) -> list[str]:
    return [launch.step_key for launch in out.launch]


def states(loop: ExecutionLoop) -> dict[str, str]:
    return loop.summary()


def comparable(loop: ExecutionLoop) -> tuple[Any, ...]:
    return (
        loop.summary(),
        dict(loop.attempt),
        {k: sorted(v) for k, v in loop.produced.items()},
        dict(loop.retry_at),
        loop.in_flight_attempts(),
    )


# -- state transitions -------------------------------------------------------------------------


def test_a_chain_runs_one_step_after_the_other() -> None:
    log = make(step("a"), step("b", "a"))

    first = log.tick(0.0)
    assert launched(first) == ["a"]
    [launch] = first.launch
    assert (launch.run_id, launch.attempt, launch.attempt_id) == (RUN, 1, f"{RUN}:a:1")
    assert launch.retry_number == 0 and launch.queue == "orchestrator"
    assert [e.data["kind"] for e in first.events] == ["step_launched"]
    assert states(log.loop) == {"a": "in_flight", "b": "pending"}

    idle = log.tick(1.0)
    assert (idle.launch, idle.wake_at, idle.done) == ([], None, False)

    log.succeed("a", 2.0)
    assert launched(log.tick(2.0)) == ["b"]
    log.succeed("b", 3.0)
    final = log.tick(3.0)
    assert final.done and log.loop.succeeded
    assert states(log.loop) == {"a": "succeeded", "b": "succeeded"}


def test_independent_steps_are_launched_together() -> None:
    log = make(step("a"), step("b"), step("c", "a", "b"))

    assert launched(log.tick(0.0)) == ["a", "b"]
    log.succeed("a", 1.0)
    assert launched(log.tick(1.0)) == []
    log.succeed("b", 2.0)
    assert launched(log.tick(2.0)) == ["c"]


def test_a_failure_skips_the_downstream_cascade_and_independent_steps_go_on() -> None:
    log = make(step("a"), step("b", "a"), step("c", "b"), step("d"), step("e", "d"))

    log.tick(0.0)
    log.fail("a", 1.0)
    out = log.tick(1.0)

    assert launched(out) == []
    skipped = [e for e in out.events if e.event_type_value == EventType.STEP_SKIPPED.value]
    assert [e.step_key for e in skipped] == ["b", "c"]
    assert "upstream step 'a' failed" in skipped[0].message
    log.succeed("d", 2.0)
    assert launched(log.tick(2.0)) == ["e"]
    log.succeed("e", 3.0)
    final = log.tick(3.0)
    assert final.done and not log.loop.succeeded
    assert states(log.loop)["a"] == "failed" and states(log.loop)["c"] == "skipped"


def test_an_optional_output_not_produced_skips_only_its_readers() -> None:
    outputs = (StepOutput("maybe", is_required=False), StepOutput("result"))
    log = make(
        step("a", outputs=outputs),
        step("reads_maybe", "a", source_output="maybe"),
        step("reads_result", "a"),
    )

    log.tick(0.0)
    log.succeed("a", 1.0, outputs=["result"])
    out = log.tick(1.0)

    assert launched(out) == ["reads_result"]
    assert states(log.loop)["reads_maybe"] == "skipped"
    log.succeed("reads_result", 2.0)
    assert log.tick(2.0).done and log.loop.succeeded


def test_fan_in_runs_unless_every_source_is_missing() -> None:
    log = make(step("a"), step("b"), step("some", fan_in=["a", "b"]))

    log.tick(0.0)
    log.succeed("a", 1.0)
    log.fail("b", 1.0)
    # A failed source skips (failure is not "missing"); a skipped one is tolerated.
    assert states(log.loop)["some"] == "pending"
    log.tick(1.0)
    assert states(log.loop)["some"] == "skipped"

    outputs = (StepOutput("result", is_required=False),)
    log = make(
        step("a", outputs=outputs), step("b", outputs=outputs), step("some", fan_in=["a", "b"])
    )
    log.tick(0.0)
    log.succeed("a", 1.0)
    log.succeed("b", 1.0, outputs=[])
    assert launched(log.tick(1.0)) == ["some"]

    log = make(
        step("a", outputs=outputs), step("b", outputs=outputs), step("none", fan_in=["a", "b"])
    )
    log.tick(0.0)
    log.succeed("a", 1.0, outputs=[])
    log.succeed("b", 1.0, outputs=[])
    log.tick(1.0)
    assert states(log.loop)["none"] == "skipped"


def test_nothing_dependencies_wait_for_success_and_skip_on_failure() -> None:
    log = make(step("a"), step("b"), step("after_a", nothing=["a"]), step("after_b", nothing=["b"]))

    log.tick(0.0)
    log.succeed("a", 1.0, outputs=[])
    log.fail("b", 1.0)

    assert launched(log.tick(1.0)) == ["after_a"]
    assert states(log.loop)["after_b"] == "skipped"


# -- retries and attempts ----------------------------------------------------------------------


def test_a_retry_waits_for_its_delay_then_launches_a_new_attempt() -> None:
    log = make(step("a"))
    log.tick(0.0)

    log.retry("a", 10.0, seconds=5.0)
    assert states(log.loop)["a"] == "retry_wait"
    early = log.tick(12.0)
    assert early.launch == [] and early.wake_at == 15.0 and not early.done

    out = log.tick(15.0)
    [launch] = out.launch
    assert (launch.attempt, launch.retry_number, launch.attempt_id) == (2, 1, f"{RUN}:a:2")
    assert out.wake_at is None


def test_wake_at_is_the_earliest_retry() -> None:
    log = make(step("a"), step("b"))
    log.tick(0.0)
    log.retry("a", 1.0, seconds=9.0)
    log.retry("b", 1.0, seconds=3.0)

    assert log.tick(2.0).wake_at == 4.0
    assert launched(log.tick(4.0)) == ["b"]
    assert log.tick(4.0).wake_at == 10.0


def test_events_of_a_stale_attempt_are_ignored() -> None:
    log = make(step("a"), step("b", "a"))
    log.tick(0.0)
    log.retry("a", 1.0, seconds=0.0)
    log.tick(1.0)
    assert log.loop.attempt["a"] == 2

    # Late reports from attempt 1 (a worker thought lost) change nothing.
    log.feed(EventType.STEP_FAILURE, "a", 2.0, attempt=1)
    log.succeed("a", 2.0, attempt=1)
    assert states(log.loop)["a"] == "in_flight"
    assert launched(log.tick(2.0)) == []

    log.succeed("a", 3.0)
    assert launched(log.tick(3.0)) == ["b"]


def test_a_step_never_completes_twice() -> None:
    log = make(step("a"), step("b", "a"))
    log.tick(0.0)
    log.succeed("a", 1.0)
    assert launched(log.tick(1.0)) == ["b"]

    log.succeed("a", 2.0)  # a duplicate delivery
    log.fail("a", 2.0)
    assert launched(log.tick(2.0)) == []
    assert states(log.loop) == {"a": "succeeded", "b": "in_flight"}
    assert log.loop.attempt["b"] == 1


def test_a_lost_attempt_is_launched_again_then_fails_after_the_limit() -> None:
    plan = plan_of(step("a"))
    log = Log(ExecutionLoop(plan, RUN, UnlimitedArbiter(), max_lost_attempts=2))
    log.tick(0.0)

    event = log.loop.attempt_lost("a", f"{RUN}:a:1", "worker died", now=1.0)
    log.events.append(event)
    assert event.data["kind"] == "attempt_lost" and states(log.loop)["a"] == "ready"
    rebuilt = ExecutionLoop.from_events(
        plan, RUN, UnlimitedArbiter(), log.events, max_lost_attempts=2
    )
    assert comparable(rebuilt) == comparable(log.loop)
    [launch] = log.tick(1.0).launch
    assert launch.attempt == 2

    with pytest.raises(OrchestratorError):
        log.loop.attempt_lost("a", f"{RUN}:a:1", "stale", now=2.0)
    final = log.loop.attempt_lost("a", f"{RUN}:a:2", "worker died again", now=2.0)
    assert final.event_type_value == EventType.STEP_FAILURE.value
    assert final.error.cls_name == "StepLostError"
    assert log.tick(2.0).done and not log.loop.succeeded


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_launches_nothing_more_and_terminates_in_flight_attempts_once() -> None:
    log = make(step("a"), step("b", "a"), step("c"))
    log.tick(0.0)
    log.succeed("c", 0.5)

    log.loop.cancel()
    out = log.tick(1.0)
    assert out.terminate == [f"{RUN}:a:1"] and out.launch == [] and not out.done
    again = log.tick(2.0)
    assert again.terminate == [] and not again.done

    log.loop.abandon(f"{RUN}:a:1")
    final = log.tick(3.0)
    assert final.done and final.launch == []
    assert not log.loop.succeeded
    assert states(log.loop)["b"] == "pending"


def test_cancel_with_nothing_in_flight_is_done_at_once() -> None:
    log = make(step("a"))
    log.tick(0.0)
    log.succeed("a", 1.0)
    log.loop.cancel()

    assert log.tick(1.0).done


def test_cancel_withdraws_requests_waiting_for_a_slot() -> None:
    arbiter = LocalArbiter([TagConcurrencyLimit(key="db", limit=1)])
    log = make(step("a", tags={"db": "x"}), step("b", tags={"db": "x"}), arbiter=arbiter)
    log.tick(0.0)
    assert states(log.loop)["b"] == "waiting_slot"

    log.loop.cancel()
    log.tick(1.0)
    log.loop.abandon(f"{RUN}:a:1")

    assert arbiter.in_use == 0
    assert arbiter.granted() == []


# -- priorities --------------------------------------------------------------------------------


def test_launches_come_highest_priority_first_then_in_plan_order() -> None:
    log = make(step("low", priority=-1), step("mid1"), step("high", priority=5), step("mid2"))

    out = log.tick(0.0)

    assert launched(out) == ["high", "mid1", "mid2", "low"]
    assert [launch.priority for launch in out.launch] == [5, 0, 0, -1]


def test_slots_go_to_the_highest_priority_waiter() -> None:
    arbiter = LocalArbiter([TagConcurrencyLimit(key="db", limit=1)])
    log = make(
        step("first", tags={"db": "x"}, priority=9),
        step("low", tags={"db": "x"}),
        step("high", tags={"db": "x"}, priority=3),
        arbiter=arbiter,
    )

    assert launched(log.tick(0.0)) == ["first"]
    log.succeed("first", 1.0)
    assert launched(log.tick(1.0)) == ["high"]
    log.succeed("high", 2.0)
    assert launched(log.tick(2.0)) == ["low"]


# -- rebuilding from the event log -------------------------------------------------------------


def test_a_loop_rebuilt_from_the_event_log_mid_run_has_the_same_state() -> None:
    steps = (step("a"), step("b", "a"), step("c"), step("d", "b", "c"), step("e", "c"))
    log = make(*steps)
    log.tick(0.0)
    log.succeed("a", 1.0)
    log.retry("c", 1.0, seconds=10.0)
    log.tick(1.0)  # launches b; c waits until 11

    rebuilt = ExecutionLoop.from_events(plan_of(*steps), RUN, UnlimitedArbiter(), log.events)

    assert comparable(rebuilt) == comparable(log.loop)
    # Both go on the same way.
    for loop in (log.loop, rebuilt):
        assert launched(loop.tick(5.0)) == []
        [launch] = loop.tick(11.0).launch
        assert launch.attempt_id == f"{RUN}:c:2"


def test_a_loop_rebuilt_after_a_retry_was_relaunched_does_not_launch_it_again() -> None:
    steps = (step("a"), step("b", "a"))
    log = make(*steps)
    log.tick(0.0)
    log.retry("a", 1.0, seconds=2.0)
    assert launched(log.tick(3.0)) == ["a"]  # attempt 2 is in flight

    rebuilt = ExecutionLoop.from_events(plan_of(*steps), RUN, UnlimitedArbiter(), log.events)

    assert comparable(rebuilt) == comparable(log.loop)
    out = rebuilt.tick(4.0)
    assert out.launch == [] and out.wake_at is None
    log.succeed("a", 5.0)
    for event in log.events[-2:]:  # the output, then the success
        rebuilt.handle(event)
    assert launched(rebuilt.tick(5.0)) == ["b"]


def test_outputs_of_a_lost_attempt_do_not_count_after_a_rebuild() -> None:
    # Given: attempt 1 stored an optional output, then its worker died; attempt 2 runs.
    outputs = (StepOutput("maybe", is_required=False),)
    steps = (step("a", outputs=outputs), step("b", "a", source_output="maybe"))
    log = make(*steps)
    log.tick(0.0)
    log.feed(EventType.STEP_OUTPUT, "a", 1.0, output_name="maybe")
    log.events.append(log.loop.attempt_lost("a", f"{RUN}:a:1", "worker died", now=2.0))
    log.tick(2.0)

    rebuilt = ExecutionLoop.from_events(plan_of(*steps), RUN, UnlimitedArbiter(), log.events)

    assert comparable(rebuilt) == comparable(log.loop)
    # When: attempt 2 succeeds without the optional output. Then: b is skipped in both.
    log.succeed("a", 3.0, outputs=[])
    rebuilt.handle(log.events[-1])
    for loop in (log.loop, rebuilt):
        assert launched(loop.tick(3.0)) == []
        assert states(loop) == {"a": "succeeded", "b": "skipped"}


def test_a_rebuilt_loop_asks_again_for_slots_it_was_waiting_for() -> None:
    steps = (step("a", tags={"db": "x"}), step("b", tags={"db": "x"}))
    log = make(*steps, arbiter=LocalArbiter([TagConcurrencyLimit(key="db", limit=1)]))
    log.tick(0.0)
    log.succeed("a", 1.0)

    rebuilt = ExecutionLoop.from_events(plan_of(*steps), RUN, UnlimitedArbiter(), log.events)

    assert states(rebuilt) == {"a": "succeeded", "b": "ready"}
    [launch] = rebuilt.tick(2.0).launch
    assert launch.attempt_id == f"{RUN}:b:1"


def test_a_rebuilt_loop_counts_in_flight_attempts_against_the_limits() -> None:
    steps = (step("a", tags={"db": "x"}), step("b", tags={"db": "x"}))
    limits = [TagConcurrencyLimit(key="db", limit=1)]
    log = make(*steps, arbiter=LocalArbiter(limits))
    log.tick(0.0)  # a in flight, b waiting

    rebuilt = ExecutionLoop.from_events(plan_of(*steps), RUN, LocalArbiter(limits), log.events)

    assert launched(rebuilt.tick(1.0)) == []


def test_a_finished_run_rebuilt_from_its_log_is_done() -> None:
    steps = (step("a"), step("b", "a"), step("c", "a"))
    log = make(*steps)
    log.tick(0.0)
    log.fail("a", 1.0)
    log.tick(1.0)

    rebuilt = ExecutionLoop.from_events(plan_of(*steps), RUN, UnlimitedArbiter(), log.events)

    assert rebuilt.summary() == {"a": "failed", "b": "skipped", "c": "skipped"}
    assert rebuilt.tick(2.0).done


def test_rebuilding_ignores_events_of_other_runs_and_unknown_steps() -> None:
    steps = (step("a"),)
    noise = [
        make_event(EventType.RUN_START, RUN, timestamp=0.0),
        make_event(EventType.STEP_SUCCESS, RUN, step_key="zzz", timestamp=0.0, attempt=1),
    ]

    rebuilt = ExecutionLoop.from_events(plan_of(*steps), RUN, UnlimitedArbiter(), noise)

    assert states(rebuilt) == {"a": "pending"}


# -- the loop with per-run tag limits ----------------------------------------------------------


def test_a_step_over_a_limit_waits_and_the_run_goes_on_with_others() -> None:
    arbiter = LocalArbiter([TagConcurrencyLimit(key="db", limit=1)])
    log = make(
        step("a", tags={"db": "x"}), step("b", tags={"db": "y"}), step("free"), arbiter=arbiter
    )

    out = log.tick(0.0)

    assert launched(out) == ["a", "free"]
    assert states(log.loop)["b"] == "waiting_slot"
    [wait] = [e for e in out.events if e.data.get("kind") == "waiting_for_slot"]
    assert wait.step_key == "b" and "db" in wait.message and f"{RUN}:a:1" in wait.message
    log.succeed("free", 1.0)
    assert launched(log.tick(1.0)) == []
    log.succeed("a", 2.0)
    [launch] = log.tick(2.0).launch
    assert launch.attempt_id == f"{RUN}:b:1"


def test_a_retried_step_gives_its_slot_back_while_it_waits() -> None:
    arbiter = LocalArbiter([TagConcurrencyLimit(key="db", limit=1)])
    log = make(step("a", tags={"db": "x"}), step("b", tags={"db": "x"}), arbiter=arbiter)
    log.tick(0.0)

    log.retry("a", 1.0, seconds=5.0)

    assert launched(log.tick(1.0)) == ["b"]
    log.succeed("b", 2.0)
    assert launched(log.tick(6.0)) == ["a"]


# -- LocalArbiter ------------------------------------------------------------------------------


def req(attempt_id: str, priority: int = 0, **tags: str) -> SlotRequest:
    return SlotRequest(attempt_id, RUN, attempt_id, tags, priority)


def limit(key: str, value: Any = None, n: int = 1) -> TagConcurrencyLimit:
    return TagConcurrencyLimit(key=key, value=value, limit=n)


def test_key_wide_limit_counts_every_value() -> None:
    arbiter = LocalArbiter([limit("db", n=2)])

    assert arbiter.request(req("1", db="a"))
    assert arbiter.request(req("2", db="b"))
    assert not arbiter.request(req("3", db="c"))
    assert arbiter.request(req("untagged"))
    assert arbiter.in_use == 3


def test_key_value_limit_counts_only_that_value() -> None:
    arbiter = LocalArbiter([limit("db", "redshift", 1)])

    assert arbiter.request(req("1", db="redshift"))
    assert not arbiter.request(req("2", db="redshift"))
    assert arbiter.request(req("3", db="postgres"))


def test_key_value_limit_whose_value_starts_with_a_star() -> None:
    arbiter = LocalArbiter(
        [limit("db", "*x", 1), limit("db", {"applyLimitPerUniqueValue": True}, 2)]
    )

    assert arbiter.request(req("1", db="*x"))
    assert not arbiter.request(req("2", db="*x"))
    assert "db=*x (limit 1" in arbiter.describe_wait("2")
    assert arbiter.request(req("3", db="y"))


def test_limit_per_unique_value() -> None:
    arbiter = LocalArbiter([limit("db", {"applyLimitPerUniqueValue": True}, 1)])

    assert arbiter.request(req("1", db="a"))
    assert not arbiter.request(req("2", db="a"))
    assert arbiter.request(req("3", db="b"))


def test_max_concurrent_caps_all_attempts() -> None:
    arbiter = LocalArbiter(max_concurrent=2)

    assert arbiter.request(req("1"))
    assert arbiter.request(req("2"))
    assert not arbiter.request(req("3"))
    assert "max_concurrent=2" in arbiter.describe_wait("3")
    arbiter.release("1")
    assert arbiter.granted() == ["3"]


def test_pending_request_is_granted_later_on_release() -> None:
    arbiter = LocalArbiter([limit("db", n=1)])
    assert arbiter.request(req("1", db="a"))
    assert not arbiter.request(req("2", db="a"))
    assert arbiter.granted() == []

    arbiter.release("1")

    assert arbiter.granted() == ["2"]
    assert arbiter.granted() == []
    assert arbiter.request(req("2", db="a"))  # asking again for a held slot is a no-op


def test_higher_priority_waiters_are_granted_first_then_arrival_order() -> None:
    arbiter = LocalArbiter([limit("db", n=1)])
    arbiter.request(req("holder", db="x"))
    for attempt_id, priority in [("low", 0), ("early", 2), ("high", 5), ("late", 2)]:
        assert not arbiter.request(req(attempt_id, priority, db="x"))

    order = []
    current = "holder"
    for _ in range(4):
        arbiter.release(current)
        [current] = arbiter.granted()
        order.append(current)

    assert order == ["high", "early", "late", "low"]


def test_a_step_needing_two_limits_is_not_starved_by_single_limit_steps() -> None:
    arbiter = LocalArbiter([limit("a", n=1), limit("b", n=1)])
    assert arbiter.request(req("holds_a", a="1"))
    assert not arbiter.request(req("needs_both", a="1", b="1"))

    # Given: b has room, but the multi-tag waiter is first in line for it.
    assert not arbiter.request(req("only_b", b="1"))
    assert "behind higher-priority" in arbiter.describe_wait("only_b")

    arbiter.release("holds_a")
    assert arbiter.granted() == ["needs_both"]
    arbiter.release("needs_both")
    assert arbiter.granted() == ["only_b"]


def test_a_tag_limited_waiter_does_not_block_untagged_steps() -> None:
    arbiter = LocalArbiter([limit("db", n=1)], max_concurrent=3)
    arbiter.request(req("1", db="x"))
    assert not arbiter.request(req("2", db="x"))

    assert arbiter.request(req("3"))


def test_releasing_unknown_or_waiting_attempts() -> None:
    arbiter = LocalArbiter([limit("db", n=1)])
    arbiter.release("never-seen")
    arbiter.request(req("1", db="x"))
    arbiter.request(req("2", db="x"))

    arbiter.release("2")  # withdraws the pending request
    arbiter.release("1")

    assert arbiter.granted() == [] and arbiter.in_use == 0


def test_describe_wait_names_the_limit_and_its_holders() -> None:
    arbiter = LocalArbiter([limit("db", "redshift", 1)])
    arbiter.request(req("holder", db="redshift"))
    arbiter.request(req("waiter", db="redshift"))

    text = arbiter.describe_wait("waiter")

    assert "db=redshift" in text and "limit 1" in text and "holder" in text
    assert arbiter.describe_wait("holder") == "not waiting"


def test_tag_limit_buckets_and_validation() -> None:
    tags = {"db": "redshift"}
    assert limit("db").bucket_for(tags) == "db"
    assert limit("db", "redshift").bucket_for(tags) == "db=redshift"
    assert limit("db", "pg").bucket_for(tags) is None
    assert limit("db", {"applyLimitPerUniqueValue": True}).bucket_for(tags) == "db=*redshift"
    assert limit("other").bucket_for(tags) is None
    with pytest.raises(pydantic.ValidationError):
        TagConcurrencyLimit(key="db", value={"perValue": True}, limit=1)
    with pytest.raises(pydantic.ValidationError):
        TagConcurrencyLimit(key="db", limit=-1)


def test_step_states_are_the_documented_ones() -> None:
    assert {s.value for s in StepState} == {
        "pending",
        "ready",
        "waiting_slot",
        "in_flight",
        "retry_wait",
        "succeeded",
        "failed",
        "skipped",
    }


def test_replay_tolerates_worker_events_logged_before_the_launch_record() -> None:
    # Celery workers append to the run's stream themselves, so a step's STEP_START (even its
    # STEP_SUCCESS) can precede the coordinator's "launched" record of the same attempt.
    steps = (step("a"), step("b", "a"))
    log = [
        make_event(EventType.STEP_START, RUN, step_key="a", timestamp=0.0, attempt=1),
        make_event(
            EventType.STEP_OUTPUT, RUN, step_key="a", timestamp=0.0, attempt=1, output_name="result"
        ),
        make_event(EventType.STEP_SUCCESS, RUN, step_key="a", timestamp=0.0, attempt=1),
        make_event(
            EventType.ENGINE_EVENT,
            RUN,
            step_key="a",
            timestamp=0.0,
            attempt=1,
            kind="step_launched",
        ),
    ]

    rebuilt = ExecutionLoop.from_events(plan_of(*steps), RUN, UnlimitedArbiter(), log)

    assert states(rebuilt)["a"] == "succeeded"
    assert [launch.step_key for launch in rebuilt.tick(1.0).launch] == ["b"]


# -- per-run limits of 0 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zero", "bucket"),
    [
        pytest.param(limit("db", n=0), "'db'", id="key-wide"),
        pytest.param(limit("db", "redshift", 0), "'db=redshift'", id="key-value"),
        pytest.param(
            limit("db", {"applyLimitPerUniqueValue": True}, 0), "'db=*redshift'", id="per-value"
        ),
    ],
)
def test_a_per_run_limit_of_0_fails_the_request_instead_of_waiting_forever(
    zero: TagConcurrencyLimit, bucket: str
) -> None:
    arbiter = LocalArbiter([zero, limit("queue", n=1)])

    with pytest.raises(InvalidInputError) as raised:
        arbiter.request(req("load", db="redshift", queue="q"))

    message = str(raised.value)
    assert "step 'load'" in message
    assert f"limit {bucket} with limit 0" in message
    assert "Raise the limit or remove the tag" in message
    # nothing was counted or queued for the refused step
    assert arbiter.in_use == 0
    assert arbiter.describe_wait("load") == "not waiting"
    assert arbiter.request(req("other", queue="q"))


def test_a_per_run_limit_of_0_leaves_steps_it_does_not_match_alone() -> None:
    arbiter = LocalArbiter([limit("db", "redshift", 0)])

    assert arbiter.request(req("1", db="postgres"))
    assert arbiter.request(req("2"))


def test_a_loop_asking_for_a_slot_under_a_limit_of_0_raises() -> None:
    # Given a run whose only step matches a per-run limit of 0 (chained before cross-run limits,
    # as the Celery executor does)
    arbiter = ChainedArbiter(LocalArbiter([limit("db", n=0)]), UnlimitedArbiter())
    log = make(step("a", tags={"db": "x"}), arbiter=arbiter)

    # When the loop asks for its slot, Then it fails at once rather than wait for ever
    with pytest.raises(InvalidInputError, match="step 'a' can never start"):
        log.tick(0.0)
