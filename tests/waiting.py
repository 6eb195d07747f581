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


def wait_finished(instance: Any, run_ids: list[str], timeout: float = BOUND) -> dict[str, Any]:
    """Wait until every run has finished; return run id -> its final status."""

    def done() -> dict[str, Any] | None:
        runs = {r: instance.get_run(r) for r in run_ids}
        if all(rec is not None and rec.is_finished for rec in runs.values()):
            return {r: rec.status for r, rec in runs.items()}
        return None

    return wait_until(f"{len(run_ids)} runs to finish", done, timeout)  # type: ignore[no-any-return]
