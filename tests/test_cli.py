"""The command line: ``orchestrator job list`` and ``orchestrator job execute`` (SPEC §7), their
exit codes (0 success, 1 the run failed, 2 bad input) and messages, and the loading of code
locations behind them.

Runs use the in-process executor through a config file (``execution: {config: {in_process:
{}}}``); the jobs themselves keep the default executor. The code location is
``tests/cli_jobs.py``, loaded by module name and by file path from the repository root.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from orchestrator.cli.common import parse_op_selection
from orchestrator.cli.main import cli
from orchestrator.cli.progress import render_event
from orchestrator.definitions.config import deep_merge
from orchestrator.definitions.loading import find_job, jobs_in_module, load_location
from orchestrator.errors import CodeLocationError, DefinitionError
from orchestrator.events import EventType, make_event
from orchestrator.views.steps import format_duration

REPO_ROOT = Path(__file__).resolve().parent.parent
ALL_JOBS = ["add_job", "failing_job", "config_job", "regional_job", "warehouse_job"]


@pytest.fixture(autouse=True)
def in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # Code locations are named relative to the working directory, as users do.
    monkeypatch.chdir(REPO_ROOT)


@pytest.fixture(autouse=True)
def shared_storage(valkey_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Runs go to the session's Valkey under the test's own prefix, rather than to an embedded
    # server started per test (tests/test_cli_runs.py covers the embedded default).
    monkeypatch.setenv("ORCHESTRATOR_REDIS_URL", valkey_url)
    monkeypatch.setenv("ORCHESTRATOR_KEY_PREFIX", key_prefix)


def write_yaml(path: Path, data: Any) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.fixture
def in_process(tmp_path: Path) -> str:
    return write_yaml(tmp_path / "in_process.yaml", {"execution": {"config": {"in_process": {}}}})


def invoke(*args: str) -> Result:
    # catch_exceptions=False: a crash fails the test with its traceback instead of looking
    # like exit code 1.
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def execute(*args: str) -> Result:
    return invoke("job", "execute", "-m", "tests.cli_jobs", *args)


def seen_by_do_something(output: str) -> dict[str, Any]:
    line = next(ln for ln in output.splitlines() if "seen {" in ln)
    return json.loads(line.split("seen ", 1)[1])  # type: ignore[no-any-return]


# -- help -----------------------------------------------------------------------------------


def test_help_names_the_groups_and_commands() -> None:
    top = invoke("--help")
    assert top.exit_code == 0
    assert "job" in top.output and "Exit codes" in top.output

    group = invoke("job", "--help")
    assert group.exit_code == 0
    assert "execute" in group.output and "list" in group.output

    command = invoke("job", "execute", "--help")
    for option in (
        "--file",
        "--module",
        "--job",
        "--config",
        "--op-selection",
        "--partition",
        "--tags",
    ):
        assert option in command.output


# -- job list -------------------------------------------------------------------------------


@pytest.mark.parametrize("location", [["-f", "tests/cli_jobs.py"], ["-m", "tests.cli_jobs"]])
def test_job_list_shows_the_jobs_of_a_definitions(location: list[str]) -> None:
    result = invoke("job", "list", *location)

    assert result.exit_code == 0, result.output
    for name in ALL_JOBS:
        assert name in result.output
    assert "Adds one to five." in result.output
    assert "PARTITIONS" not in result.output


def test_job_list_without_definitions_lists_module_level_jobs(tmp_path: Path) -> None:
    # Given a file with two module-level jobs and no Definitions
    path = tmp_path / "plain_jobs.py"
    path.write_text(
        "from orchestrator import job, op\n"
        "@op\ndef one():\n    return 1\n"
        "@op\ndef two(x):\n    return x\n"
        "@job(description='two ops')\ndef pair():\n    two(one())\n"
        "@job\ndef single():\n    one()\n"
        "same_job = single\n"
    )

    # When listing it
    result = invoke("job", "list", "-f", str(path))

    # Then both jobs are listed once, with their op counts
    assert result.exit_code == 0, result.output
    rows = {ln.split()[0]: ln.split()[1:] for ln in result.output.splitlines()[2:] if ln.strip()}
    assert rows == {"pair": ["2", "two", "ops"], "single": ["1"]}


def test_job_list_of_a_location_without_jobs(tmp_path: Path) -> None:
    path = tmp_path / "no_jobs.py"
    path.write_text("X = 1\n")

    result = invoke("job", "list", "-f", str(path))

    assert result.exit_code == 0
    assert "No jobs found" in result.output


# -- job execute: success and failure -------------------------------------------------------


def test_execute_success_prints_each_step_and_the_run(in_process: str) -> None:
    result = execute("-j", "add_job", "-c", in_process)

    assert result.exit_code == 0, result.output
    assert "✓ return_five" in result.stdout
    assert "✓ add_one" in result.stdout
    assert result.stdout.index("✓ return_five") < result.stdout.index("✓ add_one")
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("Run ") and "SUCCESS" in last and "2 succeeded" in last
    assert result.stderr == ""


def test_execute_from_a_file_with_a_definitions(in_process: str) -> None:
    result = invoke("job", "execute", "-f", "tests/cli_jobs.py", "-j", "add_job", "-c", in_process)

    assert result.exit_code == 0, result.output
    assert "✓ add_one" in result.stdout


def test_a_failing_op_exits_1_naming_the_step_and_its_error(in_process: str) -> None:
    result = execute("-j", "failing_job", "-c", in_process)

    assert result.exit_code == 1, result.output
    # Progress: the failure, the skipped downstream step, the independent branch that ran
    assert "✗ explode  ValueError: boom at 5" in result.stdout
    assert "○ after_explode  skipped: upstream step 'explode' failed" in result.stdout
    assert "✓ independent" in result.stdout
    assert "FAILURE" in result.stdout.strip().splitlines()[-1]
    # The failing step and its error on stderr, with the op's own traceback
    assert "Step 'explode' failed: ValueError: boom at 5" in result.stderr
    assert 'raise ValueError(f"boom at {arg}")' in result.stderr


# -- bad input: exit 2 ----------------------------------------------------------------------


def test_unknown_job_exits_2_listing_the_jobs() -> None:
    result = execute("-j", "config_jb")

    assert result.exit_code == 2
    assert "no job named 'config_jb'" in result.stderr
    for name in ALL_JOBS:
        assert name in result.stderr
    assert "Did you mean: 'config_job'" in result.stderr
    assert "Traceback" not in result.output


def test_a_location_with_several_jobs_needs_a_job_name() -> None:
    result = execute()

    assert result.exit_code == 2
    assert "several jobs" in result.stderr and "-j" in result.stderr
    for name in ALL_JOBS:
        assert name in result.stderr


def test_unknown_op_in_selection_exits_2_naming_the_closest(in_process: str) -> None:
    result = execute("-j", "add_job", "-c", in_process, "--op-selection", "return_five,add_onee")

    assert result.exit_code == 2
    assert "'add_onee'" in result.stderr
    assert "Did you mean: 'add_one'" in result.stderr


@pytest.mark.parametrize(
    ("selection", "ran", "not_ran"),
    [
        (["--op-selection", "return_five"], ["return_five"], ["add_one"]),
        (["--op-selection", "return_five,add_one"], ["return_five", "add_one"], []),
        (
            ["--op-selection", "return_five", "--op-selection", "add_one"],
            ["return_five", "add_one"],
            [],
        ),
        (["--op-selection", "*add_one"], ["return_five", "add_one"], []),
    ],
)
def test_op_selection_runs_the_union_of_the_clauses(
    in_process: str, selection: list[str], ran: list[str], not_ran: list[str]
) -> None:
    result = execute("-j", "add_job", "-c", in_process, *selection)

    assert result.exit_code == 0, result.output
    for name in ran:
        assert f"✓ {name}" in result.stdout
    for name in not_ran:
        assert name not in result.stdout


def test_missing_input_of_a_selected_op_exits_2_naming_the_three_ways(in_process: str) -> None:
    result = execute("-j", "add_job", "-c", in_process, "--op-selection", "add_one")

    assert result.exit_code == 2
    message = result.stderr
    assert "'arg'" in message and "'add_one'" in message
    assert "run config" in message and "input_values" in message and "re-execute" in message


def test_missing_config_value_exits_2_with_its_path(in_process: str) -> None:
    result = execute("-j", "config_job", "-c", in_process)

    assert result.exit_code == 2
    assert "ops.do_something.config.config_param: missing required config value" in result.stderr


def test_malformed_config_value_exits_2_with_its_path(tmp_path: Path, in_process: str) -> None:
    bad = write_yaml(
        tmp_path / "bad.yaml",
        {
            "ops": {"do_something": {"config": {"config_param": "x", "count": "many"}}},
        },
    )

    result = execute("-j", "config_job", "-c", in_process, "-c", bad)

    assert result.exit_code == 2
    assert "ops.do_something.config.count: " in result.stderr


def test_unknown_config_keys_exit_2_with_their_paths(tmp_path: Path, in_process: str) -> None:
    bad = write_yaml(
        tmp_path / "bad.yaml",
        {
            "ops": {
                "do_something": {"config": {"config_param": "x", "bogus": 1}},
                "do_somthing": {"config": {}},
            },
        },
    )

    result = execute("-j", "config_job", "-c", in_process, "-c", bad)

    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert any(ln.strip().startswith("ops.do_something.config.bogus: ") for ln in lines)
    assert any(ln.strip().startswith("ops.do_somthing: ") and "do_something" in ln for ln in lines)


def test_missing_resource_exits_2(in_process: str) -> None:
    result = execute("-j", "warehouse_job", "-c", in_process)

    assert result.exit_code == 2
    assert "'warehouse'" in result.stderr


@pytest.mark.parametrize(
    "location",
    [["-m", "tests.no_such_module"], ["-f", "tests/no_such_file.py"]],
)
def test_unloadable_code_location_exits_2(location: list[str]) -> None:
    result = invoke("job", "execute", *location, "-j", "add_job")

    assert result.exit_code == 2
    assert "no_such" in result.stderr
    assert "Traceback" not in result.output


def test_a_file_that_raises_on_import_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "broken_jobs.py"
    path.write_text("raise RuntimeError('broken on purpose')\n")

    result = invoke("job", "list", "-f", str(path))

    assert result.exit_code == 2
    assert "RuntimeError: broken on purpose" in result.stderr


@pytest.mark.parametrize("args", [[], ["-f", "tests/cli_jobs.py", "-m", "tests.cli_jobs"]])
def test_exactly_one_code_location_is_required(args: list[str]) -> None:
    for command in ("list", "execute"):
        result = invoke("job", command, *args)
        assert result.exit_code == 2
        assert "-f FILE" in result.stderr


def test_bad_yaml_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("ops:\n  a: [1, 2\n  b: 3\n")
    a_list = write_yaml(tmp_path / "list.yaml", [1, 2])

    for path, expected in [
        (str(broken), f"{broken}, line 3, column 4: not valid YAML: expected ',' or ']'"),
        (a_list, "must hold a mapping"),
        (str(tmp_path / "missing.yaml"), "does not exist"),
    ]:
        result = execute("-j", "add_job", "-c", path)
        assert result.exit_code == 2, path
        assert expected in result.stderr
    # the YAML problem is one line, without the usage text or a traceback
    result = execute("-j", "add_job", "-c", str(broken))
    assert result.stderr.strip().count("\n") == 0, result.stderr


# -- run config files, tags, partitions ----------------------------------------------------


def test_several_config_files_are_merged_in_order(tmp_path: Path, in_process: str) -> None:
    # Given a base file and an override that changes one value of the same op config
    base = write_yaml(
        tmp_path / "base.yaml",
        {
            "ops": {"do_something": {"config": {"config_param": "base", "count": 1}}},
        },
    )
    override = write_yaml(
        tmp_path / "override.yaml",
        {
            "ops": {"do_something": {"config": {"count": 3}}},
        },
    )

    # When both are given, the override last
    result = execute("-j", "config_job", "-c", in_process, "-c", base, "-c", override)

    # Then the op sees the merge: the base's config_param, the override's count
    assert result.exit_code == 0, result.output
    seen = seen_by_do_something(result.stdout)
    assert (seen["config_param"], seen["count"]) == ("base", 3)


def test_tags_are_applied_to_the_run(tmp_path: Path, in_process: str) -> None:
    config = write_yaml(
        tmp_path / "c.yaml",
        {
            "ops": {"do_something": {"config": {"config_param": "x"}}},
        },
    )

    result = execute(
        "-j",
        "config_job",
        "-c",
        in_process,
        "-c",
        config,
        "--tags",
        '{"team": "data", "team/owner": "ana"}',
    )

    assert result.exit_code == 0, result.output
    assert seen_by_do_something(result.stdout)["tags"] == {"team": "data", "team/owner": "ana"}


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ('{"team": ', "not valid JSON"),
        ('["team"]', "must be a JSON object"),
        ('{"retries": 3}', "must be strings"),
    ],
)
def test_bad_tags_exit_2(in_process: str, tags: str, expected: str) -> None:
    result = execute("-j", "add_job", "-c", in_process, "--tags", tags)

    assert result.exit_code == 2
    assert "--tags" in result.stderr and expected in result.stderr


def test_partition_selects_the_partition_config() -> None:
    # The partitioned config itself picks the in-process executor.
    result = execute("-j", "regional_job", "--partition", "us")

    assert result.exit_code == 0, result.output
    assert "region us partition us" in result.stdout


def test_bad_partition_keys_exit_2(in_process: str) -> None:
    unknown = execute("-j", "regional_job", "--partition", "uss")
    assert unknown.exit_code == 2
    assert "'uss'" in unknown.stderr and "'us'" in unknown.stderr

    unpartitioned = execute("-j", "add_job", "-c", in_process, "--partition", "us")
    assert unpartitioned.exit_code == 2
    assert "not partitioned" in unpartitioned.stderr


# -- the installed command in a real process ------------------------------------------------


def run_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_console_script_executes_a_job(in_process: str) -> None:
    script = Path(sys.executable).with_name("orchestrator")

    ok = run_command(
        str(script), "job", "execute", "-m", "tests.cli_jobs", "-j", "add_job", "-c", in_process
    )
    assert ok.returncode == 0, ok.stderr
    assert "✓ add_one" in ok.stdout and "SUCCESS" in ok.stdout

    failed = run_command(
        str(script),
        "job",
        "execute",
        "-f",
        "tests/cli_jobs.py",
        "-j",
        "failing_job",
        "-c",
        in_process,
    )
    assert failed.returncode == 1, failed.stderr
    assert "Step 'explode' failed: ValueError: boom at 5" in failed.stderr

    bad = run_command(str(script), "job", "execute", "-m", "tests.cli_jobs", "-j", "nope")
    assert bad.returncode == 2
    assert "no job named 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_python_dash_m_runs_the_cli() -> None:
    result = run_command(
        sys.executable, "-m", "orchestrator.cli.main", "job", "list", "-m", "tests.cli_jobs"
    )

    assert result.returncode == 0, result.stderr
    assert "add_job" in result.stdout


# -- loading code locations -----------------------------------------------------------------


def test_find_job_gives_a_pointer_with_a_relative_file_path(tmp_path: Path) -> None:
    job_def, pointer = find_job(str(REPO_ROOT / "tests" / "cli_jobs.py"), None, "add_job")

    assert pointer.location.file == "tests/cli_jobs.py"
    assert (pointer.attribute, pointer.job_name) == ("defs", "add_job")
    assert json.loads(pointer.to_json())["location"] == {"file": "tests/cli_jobs.py"}
    assert pointer.load().name == job_def.name == "add_job"


def test_find_job_by_module_points_at_the_module() -> None:
    _, pointer = find_job(None, "tests.cli_jobs", "config_job")

    assert pointer.location.module == "tests.cli_jobs"
    assert pointer.load().name == "config_job"


def test_find_job_picks_the_only_job_without_a_name(tmp_path: Path) -> None:
    path = tmp_path / "one_job.py"
    path.write_text(
        "from orchestrator import job, op\n@op\ndef a():\n    return 1\n"
        "@job\ndef only():\n    a()\n"
    )

    job_def, pointer = find_job(str(path), None, None)

    assert job_def.name == "only"
    assert (pointer.attribute, pointer.job_name) == ("only", "only")


def test_two_jobs_with_one_name_are_a_definition_error(tmp_path: Path) -> None:
    path = tmp_path / "twins.py"
    path.write_text(
        "from orchestrator import job, op\n@op\ndef a():\n    return 1\n"
        "@job(name='twin')\ndef first():\n    a()\n"
        "@job(name='twin')\ndef second():\n    a()\n"
    )

    with pytest.raises(DefinitionError, match="two jobs are named 'twin'"):
        jobs_in_module(load_location(str(path), None))


def test_load_location_needs_exactly_one_of_file_and_module() -> None:
    with pytest.raises(CodeLocationError):
        load_location(None, None)
    with pytest.raises(CodeLocationError):
        load_location("tests/cli_jobs.py", "tests.cli_jobs")


# -- small pieces ---------------------------------------------------------------------------


def test_deep_merge_merges_mappings_and_replaces_the_rest() -> None:
    base = {"ops": {"a": {"config": {"x": 1, "y": [1]}}}, "execution": {"config": {}}}
    extra = {"ops": {"a": {"config": {"y": [2]}}, "b": {}}}

    assert deep_merge(base, extra) == {
        "ops": {"a": {"config": {"x": 1, "y": [2]}}, "b": {}},
        "execution": {"config": {}},
    }


def test_op_selection_values_are_split_on_commas() -> None:
    assert parse_op_selection(["a, b+", "*c"]) == ["a", "b+", "*c"]
    assert parse_op_selection([]) is None


def test_render_event_lines() -> None:
    retry = make_event(
        EventType.STEP_UP_FOR_RETRY,
        "r",
        "x",
        step_key="flaky",
        attempt=1,
        seconds_to_wait=0.5,
        error={"cls_name": "ValueError", "message": "nope", "stack": "", "cause": None},
    )
    rendered = render_event(retry)
    assert rendered is not None
    assert rendered.plain == "↻ flaky  attempt 1 failed (ValueError: nope); retrying in 0.5 s"
    assert render_event(make_event(EventType.STEP_START, "r", "x", step_key="a")) is None
    assert format_duration(1.5) == "1.5 ms"
    assert format_duration(4560) == "4.56 s"
    assert format_duration(125_000) == "2m 05s"
