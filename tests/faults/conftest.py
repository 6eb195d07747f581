"""Fixtures of the fault suite: each test module starts the deployment it needs (a Valkey
server with an append-only file, workers, coordinators) as real processes, and every test in
it points the test process at that deployment."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import Instance
from orchestrator.concurrency.redis import RedisLimiter
from orchestrator.storage.redis import RedisInstance
from tests.faults import marks
from tests.faults.harness import Deployment


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.fault)


@pytest.fixture
def env(dep: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    """The test process uses the deployment's settings; marks, the gauge and limits start
    empty."""
    for key, value in dep.env.items():
        monkeypatch.setenv(key, value)
    shutil.rmtree(dep.env[marks.DIR_ENV], ignore_errors=True)
    yield dep
    limiter = RedisLimiter(dep.client(), dep.keys)
    for limit in limiter.list_limits():
        limiter.delete_limit(limit.key, limit.value)


@pytest.fixture
def instance(env: Deployment) -> Iterator[RedisInstance]:
    inst = Instance.from_settings()
    assert isinstance(inst, RedisInstance)
    yield inst
    inst.close()


@pytest.fixture
def limiter(instance: RedisInstance) -> RedisLimiter:
    return RedisLimiter(instance.client, instance.keys)


def fault_root(dep: Deployment) -> Path:
    return Path(dep.env[marks.DIR_ENV])
