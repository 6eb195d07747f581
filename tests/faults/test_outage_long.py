"""Redis restarts while runs are in flight, longer than the lease: a real Valkey process stopped
and started again (its data kept in its append-only file) under real coordinator and worker
processes. Lease 4 s; Redis is down for 10 s: leases and heartbeats lapse meanwhile."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator import RunStatus, TagConcurrencyLimit
from orchestrator.concurrency.redis import RedisLimiter
from orchestrator.storage.redis import RedisInstance
from tests.faults import marks
from tests.faults.chains import ended, launch_chains, mid_chain, no_slot_held, outage
from tests.faults.conftest import fault_root
from tests.faults.harness import Deployment, deployment, wait_until


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    timings = {"ORCHESTRATOR_LEASE_SECONDS": "4", "ORCHESTRATOR_HEARTBEAT_INTERVAL": "0.5"}
    with deployment(tmp_path_factory.mktemp("long-outage"), timings) as d:
        d.start_worker("w1", concurrency=2)
        d.start_worker("w2", concurrency=2)
        d.start_coordinator()
        yield d


def test_runs_succeed_and_no_step_runs_more_than_twice(
    env: Deployment, instance: RedisInstance, limiter: RedisLimiter
) -> None:
    limiter.set_limit(TagConcurrencyLimit(key="warehouse", value="outage", limit=1))
    run_ids = launch_chains(instance, 3, hold=1.0)
    wait_until("the runs to be mid-chain", lambda: mid_chain(instance, env, run_ids))
    outage(env, 10.0)
    statuses = wait_until("the runs to end", lambda: ended(instance, run_ids))
    assert all(proc.alive() for proc in env.procs.values())
    assert set(statuses.values()) == {RunStatus.SUCCESS}
    counts = marks.body_counts(fault_root(env), run_ids)
    assert len(counts) == 15 and max(counts.values()) <= 2, counts
    assert no_slot_held(limiter)
