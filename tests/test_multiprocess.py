"""The multiprocess executor: per-run limits, parallelism, dead children, IO managers."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import Instance, RunStatus, execute_job, reconstructable
from tests import mp_jobs
from tests.gauge import Gauge


def gauge_config(job_def, folder: Path) -> dict:  # type: ignore[no-untyped-def]
    return {"ops": {name: {"config": {"dir": str(folder)}} for name in job_def.op_nodes}}


def test_tag_limit_of_one_holds(tmp_path: Path) -> None:
    # Given 4 ops tagged database=redshift under a limit of 1, with room for 4 processes,
    # each waiting at a barrier until 2 bodies run at once (which a missing limit allows)
    result = execute_job(
        reconstructable(mp_jobs.redshift_limited),
        run_config=gauge_config(mp_jobs.redshift_limited, tmp_path),
    )
    # Then all succeed, and the bodies' own gauge never saw two at once
    assert result.success
    assert Gauge(tmp_path).peaks() == {"all": 1, "database=redshift": 1}
    waits = [e for e in result.all_events if e.data.get("kind") == "waiting_for_slot"]
    assert waits and "database=redshift" in waits[0].message


def test_limit_per_unique_value(tmp_path: Path) -> None:
    result = execute_job(
        reconstructable(mp_jobs.per_unique_value),
        run_config=gauge_config(mp_jobs.per_unique_value, tmp_path),
    )
    assert result.success
    # two redshift and two postgres bodies: one of each value at a time, side by side
    assert Gauge(tmp_path).peaks() == {
        "all": 2,
        "database=redshift": 1,
        "database=postgres": 1,
    }


def test_untagged_ops_run_in_parallel(tmp_path: Path) -> None:
    # Each op waits for the other's marker: both succeed only if they run at the same time.
    cfg = {"ops": {n: {"config": {"dir": str(tmp_path)}} for n in ("left", "right")}}
    result = execute_job(reconstructable(mp_jobs.parallel_pair), run_config=cfg)
    assert result.success, [e.message for e in result.get_step_failure_events()]
    assert {result.output_for_node("left"), result.output_for_node("right")} == {"left", "right"}


def test_sigkilled_child_fails_only_its_step() -> None:
    instance = Instance.ephemeral()
    result = execute_job(reconstructable(mp_jobs.dies_midway), instance=instance)
    assert not result.success
    assert result.run.status is RunStatus.FAILURE
    failures = result.get_step_failure_events()
    assert [e.step_key for e in failures] == ["killed"]
    assert "SIGKILL" in failures[0].message
    assert failures[0].data["exit_code"] == -9
    assert {e.step_key for e in result.get_step_success_events()} == {"one", "survivor"}
    assert [e.step_key for e in result.get_step_skipped_events()] == ["after_killed"]
    assert result.output_for_node("survivor") == 2


def test_hard_exit_reports_exit_code() -> None:
    result = execute_job(reconstructable(mp_jobs.exits_job))
    (failure,) = result.get_step_failure_events()
    assert "exit code 3" in failure.message


def test_unpicklable_output_names_step_and_output() -> None:
    result = execute_job(reconstructable(mp_jobs.unpicklable_job))
    (failure,) = result.get_step_failure_events()
    assert "'unpicklable'" in failure.message and "'result'" in failure.message
    assert failure.error is not None and failure.error.cls_name == "OutputStorageError"


def test_forkserver_and_fsspec_url(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/outputs"
    cfg = {"resources": {"io_manager": {"config": {"base_dir": url}}}}
    result = execute_job(reconstructable(mp_jobs.forkserver_chain), run_config=cfg)
    assert result.success
    assert result.output_for_node("double") == 42
    stored = list((tmp_path / "outputs" / result.run_id).rglob("*.pickle"))
    assert {p.parent.name for p in stored} == {"produce", "double"}


def test_not_reconstructable_job_gets_a_clear_error() -> None:
    from orchestrator import ReconstructionError, job, op

    @op
    def local_op() -> int:
        return 1

    @job
    def local_job() -> None:
        local_op()

    with pytest.raises(ReconstructionError, match="module level"):
        execute_job(local_job)


def test_in_process_switch_by_run_config() -> None:
    cfg = {"execution": {"config": {"in_process": {}}}}
    result = execute_job(reconstructable(mp_jobs.default_executor_chain), run_config=cfg)
    assert result.success
    assert result.output_for_node("double") == 42
    # the same job without that config runs its steps in child processes
    assert execute_job(reconstructable(mp_jobs.default_executor_chain)).success


def test_modified_copy_of_a_job_is_not_silently_the_original() -> None:
    from orchestrator import ReconstructionError, in_process_executor

    copy = mp_jobs.forkserver_chain.with_executor_def(in_process_executor)
    with pytest.raises(ReconstructionError, match="not a module-level attribute"):
        reconstructable(copy)
    subset = mp_jobs.forkserver_chain.get_subset(["produce"])
    assert reconstructable(subset).pointer.op_selection == ("produce",)


REUSE = {"execution": {"config": {"reuse_processes": True}}}


def test_reused_processes_run_successive_steps_in_one_child() -> None:
    fresh = execute_job(reconstructable(mp_jobs.two_pids))
    reused = execute_job(reconstructable(mp_jobs.two_pids), run_config=REUSE)
    first, second = fresh.output_for_node("pid_b")
    assert first != second  # a fresh process per step
    first, second = reused.output_for_node("pid_b")
    assert first == second  # one child ran both


def test_a_reused_child_killed_fails_only_its_step() -> None:
    result = execute_job(reconstructable(mp_jobs.dies_midway), run_config=REUSE)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "killed" and "SIGKILL" in failure.message
    assert {e.step_key for e in result.get_step_success_events()} == {"one", "survivor"}


def test_reused_processes_still_run_in_parallel_and_respect_limits(tmp_path: Path) -> None:
    cfg = {"ops": {n: {"config": {"dir": str(tmp_path)}} for n in ("left", "right")}, **REUSE}
    assert execute_job(reconstructable(mp_jobs.parallel_pair), run_config=cfg).success
    limited = gauge_config(mp_jobs.redshift_limited, tmp_path / "limited")
    result = execute_job(reconstructable(mp_jobs.redshift_limited), run_config={**limited, **REUSE})
    assert result.success
    assert Gauge(tmp_path / "limited").peaks() == {"all": 1, "database=redshift": 1}


def test_run_cancel_stops_a_multiprocess_run(
    valkey_url: str, key_prefix: str, tmp_path: Path
) -> None:
    import threading
    import time as _time

    from orchestrator.coordinator import cancel_run
    from orchestrator.storage.redis import RedisInstance

    instance = Instance.from_url(valkey_url, key_prefix=key_prefix)
    assert isinstance(instance, RedisInstance)
    box: dict[str, object] = {}
    cfg = {"ops": {"waits_for_cancel": {"config": {"dir": str(tmp_path)}}}}
    runner = threading.Thread(
        target=lambda: box.update(
            result=execute_job(
                reconstructable(mp_jobs.cancelable), instance=instance, run_config=cfg
            )
        )
    )
    runner.start()
    deadline = _time.monotonic() + 60
    while not (tmp_path / "started").exists() and _time.monotonic() < deadline:
        _time.sleep(0.02)  # the step's process is starting: a bounded wait
    (run,) = instance.get_runs()
    assert cancel_run(instance, run.run_id) == "CANCELING"
    runner.join(timeout=60)
    assert instance.get_run(run.run_id).status is RunStatus.CANCELED  # type: ignore[union-attr]
    failure = next(e for e in instance.all_events(run.run_id) if e.is_step_failure)
    assert "terminated (run canceled)" in failure.message


def test_the_last_steps_hooks_run_before_the_run_ends(tmp_path: Path) -> None:
    cfg = {"ops": {"last_step": {"config": {"dir": str(tmp_path)}}}}
    result = execute_job(reconstructable(mp_jobs.hooked_last_step), run_config=cfg)
    assert result.success
    assert (tmp_path / "hook-last_step").exists()
    assert any(e.event_type_value == "HOOK_COMPLETED" for e in result.all_events)
