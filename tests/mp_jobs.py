"""Jobs for multiprocess-executor tests, loaded by module name in child processes.

Limited ops count themselves in a gauge under ``config.dir`` (``tests.gauge``) and wait at its
barrier, so a missing limit shows as a higher peak, with no timing assertion; rendezvous ops
prove parallelism the same way: each waits for its partner's marker file, which only appears
if both run at once.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from orchestrator import Config, In, Nothing, job, multiprocess_executor, op, success_hook
from tests.gauge import Gauge


class GaugeConfig(Config):
    dir: str
    barrier: int = 2  # wait until this many bodies ran at once in "all" ...
    barrier_timeout: float = 1.0  # ... or this long (what a limit makes them do)


def _traced(name: str, tags: dict[str, str]):  # type: ignore[no-untyped-def]
    buckets = ["all", *(f"{k}={v}" for k, v in tags.items())]

    @op(name=name, tags=tags, ins={"after": In(Nothing)})
    def _op(config: GaugeConfig) -> None:
        barrier = ("all", config.barrier, config.barrier_timeout)
        with Gauge(config.dir).running(buckets, barrier):
            pass

    return _op


def _limited_job(name: str, limits: list[dict], tag_values: list[str]):  # type: ignore[no-untyped-def]
    ops = [_traced(f"tagged_{i}", {"database": v}) for i, v in enumerate(tag_values)]

    @job(
        name=name,
        executor_def=multiprocess_executor.configured(
            {"max_concurrent": 4, "tag_concurrency_limits": limits}
        ),
    )
    def _job() -> None:
        for o in ops:
            o()

    return _job


redshift_limited = _limited_job(
    "redshift_limited", [{"key": "database", "value": "redshift", "limit": 1}], ["redshift"] * 4
)
per_unique_value = _limited_job(
    "per_unique_value",
    [{"key": "database", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}],
    ["redshift", "redshift", "postgres", "postgres"],
)


class RendezvousConfig(Config):
    dir: str
    timeout: float = 30.0


def _rendezvous(name: str, partner: str):  # type: ignore[no-untyped-def]
    @op(name=name)
    def _op(config: RendezvousConfig) -> str:
        Path(config.dir, name).touch()
        deadline = time.monotonic() + config.timeout
        while not Path(config.dir, partner).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{partner} never ran while {name} was running")
            time.sleep(0.01)
        return name

    return _op


left, right = _rendezvous("left", "right"), _rendezvous("right", "left")


@job(executor_def=multiprocess_executor.configured({"max_concurrent": 2}))
def parallel_pair() -> None:
    left()
    right()


@op
def one() -> int:
    return 1


@op
def killed(x: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return x


@op
def after_killed(x: int) -> int:
    return x


@op
def survivor(x: int) -> int:
    return x + 1


@job(executor_def=multiprocess_executor)
def dies_midway() -> None:
    n = one()
    after_killed(killed(n))
    survivor(n)


@op
def exits_hard() -> None:
    os._exit(3)


@job(executor_def=multiprocess_executor)
def exits_job() -> None:
    exits_hard()


@op
def unpicklable() -> object:
    return lambda: None


@job(executor_def=multiprocess_executor)
def unpicklable_job() -> None:
    unpicklable()


@op
def produce() -> int:
    return 21


@op
def double(x: int) -> int:
    return x * 2


@job(executor_def=multiprocess_executor.configured({"start_method": {"forkserver": {}}}))
def forkserver_chain() -> None:
    double(produce())


@job
def default_executor_chain() -> None:
    double(produce())


@op
def pid_a() -> int:
    return os.getpid()


@op
def pid_b(previous: int) -> list[int]:
    return [previous, os.getpid()]


@job(executor_def=multiprocess_executor.configured({"max_concurrent": 1}))
def two_pids() -> None:
    pid_b(pid_a())


class WaitConfig(Config):
    dir: str


@op
def waits_for_cancel(config: WaitConfig) -> None:
    Path(config.dir, "started").touch()
    time.sleep(60)  # the test cancels the run meanwhile


@op
def after_wait() -> None:
    return None


@job(executor_def=multiprocess_executor)
def cancelable() -> None:
    waits_for_cancel()
    after_wait.alias("also_runs")()


def chain_body() -> None:
    """A job body other modules turn into jobs of their own (tests.shared_body_jobs)."""
    double(produce())


class HookDirConfig(Config):
    dir: str


@success_hook
def leave_mark(context) -> None:  # type: ignore[no-untyped-def]
    Path(
        context.op_config["dir"] if isinstance(context.op_config, dict) else context.op_config.dir,
        f"hook-{context.op_handle}",
    ).touch()


@op
def last_step(config: HookDirConfig) -> int:
    return 1


@job(executor_def=multiprocess_executor, hooks={leave_mark})
def hooked_last_step() -> None:
    last_step()
