"""The distributed commands end to end: job launch, run cancel/show, concurrency, and a
worker refusing a code location it was not started with."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from orchestrator import Instance, RunStatus, execute_job, reconstructable
from orchestrator.cli.main import cli
from orchestrator.coordinator import Coordinator
from orchestrator.storage.redis import RedisInstance
from tests import other_location_jobs
from tests.celery_support import REPO_ROOT, Cluster
from tests.waiting import wait_finished, wait_until


@pytest.fixture
def instance(cluster_env: Cluster) -> Iterator[RedisInstance]:
    inst = Instance.from_settings()
    assert isinstance(inst, RedisInstance)
    yield inst
    inst.close()


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_launch_prints_the_run_id_last_and_a_coordinator_runs_it(instance: RedisInstance) -> None:
    code, out = invoke(
        "job", "launch", "-m", "tests.celery_jobs", "-j", "one_step", "--tags", '{"team": "data"}'
    )
    assert code == 0, out
    run_id = out.strip().splitlines()[-1]
    record = instance.get_run(run_id)
    assert record is not None and record.status is RunStatus.QUEUED
    assert record.tags["team"] == "data"
    coord = Coordinator(instance)
    thread = threading.Thread(target=coord.serve, daemon=True)
    thread.start()
    try:
        assert wait_finished(instance, [run_id]) == {run_id: RunStatus.SUCCESS}
    finally:
        coord.stop()
        thread.join(timeout=30)
    code, out = invoke("run", "show", run_id)
    assert code == 0 and "succeeded" in out
    # the step says where it ran: the worker's Celery node and pool process
    (start,) = [e for e in instance.all_events(run_id) if e.event_type_value == "STEP_START"]
    node, _, pid = start.data["worker"].partition(" pid ")
    assert "@" in node and pid.isdigit() and pid != str(os.getpid())
    assert "Worker" in out and node.split("@")[0] in out


def test_launch_with_bad_config_exits_2_and_stores_nothing(instance: RedisInstance) -> None:
    before = len(instance.get_runs())
    code, out = invoke(
        "job", "launch", "-m", "tests.celery_jobs", "-j", "one_step", "--op-selection", "qiuck"
    )
    assert code == 2 and "quick" in out
    assert len(instance.get_runs()) == before


def test_cancel_a_queued_run(instance: RedisInstance) -> None:
    code, out = invoke("job", "launch", "-m", "tests.celery_jobs", "-j", "one_step")
    run_id = out.strip().splitlines()[-1]
    code, out = invoke("run", "cancel", run_id)
    assert code == 0 and "CANCELED" in out
    assert instance.get_run(run_id).status is RunStatus.CANCELED  # type: ignore[union-attr]
    assert invoke("run", "cancel", "no-such-run")[0] == 2


def test_run_show_reports_a_queue_without_consumer(instance: RedisInstance) -> None:
    code, out = invoke("job", "launch", "-m", "tests.celery_jobs", "-j", "unconsumed_job")
    run_id = out.strip().splitlines()[-1]
    coord = Coordinator(instance)
    thread = threading.Thread(target=coord.serve, daemon=True)
    thread.start()
    try:
        wait_until(
            "the no-consumer report",
            lambda: any(e.data.get("kind") == "no_consumer" for e in instance.all_events(run_id)),
        )
        code, out = invoke("run", "show", run_id)
        assert code == 0
        assert "queued" in out and "no live worker" in out
        assert invoke("run", "cancel", run_id)[0] == 0
        assert wait_finished(instance, [run_id]) == {run_id: RunStatus.CANCELED}
    finally:
        coord.stop()
        thread.join(timeout=30)


def test_concurrency_commands(instance: RedisInstance) -> None:
    assert invoke("concurrency", "set", "database=clitest", "2")[0] == 0
    assert invoke("concurrency", "set", "region", "1", "--per-unique-value")[0] == 0
    code, out = invoke("concurrency", "list")
    assert code == 0 and "database=clitest" in out and "limit 2" in out and "region=*" in out
    assert invoke("concurrency", "delete", "database=clitest")[0] == 0
    assert invoke("concurrency", "delete", "region", "--per-unique-value")[0] == 0
    assert invoke("concurrency", "delete", "database=clitest")[0] == 2
    assert invoke("concurrency", "set", "database=x", "1", "--per-unique-value")[0] == 2
    code, out = invoke("concurrency", "set", "database", "-1")
    assert code == 2 and "the limit must be 0 or more, got -1" in out
    assert invoke("concurrency", "free")[0] == 2
    code, out = invoke("concurrency", "free", "--run", "no-such-run")
    assert code == 0 and "Freed 0" in out


def test_worker_refuses_a_code_location_it_was_not_started_with(instance: RedisInstance) -> None:
    result = execute_job(reconstructable(other_location_jobs.foreign_job), instance=instance)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert "refuses" in failure.message and "tests.other_location_jobs" in failure.message
    assert failure.error is not None and failure.error.cls_name == "CodeLocationRejected"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"ORCHESTRATOR_REDIS_URL": "redis://127.0.0.1:1/0"}, "cannot reach Redis at"),
        (
            {"ORCHESTRATOR_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"},
            "cannot reach the broker",
        ),
    ],
    ids=["redis", "broker"],
)
def test_worker_start_with_redis_down_exits_2(
    cluster_env: Cluster, env: dict[str, str], expected: str
) -> None:
    # Given a server the worker needs that does not answer (the other one answers)
    full_env = {**os.environ, **cluster_env.env, **env}
    # When a worker starts, Then it exits 2 with one line naming the server, instead of
    # retrying
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli.main",
            "worker",
            "start",
            "-m",
            "tests.celery_jobs",
        ],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_health_checks_see_this_hosts_worker_and_coordinator(instance: RedisInstance) -> None:
    # Given the cluster's workers on this host and no coordinator yet
    code, out = invoke("coordinator", "health")
    assert code == 1 and "no coordinator" in out
    # Then the worker check pings this host's own Celery node through the broker
    code, out = invoke("worker", "health")
    assert code == 0 and out.startswith("healthy: worker") and "answered" in out
    # When a coordinator serves here, Then its check passes
    coord = Coordinator(instance)
    thread = threading.Thread(target=coord.serve, daemon=True)
    thread.start()
    try:
        code, out = wait_until(
            "the coordinator to register",
            lambda: (r := invoke("coordinator", "health"))[0] == 0 and r,
        )
        assert coord.id in out
    finally:
        coord.stop()
        thread.join(timeout=30)


def test_code_locations_come_from_the_setting_when_none_are_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from orchestrator.cli.worker import code_locations, parse_code_locations
    from orchestrator.definitions.reconstruct import CodeLocation

    assert parse_code_locations(" jobs.py, my_pkg.jobs ,sub/more.py,") == [
        CodeLocation(file="jobs.py"),
        CodeLocation(module="my_pkg.jobs"),
        CodeLocation(file="sub/more.py"),
    ]
    monkeypatch.setenv("ORCHESTRATOR_CODE_LOCATIONS", "tests.celery_jobs")
    assert code_locations((), ()) == [CodeLocation(module="tests.celery_jobs")]
    assert code_locations(("a.py",), ()) == [CodeLocation(file="a.py")]  # flags win
    monkeypatch.setenv("ORCHESTRATOR_CODE_LOCATIONS", "")
    with pytest.raises(click.UsageError, match="ORCHESTRATOR_CODE_LOCATIONS"):
        code_locations((), ())
