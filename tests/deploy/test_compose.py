"""The docker-compose deployment, on a real Docker engine with real containers: the repository's
docker-compose.yml and deploy/Dockerfile, three workers, the one-off CLI, and the faults an
operator meets (a worker container killed or stopped mid-step, Redis restarted mid-run,
scaling while runs go on, down and up again).

Opt-in: ``ORCHESTRATOR_TEST_DOCKER=1`` (``.ci/run`` sets it after starting the engine). When it
is set and the engine does not answer, every test fails with the reason; nothing is skipped.
The tests of this module share one deployment and run in order.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from orchestrator import RunStatus
from orchestrator.concurrency.redis import RedisLimiter
from orchestrator.events import Event
from orchestrator.storage.redis import RedisInstance
from tests.deploy.compose import CODE, OPT_IN, REPO, Compose, engine_problem
from tests.waiting import wait_finished, wait_until

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get(OPT_IN),
        reason=f"compose tests need a Docker engine: set {OPT_IN}=1 (.ci/run does)",
    ),
    pytest.mark.timeout(900),
]

RUN_BOUND = 240.0  # a run of these jobs ends in seconds; the bound covers an 8 s lease lapse


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compose]:
    problem = engine_problem()
    if problem is not None:
        pytest.fail(f"{OPT_IN} is set but the Docker engine does not answer: {problem}")
    code = tmp_path_factory.mktemp("code")
    shutil.copy(REPO / "examples" / "distributed.py", code / "distributed.py")
    shutil.copy(CODE / "deploy_jobs.py", code / "deploy_jobs.py")
    for path in (code, *code.iterdir()):
        path.chmod(0o755)  # the image's user (uid 10001) reads the mount
    dep = Compose(code, workers=3)
    dep.down(volumes=True)  # what an interrupted earlier session left
    dep.build()
    dep.up()
    try:
        yield dep
    except BaseException:
        print(dep.logs())
        raise
    finally:
        dep.down(volumes=True)


@pytest.fixture(scope="module")
def instance(deployment: Compose) -> Iterator[RedisInstance]:
    inst = deployment.wait_redis()
    yield inst
    inst.close()


def finish(instance: RedisInstance, run_ids: list[str]) -> dict[str, RunStatus]:
    return wait_finished(instance, run_ids, RUN_BOUND)


def events_of(instance: RedisInstance, run_id: str, kind: str) -> list[Event]:
    return [e for e in instance.all_events(run_id) if e.event_type_value == kind]


def successes_per_step(instance: RedisInstance, run_ids: list[str]) -> Counter[tuple[str, str]]:
    return Counter(
        (r, e.step_key or "") for r in run_ids for e in events_of(instance, r, "STEP_SUCCESS")
    )


def assert_each_step_succeeded_once(instance: RedisInstance, run_ids: list[str]) -> None:
    counts = successes_per_step(instance, run_ids)
    assert counts and max(counts.values()) == 1, counts
    for run_id in run_ids:
        record = instance.get_run(run_id)
        assert record is not None
        planned = {e.step_key for e in instance.all_events(run_id) if e.step_key}
        assert {s for r, s in counts if r == run_id} == planned, run_id


def running_step(instance: RedisInstance, run_id: str) -> Event:
    """The run's first STEP_START whose step has not ended."""

    def started() -> Event | None:
        events = instance.all_events(run_id)
        ends = ("STEP_SUCCESS", "STEP_FAILURE")
        ended = {e.step_key for e in events if e.event_type_value in ends}
        for e in events:
            if e.event_type_value == "STEP_START" and e.step_key not in ended:
                return e
        return None

    return wait_until(f"a step of {run_id} to start", started, RUN_BOUND)  # type: ignore[no-any-return]


def slots_free(instance: RedisInstance) -> bool:
    limiter = RedisLimiter(instance.client, instance.keys)
    return all(not b.holders and not b.waiters for s in limiter.snapshot() for b in s.buckets)


# -- the tests, in order --------------------------------------------------------------------


def test_config_validates_and_needs_a_password(deployment: Compose) -> None:
    assert deployment.run("config", "-q", files=False).returncode == 0
    bare = dict(deployment.env)
    bare.pop("REDIS_PASSWORD")
    deployment.env, saved = bare, deployment.env
    try:
        out = deployment.run("config", "-q", check=False, files=False)
    finally:
        deployment.env = saved
    assert out.returncode != 0 and "REDIS_PASSWORD" in out.stderr


def test_services_become_healthy(deployment: Compose, instance: RedisInstance) -> None:
    containers = {
        service: deployment.containers(service)
        for service in ("redis", "coordinator", "worker", "ui")
    }
    assert len(containers["worker"]) == 3
    for service, ids in containers.items():
        for cid in ids:
            wait_until(
                f"{service} container {cid[:12]} to be healthy",
                lambda cid=cid: deployment.health(cid) == "healthy",
                RUN_BOUND,
            )
    # one Celery node per container, named after its own hostname
    hostnames = {deployment.hostname(c) for c in containers["worker"]}
    nodes = wait_until(
        "three registered workers",
        lambda: live if len(live := _live_workers(instance)) >= 3 else None,
        RUN_BOUND,
    )
    assert {n.partition("@")[2] for n in nodes} == hostnames


def _live_workers(instance: RedisInstance) -> list[str]:
    from orchestrator.distributed.workers import WorkerRegistry

    return sorted(WorkerRegistry(instance.client, instance.keys, 8.0).live_workers())


def test_distributed_example_runs_on_several_worker_containers(
    deployment: Compose, instance: RedisInstance
) -> None:
    run_id = deployment.launch("distributed.py", "warehouse_load", one_off=True)
    assert finish(instance, [run_id]) == {run_id: RunStatus.SUCCESS}
    starts = events_of(instance, run_id, "STEP_START")
    hosts = {e.data["worker"].split(" pid ")[0].partition("@")[2] for e in starts}
    assert len(starts) == 6 and len(hosts) >= 2, [e.data["worker"] for e in starts]
    shown = deployment.cli("run", "show", run_id)
    assert "succeeded" in shown and "Worker" in shown
    assert_each_step_succeeded_once(instance, [run_id])


def test_the_ui_container_launches_and_shows_runs(
    deployment: Compose, instance: RedisInstance
) -> None:
    import httpx

    base = f"http://127.0.0.1:{deployment.ui_port}"
    wait_until(
        "the UI to answer on the host's loopback",
        lambda: _answers(f"{base}/api/health"),
        RUN_BOUND,
    )
    with httpx.Client(base_url=base, timeout=30) as http:
        jobs = {j["name"] for j in http.get("/api/jobs").json()["jobs"]}
        assert "warehouse_load" in jobs
        launched = http.post("/api/runs", json={"job": "warehouse_load"})
        assert launched.status_code == 201, launched.text
        run_id = launched.json()["run_id"]
        assert finish(instance, [run_id]) == {run_id: RunStatus.SUCCESS}
        detail = http.get(f"/api/runs/{run_id}").json()
        assert all(s["state"] == "succeeded" and s["worker"] for s in detail["steps"])
        workers = http.get("/api/workers").json()["workers"]
        assert len(workers) >= 3
        assert "orchestrator_workers_live" in http.get("/metrics").text
        assert "/static/app.js" in http.get(f"/runs/{run_id}").text


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def test_cross_run_limit_set_with_the_cli_holds_across_containers(
    deployment: Compose, instance: RedisInstance
) -> None:
    deployment.cli("concurrency", "set", "database=warehouse", "2")
    # the containers' coordinators cache limit definitions for limits_ttl seconds (documented):
    # a coordinator that read them just before the set may start the first steps unlimited
    time.sleep(RedisLimiter(instance.client, instance.keys).limits_ttl + 0.5)
    try:
        # Which container takes a message is the broker's choice: one container with two
        # pool processes may take every step of a batch. Launch batches (at most four) until
        # the steps ran on two containers at least, so the limit is seen holding across them.
        run_ids: list[str] = []
        hosts: set[str] = set()
        for _ in range(4):
            batch = [deployment.launch("deploy_jobs.py", "limited") for _ in range(6)]
            assert set(finish(instance, batch).values()) == {RunStatus.SUCCESS}
            run_ids += batch
            hosts |= {
                events_of(instance, r, "STEP_START")[0].data["worker"].split(" pid ")[0]
                for r in batch
            }
            if len(hosts) >= 2:
                break
        assert len(hosts) >= 2, hosts
        intervals = []
        for run_id in run_ids:
            (start,) = events_of(instance, run_id, "STEP_START")
            (end,) = events_of(instance, run_id, "STEP_SUCCESS")
            intervals.append((start.timestamp, end.timestamp))
        # the steps' own timestamps: how many ran at once, at each start
        peak = max(sum(1 for s, e in intervals if s <= t < e) for t, _ in intervals)
        assert peak == 2, intervals
        assert slots_free(instance)
    finally:
        deployment.cli("concurrency", "delete", "database=warehouse")


def test_a_killed_worker_container_s_step_runs_again_elsewhere(
    deployment: Compose, instance: RedisInstance
) -> None:
    deployment.cli("concurrency", "set", "deploy=slow", "1")
    try:
        run_id = deployment.launch("deploy_jobs.py", "one_slow_step")
        start = running_step(instance, run_id)
        victim = deployment.container_of_worker(start.data["worker"])
        deployment.docker("kill", victim)
        assert finish(instance, [run_id]) == {run_id: RunStatus.SUCCESS}
        starts = events_of(instance, run_id, "STEP_START")
        assert len(starts) == 2 and starts[0].data["worker"] != starts[1].data["worker"]
        assert_each_step_succeeded_once(instance, [run_id])
        assert slots_free(instance)
    finally:
        deployment.cli("concurrency", "delete", "deploy=slow")
        deployment.up()  # three workers again


def test_redis_restart_while_runs_are_in_flight_loses_nothing(
    deployment: Compose, instance: RedisInstance
) -> None:
    run_ids = [deployment.launch("deploy_jobs.py", "chain") for _ in range(4)]
    running_step(instance, run_ids[0])
    deployment.run("restart", "redis")
    assert set(finish(instance, run_ids).values()) == {RunStatus.SUCCESS}
    assert_each_step_succeeded_once(instance, run_ids)


def test_a_stopped_worker_finishes_its_step_first(
    deployment: Compose, instance: RedisInstance
) -> None:
    run_id = deployment.launch("deploy_jobs.py", "one_slow_step")
    start = running_step(instance, run_id)
    victim = deployment.container_of_worker(start.data["worker"])
    deployment.docker("stop", "-t", "60", victim)  # what `docker compose stop` sends: SIGTERM
    assert finish(instance, [run_id]) == {run_id: RunStatus.SUCCESS}
    (only_start,) = events_of(instance, run_id, "STEP_START")  # finished, not handed over
    assert only_start.data["worker"] == start.data["worker"]
    assert_each_step_succeeded_once(instance, [run_id])
    deployment.up()


def test_scaling_down_and_up_while_runs_go_on(deployment: Compose, instance: RedisInstance) -> None:
    run_ids = [deployment.launch("deploy_jobs.py", "chain") for _ in range(8)]
    running_step(instance, run_ids[0])
    deployment.up(workers=1)
    assert len(deployment.containers("worker")) == 1
    time.sleep(2)  # runs go on with one worker
    deployment.up(workers=4)
    assert len(deployment.containers("worker")) == 4
    assert set(finish(instance, run_ids).values()) == {RunStatus.SUCCESS}
    assert_each_step_succeeded_once(instance, run_ids)


def test_data_survives_down_and_up_and_down_v_removes_it(
    deployment: Compose, instance: RedisInstance
) -> None:
    before = set(instance.get_run_ids())
    assert before
    instance.close()
    volumes = deployment.volumes()
    assert any(v.endswith("_redis-data") for v in volumes) and any(
        v.endswith("_outputs") for v in volumes
    )
    deployment.down()
    deployment.up(workers=1)
    after = deployment.wait_redis()
    try:
        listed = wait_until("runs listed after up", lambda: set(after.get_run_ids()) or None)
        assert before <= listed
        out = deployment.cli("run", "list", "--limit", "1000")  # every run, not the newest 20
        assert next(iter(before))[:8] in out
    finally:
        after.close()
    deployment.down(volumes=True)
    assert deployment.volumes() == []
