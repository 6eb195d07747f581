"""A real coordinator process SIGKILLed mid-run: the run waits, visibly, until another
coordinator adopts it and finishes it, each step once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator import RunStatus
from orchestrator.storage.redis import RedisInstance
from tests.faults import marks
from tests.faults.chains import ended, launch_chains
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
