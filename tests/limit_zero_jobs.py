"""A multiprocess job under a per-run tag limit of 0, loaded by module name in child processes."""

from __future__ import annotations

from orchestrator import job, multiprocess_executor, op


@op
def extract() -> int:
    return 1


@op(tags={"database": "warehouse"})
def load(rows: int) -> int:
    return rows + 1


@job(
    executor_def=multiprocess_executor.configured(
        {"tag_concurrency_limits": [{"key": "database", "limit": 0}]}
    )
)
def warehouse_limit_zero() -> None:
    load(extract())
