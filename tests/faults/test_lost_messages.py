"""A worker takes a step's message and dies, whole, before claiming the attempt: the step
starts elsewhere within the lease time, not after the broker's visibility timeout (an hour
here), on the Redis broker and on RabbitMQ."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from orchestrator import RunStatus, reconstructable
from orchestrator.coordinator import launch_run
from orchestrator.storage.redis import RedisInstance
from tests.faults import jobs, marks
from tests.faults.chains import ended
from tests.faults.conftest import fault_root
from tests.faults.harness import Deployment, deployment, wait_until

RABBIT_ENV = "ORCHESTRATOR_TEST_RABBITMQ_URL"
TIMINGS = {
    "ORCHESTRATOR_LEASE_SECONDS": "4",
    "ORCHESTRATOR_HEARTBEAT_INTERVAL": "0.5",
    "ORCHESTRATOR_VISIBILITY_TIMEOUT": "3600",
}


def rabbitmq_url() -> str:
    url = os.environ.get(RABBIT_ENV)
    if not url:
        # the RabbitMQ variant of the lost-message test; the Redis-broker variant always runs
        pytest.skip(f"{RABBIT_ENV} is not set (.ci/run sets it when RabbitMQ answers)")
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:  # asked for and absent: a failure, not a silent skip
        pytest.fail(f"{RABBIT_ENV}={url} is set but does not answer: {exc}")
    return url


@pytest.fixture(scope="module", params=["redis", "rabbitmq"])
def dep(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    broker = rabbitmq_url() if request.param == "rabbitmq" else None
    root = tmp_path_factory.mktemp(f"lost-message-{request.param}")
    with deployment(root, TIMINGS, broker) as d:
        die = {jobs.DIE_BEFORE_CLAIM_ENV: str(root / "died-for-doomed")}
        d.start_worker("d1", "doomed", concurrency=1, extra_env=die)
        d.start_worker("d2", "doomed", concurrency=1, extra_env=die)
        d.start_coordinator()
        yield d


def test_step_taken_by_a_dying_worker_runs_elsewhere(
    env: Deployment, instance: RedisInstance, request: pytest.FixtureRequest
) -> None:
    # Given two workers on queue 'doomed', each set to die (main process and pool) the first
    # time one of them receives the step, after taking its message and before claiming it
    run_id = launch_run(reconstructable(jobs.doomed_job), instance)
    # When the run goes on
    statuses = wait_until("the run to end", lambda: ended(instance, [run_id]))
    # Then one worker died holding the message, and the step ran once, on the other one,
    # long before the broker would have given the message back (visibility timeout: 1 h)
    victim = (env.root / "died-for-doomed").read_text()
    assert not env.procs[victim].alive()
    assert statuses == {run_id: RunStatus.SUCCESS}
    assert marks.body_counts(fault_root(env), [run_id]) == {(run_id, "doomed"): 1}
    survivor = ({"d1", "d2"} - {victim}).pop()
    assert [m["worker"] for m in marks.marks(fault_root(env))] == [survivor]
    if "redis" in request.node.callspec.id:
        # The Redis broker keeps the message until the visibility timeout: the coordinator
        # saw its holder die and sent the step again (RabbitMQ gives it back by itself).
        resent = [e for e in instance.all_events(run_id) if e.data.get("kind") == "step_resent"]
        assert len(resent) == 1 and victim in resent[0].message
