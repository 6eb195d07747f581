"""Cross-run limits bind every run on the shared instance, whatever its executor, launched or
executed: real coordinator and worker processes, `job execute` processes, and the step bodies'
own gauge as the witness."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator import RunStatus, TagConcurrencyLimit, reconstructable
from orchestrator.concurrency.redis import RedisLimiter
from orchestrator.coordinator import launch_run
from orchestrator.storage.redis import RedisInstance
from tests.faults import jobs, marks
from tests.faults.conftest import fault_root
from tests.faults.harness import Deployment, deployment, wait_until

TIMINGS = {
    "ORCHESTRATOR_LEASE_SECONDS": "10",
    "ORCHESTRATOR_HEARTBEAT_INTERVAL": "0.5",
    "ORCHESTRATOR_NO_CONSUMER_DELAY": "60",
}


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment(tmp_path_factory.mktemp("limits"), TIMINGS) as d:
        d.start_worker("w1", concurrency=3)
        d.start_worker("w2", concurrency=3)
        d.start_coordinator()
        yield d


def limited_config(job: Any, bucket: str, barrier: int) -> dict[str, Any]:
    cfg = {"hold": 0.3, "barrier_bucket": bucket, "barrier": barrier}
    return {"ops": {name: {"config": cfg} for name in job.op_nodes}}


def execute_in_subprocess(dep: Deployment, tmp: Path, job_name: str, cfg: dict[str, Any]) -> Any:
    path = tmp / f"{job_name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return dep.spawn(
        f"execute-{job_name}-{len(dep.procs)}",
        ["job", "execute", "-m", "tests.faults.jobs", "-j", job_name, "-c", str(path)],
    )


def finished(instance: RedisInstance, run_ids: list[str]) -> dict[str, RunStatus] | None:
    records = [instance.get_run(r) for r in run_ids]
    if all(r is not None and r.is_finished for r in records):
        return {r.run_id: r.status for r in records if r is not None}
    return None


def no_slot_held(limiter: RedisLimiter) -> bool:
    return all(not b.holders and not b.waiters for s in limiter.snapshot() for b in s.buckets)


def test_limit_binds_celery_and_multiprocess_runs_launched_and_executed(
    env: Deployment, instance: RedisInstance, limiter: RedisLimiter, tmp_path: Path
) -> None:
    # Given a deployment-wide limit of 2 on database=redshift
    limiter.set_limit(TagConcurrencyLimit(key="database", value="redshift", limit=2))
    # When six runs of three redshift steps start at once: three on Celery, three on the
    # multiprocess executor, some launched for the coordinator, some executed by
    # `orchestrator job execute` processes (6 Celery worker slots, 3 processes per mp run)
    launched = [
        launch_run(
            reconstructable(job),
            instance,
            run_config=limited_config(job, "database=redshift", 2),
        )
        for job in (jobs.redshift_celery, jobs.redshift_celery, jobs.redshift_mp)
    ]
    executed = [
        execute_in_subprocess(env, tmp_path, job.name, limited_config(job, "database=redshift", 2))
        for job in (jobs.redshift_celery, jobs.redshift_mp, jobs.redshift_mp)
    ]
    for proc in executed:
        assert proc.process.wait(timeout=120) == 0, proc.output()
    wait_until("the launched runs to end", lambda: finished(instance, launched))
    # Then every run succeeded and every step body ran exactly once ...
    runs = [r for r in instance.get_runs() if r.job_name.startswith("redshift_")]
    assert len(runs) == 6 and {r.status for r in runs} == {RunStatus.SUCCESS}
    counts = marks.body_counts(fault_root(env))
    assert len(counts) == 18 and set(counts.values()) == {1}
    # ... the bodies' own gauge reached 2 at once (the barrier waits for it) and never more
    assert marks.gauge_peaks(fault_root(env))["database=redshift"] == 2
    # ... steps of every kind of run waited for a slot, naming the limit
    waits = {
        r.job_name
        for r in runs
        for e in instance.all_events(r.run_id)
        if e.data.get("kind") == "waiting_for_slot" and "database=redshift" in e.message
    }
    assert waits == {"redshift_celery", "redshift_mp"}
    # ... and no slot is held afterwards
    assert no_slot_held(limiter)


def test_per_unique_value_limit_binds_each_value_across_executors(
    env: Deployment, instance: RedisInstance, limiter: RedisLimiter, tmp_path: Path
) -> None:
    # Given each value of tenant limited to 1 across the deployment
    limiter.set_limit(
        TagConcurrencyLimit(key="tenant", value={"applyLimitPerUniqueValue": True}, limit=1)
    )
    # When Celery and multiprocess runs each run two steps of tenant a and two of tenant b,
    # every body waiting (barrier) until two bodies have run at once
    launched = [
        launch_run(reconstructable(job), instance, run_config=limited_config(job, "all", 2))
        for job in (jobs.tenants_celery, jobs.tenants_mp)
    ]
    proc = execute_in_subprocess(
        env, tmp_path, "tenants_celery", limited_config(jobs.tenants_celery, "all", 2)
    )
    assert proc.process.wait(timeout=120) == 0, proc.output()
    statuses = wait_until("the launched runs to end", lambda: finished(instance, launched))
    # Then all succeed, each body once; each value ran one step at a time, and different
    # values ran side by side
    assert set(statuses.values()) == {RunStatus.SUCCESS}, [
        e.message for r in launched for e in instance.all_events(r) if "FAIL" in e.event_type_value
    ]
    counts = marks.body_counts(fault_root(env))
    assert len(counts) == 12 and set(counts.values()) == {1}
    peaks = marks.gauge_peaks(fault_root(env))
    assert peaks["tenant=a"] == 1 and peaks["tenant=b"] == 1
    assert peaks["all"] == 2
    assert no_slot_held(limiter)


def test_in_process_run_on_a_shared_instance_waits_for_its_slot(
    env: Deployment, instance: RedisInstance, limiter: RedisLimiter, tmp_path: Path
) -> None:
    # Given a limit of 1 on gate=one, held by a Celery step that waits for a gate file
    limiter.set_limit(TagConcurrencyLimit(key="gate", value="one", limit=1))
    # processes cache limit definitions for limits_ttl seconds (documented): a coordinator
    # that read them just before would start the holder unlimited
    time.sleep(limiter.limits_ttl + 0.5)
    gate = tmp_path / "gate-open"
    holder = launch_run(
        reconstructable(jobs.gate_holder),
        instance,
        run_config={"ops": {"hold_gate": {"config": {"gate": str(gate)}}}},
    )
    wait_until(
        "the holder's body to start",
        lambda: marks.body_counts(fault_root(env), [holder]),
    )
    assert any(
        h.run_id == holder for state in limiter.snapshot() for b in state.buckets for h in b.holders
    ), "the holder runs without holding the slot"
    # When an in-process run on the same instance wants the same slot
    box: dict[str, Any] = {}

    def run_in_process() -> None:
        box["result"] = jobs.gate_waiter.execute_in_process(
            instance=instance,
            run_config={"ops": {"after_gate": {"config": {"gate": str(gate)}}}},
        )

    thread = threading.Thread(target=run_in_process)
    thread.start()

    def waiting_run() -> str | None:
        for record in instance.get_runs():
            if record.job_name == "gate_waiter" and any(
                e.data.get("kind") == "waiting_for_slot" for e in instance.all_events(record.run_id)
            ):
                return record.run_id
        return None

    waiter = wait_until("the in-process step to wait for its slot", waiting_run)
    # Then it has not run while the slot is held; once the holder ends, it runs
    assert not marks.body_counts(fault_root(env), [waiter])
    gate.touch()
    thread.join(timeout=120)
    result = box["result"]
    assert result.success
    assert result.output_for_node("after_gate") is True  # it started after the gate opened
    assert finished(instance, [holder]) == {holder: RunStatus.SUCCESS}
    assert no_slot_held(limiter)
