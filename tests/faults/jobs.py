"""Jobs of the fault suite, loaded by module name by real workers and coordinators.

Every op leaves a mark when its body starts (``tests.faults.marks``); ops under test limits
also go through the gauge and its barrier. Timings come from run config, so each test says
how long its steps hold.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from orchestrator import (
    Config,
    OpExecutionContext,
    celery_executor,
    in_process_executor,
    job,
    multiprocess_executor,
    op,
)
from tests.faults import marks

DIE_BEFORE_CLAIM_ENV = "ORCHESTRATOR_FAULT_DIE_BEFORE_CLAIM"

# -- limits ----------------------------------------------------------------------------------


class LimitConfig(Config):
    hold: float = 0.3  # seconds the body runs (so bodies overlap when limits allow it)
    barrier_bucket: str = ""  # wait until this gauge bucket's peak reaches barrier
    barrier: int = 0
    barrier_timeout: float = 20.0


def limited_body(context: OpExecutionContext, config: LimitConfig, buckets: list[str]) -> None:
    marks.leave_mark(context.run_id, context.op_handle, buckets=buckets)
    barrier = (
        (config.barrier_bucket, config.barrier, config.barrier_timeout) if config.barrier else None
    )
    with marks.gauge().running(buckets, barrier):
        time.sleep(config.hold)  # the step's work


def _limited_op(name: str, tags: dict[str, str]) -> Any:
    buckets = ["all", *(f"{k}={v}" for k, v in tags.items())]

    @op(name=name, tags=tags)
    def _op(context: OpExecutionContext, config: LimitConfig) -> None:
        limited_body(context, config, buckets)

    return _op


redshift_ops = [_limited_op(f"redshift_{i}", {"database": "redshift"}) for i in range(3)]
tenant_ops = [
    _limited_op(f"tenant_{value}_{i}", {"tenant": value}) for value in ("a", "b") for i in range(2)
]

_MP = multiprocess_executor.configured({"max_concurrent": 3})


def _all(ops: list[Any]) -> None:
    for o in ops:
        o()


@job(executor_def=celery_executor)
def redshift_celery() -> None:
    _all(redshift_ops)


@job(executor_def=_MP)
def redshift_mp() -> None:
    _all(redshift_ops)


@job(executor_def=in_process_executor)
def redshift_inproc() -> None:
    _all(redshift_ops)


@job(executor_def=celery_executor)
def tenants_celery() -> None:
    _all(tenant_ops)


@job(executor_def=_MP)
def tenants_mp() -> None:
    _all(tenant_ops)


# -- a step that holds a slot until the test opens a gate -------------------------------------


class GateConfig(Config):
    gate: str  # file whose existence lets the body finish
    timeout: float = 60.0


@op(tags={"gate": "one"})
def hold_gate(context: OpExecutionContext, config: GateConfig) -> None:
    marks.leave_mark(context.run_id, context.op_handle)
    deadline = time.monotonic() + config.timeout
    while not Path(config.gate).exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # the test opens the gate: a file, nothing to block on


@job(executor_def=celery_executor)
def gate_holder() -> None:
    hold_gate()


@op(tags={"gate": "one"})
def after_gate(context: OpExecutionContext, config: GateConfig) -> bool:
    """Returns whether the gate was open when the body started (it can only start once the
    holder has released the slot, which it does after the gate opens)."""
    marks.leave_mark(context.run_id, context.op_handle)
    return Path(config.gate).exists()


@job(executor_def=in_process_executor)
def gate_waiter() -> None:
    after_gate()


# -- chains (outages, coordinator death, load) -----------------------------------------------


class HoldConfig(Config):
    hold: float = 0.0


def _chain_op(name: str, tags: dict[str, str] | None = None) -> Any:
    @op(name=name, tags=tags or {})
    def _op(context: OpExecutionContext, config: HoldConfig, x: int) -> int:
        marks.leave_mark(context.run_id, context.op_handle)
        if config.hold:
            time.sleep(config.hold)
        return x + 1

    return _op


@op
def origin(context: OpExecutionContext, config: HoldConfig) -> int:
    marks.leave_mark(context.run_id, context.op_handle)
    if config.hold:
        time.sleep(config.hold)
    return 0


_links = [
    _chain_op("link_1"),
    _chain_op("link_2", {"warehouse": "outage"}),
    _chain_op("link_3", {"warehouse": "outage"}),
    _chain_op("link_4"),
]


@job(executor_def=celery_executor)
def chain5() -> None:
    value = origin()
    for link in _links:
        value = link(value)


# -- a step whose worker dies after taking its message, before claiming it ---------------------


@op(tags={"orchestrator/queue": "doomed"})
def doomed(context: OpExecutionContext) -> str:
    marks.leave_mark(context.run_id, context.op_handle)
    return os.environ.get(marks.WORKER_ENV, "?")


@job(executor_def=celery_executor)
def doomed_job() -> None:
    doomed()


def _die_before_claim(task_id: Any = None, task: Any = None, args: Any = None, **_: Any) -> None:
    """Worker hook (task_prerun, in the pool process, before the step task's body claims the
    attempt): the first worker to get the 'doomed' step dies whole, main process and pool."""
    if task is None or not args or args[0].get("step_key") != "doomed":
        return
    marker = Path(os.environ[DIE_BEFORE_CLAIM_ENV])
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return  # someone died for this already
    os.write(fd, os.environ.get(marks.WORKER_ENV, "?").encode())
    os.close(fd)
    os.killpg(os.getpgrp(), signal.SIGKILL)


if os.environ.get(DIE_BEFORE_CLAIM_ENV):
    from celery import signals

    signals.task_prerun.connect(_die_before_claim, weak=False)


# -- load ------------------------------------------------------------------------------------


def _quick_op(name: str, tags: dict[str, str] | None = None) -> Any:
    @op(name=name, tags=tags or {})
    def _op(context: OpExecutionContext, x: int) -> int:
        marks.leave_mark(context.run_id, context.op_handle)
        return x + 1

    return _op


@op
def load_origin(context: OpExecutionContext) -> int:
    marks.leave_mark(context.run_id, context.op_handle)
    return 0


_load_links = [
    _quick_op("load_1"),
    _quick_op("load_2", {"database": "load"}),
    _quick_op("load_3"),
    _quick_op("load_4"),
]


@job(executor_def=celery_executor)
def load5() -> None:
    value = load_origin()
    for link in _load_links:
        value = link(value)
