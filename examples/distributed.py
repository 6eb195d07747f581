"""A job for Celery workers: steps fan out over workers, and the steps that touch the
warehouse share a cross-run limit (`orchestrator concurrency set database=warehouse 2`).

    orchestrator dev                                   # terminal 1: server, worker, coordinator
    orchestrator concurrency set database=warehouse 2  # terminal 2
    orchestrator job launch -f examples/distributed.py -j warehouse_load
    orchestrator run logs <run id> --follow
"""

from __future__ import annotations

import time

from orchestrator import Definitions, OpExecutionContext, celery_executor, job, op

TABLES = ["orders", "customers", "products", "invoices"]


@op
def extract() -> dict[str, int]:
    """Pretend to read row counts from a source system."""
    return {table: 100 * (i + 1) for i, table in enumerate(TABLES)}


def make_load(table: str):  # type: ignore[no-untyped-def]
    @op(name=f"load_{table}", tags={"database": "warehouse"})
    def load(context: OpExecutionContext, counts: dict[str, int]) -> int:
        time.sleep(0.5)  # the warehouse's work
        context.log.info(f"loaded {counts[table]} rows into {table}")
        return counts[table]

    return load


loads = [make_load(table) for table in TABLES]


@op
def summarize(context: OpExecutionContext, loaded: list[int]) -> int:
    total = sum(loaded)
    context.log.info(f"warehouse load done: {total} rows")
    return total


@job(
    executor_def=celery_executor,
    description="Extract once, load four tables (limited by tag database=warehouse), sum up.",
)
def warehouse_load() -> None:
    counts = extract()
    summarize([load(counts) for load in loads])


defs = Definitions(jobs=[warehouse_load])
