"""The planner: (job, selection, run config, partition) -> an immutable plan that round-trips
through JSON exactly."""

from __future__ import annotations

import dataclasses
import json

import pytest

from orchestrator import In, Nothing, RetryPolicy, job, op, static_partitioned_config
from orchestrator.errors import InvalidInputError
from orchestrator.plan.build import build_plan
from orchestrator.plan.steps import PRIORITY_TAG, ExecutionPlan, InputKind
from orchestrator.runs.api import prepare_run
from orchestrator.storage.base import Instance
from tests import fixtures


def test_plan_round_trips_through_json_exactly() -> None:
    plan, _ = build_plan(fixtures.plan_job, run_tags={PRIORITY_TAG: "1"})

    text = plan.to_json()
    again = ExecutionPlan.from_json(text)

    assert again == plan
    assert again.to_json() == text
    assert json.loads(json.dumps(plan.to_dict())) == plan.to_dict()
    for original, copy in zip(plan.steps, again.steps, strict=True):
        assert copy == original
        assert copy.retry_policy == original.retry_policy


def test_plan_of_a_job_with_nesting_fan_in_nothing_tags_config_and_retries() -> None:
    plan, _ = build_plan(fixtures.plan_job)

    assert plan.job_name == "plan_job"
    assert plan.step_keys == [
        "op_a",
        "op_b",
        "op_c",
        "outer.inner.offset",
        "outer.inner.scale",
        "outer.split",
        "outer.op_c",
        "cleanup",
    ]
    fan_in = plan.step("op_c").input_named("values")
    assert fan_in.kind is InputKind.STEP_OUTPUT and fan_in.fan_in
    assert [(s.step_key, s.output_name) for s in fan_in.sources] == [
        ("op_a", "result"),
        ("op_b", "result"),
    ]
    nested_fan_in = plan.step("outer.op_c").input_named("values")
    assert [(s.step_key, s.output_name) for s in nested_fan_in.sources] == [
        ("outer.split", "low"),
        ("outer.split", "high"),
    ]
    after = plan.step("cleanup").input_named("after")
    assert after.kind is InputKind.NOTHING
    assert plan.step("cleanup").upstream_keys == {"outer.op_c"}

    offset = plan.step("outer.inner.offset")
    assert offset.op_name == "offset"
    assert offset.queue == "heavy" and offset.priority == 3
    assert dict(offset.tags) == {"orchestrator/queue": "heavy", "orchestrator/priority": "3"}
    assert offset.retry_policy == RetryPolicy(max_retries=2, delay=0.5)
    assert offset.config == {"offset": 10, "label": "x"}
    assert plan.step("outer.inner.scale").config == {"factor": 2}
    assert plan.step("op_a").queue == "orchestrator" and plan.step("op_a").priority == 0
    assert plan.step("op_a").resource_keys == ("io_manager",)
    assert plan.run_config == fixtures.plan_job.default_run_config
    assert plan.op_selection is None and plan.partition_key is None


def test_priority_is_the_op_tag_plus_the_run_tag() -> None:
    plan, _ = build_plan(fixtures.plan_job, run_tags={PRIORITY_TAG: "2"})

    assert plan.step("outer.inner.offset").priority == 5
    assert plan.step("op_a").priority == 2


def test_the_jobs_run_tags_and_launch_tags_set_the_run_priority() -> None:
    instance = Instance.ephemeral()

    from_job = prepare_run(fixtures.plan_job, instance=instance).plan
    from_launch = prepare_run(fixtures.plan_job, instance=instance, tags={PRIORITY_TAG: "-3"}).plan

    assert from_job.step("outer.inner.offset").priority == 4  # 3 + run tag 1
    assert from_launch.step("outer.inner.offset").priority == 0
    assert from_launch.step("op_a").priority == -3


def test_a_priority_that_is_not_an_integer_is_rejected() -> None:
    @op(tags={PRIORITY_TAG: "high"})
    def eager() -> None:
        pass

    @job
    def bad_priority():
        eager()

    with pytest.raises(InvalidInputError, match=r"'eager'.*must be an integer"):
        build_plan(bad_priority)
    with pytest.raises(InvalidInputError, match="run tags"):
        build_plan(fixtures.my_job, run_tags={PRIORITY_TAG: "x"})


def test_the_plan_is_immutable() -> None:
    plan, _ = build_plan(fixtures.plan_job)

    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.job_name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.steps[0].priority = 9  # type: ignore[misc]
    with pytest.raises(TypeError):
        plan.step("outer.inner.offset").tags["x"] = "y"  # type: ignore[index]
    with pytest.raises(TypeError):
        plan.run_config["ops"] = {}  # type: ignore[index]


def test_input_kinds_for_a_subset() -> None:
    @op(ins={"x": In(int, default_value=1)})
    def defaulted(x):
        return x

    @op(ins={"start": In(Nothing)})
    def ordered() -> int:
        return 0

    @op
    def combine(a: int, b: int, c: int) -> int:
        return a + b + c

    @job
    def kinds_job():
        first = fixtures.return_one()
        combine(fixtures.add_two(first), defaulted(), ordered(start=first))

    subset = kinds_job.get_subset(["combine", "defaulted", "ordered"])
    plan, _ = build_plan(
        subset,
        run_config={"ops": {"combine": {"inputs": {"a": 5}}}},
    )

    combine_step = plan.step("combine")
    assert combine_step.input_named("a").kind is InputKind.VALUE
    assert combine_step.input_named("a").value == 5
    assert combine_step.input_named("b").kind is InputKind.STEP_OUTPUT
    assert combine_step.input_named("c").kind is InputKind.STEP_OUTPUT
    assert combine_step.upstream_keys == {"defaulted", "ordered"}
    assert plan.step("defaulted").input_named("x").kind is InputKind.DEFAULT
    # An order-only input on an unselected op is dropped: there is nothing to wait for.
    assert plan.step("ordered").inputs == ()
    assert plan.op_selection == ("combine", "defaulted", "ordered")
    assert ExecutionPlan.from_json(plan.to_json()) == plan

    by_value, _ = build_plan(subset, input_values={"combine.a": 6})
    assert by_value.step("combine").input_named("a").kind is InputKind.INPUT_VALUE
    assert by_value.step("combine").input_named("a").key == "combine.a"
    assert by_value.step("combine").upstream_keys == {"defaulted", "ordered"}


def test_plan_for_a_partition_holds_its_key_and_config() -> None:
    @static_partitioned_config(partition_keys=["p1", "p2"])
    def per_partition(key: str) -> dict:
        return {"ops": {"op": {"config": key}}}

    @op(config_schema=str)
    def configured(context) -> str:
        return context.op_config

    @job(config=per_partition)
    def partitioned():
        configured.alias("op")()

    plan, _ = build_plan(partitioned, partition_key="p2")

    assert plan.partition_key == "p2"
    assert plan.step("op").config == "p2"
    assert plan.run_config == {"ops": {"op": {"config": "p2"}}}
    assert ExecutionPlan.from_json(plan.to_json()) == plan


def test_plan_records_resource_config() -> None:
    plan, _ = build_plan(
        fixtures.my_job, run_config={"resources": {"io_manager": {"config": {"base_dir": "/b"}}}}
    )

    assert plan.resource_config["io_manager"] == {"base_dir": "/b"}
    assert ExecutionPlan.from_json(plan.to_json()).resource_config == plan.resource_config
