"""A code location the test workers were NOT started with (they refuse its steps)."""

from __future__ import annotations

from orchestrator import celery_executor, job, op


@op
def sneaky() -> int:
    return 1


@job(executor_def=celery_executor)
def foreign_job() -> None:
    sneaky()
