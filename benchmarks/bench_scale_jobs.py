"""Jobs for bench_scale.py (loaded by the workers and the coordinator by module): a 5-step
chain and a 1 -> 10 -> 1 fan of no-op ops on the celery executor, plus the same chain with one
step under a cross-run limit (of 2: the limit sets the pace; of 4, as many as the worker
processes: what the limiter costs)."""

from __future__ import annotations

from orchestrator import celery_executor, job, op


@op
def first() -> int:
    return 0


@op
def step(x: int) -> int:
    return x + 1


@op(tags={"database": "bench"})
def limited_step(x: int) -> int:
    return x + 1


@op(tags={"database": "bench_wide"})
def wide_step(x: int) -> int:
    return x + 1


@op
def gather(xs: list[int]) -> int:
    return len(xs)


@job(executor_def=celery_executor)
def chain5() -> None:
    value = first()
    for i in range(4):
        value = step.alias(f"step_{i}")(value)


@job(executor_def=celery_executor)
def chain5_limited() -> None:
    value = step.alias("step_1")(first())
    value = limited_step(value)
    for i in range(2, 4):
        value = step.alias(f"step_{i}")(value)


@job(executor_def=celery_executor)
def chain5_wide() -> None:
    value = step.alias("step_1")(first())
    value = wide_step(value)
    for i in range(2, 4):
        value = step.alias(f"step_{i}")(value)


@job(executor_def=celery_executor)
def fan10() -> None:
    seed = first()
    gather([step.alias(f"leaf_{i}")(seed) for i in range(10)])
