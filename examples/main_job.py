"""The job the README's first command runs: a small sales report.

``load_orders`` fans out one list of order amounts per region; ``total_sales`` runs once per
region (three steps that can run side by side); ``build_report`` fans them back in and logs
the report. The ``total_sales`` steps carry the tag ``database: orders``, and the job's default
run config lets at most two of them run at once with the multiprocess executor.

Run it with ``orchestrator job execute -f examples/main_job.py -j sales_report``
(add ``-c examples/in_process.yaml`` to run every step in the launching process) or with
``python examples/main_job.py``.
"""

import json

from orchestrator import OpExecutionContext, Out, job, op

ORDERS = {
    "north": [120, 80, 45],
    "south": [300, 15],
    "west": [60, 60, 60, 20],
}


@op(out={region: Out() for region in ORDERS})
def load_orders() -> tuple[list[int], ...]:
    """One output per region, in the order of ``out``."""
    return tuple(ORDERS[region] for region in ORDERS)


@op(tags={"database": "orders"})
def total_sales(context: OpExecutionContext, amounts: list[int]) -> int:
    total = sum(amounts)
    context.log.info(f"{len(amounts)} orders, {total} in total")
    return total


@op
def build_report(context: OpExecutionContext, north: int, south: int, west: int) -> dict:
    by_region = {"north": north, "south": south, "west": west}
    report = {
        "by_region": by_region,
        "total": sum(by_region.values()),
        "best_region": max(by_region, key=lambda region: by_region[region]),
    }
    context.log.info(f"sales report: {json.dumps(report, sort_keys=True)}")
    return report


@job(
    description="Totals each region's orders in parallel and combines them into one report.",
    tags={"team": "sales"},
    config={
        "execution": {
            "config": {
                "multiprocess": {
                    "max_concurrent": 4,
                    "tag_concurrency_limits": [{"key": "database", "value": "orders", "limit": 2}],
                }
            }
        }
    },
)
def sales_report() -> None:
    orders = load_orders()
    build_report(
        north=total_sales.alias("total_north")(orders.north),
        south=total_sales.alias("total_south")(orders.south),
        west=total_sales.alias("total_west")(orders.west),
    )


if __name__ == "__main__":
    result = sales_report.execute_in_process()
    print(json.dumps(result.output_for_node("build_report"), indent=2, sort_keys=True))
