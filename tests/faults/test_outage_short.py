"""Redis restarts while runs are in flight, shorter than the lease: a real Valkey process stopped
and started again (its data kept in its append-only file) under real coordinator and worker
processes. Lease 15 s; Redis is down for 5 s."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from orchestrator import RunStatus, TagConcurrencyLimit
from orchestrator.concurrency.redis import RedisLimiter
from orchestrator.storage.redis import RedisInstance
from tests.faults import marks
from tests.faults.chains import (
    chain_config,
    ended,
    launch_chains,
    mid_chain,
    no_slot_held,
    outage,
)
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
    env: Deployment, instance: RedisInstance, limiter: RedisLimiter, tmp_path: Path
) -> None:
    # Given three launched Celery runs and one run of `job execute`, mid-chain, with steps
    # waiting on a limit of 1; `run logs --follow` on one of them; and `orchestrator dev`
    limiter.set_limit(TagConcurrencyLimit(key="warehouse", value="outage", limit=1))
    dev = env.spawn("dev", ["dev", "-m", "tests.faults.jobs", "-c", "1"])
    wait_until("dev to be ready", lambda: "Stop with Ctrl-C" in dev.output(), timeout=60)
    before = {r.run_id for r in instance.get_runs()}
    config = tmp_path / "chain.yaml"
    config.write_text(yaml.safe_dump(chain_config(1.0)))
    executed = env.spawn(
        "execute", ["job", "execute", "-m", "tests.faults.jobs", "-j", "chain5", "-c", str(config)]
    )
    run_ids = launch_chains(instance, 3, hold=1.0)
    follow = env.spawn("follow", ["run", "logs", run_ids[0], "--follow"])
    run_ids += wait_until(
        "the executed run",
        lambda: [r.run_id for r in instance.get_runs() if r.run_id not in {*before, *run_ids}],
    )
    wait_until("the runs to be mid-chain", lambda: mid_chain(instance, env, run_ids))
    # When Redis stops for 5 s and comes back with its data
    outage(env, 5.0)
    statuses = wait_until("the runs to end", lambda: ended(instance, run_ids))
    # Then every run succeeded, every step body ran exactly once, and no slot is held
    assert set(statuses.values()) == {RunStatus.SUCCESS}
    counts = marks.body_counts(fault_root(env), run_ids)
    assert len(counts) == 20 and set(counts.values()) == {1}, counts
    assert no_slot_held(limiter)
    # ... `job execute` and `run logs --follow` ended by themselves, successfully, and the
    # follower printed the end of its run
    assert executed.process.wait(timeout=60) == 0, executed.output()
    assert follow.process.wait(timeout=60) == 0, follow.output()
    assert "RUN_SUCCESS" in follow.output()
    # ... coordinator, workers and dev are alive, and said so, once each way
    alive = ("coordinator", "w1", "w2", "dev")
    assert all(env.procs[name].alive() for name in alive), {
        name: env.procs[name].output()[-2000:] for name in alive if not env.procs[name].alive()
    }
    for name, processes in (("coordinator", 1), ("execute", 1), ("dev", 2)):  # dev: + its worker
        log = env.procs[name].output()
        assert log.count("does not answer") == processes, log
        assert log.count("answers again") == processes, log


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
