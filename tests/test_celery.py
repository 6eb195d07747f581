"""The Celery executor against real worker processes and the embedded Valkey."""

from __future__ import annotations

from pathlib import Path

from orchestrator import Instance, RunStatus, execute_job, reconstructable
from tests import celery_jobs
from tests.celery_support import Cluster


def run(job, **kwargs):  # type: ignore[no-untyped-def]
    return execute_job(reconstructable(job), instance=Instance.from_settings(), **kwargs)


def test_chain_of_20(cluster_env: Cluster) -> None:
    result = run(celery_jobs.chain20)
    assert result.success
    assert result.output_for_node("inc_18") == 19
    assert len(result.get_step_success_events()) == 20


def test_fan_out_of_50_uses_both_workers(cluster_env: Cluster) -> None:
    result = run(celery_jobs.fan50)
    assert result.success
    counts = result.output_for_node("count")
    assert sum(counts.values()) == 50
    assert set(counts) == {"w1", "w2"}


def test_failure_skips_downstream(cluster_env: Cluster) -> None:
    result = run(celery_jobs.failing_job)
    assert not result.success
    assert result.run.status is RunStatus.FAILURE
    (failure,) = result.get_step_failure_events()
    assert "boom in a worker" in failure.message
    assert [e.step_key for e in result.get_step_skipped_events()] == ["never"]


def test_queue_routing(cluster_env: Cluster) -> None:
    result = run(celery_jobs.routed_job)
    assert result.success
    assert result.output_for_node("on_gpu") == "gpu"
    assert result.output_for_node("on_default") in {"w1", "w2"}


def test_pool_child_killed_runs_again(cluster_env: Cluster, tmp_path: Path) -> None:
    cfg = {"ops": {"kill_pool_child_once": {"config": {"dir": str(tmp_path)}}}}
    result = run(celery_jobs.pool_child_dies_job, run_config=cfg)
    assert result.success
    lost = [e for e in result.all_events if e.data.get("kind") == "attempt_lost"]
    assert len(lost) == 1
    assert len(result.get_step_success_events()) == 1


def test_step_that_always_kills_its_process_fails_after_max_lost(cluster_env: Cluster) -> None:
    result = run(celery_jobs.always_dies_job)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert "max_lost_attempts" in failure.message
    lost = [e for e in result.all_events if e.data.get("kind") == "attempt_lost"]
    assert len(lost) == 2  # attempts 1 and 2 lost; the 3rd loss fails the step
