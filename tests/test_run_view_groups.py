"""Mapped steps grouped by op (``process[*]``) in ``orchestrator run show``, its ``--json`` and
the run detail API (:mod:`orchestrator.views.groups`).

The grouping is tested first as pure functions of a plan and events (made here, as the loop
writes them); then real runs of ``tests/dynamic_view_jobs.py`` (five mapping keys, one of
which fails; a dynamic output with no key) are executed with ``job execute`` onto the session's
Valkey under this test's own key prefix (as in ``tests/test_cli_json.py``) and shown by
``run show`` and by the API's ``run_detail``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from orchestrator.cli.main import cli
from orchestrator.cli.steps_table import MAX_LISTED_FAILURES, steps_table
from orchestrator.events import Event, EventType, make_event
from orchestrator.execution.loop import LAUNCHED, MAPPING_RESOLVED
from orchestrator.settings import Settings
from orchestrator.storage.redis import RedisInstance
from orchestrator.views.groups import StepGroup, summarize_run
from orchestrator.views.steps import StepStatus, plan_step_keys
from orchestrator.web.api_runs import run_detail
from orchestrator.web.state import Catalog, WebState

REPO_ROOT = Path(__file__).resolve().parent.parent

PLAN = {
    "job_name": "fan_out",
    "steps": [
        {"key": "emit"},
        {"key": "process[?]", "mapped_over": [["emit", "result"]]},
        {"key": "merge"},
    ],
}


def resolved(producer: str, keys: list[str] | None, *handles: str) -> Event:
    """The loop's record that a dynamic output of ``producer`` made steps of ``handles``."""
    return make_event(
        EventType.ENGINE_EVENT,
        "r",
        "resolved",
        step_key=producer,
        kind=MAPPING_RESOLVED,
        output_name="result",
        mapping_keys=keys,
        steps=list(handles),
    )


def ran(key: str, start: float, outcome: EventType | None = EventType.STEP_SUCCESS) -> list[Event]:
    """A step launched and started at ``start``; with an outcome one second later."""
    events = [
        make_event(EventType.ENGINE_EVENT, "r", step_key=key, timestamp=start, kind=LAUNCHED),
        make_event(EventType.STEP_START, "r", step_key=key, timestamp=start, attempt=1),
    ]
    if outcome is not None:
        events.append(make_event(outcome, "r", key, step_key=key, timestamp=start + 1, attempt=1))
    return events


def only_group(events: list[Event], plan: dict[str, Any] | None = None) -> StepGroup:
    (group,) = summarize_run(events, json.dumps(plan) if plan else None).groups
    return group


def labels(events: list[Event], plan: dict[str, Any] | None = None) -> list[str]:
    rows = summarize_run(events, json.dumps(plan) if plan else None).rows()
    return [r.label if isinstance(r, StepGroup) else r.step_key for r in rows]


# -- grouping, without a server ----------------------------------------------------------------


def test_plan_templates_are_not_steps_but_groups_waiting_for_their_keys() -> None:
    # Given a launched run's plan, no event yet
    assert plan_step_keys(json.dumps(PLAN)) == ["emit", "merge"]

    run = summarize_run([], json.dumps(PLAN))

    # Then the template is a group in its place, not a step "process[?]" not started
    assert [s.step_key for s in run.steps] == ["emit", "merge"]
    assert labels([], PLAN) == ["emit", "process[*]", "merge"]
    (group,) = run.groups
    assert (group.status, group.size) == (StepStatus.NOT_STARTED, 0)
    assert group.note == "waiting for the mapping keys of 'emit'"


def test_resolved_keys_count_steps_that_have_not_started_yet() -> None:
    # Given emit made 4 keys: a succeeded, b failed, c runs, d has no event yet
    events = [
        *ran("emit", 1.0),
        resolved("emit", ["a", "b", "c", "d"], "process"),
        *ran("process[a]", 3.0),
        *ran("process[b]", 3.5, EventType.STEP_FAILURE),
        *ran("process[c]", 4.0, None),
    ]

    group = only_group(events, PLAN)

    assert group.label == "process[*]" and group.step_keys == tuple(f"process[{k}]" for k in "abcd")
    assert {s.value: n for s, n in group.counts.items() if n} == {
        "succeeded": 1,
        "failed": 1,
        "running": 1,
        "not started": 1,
    }
    assert group.status is StepStatus.RUNNING  # its most active step's state
    assert (group.start_time, group.end_time) == (3.0, None)  # ends when all have
    assert [s.step_key for s in group.failed] == ["process[b]"]
    # the mapped steps stand in the plan's order, where the template was
    assert labels(events, PLAN) == ["emit", "process[*]", "merge"]


def test_a_finished_group_spans_its_steps_and_fails_if_one_failed() -> None:
    events = [
        *ran("emit", 1.0),
        resolved("emit", ["a", "b"], "process"),
        *ran("process[a]", 3.0),
        *ran("process[b]", 5.0, EventType.STEP_FAILURE),
    ]

    group = only_group(events)  # no stored plan (an in-process run): the events say it all

    assert (group.status, group.start_time, group.end_time) == (StepStatus.FAILED, 3.0, 6.0)
    assert group.duration_ms == 3000.0


def test_nothing_to_map_skips_the_group_with_its_reason() -> None:
    events = [
        *ran("emit", 1.0),
        resolved("emit", [], "process"),
        make_event(
            EventType.STEP_SKIPPED,
            "r",
            "Skipping step 'process[?]': dynamic output 'result' of 'emit' maps nothing "
            "(it produced no mapping keys)",
            step_key="process[?]",
        ),
        *ran("merge", 3.0),
    ]

    run = summarize_run(events, json.dumps(PLAN))

    (group,) = run.groups
    assert (group.status, group.size, group.unmapped) == (StepStatus.SKIPPED, 0, ("process[?]",))
    assert group.note == (
        "nothing to map: dynamic output 'result' of 'emit' produced no mapping keys"
    )
    assert labels(events, PLAN) == ["emit", "process[*]", "merge"]  # after emit, not at the end
    # the placeholder's skip stays among the steps (scripts read it), but is no step of it
    assert "process[?]" in [s.step_key for s in run.steps]
    assert "process[?]" not in [s.step_key for s in run.real_steps]


def test_nested_maps_and_ops_in_mapped_graphs_group_by_handle() -> None:
    events = [
        *ran("outer", 1.0),
        resolved("outer", ["a", "b"], "emit_inner", "g.first"),
        *ran("emit_inner[a]", 2.0),
        *ran("g.first[a]", 2.0),
        resolved("emit_inner[a]", ["x", "y"], "inner"),
        *ran("inner[a][x]", 3.0),
        *ran("inner[a][y]", 3.0),
        *ran("emit_inner[b]", 2.0),
        resolved("emit_inner[b]", [], "inner"),
        make_event(EventType.STEP_SKIPPED, "r", "Skipping", step_key="inner[b][?]"),
    ]

    groups = {g.label: g for g in summarize_run(events).groups}

    assert set(groups) == {"emit_inner[*]", "g.first[*]", "inner[*][*]"}
    inner = groups["inner[*][*]"]
    assert inner.step_keys == ("inner[a][x]", "inner[a][y]")
    assert inner.unmapped == ("inner[b][?]",) and inner.status is StepStatus.SUCCEEDED
    assert inner.note == "nothing to map for inner[b][?]"
    assert groups["g.first[*]"].producer == "outer"


def test_run_show_lists_at_most_ten_failed_steps_of_a_group() -> None:
    # Given 1,000 mapped steps of which 25 failed
    keys = [f"k{i}" for i in range(1000)]
    events = [*ran("emit", 1.0), resolved("emit", keys, "process")]
    for i, key in enumerate(keys):
        outcome = EventType.STEP_FAILURE if i % 40 == 0 else EventType.STEP_SUCCESS
        events += ran(f"process[{key}]", 2.0, outcome)

    table, listed = steps_table(summarize_run(events))
    console = Console(width=160, record=True)
    console.print(table)
    text = console.export_text()

    # Then one line for the group, the first ten failures, and how many more there are
    assert "1000 steps: 975 succeeded, 25 failed" in text
    assert listed == [f"process[k{i * 40}]" for i in range(MAX_LISTED_FAILURES)]
    assert "and 15 more failed" in text
    assert "process[k1]" not in text and len(text.splitlines()) < 20

    table, listed = steps_table(summarize_run(events), expand=True)
    assert table.row_count == 1 + 1 + 1000 and len(listed) == 25


# -- real runs, on the shared instance ---------------------------------------------------------


pytestmark = pytest.mark.usefixtures("shared_storage")  # tests.servers


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def execute(job_name: str) -> str:
    """``job execute`` of a job of ``tests.dynamic_view_jobs`` in process; its run id."""
    result = invoke("job", "execute", "-m", "tests.dynamic_view_jobs", "-j", job_name)
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("Run "), result.output
    return last.split()[1]


def step_lines(output: str) -> list[str]:
    """The steps table's rows of ``run show`` (after its header line)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Step "))
    return [line.rstrip() for line in lines[start + 2 :] if line.strip()]


def test_run_show_prints_one_line_per_mapped_op_with_its_failed_steps() -> None:
    run_id = execute("fan_out_fails")

    result = invoke("run", "show", run_id)

    assert result.exit_code == 0, result.output
    rows = step_lines(result.stdout)
    assert [row.split()[0] for row in rows] == ["emit", "process[*]", "process[c]", "merge"]
    assert rows[1].split()[1] == "failed"
    assert "5 steps: 4 succeeded, 1 failed" in rows[1]
    assert "ValueError: cannot process C" in rows[2]
    assert "upstream step 'process[c]' failed" in rows[3]
    assert "Step 'process[c]' failed:" in result.stderr  # its traceback

    expanded = step_lines(invoke("run", "show", run_id, "--steps", "all").stdout)
    assert [row.split()[0] for row in expanded] == [
        "emit",
        "process[*]",
        *(f"process[{k}]" for k in "abcde"),
        "merge",
    ]


def test_run_show_json_keeps_every_step_and_adds_the_groups() -> None:
    run_id = execute("fan_out_fails")

    result = invoke("run", "show", run_id, "--json")

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert set(shown) == {"run", "steps", "groups", "driver"}
    states = {s["step_key"]: (s["state"], s["group"]) for s in shown["steps"]}
    assert states == {
        "emit": ("succeeded", None),
        **{f"process[{k}]": ("succeeded", "process") for k in "abde"},
        "process[c]": ("failed", "process"),
        "merge": ("skipped", None),
    }
    (group,) = shown["groups"]
    assert group["group"] == "process" and group["label"] == "process[*]"
    assert (group["state"], group["step_count"]) == ("failed", 5)
    assert {k: n for k, n in group["counts"].items() if n} == {"succeeded": 4, "failed": 1}
    assert group["start_time"] <= group["end_time"]
    assert group["duration_seconds"] >= 0 and group["unmapped"] == []


def test_run_show_of_an_empty_map_says_nothing_was_mapped() -> None:
    run_id = execute("fan_out_empty")

    rows = step_lines(invoke("run", "show", run_id).stdout)
    shown = json.loads(invoke("run", "show", run_id, "--json").stdout)

    assert [row.split()[:2] for row in rows] == [
        ["emit_nothing", "succeeded"],
        ["process[*]", "skipped"],
        ["merge", "succeeded"],
    ]
    assert "nothing to map" in rows[1] and "produced no mapping keys" in rows[1]
    (group,) = shown["groups"]
    assert (group["state"], group["step_count"]) == ("skipped", 0)
    assert group["unmapped"] == ["process[?]"]
    assert group["note"].startswith("nothing to map: ")


def test_run_detail_api_has_the_groups_and_each_steps_group(
    valkey_url: str, key_prefix: str
) -> None:
    failing, empty = execute("fan_out_fails"), execute("fan_out_empty")
    instance = RedisInstance.from_url(valkey_url, key_prefix)
    try:
        state = WebState(instance, Catalog([]), Settings())
        detail = run_detail(state, instance.get_run(failing))  # type: ignore[arg-type]
        nothing = run_detail(state, instance.get_run(empty))  # type: ignore[arg-type]
    finally:
        instance.close()

    (group,) = detail["groups"]
    assert group["label"] == "process[*]" and group["counts"]["failed"] == 1
    members = [s["step_key"] for s in detail["steps"] if s["group"] == "process"]
    assert members == [f"process[{k}]" for k in "abcde"]
    assert all(s["timeline"] for s in detail["steps"] if s["group"])
    assert detail["step_counts"] == {"succeeded": 5, "failed": 1, "skipped": 1}
    # the empty map's placeholder is its group's note, not a skipped step counted
    assert nothing["step_counts"] == {"succeeded": 2}
    assert nothing["groups"][0]["state"] == "skipped"
