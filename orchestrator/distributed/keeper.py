"""The lease keeper: one thread per process keeping alive what the process holds in Redis.

A process driving runs on a shared instance holds, for each run, an ownership (so no other
coordinator drives it) and concurrency leases for the steps it queued or runs (so a dead
holder's slots come back). Renewing them from each run's own driver would stall while that
driver runs a step in its own thread (the in-process executor), and would cost a round trip per
run; the keeper renews all of them, and sweeps expired leases of dead holders, in one pipeline
every renewal interval (a third of the lease time, or the heartbeat interval if shorter).
A renewal that finds a waiting lease granted, or a run taken over by another owner, wakes that
run's driver at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from orchestrator.concurrency.redis import RedisLimiter
from orchestrator.concurrency.redis_arbiter import RedisArbiter
from orchestrator.distributed.ownership import RunOwnership

log = logging.getLogger("orchestrator.keeper")


class PeriodicChecks(Protocol):
    """What the keeper asks of a run's executor each renewal interval (``Executor`` has both
    methods; see ``orchestrator.executors.base``)."""

    def queue_checks(self, pipe: Any) -> int: ...

    def take_checks(self, replies: list[Any]) -> bool: ...


@dataclass(eq=False)
class _Held:
    """What one driven run registered: its arbiter and/or ownership, its executor's checks,
    and how to wake it."""

    arbiter: RedisArbiter | None
    ownership: RunOwnership | None
    wake: Callable[[], None]
    executor: PeriodicChecks | None = None


class LeaseKeeper:
    """Renews registered arbiters' leases and ownerships (see the module docstring).

    Args:
        limiter: the cross-run limiter (its client runs every renewal).
        interval: seconds between renewal rounds.
    """

    def __init__(self, limiter: RedisLimiter, interval: float):
        self.limiter = limiter
        self.interval = interval
        self._held: dict[int, _Held] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(
        self,
        arbiter: RedisArbiter | None,
        ownership: RunOwnership | None,
        wake: Callable[[], None],
        executor: PeriodicChecks | None = None,
    ) -> int:
        """Keep ``arbiter``'s leases and ``ownership`` alive, and run ``executor``'s periodic
        checks (``Executor.queue_checks``), until :meth:`unregister`; ``wake`` is called when
        a round changes something the run's driver must see."""
        held = _Held(arbiter, ownership, wake, executor)
        with self._lock:
            self._held[id(held)] = held
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, daemon=True, name="orchestrator-lease-keeper"
                )
                self._thread.start()
        return id(held)

    def unregister(self, handle: int) -> None:
        """Stop renewing. (A round already under way may still renew once: harmless, since
        a released ownership or lease cannot be renewed back.)"""
        with self._lock:
            self._held.pop(handle, None)

    def stop(self) -> None:
        self._stop.set()

    def _serve(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.renew_once()
            except redis.RedisError:  # not an outage (those are waited out in the client)
                log.exception("renewing leases failed; trying again next round")

    def renew_once(self) -> None:
        """One renewal round (also callable directly, e.g. by tests)."""
        with self._lock:
            held = list(self._held.values())
        if not held:
            return
        pipe = self.limiter.client.pipeline(transaction=False)
        plan: list[tuple[_Held, list[tuple[str, int]], int]] = []
        for item in held:
            leases = item.arbiter.renewals() if item.arbiter is not None else []
            if leases:
                assert item.arbiter is not None
                self.limiter.queue_renewals(pipe, leases, owner=item.arbiter.worker)
            if item.ownership is not None:
                item.ownership.queue_renew(pipe)
            checks = item.executor.queue_checks(pipe) if item.executor is not None else 0
            plan.append((item, leases, checks))
        self.limiter.queue_sweep(pipe)
        replies = iter(pipe.execute())
        for item, leases, checks in plan:
            codes = [int(next(replies)) for _ in leases]
            if leases and item.arbiter is not None:
                item.arbiter.renewed(leases, codes)  # a grant found here wakes the run
            wake = item.ownership is not None and not item.ownership.renewed(next(replies))
            results = [next(replies) for _ in range(checks)]
            if item.executor is not None and checks:
                try:
                    wake = item.executor.take_checks(results) or wake
                except Exception:  # one run's checks must not stop the others'
                    log.exception("periodic checks of a run failed")
            if wake:  # another owner has the run, or a step was lost: its driver must look
                item.wake()
