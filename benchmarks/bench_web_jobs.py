"""Jobs for benchmarks/bench_web.py: a job of 1,000 independent steps and a small one."""

from __future__ import annotations

from orchestrator import in_process_executor, job, op

WIDE_STEPS = 1000


@op
def tick() -> int:
    return 1


@job(executor_def=in_process_executor)
def wide() -> None:
    for i in range(WIDE_STEPS):
        tick.alias(f"step_{i:04d}")()


@job(executor_def=in_process_executor)
def small() -> None:
    tick()
