"""Jobs for the web UI and HTTP API tests, loaded by module name by the server, coordinator
and worker processes the tests start.

``greet`` takes required config; ``hold`` waits on a file the test creates (so a run stays
running, or a step stays waiting for a slot, exactly as long as the test needs); ``flaky``
fails until a marker file exists (re-execution from failure); ``daily`` is partitioned;
``on_celery`` runs on Celery workers; ``fan_out_job`` maps ``process`` over 60 keys
(``k0`` .. ``k59``), one of which (``k7``) fails, so the collecting op is skipped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from orchestrator import (
    Config,
    DynamicOut,
    DynamicOutput,
    OpExecutionContext,
    StaticPartitionsDefinition,
    celery_executor,
    in_process_executor,
    job,
    op,
)

WAIT_LIMIT_SECONDS = 60.0  # a hold op gives up (fails) after this: a test never hangs


class GreetConfig(Config):
    name: str
    times: int = 1


@op
def make_greeting(config: GreetConfig) -> str:
    return " ".join([f"hello {config.name}"] * config.times)


@op
def shout(greeting: str) -> str:
    return greeting.upper()


@job(executor_def=in_process_executor)
def greet() -> None:
    shout(make_greeting())


class HoldConfig(Config):
    release_file: str = ""  # the op returns once this file exists ("" returns at once)


def _wait_for(path: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while path and not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} was never created")
        time.sleep(0.05)


@op(tags={"web_test_db": "main"})
def hold_slot(config: HoldConfig) -> int:
    _wait_for(config.release_file)
    return 1


@op
def after_hold(n: int) -> int:
    return n + 1


@job(executor_def=in_process_executor)
def hold() -> None:
    after_hold(hold_slot())


class FlakyConfig(Config):
    marker: str


@op
def first() -> int:
    return 1


@op
def second(config: FlakyConfig, n: int) -> int:
    if not Path(config.marker).exists():
        raise RuntimeError(f"marker {config.marker} is missing")
    return n + 1


@op
def third(n: int) -> int:
    return n + 1


@job(executor_def=in_process_executor)
def flaky() -> None:
    third(second(first()))


@op
def partition_echo(context) -> str:  # type: ignore[no-untyped-def]
    return str(context.partition_key)


@job(
    executor_def=in_process_executor,
    partitions_def=StaticPartitionsDefinition(["eu", "us", "apac"]),
)
def regional() -> None:
    partition_echo()


@op
def celery_step() -> int:
    return 7


@job(executor_def=celery_executor)
def on_celery() -> None:
    celery_step()


@op
def part_a() -> int:
    return 1


@op
def part_b(config: FlakyConfig) -> int:
    if not Path(config.marker).exists():
        raise RuntimeError(f"marker {config.marker} is missing")
    return 2


@op
def part_c() -> int:
    return 3


@op
def gather(parts: list[int]) -> int:
    if parts != [1, 2, 3]:  # every part, in the fan-in's order
        raise ValueError(f"gathered {parts}")
    return sum(parts)


@job(executor_def=in_process_executor)
def fan_in() -> None:
    gather([part_a(), part_b(), part_c()])


FAN_OUT_KEYS = tuple(f"k{i}" for i in range(60))
FAN_OUT_FAILING_KEY = "k7"


@op(out=DynamicOut())
def emit() -> Iterator[DynamicOutput[int]]:
    for i, key in enumerate(FAN_OUT_KEYS):
        yield DynamicOutput(i, mapping_key=key)


@op
def process(context: OpExecutionContext, n: int) -> int:
    if context.get_mapping_key() == FAN_OUT_FAILING_KEY:
        raise ValueError(f"cannot process {n}")
    return n * 2


@op
def merge(values: list[int]) -> int:
    return sum(values)


@job(executor_def=in_process_executor)
def fan_out_job() -> None:
    merge(emit().map(process).collect())
