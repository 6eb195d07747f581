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


def test_broker_honours_priority(cluster_env: Cluster, tmp_path: Path) -> None:
    import threading

    from tests.test_distributed import wait_until

    instance = Instance.from_settings()
    gate = {"dir": str(tmp_path)}
    # Given the only 'prio' worker slot held by a blocker
    blocker = threading.Thread(
        target=run,
        args=(celery_jobs.prio_blocker_job,),
        kwargs={"run_config": {"ops": {"prio_blocker": {"config": gate}}}},
    )
    blocker.start()
    wait_until("the blocker to start", (tmp_path / "blocker-started").exists)
    # When three steps of run priorities -5, 0 and 5 are queued behind it, lowest first
    threads, run_ids = [], {}
    for name, priority in (("low", -5), ("mid", 0), ("high", 5)):
        cfg = {"ops": {"ranked": {"config": {**gate, "name": name}}}}
        box: dict[str, object] = {}
        t = threading.Thread(
            target=lambda cfg=cfg, p=priority, b=box: b.update(
                result=run(
                    celery_jobs.ranked_job, run_config=cfg, tags={"orchestrator/priority": str(p)}
                )
            )
        )
        t.start()
        threads.append(t)
        run_ids[name] = box

        def launched(name: str = name) -> bool:
            runs = [
                r
                for r in instance.get_runs()
                if r.job_name == "ranked_job"
                and r.run_config["ops"]["ranked"]["config"]["name"] == name
            ]
            return bool(runs) and any(
                e.data.get("kind") == "step_launched" for e in instance.all_events(runs[0].run_id)
            )

        wait_until(f"{name} to be queued", launched)
    # Then, once the slot frees, they run highest priority first
    (tmp_path / "open").touch()
    blocker.join(timeout=60)
    for t in threads:
        t.join(timeout=60)
    ran = sorted(p.name for p in tmp_path.glob("ran-*"))
    order = [name.split("-")[1] for name in sorted(ran, key=lambda n: float(n.split("-")[2]))]
    assert order == ["high", "mid", "low"]
