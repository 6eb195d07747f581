"""Dynamic fan-out jobs for every executor, loaded by module name by step processes and
Celery workers. ``ops.process.config`` picks a mapping key that fails, one that fails only its
first attempt, and a gauge folder in which limited bodies count themselves (``tests.gauge``)."""

from __future__ import annotations

from typing import Any

from orchestrator import (
    Config,
    DynamicOut,
    DynamicOutput,
    OpExecutionContext,
    RetryPolicy,
    celery_executor,
    graph,
    in_process_executor,
    multiprocess_executor,
    op,
)
from tests.gauge import Gauge

EXECUTORS = {
    "in_process": in_process_executor,
    "multiprocess": multiprocess_executor,
    "celery": celery_executor,
}


class EmitConfig(Config):
    keys: list[str] = ["a", "b", "c"]


class ProcessConfig(Config):
    fail_key: str = ""  # this mapping key always fails
    flaky_key: str = ""  # this one fails its first attempt only
    gauge: str = ""  # count bodies in this folder's gauge, under database=dyn
    barrier: int = 0  # with a gauge: wait until this many run at once (or 3 s)


@op(out=DynamicOut())
def emit(config: EmitConfig) -> Any:
    for key in config.keys:
        yield DynamicOutput(key.upper(), mapping_key=key)


@op(tags={"database": "dyn"}, retry_policy=RetryPolicy(max_retries=1))
def process(context: OpExecutionContext, config: ProcessConfig, value: str) -> str:
    key = context.get_mapping_key()
    if key == config.fail_key:
        raise ValueError(f"process failed for {key}")
    if key == config.flaky_key and context.retry_number == 0:
        raise ValueError(f"first attempt of {key} fails")
    if config.gauge:
        barrier = ("database=dyn", config.barrier, 3.0) if config.barrier else None
        with Gauge(config.gauge).running(["database=dyn"], barrier):
            pass
    return f"{value}-{key}"


@op
def shout(value: str) -> str:
    return value + "!"


@op
def merge(values: list[str]) -> str:
    return ",".join(values)


@graph
def twice(value: str) -> str:
    return shout.alias("second")(shout.alias("first")(value))


@op(out=DynamicOut())
def expand(context: OpExecutionContext, value: str) -> Any:
    for i in range(2):
        yield DynamicOutput(f"{value}{i}", mapping_key=f"k{i}")


@op
def tag_key(context: OpExecutionContext, value: str) -> str:
    return f"{value}/{context.get_mapping_key()}"


@op
def join_inner(values: list[str]) -> str:
    return "+".join(values)


@graph
def nested() -> None:
    merge(emit().map(lambda v: join_inner(expand(v).map(tag_key).collect())).collect())


@graph
def fan_out() -> None:
    merge(emit().map(process).collect())


@graph
def map_graph() -> None:
    merge(emit().map(twice).collect())


@graph
def chained() -> None:
    merge(emit().map(process).map(shout).collect())


def jobs(g: Any) -> dict[str, Any]:
    return {
        name: g.to_job(name=f"{g.name}_{name}", executor_def=ex) for name, ex in EXECUTORS.items()
    }


FAN_OUT = jobs(fan_out)
MAP_GRAPH = jobs(map_graph)
CHAINED = jobs(chained)
NESTED = jobs(nested)

fan_out_in_process = FAN_OUT["in_process"]
fan_out_multiprocess = FAN_OUT["multiprocess"]
fan_out_celery = FAN_OUT["celery"]
map_graph_in_process = MAP_GRAPH["in_process"]
map_graph_multiprocess = MAP_GRAPH["multiprocess"]
map_graph_celery = MAP_GRAPH["celery"]
chained_in_process = CHAINED["in_process"]
chained_multiprocess = CHAINED["multiprocess"]
chained_celery = CHAINED["celery"]
nested_in_process = NESTED["in_process"]
nested_multiprocess = NESTED["multiprocess"]
nested_celery = NESTED["celery"]
