"""Cross-run limits, launched runs, the coordinator, faults and cancellation, with real
Celery worker processes on the embedded Valkey."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator import Instance, RunStatus, TagConcurrencyLimit, execute_job, reconstructable
from orchestrator.concurrency.redis import RedisLimiter
from orchestrator.coordinator import Coordinator, cancel_run, launch_run
from orchestrator.storage.redis import RedisInstance
from tests import celery_jobs
from tests.celery_support import Cluster
from tests.gauge import Gauge
from tests.waiting import BOUND, wait_finished, wait_until


@pytest.fixture
def instance(cluster_env: Cluster) -> Iterator[RedisInstance]:
    inst = Instance.from_settings()
    assert isinstance(inst, RedisInstance)
    yield inst
    inst.close()


@pytest.fixture
def limiter(instance: RedisInstance) -> Iterator[RedisLimiter]:
    lim = RedisLimiter(instance.client, instance.keys, 2.5)
    yield lim
    for limit in lim.list_limits():
        lim.delete_limit(limit.key, limit.value)


@pytest.fixture
def coordinator(instance: RedisInstance) -> Iterator[Coordinator]:
    coord = Coordinator(instance, max_concurrent_runs=50)
    thread = threading.Thread(target=coord.serve, daemon=True)
    thread.start()
    yield coord
    coord.stop()
    thread.join(timeout=30)


def traces(trace_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in trace_dir.glob("*.json") if p.name != "gauge.json"]


def launch_many(
    instance: RedisInstance, job: Any, count: int, cfg: dict[str, Any] | None = None
) -> list[str]:
    recon = reconstructable(job)
    return [launch_run(recon, instance, run_config=cfg) for _ in range(count)]


def trace_cfg(
    job: Any,
    trace_dir: Path,
    hold: float = 0.3,
    barrier: int = 0,
    bucket: str = "all",
    barrier_timeout: float = 10.0,
) -> dict[str, Any]:
    """Each op holds ``hold`` seconds; with ``barrier``, it first waits until ``barrier`` ops
    run at once in the gauge's ``bucket`` (or a timeout), so bodies overlap whenever the
    limits let them and a peak above the limit would show it."""
    cfg = {
        "dir": str(trace_dir),
        "hold": hold,
        "barrier": barrier,
        "barrier_bucket": bucket,
        "barrier_timeout": barrier_timeout,
    }
    return {"ops": {name: {"config": cfg} for name in job.op_nodes}}


# -- cross-run limits --------------------------------------------------------------------------


def test_cross_run_limit_holds_across_six_runs(
    instance: RedisInstance, limiter: RedisLimiter, coordinator: Coordinator, tmp_path: Path
) -> None:
    # Given a deployment-wide limit of 2 on database=redshift and 6 workers' worth of slots
    limiter.set_limit(TagConcurrencyLimit(key="database", value="redshift", limit=2))
    # When 6 runs of 3 redshift steps each are launched at once
    run_ids = launch_many(
        instance,
        celery_jobs.redshift_job,
        6,
        trace_cfg(celery_jobs.redshift_job, tmp_path, barrier=2),
    )
    statuses = wait_finished(instance, run_ids)
    # Then all succeed, and the tagged steps' own gauge shows 2 at once, never more
    assert set(statuses.values()) == {RunStatus.SUCCESS}
    assert len(traces(tmp_path)) == 18
    assert Gauge(tmp_path).peaks()["database=redshift"] == 2
    waits = [
        e
        for r in run_ids
        for e in instance.all_events(r)
        if e.data.get("kind") == "waiting_for_slot"
    ]
    assert waits and "database=redshift" in waits[0].message
    assert all(not b.holders and not b.waiters for s in limiter.snapshot() for b in s.buckets)


def test_cross_run_limit_per_unique_value(
    instance: RedisInstance, limiter: RedisLimiter, coordinator: Coordinator, tmp_path: Path
) -> None:
    limiter.set_limit(
        TagConcurrencyLimit(key="database", value={"applyLimitPerUniqueValue": True}, limit=1)
    )
    run_ids = launch_many(
        instance,
        celery_jobs.unique_value_job,
        3,
        trace_cfg(celery_jobs.unique_value_job, tmp_path, barrier=2),
    )
    assert set(wait_finished(instance, run_ids).values()) == {RunStatus.SUCCESS}
    peaks = Gauge(tmp_path).peaks()
    assert peaks["database=a"] == 1 and peaks["database=b"] == 1
    assert peaks["all"] == 2  # different values do run side by side


def test_key_value_limit_beside_key_wide_limit(
    instance: RedisInstance, limiter: RedisLimiter, coordinator: Coordinator, tmp_path: Path
) -> None:
    limiter.set_limit(TagConcurrencyLimit(key="database", limit=2))
    limiter.set_limit(TagConcurrencyLimit(key="database", value="redshift", limit=1))
    # (fair order: a redshift step first in line for `database` holds the others back, so
    # bodies may wait alone at the barrier; a short one keeps the test quick)
    cfg = {"barrier": 2, "bucket": "all", "barrier_timeout": 1.0}
    run_ids = launch_many(
        instance, celery_jobs.redshift_job, 2, trace_cfg(celery_jobs.redshift_job, tmp_path, **cfg)
    )
    run_ids += launch_many(
        instance,
        celery_jobs.unique_value_job,
        2,
        trace_cfg(celery_jobs.unique_value_job, tmp_path, **cfg),
    )
    assert set(wait_finished(instance, run_ids).values()) == {RunStatus.SUCCESS}
    peaks = Gauge(tmp_path).peaks()
    assert peaks["database=redshift"] == 1
    assert peaks["all"] == 2


# -- launched runs -----------------------------------------------------------------------------


def test_hundred_launched_runs_with_two_worker_slots(
    instance: RedisInstance, coordinator: Coordinator
) -> None:
    run_ids = launch_many(instance, celery_jobs.one_step, 100)
    statuses = wait_finished(instance, run_ids)
    assert set(statuses.values()) == {RunStatus.SUCCESS}
    first = [instance.all_events(r)[0].event_type_value for r in run_ids]
    assert set(first) == {"RUN_ENQUEUED"}  # each was queued, then picked up by the coordinator


def test_launch_run_takes_a_job_and_the_deployment_instance(
    instance: RedisInstance, coordinator: Coordinator
) -> None:
    # Given the public launch_run, a job definition and no instance (the settings name it)
    import orchestrator

    # When a run is launched with a selection and tags, as a script would
    run_id = orchestrator.launch_run(
        celery_jobs.chain20, op_selection=["seed", "inc_0"], tags={"team": "data"}
    )
    # Then the coordinator runs just the selected steps, under the given tags
    assert wait_finished(instance, [run_id]) == {run_id: RunStatus.SUCCESS}
    record = instance.get_run(run_id)
    assert record is not None and record.tags["team"] == "data"
    ran = {e.step_key for e in instance.all_events(run_id) if e.event_type_value == "STEP_SUCCESS"}
    assert ran == {"seed", "inc_0"}


def test_launched_runs_select_top_level_nodes_and_take_graph_inputs(
    instance: RedisInstance, coordinator: Coordinator
) -> None:
    import orchestrator

    def ran(run_id: str) -> set[str]:
        events = instance.all_events(run_id)
        return {e.step_key or "" for e in events if e.event_type_value == "STEP_SUCCESS"}

    # a graph is one node: one hop up from it is `seed`, and it runs whole
    walked = orchestrator.launch_run(celery_jobs.nested_job, op_selection=["+doubled"])
    # the graph alone, its input given at the graph's level
    alone = orchestrator.launch_run(
        celery_jobs.nested_job,
        op_selection=["doubled"],
        run_config={"ops": {"doubled": {"inputs": {"x": 10}}}},
    )
    statuses = wait_finished(instance, [walked, alone])
    assert set(statuses.values()) == {RunStatus.SUCCESS}
    assert ran(walked) == {"seed", "doubled.inc", "doubled.twice"}
    assert ran(alone) == {"doubled.inc", "doubled.twice"}
    # a worker's output events travel with the step's final event, in order
    kinds = [e.event_type_value for e in instance.all_events(alone) if e.step_key == "doubled.inc"]
    ends = kinds[kinds.index("STEP_OUTPUT") :]
    assert ends == ["STEP_OUTPUT", "HANDLED_OUTPUT", "STEP_SUCCESS"], kinds
    with pytest.raises(orchestrator.DagsterInvalidSubsetError, match="dotted"):
        orchestrator.launch_run(celery_jobs.nested_job, op_selection=["doubled.inc+"])


def test_launch_run_on_an_in_memory_instance_says_what_to_pass() -> None:
    import orchestrator

    with pytest.raises(orchestrator.OrchestratorError, match="shared Redis instance"):
        orchestrator.launch_run(celery_jobs.one_step, Instance.ephemeral())


def test_step_on_a_queue_nobody_consumes_is_reported(
    instance: RedisInstance, coordinator: Coordinator
) -> None:
    (run_id,) = launch_many(instance, celery_jobs.unconsumed_job, 1)
    report = wait_until(
        "the no-consumer report",
        lambda: [e for e in instance.all_events(run_id) if e.data.get("kind") == "no_consumer"],
    )
    assert "nobody-listens" in report[0].message
    assert instance.get_run(run_id).status is RunStatus.STARTED  # type: ignore[union-attr]
    cancel_run(instance, run_id)
    assert wait_finished(instance, [run_id]) == {run_id: RunStatus.CANCELED}


def test_cancel_frees_waiting_and_running_slots(
    instance: RedisInstance, limiter: RedisLimiter, coordinator: Coordinator, tmp_path: Path
) -> None:
    limiter.set_limit(TagConcurrencyLimit(key="database", value="cancelme", limit=1))
    (run_id,) = launch_many(
        instance, celery_jobs.cancel_job, 1, trace_cfg(celery_jobs.cancel_job, tmp_path, hold=60)
    )

    def running_and_waiting() -> bool:
        events = instance.all_events(run_id)
        started = any(e.event_type_value == "STEP_START" for e in events)
        waiting = sum(e.data.get("kind") == "waiting_for_slot" for e in events)
        return started and waiting >= 3

    wait_until("one step running and three waiting", running_and_waiting)
    assert cancel_run(instance, run_id) == "CANCELING"
    assert wait_finished(instance, [run_id]) == {run_id: RunStatus.CANCELED}
    held = [
        lease
        for s in limiter.snapshot()
        for b in s.buckets
        for lease in (*b.holders, *b.waiters)
        if lease.run_id == run_id
    ]
    assert held == []


def test_queued_run_is_canceled_at_once(instance: RedisInstance) -> None:
    # no coordinator: the run stays queued, and cancel ends it directly
    (run_id,) = launch_many(instance, celery_jobs.one_step, 1)
    assert cancel_run(instance, run_id) == "CANCELED"
    assert instance.get_run(run_id).status is RunStatus.CANCELED  # type: ignore[union-attr]


def test_coordinator_death_is_survived(instance: RedisInstance, tmp_path: Path) -> None:
    # Given a run driven by a coordinator that stops mid-run (its owner key then lapses)
    first = Coordinator(instance)
    thread = threading.Thread(target=first.serve, daemon=True)
    thread.start()
    (run_id,) = launch_many(
        instance,
        celery_jobs.redshift_job,
        1,
        trace_cfg(celery_jobs.redshift_job, tmp_path, hold=1.0),
    )
    wait_until(
        "a step to start",
        lambda: any(e.event_type_value == "STEP_START" for e in instance.all_events(run_id)),
    )
    first.stop_event.set()  # stops serving and renewing; its run thread keeps going
    instance.client.delete(instance.keys.run_owner(run_id))  # as if it had died and lapsed
    # When another coordinator starts, it adopts the run and finishes it
    second = Coordinator(instance)
    adopted = wait_until("the run to be adopted", second.adopt_orphans)
    assert adopted == [run_id]
    assert wait_finished(instance, [run_id]) == {run_id: RunStatus.SUCCESS}
    second.join(timeout=30)
    successes = [e for e in instance.all_events(run_id) if e.event_type_value == "STEP_SUCCESS"]
    assert sorted(e.step_key for e in successes) == ["redshift_0", "redshift_1", "redshift_2"]
    # the first coordinator's driver saw it lost the run and stopped, writing no end of its own
    first.join(timeout=30)
    ends = [e for e in instance.all_events(run_id) if e.event_type_value.startswith("RUN_SUCC")]
    assert len(ends) == 1


def test_a_cancel_that_races_the_queue_pop_still_cancels(instance: RedisInstance) -> None:
    from orchestrator.distributed.ownership import RunOwnership, claim_next_run

    (run_id,) = launch_many(instance, celery_jobs.one_step, 1)
    coord = Coordinator(instance)
    assert claim_next_run(instance.client, instance.keys, coord.id, 10.0) == run_id
    # the run is off the queue but not started when the cancel arrives
    assert cancel_run(instance, run_id) == "CANCELING"
    coord._drive(RunOwnership(instance.client, instance.keys, run_id, coord.id, 10.0))
    assert instance.get_run(run_id).status is RunStatus.CANCELED  # type: ignore[union-attr]
    assert not instance.client.sismember(instance.keys.active_runs, run_id)


# -- faults ------------------------------------------------------------------------------------


def test_whole_worker_killed_mid_step(
    cluster_env: Cluster, instance: RedisInstance, limiter: RedisLimiter, tmp_path: Path
) -> None:
    limiter.set_limit(TagConcurrencyLimit(key="database", value="wholeworker", limit=1))
    cfg = {"ops": {"hang_first_time": {"config": {"dir": str(tmp_path)}}}}
    box: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: box.update(
            result=execute_job(
                reconstructable(celery_jobs.whole_worker_dies_job),
                instance=instance,
                run_config=cfg,
            )
        )
    )
    runner.start()
    marker = tmp_path / "first-attempt.json"
    wait_until("the first attempt to start", marker.exists)
    victim = json.loads(marker.read_text())["worker"]
    # When the whole worker (main process and pool) is SIGKILLed during the step
    cluster_env.workers[victim].kill_all()
    runner.join(timeout=BOUND)
    result = box["result"]
    # Then the step ran again on the other worker, once, and its slot is back
    assert result.success
    assert result.output_for_node("hang_first_time") != victim
    assert len(result.get_step_success_events()) == 1
    assert [e.data.get("kind") for e in result.all_events].count("attempt_lost") == 1
    assert all(not b.holders and not b.waiters for s in limiter.snapshot() for b in s.buckets)
    cluster_env.replace(victim)
