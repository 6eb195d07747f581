"""``orchestrator run list|show|logs|reexecute`` and ``orchestrator server ...`` (SPEC §7), on the
shared instance every command uses.

Every test stores its runs on the session's Valkey server (``ORCHESTRATOR_REDIS_URL``) under its
own key prefix, so no test starts a server of its own; one test exercises the real default, the
embedded server under a temporary ``ORCHESTRATOR_HOME``, and stops it however it ends.

Commands run in this process with ``CliRunner`` or as the installed console script in new
processes (which inherit the environment set here): a run listed by a process that did not
execute it proves it was stored in shared storage. Jobs come from ``tests/cli_jobs.py`` and from
``runs_jobs.py``, written into the test's directory and steered by environment variables.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest
from click.testing import CliRunner, Result

from orchestrator.cli.main import cli
from orchestrator.cli.run_view import log_line, short_tags
from orchestrator.embedded import EmbeddedServer
from orchestrator.events import Event, EventType, make_event
from orchestrator.execution.loop import ATTEMPT_LOST, LAUNCHED, WAITING_FOR_SLOT
from orchestrator.storage.base import RunRecord, RunStatus
from orchestrator.storage.redis import RedisInstance
from orchestrator.views.steps import StepStatus, plan_step_keys, step_summaries

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("orchestrator")
IN_PROCESS_ARGS = ["-c", "examples/in_process.yaml"]
TIMEOUT = 60  # seconds: the bound of every wait for another process

RUNS_JOBS = '''
"""Jobs of the run-command tests; environment variables steer them."""

import os
import time
from pathlib import Path

from orchestrator import in_process_executor, job, op


@op
def extract() -> int:
    return 20


@op
def transform(value: int) -> int:
    flag = Path(os.environ["CLI_RUNS_FAIL_FLAG"])
    if flag.exists():
        raise RuntimeError(f"failing while {flag.name} exists")
    return value + 1


@op
def load(context, value: int) -> int:
    context.log.info(f"loaded {value * 2}")
    return value * 2


@job(executor_def=in_process_executor, tags={"team": "data"})
def etl():
    load(transform(extract()))


@op
def wait_for_gate(context) -> str:
    context.log.info(f"waiting for the gate in run {context.run_id}")
    gate = Path(os.environ["CLI_RUNS_GATE"])
    deadline = time.monotonic() + 60
    while not gate.exists():  # the test opens the gate once it saw this run being followed
        if time.monotonic() > deadline:
            raise TimeoutError("the gate was never opened")
        time.sleep(0.01)
    return "open"


@op
def after_gate(value: str) -> str:
    return value


@job(executor_def=in_process_executor)
def gated():
    after_gate(wait_for_gate())
'''


# -- fixtures and helpers --------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("shared_storage")  # tests.servers


@pytest.fixture
def instance(valkey_url: str, key_prefix: str) -> Iterator[RedisInstance]:
    """The instance the commands of this test write to, for the test's own reads."""
    inst = RedisInstance.from_url(valkey_url, key_prefix)
    try:
        yield inst
    finally:
        inst.close()


@pytest.fixture
def jobs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory holding ``runs_jobs.py``, made the working directory; the failure
    flag and the gate are files in it (neither exists yet)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "runs_jobs.py").write_text(RUNS_JOBS)
    monkeypatch.setenv("CLI_RUNS_FAIL_FLAG", str(project / "fail.flag"))
    monkeypatch.setenv("CLI_RUNS_GATE", str(project / "gate"))
    monkeypatch.chdir(project)
    return project


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def execute(*args: str) -> tuple[Result, str]:
    """``job execute`` here; returns the result and the run id from its last line."""
    result = invoke("job", "execute", *args)
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("Run "), result.output
    return result, last.split()[1]


def command(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """The installed console script in a new process, with this test's environment."""
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT
    )


class Lines:
    """The lines a process prints, read by a thread so waiting for one has a deadline."""

    def __init__(self, stream: IO[str]):
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, *texts: str) -> str:
        """The first new line holding every one of ``texts``; fails at EOF or after TIMEOUT."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                pytest.fail(f"output ended without a line holding {texts}: {self.seen}")
            self.seen.append(line)
            if all(t in line for t in texts):
                return line

    def rest(self) -> str:
        """Everything printed until the end of the stream."""
        while (line := self._queue.get(timeout=TIMEOUT)) is not None:
            self.seen.append(line)
        return "".join(self.seen)


@contextmanager
def started(*args: str, cwd: Path) -> Iterator[tuple[subprocess.Popen[str], Lines]]:
    """The console script running in the background, and its output (stdout and stderr) line
    by line; killed at the end if still running."""
    proc = subprocess.Popen(
        [str(SCRIPT), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        yield proc, Lines(proc.stdout)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=TIMEOUT)
        proc.stdout.close()


def row_of(output: str, run_id: str) -> list[str]:
    return next(ln.split() for ln in output.splitlines() if ln.startswith(run_id))


# -- step_summaries: a run's steps from its event log ----------------------------------------


def ev(etype: EventType, step: str | None, at: float, message: str = "", **data: object) -> Event:
    return make_event(etype, "r", message, step_key=step, timestamp=at, **data)


def err(message: str) -> dict[str, object]:
    return {"cls_name": "ValueError", "message": message, "stack": "", "cause": None}


def test_step_summaries_follow_each_step_through_its_events() -> None:
    events = [
        ev(EventType.RUN_START, None, 0.0),
        # a: waits for a slot, runs, fails once, runs again and succeeds
        ev(EventType.ENGINE_EVENT, "a", 1.0, "Step 'a' waits for db=1", kind=WAITING_FOR_SLOT),
        ev(EventType.ENGINE_EVENT, "a", 2.0, kind=LAUNCHED, attempt=1),
        ev(EventType.STEP_START, "a", 2.0, attempt=1),
        ev(EventType.STEP_UP_FOR_RETRY, "a", 3.0, attempt=1, error=err("flaky")),
        ev(EventType.ENGINE_EVENT, "a", 4.0, kind=LAUNCHED, attempt=2),
        ev(EventType.STEP_START, "a", 4.0, attempt=2),
        ev(EventType.STEP_SUCCESS, "a", 4.5, attempt=2),
        ev(EventType.HOOK_COMPLETED, "a", 4.6),
        # b: fails for good
        ev(EventType.STEP_START, "b", 5.0, attempt=1),
        ev(EventType.STEP_FAILURE, "b", 5.25, attempt=1, error=err("bad row")),
        # c: skipped because b failed
        ev(EventType.STEP_SKIPPED, "c", 5.3, "Skipping step 'c': upstream step 'b' failed"),
        # d: its attempt was lost; a new one is coming
        ev(EventType.ENGINE_EVENT, "d", 6.0, kind=LAUNCHED, attempt=1),
        ev(EventType.ENGINE_EVENT, "d", 7.0, "Attempt 1 of 'd' was lost", kind=ATTEMPT_LOST),
    ]

    steps = {s.step_key: s for s in step_summaries(events, ["e", "a", "b", "c", "d"])}

    assert list(steps) == ["e", "a", "b", "c", "d"]
    assert steps["e"].status is StepStatus.NOT_STARTED and steps["e"].attempts == 0
    a = steps["a"]
    assert (a.status, a.attempts, a.error) == (StepStatus.SUCCEEDED, 2, None)
    assert a.duration_ms == 2500.0  # first start to success, the retry included
    b = steps["b"]
    assert (b.status, b.attempts, b.error) == (StepStatus.FAILED, 1, "ValueError: bad row")
    assert b.duration_ms == 250.0
    assert (steps["c"].status, steps["c"].note) == (StepStatus.SKIPPED, "upstream step 'b' failed")
    assert steps["c"].duration_ms is None
    assert (steps["d"].status, steps["d"].note) == (
        StepStatus.UP_FOR_RETRY,
        "Attempt 1 of 'd' was lost",
    )


def test_step_summaries_of_steps_in_progress() -> None:
    events = [
        ev(EventType.ENGINE_EVENT, "slow", 1.0, "Step 'slow' waits", kind=WAITING_FOR_SLOT),
        ev(EventType.STEP_START, "busy", 1.0, attempt=1),
        ev(EventType.STEP_START, "retry", 1.0, attempt=1),
        ev(EventType.STEP_UP_FOR_RETRY, "retry", 2.0, attempt=1, error=err("try again")),
    ]

    steps = {s.step_key: s for s in step_summaries(events)}

    assert (steps["slow"].status, steps["slow"].note) == (
        StepStatus.WAITING_FOR_SLOT,
        "Step 'slow' waits",
    )
    assert steps["busy"].status is StepStatus.RUNNING and steps["busy"].duration_ms is None
    assert (steps["retry"].status, steps["retry"].error) == (
        StepStatus.UP_FOR_RETRY,
        "ValueError: try again",
    )


def test_step_summaries_ignore_late_events_of_an_earlier_attempt() -> None:
    events = [
        ev(EventType.STEP_START, "a", 1.0, attempt=1),
        ev(EventType.STEP_UP_FOR_RETRY, "a", 2.0, attempt=1, error=err("lost")),
        ev(EventType.STEP_START, "a", 3.0, attempt=2),
        ev(EventType.STEP_FAILURE, "a", 3.5, attempt=1, error=err("late duplicate")),
        ev(EventType.STEP_SUCCESS, "a", 4.0, attempt=2),
        ev(EventType.STEP_FAILURE, "a", 5.0, attempt=2, error=err("after the end")),
    ]

    (a,) = step_summaries(events)

    assert (a.status, a.attempts, a.error) == (StepStatus.SUCCEEDED, 2, None)


def test_plan_step_keys_read_a_stored_plan() -> None:
    assert plan_step_keys('{"steps": [{"key": "a"}, {"key": "b"}]}') == ["a", "b"]
    assert plan_step_keys(None) == [] and plan_step_keys("not json") == []
    assert plan_step_keys("[1, 2]") == []


def test_short_tags_and_log_lines() -> None:
    assert short_tags({}) == ""
    assert short_tags({"team": "data", "parent_run_id": "0123456789abcdef0123"}) == (
        "parent_run_id=01234567…, team=data"
    )
    assert short_tags({f"k{i}": "v" for i in range(20)}, width=20) == "k0=v, k1=v, k10=v +17 more"

    line = log_line(ev(EventType.LOG_MESSAGE, "load", 0.0, "hello", level="WARNING")).plain
    assert line.split()[2:] == ["LOG_MESSAGE", "load", "WARNING", "hello"]


# -- run list --------------------------------------------------------------------------------


def test_run_list_in_a_new_process_shows_a_run_executed_with_the_multiprocess_executor() -> None:
    # Given a run executed with the job's default executor (multiprocess)
    executed, run_id = execute("-m", "tests.cli_jobs", "-j", "add_job")
    assert executed.exit_code == 0, executed.output

    # When another process lists the runs
    listed = command("run", "list")

    # Then it shows that run, succeeded
    assert listed.returncode == 0, listed.stderr
    assert row_of(listed.stdout, run_id)[1:3] == ["add_job", "SUCCESS"]


def test_run_list_filters_by_job_status_and_tag_newest_first() -> None:
    _, ok = execute("-m", "tests.cli_jobs", "-j", "add_job", *IN_PROCESS_ARGS)
    _, failed = execute(
        "-m", "tests.cli_jobs", "-j", "failing_job", *IN_PROCESS_ARGS, "--tags", '{"team": "a"}'
    )
    _, newest = execute(
        "-m", "tests.cli_jobs", "-j", "add_job", *IN_PROCESS_ARGS, "--tags", '{"team": "b"}'
    )

    def listed(*args: str) -> list[str]:
        result = invoke("run", "list", *args)
        assert result.exit_code == 0, result.output
        return [ln.split()[0] for ln in result.stdout.splitlines()[2:] if ln.strip()]

    assert listed() == [newest, failed, ok]
    assert listed("--job", "add_job") == [newest, ok]
    assert listed("--status", "FAILURE") == [failed]
    assert listed("--status", "success", "--status", "failure") == [newest, failed, ok]
    assert listed("--tag", "team=a") == [failed]
    assert listed("--tag", "team=a", "--job", "add_job") == []
    assert listed("--limit", "1")[0] == newest
    assert "the newest 1 runs" in invoke("run", "list", "--limit", "1").stdout
    assert invoke("run", "list", "--job", "nope").stdout.strip() == "No runs found."

    row = row_of(invoke("run", "list").stdout, failed)
    assert row[1:3] == ["failing_job", "FAILURE"] and row[-1] == "team=a"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--status", "DONE"],
            "unknown status 'DONE'; valid: QUEUED, STARTING, STARTED, SUCCESS, FAILURE, "
            "CANCELING, CANCELED",
        ),
        (["--tag", "team"], "expected KEY=VALUE"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_run_list_bad_input_exits_2(args: list[str], expected: str) -> None:
    result = invoke("run", "list", *args)

    assert result.exit_code == 2
    assert expected in result.stderr


# -- run show and run logs -------------------------------------------------------------------


def test_run_show_gives_the_run_and_each_step_with_its_state_and_error(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("execution:\n  config:\n    in_process: {}\n")
    _, run_id = execute(
        "-m", "tests.cli_jobs", "-j", "failing_job", "-c", str(config), "--tags", '{"team": "x"}'
    )

    shown = command("run", "show", run_id)

    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    for label, value in [
        ("Run", run_id),
        ("Job", "failing_job"),
        ("Status", "FAILURE"),
        ("Code location", "module tests.cli_jobs"),
        ("Tags", "team=x"),
    ]:
        assert f"{label} {value}" in [" ".join(ln.split()) for ln in out.splitlines()], label
    assert "Run config:\n  execution:\n    config:\n      in_process: {}" in out
    steps = {ln.split()[0]: ln.split()[1:] for ln in out.split("Details")[1].splitlines()[2:]}
    assert steps["return_five"][:2] == ["succeeded", "1"]
    assert steps["independent"][:2] == ["succeeded", "1"]
    assert steps["explode"][:2] == ["failed", "1"]
    assert "ValueError: boom at 5" in " ".join(steps["explode"])
    assert steps["after_explode"][0] == "skipped"
    assert "upstream step 'explode' failed" in " ".join(steps["after_explode"])
    # The op's own traceback of the failed step, on stderr
    assert 'raise ValueError(f"boom at {arg}")' in shown.stderr


def test_run_show_of_a_queued_run_lists_its_planned_steps_as_not_started(
    instance: RedisInstance,
) -> None:
    # Given a run queued for the coordinators, which stored its plan and has no step events
    instance.create_run(RunRecord("queued-1", "add_job", RunStatus.QUEUED, {}, {}))
    plan = {"job_name": "add_job", "steps": [{"key": "return_five"}, {"key": "add_one"}]}
    instance.client.set(instance.keys.run_plan("queued-1"), json.dumps(plan))

    shown = invoke("run", "show", "queued-1")

    assert shown.exit_code == 0, shown.output
    assert "Status QUEUED" in [" ".join(ln.split()) for ln in shown.stdout.splitlines()]
    rows = [ln.split() for ln in shown.stdout.split("Details")[1].splitlines()[2:]]
    assert rows == [["return_five", "not", "started"], ["add_one", "not", "started"]]
    listed = invoke("run", "list", "--status", "queued")
    assert row_of(listed.stdout, "queued-1")[1:3] == ["add_job", "QUEUED"]


def test_run_logs_prints_the_events_in_order() -> None:
    _, run_id = execute("-m", "tests.cli_jobs", "-j", "add_job", *IN_PROCESS_ARGS)

    result = invoke("run", "logs", run_id)

    assert result.exit_code == 0, result.output
    lines = [ln.split(maxsplit=4) for ln in result.stdout.splitlines()]
    types = [parts[2] for parts in lines]
    assert types[0] == "RUN_START" and types[-1] == "RUN_SUCCESS"
    assert ["STEP_SUCCESS", "add_one"] in [parts[2:4] for parts in lines]
    assert types.index("STEP_START") < types.index("STEP_SUCCESS")


@pytest.mark.parametrize("what", [["show"], ["logs"], ["logs", "--follow"], ["reexecute"]])
def test_an_unknown_run_id_exits_2(what: list[str]) -> None:
    result = invoke("run", *what, "no-such-run")

    assert result.exit_code == 2
    assert "no run with id 'no-such-run'" in result.stderr


def test_run_logs_follow_streams_a_live_run_until_it_ends(jobs_dir: Path) -> None:
    # Given a run executing in another process, held by its first op until the gate opens
    with started("job", "execute", "-f", "runs_jobs.py", "-j", "gated", cwd=jobs_dir) as (
        executing,
        running,
    ):
        run_id = running.wait_for("waiting for the gate in run").split()[-1]

        # When following its log from a third process
        with started("run", "logs", "--follow", run_id, cwd=jobs_dir) as (follower, followed):
            # Then the events so far are printed while the run is still going...
            followed.wait_for("LOG_MESSAGE", "wait_for_gate", "waiting for the gate")
            assert executing.poll() is None and follower.poll() is None

            # ...and, once the gate opens, the rest up to the run's end; then it exits 0
            (jobs_dir / "gate").touch()
            followed.wait_for("STEP_SUCCESS", "after_gate")
            followed.wait_for("RUN_SUCCESS")
            assert follower.wait(timeout=TIMEOUT) == 0

        assert executing.wait(timeout=TIMEOUT) == 0
        assert f"Run {run_id} SUCCESS" in running.rest()


# -- run reexecute ---------------------------------------------------------------------------


def test_reexecute_from_failure_runs_the_failed_steps_with_the_parents_outputs(
    jobs_dir: Path, instance: RedisInstance
) -> None:
    # Given a run of etl whose transform failed while the flag file existed
    (jobs_dir / "fail.flag").touch()
    failed, parent_id = execute("-f", "runs_jobs.py", "-j", "etl")
    assert failed.exit_code == 1
    assert "failing while fail.flag exists" in failed.stdout

    # When the cause is gone and the run is re-executed from its failure, in a new process
    (jobs_dir / "fail.flag").unlink()
    result = command("run", "reexecute", parent_id, "--from-failure", cwd=jobs_dir)

    # Then only transform and load run; transform reads extract's output of the parent run
    assert result.returncode == 0, result.stderr
    assert "✓ transform" in result.stdout and "✓ load" in result.stdout
    assert "extract" not in result.stdout.split("\n", 1)[1]
    assert "loaded 42" in result.stdout
    child_id = result.stdout.strip().splitlines()[-1].split()[1]
    child = instance.get_run(child_id)
    assert child is not None and child.parent_run_id == parent_id
    assert child.tags["parent_run_id"] == parent_id and child.tags["team"] == "data"

    # And run show of the new run names its parent
    shown = invoke("run", "show", child_id)
    assert ["Parent", "run", parent_id] in [ln.split() for ln in shown.stdout.splitlines()]


def test_reexecute_with_an_op_selection(jobs_dir: Path) -> None:
    _, parent_id = execute("-f", "runs_jobs.py", "-j", "etl")

    result = invoke("run", "reexecute", parent_id, "--op-selection", "load")

    assert result.exit_code == 0, result.output
    assert "✓ load" in result.stdout and "✓ transform" not in result.stdout
    assert "loaded 42" in result.stdout


def test_reexecute_bad_input_exits_2(jobs_dir: Path, tmp_path: Path) -> None:
    _, succeeded = execute("-f", "runs_jobs.py", "-j", "etl")

    nothing_to_do = invoke("run", "reexecute", succeeded, "--from-failure")
    assert nothing_to_do.exit_code == 2
    assert "no failed or unfinished steps" in nothing_to_do.stderr

    both = invoke("run", "reexecute", succeeded, "--from-failure", "--op-selection", "load")
    assert both.exit_code == 2
    assert "not both" in both.stderr

    unknown_op = invoke("run", "reexecute", succeeded, "--op-selection", "lod")
    assert unknown_op.exit_code == 2
    assert "'lod'" in unknown_op.stderr

    # From a directory where the parent's code location (runs_jobs.py) does not resolve
    elsewhere = command("run", "reexecute", succeeded, cwd=tmp_path)
    assert elsewhere.returncode == 2
    assert "file runs_jobs.py" in elsewhere.stderr
    assert "Re-execute from the directory the run was launched in" in elsewhere.stderr
    assert "Traceback" not in elsewhere.stderr


# -- the shared instance: unreachable servers, the embedded default ---------------------------


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["run", "list"], "run list"),
        (["job", "execute", "-m", "tests.cli_jobs", "-j", "add_job"], "job execute"),
    ],
)
def test_an_unreachable_redis_exits_2_naming_its_url(
    monkeypatch: pytest.MonkeyPatch, args: list[str], where: str
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_REDIS_URL", "redis://:s3cret@127.0.0.1:1/0")

    result = invoke(*args)

    assert result.exit_code == 2, where
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0 (ORCHESTRATOR_REDIS_URL)" in (
        result.stderr
    )
    assert "s3cret" not in result.output and "Traceback" not in result.output


def test_a_malformed_redis_url_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_REDIS_URL", "localhost:6379")

    result = invoke("run", "list")

    assert result.exit_code == 2
    assert "ORCHESTRATOR_REDIS_URL is not a valid Redis URL: localhost:6379" in result.stderr


def test_server_status_says_a_configured_url_is_used_instead(valkey_url: str) -> None:
    result = invoke("server", "status")

    assert result.exit_code == 0
    assert f"ORCHESTRATOR_REDIS_URL is set ({valkey_url})" in result.stdout
    assert "the embedded server is not used" in result.stdout
    assert "Embedded server not running" in result.stdout


@pytest.fixture
def embedded_default(orchestrator_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No Redis URL: commands use the embedded server of this test's ORCHESTRATOR_HOME, which
    is stopped at the end whatever happened."""
    monkeypatch.delenv("ORCHESTRATOR_REDIS_URL")
    monkeypatch.delenv("ORCHESTRATOR_KEY_PREFIX")
    try:
        yield orchestrator_home
    finally:
        EmbeddedServer(orchestrator_home).stop()


def test_embedded_server_keeps_runs_across_processes_and_restarts(embedded_default: Path) -> None:
    # Given a fresh home and no server: an example job executed with the multiprocess executor
    executed = command("job", "execute", "-f", "examples/basic_job.py", "-j", "basic_job")
    assert executed.returncode == 0, executed.stderr
    run_id = executed.stdout.strip().splitlines()[-1].split()[1]

    # Then a new process lists that run, from the embedded server the first one started
    listed = command("run", "list")
    assert listed.returncode == 0, listed.stderr
    assert row_of(listed.stdout, run_id)[1:3] == ["basic_job", "SUCCESS"]
    status = command("server", "status")
    assert "Embedded server running at redis://127.0.0.1:" in status.stdout
    assert str(embedded_default / "valkey") in status.stdout

    # When the server is stopped
    stopped = command("server", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "Stopped the embedded server (data kept in" in stopped.stdout
    assert "Embedded server not running" in command("server", "status").stdout
    assert "was not running" in command("server", "stop").stdout

    # Then the next command starts it again, and the run is still there
    again = command("run", "list")
    assert again.returncode == 0, again.stderr
    assert row_of(again.stdout, run_id)[1:3] == ["basic_job", "SUCCESS"]
    assert "already running" in command("server", "start").stdout


def test_steps_of_a_canceled_run_are_no_longer_shown_waiting() -> None:
    from orchestrator.events import EventType, make_event
    from orchestrator.views.steps import StepStatus, step_summaries

    events = [
        make_event(
            EventType.ENGINE_EVENT, "r", "waiting", step_key="a", attempt=1, kind="waiting_for_slot"
        ),
        make_event(EventType.RUN_CANCELED, "r", "Run canceled"),
    ]
    (summary,) = step_summaries(events)
    assert summary.status is StepStatus.NOT_STARTED
    assert summary.note == "never ran (run canceled)"
