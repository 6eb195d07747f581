"""Dynamic fan-out jobs for bench_dynamic.py (loaded by the workers and the coordinator by
module): ``emit`` yields ``count`` DynamicOutputs of tiny values, the no-op ``touch`` is mapped
over them (steps ``touch[0]`` ... ``touch[count - 1]``) and ``gather`` collects their results."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from orchestrator import (
    Config,
    DynamicOut,
    DynamicOutput,
    celery_executor,
    in_process_executor,
    job,
    op,
)


class EmitConfig(Config):
    count: int = 1000  # mapped steps


@op(out=DynamicOut())
def emit(config: EmitConfig) -> Iterator[DynamicOutput[int]]:
    for i in range(config.count):
        yield DynamicOutput(i, mapping_key=str(i))


@op
def touch(x: int) -> int:
    return x


@op
def gather(xs: list[int]) -> int:
    return len(xs)


def fan_body() -> None:
    gather(emit().map(touch).collect())


dyn_fan_celery = job(name="dyn_fan_celery", executor_def=celery_executor)(fan_body)
dyn_fan_in_process = job(name="dyn_fan_in_process", executor_def=in_process_executor)(fan_body)


def run_config(count: int) -> dict[str, Any]:
    """Run config for a 1 -> ``count`` -> 1 run of either job."""
    return {"ops": {"emit": {"config": {"count": count}}}}
