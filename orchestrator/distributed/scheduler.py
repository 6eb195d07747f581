"""Many runs, one thread: how a coordinator drives runs whose steps report through the run's
event stream (Celery).

Such a run never needs a thread of its own: everything that moves it arrives in its inbox
(the stream pump hands it the workers' events, slot grants and cancel requests) or is due at a
known time (a retry delay, a periodic check for lost steps). The scheduler keeps each run's
:class:`~orchestrator.execution.driver.RunDriver`; a poked inbox puts the run on the ready
queue, a deadline puts it on a timer heap, and one thread advances whichever run is ready or
due. A thousand runs in flight cost a thousand small objects, not a thousand threads.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.execution.driver import RunDriver
from orchestrator.execution.loop import ExecutionLoop

log = logging.getLogger("orchestrator.scheduler")


@dataclass(eq=False)
class _Entry:
    driver: RunDriver
    on_end: Callable[[ExecutionLoop | None], None]  # called once the run is done with
    deadline: float | None = None


class RunScheduler:
    """Advances many :class:`RunDriver` in one thread (see the module docstring)."""

    def __init__(self) -> None:
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
        make_driver: Callable[[Callable[[], None]], RunDriver],
        on_end: Callable[[ExecutionLoop | None], None],
    ) -> None:
        """Drive a run. ``make_driver(poke)`` builds its driver with ``poke`` as the inbox's
        ``on_poke``; ``on_end(loop)`` is called in the scheduler thread once the run has
        ended, been abandoned (``loop.abandoned``) or failed to be driven (``loop`` None)."""
        driver = make_driver(lambda: self.poke(run_id))
        with self._cond:
            self._entries[run_id] = _Entry(driver, on_end)
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

    def _next(self) -> str | None:
        """The next run to advance: a poked one, else one whose deadline passed; waits."""
        with self._cond:
            while not self._stopped:
                if self._ready:
                    run_id = self._ready.popleft()
                    self._queued.discard(run_id)
                    return run_id
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    when, _, run_id = heapq.heappop(self._timers)
                    entry = self._entries.get(run_id)
                    if entry is not None and entry.deadline == when:
                        return run_id
                timeout = self._timers[0][0] - now if self._timers else None
                self._cond.wait(timeout)
            return None

    def _serve(self) -> None:
        began: set[str] = set()
        while True:
            run_id = self._next()
            if run_id is None:
                return
            entry = self._entries.get(run_id)
            if entry is None:
                continue
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
                continue
            if driver.finished or driver.abandoned:
                began.discard(run_id)
                self._finish(run_id, entry, driver.loop, None)
                continue
            with self._cond:
                entry.deadline = deadline
                if deadline is not None:
                    heapq.heappush(self._timers, (deadline, next(self._seq), run_id))

    def _finish(
        self, run_id: str, entry: _Entry, loop: ExecutionLoop | None, exc: Exception | None
    ) -> None:
        with self._cond:
            self._entries.pop(run_id, None)
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
