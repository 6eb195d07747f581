"""``--json`` output of ``orchestrator run list|show|logs`` and ``concurrency list``, and the
views of :mod:`orchestrator.views` behind it.

The views are pure functions, tested first without a server. The commands then run against the
session's Valkey server under this test's own key prefix (as in ``tests/test_cli_runs.py``):
runs come from ``job execute`` of ``tests/cli_jobs.py``, leases from a real
:class:`RedisLimiter`, and ``run logs --json --follow`` runs as the console script in a new
process whose stdout is a pipe, so a line that is not flushed at once is never seen.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from click.testing import CliRunner, Result

from orchestrator.cli.main import cli
from orchestrator.concurrency.redis import LeaseInfo, RedisLimiter
from orchestrator.events import EventType, make_event
from orchestrator.execution.loop import LAUNCHED, WAITING_FOR_SLOT
from orchestrator.storage.base import RunRecord, RunStatus
from orchestrator.storage.redis import RedisInstance
from orchestrator.views.payloads import event_json, lease_json, run_json, step_json
from orchestrator.views.steps import StepStatus, StepSummary

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("orchestrator")
IN_PROCESS_ARGS = ["-c", "examples/in_process.yaml"]
TIMEOUT = 60  # seconds: the bound of every wait for another process


pytestmark = pytest.mark.usefixtures("shared_storage")  # tests.servers


@pytest.fixture
def instance(valkey_url: str, key_prefix: str) -> Iterator[RedisInstance]:
    inst = RedisInstance.from_url(valkey_url, key_prefix)
    try:
        yield inst
    finally:
        inst.close()


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def invoke_json(*args: str) -> Any:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def execute(*args: str) -> str:
    """``job execute`` of a job of ``tests.cli_jobs`` in process; returns the run id."""
    result = invoke("job", "execute", "-m", "tests.cli_jobs", *IN_PROCESS_ARGS, *args)
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("Run "), result.output
    return last.split()[1]


def stream_order(event_id: str) -> tuple[int, int]:
    millis, _, seq = event_id.partition("-")
    return int(millis), int(seq)


# -- the views, without a server -------------------------------------------------------------


def test_run_json_leaves_internal_fields_out() -> None:
    record = RunRecord(
        "r1",
        "etl",
        RunStatus.SUCCESS,
        {"team": "data"},
        {"ops": {"a": {"config": {"n": 1}}}},
        op_selection=("a*",),
        pointer={"location": {"module": "my.jobs"}, "secret": "x"},
        created_at=10.0,
        start_time=11.0,
        end_time=13.5,
        extra={"plan": "..."},
    )

    view = run_json(record)

    assert view["status"] == "SUCCESS" and view["op_selection"] == ["a*"]
    assert view["duration_seconds"] == 2.5
    assert view["code_location"] == "module my.jobs"
    assert "extra" not in view and "pointer" not in view
    json.dumps(view, allow_nan=False)


def test_step_json_names_the_state_as_run_show_does() -> None:
    step = StepSummary("load", StepStatus.WAITING_FOR_SLOT, note="waits for db=1")

    view = step_json(step)

    assert view["state"] == "waiting for slot"
    assert (view["attempts"], view["duration_seconds"], view["note"]) == (0, None, "waits for db=1")


@pytest.mark.parametrize(
    ("etype", "data", "level"),
    [
        (EventType.LOG_MESSAGE, {"level": "debug"}, "DEBUG"),
        (EventType.LOG_MESSAGE, {}, "INFO"),
        (EventType.STEP_FAILURE, {}, "ERROR"),
        (EventType.HOOK_ERRORED, {}, "ERROR"),
        (EventType.STEP_UP_FOR_RETRY, {}, "WARNING"),
        (EventType.RUN_CANCELED, {}, "WARNING"),
        (EventType.ENGINE_EVENT, {"kind": WAITING_FOR_SLOT}, "WARNING"),
        (EventType.ENGINE_EVENT, {"kind": LAUNCHED}, "INFO"),
        (EventType.STEP_SUCCESS, {}, "INFO"),
    ],
)
def test_event_levels(etype: EventType, data: dict[str, Any], level: str) -> None:
    event = make_event(etype, "r", "m", step_key="s", **data)

    assert event_json("1-0", event)["level"] == level


def test_event_json_gives_the_error_apart_and_makes_data_json_safe() -> None:
    cause = {"cls_name": "OSError", "message": "disk", "stack": "s2", "cause": None}
    error = {"cls_name": "ValueError", "message": "bad", "stack": "s1", "cause": cause}
    event = make_event(
        EventType.STEP_FAILURE,
        "r",
        "",
        step_key="s",
        attempt=1,
        error=error,
        odd={1: (float("nan"), Path("x"))},
    )

    view = event_json("5-1", event)

    assert view["id"] == "5-1" and view["type"] == "STEP_FAILURE"
    assert view["error"] == {
        "type": "ValueError",
        "message": "bad",
        "stack": "s1",
        "cause": {"type": "OSError", "message": "disk", "stack": "s2", "cause": None},
    }
    assert view["data"] == {"attempt": 1, "odd": {"1": ["nan", "x"]}}
    json.dumps(view, allow_nan=False)


def test_lease_json_times_are_relative_to_now() -> None:
    fields = {"run_id": "r", "step_key": "s", "attempt": "1", "state": "waiting"}
    waiting = LeaseInfo.from_fields("l1", {**fields, "queued": "1000", "since": "1000"})
    held = LeaseInfo.from_fields("l2", {**fields, "state": "held", "since": "2000"})

    assert (
        lease_json(waiting, 4.5)["waited_seconds"],
        lease_json(waiting, 4.5)["held_seconds"],
    ) == (
        3.5,
        None,
    )
    assert lease_json(held, 4.5)["held_seconds"] == 2.5
    assert lease_json(held, 1.0)["held_seconds"] == 0.0  # a clock behind gives 0, not < 0


# -- run list --json ---------------------------------------------------------------------------


def test_run_list_json_is_an_array_of_runs_with_the_tables_filters() -> None:
    ok = execute("-j", "add_job")
    failed = execute("-j", "failing_job", "--tags", '{"team": "a"}')
    newest = execute("-j", "add_job", "--tags", '{"team": "b"}')

    def ids(*args: str) -> list[str]:
        return [run["run_id"] for run in invoke_json("run", "list", "--json", *args)]

    runs = invoke_json("run", "list", "--json")
    assert [r["run_id"] for r in runs] == [newest, failed, ok]
    assert runs[1]["job_name"] == "failing_job" and runs[1]["status"] == "FAILURE"
    assert runs[1]["tags"]["team"] == "a"
    assert runs[1]["code_location"] == "module tests.cli_jobs"
    assert runs[1]["end_time"] >= runs[1]["start_time"] >= runs[1]["created_at"] > 0
    assert ids("--job", "add_job") == [newest, ok]
    assert ids("--status", "failure") == [failed]
    assert ids("--tag", "team=b") == [newest]
    assert ids("--limit", "1") == [newest]
    assert invoke("run", "list", "--job", "nope", "--json").stdout.strip() == "[]"


def test_json_output_keeps_bad_input_on_stderr_with_exit_2() -> None:
    for args in (["list", "--status", "DONE"], ["show", "no-such-run"], ["logs", "no-such-run"]):
        result = invoke("run", *args, "--json")

        assert result.exit_code == 2, args
        assert result.stdout == ""
        assert "Error:" in result.stderr


# -- run show --json ---------------------------------------------------------------------------


def test_run_show_json_has_the_run_and_each_steps_state() -> None:
    run_id = execute("-j", "failing_job", "--tags", '{"team": "x"}')

    shown = invoke_json("run", "show", run_id, "--json")

    assert set(shown) == {"run", "steps", "groups", "driver"}
    assert shown["run"]["run_id"] == run_id and shown["run"]["status"] == "FAILURE"
    assert shown["driver"] is None  # a finished run has no driver
    steps = {s["step_key"]: s for s in shown["steps"]}
    assert steps["return_five"]["state"] == "succeeded"
    assert steps["return_five"]["attempts"] == 1
    assert steps["return_five"]["duration_seconds"] >= 0
    assert steps["explode"]["state"] == "failed"
    assert "ValueError: boom at 5" in steps["explode"]["error"]
    assert steps["after_explode"]["state"] == "skipped"
    assert "upstream step 'explode' failed" in steps["after_explode"]["note"]


def test_run_show_json_of_a_queued_run_lists_planned_steps_and_its_driver(
    instance: RedisInstance,
) -> None:
    # Given a launched run waiting for a coordinator (none runs), with its plan stored
    instance.create_run(RunRecord("queued-1", "add_job", RunStatus.QUEUED, {}, {}))
    plan = {"job_name": "add_job", "steps": [{"key": "return_five"}, {"key": "add_one"}]}
    instance.client.set(instance.keys.run_plan("queued-1"), json.dumps(plan))

    shown = invoke_json("run", "show", "queued-1", "--json")

    assert [(s["step_key"], s["state"]) for s in shown["steps"]] == [
        ("return_five", "not started"),
        ("add_one", "not started"),
    ]
    assert "no coordinator is running" in shown["driver"]
    assert shown["run"]["start_time"] is None and shown["run"]["duration_seconds"] is None


# -- run logs --json ---------------------------------------------------------------------------


def test_run_logs_json_prints_one_event_per_line_with_increasing_ids() -> None:
    run_id = execute("-j", "failing_job")

    result = invoke("run", "logs", run_id, "--json")

    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    ids = [stream_order(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert events[0]["type"] == "RUN_START" and events[-1]["type"] == "RUN_FAILURE"
    assert {e["run_id"] for e in events} == {run_id}
    (failure,) = [e for e in events if e["type"] == "STEP_FAILURE"]
    assert failure["step_key"] == "explode" and failure["level"] == "ERROR"
    # the user-code boundary's error, with the op's own exception as its cause
    assert failure["error"]["cause"]["type"] == "ValueError"
    assert failure["error"]["cause"]["message"] == "boom at 5"
    assert 'raise ValueError(f"boom at {arg}")' in failure["error"]["stack"]
    assert "error" not in failure["data"] and failure["data"]["attempt"] == 1
    assert events[-1]["level"] == "ERROR"


class Lines:
    """The lines a process prints, read by a thread so waiting for one has a deadline."""

    def __init__(self, stream: IO[str]):
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def next(self) -> str | None:
        """The next line, or None at the end of the stream; fails after TIMEOUT."""
        return self._queue.get(timeout=TIMEOUT)


def test_run_logs_json_follow_prints_each_event_as_it_is_stored(instance: RedisInstance) -> None:
    # Given a started run with one event so far
    instance.create_run(RunRecord("live-1", "add_job", RunStatus.STARTED, {}, {}))
    first = instance.store_event(make_event(EventType.RUN_START, "live-1", "started"))

    # When its log is followed as JSON by another process, writing to a pipe
    follower = subprocess.Popen(
        [str(SCRIPT), "run", "logs", "live-1", "--json", "--follow"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert follower.stdout is not None
    try:
        lines = Lines(follower.stdout)

        # Then the event so far arrives while the run goes on (each line is flushed)...
        assert json.loads(lines.next() or "null")["id"] == first
        assert follower.poll() is None

        # ...then each new one as it is stored, up to the run's end; then it exits 0
        log = make_event(
            EventType.LOG_MESSAGE, "live-1", "hello", step_key="add_one", level="WARNING"
        )
        second = instance.store_event(log)
        line = json.loads(lines.next() or "null")
        assert (line["id"], line["level"], line["message"]) == (second, "WARNING", "hello")
        last = instance.store_event(make_event(EventType.RUN_SUCCESS, "live-1", "done"))
        line = json.loads(lines.next() or "null")
        assert (line["id"], line["type"]) == (last, "RUN_SUCCESS")
        assert lines.next() is None
        assert follower.wait(timeout=TIMEOUT) == 0
        assert stream_order(first) < stream_order(second) < stream_order(last)
    finally:
        if follower.poll() is None:
            follower.kill()
        follower.wait(timeout=TIMEOUT)
        follower.stdout.close()
        assert follower.stderr is not None
        follower.stderr.close()


# -- concurrency list --json ---------------------------------------------------------------------


def test_concurrency_list_json_shows_limits_holders_and_waiters(instance: RedisInstance) -> None:
    assert invoke("concurrency", "list", "--json").stdout.strip() == "[]"
    # Given a limit of 1 on database=jsontest, one holder and two waiters in line behind it,
    # and a per-unique-value limit with one holder
    assert invoke("concurrency", "set", "database=jsontest", "1").exit_code == 0
    assert invoke("concurrency", "set", "region", "2", "--per-unique-value").exit_code == 0
    limiter = RedisLimiter(instance.client, instance.keys)
    db = {"database": "jsontest"}
    assert limiter.acquire("lease-a", "run-1", "step_a", 1, db, worker="w1") is not None
    assert limiter.acquire("lease-b", "run-2", "step_b", 2, db, worker="w2") is None
    assert limiter.acquire("lease-c", "run-3", "step_c", 1, db, worker="w3") is None
    assert limiter.acquire("lease-d", "run-1", "step_d", 1, {"region": "eu"}) is not None

    # When the limits are listed as JSON
    limits = {lim["spec"]: lim for lim in invoke_json("concurrency", "list", "--json")}

    # Then each limit names its buckets, holders and waiters (with their place in line)
    database = limits["database=jsontest"]
    assert (database["key"], database["value"], database["per_unique_value"]) == (
        "database",
        "jsontest",
        False,
    )
    assert database["limit"] == 1
    (bucket,) = database["buckets"]
    assert (bucket["bucket"], bucket["limit"]) == ("database=jsontest", 1)
    (holder,) = bucket["holders"]
    assert (holder["lease_id"], holder["run_id"], holder["step_key"]) == (
        "lease-a",
        "run-1",
        "step_a",
    )
    assert holder["state"] == "held" and holder["token"] > 0 and holder["worker"] == "w1"
    assert holder["held_seconds"] >= 0 and holder["waited_seconds"] is None
    assert holder["expires"] > holder["since"]
    waiters = bucket["waiters"]
    assert [(w["lease_id"], w["position"]) for w in waiters] == [("lease-b", 1), ("lease-c", 2)]
    assert waiters[0]["state"] == "waiting" and waiters[0]["attempt"] == 2
    assert waiters[0]["waited_seconds"] >= 0 and waiters[0]["held_seconds"] is None
    region = limits["region=*"]
    assert (region["key"], region["value"], region["per_unique_value"]) == ("region", None, True)
    (eu,) = region["buckets"]
    assert eu["bucket"] == "region=*eu" and eu["holders"][0]["lease_id"] == "lease-d"

    # And a limit deleted while its slot is held is listed with limit null until released
    assert invoke("concurrency", "delete", "database=jsontest").exit_code == 0
    limits = {lim["spec"]: lim for lim in invoke_json("concurrency", "list", "--json")}
    deleted = limits["database=jsontest"]
    assert (deleted["key"], deleted["value"], deleted["limit"]) == ("database", "jsontest", None)
    assert "lease-a" in [h["lease_id"] for h in deleted["buckets"][0]["holders"]]
