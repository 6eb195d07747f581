"""No-op jobs on the celery executor for bench_celery.py (loaded by the workers by module)."""

from __future__ import annotations

from orchestrator import celery_executor, job, op


@op
def start() -> int:
    return 0


@op
def step(x: int) -> int:
    return x


@op
def gather(xs: list[int]) -> int:
    return len(xs)


@job(executor_def=celery_executor)
def chain20() -> None:
    value = start()
    for i in range(19):
        value = step.alias(f"step_{i}")(value)


@job(executor_def=celery_executor)
def fan50() -> None:
    s = start()
    gather([step.alias(f"leaf_{i}")(s) for i in range(50)])
