"""The cross-run limiter as the slot arbiter of one run (see ``concurrency/redis.py``)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

from orchestrator.concurrency.limiter import GONE, NOT_OWNER, RENEWED
from orchestrator.concurrency.limits import SlotArbiter, SlotRequest
from orchestrator.concurrency.redis import RedisLimiter
from orchestrator.events import parse_attempt_id


def default_worker_id(role: str = "coordinator") -> str:
    """``<role>:<hostname>/<pid>``: who renews a lease."""
    return f"{role}:{socket.gethostname()}/{os.getpid()}"


class RedisArbiter(SlotArbiter):
    """The cross-run limiter as the slot arbiter of one run.

    A step with no limited tag is granted without a Redis call (limits are cached for
    ``limiter.limits_ttl``). A queued step's grant arrives as a ``slot_granted`` engine event
    on the run's event stream; the run's driver passes it to :meth:`note_granted`, and the
    loop picks it up from :meth:`granted`. The process's lease keeper
    (``orchestrator.distributed.keeper``) renews this run's leases periodically (a fraction of
    the lease time) through :meth:`renewals` and :meth:`renewed`; once a worker confirms a
    lease it renews it itself and this arbiter stops.

    Args:
        limiter: the limiter.
        run_id: the run this arbiter serves.
        worker: the renewer name recorded on leases (default ``coordinator:<host>/<pid>``).
        on_grant: called (from any thread) after a grant is noted.
    """

    def __init__(
        self,
        limiter: RedisLimiter,
        run_id: str,
        worker: str | None = None,
        on_grant: Callable[[], None] | None = None,
    ):
        self.limiter = limiter
        self.on_grant = on_grant  # called after a grant is noted (wakes the run's driver)
        self.run_id = run_id
        self.worker = worker or default_worker_id()
        self.tokens: dict[str, int] = {}  # attempt id -> fencing token of its grant
        self._lock = threading.RLock()
        self._unlimited: set[str] = set()  # granted without Redis (no limited tag)
        self._waiting: dict[str, tuple[SlotRequest, tuple[str, ...]]] = {}  # -> its buckets
        self._handed_over: set[str] = set()  # held leases that someone else renews now
        self._newly_granted: list[str] = []

    # -- SlotArbiter ----------------------------------------------------------------------

    def request(self, req: SlotRequest) -> bool:
        with self._lock:
            if req.attempt_id in self._unlimited or req.attempt_id in self.tokens:
                return True
            buckets = tuple(b for b, _ in self.limiter.buckets_for(req.tags))
            if not buckets:
                self._unlimited.add(req.attempt_id)
                return True
            token = self._acquire(req)
            if token is not None:
                self._waiting.pop(req.attempt_id, None)
                self.tokens[req.attempt_id] = token
                return True
            self._waiting[req.attempt_id] = (req, buckets)
            return False

    def _acquire(self, req: SlotRequest) -> int | None:
        try:
            attempt = parse_attempt_id(req.attempt_id)[2]
        except ValueError:  # a lease id of the caller's own making: shown as attempt 0
            attempt = 0
        return self.limiter.acquire(
            req.attempt_id,
            req.run_id,
            req.step_key,
            attempt,
            req.tags,
            req.priority,
            self.worker,
        )

    def adopt(self, req: SlotRequest) -> None:
        """Re-register an in-flight attempt (a restarted coordinator): an existing lease is
        re-acquired idempotently with its token; if a (dead) coordinator renewed it, this one
        takes over; if a worker renews it, the worker goes on doing so. A lease that is gone is
        asked for again (counted against the limit)."""
        with self._lock:
            if not self.request(req) or req.attempt_id in self._unlimited:
                return
            info = self.limiter.lease(req.attempt_id)
            if info is None or info.worker == self.worker:
                return
            if info.worker.startswith("coordinator:"):
                self.limiter.renew(req.attempt_id, info.token, worker=self.worker)
            else:
                self._handed_over.add(req.attempt_id)

    def release(self, attempt_id: str) -> None:
        with self._lock:
            if attempt_id in self._unlimited:
                self._unlimited.discard(attempt_id)
                return
            self._handed_over.discard(attempt_id)
            if attempt_id in self._newly_granted:
                self._newly_granted.remove(attempt_id)
            token = self.tokens.pop(attempt_id, None)
            if token is not None:
                self.limiter.release(attempt_id, token)
                return
            if self._waiting.pop(attempt_id, None) is None:
                return
            if not self.limiter.release(attempt_id, 0):
                # Granted while we withdrew (its event not seen yet): the lease is this run's
                # attempt, so free it under the token it was granted.
                info = self.limiter.lease(attempt_id)
                if info is not None and info.run_id == self.run_id and info.state == "held":
                    self.limiter.release(attempt_id, info.token)

    def granted(self) -> list[str]:
        with self._lock:
            out, self._newly_granted = self._newly_granted, []
            return out

    def describe_wait(self, attempt_id: str) -> str:
        with self._lock:
            waiting = self._waiting.get(attempt_id)
        if waiting is None:
            return "not waiting for a concurrency slot"
        parts = []
        for state in self.limiter.bucket_states(waiting[1]):
            limit = "no limit" if state.limit is None else f"limit {state.limit}"
            holders = ", ".join(
                f"{h.run_id}/{h.step_key} (attempt {h.attempt}, {h.worker or 'unknown'})"
                for h in state.holders
            )
            ahead = 0
            for w in state.waiters:
                if w.lease_id == attempt_id:
                    break
                ahead += 1
            if state.limit is not None and len(state.holders) >= state.limit:
                detail = f"held by {holders}" if holders else "no slot free"
            else:
                detail = f"{len(state.holders)} held"
            if ahead:
                detail += f"; {ahead} waiting ahead"
            parts.append(f"{state.bucket} ({limit}; {detail})")
        return "waiting for a slot of " + "; ".join(parts)

    # -- grants and renewal ----------------------------------------------------------------

    def note_granted(self, attempt_id: str, token: int) -> None:
        """A ``slot_granted`` event for ``attempt_id`` arrived (read from the run stream
        after the request): :meth:`granted` returns it next. Unknown ids are ignored."""
        with self._lock:
            if self._waiting.pop(attempt_id, None) is None:
                return
            self.tokens[attempt_id] = int(token)
            self._newly_granted.append(attempt_id)
        if self.on_grant is not None:
            self.on_grant()

    def token(self, attempt_id: str) -> int | None:
        with self._lock:
            return self.tokens.get(attempt_id)

    def renewals(self) -> list[tuple[str, int]]:
        """``(lease id, token)`` of every lease this arbiter must keep alive now: held leases
        it still renews (not handed over to a worker) and waiting ones (token 0)."""
        with self._lock:
            held = [(a, t) for a, t in self.tokens.items() if a not in self._handed_over]
            return held + [(a, 0) for a in self._waiting]

    def renewed(self, leases: list[tuple[str, int]], codes: list[int]) -> list[str]:
        """Apply the outcome of renewing ``leases`` (from :meth:`renewals`): a held lease a
        worker renews now is left to it; a waiting lease found granted is noted as granted
        (its event may have been lost); one that lapsed asks again, at the back of the line.
        Returns the attempt ids of held leases that are gone (expired or freed)."""
        lost = []
        for (attempt_id, token), code in zip(leases, codes, strict=True):
            with self._lock:
                if token:
                    if self.tokens.get(attempt_id) != token:
                        continue  # released meanwhile
                    if code == NOT_OWNER:
                        self._handed_over.add(attempt_id)
                    elif code == GONE:
                        lost.append(attempt_id)
                    continue
                if code == RENEWED or attempt_id not in self._waiting:
                    continue
                info = self.limiter.lease(attempt_id)
                if info is not None and info.state == "held":
                    self.note_granted(attempt_id, info.token)
                elif info is None:
                    granted_now = self._acquire(self._waiting[attempt_id][0])
                    if granted_now is not None:
                        self.note_granted(attempt_id, granted_now)
        return lost

    def renew_all(self) -> list[str]:
        """Renew every lease of :meth:`renewals` in one round trip (see :meth:`renewed`)."""
        leases = self.renewals()
        return self.renewed(leases, self.limiter.renew_many(leases, owner=self.worker))

    @property
    def waiting(self) -> list[str]:
        """Attempt ids waiting for slots."""
        with self._lock:
            return list(self._waiting)

    def forget_all(self) -> None:
        """Drop every lease from this arbiter without touching Redis (another coordinator has
        taken the run over, with its leases)."""
        with self._lock:
            self.tokens.clear()
            self._waiting.clear()
            self._unlimited.clear()
            self._newly_granted = []

    def release_all(self) -> None:
        """Release every lease of this arbiter (held or waiting)."""
        with self._lock:
            for attempt_id in [*self.tokens, *self._waiting, *self._unlimited]:
                self.release(attempt_id)
