"""Jobs for the Celery tests, loaded by module name by real worker processes.

Ops that must be observed from the test write small JSON files under the directory given in
their config (the worker that ran them), and limited ops count themselves in a gauge
(``tests.gauge``), so assertions rest on what the steps themselves recorded.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from orchestrator import Config, In, Nothing, celery_executor, graph, job, op
from tests.gauge import Gauge

WORKER_ENV = "ORCHESTRATOR_TEST_WORKER"


def worker_name() -> str:
    return os.environ.get(WORKER_ENV, "?")


class TraceConfig(Config):
    dir: str
    hold: float = 0.2
    barrier_bucket: str = "all"  # limited ops wait until this gauge bucket reaches barrier
    barrier: int = 0
    barrier_timeout: float = 10.0


def record(config: TraceConfig, name: str, **extra: object) -> None:
    Path(config.dir).mkdir(parents=True, exist_ok=True)
    start = time.time()
    time.sleep(config.hold)  # the step's "work", so overlaps would be visible
    final = Path(config.dir, f"{name}-{os.getpid()}-{start}.json")
    tmp = final.with_name(final.name + ".tmp")  # readers glob ``*.json``: never half a trace
    tmp.write_text(
        json.dumps(
            {"name": name, "start": start, "end": time.time(), "worker": worker_name(), **extra}
        )
    )
    tmp.rename(final)


@op
def seed() -> int:
    return 0


@op
def inc(x: int) -> int:
    return x + 1


@op
def where(x: int) -> str:
    return worker_name()


@op
def count(names: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in names:
        out[name] = out.get(name, 0) + 1
    return out


@job(executor_def=celery_executor)
def chain20() -> None:
    value = seed()
    for i in range(19):
        value = inc.alias(f"inc_{i}")(value)


@graph
def doubled(x: int) -> int:
    return inc.alias("twice")(inc(x))


@job(executor_def=celery_executor)
def nested_job() -> None:
    """seed -> doubled (inc -> twice) -> after: op selection walks top-level nodes."""
    inc.alias("after")(doubled(seed()))


@job(executor_def=celery_executor)
def fan50() -> None:
    s = seed()
    count([where.alias(f"leaf_{i}")(s) for i in range(50)])


def _traced(name: str, tags: dict[str, str]):  # type: ignore[no-untyped-def]
    @op(name=name, tags=tags)
    def _op(config: TraceConfig) -> None:
        buckets = ["all", *(f"{k}={v}" for k, v in tags.items())]
        barrier = (
            (config.barrier_bucket, config.barrier, config.barrier_timeout)
            if config.barrier
            else None
        )
        with Gauge(config.dir).running(buckets, barrier):
            record(config, name, tags=tags)

    return _op


redshift_ops = [_traced(f"redshift_{i}", {"database": "redshift"}) for i in range(3)]


@job(executor_def=celery_executor)
def redshift_job() -> None:
    for o in redshift_ops:
        o()


unique_ops = [_traced(f"db_{v}_{i}", {"database": v}) for v in ("a", "b") for i in range(2)]


@job(executor_def=celery_executor)
def unique_value_job() -> None:
    for o in unique_ops:
        o()


@op(tags={"orchestrator/queue": "gpu"})
def on_gpu() -> str:
    return worker_name()


@op
def on_default() -> str:
    return worker_name()


@job(executor_def=celery_executor)
def routed_job() -> None:
    on_gpu()
    on_default()


class MarkerConfig(Config):
    dir: str


@op
def kill_pool_child_once(config: MarkerConfig) -> str:
    """Kills its own process (the pool child) on the first attempt only."""
    marker = Path(config.dir, "killed-once")
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return worker_name()


@job(executor_def=celery_executor)
def pool_child_dies_job() -> None:
    kill_pool_child_once()


@op
def always_dies() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@job(executor_def=celery_executor)
def always_dies_job() -> None:
    always_dies()


@op(tags={"database": "wholeworker"})
def hang_first_time(config: MarkerConfig) -> str:
    """First attempt: announce (worker, pids) and wait to be killed with its worker; later
    attempts return at once."""
    started = Path(config.dir, "first-attempt.json")
    if not started.exists():
        started.write_text(
            json.dumps({"worker": worker_name(), "pid": os.getpid(), "ppid": os.getppid()})
        )
        time.sleep(120)  # the test kills this whole worker meanwhile
    return worker_name()


@job(executor_def=celery_executor)
def whole_worker_dies_job() -> None:
    hang_first_time()


@op(tags={"orchestrator/queue": "nobody-listens"})
def unconsumed() -> None:
    return None


@job(executor_def=celery_executor)
def unconsumed_job() -> None:
    unconsumed()


@op(tags={"orchestrator/queue": "pair"})
def quick() -> int:
    return 1


@job(executor_def=celery_executor)
def one_step() -> None:
    quick()


@op(tags={"database": "cancelme"})
def slow_tagged(config: TraceConfig) -> None:
    record(config, "slow_tagged")


@job(executor_def=celery_executor)
def cancel_job() -> None:
    for i in range(4):
        slow_tagged.alias(f"slow_{i}")()


@op
def boom() -> None:
    raise ValueError("boom in a worker")


@op(ins={"after": In(Nothing)})
def never() -> None:
    return None


@job(executor_def=celery_executor)
def failing_job() -> None:
    never(after=boom())


class GateConfig(Config):
    dir: str
    name: str = "blocker"


@op(tags={"orchestrator/queue": "prio"})
def prio_blocker(config: GateConfig) -> None:
    """Holds the only 'prio' worker slot until the test opens the gate."""
    Path(config.dir, "blocker-started").touch()
    deadline = time.monotonic() + 60
    while not Path(config.dir, "open").exists() and time.monotonic() < deadline:
        time.sleep(0.01)


@job(executor_def=celery_executor)
def prio_blocker_job() -> None:
    prio_blocker()


@op(tags={"orchestrator/queue": "prio"})
def ranked(config: GateConfig) -> None:
    Path(config.dir, f"ran-{config.name}-{time.time():.6f}").touch()


@job(executor_def=celery_executor)
def ranked_job() -> None:
    ranked()
