"""Dynamic fan-out jobs of the run view tests (``run show`` groups, the run detail API): loaded
with ``-m tests.dynamic_view_jobs``. ``fan_out_fails`` maps five keys, one of which fails (so
the collecting op is skipped); ``fan_out_empty`` maps nothing."""

from __future__ import annotations

from collections.abc import Iterator

from orchestrator import (
    DynamicOut,
    DynamicOutput,
    OpExecutionContext,
    in_process_executor,
    job,
    op,
)

KEYS = ("a", "b", "c", "d", "e")
FAILING_KEY = "c"


@op(out=DynamicOut())
def emit() -> Iterator[DynamicOutput[str]]:
    for key in KEYS:
        yield DynamicOutput(key.upper(), mapping_key=key)


@op(out=DynamicOut())
def emit_nothing() -> Iterator[DynamicOutput[str]]:
    yield from ()


@op
def process(context: OpExecutionContext, value: str) -> str:
    if context.get_mapping_key() == FAILING_KEY:
        raise ValueError(f"cannot process {value}")
    return value.lower()


@op
def merge(values: list[str]) -> str:
    return ",".join(values)


@job(executor_def=in_process_executor)
def fan_out_fails() -> None:
    merge(emit().map(process).collect())


@job(executor_def=in_process_executor)
def fan_out_empty() -> None:
    merge(emit_nothing().map(process).collect())
