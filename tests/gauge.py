"""A witness of concurrency that step bodies keep themselves, in any process: a counter of
bodies running at once per bucket, in a file under an exclusive lock, with the highest value
seen. A limit test makes its bodies wait at a *barrier* (until the gauge's peak reaches a
target, or a timeout) so that, without the limit, bodies would certainly overlap and the peak
would exceed it: the assertion on the peak fails if the limit is removed, and needs no clock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class Gauge:
    """The gauge kept in ``folder`` (shared by every process of a test)."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / "gauge.json"

    @contextlib.contextmanager
    def _state(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = json.loads(self.path.read_text()) if self.path.exists() else {}
                yield state
                tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(state))
                os.replace(tmp, self.path)  # readers never see a half-written file
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def enter(self, buckets: list[str]) -> None:
        with self._state() as state:
            active = state.setdefault("active", {})
            peak = state.setdefault("peak", {})
            for bucket in buckets:
                active[bucket] = active.get(bucket, 0) + 1
                peak[bucket] = max(peak.get(bucket, 0), active[bucket])

    def leave(self, buckets: list[str]) -> None:
        with self._state() as state:
            for bucket in buckets:
                state["active"][bucket] -= 1

    def peaks(self) -> dict[str, int]:
        if not self.path.exists():
            return {}
        return dict(json.loads(self.path.read_text()).get("peak", {}))

    def wait_for_peak(self, bucket: str, target: int, timeout: float) -> bool:
        """The barrier: wait until ``target`` bodies have run at once in ``bucket``, or give
        up after ``timeout`` (then the test's own peak assertion says what happened)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.peaks().get(bucket, 0) >= target:
                return True
            time.sleep(0.02)  # other processes change the file: nothing to block on
        return False

    @contextlib.contextmanager
    def running(
        self, buckets: list[str], barrier: tuple[str, int, float] | None = None
    ) -> Iterator[None]:
        """Count a body as running in ``buckets``; with ``barrier`` (bucket, target,
        timeout), wait there first."""
        self.enter(buckets)
        try:
            if barrier is not None:
                self.wait_for_peak(*barrier)
            yield
        finally:
            self.leave(buckets)
