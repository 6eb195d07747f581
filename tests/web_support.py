"""A real web server for the UI and API tests (a pytest plugin loaded by conftest).

``web_stack`` starts, on the session's embedded Valkey under a key prefix of its own, the
processes a user runs: ``orchestrator ui`` (uvicorn on a free loopback port), a run
coordinator and a Celery worker, all loading ``tests.web_jobs``. ``web_token_server`` is a
second server that asks for a token. Tests talk to them over HTTP only.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from orchestrator.redis_keys import RedisKeys
from tests.celery_support import SHORT_TIMINGS
from tests.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parent.parent
JOBS_MODULE = "tests.web_jobs"
START_TIMEOUT_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WebStack:
    """The processes behind one server, and how to reach them."""

    url: str
    env: dict[str, str]
    tmp: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @functools.cached_property
    def client(self) -> redis.Redis:
        """One client for the test's own reads and writes (closed by :meth:`stop`)."""
        return redis.Redis.from_url(self.env["ORCHESTRATOR_REDIS_URL"], decode_responses=True)

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.env["ORCHESTRATOR_KEY_PREFIX"])

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, timeout=30.0, headers=headers)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = self.tmp / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "orchestrator.cli.main", *args],
                cwd=REPO_ROOT,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = proc
        return proc

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:  # a process starting: bounded wait
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return
            if self.processes["ui"].poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"the UI server did not start:\n{self.log('ui')}")

    def stop(self) -> None:
        if "client" in self.__dict__:
            self.client.close()
        for proc in self.processes.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def make_stack(
    redis_url: str, tmp: Path, *, token: str = "", coordinator: bool = True, worker: bool = True
) -> Iterator[WebStack]:
    port = free_port()
    env = {
        "ORCHESTRATOR_REDIS_URL": redis_url,
        "ORCHESTRATOR_KEY_PREFIX": f"web-{uuid.uuid4().hex[:8]}",
        "ORCHESTRATOR_STORAGE_URL": str(tmp / "storage"),
        "ORCHESTRATOR_HOME": str(tmp / "home"),
        "ORCHESTRATOR_API_TOKEN": token,
        **SHORT_TIMINGS,
    }
    stack = WebStack(f"http://127.0.0.1:{port}", env, tmp)
    try:
        stack.start("ui", "ui", "-m", JOBS_MODULE, "--port", str(port))
        if coordinator:
            stack.start("coordinator", "coordinator", "start", "-m", JOBS_MODULE)
        if worker:
            stack.start(
                "worker", "worker", "start", "-m", JOBS_MODULE, "-c", "2", "--loglevel", "WARNING"
            )
        stack.wait_healthy()
        yield stack
    finally:
        stack.stop()
        from tests.servers import delete_prefix

        delete_prefix(redis_url, env["ORCHESTRATOR_KEY_PREFIX"])


@pytest.fixture(scope="module")
def web_stack(valkey_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    yield from make_stack(valkey_url, tmp_path_factory.mktemp("web"))


WEB_TOKEN = "s3cret-test-token"


@pytest.fixture(scope="module")
def web_token_server(
    valkey_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebStack]:
    yield from make_stack(
        valkey_url,
        tmp_path_factory.mktemp("webtoken"),
        token=WEB_TOKEN,
        coordinator=False,
        worker=False,
    )


# -- the API, for what a test sets up ---------------------------------------------------------


def launch(http: httpx.Client, job: str, **body: Any) -> str:
    """Launch ``job`` through the HTTP API; its run id."""
    response = http.post("/api/runs", json={"job": job, **body})
    assert response.status_code == 201, response.text
    return str(response.json()["run_id"])


def hold_config(release: Path) -> dict[str, Any]:
    """Run config of ``hold``: its step runs until ``release`` exists."""
    return {"ops": {"hold_slot": {"config": {"release_file": str(release)}}}}


def step_of(http: httpx.Client, run_id: str, step_key: str) -> dict[str, Any] | None:
    steps = http.get(f"/api/runs/{run_id}").json()["steps"]
    return next((s for s in steps if s["step_key"] == step_key), None)


def wait_step_state(http: httpx.Client, run_id: str, step_key: str, state: str) -> None:
    wait_until(
        f"step {step_key} of run {run_id} to be {state}",
        lambda: (step := step_of(http, run_id, step_key)) is not None and step["state"] == state,
    )
