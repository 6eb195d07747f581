"""Real Celery workers for tests: `orchestrator worker start` subprocesses on the embedded
Valkey (or the machine's Redis / RabbitMQ), started once per test session.

Leases, heartbeats and delays are short so faults resolve in seconds. Workers and the test
process share one key prefix and one output directory (the filesystem IO manager).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from orchestrator.distributed.workers import WorkerRegistry
from orchestrator.redis_keys import RedisKeys

REPO_ROOT = Path(__file__).resolve().parent.parent
SHORT_TIMINGS = {
    "ORCHESTRATOR_LEASE_SECONDS": "2.5",
    "ORCHESTRATOR_HEARTBEAT_INTERVAL": "0.4",
    "ORCHESTRATOR_VISIBILITY_TIMEOUT": "8",
    "ORCHESTRATOR_NO_CONSUMER_DELAY": "1.0",
    "ORCHESTRATOR_MAX_LOST_ATTEMPTS": "3",
}


@dataclass
class WorkerProc:
    name: str
    queues: str
    concurrency: int
    process: subprocess.Popen[bytes]
    log: Path

    def kill_all(self) -> None:
        """SIGKILL the worker's main process and its pool children (the whole worker lost)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@dataclass
class Cluster:
    """The shared environment of the Celery tests and its worker processes."""

    env: dict[str, str]
    tmp: Path
    workers: dict[str, WorkerProc] = field(default_factory=dict)

    @property
    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.env["ORCHESTRATOR_REDIS_URL"], decode_responses=True)

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.env["ORCHESTRATOR_KEY_PREFIX"])

    def start_worker(self, name: str, queues: str = "orchestrator", concurrency: int = 3) -> None:
        log = self.tmp / f"worker-{name}.log"
        env = {**os.environ, **self.env, "ORCHESTRATOR_TEST_WORKER": name}
        cmd = [
            sys.executable,
            "-m",
            "orchestrator.cli.main",
            "worker",
            "start",
            "-m",
            "tests.celery_jobs",
            "-m",
            "tests.dynamic_jobs",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-n",
            f"{name}@{uuid.uuid4().hex[:6]}",
            "--loglevel",
            "WARNING",
        ]
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProc(name, queues, concurrency, proc, log)
        self.workers[name] = worker
        self.wait_registered(worker)

    def wait_registered(self, worker: WorkerProc, timeout: float = 60.0) -> None:
        registry = WorkerRegistry(self.client, self.keys, 10.0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # an external process starting: bounded wait
            if any(n.startswith(f"{worker.name}@") for n in registry.live_workers()):
                return
            if worker.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"worker {worker.name} did not start:\n{worker.log.read_text()}")

    def replace(self, name: str) -> None:
        old = self.workers[name]
        self.start_worker(name, old.queues, old.concurrency)

    def stop(self) -> None:
        for worker in self.workers.values():
            if worker.process.poll() is None:
                os.killpg(worker.process.pid, signal.SIGTERM)
        for worker in self.workers.values():
            try:
                worker.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill_all()


def make_cluster(redis_url: str, tmp: Path, broker_url: str | None = None) -> Iterator[Cluster]:
    prefix = f"ctest-{uuid.uuid4().hex[:8]}"
    env = {
        "ORCHESTRATOR_REDIS_URL": redis_url,
        "ORCHESTRATOR_KEY_PREFIX": prefix,
        "ORCHESTRATOR_STORAGE_URL": str(tmp / "storage"),
        "ORCHESTRATOR_HOME": str(tmp / "home"),
        **SHORT_TIMINGS,
    }
    if broker_url:
        env["ORCHESTRATOR_BROKER_URL"] = broker_url
    cluster = Cluster(env, tmp)
    try:
        cluster.start_worker("w1", "orchestrator", 3)
        cluster.start_worker("w2", "orchestrator", 3)
        cluster.start_worker("gpu", "gpu", 1)
        cluster.start_worker("pair", "pair", 2)  # two worker slots for the many-runs test
        cluster.start_worker("prio", "prio", 1)  # one slot: queued steps wait in the broker
        yield cluster
    finally:
        cluster.stop()
        from tests.servers import delete_prefix

        delete_prefix(redis_url, prefix)


CLUSTER_REDIS_ENV = "ORCHESTRATOR_TEST_CLUSTER_REDIS_URL"
CLUSTER_BROKER_ENV = "ORCHESTRATOR_TEST_CLUSTER_BROKER_URL"


@pytest.fixture(scope="session")
def cluster(valkey_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Workers on the embedded Valkey, or on the servers CI names: the machine's Redis
    (``ORCHESTRATOR_TEST_CLUSTER_REDIS_URL``) and/or RabbitMQ as the broker
    (``ORCHESTRATOR_TEST_CLUSTER_BROKER_URL``)."""
    redis_url = os.environ.get(CLUSTER_REDIS_ENV) or valkey_url
    broker_url = os.environ.get(CLUSTER_BROKER_ENV) or None
    yield from make_cluster(redis_url, tmp_path_factory.mktemp("cluster"), broker_url)


@pytest.fixture
def cluster_env(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """Point this test process at the cluster (settings are read from the environment)."""
    for key, value in cluster.env.items():
        monkeypatch.setenv(key, value)
    return cluster
