"""Many runs, one thread: how a coordinator drives runs whose steps report through the run's
event stream (Celery).

Such a run never needs a thread of its own: everything that moves it arrives in its inbox
(the stream pump hands it the workers' events, slot grants and cancel requests) or is due at a
known time (a retry delay, a periodic check for lost steps). The scheduler keeps each run's
:class:`~orchestrator.runs.driver.RunDriver`; a poked inbox puts the run on the ready
queue, a deadline puts it on a timer heap, and one thread advances, pass after pass, every run
that is ready or due. What a pass writes without needing an answer goes out together at its
end (``orchestrator.storage.batch``). A thousand runs in flight cost a thousand small objects,
not a thousand threads, and a few round trips per pass.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.execution.loop import ExecutionLoop
from orchestrator.runs.driver import RunDriver

log = logging.getLogger("orchestrator.scheduler")

DRIVEN_ELSEWHERE = object()  # what a driver factory returns when it started a thread instead


@dataclass(eq=False)
class _Entry:
    make_driver: Callable[[], RunDriver | object | None]  # called in the run's first pass
    on_end: Callable[[ExecutionLoop | None], None]  # called once the run is done with
    driver: RunDriver | None = None
    deadline: float | None = None


class RunScheduler:
    """Advances many :class:`RunDriver` in one thread (see the module docstring)."""

    def __init__(
        self, batch: Callable[[], contextlib.AbstractContextManager[Any]] | None = None
    ) -> None:
        """``batch()`` opens the write batch of a pass (none: write at once)."""
        self._batch = batch or contextlib.nullcontext
        self._entries: dict[str, _Entry] = {}
        self._ready: deque[str] = deque()
        self._queued: set[str] = set()
        self._timers: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def add(
        self,
        run_id: str,
        make_driver: Callable[[Callable[[], None]], RunDriver | object | None],
        on_end: Callable[[ExecutionLoop | None], None],
    ) -> None:
        """Drive a run. In its first pass, ``make_driver(poke)`` builds its driver with
        ``poke`` as the inbox's ``on_poke`` (or returns None: nothing to drive; or
        :data:`DRIVEN_ELSEWHERE`: it started a thread that drives the run). ``on_end(loop)`` is
        called in the scheduler thread once the run has ended, been abandoned
        (``loop.abandoned``) or could not be driven (``loop`` None); not for a run driven
        elsewhere."""
        with self._cond:
            self._entries[run_id] = _Entry(lambda: make_driver(lambda: self.poke(run_id)), on_end)
            self._ready.append(run_id)
            self._queued.add(run_id)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, daemon=True, name="orchestrator-run-scheduler"
                )
                self._thread.start()
            self._cond.notify()

    def poke(self, run_id: str) -> None:
        """Something arrived for the run: advance it soon (any thread)."""
        with self._cond:
            if run_id in self._queued or run_id not in self._entries:
                return
            self._queued.add(run_id)
            self._ready.append(run_id)
            self._cond.notify()

    def __len__(self) -> int:
        with self._cond:
            return len(self._entries)

    def stop(self) -> None:
        """Stop advancing runs (they are left as they are, for another coordinator)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _next_pass(self) -> list[str] | None:
        """The runs to advance now: every poked one and every one whose deadline passed;
        waits until there is one. None once stopped."""
        with self._cond:
            while not self._stopped:
                runs = list(self._ready)
                self._ready.clear()
                self._queued.clear()
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    when, _, run_id = heapq.heappop(self._timers)
                    entry = self._entries.get(run_id)
                    if entry is not None and entry.deadline == when and run_id not in runs:
                        runs.append(run_id)
                if runs:
                    return runs
                timeout = self._timers[0][0] - now if self._timers else None
                self._cond.wait(timeout)
            return None

    def _serve(self) -> None:
        began: set[str] = set()
        while True:
            runs = self._next_pass()
            if runs is None:
                self._let_go()
                return
            try:
                with self._batch():
                    for run_id in runs:
                        self._advance(run_id, began)
            except Exception:  # the pass's writes failed (not an outage: those are waited out)
                log.exception("writing a scheduler pass failed")

    def _advance(self, run_id: str, began: set[str]) -> None:
        entry = self._entries.get(run_id)
        if entry is None:
            return
        if entry.driver is None:
            try:
                made = entry.make_driver()
            except Exception:
                log.exception("run %s could not be prepared", run_id)
                made = None
            if not isinstance(made, RunDriver):
                with self._cond:
                    self._entries.pop(run_id, None)
                if made is not DRIVEN_ELSEWHERE:
                    entry.on_end(None)
                return
            entry.driver = made
        driver = entry.driver
        try:
            if run_id not in began:
                began.add(run_id)
                driver.begin()
            deadline = driver.advance()
        except Exception as exc:
            log.exception("run %s failed in the coordinator", run_id)
            began.discard(run_id)
            self._finish(run_id, entry, None, exc)
            return
        if driver.finished or driver.abandoned:
            began.discard(run_id)
            self._finish(run_id, entry, driver.loop, None)
            return
        with self._cond:
            entry.deadline = deadline
            if deadline is not None:
                heapq.heappush(self._timers, (deadline, next(self._seq), run_id))

    def _let_go(self) -> None:
        """Stopped: leave every run as it is (its steps go on) for another coordinator."""
        with self._cond:
            entries = list(self._entries.items())
            self._entries.clear()
        for run_id, entry in entries:
            if entry.driver is None or entry.driver.loop is None:
                entry.on_end(None)
                continue
            try:
                entry.driver.abandon()
                entry.on_end(entry.driver.end())
            except Exception:
                log.exception("letting run %s go failed", run_id)

    def _finish(
        self, run_id: str, entry: _Entry, loop: ExecutionLoop | None, exc: Exception | None
    ) -> None:
        with self._cond:
            self._entries.pop(run_id, None)
        assert entry.driver is not None
        try:
            if exc is not None:
                entry.driver.fail(exc)
            else:
                loop = entry.driver.end()
        except Exception:
            log.exception("ending run %s failed", run_id)
            loop = None
        finally:
            entry.on_end(loop)
