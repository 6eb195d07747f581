"""Redis connections, made one way everywhere.

redis-py gives clients a short default socket timeout; a blocking read (``XREAD BLOCK``,
``BZPOPMIN``) longer than it fails with a timeout just as the server answers. Clients here get
a socket timeout well above the longest single block the project issues
(:data:`MAX_BLOCK_SECONDS`); longer waits are made of several blocks.
"""

from __future__ import annotations

import redis

MAX_BLOCK_SECONDS = 10.0
SOCKET_TIMEOUT_SECONDS = MAX_BLOCK_SECONDS + 20.0


def connect(url: str) -> redis.Redis:
    """A client for ``url`` (``redis://``, ``rediss://`` for TLS, ``unix://``; passwords in
    the URL), returning strings."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        health_check_interval=30,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=10,
        socket_keepalive=True,
    )
