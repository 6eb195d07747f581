"""Redis restarts while runs are in flight, shorter than the lease: a real Valkey process stopped
and started again (its data kept in its append-only file) under real coordinator and worker
processes. Lease 15 s; Redis is down for 5 s."""

from __future__ import annotations

import time
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
    timings = {"ORCHESTRATOR_LEASE_SECONDS": "15", "ORCHESTRATOR_HEARTBEAT_INTERVAL": "1"}
    with deployment(tmp_path_factory.mktemp("short-outage"), timings) as d:
        d.start_worker("w1", concurrency=2)
        d.start_worker("w2", concurrency=2)
        d.start_coordinator()
        yield d


def test_runs_carry_on_and_no_step_runs_twice(
    env: Deployment, instance: RedisInstance, limiter: RedisLimiter
) -> None:
    # Given three Celery runs mid-chain, with steps waiting on a limit of 1
    limiter.set_limit(TagConcurrencyLimit(key="warehouse", value="outage", limit=1))
    run_ids = launch_chains(instance, 3, hold=1.0)
    wait_until("the runs to be mid-chain", lambda: mid_chain(instance, env, run_ids))
    # When Redis stops for 5 s and comes back with its data
    outage(env, 5.0)
    statuses = wait_until("the runs to end", lambda: ended(instance, run_ids))
    # Then coordinator and workers are alive, every run succeeded, every step body ran
    # exactly once, and no slot is held
    assert all(proc.alive() for proc in env.procs.values()), {
        name: proc.output()[-2000:] for name, proc in env.procs.items() if not proc.alive()
    }
    assert set(statuses.values()) == {RunStatus.SUCCESS}
    counts = marks.body_counts(fault_root(env), run_ids)
    assert len(counts) == 15 and set(counts.values()) == {1}, counts
    assert no_slot_held(limiter)
    # and the coordinator said so, once per outage, in one line each way
    log = env.procs["coordinator"].output()
    assert log.count("does not answer") == 1 and log.count("answers again") == 1, log


def test_cancel_sent_during_an_outage_is_delivered(
    env: Deployment, instance: RedisInstance
) -> None:
    # Given a run whose first step runs for a long time
    (run_id,) = launch_chains(instance, 1, hold=60.0)
    wait_until("its first step", lambda: marks.body_counts(fault_root(env), [run_id]))
    # When Redis is down while `run cancel` is asked, and comes back later
    env.valkey.stop()
    cancel = env.spawn("cancel", ["run", "cancel", run_id, "--wait", "60"])
    time.sleep(3.0)  # the outage goes on while the cancel waits
    env.valkey.start()
    assert cancel.process.wait(timeout=60) == 0, cancel.output()
    # Then the cancel was not lost: the run ends CANCELED, its later steps never ran
    assert "does not answer" in cancel.output()
    statuses = wait_until("the run to end", lambda: ended(instance, [run_id]))
    assert statuses == {run_id: RunStatus.CANCELED}
    assert set(marks.body_counts(fault_root(env), [run_id])) == {(run_id, "origin")}
