"""When ``job execute`` starts a local worker pool for a Celery run (the README's first command
shows it end to end, in ``test_readme.py``): only on the embedded server, only for a Celery
job, only when no live worker consumes the job's queues. Checked against a real Valkey server
and its real worker registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator import job, op
from orchestrator.cli.local_workers import job_queues, needs_local_pool
from orchestrator.definitions.executor import celery_executor
from orchestrator.distributed.workers import WorkerRegistry
from orchestrator.storage.redis import RedisInstance


@op
def plain() -> int:
    return 1


@op(tags={"orchestrator/queue": "gpu"})
def on_gpu(x: int) -> int:
    return x


@job(executor_def=celery_executor)
def celery_two_queues() -> None:
    on_gpu(plain())


@job
def local_job() -> None:
    plain()


@pytest.fixture
def instance(valkey_url: str, key_prefix: str) -> Iterator[RedisInstance]:
    inst = RedisInstance.from_url(valkey_url, key_prefix)
    yield inst
    inst.close()


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings as on the embedded server: no Redis URL configured."""
    monkeypatch.delenv("ORCHESTRATOR_REDIS_URL", raising=False)


def test_the_queues_of_a_job_come_from_its_ops_tags() -> None:
    assert job_queues(celery_two_queues) == {"orchestrator", "gpu"}


def test_embedded_celery_job_with_no_worker_needs_a_pool(
    instance: RedisInstance, embedded: None
) -> None:
    assert needs_local_pool(celery_two_queues, instance) == {"orchestrator", "gpu"}


def test_a_live_worker_for_every_queue_means_no_pool(
    instance: RedisInstance, embedded: None
) -> None:
    registry = WorkerRegistry(instance.client, instance.keys, 30.0)
    registry.register_worker("w1@host", ["orchestrator"], [])
    # one queue still has no consumer: a pool is needed for both
    assert needs_local_pool(celery_two_queues, instance) == {"orchestrator", "gpu"}
    registry.register_worker("w2@host", ["gpu"], [])
    assert needs_local_pool(celery_two_queues, instance) == set()


def test_a_dead_worker_does_not_count(instance: RedisInstance, embedded: None) -> None:
    registry = WorkerRegistry(instance.client, instance.keys, 30.0)
    registry.register_worker("w1@host", ["orchestrator", "gpu"], [])
    instance.client.delete(instance.keys.registry_beat("worker", "w1@host"))
    assert needs_local_pool(celery_two_queues, instance) == {"orchestrator", "gpu"}


def test_never_with_a_configured_redis_url(
    instance: RedisInstance, valkey_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_REDIS_URL", valkey_url)
    assert needs_local_pool(celery_two_queues, instance) == set()


def test_never_for_a_job_that_does_not_run_on_celery(
    instance: RedisInstance, embedded: None
) -> None:
    assert needs_local_pool(local_job, instance) == set()
