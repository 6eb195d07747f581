"""Dynamic fan-out jobs of the fault suite (``test_dynamic_faults.py``), loaded by module name
by that test's workers and coordinators.

``fan`` emits ``count`` mapping keys ``k000``, ``k001``, ... (value ``i`` for ``k{i:03}``),
``work`` is mapped over them and ``merge`` collects the results. Every body leaves a mark when
it starts (phase ``started``) and another when it ends (phase ``completed``): a body killed
half-way leaves the first only, so a test counts the bodies that really completed. ``merge``
records the list it received in its completed mark. A test stalls ``work`` bodies with files
(``WorkConfig``) so that it kills a worker or coordinator while they are surely mid-body.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator import (
    Config,
    DynamicOut,
    DynamicOutput,
    OpExecutionContext,
    celery_executor,
    job,
    op,
)
from tests.faults import marks

STARTED = "started"
COMPLETED = "completed"


def mapping_key(i: int) -> str:
    """The mapping key of the i-th value (zero-padded: key order is emission order)."""
    return f"k{i:03d}"


def worked(value: int) -> int:
    """What ``work`` makes of ``value`` (the test's expected collect)."""
    return value * 10


@contextmanager
def body(context: OpExecutionContext, **extra: Any) -> Iterator[None]:
    """Mark the body's start and, if it gets there, its end."""
    marks.leave_mark(context.run_id, context.op_handle, phase=STARTED, **extra)
    yield
    marks.leave_mark(context.run_id, context.op_handle, phase=COMPLETED)


class FanConfig(Config):
    count: int = 3  # mapping keys emitted


class WorkConfig(Config):
    hold: float = 0.0  # seconds each body runs
    stall_file: str = ""  # bodies starting once this file exists stall (mark: stalled=True) ...
    stall_worker: str = ""  # ... on this worker only (ORCHESTRATOR_TEST_WORKER), if set ...
    release_file: str = ""  # ... until this file exists (unset: until the test kills them)
    stall_timeout: float = 60.0  # a body stalled this long fails: the test never ended it


def stalls(config: WorkConfig) -> bool:
    return bool(
        config.stall_file
        and config.stall_worker in ("", os.environ.get(marks.WORKER_ENV))
        and Path(config.stall_file).exists()
    )


def stall(context: OpExecutionContext, config: WorkConfig) -> None:
    """Hold the body until the release file exists: the test kills or releases it meanwhile,
    finding it mid-body (not between its end mark and its report)."""
    deadline = time.monotonic() + config.stall_timeout
    while time.monotonic() < deadline:
        if config.release_file and Path(config.release_file).exists():
            return
        time.sleep(0.02)  # the test releases the body with a file: nothing to block on
    raise RuntimeError(f"{context.op_handle} stalled {config.stall_timeout}s: never released")


@op(out=DynamicOut())
def fan(context: OpExecutionContext, config: FanConfig) -> Iterator[DynamicOutput[int]]:
    with body(context):
        for i in range(config.count):
            yield DynamicOutput(i, mapping_key=mapping_key(i))


@op(tags={"fault": "fanout"})
def work(context: OpExecutionContext, config: WorkConfig, value: int) -> int:
    stalled = stalls(config)
    with body(context, stalled=stalled):
        if stalled:
            stall(context, config)
        if config.hold:
            time.sleep(config.hold)  # the step's work
        return worked(value)


@op
def merge(context: OpExecutionContext, values: list[int]) -> int:
    marks.leave_mark(context.run_id, context.op_handle, phase=STARTED)
    marks.leave_mark(context.run_id, context.op_handle, phase=COMPLETED, values=values)
    return len(values)


@job(executor_def=celery_executor)
def fan_out() -> None:
    merge(fan().map(work).collect())
