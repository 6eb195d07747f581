"""Names Dagster op-job code uses, written as a Dagster user's own test file would be: define,
run, assert on outputs and events. Only the import line differs from Dagster code."""

from __future__ import annotations

import enum
import logging
import os
from pathlib import Path

import pytest

from orchestrator import (
    Any,
    Array,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    BoolSource,
    ConfigMapping,
    ConfigurableIOManager,
    ConfigurableResource,
    DagsterError,
    DagsterExecutionStepExecutionError,
    DagsterInvalidConfigError,
    DagsterInvalidDefinitionError,
    DagsterInvalidInvocationError,
    DagsterInvalidSubsetError,
    DagsterInvariantViolationError,
    DagsterType,
    DagsterTypeCheckDidNotPass,
    DagsterUnknownResourceError,
    Definitions,
    DependencyDefinition,
    Dict,
    Enum,
    EnumValue,
    EnvVar,
    ExpectationResult,
    Failure,
    Field,
    FilesystemIOManager,
    GraphDefinition,
    In,
    InputManager,
    Int,
    IntSource,
    IOManager,
    List,
    MetadataValue,
    MultiDependencyDefinition,
    NodeInvocation,
    Noneable,
    OpExecutionContext,
    Out,
    Output,
    Permissive,
    PythonObjectDagsterType,
    RepositoryDefinition,
    ResourceDependency,
    ResourceParam,
    Selector,
    Shape,
    String,
    StringSource,
    TypeCheck,
    build_hook_context,
    build_init_logger_context,
    build_init_resource_context,
    build_input_context,
    build_op_context,
    build_output_context,
    build_resources,
    check_dagster_type,
    configured,
    daily_partitioned_config,
    definitions,
    failure_hook,
    file_relative_path,
    get_dagster_logger,
    graph,
    in_process_executor,
    input_manager,
    io_manager,
    job,
    logger,
    make_values_resource,
    multiprocess_executor,
    op,
    repository,
    resource,
    static_partitioned_config,
    usable_as_dagster_type,
    validate_run_config,
)
from orchestrator.errors import OrchestratorError, UserCodeError

# -- errors under Dagster's names -----------------------------------------------------------


@op(config_schema={"rows": int})
def count_rows(context: OpExecutionContext) -> int:
    return int(context.op_config["rows"])


@job
def counting() -> None:
    count_rows()


def test_invalid_config_raises_dagster_invalid_config_error() -> None:
    with pytest.raises(DagsterInvalidConfigError) as info:
        counting.execute_in_process(run_config={"ops": {"count_rows": {"config": {"rows": "x"}}}})
    assert "ops.count_rows.config.rows" in str(info.value)


def test_asking_a_result_for_an_op_that_did_not_run_is_an_invariant_violation() -> None:
    result = counting.execute_in_process(
        run_config={"ops": {"count_rows": {"config": {"rows": 3}}}}
    )
    assert result.output_for_node("count_rows") == 3
    with pytest.raises(DagsterInvariantViolationError):
        result.output_for_node("no_such_op")


def test_a_failed_type_check_raises_dagster_type_check_did_not_pass() -> None:
    @op
    def says_int() -> int:
        return "not an int"  # type: ignore[return-value]

    @job
    def typed() -> None:
        says_int()

    with pytest.raises(DagsterTypeCheckDidNotPass):
        typed.execute_in_process()
    result = typed.execute_in_process(raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "type check failed" in failure.message


def test_a_missing_resource_is_an_invalid_definition() -> None:
    @op(required_resource_keys={"warehouse"})
    def needs_warehouse(context: OpExecutionContext) -> None: ...

    with pytest.raises(DagsterInvalidDefinitionError) as info:

        @job
        def no_warehouse() -> None:
            needs_warehouse()

        no_warehouse.execute_in_process()
    assert "warehouse" in str(info.value)
    # a resource the op did not ask for, read off the context
    with pytest.raises(DagsterUnknownResourceError):
        build_op_context().resources.warehouse  # noqa: B018


def test_definition_and_subset_errors_under_dagster_names() -> None:
    with pytest.raises(DagsterInvalidDefinitionError):
        Field(int, default_value=1, is_required=True)
    with pytest.raises(DagsterInvalidSubsetError):
        counting.get_subset(op_selection=["nope"])


def test_dagster_names_are_the_project_s_own_error_tree() -> None:
    assert DagsterError is OrchestratorError
    assert DagsterExecutionStepExecutionError is UserCodeError
    for error in (
        DagsterInvalidConfigError,
        DagsterInvalidDefinitionError,
        DagsterInvariantViolationError,
        DagsterTypeCheckDidNotPass,
        DagsterUnknownResourceError,
    ):
        assert issubclass(error, DagsterError)


# -- config types ---------------------------------------------------------------------------


class Color(enum.Enum):
    RED = 1
    BLUE = 2


@op(
    config_schema={
        "source": Selector({"csv": Shape({"path": String}), "table": String}),
        "options": Permissive({"limit": Field(Int, default_value=10)}),
        "columns": Array(String),
        "color": Enum.from_python_enum(Color),
        "mode": Enum("Mode", [EnumValue("fast"), EnumValue("safe", python_value=0)]),
        "token": StringSource,
        "retries": IntSource,
        "verbose": Field(BoolSource, default_value=False),
        "note": Noneable(str),
        "extra": Field(Any, is_required=False),
    }
)
def configured_read(context: OpExecutionContext) -> dict:
    return dict(context.op_config)


@job
def reading() -> None:
    configured_read()


def test_config_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READ_TOKEN", "s3cret")
    monkeypatch.setenv("READ_RETRIES", "4")
    config = {
        "source": {"csv": {"path": "orders.csv"}},
        "options": {"anything": "kept"},
        "columns": ["id", "total"],
        "color": "BLUE",
        "mode": "safe",
        "token": {"env": "READ_TOKEN"},
        "retries": {"env": "READ_RETRIES"},
    }
    result = reading.execute_in_process(run_config={"ops": {"configured_read": {"config": config}}})
    out = result.output_for_node("configured_read")
    assert out["source"] == {"csv": {"path": "orders.csv"}}
    assert out["options"] == {"limit": 10, "anything": "kept"}
    assert out["columns"] == ["id", "total"]
    assert out["color"] is Color.BLUE
    assert out["mode"] == 0
    assert (out["token"], out["retries"], out["verbose"]) == ("s3cret", 4, False)
    assert out["note"] is None and "extra" not in out  # optional, no default: absent


def test_config_type_errors_name_their_paths() -> None:
    config = {
        "source": {"csv": {"path": "a.csv"}, "table": "t"},
        "options": {"limit": "ten"},
        "columns": ["id", 3],
        "color": "GREEN",
        "mode": "fast",
        "token": {"variable": "X"},
        "retries": "1",
    }
    with pytest.raises(DagsterInvalidConfigError) as info:
        reading.execute_in_process(run_config={"ops": {"configured_read": {"config": config}}})
    text = str(info.value)
    prefix = "ops.configured_read.config."
    for path in ("source", "options.limit", "columns.1", "color", "token", "retries"):
        assert prefix + path + ":" in text, text
    assert "exactly one of" in text and "GREEN" in text


def test_an_env_source_is_read_where_the_step_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # The plan keeps {"env": ...} (no secret is stored with the run); the step's process reads
    # the variable, and a missing one fails the step naming the variable and the config path.
    monkeypatch.delenv("MISSING_TOKEN", raising=False)
    config = {
        "source": {"table": "t"},
        "columns": [],
        "color": "RED",
        "mode": "fast",
        "token": {"env": "MISSING_TOKEN"},
        "retries": 1,
    }
    run_config = {"ops": {"configured_read": {"config": config}}}
    result = reading.execute_in_process(run_config=run_config, raise_on_error=False)
    assert not result.success
    assert result.run.run_config["ops"]["configured_read"]["config"]["token"] == {
        "env": "MISSING_TOKEN"
    }
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "ops.configured_read.config.token" in failure.message
    assert "MISSING_TOKEN" in failure.message


def test_validate_run_config_fills_defaults_and_raises_on_errors() -> None:
    @op(config_schema={"rows": Field(int, default_value=5), "table": str})
    def load(context: OpExecutionContext) -> None: ...

    @graph
    def nightly() -> None:
        load()

    @job
    def warehouse() -> None:
        nightly()

    validated = validate_run_config(
        warehouse, {"ops": {"nightly": {"ops": {"load": {"config": {"table": "t"}}}}}}
    )
    assert validated["ops"] == {"nightly": {"ops": {"load": {"config": {"rows": 5, "table": "t"}}}}}
    with pytest.raises(DagsterInvalidConfigError):
        validate_run_config(warehouse, {"ops": {"nightly": {"ops": {"load": {"config": {}}}}}})


# -- structure and helpers ------------------------------------------------------------------


def test_file_relative_path() -> None:
    path = file_relative_path(__file__, "fixtures.py")
    assert Path(path).exists()
    assert os.path.dirname(path) == os.path.dirname(__file__)


def test_repository_of_jobs() -> None:
    @repository
    def analytics():  # type: ignore[no-untyped-def]
        return [counting, reading]

    assert isinstance(analytics, RepositoryDefinition)
    assert analytics.name == "analytics"
    assert {j.name for j in analytics.get_all_jobs()} == {"counting", "reading"}
    assert (
        analytics.get_job("counting")
        .execute_in_process(run_config={"ops": {"count_rows": {"config": {"rows": 2}}}})
        .success
    )

    @repository(name="by_dict")
    def with_dict():  # type: ignore[no-untyped-def]
        return {"jobs": {"counting": counting}}

    assert with_dict.name == "by_dict" and with_dict.job_names == ["counting"]


def test_definitions_decorator() -> None:
    @definitions
    def defs() -> Definitions:
        return Definitions(jobs=[counting])

    assert defs.get_job_def("counting").name == "counting"


def test_get_dagster_logger_lines_go_to_the_run_log(caplog: pytest.LogCaptureFixture) -> None:
    def helper(n: int) -> int:
        get_dagster_logger("helpers").info(f"helper saw {n}")
        return n * 2

    @op
    def uses_helper() -> int:
        return helper(21)

    @job
    def logging_job() -> None:
        uses_helper()

    result = logging_job.execute_in_process()
    assert result.output_for_node("uses_helper") == 42
    lines = [e for e in result.all_events if e.event_type_value == "LOG_MESSAGE"]
    assert [(e.step_key, e.message) for e in lines] == [("uses_helper", "helper saw 21")]
    # outside an op it is a plain logger
    with caplog.at_level(logging.INFO):
        get_dagster_logger("helpers").info("outside any op")
    assert "outside any op" in caplog.text


# -- types, metadata and logged events --------------------------------------------------------

EvenInt = DagsterType(
    lambda _context, value: isinstance(value, int) and value % 2 == 0,
    name="EvenInt",
    description="an even integer",
)


def _positive(_context, value):  # type: ignore[no-untyped-def]
    if isinstance(value, int) and value > 0:
        return TypeCheck(success=True)
    return TypeCheck(success=False, description=f"{value!r} is not positive")


Positive = DagsterType(_positive, name="Positive")


def test_dagster_type_checks_inputs_and_outputs() -> None:
    @op(out=Out(EvenInt))
    def make(context: OpExecutionContext) -> int:
        return int(context.op_config)

    @op(ins={"n": In(Positive)})
    def use(n: int) -> int:
        return n

    @job
    def typed_job() -> None:
        use(make())

    def run(value: int):  # type: ignore[no-untyped-def]
        return typed_job.execute_in_process(
            run_config={"ops": {"make": {"config": value}}}, raise_on_error=False
        )

    assert run(4).success
    failed = run(3)
    (failure,) = [e for e in failed.all_events if e.is_step_failure]
    assert failure.step_key == "make" and "EvenInt" in failure.message
    failed = run(-2)
    (failure,) = [e for e in failed.all_events if e.is_step_failure]
    assert failure.step_key == "use" and "-2 is not positive" in failure.message
    with pytest.raises(DagsterTypeCheckDidNotPass):
        typed_job.execute_in_process(run_config={"ops": {"make": {"config": 3}}})
    assert check_dagster_type(EvenInt, 2).success
    assert not check_dagster_type(Positive, 0).success


def test_a_dagster_type_check_function_takes_context_and_value() -> None:
    with pytest.raises(DagsterInvalidDefinitionError):
        DagsterType(lambda value: True, name="Bad")  # type: ignore[arg-type,misc]


def test_output_generic_annotation_declares_the_type() -> None:
    @op
    def counted() -> Output[int]:
        return Output("three")  # type: ignore[arg-type]

    @job
    def generic_job() -> None:
        counted()

    result = generic_job.execute_in_process(raise_on_error=False)
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "expected int" in failure.message


def test_output_metadata_from_output_and_context() -> None:
    @op
    def load_rows(context: OpExecutionContext) -> Output[list]:
        context.add_output_metadata({"source": MetadataValue.url("https://example.com/rows")})
        return Output([1, 2, 3], metadata={"rows": 3, "preview": MetadataValue.md("| a |")})

    @job
    def rows_job() -> None:
        load_rows()

    result = rows_job.execute_in_process()
    (output,) = [e for e in result.all_events if e.is_successful_output]
    data = output.event_specific_data
    assert data.output_name == "result"
    assert data.metadata["rows"].value == 3
    assert data.metadata["source"] == MetadataValue.url("https://example.com/rows")
    assert data.metadata["preview"].kind == "md"


def test_materializations_observations_and_expectations_are_events() -> None:
    @op
    def write_table(context: OpExecutionContext) -> int:
        context.log_event(
            AssetMaterialization(
                asset_key=["warehouse", "orders"],
                description="loaded",
                metadata={"rows": MetadataValue.int(10)},
            )
        )
        context.log_event(AssetObservation(asset_key="orders_source", metadata={"age": 3}))
        return 10

    @op
    def check_table(count: int):  # type: ignore[no-untyped-def]
        yield ExpectationResult(success=count > 0, label="non_empty", metadata={"count": count})
        yield AssetMaterialization(asset_key="report")
        yield Output(count)

    @job
    def events_job() -> None:
        check_table(write_table())

    result = events_job.execute_in_process()
    assert result.success
    (mat,) = [e for e in result.events_for_node("write_table") if e.is_asset_materialization]
    materialization = mat.event_specific_data.materialization
    assert materialization.asset_key == AssetKey(["warehouse", "orders"])
    assert materialization.metadata["rows"].value == 10
    (obs,) = [e for e in result.all_events if e.is_asset_observation]
    assert obs.event_specific_data.asset_observation.asset_key.to_user_string() == "orders_source"
    (expectation,) = [e for e in result.all_events if e.is_expectation_result]
    assert expectation.event_specific_data.expectation_result.success
    assert expectation.event_specific_data.expectation_result.label == "non_empty"
    assert [e.step_key for e in result.all_events if e.is_asset_materialization] == [
        "write_table",
        "check_table",
    ]


def test_a_failure_s_metadata_and_description_on_the_event() -> None:
    @op
    def refuses() -> None:
        raise Failure(description="bad rows", metadata={"bad": MetadataValue.int(2)})

    @job
    def failing() -> None:
        refuses()

    result = failing.execute_in_process(raise_on_error=False)
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    data = failure.event_specific_data
    assert data.error is not None and "bad rows" in data.error.message
    assert data.user_failure_data.description == "bad rows"
    assert data.user_failure_data.metadata["bad"].value == 2


def test_event_predicates() -> None:
    result = counting.execute_in_process(
        run_config={"ops": {"count_rows": {"config": {"rows": 1}}}}
    )
    kinds = {
        name
        for e in result.all_events
        for name in ("is_step_start", "is_step_success", "is_successful_output", "is_run_success")
        if getattr(e, name)
    }
    assert kinds == {"is_step_start", "is_step_success", "is_successful_output", "is_run_success"}
    assert not any(e.is_hook_event or e.is_step_failure for e in result.all_events)


# -- testing helpers ----------------------------------------------------------------------------

TORN_DOWN: list[str] = []


@resource(config_schema={"url": str})
def database(init_context):  # type: ignore[no-untyped-def]
    yield {"url": init_context.resource_config["url"]}
    TORN_DOWN.append(init_context.resource_config["url"])


@resource(required_resource_keys={"database"})
def reporter(init_context):  # type: ignore[no-untyped-def]
    return f"reports to {init_context.resources.database['url']}"


class Greeter(ConfigurableResource):
    greeting: str

    def greet(self, name: str) -> str:
        return f"{self.greeting}, {name}"


@op(required_resource_keys={"database"}, config_schema={"table": str})
def read_table(context: OpExecutionContext, limit: int) -> str:
    return f"{context.resources.database['url']}/{context.op_config['table']}?limit={limit}"


@op
def greet(greeter: Greeter, name: str) -> str:
    return greeter.greet(name)


@op
def plain_add(a: int, b: int = 2) -> int:
    return a + b


@op(ins={"b": In(int, default_value=10)})
def add_default(a: int, b: int) -> int:
    return a + b


def test_build_op_context_as_a_context_manager_tears_resources_down() -> None:
    TORN_DOWN.clear()
    with build_op_context(
        resources={"database": database},
        resources_config={"database": {"config": {"url": "db://x"}}},
        op_config={"table": "orders"},
    ) as context:
        assert read_table(context, 5) == "db://x/orders?limit=5"
        assert TORN_DOWN == []
    assert TORN_DOWN == ["db://x"]


def test_direct_invocation_checks_config_and_context() -> None:
    context = build_op_context(resources={"database": {"url": "db://y"}}, op_config={"table": 1})
    with pytest.raises(DagsterInvalidConfigError):
        read_table(context, 1)
    with pytest.raises(DagsterInvalidInvocationError, match="context"):
        read_table(5)  # type: ignore[call-arg]
    # an op without a context parameter may still be given one (it is not passed on)
    assert plain_add(build_op_context(), 1) == 3


def test_direct_invocation_of_ops_without_context() -> None:
    assert plain_add(1) == 3
    assert plain_add(1, b=5) == 6
    assert add_default(1) == 11
    with pytest.raises(DagsterInvalidInvocationError, match="input 'a'"):
        add_default()
    # a ConfigurableResource parameter comes from the context or is passed directly
    assert greet(build_op_context(resources={"greeter": Greeter(greeting="Hi")}), "Ann") == (
        "Hi, Ann"
    )
    assert greet(greeter=Greeter(greeting="Hello"), name="Bo") == "Hello, Bo"


def test_build_resources_yields_initialized_resources() -> None:
    TORN_DOWN.clear()
    with build_resources(
        {"database": database, "reporter": reporter, "greeter": Greeter(greeting="Hey")},
        resource_config={"database": {"config": {"url": "db://z"}}},
    ) as resources:
        assert resources.reporter == "reports to db://z"
        assert resources.greeter.greet("you") == "Hey, you"
    assert TORN_DOWN == ["db://z"]


def test_build_init_resource_context_calls_a_resource_directly() -> None:
    context = build_init_resource_context(resources={"database": {"url": "db://q"}})
    assert reporter(context) == "reports to db://q"
    assert context.resources.database == {"url": "db://q"}


def test_build_hook_context_calls_a_hook_directly() -> None:
    seen: list[str] = []

    @failure_hook(required_resource_keys={"alerts"})
    def alert(context):  # type: ignore[no-untyped-def]
        seen.append(f"{context.op.name}: {context.op_exception} -> {context.resources.alerts}")

    alert(
        build_hook_context(resources={"alerts": "#data"}, op=plain_add, op_exception=KeyError("x"))
    )
    assert seen == ["plain_add: 'x' -> #data"]


# -- signature forms ----------------------------------------------------------------------------


def test_an_op_taking_kwargs_gets_its_declared_inputs() -> None:
    @op(ins={"left": In(int), "right": In(int)})
    def total(**kwargs) -> int:  # type: ignore[no-untyped-def]
        return int(kwargs["left"] + kwargs["right"])

    @op
    def one() -> int:
        return 1

    @job
    def kwargs_job() -> None:
        total(left=one(), right=one.alias("another")())

    assert kwargs_job.execute_in_process().output_for_node("total") == 2
    assert total(left=2, right=3) == 5


def test_a_python_default_is_the_input_default() -> None:
    @op
    def scaled(value: int = 7) -> int:
        return value * 2

    @job
    def default_job() -> None:
        scaled()

    assert default_job.execute_in_process().output_for_node("scaled") == 14


# -- configured ---------------------------------------------------------------------------------


@op(config_schema={"region": str, "retries": int})
def fetch(context: OpExecutionContext) -> str:
    return f"{context.op_config['region']}:{context.op_config['retries']}"


@resource(config_schema={"bucket": str, "prefix": Field(str, default_value="")})
def storage(init_context):  # type: ignore[no-untyped-def]
    return f"{init_context.resource_config['bucket']}/{init_context.resource_config['prefix']}"


def test_an_op_configured_with_fixed_config() -> None:
    fetch_eu = fetch.configured({"region": "eu", "retries": 3}, name="fetch_eu")

    @job
    def fixed() -> None:
        fetch_eu()

    assert fixed.execute_in_process().output_for_node("fetch_eu") == "eu:3"


def test_configured_as_a_decorator_maps_new_config() -> None:
    @configured(fetch, config_schema={"region": str})
    def fetch_patiently(config):  # type: ignore[no-untyped-def]
        return {"region": config["region"], "retries": 10}

    @job
    def mapped() -> None:
        fetch_patiently()

    result = mapped.execute_in_process(
        run_config={"ops": {"fetch_patiently": {"config": {"region": "us"}}}}
    )
    assert result.output_for_node("fetch_patiently") == "us:10"
    with pytest.raises(DagsterInvalidConfigError) as info:
        mapped.execute_in_process(run_config={"ops": {"fetch_patiently": {"config": {}}}})
    assert "region" in str(info.value)


def test_a_configured_mapping_to_invalid_config_is_a_config_error() -> None:
    broken = fetch.configured({"region": "eu"}, name="broken_fetch")

    @job
    def broken_job() -> None:
        broken()

    with pytest.raises(DagsterInvalidConfigError) as info:
        broken_job.execute_in_process()
    assert "retries" in str(info.value) and "broken_fetch" in str(info.value)


def test_resources_and_loggers_configured() -> None:
    @op(required_resource_keys={"storage"})
    def where(context: OpExecutionContext) -> str:
        return str(context.resources.storage)

    @job(resource_defs={"storage": configured(storage)({"bucket": "b1"})})
    def fixed_storage() -> None:
        where()

    assert fixed_storage.execute_in_process().output_for_node("where") == "b1/"

    mapped_storage = storage.configured(
        lambda cfg: {"bucket": cfg["env"] + "-bucket", "prefix": "runs"},
        config_schema={"env": str},
    )

    @job(resource_defs={"storage": mapped_storage})
    def env_storage() -> None:
        where()

    result = env_storage.execute_in_process(
        run_config={"resources": {"storage": {"config": {"env": "prod"}}}}
    )
    assert result.output_for_node("where") == "prod-bucket/runs"


def test_a_graph_with_a_config_mapping_configures_its_ops() -> None:
    @op(config_schema={"table": str, "batch": int})
    def load(context: OpExecutionContext) -> str:
        return f"{context.op_config['table']}x{context.op_config['batch']}"

    @graph(
        config=ConfigMapping(
            config_fn=lambda cfg: {"load": {"config": {"table": cfg["table"], "batch": 100}}},
            config_schema={"table": str},
        )
    )
    def loading() -> str:
        return load()

    @graph(config={"load": {"config": {"table": "fixed", "batch": 1}}})
    def fixed_loading() -> str:
        return load()

    @job
    def warehouse_job() -> None:
        loading()
        fixed_loading()

    result = warehouse_job.execute_in_process(
        run_config={"ops": {"loading": {"config": {"table": "orders"}}}}
    )
    assert result.output_for_node("loading") == "ordersx100"
    assert result.output_for_node("fixed_loading") == "fixedx1"
    with pytest.raises(DagsterInvalidConfigError) as info:
        warehouse_job.execute_in_process(run_config={"ops": {"loading": {"config": {"table": 1}}}})
    assert "ops.loading.config.table" in str(info.value)


# -- partitions ---------------------------------------------------------------------------------


def test_partitioned_config_api() -> None:
    @static_partitioned_config(partition_keys=["eu", "us"])
    def region_config(partition_key: str) -> dict:
        return {"ops": {"count_rows": {"config": {"rows": len(partition_key) * 10}}}}

    @daily_partitioned_config(start_date="2024-01-01")
    def day_config(start, end):  # type: ignore[no-untyped-def]
        return {"ops": {"count_rows": {"config": {"rows": start.day}}}}

    assert region_config.get_partition_keys() == ["eu", "us"]
    assert region_config("eu") == {"ops": {"count_rows": {"config": {"rows": 20}}}}
    assert region_config.get_run_config_for_partition_key("us")["ops"]["count_rows"] == {
        "config": {"rows": 20}
    }
    assert day_config.get_partition_keys()[:2] == ["2024-01-01", "2024-01-02"]
    assert day_config.get_run_config_for_partition_key("2024-01-05") == {
        "ops": {"count_rows": {"config": {"rows": 5}}}
    }

    @job(config=region_config)
    def regional() -> None:
        count_rows()

    assert regional.partitions_def is not None
    assert regional.partitions_def.get_partition_keys() == ["eu", "us"]
    result = regional.execute_in_process(partition_key="us")
    assert result.output_for_node("count_rows") == 20


# -- the explicit graph form ------------------------------------------------------------------


@op
def return_one() -> int:
    return 1


@op
def add_one(num: int) -> int:
    return num + 1


@op
def adder(nums: list) -> int:
    return sum(nums)


def test_graph_definition_with_dependency_definitions() -> None:
    calc = GraphDefinition(
        name="calc",
        node_defs=[return_one, add_one, adder],
        dependencies={
            "add_one": {"num": DependencyDefinition("return_one")},
            NodeInvocation("add_one", alias="add_two", tags={"step": "second"}): {
                "num": DependencyDefinition("add_one")
            },
            "adder": {
                "nums": MultiDependencyDefinition(
                    [DependencyDefinition("return_one"), DependencyDefinition("add_two")]
                )
            },
        },
    )
    result = calc.to_job().execute_in_process()
    assert result.output_for_node("add_two") == 3
    assert result.output_for_node("adder") == 4
    subset = calc.to_job(name="calc_job").execute_in_process(op_selection=["*add_two"])
    assert {e.step_key for e in subset.get_step_success_events()} == {
        "return_one",
        "add_one",
        "add_two",
    }


def test_graph_definition_errors_name_the_problem() -> None:
    with pytest.raises(DagsterInvalidDefinitionError, match="retrun_one"):
        GraphDefinition(
            name="bad",
            node_defs=[return_one, add_one],
            dependencies={"add_one": {"num": DependencyDefinition("retrun_one")}},
        )
    with pytest.raises(DagsterInvalidDefinitionError, match="cycle"):
        GraphDefinition(
            name="loop",
            node_defs=[add_one],
            dependencies={
                NodeInvocation("add_one", alias="a"): {"num": DependencyDefinition("b")},
                NodeInvocation("add_one", alias="b"): {"num": DependencyDefinition("a")},
            },
        )


def test_result_helpers_over_nodes_and_graphs() -> None:
    @op
    def produce() -> int:
        return 5

    @op
    def record(context: OpExecutionContext, n: int) -> int:
        context.log_event(AssetMaterialization("numbers", metadata={"n": n}))
        context.log_event(ExpectationResult(success=n > 0, label="positive"))
        return n

    @graph
    def pipeline() -> int:
        return record(produce())

    @job
    def nested_job() -> None:
        pipeline()

    result = nested_job.execute_in_process()
    assert result.output_for_node("pipeline") == 5  # a graph's output
    assert {e.step_key for e in result.events_for_node("pipeline")} == {
        "pipeline.produce",
        "pipeline.record",
    }
    assert all(e.step_key for e in result.all_node_events)
    (materialization,) = result.asset_materializations_for_node("pipeline.record")
    assert (
        materialization.asset_key.path == ["numbers"] and materialization.metadata["n"].value == 5
    )
    (expectation,) = result.expectation_results_for_node("pipeline")
    assert expectation.success and expectation.label == "positive"
    assert result.get_job_success_event().is_run_success
    assert len(result.get_asset_materialization_events()) == 1
    assert result.filter_events(lambda e: e.is_step_success)


class Warehouse(ConfigurableResource):
    user: str
    password: str

    def login(self) -> str:
        return f"{self.user}:{self.password}"


def test_env_var_in_a_resource_is_read_when_the_run_builds_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @op
    def connect(warehouse: Warehouse) -> str:
        return warehouse.login()

    @job(resource_defs={"warehouse": Warehouse(user="etl", password=EnvVar("WH_PASSWORD"))})
    def secure() -> None:
        connect()

    monkeypatch.setenv("WH_PASSWORD", "first")
    result = secure.execute_in_process()
    assert result.output_for_node("connect") == "etl:first"
    assert "first" not in str(result.run.run_config)  # the secret is not stored with the run
    monkeypatch.setenv("WH_PASSWORD", "second")
    assert secure.execute_in_process().output_for_node("connect") == "etl:second"
    monkeypatch.delenv("WH_PASSWORD")
    with pytest.raises(DagsterInvalidConfigError, match="WH_PASSWORD"):
        secure.execute_in_process()


def test_executor_and_logger_configured() -> None:
    two_at_once = multiprocess_executor.configured({"max_concurrent": 2}, name="two")
    mapped = in_process_executor.configured(
        lambda cfg: {"retries": {"enabled": {}} if cfg["retry"] else {"disabled": {}}},
        config_schema={"retry": bool},
    )

    @job(executor_def=mapped)
    def mapped_executor_job() -> None:
        count_rows()

    result = mapped_executor_job.execute_in_process(
        run_config={
            "ops": {"count_rows": {"config": {"rows": 4}}},
            "execution": {"config": {"retry": False}},
        }
    )
    assert result.output_for_node("count_rows") == 4
    assert two_at_once.name == "two" and two_at_once.default_config["max_concurrent"] == 2


# -- events as Dagster's tests read them, IO managers, helpers ---------------------------------


def test_the_event_stream_of_a_step_as_dagster_lists_it() -> None:
    @op(out={"a_num": Out(int)})
    def emit(context: OpExecutionContext):  # type: ignore[no-untyped-def]
        context.log.info("a log line is no event of the step")
        yield ExpectationResult(success=True, label="ok")
        yield AssetMaterialization(asset_key="x")
        yield Output(2, "a_num")

    @job
    def emitting() -> None:
        emit()

    result = emitting.execute_in_process()
    assert [e.event_type_value for e in result.events_for_node("emit")] == [
        "STEP_START",
        "STEP_EXPECTATION_RESULT",
        "ASSET_MATERIALIZATION",
        "STEP_OUTPUT",
        "HANDLED_OUTPUT",
        "STEP_SUCCESS",
    ]


class KeepInDict(ConfigurableIOManager):
    prefix: str = "k"

    def handle_output(self, context, obj) -> None:  # type: ignore[no-untyped-def]
        STORE[f"{self.prefix}/{context.step_key}/{context.name}"] = obj
        context.add_output_metadata({"stored_as": f"{self.prefix}/{context.step_key}"})

    def load_input(self, context):  # type: ignore[no-untyped-def]
        up = context.upstream_output
        return STORE[f"{self.prefix}/{up.step_key}/{up.name}"]


STORE: dict[str, object] = {}


def test_configurable_io_manager_and_output_metadata() -> None:
    @op(out=Out(metadata={"owner": "sales"}))
    def make() -> int:
        return 7

    @op
    def use(n: int) -> int:
        return n + 1

    @job(resource_defs={"io_manager": KeepInDict(prefix="p")})
    def io_job() -> None:
        use(make())

    result = io_job.execute_in_process()
    assert result.output_for_node("use") == 8 and STORE["p/make/result"] == 7
    (handled,) = [e for e in result.events_for_node("make") if e.is_handled_output]
    assert handled.data["metadata"] == {"stored_as": "p/make"}
    # and in a unit test, with Dagster's context builders
    manager = KeepInDict()
    manager.handle_output(build_output_context(step_key="s", name="out"), [1])
    upstream = build_output_context(step_key="s", name="out")
    assert manager.load_input(build_input_context(upstream_output=upstream)) == [1]


def test_io_manager_without_arguments_and_the_filesystem_io_manager(tmp_path) -> None:  # type: ignore[no-untyped-def]
    class Memory(IOManager):
        def __init__(self) -> None:
            self.values: dict = {}

        def handle_output(self, context, obj):  # type: ignore[no-untyped-def]
            self.values[context.step_key] = obj

        def load_input(self, context):  # type: ignore[no-untyped-def]
            return self.values[context.upstream_output.step_key]

    @io_manager
    def memory():  # type: ignore[no-untyped-def]
        return Memory()

    @op
    def one() -> int:
        return 1

    @op
    def plus(n: int) -> int:
        return n + 1

    for manager in (memory, FilesystemIOManager(base_dir=str(tmp_path))):

        @job(resource_defs={"io_manager": manager})
        def io_job() -> None:
            plus(one())

        assert io_job.execute_in_process().output_for_node("plus") == 2
    assert list(tmp_path.rglob("*.pickle"))


def test_input_and_output_definitions_of_an_op() -> None:
    @op(ins={"n": In(int), "label": In(str)})
    def describe(n, label, items: list):  # type: ignore[no-untyped-def]
        return f"{label}{n}{items}"

    assert [(d.name, d.dagster_type.display_name) for d in describe.input_defs] == [
        ("n", "Int"),
        ("label", "String"),
        ("items", "[Any]"),
    ]
    assert [d.name for d in describe.output_defs] == ["result"]


def test_resources_called_directly() -> None:
    @resource
    def plain():  # type: ignore[no-untyped-def]
        return "value"

    @resource
    def connection():  # type: ignore[no-untyped-def]
        TORN_DOWN.clear()
        yield "conn"
        TORN_DOWN.append("conn closed")

    assert plain() == "value"
    with connection() as conn:
        assert conn == "conn" and TORN_DOWN == []
    assert TORN_DOWN == ["conn closed"]


def test_direct_calls_check_types_and_log_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    @op(ins={"num": In(EvenInt)})
    def halve(context: OpExecutionContext, num: int) -> int:
        context.log.info(f"halving {num}")
        return num // 2

    assert halve(build_op_context(), 4) == 2
    assert "halving 4" in capsys.readouterr().err
    with pytest.raises(DagsterTypeCheckDidNotPass):
        halve(build_op_context(), 3)

    @op(out=Out(int))
    def says_text() -> int:
        return "text"  # type: ignore[return-value]

    with pytest.raises(DagsterTypeCheckDidNotPass):
        says_text()


def test_graphs_given_as_jobs_and_multi_output_graphs() -> None:
    @op(out={"int_out": Out(), "str_out": Out()})
    def pair():  # type: ignore[no-untyped-def]
        return (Output(5), Output("foo"))  # positions name them

    @graph
    def passes_pair():  # type: ignore[no-untyped-def]
        return pair()

    @op
    def count(items: list) -> int:
        return len(items)

    @graph
    def empty_fan_in() -> None:
        count([])

    defs = Definitions(jobs=[passes_pair, empty_fan_in])
    result = defs.get_job_def("passes_pair").execute_in_process()
    assert result.output_for_node("pair", "int_out") == 5
    assert result.output_for_node("pair", "str_out") == "foo"
    assert [o for o in passes_pair.output_names] == ["int_out", "str_out"]
    assert defs.get_job_def("empty_fan_in").execute_in_process().output_for_node("count") == 0


def test_logger_with_a_positional_schema_built_directly() -> None:
    @logger({"name": Field(str, default_value="custom")}, "a test logger")
    def custom(init_context):  # type: ignore[no-untyped-def]
        return logging.getLogger(init_context.logger_config["name"])

    assert custom.description == "a test logger"
    built = custom(build_init_logger_context(logger_config={"name": "x.y"}))
    assert built.name == "x.y"


class Db:
    def query(self) -> str:
        return "rows"


@usable_as_dagster_type
class Token:
    pass


def test_resource_params_values_resource_and_type_helpers() -> None:
    @op
    def ask(db: ResourceParam[Db], values: ResourceParam[dict]) -> str:
        return f"{db.query()} in {values['region']}"

    @job(resource_defs={"db": Db(), "values": make_values_resource(region=str)})
    def asking() -> None:
        ask()

    result = asking.execute_in_process(
        run_config={"resources": {"values": {"config": {"region": "eu"}}}}
    )
    assert result.output_for_node("ask") == "rows in eu"
    Number = PythonObjectDagsterType((int, float), name="Number")
    assert check_dagster_type(Number, 1.5).success and not check_dagster_type(Number, "1").success
    assert not check_dagster_type(Token, 1).success and check_dagster_type(Token, Token()).success
    assert check_dagster_type(Dict[Any, Any], {"a": 1}).success
    assert check_dagster_type(List[int], [1]).success and not check_dagster_type(List, 1).success


def test_io_managers_see_the_definition_metadata_of_outputs_and_inputs() -> None:
    seen: list[tuple[str, object]] = []

    class Tables(ConfigurableIOManager):
        def handle_output(self, context, obj) -> None:  # type: ignore[no-untyped-def]
            table = context.definition_metadata.get("table", context.step_key)
            seen.append(("out", table))
            STORE[table] = obj

        def load_input(self, context):  # type: ignore[no-untyped-def]
            upstream = context.upstream_output
            table = upstream.definition_metadata.get("table", upstream.step_key)
            seen.append(("in", table))
            return STORE[table]

    @op(out=Out(metadata={"table": "orders"}))
    def write() -> int:
        return 3

    @op
    def read(n: int) -> int:
        return n

    @job(resource_defs={"io_manager": Tables()})
    def tables_job() -> None:
        read(write())

    assert tables_job.execute_in_process().output_for_node("read") == 3
    assert ("out", "orders") in seen and ("in", "orders") in seen


def test_the_console_logger_prints_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    @op
    def talk(context: OpExecutionContext) -> None:
        context.log.error("something to see")

    @job
    def talking() -> None:
        talk()

    talking.execute_in_process()
    assert "talk - something to see" in capsys.readouterr().err


class Engine:
    def run(self, query: str) -> str:
        return f"ran {query}"


class Database(ConfigurableResource):
    engine: ResourceDependency[Engine]
    schema_name: str = "public"

    def query(self, text: str) -> str:
        return f"{self.engine.run(text)} in {self.schema_name}"


class Credentials(ConfigurableResource):
    user: str
    region: str = "eu"


def test_resource_dependencies_and_configure_at_launch() -> None:
    @op
    def ask(database: Database, credentials: Credentials) -> str:
        return f"{database.query('q')} as {credentials.user}@{credentials.region}"

    @job(
        resource_defs={
            "database": Database(engine=Engine()),
            "credentials": Credentials.configure_at_launch(),
        }
    )
    def asking() -> None:
        ask()

    result = asking.execute_in_process(
        run_config={
            "resources": {
                "credentials": {"config": {"user": "ann"}},
                "database": {"config": {"schema_name": "sales"}},
            }
        }
    )
    assert result.output_for_node("ask") == "ran q in sales as ann@eu"
    with pytest.raises(DagsterInvalidConfigError, match=r"resources\.credentials\.config\.user"):
        asking.execute_in_process()


class TableLoader(InputManager):
    def load_input(self, context):  # type: ignore[no-untyped-def]
        up = context.upstream_output
        return f"table for {context.name}" + (f" after {up.step_key}" if up else "")


def test_input_managers_load_inputs_with_or_without_an_upstream_op() -> None:
    @input_manager
    def constant():  # type: ignore[no-untyped-def]
        return 41

    @input_manager
    def tables():  # type: ignore[no-untyped-def]
        return TableLoader()

    @op(ins={"n": In(input_manager_key="constant")})
    def bump(n: int) -> int:
        return n + 1

    @op
    def make() -> int:
        return 0

    @op(ins={"table": In(input_manager_key="tables")})
    def show(table: str) -> str:
        return table

    @job(resource_defs={"constant": constant, "tables": tables})
    def managed() -> None:
        bump()  # no op feeds n: the input manager loads it
        show(make())  # an op feeds table, and the input manager still loads it
        show.alias("show_alone")()

    result = managed.execute_in_process()
    assert result.output_for_node("bump") == 42
    assert result.output_for_node("show") == "table for table after make"
    assert result.output_for_node("show_alone") == "table for table"


def test_outputs_give_their_io_manager_config() -> None:
    written: dict[str, object] = {}

    class TableManager(IOManager):
        def handle_output(self, context, obj):  # type: ignore[no-untyped-def]
            written[context.config["table"]] = obj

        def load_input(self, context):  # type: ignore[no-untyped-def]
            return written[context.upstream_output.config["table"]]

    @io_manager(output_config_schema={"table": str})
    def table_manager(_):  # type: ignore[no-untyped-def]
        return TableManager()

    @op
    def produce() -> int:
        return 9

    @op
    def consume(n: int) -> int:
        return n * 2

    @job(resource_defs={"io_manager": table_manager})
    def tables() -> None:
        consume(produce())

    config = {
        "ops": {
            "produce": {"outputs": {"result": {"table": "raw"}}},
            "consume": {"outputs": {"result": {"table": "doubled"}}},
        }
    }
    assert tables.execute_in_process(run_config=config).success
    assert written == {"raw": 9, "doubled": 18}
    bad = {"ops": {"produce": {"outputs": {"result": {"table": 1}}}}}
    with pytest.raises(DagsterInvalidConfigError, match="outputs"):
        tables.execute_in_process(run_config=bad)
