"""Dynamic fan-out on Celery with real processes: a wide fan-out spread over two workers, a
worker SIGKILLed in the middle of the mapped steps, and a coordinator SIGKILLed in the middle of
them. Each mapped step succeeds exactly once and the collect gets every value, in mapping-key
order."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator import RunStatus, reconstructable
from orchestrator.coordinator import launch_run
from orchestrator.events import Event
from orchestrator.execution.loop import ATTEMPT_LOST, LAUNCHED, MAPPING_RESOLVED
from orchestrator.storage.redis import RedisInstance
from tests.faults import dynamic_jobs, marks
from tests.faults.chains import ended
from tests.faults.conftest import fault_root
from tests.faults.dynamic_jobs import COMPLETED, STARTED, mapping_key, worked
from tests.faults.harness import Deployment, Proc, deployment, wait_until

WORKERS = ("w1", "w2")
TIMINGS = {"ORCHESTRATOR_LEASE_SECONDS": "4", "ORCHESTRATOR_HEARTBEAT_INTERVAL": "0.5"}


def start_worker(dep: Deployment, name: str) -> Proc:
    return dep.start_worker(name, module=dynamic_jobs.__name__)


def start_coordinator(dep: Deployment, name: str) -> Proc:
    return dep.start_coordinator(name, module=dynamic_jobs.__name__)


@pytest.fixture(scope="module")
def dep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment(tmp_path_factory.mktemp("dynamic-faults"), TIMINGS) as d:
        yield d


@pytest.fixture(autouse=True)
def processes(env: Deployment) -> Iterator[None]:
    """Both workers run when a test starts (a test may have killed one); the coordinators a
    test starts are stopped after it."""
    for name in WORKERS:
        if name not in env.procs or not env.procs[name].alive():
            start_worker(env, name)
    yield
    for name, proc in env.procs.items():
        if name not in WORKERS:
            proc.stop()


def launch(instance: RedisInstance, count: int, **config: Any) -> str:
    run_config: dict[str, Any] = {
        "ops": {"fan": {"config": {"count": count}}, "work": {"config": config.pop("work", {})}}
    }
    run_config.update(config)
    return launch_run(reconstructable(dynamic_jobs.fan_out), instance, run_config=run_config)


def step_keys(count: int) -> list[str]:
    return ["fan", *(f"work[{mapping_key(i)}]" for i in range(count)), "merge"]


def bodies(env: Deployment, run_id: str, phase: str) -> list[dict[str, Any]]:
    return [
        m for m in marks.marks(fault_root(env)) if m["run_id"] == run_id and m.get("phase") == phase
    ]


def completed(env: Deployment, run_id: str) -> Counter[str]:
    """Step key -> bodies that reached their end."""
    return Counter(m["step_key"] for m in bodies(env, run_id, COMPLETED))


def mapped_done(env: Deployment, run_id: str) -> int:
    return sum(n for key, n in completed(env, run_id).items() if key.startswith("work["))


def stalled(env: Deployment, run_id: str, count: int, expected: int) -> list[str] | None:
    """The mapped steps (of ``count``) whose bodies stalled, once there are ``expected`` of
    them; fails once too few mapped steps are left to stall."""
    keys = [m["step_key"] for m in bodies(env, run_id, STARTED) if m.get("stalled")]
    assert len(keys) <= expected, keys
    if len(keys) == expected:
        return keys
    assert mapped_done(env, run_id) + len(keys) < count, "too few mapped steps left to stall"
    return None


def of_type(events: list[Event], event_type: str) -> list[Event]:
    return [e for e in events if e.event_type_value == event_type]


def of_kind(events: list[Event], kind: str) -> list[Event]:
    return [e for e in of_type(events, "ENGINE_EVENT") if e.data.get("kind") == kind]


def collected(env: Deployment, run_id: str) -> list[int]:
    (merged,) = [m for m in bodies(env, run_id, COMPLETED) if m["step_key"] == "merge"]
    return list(merged["values"])


def assert_each_step_succeeded_once(
    env: Deployment, instance: RedisInstance, run_id: str, count: int
) -> list[Event]:
    """Every step of the run (fan, each mapped step, merge) has exactly one
    STEP_SUCCESS and one completed body; merge got every value in mapping-key order."""
    events = instance.all_events(run_id)
    keys = step_keys(count)
    assert Counter(e.step_key for e in of_type(events, "STEP_SUCCESS")) == Counter(keys)
    assert completed(env, run_id) == Counter(keys)
    assert collected(env, run_id) == [worked(i) for i in range(count)]
    (resolved,) = of_kind(events, MAPPING_RESOLVED)
    assert resolved.step_key == "fan"
    assert resolved.data["mapping_keys"] == [mapping_key(i) for i in range(count)]
    return events


def test_fan_out_to_200_mapped_steps_on_two_workers(
    env: Deployment, instance: RedisInstance
) -> None:
    # Given a coordinator and two workers
    start_coordinator(env, "coordinator")
    # When a run fans out to 200 mapped steps and collects them
    run_id = launch(instance, 200)
    statuses = wait_until("the run to end", lambda: ended(instance, [run_id]))
    # Then it succeeds, each step once, and merge gets the 200 values in mapping-key order
    assert statuses == {run_id: RunStatus.SUCCESS}
    events = assert_each_step_succeeded_once(env, instance, run_id, 200)
    # and the mapped steps ran on both workers (STEP_START says where: "<node> pid <pid>")
    used = Counter(
        str(e.data["worker"]).split("@")[0]
        for e in of_type(events, "STEP_START")
        if str(e.step_key).startswith("work[")
    )
    assert set(used) == set(WORKERS), used
    assert sum(used.values()) == 200


def test_worker_killed_among_mapped_steps(
    env: Deployment, instance: RedisInstance, tmp_path: Path
) -> None:
    # Given a run of 40 mapped steps of 0.3 s on two workers, w2 set to stall the bodies it
    # starts once the stall file exists
    count = 40
    stall = tmp_path / "stall"
    start_coordinator(env, "coordinator")
    work = {"hold": 0.3, "stall_worker": "w2", "stall_file": str(stall)}
    run_id = launch(instance, count, work=work)
    wait_until("some mapped steps to end", lambda: mapped_done(env, run_id) >= 8)
    stall.touch()
    killed = wait_until(
        "both of w2's pool processes to stall", lambda: stalled(env, run_id, count, 2)
    )
    # When w2 is SIGKILLed (main process and pool), its two bodies half-way
    env.procs["w2"].kill_all()
    done_at_kill = mapped_done(env, run_id)
    assert 8 <= done_at_kill < count
    statuses = wait_until("the run to end", lambda: ended(instance, [run_id]))
    # Then the run succeeds; every mapped step succeeded exactly once, and merge got every value
    assert statuses == {run_id: RunStatus.SUCCESS}
    events = assert_each_step_succeeded_once(env, instance, run_id, count)
    # The two bodies the kill interrupted were lost and run again, on w1: they are the only
    # steps that started twice.
    assert sorted(str(e.step_key) for e in of_kind(events, ATTEMPT_LOST)) == sorted(killed)
    started = Counter(m["step_key"] for m in bodies(env, run_id, STARTED))
    assert {key for key, n in started.items() if n > 1} == set(killed)
    again = [m for m in bodies(env, run_id, COMPLETED) if m["step_key"] in killed]
    assert {m["worker"] for m in again} == {"w1"}


def test_coordinator_killed_among_mapped_steps(
    env: Deployment, instance: RedisInstance, tmp_path: Path
) -> None:
    # Given a run of 20 mapped steps of 0.3 s, at most 2 at once (so most are not launched
    # yet), driven by a coordinator process; mapped bodies starting once the stall file exists
    # hold until the release file exists
    count = 20
    stall, release = tmp_path / "stall", tmp_path / "release"
    first = start_coordinator(env, "first")
    work = {"hold": 0.3, "stall_file": str(stall), "release_file": str(release)}
    limit = [{"key": "fault", "value": "fanout", "limit": 2}]
    run_id = launch(
        instance, count, work=work, execution={"config": {"tag_concurrency_limits": limit}}
    )
    wait_until("some mapped steps to end", lambda: mapped_done(env, run_id) >= 4)
    stall.touch()
    in_flight = wait_until(
        "both running mapped steps to stall", lambda: stalled(env, run_id, count, 2)
    )
    # When that coordinator is SIGKILLed with two mapped steps in flight, and, once another
    # coordinator has taken the run over, the two steps end
    first.kill_all()
    assert mapped_done(env, run_id) < count
    start_coordinator(env, "second")
    wait_until(
        "the second coordinator to resume the run",
        lambda: any("Resuming the run" in e.message for e in instance.all_events(run_id)),
    )
    stall.unlink()
    release.touch()
    statuses = wait_until("the run to end", lambda: ended(instance, [run_id]))
    # Then the run succeeds with every step run once: the second coordinator rebuilt the
    # mapped steps from the run's log, adopted the two in flight (their bodies were not started
    # again) and launched the mapped steps not launched yet, and merge
    assert statuses == {run_id: RunStatus.SUCCESS}
    events = assert_each_step_succeeded_once(env, instance, run_id, count)
    started = Counter(m["step_key"] for m in bodies(env, run_id, STARTED))
    assert started == Counter(step_keys(count)), "a step body started twice"
    launches = Counter(e.step_key for e in of_kind(events, LAUNCHED))
    assert launches == Counter(step_keys(count)), "a step was launched twice"
    (resumed,) = [i for i, e in enumerate(events) if "Resuming the run" in e.message]
    launched_after = {str(e.step_key) for e in of_kind(events[resumed:], LAUNCHED)}
    assert not launched_after & set(in_flight)
    assert "merge" in launched_after
    assert any(key.startswith("work[") for key in launched_after), launched_after
