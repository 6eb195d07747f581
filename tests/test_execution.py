"""In-process execution (issue 2, bullets 6 and 7): failures and skips, the user-code boundary,
raise_on_error, the result API, JSON events, inputs, op selection with the missing-input rule,
hooks and retries."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from orchestrator import (
    Backoff,
    Event,
    EventType,
    Failure,
    In,
    Instance,
    Jitter,
    MissingInputError,
    OrchestratorError,
    Out,
    RetryPolicy,
    RetryRequested,
    RunStatus,
    SelectionError,
    StepError,
    UserCodeError,
    execute_job,
    failure_hook,
    graph,
    in_process_executor,
    job,
    op,
    resource,
    success_hook,
)
from orchestrator.errors import DefinitionError, InvalidInputError
from orchestrator.executors.in_process import InProcessExecutor
from orchestrator.runs.api import prepare_run, run_prepared
from tests import fixtures


class MyError(Exception):
    """An exception type of the user's own."""


def kinds(result: Any, step_key: str | None = None) -> list[str]:
    events = result.all_events if step_key is None else result.events_for_node(step_key)
    skip = {EventType.LOG_MESSAGE.value, EventType.ENGINE_EVENT.value}
    return [e.event_type_value for e in events if e.event_type_value not in skip]


@op
def one() -> int:
    return 1


@op
def boom(x: int) -> int:
    raise MyError(f"boom on {x}")


@op
def plus(x: int) -> int:
    return x + 1


@job
def branching():
    value = one()
    plus.alias("after_boom")(boom(value))
    plus.alias("other_branch")(plus.alias("first_of_branch")(value))


# -- failures ----------------------------------------------------------------------------------


def test_a_failed_step_skips_its_downstream_and_independent_branches_go_on() -> None:
    result = branching.execute_in_process(raise_on_error=False)

    assert not result.success
    assert result.run.status == RunStatus.FAILURE
    assert kinds(result, "boom") == ["STEP_START", "STEP_FAILURE"]
    assert kinds(result, "after_boom") == ["STEP_SKIPPED"]
    assert result.output_for_node("other_branch") == 3
    assert [e.step_key for e in result.get_step_failure_events()] == ["boom"]
    assert {e.step_key for e in result.get_step_success_events()} == {
        "one",
        "first_of_branch",
        "other_branch",
    }
    assert kinds(result)[0] == "RUN_START" and kinds(result)[-1] == "RUN_FAILURE"


def test_raise_on_error_reraises_the_ops_own_exception() -> None:
    instance = Instance.ephemeral()

    with pytest.raises(MyError, match="boom on 1") as info:
        branching.execute_in_process(instance=instance, run_id="r-1")

    assert type(info.value) is MyError
    run = instance.get_run("r-1")
    assert run is not None and run.status == RunStatus.FAILURE


def test_user_code_errors_are_wrapped_with_the_original_as_cause() -> None:
    instance = Instance.ephemeral()
    prepared = prepare_run(branching, instance=instance, in_memory_io=True)
    executor = InProcessExecutor()

    run_prepared(prepared, executor, instance, run_scoped_resources=True)

    outcome = executor.outcomes["boom"]
    assert outcome.status == "failure"
    assert isinstance(outcome.error, UserCodeError)
    assert isinstance(outcome.error.__cause__, MyError)
    assert outcome.error.user_exception is outcome.error.__cause__
    assert outcome.user_exception is outcome.error.__cause__
    [failure] = [e for e in instance.all_events(prepared.record.run_id) if e.is_step_failure]
    assert failure.error.cls_name == "UserCodeError"
    assert "op 'boom'" in failure.error.message
    assert failure.error.cause.cls_name == "MyError"
    assert failure.error.cause.message == "boom on 1"


def test_framework_errors_in_a_step_are_not_user_errors() -> None:
    @op(out={"a": Out(), "b": Out()})
    def wrong_arity():
        return 1

    @job
    def arity():
        wrong_arity()

    with pytest.raises(Exception, match="return a tuple of 2 values") as info:
        arity.execute_in_process()
    assert not isinstance(info.value, UserCodeError)


# -- results and events ------------------------------------------------------------------------


@graph
def inner(x):
    return plus(x)


@op(out={"low": Out(), "high": Out()})
def bounds(x: int):
    return x - 1, x + 1


@job(tags={"team": "t"})
def result_job():
    bounds(inner(one()))


def test_result_api() -> None:
    result = result_job.execute_in_process(run_id="run-42", tags={"extra": "e"})

    assert result.success and result.run_id == "run-42" and result.job_name == "result_job"
    assert result.output_for_node("inner.plus") == 2
    assert result.output_for_node("bounds", "low") == 1
    assert result.output_for_node("bounds", output_name="high") == 3
    assert kinds(result, "inner.plus") == [
        "STEP_START",
        "STEP_OUTPUT",
        "HANDLED_OUTPUT",
        "STEP_SUCCESS",
    ]
    assert [e.step_key for e in result.get_step_success_events()] == ["one", "inner.plus", "bounds"]
    assert result.get_step_failure_events() == []
    run = result.run
    assert run.run_id == "run-42" and run.job_name == "result_job"
    assert run.status == RunStatus.SUCCESS
    assert run.tags == {"team": "t", "extra": "e"}
    assert run.run_config == {}
    with pytest.raises(InvalidInputError, match="did not run"):
        result.output_for_node("nope")
    with pytest.raises(InvalidInputError, match="no output 'middle'"):
        result.output_for_node("bounds", "middle")


def test_output_for_node_of_a_graph_node_reads_its_mapped_output() -> None:
    result = fixtures.plan_job.execute_in_process()

    assert result.output_for_node("outer") == result.output_for_node("outer.op_c")


def test_events_have_dagster_fields() -> None:
    result = result_job.execute_in_process()

    for event in result.all_events:
        assert event.run_id == result.run_id
        assert isinstance(event.timestamp, float)
        assert EventType(event.event_type_value)
        assert isinstance(event.message, str)
    assert {e.step_key for e in result.all_events} == {None, "one", "inner.plus", "bounds"}


def test_every_event_round_trips_through_json_including_a_failure_traceback() -> None:
    result = branching.execute_in_process(raise_on_error=False)

    for event in result.all_events:
        assert Event.from_dict(json.loads(json.dumps(event.to_dict()))) == event
    [failure] = result.get_step_failure_events()
    stack = failure.to_dict()["data"]["error"]["stack"]
    assert "Traceback" in stack and "boom on 1" in stack
    assert "MyError" in failure.error.cause.stack


def test_events_of_retries_hook_errors_logs_and_skips_round_trip_through_json() -> None:
    @op(retry_policy=RetryPolicy(max_retries=1))
    def noisy(context) -> int:
        context.log.info("attempt %d", context.retry_number)
        if context.retry_number == 0:
            raise MyError("first attempt")
        return 1

    @success_hook
    def broken(_context) -> None:
        raise MyError("hook broke")

    @op(out={"maybe": Out(is_required=False)})
    def nothing_out():
        yield from ()

    @job(hooks={broken})
    def eventful():
        noisy()
        plus(nothing_out())

    result = eventful.execute_in_process()

    seen = {e.event_type_value for e in result.all_events}
    assert {"STEP_UP_FOR_RETRY", "HOOK_ERRORED", "LOG_MESSAGE", "STEP_SKIPPED"} <= seen
    for event in result.all_events:
        assert Event.from_dict(json.loads(json.dumps(event.to_dict()))) == event


def test_a_run_stored_in_a_given_instance() -> None:
    instance = Instance.ephemeral()

    result = result_job.execute_in_process(instance=instance)

    assert instance.get_run(result.run_id).status == RunStatus.SUCCESS
    assert instance.all_events(result.run_id) == result.all_events


def test_execute_in_process_keeps_outputs_in_memory(orchestrator_home: Any) -> None:
    result_job.execute_in_process()

    assert not orchestrator_home.exists()


# -- inputs ------------------------------------------------------------------------------------


@op
def needs(x: int) -> int:
    return x * 10


@job
def unconnected():
    needs()


def test_unconnected_input_from_run_config_inputs() -> None:
    plain = {"ops": {"needs": {"inputs": {"x": 2}}}}
    wrapped = {"ops": {"needs": {"inputs": {"x": {"value": 3}}}}}

    assert unconnected.execute_in_process(run_config=plain).output_for_node("needs") == 20
    assert unconnected.execute_in_process(run_config=wrapped).output_for_node("needs") == 30


def test_unconnected_input_without_a_value_is_a_missing_input() -> None:
    with pytest.raises(MissingInputError, match=r"'x' of op 'needs'.*not connected"):
        unconnected.execute_in_process()


def test_input_default_value_is_used_when_nothing_else_gives_it() -> None:
    @op(ins={"x": In(int, default_value=7)})
    def defaulted(x):
        return x

    @job
    def default_job():
        defaulted()

    assert default_job.execute_in_process().output_for_node("defaulted") == 7


def test_unknown_input_in_run_config_is_a_config_error() -> None:
    from orchestrator import ConfigError

    with pytest.raises(ConfigError, match=r"ops\.needs\.inputs\.y"):
        unconnected.execute_in_process(run_config={"ops": {"needs": {"inputs": {"y": 1}}}})


def test_job_inputs_from_input_values_and_run_config() -> None:
    as_job = inner.to_job(name="inner_job")

    assert as_job.execute_in_process(input_values={"x": 4}).output_for_node("plus") == 5
    assert as_job.execute_in_process(run_config={"inputs": {"x": 5}}).output_for_node("plus") == 6
    with pytest.raises(MissingInputError, match="job input 'x'"):
        as_job.execute_in_process()


# -- op selection ------------------------------------------------------------------------------


def test_op_selection_runs_the_selected_ops() -> None:
    result = fixtures.my_job.execute_in_process(op_selection=["*add_two"])

    assert [e.step_key for e in result.get_step_success_events()] == ["return_one", "add_two"]
    assert result.output_for_node("add_two") == 3
    assert result.run.op_selection == ("*add_two",)


def test_selected_op_with_unselected_upstream_and_no_input_names_the_three_ways() -> None:
    with pytest.raises(MissingInputError) as info:
        fixtures.my_job.execute_in_process(op_selection=["add_two"])

    message = str(info.value)
    assert "'add_two'" in message and "'i'" in message and "'return_one'" in message
    assert "run config" in message and "inputs" in message
    assert "input_values={'add_two.i': ...}" in message
    assert "re-execute" in message


def test_missing_input_of_a_nested_op_shows_the_nested_run_config_to_give() -> None:
    nested_path = "ops: {outer: {ops: {inner: {ops: {offset: {inputs: {x: ...}}}}}}}"
    with pytest.raises(MissingInputError) as info:
        fixtures.plan_job.execute_in_process(op_selection=["outer.inner.offset"])

    assert "'outer.inner.offset'" in str(info.value)
    assert nested_path in str(info.value)
    assert "input_values={'outer.inner.offset.x': ...}" in str(info.value)
    # And the run config the message shows works.
    given = {
        "ops": {
            "outer": {
                "ops": {
                    "inner": {"ops": {"offset": {"inputs": {"x": 1}, "config": {"label": "l"}}}}
                }
            }
        }
    }
    result = fixtures.plan_job.execute_in_process(
        op_selection=["outer.inner.offset"], run_config=given
    )
    assert result.output_for_node("outer.inner.offset") == 11


def test_selected_op_gets_its_input_from_input_values_or_run_config() -> None:
    by_value = fixtures.my_job.execute_in_process(
        op_selection=["add_two+"], input_values={"add_two.i": 3}
    )
    by_config = fixtures.my_job.execute_in_process(
        op_selection=["add_two"], run_config={"ops": {"add_two": {"inputs": {"i": 10}}}}
    )

    assert by_value.output_for_node("add_two") == 5
    assert by_value.output_for_node("multi_three") == 15
    assert by_config.output_for_node("add_two") == 12


def test_unknown_op_in_selection_lists_the_closest_names() -> None:
    with pytest.raises(SelectionError, match="Did you mean: 'add_two'"):
        fixtures.my_job.execute_in_process(op_selection=["add_tow"])


def test_config_of_unselected_ops_is_not_required() -> None:
    @op(config_schema={"v": int})
    def configured(context) -> int:
        return context.op_config["v"]

    @job
    def partly():
        configured()
        one()

    assert partly.execute_in_process(op_selection=["one"]).success


# -- hooks -------------------------------------------------------------------------------------


def test_success_and_failure_hooks_fire_with_their_context() -> None:
    seen: list[tuple[str, str, Any]] = []

    @success_hook
    def on_success(context) -> None:
        seen.append(("success", context.op_handle, context.op_output_values))

    @failure_hook
    def on_failure(context) -> None:
        seen.append(("failure", context.op_handle, type(context.op_exception)))

    hooked = branching.with_hooks({on_success, on_failure})
    result = hooked.execute_in_process(raise_on_error=False)

    assert ("success", "one", {"result": 1}) in seen
    assert ("failure", "boom", MyError) in seen
    assert not any(handle == "after_boom" for _, handle, _ in seen)
    completed = [e for e in result.all_events if e.event_type_value == "HOOK_COMPLETED"]
    assert {(e.step_key, e.data["hook"]) for e in completed} == {
        ("one", "on_success"),
        ("first_of_branch", "on_success"),
        ("other_branch", "on_success"),
        ("boom", "on_failure"),
    }


def test_a_failing_hook_reports_hook_errored_and_does_not_fail_the_step() -> None:
    @success_hook
    def broken(_context) -> None:
        raise MyError("hook broke")

    @job(hooks={broken})
    def hooked():
        one()

    result = hooked.execute_in_process()

    assert result.success
    assert kinds(result, "one") == [
        "STEP_START",
        "STEP_OUTPUT",
        "HANDLED_OUTPUT",
        "STEP_SUCCESS",
        "HOOK_ERRORED",
    ]
    [errored] = [e for e in result.all_events if e.event_type_value == "HOOK_ERRORED"]
    assert errored.data["hook"] == "broken"
    assert errored.error.cause.cls_name == "MyError"


def test_hook_decorates_a_job_and_uses_resources() -> None:
    calls: list[str] = []

    @success_hook(required_resource_keys={"sink"})
    def to_sink(context) -> None:
        context.resources.sink.append(context.step_key)

    @to_sink
    @job(resource_defs={"sink": calls})
    def sunk():
        plus(one())

    assert sunk.execute_in_process().success
    assert calls == ["one", "plus"]


# -- retries -----------------------------------------------------------------------------------


def flaky_op(failures: int, policy: RetryPolicy | None, attempts: list[int]) -> Any:
    @op(retry_policy=policy)
    def flaky(context) -> int:
        attempts.append(context.retry_number)
        if context.retry_number < failures:
            raise MyError(f"attempt {context.retry_number + 1}")
        return context.retry_number

    return flaky


def test_retry_policy_retries_until_success() -> None:
    attempts: list[int] = []
    flaky = flaky_op(2, RetryPolicy(max_retries=2), attempts)

    @job
    def retrying():
        plus(flaky())

    result = retrying.execute_in_process()

    assert result.success and attempts == [0, 1, 2]
    assert kinds(result, "flaky") == [
        "STEP_START",
        "STEP_UP_FOR_RETRY",
        "STEP_START",
        "STEP_UP_FOR_RETRY",
        "STEP_START",
        "STEP_OUTPUT",
        "HANDLED_OUTPUT",
        "STEP_SUCCESS",
    ]
    starts = [e for e in result.events_for_node("flaky") if e.event_type_value == "STEP_START"]
    assert [e.attempt for e in starts] == [1, 2, 3]
    assert result.output_for_node("plus") == 3


def test_retries_exhausted_fail_the_step_and_fire_the_failure_hook_once() -> None:
    attempts: list[int] = []
    fired: list[str] = []
    flaky = flaky_op(5, RetryPolicy(max_retries=1), attempts)

    @failure_hook
    def on_failure(context) -> None:
        fired.append(context.step_key)

    @job(hooks={on_failure})
    def exhausted():
        flaky()

    result = exhausted.execute_in_process(raise_on_error=False)

    assert attempts == [0, 1] and fired == ["flaky"]
    assert kinds(result, "flaky").count("STEP_UP_FOR_RETRY") == 1
    assert kinds(result, "flaky")[-2:] == ["STEP_FAILURE", "HOOK_COMPLETED"]


def test_retry_delay_is_recorded_on_the_retry_event() -> None:
    attempts: list[int] = []
    policy = RetryPolicy(max_retries=1, delay=0.001, backoff=Backoff.LINEAR)
    flaky = flaky_op(1, policy, attempts)

    @job
    def delayed():
        flaky()

    result = delayed.execute_in_process()

    [retry] = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retry.data["seconds_to_wait"] == pytest.approx(0.001)
    assert retry.error.cause.cls_name == "MyError"


def test_job_op_retry_policy_applies_to_ops_without_one() -> None:
    attempts: list[int] = []
    flaky = flaky_op(1, None, attempts)

    @job(op_retry_policy=RetryPolicy(max_retries=1))
    def job_policy():
        flaky()

    assert job_policy.execute_in_process().success and attempts == [0, 1]


def test_retry_requested_retries_up_to_its_max() -> None:
    attempts: list[int] = []

    @op
    def asks(context) -> int:
        attempts.append(context.retry_number)
        if context.retry_number < 2:
            raise RetryRequested(max_retries=2, seconds_to_wait=0)
        return 9

    @op
    def asks_forever(context) -> None:
        raise RetryRequested(max_retries=1)

    @job
    def requested():
        asks()
        asks_forever()

    result = requested.execute_in_process(raise_on_error=False)

    assert attempts == [0, 1, 2] and result.output_for_node("asks") == 9
    assert kinds(result, "asks_forever") == [
        "STEP_START",
        "STEP_UP_FOR_RETRY",
        "STEP_START",
        "STEP_FAILURE",
    ]


def test_failure_without_retries_is_not_retried_and_keeps_its_metadata() -> None:
    attempts: list[int] = []

    @op(retry_policy=RetryPolicy(max_retries=3))
    def gives_up(context) -> None:
        attempts.append(context.retry_number)
        raise Failure("bad data", metadata={"rows": 3}, allow_retries=False)

    @job
    def failing():
        gives_up()

    with pytest.raises(Failure, match="bad data"):
        failing.execute_in_process()
    result = failing.execute_in_process(raise_on_error=False)

    assert attempts == [0, 0]
    [failure] = result.get_step_failure_events()
    assert failure.data["metadata"] == {"rows": 3}
    assert "bad data" in failure.message
    assert "STEP_UP_FOR_RETRY" not in kinds(result)


def test_failure_with_retries_allowed_is_retried() -> None:
    attempts: list[int] = []

    @op(retry_policy=RetryPolicy(max_retries=1))
    def fails_once(context) -> None:
        attempts.append(context.retry_number)
        if context.retry_number == 0:
            raise Failure("transient")

    @job
    def retried():
        fails_once()

    assert retried.execute_in_process().success and attempts == [0, 1]


class FixedRandom(random.Random):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("policy", "attempt", "rand", "expected"),
    [
        (RetryPolicy(delay=None), 3, 0.5, 0.0),
        (RetryPolicy(delay=2), 3, 0.5, 2.0),
        (RetryPolicy(delay=2, backoff=Backoff.LINEAR), 1, 0.5, 2.0),
        (RetryPolicy(delay=2, backoff=Backoff.LINEAR), 3, 0.5, 6.0),
        (RetryPolicy(delay=2, backoff=Backoff.EXPONENTIAL), 1, 0.5, 2.0),
        (RetryPolicy(delay=2, backoff=Backoff.EXPONENTIAL), 3, 0.5, 14.0),
        (RetryPolicy(delay=2, jitter=Jitter.FULL), 1, 0.25, 0.5),
        (RetryPolicy(delay=2, backoff=Backoff.LINEAR, jitter=Jitter.FULL), 2, 0.5, 2.0),
        (RetryPolicy(delay=2, jitter=Jitter.PLUS_MINUS), 1, 1.0, 4.0),
        (RetryPolicy(delay=2, jitter=Jitter.PLUS_MINUS), 1, 0.0, 0.0),
        (RetryPolicy(delay=2, backoff=Backoff.LINEAR, jitter=Jitter.PLUS_MINUS), 3, 0.25, 5.0),
    ],
)
def test_retry_delay_math(policy: RetryPolicy, attempt: int, rand: float, expected: float) -> None:
    assert policy.calculate_delay(attempt, FixedRandom(rand)) == pytest.approx(expected)


def test_retry_policy_validation_and_serialization() -> None:
    with pytest.raises(DefinitionError):
        RetryPolicy(max_retries=-1)
    with pytest.raises(DefinitionError, match="delay"):
        RetryPolicy(backoff=Backoff.LINEAR)
    with pytest.raises(DefinitionError):
        RetryPolicy(delay=-1)
    policy = RetryPolicy(3, 1.5, Backoff.EXPONENTIAL, Jitter.FULL)
    assert RetryPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy


IN_PROCESS_NO_RETRIES = {"execution": {"config": {"in_process": {"retries": {"disabled": {}}}}}}


def test_execute_job_with_retries_enabled_retries() -> None:
    result = execute_job(
        fixtures.flaky_job, run_config={"execution": {"config": {"in_process": {}}}}
    )

    assert result.success
    assert kinds(result, "flaky").count("STEP_UP_FOR_RETRY") == 2
    assert result.output_for_node("flaky") == 2


def test_executor_config_can_disable_retries() -> None:
    result = execute_job(fixtures.flaky_job, run_config=IN_PROCESS_NO_RETRIES)

    assert not result.success
    assert kinds(result, "flaky") == ["STEP_START", "STEP_FAILURE"]


def test_in_process_executor_config_can_disable_retries() -> None:
    no_retries = {"execution": {"config": {"retries": {"disabled": {}}}}}

    result = execute_job(fixtures.flaky_in_process_job, run_config=no_retries)

    assert not result.success
    assert "STEP_UP_FOR_RETRY" not in kinds(result)
    with pytest.raises(ValueError, match="attempt 1 fails"):
        execute_job(fixtures.flaky_in_process_job, run_config=no_retries, raise_on_error=True)


# -- execute_in_process honours the executor config's retries -----------------------------------


@op(retry_policy=RetryPolicy(max_retries=2))
def always_fails() -> None:
    raise ValueError("always fails")


@job
def always_failing_job():
    always_fails()


@job(executor_def=in_process_executor)
def always_failing_in_process_job():
    always_fails()


@pytest.mark.parametrize(
    ("job_def", "execution_config"),
    [
        pytest.param(always_failing_job, {"in_process": {"retries": {"disabled": {}}}}, id="in"),
        pytest.param(
            always_failing_job, {"multiprocess": {"retries": {"disabled": {}}}}, id="multi"
        ),
        pytest.param(
            always_failing_in_process_job, {"retries": {"disabled": {}}}, id="in_process_executor"
        ),
    ],
)
def test_execute_in_process_honours_retries_disabled_in_run_config(
    job_def: Any, execution_config: dict[str, Any]
) -> None:
    result = job_def.execute_in_process(
        run_config={"execution": {"config": execution_config}}, raise_on_error=False
    )

    assert not result.success
    assert kinds(result, "always_fails") == ["STEP_START", "STEP_FAILURE"]


@pytest.mark.parametrize("job_def", [always_failing_job, always_failing_in_process_job])
def test_execute_in_process_retries_by_default(job_def: Any) -> None:
    result = job_def.execute_in_process(raise_on_error=False)

    assert not result.success
    assert kinds(result, "always_fails") == [
        "STEP_START",
        "STEP_UP_FOR_RETRY",
        "STEP_START",
        "STEP_UP_FOR_RETRY",
        "STEP_START",
        "STEP_FAILURE",
    ]


def test_the_console_logger_prints_when_nothing_configured_logging() -> None:
    import subprocess
    import sys

    code = (
        "from orchestrator import op, job\n"
        "@op\n"
        "def speak(context):\n"
        "    context.log.info('hello from the op')\n"
        "@job\n"
        "def talk():\n"
        "    speak()\n"
        "talk.execute_in_process()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "hello from the op" in out.stderr


# -- resource teardown, framework-detected step errors ----------------------------------------


def test_resource_teardown_error_is_an_event() -> None:
    # Given two generator resources, the second failing in its clean-up (as Dagster's test)
    cleaned: list[str] = []

    @resource
    def first(_):  # type: ignore[no-untyped-def]
        yield "A"
        cleaned.append("A")

    @resource
    def second(_):  # type: ignore[no-untyped-def]
        yield "B"
        raise RuntimeError("clean-up of B broke")

    @op(required_resource_keys={"first", "second"})
    def uses_both(context) -> str:  # type: ignore[no-untyped-def]
        return context.resources.first + context.resources.second

    @job(resource_defs={"first": first, "second": second})
    def teardown_job() -> None:
        uses_both()

    # When the run ends
    result = teardown_job.execute_in_process()
    # Then the run and the step keep their outcome, the other resource was torn down, and the
    # failure is an engine event carrying the error
    assert result.success
    assert cleaned == ["A"]
    (event,) = [e for e in result.all_events if e.data.get("kind") == "resource_teardown_failed"]
    assert event.event_type_value == "ENGINE_EVENT"
    assert "second" in event.message and "clean-up of B broke" in event.message
    assert event.error is not None and event.error.cls_name == "UserCodeError"


def test_a_failed_type_check_is_a_step_error_of_the_error_tree() -> None:
    @op
    def wrong() -> int:
        return "not an int"  # type: ignore[return-value]

    @job
    def type_job() -> None:
        wrong()

    result = type_job.execute_in_process(raise_on_error=False)
    (failure,) = result.get_step_failure_events()
    assert failure.error is not None and failure.error.cls_name == "TypeCheckError"
    with pytest.raises(StepError, match="type check failed") as raised:
        type_job.execute_in_process()
    assert isinstance(raised.value, OrchestratorError)
