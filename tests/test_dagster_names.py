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
    BoolSource,
    DagsterError,
    DagsterExecutionStepExecutionError,
    DagsterInvalidConfigError,
    DagsterInvalidDefinitionError,
    DagsterInvalidSubsetError,
    DagsterInvariantViolationError,
    DagsterTypeCheckDidNotPass,
    DagsterUnknownResourceError,
    Definitions,
    Enum,
    EnumValue,
    Field,
    Int,
    IntSource,
    Noneable,
    OpExecutionContext,
    Permissive,
    RepositoryDefinition,
    Selector,
    Shape,
    String,
    StringSource,
    definitions,
    file_relative_path,
    get_dagster_logger,
    graph,
    job,
    op,
    repository,
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


def test_a_missing_resource_is_dagster_unknown_resource_error() -> None:
    @op(required_resource_keys={"warehouse"})
    def needs_warehouse(context: OpExecutionContext) -> None: ...

    with pytest.raises(DagsterUnknownResourceError) as info:

        @job
        def no_warehouse() -> None:
            needs_warehouse()

        no_warehouse.execute_in_process()
    assert "warehouse" in str(info.value)


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
    assert out["note"] is None and out["extra"] is None


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
