"""Jobs of the compose tests, mounted at /code in every container beside the distributed
example. Each step sleeps long enough to be caught running (a container killed or stopped
mid-step, Redis restarted mid-run)."""

from __future__ import annotations

import time

from orchestrator import Definitions, OpExecutionContext, celery_executor, job, op


@op(tags={"database": "warehouse"}, config_schema={"seconds": float})
def load_table(context: OpExecutionContext) -> float:
    seconds = float(context.op_config["seconds"])
    time.sleep(seconds)
    return seconds


@job(executor_def=celery_executor, config={"ops": {"load_table": {"config": {"seconds": 1.5}}}})
def limited() -> None:
    load_table()


@op(tags={"deploy": "slow"}, config_schema={"seconds": float})
def slow(context: OpExecutionContext) -> float:
    time.sleep(float(context.op_config["seconds"]))
    return 1.0


@op(config_schema={"seconds": float})
def step(context: OpExecutionContext, previous: float) -> float:
    time.sleep(float(context.op_config["seconds"]))
    return previous + 1


@job(executor_def=celery_executor, config={"ops": {"slow": {"config": {"seconds": 6.0}}}})
def one_slow_step() -> None:
    slow()


@op(config_schema={"seconds": float})
def first(context: OpExecutionContext) -> float:
    time.sleep(float(context.op_config["seconds"]))
    return 1.0


def _chain_config(seconds: float) -> dict:  # type: ignore[type-arg]
    return {
        "ops": {
            name: {"config": {"seconds": seconds}} for name in ("first", "step", "step_2", "step_3")
        }
    }


@job(executor_def=celery_executor, config=_chain_config(3.0))
def chain() -> None:
    step(step(step(first())))


defs = Definitions(jobs=[limited, one_slow_step, chain])
