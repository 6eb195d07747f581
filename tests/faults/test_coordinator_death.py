"""A real coordinator process SIGKILLed mid-run: the run waits, visibly, until another
coordinator adopts it and finishes it, each step once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from orchestrator import RunStatus
from orchestrator.storage.redis import RedisInstance
from tests.faults import marks
from tests.faults.chains import chain_config, ended, launch_chains
from tests.faults.conftest import fault_root
from tests.faults.harness import Deployment, deployment, wait_until


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    timings = {"ORCHESTRATOR_LEASE_SECONDS": "4", "ORCHESTRATOR_HEARTBEAT_INTERVAL": "0.5"}
    with deployment(tmp_path_factory.mktemp("coordinator-death"), timings) as d:
        d.start_worker("w1", concurrency=2)
        yield d


def test_killed_coordinator_is_replaced_and_each_step_runs_once(
    env: Deployment, instance: RedisInstance
) -> None:
    # Given a run driven by a coordinator process, mid-chain
    first = env.start_coordinator("first")
    (run_id,) = launch_chains(instance, 1, hold=1.0)
    wait_until(
        "the second step to start",
        lambda: (run_id, "link_1") in marks.body_counts(fault_root(env), [run_id]),
    )
    # When that process is SIGKILLed (no clean-up of any kind)
    first.kill_all()

    # Then, once its lease lapses, `run show` says so and that nobody will adopt the run
    def lapsed_and_said() -> str | None:
        shown = env.run_cli(["run", "show", run_id])
        return shown.stdout if "stopped renewing its lease" in shown.stdout else None

    shown = wait_until("run show to report the lapsed lease", lapsed_and_said)
    assert "no coordinator is running" in shown
    assert instance.get_run(run_id).status is RunStatus.STARTED  # type: ignore[union-attr]
    # When a second coordinator starts, it adopts the run and finishes it
    env.start_coordinator("second")
    statuses = wait_until("the run to end", lambda: ended(instance, [run_id]))
    assert statuses == {run_id: RunStatus.SUCCESS}
    counts = marks.body_counts(fault_root(env), [run_id])
    assert len(counts) == 5 and set(counts.values()) == {1}, counts
    events = instance.all_events(run_id)
    assert any("Resuming the run" in e.message for e in events)
    assert [e.event_type_value for e in events].count("RUN_SUCCESS") == 1


def test_killed_job_execute_is_adopted(
    env: Deployment, instance: RedisInstance, tmp_path: Path
) -> None:
    # Given a running coordinator, and a run driven by an `orchestrator job execute` process
    if not any(p.alive() for n, p in env.procs.items() if n in ("second", "adopter")):
        env.start_coordinator("adopter")
    config = tmp_path / "chain.yaml"
    config.write_text(yaml.safe_dump(chain_config(1.0)))
    before = {r.run_id for r in instance.get_runs()}
    driver = env.spawn(
        "execute", ["job", "execute", "-m", "tests.faults.jobs", "-j", "chain5", "-c", str(config)]
    )

    def run_id() -> str | None:
        new = [r.run_id for r in instance.get_runs() if r.run_id not in before]
        return new[0] if new else None

    run = wait_until("the run to start", run_id)
    wait_until(
        "its second step to start",
        lambda: (run, "link_1") in marks.body_counts(fault_root(env), [run]),
    )
    # When that process is SIGKILLed
    driver.kill_all()
    # Then, once its lease lapses, a coordinator adopts the run and finishes it, each step once
    statuses = wait_until("the run to end", lambda: ended(instance, [run]))
    assert statuses == {run: RunStatus.SUCCESS}
    counts = marks.body_counts(fault_root(env), [run])
    assert len(counts) == 5 and set(counts.values()) == {1}, counts
    assert any("Resuming the run" in e.message for e in instance.all_events(run))
