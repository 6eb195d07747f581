"""Redis connections, made one way everywhere, and how they ride out an outage.

Timeouts: redis-py gives clients a short default socket timeout; a blocking read (``XREAD
BLOCK``, ``BLPOP``) longer than it fails with a timeout just as the server answers. Clients here
get a socket timeout well above the longest single block the project issues
(:data:`MAX_BLOCK_SECONDS`); longer waits are made of several blocks.

Outages: every command (and every connection attempt) goes through :class:`OutageRetry`. When
the server stops answering (restart, failover, network cut) a command is retried with capped
exponential backoff instead of failing, so coordinators, workers and run drivers carry on where
they were once Redis is back. Each process logs one line when an outage of a server begins and
one when it ends (logger ``orchestrator.redis``), however many threads were waiting. ``patience``
bounds the wait: ``None`` waits as long as it takes (long-lived processes), a number of seconds
makes a command give up with the last connection error (one-shot commands).

A command cut off after the server ran it but before its reply arrived is sent again. The
writes that matter are safe to repeat (attempt claims and finishes, lease scripts, ownership
renewals); a repeated event append can store an event twice, which readers tolerate.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import AbstractBackoff
from redis.retry import Retry

MAX_BLOCK_SECONDS = 10.0
SOCKET_TIMEOUT_SECONDS = MAX_BLOCK_SECONDS + 20.0
CONNECT_TIMEOUT_SECONDS = 5.0
MAX_CONNECTIONS = 64  # per client (process), see connect()
BACKOFF_FIRST_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 2.0

log = logging.getLogger("orchestrator.redis")

T = TypeVar("T")

# Jitter draws from its own generator: background threads retrying must not move the global
# random state that user code (and property-based tests) may rely on.
_JITTER = random.Random()


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (safe to print)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class Outage:
    """Whether one server is unreachable from this process, and since when (shared by every
    connection to it, so an outage is logged once, not once per thread or connection)."""

    def __init__(self, url: str):
        self.url = redact_url(url)
        self.down_since: float | None = None  # monotonic time of the first failure
        self._lock = threading.Lock()

    def failed(self, error: BaseException) -> None:
        with self._lock:
            if self.down_since is not None:
                return
            self.down_since = time.monotonic()
        log.warning(
            "Redis at %s does not answer (%s: %s); retrying until it does",
            self.url,
            type(error).__name__,
            error,
        )

    def recovered(self) -> None:
        with self._lock:
            since, self.down_since = self.down_since, None
        if since is not None:
            log.warning(
                "Redis at %s answers again after %.1f s; carrying on",
                self.url,
                time.monotonic() - since,
            )


_outages: dict[str, Outage] = {}
_outages_lock = threading.Lock()


def outage_for(url: str) -> Outage:
    """The process-wide outage tracker of the server at ``url``."""
    with _outages_lock:
        if url not in _outages:
            _outages[url] = Outage(url)
        return _outages[url]


class _Backoff(AbstractBackoff):
    """Exponential backoff with full jitter, from 50 ms up to 2 s."""

    def reset(self) -> None:
        return None

    def compute(self, failures: int) -> float:
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** min(failures, 16))
        return _JITTER.uniform(ceiling / 2, ceiling)


class OutageRetry(Retry):
    """redis-py's retry policy with a deadline instead of a count, and outage logging.

    Args:
        outage: the server's outage tracker.
        patience: seconds a call keeps retrying before it raises; None: no limit.
    """

    def __init__(self, outage: Outage, patience: float | None):
        super().__init__(
            _Backoff(),
            -1,
            (redis.ConnectionError, redis.TimeoutError, OSError),
        )
        self.outage = outage
        self.patience = patience

    def __deepcopy__(self, memo: dict[int, Any]) -> OutageRetry:
        # redis-py copies the retry object into every connection: keep the tracker shared.
        return OutageRetry(self.outage, self.patience)

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        failures = 0
        deadline: float | None = None
        while True:
            try:
                result = do()
            except self._supported_errors as error:
                if isinstance(error, redis.AuthenticationError) or (
                    is_retryable and not is_retryable(error)
                ):
                    raise  # a wrong password does not heal by waiting
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                self.outage.failed(error)
                now = time.monotonic()
                if self.patience is not None:
                    deadline = deadline or now + self.patience
                    if now >= deadline:
                        raise
                time.sleep(self._backoff.compute(failures))
                continue
            if failures and self.outage.down_since is not None:
                # This call waited the outage out and got through: the server is back. (A
                # call that never failed proves nothing: redis-py's connect step "succeeds"
                # at once on a socket it still holds.)
                self.outage.recovered()
            return result


def connect(url: str, patience: float | None = None) -> redis.Redis:
    """A client for ``url`` (``redis://``, ``rediss://`` for TLS, ``unix://``; passwords in
    the URL), returning strings, that waits out outages (see the module docstring).

    Its connections come from a blocking pool of at most :data:`MAX_CONNECTIONS`: a thread
    that finds them all busy waits for one to come back (redis-py's default pool fails with
    "Too many connections" at 100), so a process driving a thousand runs keeps a bounded
    number of connections to the server.

    Args:
        patience: seconds a command keeps retrying while the server does not answer before
            raising its connection error; None (the default) waits as long as it takes.
    """
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=None,
        decode_responses=True,
        health_check_interval=30,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_keepalive=True,
        retry=OutageRetry(outage_for(url), patience),
    )
    return redis.Redis(connection_pool=pool)


def ping_once(url: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """PING the server at ``url`` once, without retrying.

    Raises:
        ValueError: the URL is malformed.
        redis.RedisError: the server did not answer.
    """
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()
