"""Waiting in tests for what other processes make true: bounded, by polling shared state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

BOUND = 120.0  # upper bound for anything a test waits on; never reached when things work


def wait_until(what: str, predicate: Callable[[], Any], timeout: float = BOUND) -> Any:
    """Return ``predicate()``'s first truthy value, polling; fail naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
