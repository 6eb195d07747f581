"""Redis clients: blocking reads longer than redis-py's default timeout, and outages ridden out
with one line each way, against a real Valkey server stopped and started again."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator import Instance
from orchestrator.redis_client import connect
from tests.faults.harness import Valkey


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[Valkey]:
    server = Valkey(tmp_path / "valkey")
    server.start()
    yield server
    server.close()


def test_a_wait_longer_than_redis_py_default_timeout_returns_empty(
    valkey_url: str, key_prefix: str
) -> None:
    with Instance.from_url(valkey_url, key_prefix=key_prefix) as instance:
        assert instance.wait_for_events("no-run", None, timeout=6.0) == []


def test_commands_wait_out_a_restart_and_it_is_said_once_each_way(
    valkey: Valkey, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a client with data on a server that keeps an append-only file
    client = connect(valkey.url)
    client.set("kept", "yes")
    client.close()
    caplog.set_level(logging.WARNING, logger="orchestrator.redis")
    # When the server stops, three threads use the client, and the server comes back
    valkey.stop()
    results: list[str | None] = []

    def read() -> None:
        results.append(client.get("kept"))

    threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    restart = threading.Timer(1.5, valkey.start)
    restart.start()
    for thread in threads:
        thread.join(timeout=60)
    restart.join()
    # Then every call returned the stored value, and the outage was logged once each way
    assert results == ["yes", "yes", "yes"]
    lines = [r.getMessage() for r in caplog.records if r.name == "orchestrator.redis"]
    assert sum("does not answer" in line for line in lines) == 1, lines
    assert sum("answers again" in line for line in lines) == 1, lines


def test_patience_bounds_the_wait(valkey: Valkey) -> None:
    client = connect(valkey.url, patience=0.3)
    assert client.ping()
    valkey.stop()
    with pytest.raises(redis.ConnectionError):
        client.ping()
