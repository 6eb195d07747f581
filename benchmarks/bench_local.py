"""Benchmark: per-step overhead of the in-process and multiprocess executors.

Runs a 20-op chain and a 1 -> 50 -> 1 fan-out of no-op ops in-process and with the
multiprocess executor (max_concurrent=2, spawn and forkserver with preloaded modules, each with
a fresh process per step and with reused step processes), and a
baseline measured in the same run: the same number of bare multiprocessing processes, two at a
time, with the same start method (the floor for one-process-per-step isolation).

Usage: python benchmarks/bench_local.py [--repeat N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rich.console import Console
from rich.table import Table

from orchestrator import Instance, build_reconstructable_job, execute_job


def _noop() -> None:
    return None


def raw_processes(n: int, method: str, parallel: int = 2) -> float:
    """n bare processes, ``parallel`` at a time."""
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["bench_jobs"])
    t0 = time.perf_counter()
    running: list = []
    for _ in range(n):
        if len(running) >= parallel:
            running.pop(0).join()
        p = ctx.Process(target=_noop)
        p.start()
        running.append(p)
    for p in running:
        p.join()
    return time.perf_counter() - t0


def run_job(kind: str, executor: str, method: str, reuse: bool = False) -> float:
    recon = build_reconstructable_job("bench_jobs", "make", (kind, executor, method, reuse))
    t0 = time.perf_counter()
    result = execute_job(recon, instance=Instance.ephemeral())
    elapsed = time.perf_counter() - t0
    assert result.success
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("ORCHESTRATOR_HOME", tempfile.mkdtemp(prefix="bench-home-"))
    steps = {"chain": 20, "fan": 52}
    table = Table(title=f"Local executors (median of {args.repeat}, seconds)")
    for col in ("job", "executor", "total s", "per step ms", "baseline s", "ratio"):
        table.add_column(col, justify="right")
    for kind in ("chain", "fan"):
        for executor, method, reuse in (
            ("in_process", "spawn", False),
            ("multiprocess", "spawn", False),
            ("multiprocess", "forkserver", False),
            ("multiprocess", "spawn", True),
            ("multiprocess", "forkserver", True),
        ):
            run_job(kind, executor, method, reuse)  # warm-up (forkserver start, imports)
            total = statistics.median(
                run_job(kind, executor, method, reuse) for _ in range(args.repeat)
            )
            if executor == "in_process":
                label, base, ratio = "in_process", "-", "-"
            else:
                parallel = 1 if kind == "chain" else 2
                baseline = statistics.median(
                    raw_processes(steps[kind], method, parallel) for _ in range(args.repeat)
                )
                label = f"multiprocess/{method}" + (" reused" if reuse else "")
                base, ratio = f"{baseline:.3f}", f"{total / baseline:.2f}x"
            table.add_row(
                kind, label, f"{total:.3f}", f"{total / steps[kind] * 1000:.2f}", base, ratio
            )
    Console().print(table)
    print(
        "baseline: the same number of bare multiprocessing processes (chain: one at a time, "
        "fan-out: two at a time) with the same start method. 'reused': reuse_processes=true "
        "(at most 2 long-lived step processes)."
    )


if __name__ == "__main__":
    main()
