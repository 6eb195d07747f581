"""Definitions (SPEC §2): ops, graphs, jobs, invocation settings, JobDefinition properties and
``Definitions``."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import (
    Config,
    ConfigurableResource,
    DailyPartitionsDefinition,
    Definitions,
    EventType,
    Field,
    GraphDefinition,
    In,
    JobDefinition,
    Nothing,
    OpDefinition,
    Out,
    Output,
    ResourceDefinition,
    RetryPolicy,
    SelectionError,
    StaticPartitionsDefinition,
    colored_console_logger,
    fs_io_manager,
    graph,
    in_process_executor,
    job,
    logger,
    multi_or_in_process_executor,
    op,
    static_partitioned_config,
    success_hook,
)
from orchestrator.errors import CodeLocationError, DefinitionError


class GreetConfig(Config):
    greeting: str = "hello"


class Counter(ConfigurableResource):
    start: int = 0

    def next(self) -> int:
        self.start += 1
        return self.start


def types_of(result: Any, step_key: str) -> list[str]:
    return [
        e.event_type_value
        for e in result.events_for_node(step_key)
        if e.event_type_value != EventType.LOG_MESSAGE.value
    ]


# -- ops ---------------------------------------------------------------------------------------


@op
def five() -> int:
    return 5


@op
def add_one(x: int) -> int:
    return x + 1


def test_op_takes_context_inputs_config_and_resource_parameters() -> None:
    seen: dict[str, Any] = {}

    @op
    def greet(context, name: str, config: GreetConfig, counter: Counter) -> str:
        seen["handle"] = context.op_handle
        seen["run_id"] = context.run_id
        seen["retry_number"] = context.retry_number
        return f"{config.greeting} {name} #{counter.next()}"

    @op
    def name() -> str:
        return "world"

    @job(resource_defs={"counter": Counter(start=41)})
    def greet_job():
        greet(name())

    assert greet.takes_context and greet.config_param == "config"
    assert greet.input_names == ["name"]
    assert dict(greet.resource_params) == {"counter": "counter"}
    assert "counter" in greet.all_resource_keys

    result = greet_job.execute_in_process(
        run_config={"ops": {"greet": {"config": {"greeting": "hi"}}}}
    )

    assert result.success
    assert result.output_for_node("greet") == "hi world #42"
    assert seen == {"handle": "greet", "run_id": result.run_id, "retry_number": 0}


def test_op_called_outside_a_composition_runs_the_function() -> None:
    assert add_one(2) == 3


def test_in_and_out_declarations_are_kept_and_typed_inputs_are_checked() -> None:
    @op(ins={"x": In(int, description="a number")}, out=Out(int, description="x + 1"))
    def typed(x):
        return x + 1

    @op
    def text() -> str:
        return "not a number"

    @job
    def bad_types():
        typed(text())

    assert typed.ins["x"].dagster_type is int
    assert typed.ins["x"].description == "a number"
    assert typed.outs["result"].description == "x + 1"

    result = bad_types.execute_in_process(raise_on_error=False)

    assert not result.success
    failure = result.get_step_failure_events()[0]
    assert failure.step_key == "typed"
    assert "type check failed for input 'x'" in failure.message


def test_outputs_are_checked_against_their_declared_type() -> None:
    @op(out=Out(int))
    def wrong() -> int:
        return "not a number"  # type: ignore[return-value]

    @job
    def wrong_output():
        wrong()

    result = wrong_output.execute_in_process(raise_on_error=False)

    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "wrong"
    assert "'result'" in failure.message and "type" in failure.message.lower()


def test_each_yielded_output_is_type_checked_when_it_is_yielded() -> None:
    after_bad_yield: list[str] = []

    @op(out={"n": Out(int), "s": Out(str)})
    def yields_wrong():
        yield Output(1, "n")
        yield Output(2, "s")
        after_bad_yield.append("ran on")

    @job
    def wrong_yield():
        yields_wrong()

    result = wrong_yield.execute_in_process(raise_on_error=False)

    assert not result.success
    [failure] = result.get_step_failure_events()
    assert "type check failed for output 's'" in failure.message
    assert after_bad_yield == []
    assert not [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]


def test_a_return_annotation_types_the_single_output() -> None:
    @op
    def counted() -> int:
        return 3

    @op(out=Out(description="kept"))
    def miscounted() -> int:
        return "three"  # type: ignore[return-value]

    @op(out={"a": Out(), "b": Out()})
    def pair() -> tuple[int, int]:
        return 1, 2

    @job
    def annotated():
        counted()
        miscounted()
        pair()

    assert counted.outs["result"].dagster_type is int
    assert miscounted.outs["result"].dagster_type is int
    assert miscounted.outs["result"].description == "kept"
    assert pair.outs["a"].dagster_type is None

    result = annotated.execute_in_process(raise_on_error=False)

    assert result.output_for_node("counted") == 3
    assert result.output_for_node("pair", "b") == 2
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "miscounted"
    assert "type check failed for output 'result'" in failure.message
    assert "expected int, got str 'three'" in failure.message


def test_a_none_return_annotation_declares_no_type() -> None:
    @op
    def side_effect() -> None:
        return None

    @op
    def after(x: Any) -> None:
        assert x is None

    @job
    def returns_nothing():
        after(side_effect())

    assert side_effect.outs["result"].dagster_type is None

    result = returns_nothing.execute_in_process()

    assert result.success
    assert result.output_for_node("side_effect") is None


def test_several_outputs_returned_as_a_tuple_and_yielded_as_outputs() -> None:
    @op(out={"a": Out(), "b": Out()})
    def returns_pair():
        return 1, 2

    @op(out={"a": Out(), "b": Out()})
    def yields_pair():
        yield Output(10, "b")
        yield Output(20, "a")

    @op
    def total(x: int, y: int) -> int:
        return x + y

    @job
    def pairs():
        a, b = returns_pair()
        total(a, b)
        c, d = yields_pair()
        total.alias("total_yielded")(c, d)

    result = pairs.execute_in_process()

    assert result.output_for_node("returns_pair", "a") == 1
    assert result.output_for_node("returns_pair", "b") == 2
    assert result.output_for_node("yields_pair", "a") == 20
    assert result.output_for_node("total") == 3
    assert result.output_for_node("total_yielded") == 30


def test_output_metadata_is_recorded_on_the_output_event() -> None:
    @op
    def with_metadata():
        return Output(4, metadata={"rows": 4})

    @job
    def metadata_job():
        with_metadata()

    result = metadata_job.execute_in_process()

    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert output.data["metadata"] == {"rows": 4}


def test_optional_output_not_produced_skips_only_the_steps_that_need_it() -> None:
    @op(out={"maybe": Out(is_required=False), "always": Out()})
    def branch():
        yield Output("here", "always")

    @op
    def use(x: str) -> str:
        return x

    @job
    def optional_job():
        maybe, always = branch()
        use.alias("use_maybe")(maybe)
        use.alias("use_always")(always)

    result = optional_job.execute_in_process()

    assert result.success
    assert types_of(result, "use_maybe") == [EventType.STEP_SKIPPED.value]
    assert "'maybe' of 'branch' was not produced" in result.events_for_node("use_maybe")[0].message
    assert result.output_for_node("use_always") == "here"
    assert result.run.status == "SUCCESS"


def test_missing_required_output_fails_the_step() -> None:
    @op(out={"a": Out(), "b": Out()})
    def half():
        yield Output(1, "a")

    @job
    def half_job():
        half()

    result = half_job.execute_in_process(raise_on_error=False)

    assert not result.success
    assert "required output 'b'" in result.get_step_failure_events()[0].message


def test_nothing_dependency_orders_steps_without_passing_data() -> None:
    calls: list[str] = []

    @op
    def first() -> None:
        calls.append("first")

    @op(ins={"after": In(Nothing)})
    def second() -> str:
        calls.append("second")
        return "done"

    @job
    def ordered():
        second(after=first())

    node = ordered.op_nodes["second"]
    assert node.upstream_steps == {"first"}

    result = ordered.execute_in_process()

    assert result.success and calls == ["first", "second"]
    assert result.output_for_node("second") == "done"


def test_nothing_dependency_on_a_failed_step_skips() -> None:
    @op
    def boom() -> None:
        raise RuntimeError("boom")

    @op(ins={"after": In(Nothing)})
    def later() -> None:
        pass

    @job
    def after_boom():
        later(after=boom())

    result = after_boom.execute_in_process(raise_on_error=False)

    assert types_of(result, "later") == [EventType.STEP_SKIPPED.value]


def test_field_config_schema_applies_defaults_and_optional_values() -> None:
    seen = {}

    @op(
        config_schema={
            "rate": Field(int, default_value=3, description="per second"),
            "label": Field(str, is_required=False),
            "name": str,
        }
    )
    def configured(context) -> None:
        seen.update(context.op_config)

    @job
    def field_job():
        configured()

    result = field_job.execute_in_process(
        run_config={"ops": {"configured": {"config": {"name": "n"}}}}
    )

    assert result.success
    assert seen == {"rate": 3, "name": "n"}  # as in Dagster: an optional field not given is absent


def test_field_with_default_cannot_be_required() -> None:
    with pytest.raises(DefinitionError):
        Field(int, default_value=1, is_required=True)


def test_config_schema_and_config_parameter_together_are_rejected() -> None:
    with pytest.raises(DefinitionError, match="not both"):

        @op(config_schema={"a": int})
        def both(config: GreetConfig) -> None:
            pass


def test_ins_naming_a_missing_parameter_is_rejected() -> None:
    with pytest.raises(DefinitionError, match="'y'"):

        @op(ins={"y": In(int)})
        def wrong(x):
            return x


# -- graphs ------------------------------------------------------------------------------------


@graph
def inner_graph(x):
    return add_one(add_one(x))


@graph
def outer_graph(x):
    return inner_graph(add_one(x))


def test_nested_graphs_name_their_ops_with_dotted_handles() -> None:
    @job
    def nested():
        outer_graph(five())

    assert list(nested.op_nodes) == [
        "five",
        "outer_graph.add_one",
        "outer_graph.inner_graph.add_one",
        "outer_graph.inner_graph.add_one_2",
    ]

    result = nested.execute_in_process()

    assert result.output_for_node("outer_graph.inner_graph.add_one_2") == 8
    assert result.events_for_node("outer_graph.inner_graph.add_one")[0].step_key == (
        "outer_graph.inner_graph.add_one"
    )


def test_graph_inputs_and_outputs_connect_across_the_boundary() -> None:
    @graph(out={"low": Out(), "high": Out()})
    def spread(x):
        return {"low": add_one(x), "high": add_one(add_one(x))}

    @op
    def diff(high: int, low: int) -> int:
        return high - low

    @job
    def spread_job():
        low, high = spread(five())
        diff(high=high, low=low)

    assert isinstance(spread, GraphDefinition)
    assert spread.output_names == ["low", "high"]
    assert list(spread.input_defs) == ["x"]

    result = spread_job.execute_in_process()

    assert result.output_for_node("diff") == 1


def test_graph_with_top_level_input_runs_with_input_values() -> None:
    as_job = outer_graph.to_job(name="outer_job")

    result = as_job.execute_in_process(input_values={"x": 1})

    assert isinstance(as_job, JobDefinition) and as_job.name == "outer_job"
    assert result.output_for_node("inner_graph.add_one_2") == 4


def test_job_input_values_parameter_feeds_graph_inputs() -> None:
    as_job = outer_graph.to_job(name="with_inputs", input_values={"x": 10})

    assert as_job.execute_in_process().output_for_node("inner_graph.add_one_2") == 13
    # input_values given at launch win over the job's own.
    assert (
        as_job.execute_in_process(input_values={"x": 0}).output_for_node("inner_graph.add_one_2")
        == 3
    )


def test_calling_a_graph_outside_a_body_is_an_error_saying_what_to_do() -> None:
    with pytest.raises(DefinitionError, match="to_job"):
        outer_graph(1)


def test_a_constant_passed_as_an_input_in_a_body_is_rejected() -> None:
    with pytest.raises(DefinitionError, match="input_values"):

        @job
        def constant():
            add_one(3)


# -- invocation settings -----------------------------------------------------------------------


def test_calling_an_op_again_names_it_name_2_then_name_3() -> None:
    @job
    def thrice():
        add_one(add_one(add_one(five())))

    assert list(thrice.op_nodes) == ["five", "add_one", "add_one_2", "add_one_3"]
    assert thrice.execute_in_process().output_for_node("add_one_3") == 8


def test_alias_names_the_node_and_duplicate_aliases_are_rejected() -> None:
    @job
    def aliased():
        add_one.alias("plus")(five())

    assert list(aliased.op_nodes) == ["five", "plus"]
    assert aliased.op_nodes["plus"].op_def is add_one
    assert aliased.execute_in_process().output_for_node("plus") == 6

    with pytest.raises(DefinitionError, match="'dup'"):

        @job
        def twice():
            add_one.alias("dup")(five())
            add_one.alias("dup")(five())


def test_tag_merges_invocation_tags_over_definition_tags() -> None:
    @op(tags={"team": "core", "tier": "1"})
    def tagged() -> int:
        return 1

    @job
    def tags_job():
        tagged.tag({"tier": "2", "weight": 3})()

    assert dict(tags_job.op_nodes["tagged"].tags) == {"team": "core", "tier": "2", "weight": "3"}


def test_with_hooks_on_one_invocation_fires_only_for_it() -> None:
    fired: list[str] = []

    @success_hook
    def note(context) -> None:
        fired.append(context.op_handle)

    @job
    def hooked():
        add_one.with_hooks({note})(add_one(five()))

    result = hooked.execute_in_process()

    assert fired == ["add_one_2"]
    assert types_of(result, "add_one_2")[-1] == EventType.HOOK_COMPLETED.value


def test_retry_policies_invocation_beats_definition_beats_job_default() -> None:
    own, invocation, default = RetryPolicy(1), RetryPolicy(2), RetryPolicy(3)

    @op(retry_policy=own)
    def has_policy() -> int:
        return 1

    @job(op_retry_policy=default)
    def policies():
        has_policy()
        has_policy.with_retry_policy(invocation)()
        five()

    nodes = policies.op_nodes
    assert nodes["has_policy"].retry_policy is own
    assert nodes["has_policy_2"].retry_policy is invocation
    assert nodes["five"].retry_policy is default


def test_invocation_settings_on_a_graph_apply_to_its_ops() -> None:
    policy = RetryPolicy(2)

    @job
    def graph_settings():
        inner_graph.alias("g").tag({"area": "x"}).with_retry_policy(policy)(five())

    node = graph_settings.op_nodes["g.add_one_2"]
    assert node.tags["area"] == "x" and node.retry_policy is policy


def test_invocation_settings_outside_a_body_are_an_error() -> None:
    with pytest.raises(DefinitionError):
        add_one.alias("x")(1)


# -- jobs --------------------------------------------------------------------------------------


@logger
def quiet_logger(init_context):
    import logging

    return logging.getLogger("quiet")


def test_job_takes_every_parameter_and_exposes_it() -> None:
    policy = RetryPolicy(1)
    server = ResourceDefinition.hardcoded_resource("srv")

    @success_hook
    def on_ok(_context) -> None:
        pass

    @job(
        name="full",
        description="every parameter",
        resource_defs={"server": server},
        config={"ops": {"five": {"config": None}}},
        tags={"team": "data"},
        run_tags={"kind": "nightly"},
        metadata={"owner": "me"},
        logger_defs={"quiet": quiet_logger},
        executor_def=in_process_executor,
        hooks={on_ok},
        op_retry_policy=policy,
        input_values={"unused": 1},
    )
    def full_body():
        five()

    assert isinstance(full_body, JobDefinition)
    assert full_body.name == "full" and full_body.description == "every parameter"
    assert full_body.resource_defs["server"] is server
    assert full_body.resource_defs["io_manager"] is fs_io_manager
    assert full_body.default_run_config == {"ops": {"five": {"config": None}}}
    assert full_body.tags == {"team": "data"}
    assert full_body.run_tags == {"kind": "nightly"}
    assert full_body.metadata == {"owner": "me"}
    assert full_body.loggers == {"quiet": quiet_logger} and full_body.has_specified_loggers
    assert full_body.executor_def is in_process_executor and full_body.has_specified_executor
    assert full_body.hook_defs == frozenset({on_ok})
    assert full_body.op_retry_policy is policy
    assert full_body.input_values == {"unused": 1}
    assert full_body.config_mapping is None and full_body.partitioned_config is None


def test_job_defaults() -> None:
    @job
    def plain():
        five()

    assert plain.name == "plain"
    assert plain.executor_def is multi_or_in_process_executor
    assert not plain.has_specified_executor
    assert not plain.has_specified_loggers
    assert plain.loggers == {"console": colored_console_logger}
    assert plain.resource_defs == {"io_manager": fs_io_manager}
    assert plain.config_mapping is None
    assert plain.partitioned_config is None
    assert plain.partitions_def is None
    assert plain.default_run_config == {}


def test_partitions_def_makes_a_partitioned_job() -> None:
    partitions = DailyPartitionsDefinition(start_date="2024-01-01")

    @job(partitions_def=partitions)
    def daily():
        five()

    assert daily.partitions_def is partitions
    assert daily.partitioned_config is not None
    assert daily.partitioned_config.partitions_def is partitions


def test_partitions_def_with_plain_config_is_rejected() -> None:
    with pytest.raises(DefinitionError, match="PartitionedConfig"):

        @job(partitions_def=StaticPartitionsDefinition(["a"]), config={"ops": {}})
        def wrong():
            five()


def test_partitioned_config_sets_partitions_def() -> None:
    @static_partitioned_config(partition_keys=["a", "b"])
    def per_key(key: str) -> dict[str, Any]:
        return {}

    @job(config=per_key)
    def keyed():
        five()

    assert keyed.partitioned_config is per_key
    assert keyed.partitions_def.get_partition_keys() == ["a", "b"]


def test_tags_go_to_runs_unless_run_tags_are_set() -> None:
    @job(tags={"team": "data", "n": 1})
    def only_tags():
        five()

    @job(tags={"team": "data"}, run_tags={"kind": "nightly"})
    def both_tags():
        five()

    assert only_tags.execute_in_process().run.tags == {"team": "data", "n": "1"}
    run = both_tags.execute_in_process(tags={"kind": "adhoc", "extra": "x"}).run
    assert run.tags == {"kind": "adhoc", "extra": "x"}
    assert both_tags.tags == {"team": "data"}


def test_get_subset_runs_only_the_selection_and_rejects_unknown_ops() -> None:
    @job
    def chain():
        add_one(add_one(five()))

    subset = chain.get_subset(op_selection=["five", "add_one"])

    assert list(subset.op_nodes) == ["five", "add_one"]
    assert list(chain.op_nodes) == ["five", "add_one", "add_one_2"]
    result = subset.execute_in_process()
    assert [e.step_key for e in result.get_step_success_events()] == ["five", "add_one"]
    with pytest.raises(SelectionError, match="add_one"):
        chain.get_subset(op_selection=["add_on"])


def test_job_with_hooks_applies_to_every_op_and_leaves_the_original() -> None:
    fired: list[str] = []

    @success_hook
    def record(context) -> None:
        fired.append(context.step_key)

    @job
    def chain():
        add_one(five())

    hooked = chain.with_hooks({record})
    chain.execute_in_process()
    assert fired == []

    hooked.execute_in_process()
    assert fired == ["five", "add_one"]


def test_with_top_level_resources_fills_in_without_overriding() -> None:
    @op(required_resource_keys={"a", "b"})
    def uses(context) -> str:
        return context.resources.a + context.resources.b

    @job(resource_defs={"a": ResourceDefinition.hardcoded_resource("job-a")})
    def needs():
        uses()

    filled = needs.with_top_level_resources(
        {"a": ResourceDefinition.hardcoded_resource("top-a"), "b": "top-b"}
    )

    assert filled.execute_in_process().output_for_node("uses") == "job-atop-b"
    assert "b" not in needs.resource_defs


def test_definitions_get_job_def_applies_top_level_resources_and_executor() -> None:
    @op(required_resource_keys={"server"})
    def ping(context) -> str:
        return context.resources.server

    @graph
    def do_stuff():
        ping()

    prod = do_stuff.to_job(
        name="do_stuff_prod", resource_defs={"server": ResourceDefinition.hardcoded_resource("p")}
    )
    local = do_stuff.to_job(name="do_stuff_local")
    defs = Definitions(
        jobs=[prod, local],
        resources={"server": ResourceDefinition.hardcoded_resource("shared")},
        executor=in_process_executor,
    )

    assert defs.job_names == ["do_stuff_prod", "do_stuff_local"]
    assert defs.get_job_def("do_stuff_prod").execute_in_process().output_for_node("ping") == "p"
    resolved = defs.get_job_def("do_stuff_local")
    assert resolved.execute_in_process().output_for_node("ping") == "shared"
    assert resolved.executor_def is in_process_executor
    assert not local.has_specified_executor
    assert defs.get_job_def("do_stuff_local") is resolved


def test_definitions_errors_name_the_job() -> None:
    @job
    def one():
        five()

    with pytest.raises(DefinitionError, match="'one'"):
        Definitions(jobs=[one, one])
    with pytest.raises(CodeLocationError, match="Did you mean: 'one'"):
        Definitions(jobs=[one]).get_job_def("onee")


def test_decorators_return_plain_definitions() -> None:
    assert isinstance(five, OpDefinition)
    assert isinstance(inner_graph, GraphDefinition)
