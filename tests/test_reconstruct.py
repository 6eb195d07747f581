"""Job pointers: ``reconstructable``, ``build_reconstructable_job``, loading a pointer in this
process and in a fresh one, pointers to files, and ``execute_job`` through a pointer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from orchestrator import (
    Definitions,
    JobPointer,
    ReconstructableJob,
    ReconstructionError,
    ResourceDefinition,
    build_reconstructable_job,
    execute_job,
    graph,
    job,
    reconstructable,
)
from orchestrator.definitions.reconstruct import CodeLocation, load_file, load_job
from orchestrator.plan.build import build_plan
from orchestrator.storage.base import Instance, RunStatus
from tests import fixtures
from tests.conftest import REPO_ROOT

PLAN_IN_FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    from orchestrator.definitions.reconstruct import JobPointer
    from orchestrator.plan.build import build_plan

    job = JobPointer.from_dict(json.loads(sys.argv[1])).load()
    print(build_plan(job)[0].to_json())
    """
)


def plan_in_fresh_process(pointer: JobPointer) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", PLAN_IN_FRESH_PROCESS, pointer.to_json()],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def assert_no_absolute_path(pointer: JobPointer) -> None:
    text = pointer.to_json()
    assert str(REPO_ROOT) not in text
    assert not any(os.path.isabs(s) for s in strings_in(json.loads(text)))


@pytest.fixture
def in_repo_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(REPO_ROOT)
    return REPO_ROOT


# -- making pointers ---------------------------------------------------------------------------


def test_reconstructable_job_decorated_at_module_level() -> None:
    recon = reconstructable(fixtures.do_stuff)

    assert isinstance(recon, ReconstructableJob)
    assert recon.pointer.to_dict() == {
        "location": {"module": "tests.fixtures"},
        "attribute": "do_stuff",
        "job_name": "do_stuff",
        "call": False,
        "args": [],
        "kwargs": {},
        "op_selection": None,
    }
    assert recon.get_definition() is fixtures.do_stuff
    assert recon.job_name == "do_stuff"
    assert reconstructable(recon) is recon


def test_reconstructable_module_level_to_job_job() -> None:
    recon = reconstructable(fixtures.chain_job)

    assert recon.pointer.attribute == "chain_job"
    assert recon.pointer.location.module == "tests.fixtures"
    assert not recon.pointer.call
    assert_no_absolute_path(recon.pointer)


def test_reconstructable_factory_function() -> None:
    recon = reconstructable(fixtures.make_chain_job)

    assert recon.pointer.attribute == "make_chain_job" and recon.pointer.call
    loaded = recon.get_definition()
    assert loaded.name == "factory_chain_job"
    assert list(loaded.op_nodes) == ["return_five", "add_one", "add_one_2"]


def test_build_reconstructable_job_calls_the_factory_with_json_arguments() -> None:
    recon = build_reconstructable_job("tests.fixtures", "make_sized_job", (3,), {"name": "three"})

    pointer = recon.to_dict()
    assert pointer["args"] == [3] and pointer["kwargs"] == {"name": "three"}
    job_def = recon.get_definition()
    assert job_def.name == "three"
    assert len(job_def.op_nodes) == 4
    assert job_def.execute_in_process().output_for_node("add_one_3") == 4


def test_build_reconstructable_job_rejects_arguments_that_are_not_json() -> None:
    with pytest.raises(ReconstructionError, match="JSON"):
        build_reconstructable_job("tests.fixtures", "make_sized_job", (object(),))


def test_a_subset_keeps_its_selection_in_the_pointer() -> None:
    subset = fixtures.my_job.get_subset(["*add_two"])

    recon = reconstructable(subset)

    assert recon.pointer.op_selection == ("*add_two",)
    loaded = JobPointer.from_dict(json.loads(recon.pointer.to_json())).load()
    assert list(loaded.op_nodes) == ["return_one", "add_two"]
    assert reconstructable(fixtures.my_job).get_subset(["add_two"]).pointer.op_selection == (
        "add_two",
    )


def test_a_lambda_is_rejected_with_what_to_do() -> None:
    with pytest.raises(ReconstructionError) as info:
        reconstructable(lambda: fixtures.do_stuff)

    message = str(info.value)
    assert "lambda" in message
    assert "module level" in message and "build_reconstructable_job" in message


def test_a_nested_function_is_rejected_with_what_to_do() -> None:
    def make_job():
        return fixtures.do_stuff

    with pytest.raises(ReconstructionError) as info:
        reconstructable(make_job)

    message = str(info.value)
    assert "make_job" in message and "inside another function" in message
    assert "Move it to module level" in message and "build_reconstructable_job" in message


def test_a_job_made_inside_a_function_is_rejected_with_what_to_do() -> None:
    @job
    def local_job():
        fixtures.return_one()

    with pytest.raises(ReconstructionError, match="module level"):
        reconstructable(local_job)


def test_a_job_from_the_repl_is_rejected_with_what_to_do() -> None:
    code = textwrap.dedent(
        """
        from orchestrator import job, op, reconstructable, ReconstructionError

        @op
        def hello():
            return 1

        @job
        def repl_job():
            hello()

        try:
            reconstructable(repl_job)
        except ReconstructionError as exc:
            print(exc)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr
    assert "interactive session" in proc.stdout
    assert "build_reconstructable_job" in proc.stdout


# -- loading pointers --------------------------------------------------------------------------


def test_pointer_round_trips_through_json_and_loads() -> None:
    pointer = reconstructable(fixtures.chain_job).pointer

    again = JobPointer.from_dict(json.loads(pointer.to_json()))

    assert again == pointer
    assert again.load().name == "chain_job"
    assert load_job(pointer.to_dict()) is load_job(pointer)


def test_pointer_to_definitions_applies_its_resources() -> None:
    pointer = JobPointer.from_dict(
        {"location": {"module": "tests.fixtures"}, "attribute": "defs", "job_name": "my_job"}
    )

    loaded = pointer.load()

    assert loaded.name == "my_job"
    assert loaded.execute_in_process().output_for_node("multi_three") == 9


def test_a_job_resolved_from_definitions_rebuilds_with_its_resources() -> None:
    resolved = fixtures.located.get_job_def("server_job")

    recon = reconstructable(resolved)

    loaded = JobPointer.from_dict(json.loads(recon.pointer.to_json())).load()
    assert loaded.name == "server_job"
    assert loaded.executor_def is resolved.executor_def
    assert loaded.execute_in_process().output_for_node("ping_server") == "shared"
    assert plan_in_fresh_process(recon.pointer) == build_plan(resolved)[0].to_json()


def test_a_subset_of_a_job_resolved_from_definitions_points_at_the_definitions() -> None:
    subset = fixtures.located.get_job_def("server_job").get_subset(["ping_server"])

    recon = reconstructable(subset)

    assert recon.pointer == JobPointer(
        CodeLocation(module="tests.fixtures"),
        "located",
        job_name="server_job",
        op_selection=("ping_server",),
    )
    loaded = JobPointer.from_dict(json.loads(recon.pointer.to_json())).load()
    assert loaded.op_selection == ["ping_server"]
    assert loaded.execute_in_process().output_for_node("ping_server") == "shared"


def test_a_job_from_definitions_made_inside_a_function_says_what_to_do() -> None:
    local_defs = Definitions(
        jobs=[fixtures.server_job],
        resources={"server": ResourceDefinition.hardcoded_resource("local")},
    )

    with pytest.raises(ReconstructionError, match="Assign the Definitions at module level"):
        reconstructable(local_defs.get_job_def("server_job"))


def test_stale_pointers_say_what_is_wrong() -> None:
    location = {"module": "tests.fixtures"}
    with pytest.raises(ReconstructionError, match="no attribute 'gone'"):
        JobPointer.from_dict({"location": location, "attribute": "gone"}).load()
    with pytest.raises(ReconstructionError, match="expected 'other'"):
        JobPointer.from_dict(
            {"location": location, "attribute": "do_stuff", "job_name": "other"}
        ).load()
    with pytest.raises(ReconstructionError, match="not a job"):
        JobPointer.from_dict({"location": location, "attribute": "add_one"}).load()


@pytest.mark.parametrize(
    "recon",
    [
        pytest.param(reconstructable(fixtures.plan_job), id="module-attribute"),
        pytest.param(reconstructable(fixtures.do_stuff), id="job-decorator"),
        pytest.param(reconstructable(fixtures.make_chain_job), id="factory"),
        pytest.param(
            build_reconstructable_job("tests.fixtures", "make_sized_job", [2], {"name": "two"}),
            id="build-reconstructable",
        ),
        pytest.param(reconstructable(fixtures.my_job.get_subset(["*add_two"])), id="subset"),
    ],
)
def test_a_job_rebuilt_in_a_fresh_process_has_the_same_plan(recon: ReconstructableJob) -> None:
    here = build_plan(recon.get_definition())[0].to_json()

    assert plan_in_fresh_process(recon.pointer) == here
    assert_no_absolute_path(recon.pointer)


def test_a_job_loaded_from_a_file_points_at_the_relative_file(in_repo_root: Path) -> None:
    module = load_file(str(in_repo_root / "tests" / "fixtures.py"))

    recon = reconstructable(module.plan_job)

    assert recon.pointer.location.to_dict() == {"file": "tests/fixtures.py"}
    assert recon.pointer.attribute == "plan_job"
    assert_no_absolute_path(recon.pointer)
    assert load_file("tests/fixtures.py") is module
    assert plan_in_fresh_process(recon.pointer) == build_plan(module.plan_job)[0].to_json()


def test_a_factory_loaded_from_a_file_points_at_the_relative_file(in_repo_root: Path) -> None:
    module = load_file("tests/fixtures.py")

    recon = reconstructable(module.make_chain_job)

    assert recon.pointer.location.to_dict() == {"file": "tests/fixtures.py"}
    assert recon.pointer.call
    assert plan_in_fresh_process(recon.pointer) == (build_plan(recon.get_definition())[0].to_json())


# -- execute_job -------------------------------------------------------------------------------

IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def test_execute_job_runs_a_reconstructable_job_and_reads_outputs_from_files(
    orchestrator_home: Path,
) -> None:
    instance = Instance.ephemeral()
    recon = reconstructable(fixtures.do_stuff)

    result = execute_job(recon, instance=instance, run_config=IN_PROCESS, tags={"k": "v"})

    assert result.success
    assert result.output_for_node("add_one") == 6
    stored = orchestrator_home / "storage" / result.run_id / "add_one" / "result.pickle"
    assert stored.is_file()
    run = instance.get_run(result.run_id)
    assert run.status == RunStatus.SUCCESS
    assert run.pointer == recon.to_dict()
    assert run.tags == {"k": "v"}


def test_execute_job_with_op_selection_and_a_nested_job() -> None:
    result = execute_job(
        reconstructable(fixtures.plan_job),
        run_config={**fixtures.plan_job.default_run_config, **IN_PROCESS},
        op_selection=["op_a", "op_b", "op_c", "outer.inner"],  # dotted: literal names
    )

    assert result.success
    assert result.output_for_node("outer.inner.scale") == 26
    assert result.run.op_selection == ("op_a", "op_b", "op_c", "outer.inner")
    assert {e.step_key for e in result.get_step_success_events()} == {
        "op_a",
        "op_b",
        "op_c",
        "outer.inner.offset",
        "outer.inner.scale",
    }


def test_execute_job_of_a_factory_job() -> None:
    result = execute_job(reconstructable(fixtures.make_chain_job), run_config=IN_PROCESS)

    assert result.output_for_node("add_one_2") == 7


def test_execute_job_of_a_job_that_cannot_be_reconstructed_fails_before_running() -> None:
    @graph
    def local_graph():
        fixtures.return_one()

    with pytest.raises(ReconstructionError):
        execute_job(local_graph.to_job(name="local"), run_config=IN_PROCESS)


def test_code_location_files_have_one_spelling() -> None:
    from orchestrator.definitions.reconstruct import CodeLocation

    assert CodeLocation(file="./examples/../examples/basic_job.py") == CodeLocation(
        file="examples/basic_job.py"
    )


def test_job_applied_to_a_function_of_another_module_points_at_its_own_module() -> None:
    from tests import shared_body_jobs

    recon = reconstructable(shared_body_jobs.shared)
    assert recon.pointer.location.module == "tests.shared_body_jobs"
    assert recon.pointer.attribute == "shared"
