"""Slot arbitration: the interface the execution loop asks before it launches a step, and the
pure in-memory arbiter for per-run limits (``max_concurrent`` and ``tag_concurrency_limits``).

An arbiter answers a request at once ("granted") or later ("pending"): a later grant is picked
up by the loop from :meth:`SlotArbiter.granted`. The cross-run arbiter in Redis answers the
same way, asynchronously.

Fairness: waiters are ranked by priority (higher first), then arrival. A waiter is granted when
every tag limit it needs has room *and* no higher-ranked waiter is queued on any of those
limits, so a step needing several limits is never starved by a stream of single-limit steps.
``max_concurrent`` is only a capacity, not a queue, so a step held back by a tag limit never
blocks untagged steps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator.concurrency.config import TagConcurrencyLimit
from orchestrator.errors import InvalidInputError


@dataclass(frozen=True)
class SlotRequest:
    """A step attempt asking to run."""

    attempt_id: str
    run_id: str
    step_key: str
    tags: Mapping[str, str] = field(default_factory=dict)
    priority: int = 0


class SlotArbiter(ABC):
    """Decides when a step attempt may start."""

    @abstractmethod
    def request(self, req: SlotRequest) -> bool:
        """Ask for slots. True: granted now. False: pending; the grant shows up in
        :meth:`granted` later."""

    def adopt(self, req: SlotRequest) -> None:
        """Count an attempt that is already running as holding its slots (a rebuilt loop
        re-registers its in-flight attempts), even if that puts a limit over its cap."""
        self.request(req)

    @abstractmethod
    def release(self, attempt_id: str) -> None:
        """Free the attempt's slots, or withdraw its pending request. Unknown ids are ignored."""

    @abstractmethod
    def granted(self) -> list[str]:
        """Attempt ids granted since the last call (pending requests that became granted)."""

    def describe_wait(self, attempt_id: str) -> str:
        """Why an attempt is waiting (limit and holders), for the run's event log."""
        return "waiting for a concurrency slot"

    def token(self, attempt_id: str) -> int | None:
        """The fencing token of the attempt's grant, when its slots are fenced (cross-run
        limits); a worker confirms it before running the step."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (connections); slots are released by ``release``."""


class UnlimitedArbiter(SlotArbiter):
    """Grants everything at once (in-process execution runs one step at a time anyway)."""

    def request(self, req: SlotRequest) -> bool:
        return True

    def release(self, attempt_id: str) -> None:
        return None

    def granted(self) -> list[str]:
        return []


@dataclass
class _Waiter:
    req: SlotRequest
    buckets: tuple[str, ...]
    rank: tuple[int, int]


class LocalArbiter(SlotArbiter):
    """Per-run limits counted in memory.

    Args:
        limits: tag concurrency limits (key, key=value, per unique value).
        max_concurrent: at most this many attempts at once (None or 0: no cap).
    """

    def __init__(
        self, limits: Sequence[TagConcurrencyLimit] = (), max_concurrent: int | None = None
    ):
        self.limits = list(limits)
        self.max_concurrent = max_concurrent or None
        self._caps = {self._cap_name(lim): lim.limit for lim in self.limits}
        self._counts: Counter[str] = Counter()
        self._held: dict[str, tuple[str, ...]] = {}
        self._waiting: dict[str, _Waiter] = {}
        self._arrivals = 0
        self._newly_granted: list[str] = []

    @staticmethod
    def _cap_name(lim: TagConcurrencyLimit) -> str:
        if lim.per_unique_value:
            return f"{lim.key}=*"
        return f"{lim.key}={lim.value}" if isinstance(lim.value, str) else lim.key

    def _cap(self, bucket: str) -> int:
        if bucket in self._caps:  # key-wide or key=value (a value may itself start with '*')
            return self._caps[bucket]
        return self._caps[bucket.split("=*", 1)[0] + "=*"]  # per unique value

    def buckets_for(self, tags: Mapping[str, str]) -> tuple[str, ...]:
        """The limit counters a step with ``tags`` charges."""
        out = []
        for lim in self.limits:
            bucket = lim.bucket_for(tags)
            if bucket is not None and bucket not in out:
                out.append(bucket)
        return tuple(out)

    def request(self, req: SlotRequest) -> bool:
        """Ask for slots (see :meth:`SlotArbiter.request`).

        Raises:
            InvalidInputError: a tag limit of the request has limit 0. Nothing in the run can
                free such a slot, so the step would wait forever (unlike a cross-run limit of
                0, which pauses the steps until an operator raises it).
        """
        if req.attempt_id in self._held:
            return True
        buckets = self.buckets_for(req.tags)
        for bucket in buckets:
            if self._cap(bucket) == 0:
                raise InvalidInputError(
                    f"step {req.step_key!r} can never start: it matches the run's tag "
                    f"concurrency limit {bucket!r} with limit 0 (executor config "
                    "tag_concurrency_limits). Raise the limit or remove the tag from the op."
                )
        self._arrivals += 1
        waiter = _Waiter(req, buckets, (-req.priority, self._arrivals))
        self._waiting[req.attempt_id] = waiter
        self._admit()
        if req.attempt_id in self._held:
            self._newly_granted.remove(req.attempt_id)
            return True
        return False

    def adopt(self, req: SlotRequest) -> None:
        if req.attempt_id in self._held:
            return
        self._waiting.pop(req.attempt_id, None)
        buckets = self.buckets_for(req.tags)
        for b in buckets:
            self._counts[b] += 1
        self._counts["*total*"] += 1
        self._held[req.attempt_id] = buckets

    def release(self, attempt_id: str) -> None:
        if self._waiting.pop(attempt_id, None) is not None:
            self._admit()
            return
        buckets = self._held.pop(attempt_id, None)
        if buckets is None:
            return
        for b in buckets:
            self._counts[b] -= 1
        self._counts["*total*"] -= 1
        self._admit()

    def granted(self) -> list[str]:
        out, self._newly_granted = self._newly_granted, []
        return out

    def _admit(self) -> None:
        blocked: set[str] = set()
        for waiter in sorted(self._waiting.values(), key=lambda w: w.rank):
            if self.max_concurrent and self._counts["*total*"] >= self.max_concurrent:
                return
            buckets = waiter.buckets
            if blocked.intersection(buckets) or any(
                self._counts[b] >= self._cap(b) for b in buckets
            ):
                blocked.update(buckets)  # it is first in line on these limits
                continue
            for b in buckets:
                self._counts[b] += 1
            self._counts["*total*"] += 1
            del self._waiting[waiter.req.attempt_id]
            self._held[waiter.req.attempt_id] = buckets
            self._newly_granted.append(waiter.req.attempt_id)

    def describe_wait(self, attempt_id: str) -> str:
        waiter = self._waiting.get(attempt_id)
        if waiter is None:
            return "not waiting"
        full = [b for b in waiter.buckets if self._counts[b] >= self._cap(b)]
        if full:
            parts = []
            for b in full:
                holders = [a for a, bs in self._held.items() if b in bs]
                parts.append(f"{b} (limit {self._cap(b)}, held by {', '.join(holders)})")
            return "waiting for a concurrency slot of tag limit " + "; ".join(parts)
        if self.max_concurrent and self._counts["*total*"] >= self.max_concurrent:
            return f"waiting for one of max_concurrent={self.max_concurrent} slots"
        return "waiting behind higher-priority steps for the same tag limit"

    @property
    def in_use(self) -> int:
        return len(self._held)


class ChainedArbiter(SlotArbiter):
    """Per-run limits first, then cross-run limits: a step runs when both grant it.

    The first arbiter's slot is held while the step waits for the second, so per-run caps
    also bound how many of the run's steps queue for cross-run slots.
    """

    def __init__(self, first: SlotArbiter, second: SlotArbiter):
        self.first = first
        self.second = second
        self._requests: dict[str, SlotRequest] = {}
        self._in_first: set[str] = set()  # granted by the first, waiting on the second

    def request(self, req: SlotRequest) -> bool:
        self._requests[req.attempt_id] = req
        if not self.first.request(req):
            return False
        if self.second.request(req):
            return True
        self._in_first.add(req.attempt_id)
        return False

    def granted(self) -> list[str]:
        out = []
        for attempt_id in self.first.granted():
            req = self._requests.get(attempt_id)
            if req is not None and self.second.request(req):
                out.append(attempt_id)
            else:
                self._in_first.add(attempt_id)
        for attempt_id in self.second.granted():
            self._in_first.discard(attempt_id)
            out.append(attempt_id)
        return out

    def release(self, attempt_id: str) -> None:
        self.second.release(attempt_id)
        self.first.release(attempt_id)
        self._requests.pop(attempt_id, None)
        self._in_first.discard(attempt_id)

    def adopt(self, req: SlotRequest) -> None:
        self._requests[req.attempt_id] = req
        self.first.adopt(req)
        self.second.adopt(req)

    def describe_wait(self, attempt_id: str) -> str:
        if attempt_id in self._in_first:
            return self.second.describe_wait(attempt_id)
        return self.first.describe_wait(attempt_id)

    def token(self, attempt_id: str) -> int | None:
        token = self.second.token(attempt_id)
        return token if token is not None else self.first.token(attempt_id)

    def close(self) -> None:
        self.second.close()
        self.first.close()
