"""Op selection on jobs with graphs, as Dagster does it: clauses walk the job's top-level nodes (a
graph is one node and runs whole), dotted names select inside graphs literally, and inputs of a
selected graph are given at the graph's level. The same rules in execute_in_process,
get_subset, execute_job, the CLI and re-execution."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from orchestrator import (
    DagsterInvalidSubsetError,
    Instance,
    ReexecutionOptions,
    execute_job,
    reconstructable,
)
from orchestrator.cli.main import cli
from orchestrator.errors import MissingInputError
from tests import selection_jobs
from tests.selection_jobs import etl

OUTER = {"outer.first", "outer.inner.x", "outer.inner.y"}


def ran(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {e.step_key for e in result.get_step_success_events()}


def test_a_graph_is_one_node_for_hops_and_runs_whole() -> None:
    assert ran(etl.execute_in_process(op_selection=["+outer"])) == {"start"} | OUTER
    assert ran(etl.execute_in_process(op_selection=["*end"])) == {"start", "end"} | OUTER
    assert ran(etl.execute_in_process(op_selection=["start+"])) == {"start", "side.z"} | OUTER


def test_an_inner_op_is_selected_by_its_dotted_name_literally() -> None:
    result = etl.execute_in_process(
        op_selection=["start", "outer.first", "outer.inner"],
    )
    assert ran(result) == {"start"} | OUTER
    with pytest.raises(DagsterInvalidSubsetError, match="do not combine with dotted names"):
        etl.execute_in_process(op_selection=["*outer.inner"])
    with pytest.raises(DagsterInvalidSubsetError, match=r"'outer\.first'"):
        etl.execute_in_process(op_selection=["first"])


def test_inputs_of_a_selected_graph_are_given_at_the_graph_level() -> None:
    subset = etl.get_subset(op_selection=["outer"])
    with pytest.raises(MissingInputError) as info:
        subset.execute_in_process()
    assert "ops: {outer: {inputs: {number: ...}}}" in str(info.value)

    result = subset.execute_in_process(run_config={"ops": {"outer": {"inputs": {"number": 10}}}})
    assert ran(result) == OUTER
    assert result.output_for_node("outer") == 10 + 1 + 2 + 3
    # per op inside the graph works too, and wins over the graph level
    per_op = {"outer": {"inputs": {"number": 10}, "ops": {"first": {"inputs": {"n": 100}}}}}
    result = subset.execute_in_process(run_config={"ops": per_op})
    assert result.output_for_node("outer") == 100 + 1 + 2 + 3


def test_execute_job_and_reexecution_use_the_same_rules() -> None:
    recon = reconstructable(selection_jobs.etl)
    result = execute_job(recon, op_selection=["*outer"], run_config=IN_PROCESS)
    assert ran(result) == {"start"} | OUTER
    instance = Instance.ephemeral()
    parent = execute_job(recon, instance=instance, run_config=IN_PROCESS)
    assert parent.success
    again = execute_job(
        recon,
        instance=instance,
        run_config=IN_PROCESS,
        reexecution_options=ReexecutionOptions(parent.run_id, step_selection=("outer+",)),
    )
    assert again.success
    assert ran(again) == OUTER | {"end"}  # start's output is read from the parent run
    assert again.output_for_node("end") == parent.output_for_node("end")


IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def test_the_cli_selects_top_level_nodes() -> None:
    out = CliRunner().invoke(
        cli,
        [
            "job",
            "execute",
            "-m",
            "tests.selection_jobs",
            "-j",
            "etl",
            "--op-selection",
            "*outer",
            "-c",
            "tests/selection_jobs_in_process.yaml",
        ],
        catch_exceptions=False,
    )
    assert out.exit_code == 0, out.output
    for step in ("start", *sorted(OUTER)):
        assert step in out.output
    assert "side.z" not in out.output and "✓ end" not in out.output
