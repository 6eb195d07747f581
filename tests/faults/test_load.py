"""Load: a thousand launched runs of a five-step Celery job on two workers under one
cross-run limit, driven by one real coordinator process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import RunsFilter, RunStatus, TagConcurrencyLimit, reconstructable
from orchestrator.concurrency.redis import RedisLimiter
from orchestrator.coordinator import launch_run
from orchestrator.storage.redis import RedisInstance
from tests.faults import jobs, marks
from tests.faults.chains import no_slot_held
from tests.faults.conftest import fault_root
from tests.faults.harness import Deployment, deployment, wait_until

RUNS = 1000


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    timings = {"ORCHESTRATOR_LEASE_SECONDS": "10", "ORCHESTRATOR_HEARTBEAT_INTERVAL": "1"}
    with deployment(tmp_path_factory.mktemp("load"), timings) as d:
        d.start_worker("w1", concurrency=2)
        d.start_worker("w2", concurrency=2)
        d.start_coordinator()
        yield d


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no thread count for {pid}")


@pytest.mark.timeout(600)
def test_a_thousand_launched_runs_all_succeed_and_leave_nothing_behind(
    env: Deployment, instance: RedisInstance, limiter: RedisLimiter
) -> None:
    coordinator = env.procs["coordinator"].process.pid
    idle_threads = threads_of(coordinator)
    # Given one limit of 2 on the third step of every run
    limiter.set_limit(TagConcurrencyLimit(key="database", value="load", limit=2))
    # When a thousand runs are launched at once
    recon = reconstructable(jobs.load5)
    run_ids = [launch_run(recon, instance) for _ in range(RUNS)]
    filters = RunsFilter(run_ids=run_ids)

    def unfinished() -> int:
        return sum(r.status is not RunStatus.SUCCESS for r in instance.get_runs(filters))

    wait_until("every run to succeed", lambda: unfinished() == 0, timeout=540)
    # Then every run succeeded, every step body ran exactly once, no slot is held, and the
    # coordinator is back to the threads it had when idle (nothing per run is left)
    statuses = {instance.get_run(r).status for r in run_ids}  # type: ignore[union-attr]
    assert statuses == {RunStatus.SUCCESS}
    counts = marks.body_counts(fault_root(env), run_ids)
    assert len(counts) == RUNS * 5 and set(counts.values()) == {1}
    assert no_slot_held(limiter)
    assert not instance.client.smembers(instance.keys.active_runs)
    wait_until(
        "the coordinator's run threads to end",
        lambda: threads_of(coordinator) <= idle_threads + 3,  # + pump, keeper, scheduler
        timeout=30,
    )
    assert env.procs["coordinator"].alive()
