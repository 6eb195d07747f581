"""Pure parts of the web application, without a server: the step timeline folded from
events, the run config JSON Schema and its scaffold, and YAML line lookup for config paths."""

from __future__ import annotations

from orchestrator import Config, graph, job, op
from orchestrator.events import EventType, make_event
from orchestrator.execution.loop import ATTEMPT_LOST, LAUNCHED, WAITING_FOR_SLOT
from orchestrator.web.config_schema import run_config_schema, scaffold
from orchestrator.web.launch import yaml_line
from orchestrator.web.timeline import step_timelines


def _engine(kind: str, at: float, attempt: int) -> object:
    return make_event(
        EventType.ENGINE_EVENT, "r", "", step_key="s", timestamp=at, kind=kind, attempt=attempt
    )


def test_timeline_shows_waits_queues_retries_and_losses() -> None:
    events = [
        _engine(WAITING_FOR_SLOT, 1.0, 1),
        _engine(WAITING_FOR_SLOT, 1.5, 1),  # a replayed loop logs its wait again
        _engine(LAUNCHED, 2.0, 1),
        make_event(EventType.STEP_START, "r", step_key="s", timestamp=3.0, attempt=1),
        make_event(EventType.STEP_UP_FOR_RETRY, "r", step_key="s", timestamp=4.0, attempt=1),
        _engine(LAUNCHED, 5.0, 2),
        make_event(EventType.STEP_START, "r", step_key="s", timestamp=6.0, attempt=2),
        _engine(ATTEMPT_LOST, 7.0, 2),
        _engine(LAUNCHED, 8.0, 3),
        make_event(EventType.STEP_START, "r", step_key="s", timestamp=9.0, attempt=3),
        make_event(EventType.STEP_SUCCESS, "r", step_key="s", timestamp=10.0, attempt=3),
        make_event(EventType.LOG_MESSAGE, "r", step_key="s", timestamp=11.0),
        make_event(EventType.RUN_SUCCESS, "r", timestamp=12.0),
    ]
    rows = step_timelines(events)["s"]  # type: ignore[arg-type]
    assert [(r["kind"], r["start"], r["end"], r["outcome"]) for r in rows] == [
        ("waiting", 1.0, 2.0, None),
        ("queued", 2.0, 3.0, None),
        ("running", 3.0, 4.0, "retry"),
        ("queued", 5.0, 6.0, None),
        ("running", 6.0, 7.0, "lost"),
        ("queued", 8.0, 9.0, None),
        ("running", 9.0, 10.0, "success"),
    ]


def test_open_segments_close_when_the_run_ends() -> None:
    events = [
        _engine(WAITING_FOR_SLOT, 1.0, 1),
        make_event(EventType.RUN_CANCELED, "r", timestamp=5.0),
    ]
    rows = step_timelines(events)["s"]  # type: ignore[arg-type]
    assert rows == [
        {"kind": "waiting", "start": 1.0, "end": 5.0, "attempt": 1, "outcome": "stopped"}
    ]


class Inner(Config):
    path: str
    retries: int = 3


class Outer(Config):
    inner: Inner
    label: str = "x"


@op
def configured_op(config: Outer) -> int:
    return 1


@op
def free_op() -> int:
    return 2


@graph
def nested() -> int:
    return configured_op()


@job
def schema_job() -> None:
    nested()
    free_op()


def test_schema_nests_graphs_and_scaffold_fills_required_fields() -> None:
    schema = run_config_schema(schema_job)
    ops = schema["properties"]["ops"]
    assert ops["required"] == ["nested"]
    inner = ops["properties"]["nested"]["properties"]["ops"]["properties"]["configured_op"]
    config = inner["properties"]["config"]
    assert config["required"] == ["inner"]
    assert config["properties"]["inner"]["required"] == ["path"]  # $ref inlined
    assert "free_op" not in ops["properties"]
    filled = scaffold({}, schema)
    assert filled == {
        "ops": {"nested": {"ops": {"configured_op": {"config": {"inner": {"path": ""}}}}}}
    }
    given = {"ops": {"nested": {"ops": {"configured_op": {"config": {"inner": {"retries": 5}}}}}}}
    kept = scaffold(given, schema)
    assert kept["ops"]["nested"]["ops"]["configured_op"]["config"]["inner"] == {
        "retries": 5,
        "path": "",
    }
    subset = run_config_schema(schema_job.get_subset(["free_op"]))
    assert "ops" not in subset["properties"]


def test_yaml_line_of_a_config_path() -> None:
    text = "ops:\n  a:\n    config:\n      x: 1\n\n  b: {}\n"
    assert yaml_line(text, "ops.a.config.x") == 4
    assert yaml_line(text, "ops.a.config.missing") == 3  # where the missing key belongs
    assert yaml_line(text, "ops.b.config") == 6
    assert yaml_line(text, "") == 1
    assert yaml_line("ops: [", "ops") is None
    assert yaml_line(None, "ops") is None
