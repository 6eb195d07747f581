"""Config and resources (SPEC §2): Config classes, RunConfig and raw dicts, dict schemas, job
default config, config mappings, partitioned config, config errors that name their path, and
every way of giving a job its resources."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from unittest import mock

import pytest

from orchestrator import (
    Config,
    ConfigError,
    ConfigMapping,
    ConfigurableResource,
    EventType,
    Field,
    PartitionedConfig,
    ResourceDefinition,
    ResourceNotFoundError,
    RunConfig,
    StaticPartitionsDefinition,
    config_mapping,
    daily_partitioned_config,
    graph,
    job,
    op,
    resource,
    static_partitioned_config,
    success_hook,
)
from orchestrator.definitions.partitions import PARTITION_TAG
from orchestrator.errors import PartitionError


class DoSomethingConfig(Config):
    config_param: str


class SimplifiedConfig(Config):
    simplified_param: str


class InnerConfig(Config):
    a: int
    b: str = "x"


class OuterConfig(Config):
    inner: InnerConfig
    names: list[str] = []


@op
def do_something(context, config: DoSomethingConfig) -> str:
    context.log.info("config_param: " + config.config_param)
    return config.config_param


@job
def do_it_all():
    do_something()


default_config = RunConfig(ops={"do_something": DoSomethingConfig(config_param="stuff")})


@job(config=default_config)
def do_it_all_with_default_config():
    do_something()


@config_mapping
def simplified_config(val: SimplifiedConfig) -> RunConfig:
    return RunConfig(ops={"do_something": DoSomethingConfig(config_param=val.simplified_param)})


@job(config=simplified_config)
def do_it_all_with_simplified_config():
    do_something()


def logged(result: Any) -> list[str]:
    return [e.message for e in result.all_events if e.event_type_value == "LOG_MESSAGE"]


def config_error(job_def: Any, run_config: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        job_def.execute_in_process(run_config=run_config)
    return info.value


# -- Config, RunConfig, raw dicts --------------------------------------------------------------


def test_run_config_object_and_raw_dict_are_equivalent() -> None:
    as_object = RunConfig(ops={"do_something": DoSomethingConfig(config_param="x")})
    as_dict = {"ops": {"do_something": {"config": {"config_param": "x"}}}}

    assert as_object.to_dict() == as_dict
    assert do_it_all.execute_in_process(run_config=as_object).output_for_node("do_something") == "x"
    assert do_it_all.execute_in_process(run_config=as_dict).output_for_node("do_something") == "x"
    # A Config instance inside a raw dict is accepted too.
    mixed = {"ops": {"do_something": DoSomethingConfig(config_param="x")}}
    assert do_it_all.execute_in_process(run_config=mixed).output_for_node("do_something") == "x"


def test_run_config_to_dict_covers_every_section() -> None:
    run_config = RunConfig(
        ops={"a": {"config": {"v": 1}, "inputs": {"x": 2}}},
        resources={"r": {"config": {"k": "v"}}},
        execution={"config": {"in_process": {}}},
        loggers={"console": {"config": {"log_level": "DEBUG"}}},
    )

    assert run_config.to_dict() == {
        "ops": {"a": {"config": {"v": 1}, "inputs": {"x": 2}}},
        "resources": {"r": {"config": {"k": "v"}}},
        "execution": {"config": {"in_process": {}}},
        "loggers": {"console": {"config": {"log_level": "DEBUG"}}},
    }


def test_op_receives_an_instance_of_its_config_class() -> None:
    seen = []

    @op
    def typed(config: DoSomethingConfig) -> None:
        seen.append(config)

    @job
    def typed_job():
        typed()

    typed_job.execute_in_process(run_config={"ops": {"typed": {"config": {"config_param": "v"}}}})

    assert seen == [DoSomethingConfig(config_param="v")]


def test_config_schema_of_a_plain_type() -> None:
    @op(config_schema=int)
    def number(context) -> int:
        return context.op_config * 2

    @job
    def number_job():
        number()

    result = number_job.execute_in_process(run_config={"ops": {"number": {"config": 21}}})

    assert result.output_for_node("number") == 42


def test_nested_dict_schema_and_nested_graph_config_paths() -> None:
    @op(config_schema={"conn": {"host": str, "port": Field(int, default_value=5432)}})
    def connect(context) -> str:
        conn = context.op_config["conn"]
        return f"{conn['host']}:{conn['port']}"

    @graph
    def inner():
        connect()

    @graph
    def outer():
        inner()

    @job
    def nested_config():
        outer()

    run_config = {
        "ops": {
            "outer": {"ops": {"inner": {"ops": {"connect": {"config": {"conn": {"host": "db"}}}}}}}
        }
    }
    result = nested_config.execute_in_process(run_config=run_config)
    assert result.output_for_node("outer.inner.connect") == "db:5432"

    bad = {
        "ops": {
            "outer": {"ops": {"inner": {"ops": {"connect": {"config": {"conn": {"host": 1}}}}}}}
        }
    }
    error = config_error(nested_config, bad)
    assert [p for p, _ in error.problems] == ["ops.outer.ops.inner.ops.connect.config.conn.host"]


def test_nested_config_classes_validate_and_name_nested_paths() -> None:
    @op
    def nested(config: OuterConfig) -> tuple:
        return config.inner.a, config.inner.b, config.names

    @job
    def nested_job():
        nested()

    given = RunConfig(ops={"nested": OuterConfig(inner=InnerConfig(a=5), names=["n"])})
    assert nested_job.execute_in_process(run_config=given).output_for_node("nested") == (
        5,
        "x",
        ["n"],
    )
    bad = {"ops": {"nested": {"config": {"inner": {"a": "q", "c": 2}, "names": "n"}}}}
    problems = dict(config_error(nested_job, bad).problems)
    assert set(problems) == {
        "ops.nested.config.inner.a",
        "ops.nested.config.inner.c",
        "ops.nested.config.names",
    }
    assert problems["ops.nested.config.inner.c"] == "unknown config key; expected one of: a, b"


# -- job default config ------------------------------------------------------------------------


def test_job_default_config_is_used_when_no_run_config_is_given() -> None:
    result = do_it_all_with_default_config.execute_in_process()

    assert result.success
    assert "config_param: stuff" in logged(result)
    assert result.run.run_config == {"ops": {"do_something": {"config": {"config_param": "stuff"}}}}


def test_launch_config_replaces_the_default_instead_of_merging() -> None:
    @op(config_schema={"v": Field(str, default_value="schema default")})
    def first(context) -> str:
        return context.op_config["v"]

    @op(config_schema={"w": str})
    def second(context) -> str:
        return context.op_config["w"]

    @job(
        config={
            "ops": {
                "first": {"config": {"v": "job default"}},
                "second": {"config": {"w": "job default"}},
            }
        }
    )
    def two():
        first()
        second()

    assert two.execute_in_process().output_for_node("first") == "job default"
    # Given: launch config naming only `first`. Then: `second` gets nothing from the default.
    error = config_error(two, {"ops": {"first": {"config": {}}}})
    assert error.problems == [("ops.second.config.w", "missing required config value")]
    # And `first` falls back to its schema default, not to the job default.
    result = two.execute_in_process(run_config={"ops": {"second": {"config": {"w": "launch"}}}})
    assert result.output_for_node("first") == "schema default"
    assert result.output_for_node("second") == "launch"


# -- config mappings ---------------------------------------------------------------------------


def test_config_mapping_seed_example() -> None:
    assert isinstance(simplified_config, ConfigMapping)
    assert do_it_all_with_simplified_config.config_mapping is simplified_config

    result = do_it_all_with_simplified_config.execute_in_process(
        run_config={"simplified_param": "stuff"}
    )

    assert result.success
    assert "config_param: stuff" in logged(result)
    assert result.run.run_config == {"ops": {"do_something": {"config": {"config_param": "stuff"}}}}


def test_config_mapping_rejects_bad_outer_config_with_its_path() -> None:
    error = config_error(do_it_all_with_simplified_config, {"simplified_param": 3})

    assert [p for p, _ in error.problems] == ["config.simplified_param"]
    error = config_error(do_it_all_with_simplified_config, {"other": "x"})
    paths = [p for p, _ in error.problems]
    assert "config.other" in paths and "config.simplified_param" in paths


def test_config_mapping_with_a_dict_schema() -> None:
    mapping = ConfigMapping(
        config_fn=lambda outer: {
            "ops": {"do_something": {"config": {"config_param": outer["p"] * 2}}}
        },
        config_schema={"p": str},
    )
    mapped_job = do_it_all.graph_def.to_job(name="mapped", config=mapping)

    assert (
        mapped_job.execute_in_process(run_config={"p": "ab"}).output_for_node("do_something")
        == "abab"
    )


# -- partitioned config ------------------------------------------------------------------------


@static_partitioned_config(partition_keys=["us", "eu"], tags_for_partition_fn=lambda k: {"r": k})
def region_config(partition_key: str) -> dict[str, Any]:
    return {"ops": {"do_something": {"config": {"config_param": f"region {partition_key}"}}}}


@op
def partition_aware(context) -> str:
    return context.partition_key


@job(config=region_config)
def region_job():
    do_something()
    partition_aware()


def test_static_partitioned_config_gives_config_tags_and_partition_key() -> None:
    result = region_job.execute_in_process(partition_key="eu")

    assert result.output_for_node("do_something") == "region eu"
    assert result.output_for_node("partition_aware") == "eu"
    assert result.run.partition_key == "eu"
    assert result.run.tags[PARTITION_TAG] == "eu" and result.run.tags["r"] == "eu"
    assert region_job.partitions_def.get_partition_keys() == ["us", "eu"]


def test_unknown_partition_key_and_a_key_for_an_unpartitioned_job_are_errors() -> None:
    with pytest.raises(PartitionError, match="Did you mean: 'us'"):
        region_job.execute_in_process(partition_key="uss")
    with pytest.raises(PartitionError, match="not partitioned"):
        do_it_all.execute_in_process(partition_key="us")


def test_daily_partitioned_config_passes_the_window() -> None:
    @daily_partitioned_config(start_date="2024-01-01")
    def daily(start: datetime, end: datetime) -> dict[str, Any]:
        window = f"{start:%Y-%m-%d}..{end:%Y-%m-%d}"
        return {"ops": {"do_something": {"config": {"config_param": window}}}}

    @job(config=daily)
    def daily_job():
        do_something()
        partition_aware()

    result = daily_job.execute_in_process(partition_key="2024-01-02")

    assert result.output_for_node("do_something") == "2024-01-02..2024-01-03"
    assert result.output_for_node("partition_aware") == "2024-01-02"


def test_partitioned_config_object_and_launch_config_replacing_it() -> None:
    partitioned = PartitionedConfig(
        StaticPartitionsDefinition(["a", "b"]),
        lambda key: RunConfig(ops={"do_something": DoSomethingConfig(config_param=key * 2)}),
    )
    keyed = do_it_all.graph_def.to_job(name="keyed", config=partitioned)

    assert keyed.execute_in_process(partition_key="b").output_for_node("do_something") == "bb"
    launched = keyed.execute_in_process(
        partition_key="a",
        run_config={"ops": {"do_something": {"config": {"config_param": "given"}}}},
    )
    assert launched.output_for_node("do_something") == "given"


# -- config errors name their path -------------------------------------------------------------


def test_wrong_type_names_the_path_and_the_problem() -> None:
    error = config_error(do_it_all, {"ops": {"do_something": {"config": {"config_param": 3}}}})

    [(path, message)] = error.problems
    assert path == "ops.do_something.config.config_param"
    assert "3" in message
    assert "ops.do_something.config.config_param" in str(error)


def test_unknown_config_key_names_the_path_and_the_expected_keys() -> None:
    error = config_error(
        do_it_all,
        {"ops": {"do_something": {"config": {"config_param": "x", "extra": 1}}}},
    )

    assert error.problems == [
        ("ops.do_something.config.extra", "unknown config key; expected one of: config_param")
    ]


def test_missing_required_config() -> None:
    error = config_error(do_it_all, {})

    assert error.problems == [
        ("ops.do_something.config.config_param", "missing required config value")
    ]


def test_unknown_op_name_under_ops_suggests_the_closest() -> None:
    error = config_error(do_it_all, {"ops": {"do_somthing": {"config": {"config_param": "x"}}}})

    paths = dict(error.problems)
    assert "Did you mean: 'do_something'" in paths["ops.do_somthing"]
    assert "ops.do_something.config.config_param" in paths


def test_unknown_top_level_key_and_config_for_an_op_without_schema() -> None:
    @op
    def bare() -> None:
        pass

    @job
    def bare_job():
        bare()

    error = config_error(bare_job, {"opz": {}, "ops": {"bare": {"config": {"a": 1}}}})

    paths = dict(error.problems)
    assert "Did you mean: 'ops'" in paths["opz"]
    assert "ops.bare.config" not in paths  # as in Dagster: no schema accepts any config


def test_an_op_without_schema_gets_whatever_config_is_given() -> None:
    @op
    def bare(context) -> object:  # type: ignore[no-untyped-def]
        return context.op_config

    @job
    def bare_job():
        bare()

    result = bare_job.execute_in_process(run_config={"ops": {"bare": {"config": {"a": [1]}}}})
    assert result.output_for_node("bare") == {"a": [1]}
    assert bare_job.execute_in_process().output_for_node("bare") is None


def test_run_config_that_is_not_a_mapping() -> None:
    with pytest.raises(ConfigError):
        do_it_all.execute_in_process(run_config=["not", "a", "mapping"])


def test_all_problems_are_reported_at_once() -> None:
    @op(config_schema={"a": int})
    def one(context) -> None:
        pass

    @job
    def two_ops():
        one()
        one()

    error = config_error(two_ops, {"ops": {"one": {"config": {"a": "x"}}}})

    assert [p for p, _ in error.problems] == [
        "ops.one.config.a",
        "ops.one_2.config.a",
    ]


# -- resources ---------------------------------------------------------------------------------


class Server(ConfigurableResource):
    host: str = "localhost"
    port: int = 80

    def url(self) -> str:
        return f"{self.host}:{self.port}"


events_log: list[str] = []


class Tracked(ConfigurableResource):
    name: str = "tracked"

    def setup_for_execution(self, context) -> None:
        events_log.append(f"setup {self.name}")

    def teardown_after_execution(self, context) -> None:
        events_log.append(f"teardown {self.name}")


@op
def ping(server: Server) -> str:
    return server.url()


@job(resource_defs={"server": Server(host="prod")})
def ping_job():
    ping()


def test_configurable_resource_fields_are_defaults_run_config_overrides() -> None:
    assert ping_job.execute_in_process().output_for_node("ping") == "prod:80"
    result = ping_job.execute_in_process(
        run_config={"resources": {"server": {"config": {"port": 8080}}}}
    )
    assert result.output_for_node("ping") == "prod:8080"
    result = ping_job.execute_in_process(
        run_config=RunConfig(resources={"server": Server(host="given", port=1)})
    )
    assert result.output_for_node("ping") == "given:1"


def test_resource_config_error_names_its_path() -> None:
    error = config_error(ping_job, {"resources": {"server": {"config": {"port": "high"}}}})

    assert [p for p, _ in error.problems] == ["resources.server.config.port"]
    error = config_error(ping_job, {"resources": {"srever": {}}})
    assert "Did you mean: 'server'" in dict(error.problems)["resources.srever"]


def test_resource_decorator_with_config_and_dependencies() -> None:
    @resource(config_schema={"prefix": str})
    def prefix(context) -> str:
        return context.resource_config["prefix"]

    @resource(required_resource_keys={"prefix"})
    def client(context) -> str:
        return context.resources.prefix + "-client"

    @op(required_resource_keys={"client"})
    def use(context) -> str:
        return context.resources.client

    @job(resource_defs={"prefix": prefix, "client": client})
    def client_job():
        use()

    result = client_job.execute_in_process(
        run_config={"resources": {"prefix": {"config": {"prefix": "p"}}}}
    )

    assert result.output_for_node("use") == "p-client"


def test_generator_resources_are_torn_down_after_the_run() -> None:
    log: list[str] = []

    @resource
    def connection(_context):
        log.append("open")
        yield "conn"
        log.append("close")

    @op(required_resource_keys={"conn"})
    def first(context) -> str:
        log.append("first uses " + context.resources.conn)
        return "a"

    @op(required_resource_keys={"conn"})
    def second(context, a: str) -> str:
        log.append("second uses " + context.resources.conn)
        return a

    @job(resource_defs={"conn": connection})
    def conn_job():
        second(first())

    result = conn_job.execute_in_process()

    assert result.success
    assert log == ["open", "first uses conn", "second uses conn", "close"]


def test_generator_resource_is_torn_down_when_the_run_fails() -> None:
    log: list[str] = []

    @resource
    def connection():
        yield "conn"
        log.append("close")

    @op(required_resource_keys={"conn"})
    def fails(context) -> None:
        raise RuntimeError("op failed")

    @job(resource_defs={"conn": connection})
    def failing():
        fails()

    with pytest.raises(RuntimeError, match="op failed"):
        failing.execute_in_process()
    assert log == ["close"]


def test_configurable_resource_setup_and_teardown_hooks_run() -> None:
    events_log.clear()

    @op
    def use(tracked: Tracked) -> str:
        events_log.append("op")
        return tracked.name

    @job(resource_defs={"tracked": Tracked(name="t")})
    def tracked_job():
        use()

    assert tracked_job.execute_in_process().output_for_node("use") == "t"
    assert events_log == ["setup t", "op", "teardown t"]


def test_mock_hardcoded_and_none_resources() -> None:
    @op(required_resource_keys={"server", "value", "nothing"})
    def uses(context) -> tuple:
        context.resources.server.ping_server()
        return (context.resources.server, context.resources.value, context.resources.nothing)

    @job(
        resource_defs={
            "server": ResourceDefinition.mock_resource(),
            "value": ResourceDefinition.hardcoded_resource({"k": 1}),
            "nothing": ResourceDefinition.none_resource(),
        }
    )
    def mocked():
        uses()

    server, value, nothing = mocked.execute_in_process().output_for_node("uses")

    assert isinstance(server, mock.MagicMock)
    server.ping_server.assert_called_once_with()
    assert value == {"k": 1}
    assert nothing is None


def test_resources_given_to_execute_in_process_override_the_jobs() -> None:
    @op(required_resource_keys={"plain"})
    def plain(context) -> str:
        return context.resources.plain

    @job(resource_defs={"server": Server(host="job"), "plain": "job plain"})
    def both():
        ping()
        plain()

    result = both.execute_in_process(
        resources={"server": Server(host="given"), "plain": "given plain"}
    )

    assert result.output_for_node("ping") == "given:80"
    assert result.output_for_node("plain") == "given plain"


def test_resources_can_be_given_only_at_launch() -> None:
    @job
    def no_resources():
        ping()

    result = no_resources.execute_in_process(
        resources={"server": ResourceDefinition.hardcoded_resource(Server(host="h"))}
    )

    assert result.output_for_node("ping") == "h:80"


def test_missing_resource_names_the_op_and_the_key() -> None:
    @op(required_resource_keys={"warehouse"})
    def load(context) -> None:
        pass

    @job
    def needs_warehouse():
        load()

    with pytest.raises(ResourceNotFoundError) as info:
        needs_warehouse.execute_in_process()

    assert "op 'load'" in str(info.value)
    assert "'warehouse'" in str(info.value)


def test_missing_resource_parameter_names_the_op_and_the_key() -> None:
    @job
    def no_server():
        ping()

    with pytest.raises(ResourceNotFoundError, match="op 'ping' requires resource 'server'"):
        no_server.execute_in_process()


def test_an_unrequested_resource_is_not_an_attribute_of_context_resources() -> None:
    @op(required_resource_keys={"a"})
    def probes(context) -> tuple:
        return hasattr(context.resources, "a"), hasattr(context.resources, "b")

    @op(required_resource_keys={"a"})
    def uses_b(context) -> None:
        context.resources.b  # noqa: B018

    @job(resource_defs={"a": 1, "b": 2})
    def probing():
        probes()
        uses_b()

    result = probing.execute_in_process(raise_on_error=False)

    assert result.output_for_node("probes") == (True, False)
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "uses_b"
    assert failure.error.cls_name == "ResourceNotFoundError"
    assert "resource 'b' was not requested" in failure.error.message


def test_missing_resource_of_a_hook_is_reported_before_the_run() -> None:
    @success_hook(required_resource_keys={"slack"})
    def notify(context) -> None:
        pass

    @op
    def noop() -> None:
        pass

    @job(hooks={notify})
    def hooked():
        noop()

    with pytest.raises(ResourceNotFoundError, match="'slack'"):
        hooked.execute_in_process()


def test_resource_init_failure_fails_the_step_with_the_original_exception() -> None:
    @resource
    def broken(_context):
        raise ConnectionError("no route")

    @op(required_resource_keys={"broken"})
    def use(context) -> None:
        pass

    @job(resource_defs={"broken": broken})
    def broken_job():
        use()

    result = broken_job.execute_in_process(raise_on_error=False)

    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.error.cls_name == "UserCodeError"
    assert failure.error.cause.cls_name == "ConnectionError"
    assert "initialization of resource 'broken'" in failure.error.message
    assert [e.event_type_value for e in result.all_events][-1] == EventType.RUN_FAILURE.value
