"""The code location of the CLI tests: loaded with ``-m tests.cli_jobs`` and with
``-f tests/cli_jobs.py``. Only module-level definitions; ops report what they saw through
``context.log`` so tests read it from the command's output."""

from __future__ import annotations

import json

from orchestrator import (
    Config,
    Definitions,
    StaticPartitionsDefinition,
    job,
    op,
    static_partitioned_config,
)

IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


@op
def return_five() -> int:
    return 5


@op
def add_one(arg: int) -> int:
    return arg + 1


@job(description="Adds one to five.")
def add_job():
    add_one(return_five())


# -- a failing op, the op downstream of it, and an independent branch --------------------------


@op
def explode(arg: int) -> int:
    raise ValueError(f"boom at {arg}")


@op
def after_explode(arg: int) -> int:
    return arg


@op
def independent() -> str:
    return "fine"


@job
def failing_job():
    after_explode(explode(return_five()))
    independent()


# -- config with paths to get wrong -------------------------------------------------------------


class DoSomethingConfig(Config):
    config_param: str
    count: int = 1


@op
def do_something(context, config: DoSomethingConfig) -> None:
    seen = {
        "config_param": config.config_param,
        "count": config.count,
        "tags": {k: v for k, v in context.run_tags.items() if k.startswith("team")},
    }
    context.log.info("seen " + json.dumps(seen, sort_keys=True))


@job(description="Takes op config.")
def config_job():
    do_something()


# -- a partitioned job --------------------------------------------------------------------------


@static_partitioned_config(partition_keys=["eu", "us"])
def region_config(partition_key: str) -> dict:
    return {**IN_PROCESS, "ops": {"report_region": {"config": {"region": partition_key}}}}


class RegionConfig(Config):
    region: str


@op
def report_region(context, config: RegionConfig) -> None:
    context.log.info(f"region {config.region} partition {context.partition_key}")


@job(config=region_config)
def regional_job():
    report_region()


# -- a resource nobody provides -----------------------------------------------------------------


@op(required_resource_keys={"warehouse"})
def load_to_warehouse(context) -> None:
    context.resources.warehouse.load()


@job
def warehouse_job():
    load_to_warehouse()


defs = Definitions(jobs=[add_job, failing_job, config_job, regional_job, warehouse_job])

PARTITIONS = StaticPartitionsDefinition(["eu", "us"])  # not a job: must not be listed
