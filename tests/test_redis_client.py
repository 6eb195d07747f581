"""Redis clients wait longer than any single block the project issues (a blocking read used to
time out at redis-py's default socket timeout while the server was about to answer)."""

from __future__ import annotations

from orchestrator import Instance
from orchestrator.redis_client import MAX_BLOCK_SECONDS, SOCKET_TIMEOUT_SECONDS, connect


def test_socket_timeout_exceeds_the_longest_block(valkey_url: str) -> None:
    client = connect(valkey_url)
    assert client.connection_pool.connection_kwargs["socket_timeout"] == SOCKET_TIMEOUT_SECONDS
    assert SOCKET_TIMEOUT_SECONDS > MAX_BLOCK_SECONDS


def test_a_wait_longer_than_redis_py_default_timeout_returns_empty(
    valkey_url: str, key_prefix: str
) -> None:
    with Instance.from_url(valkey_url, key_prefix=key_prefix) as instance:
        assert instance.wait_for_events("no-run", None, timeout=6.0) == []
