"""The cross-run limiter's interface and the values it returns (SPEC §5).

Two backends implement :class:`Limiter` with the same operations and the same semantics:
``concurrency/redis.py`` (:class:`~orchestrator.concurrency.redis.RedisLimiter`, the real one:
any number of processes, atomic Lua scripts, Redis time) and ``concurrency/memory.py``
(:class:`~orchestrator.concurrency.memory.MemoryLimiter`: one process, a lock and an injected
clock, for fast tests). ``tests/test_limiter_contract.py`` runs the same tests on both.

The model: limits are ``{key, value?, limit}`` definitions stored under a *spec* (``key``,
``key=value`` or ``key=*``). A step's tags map to *buckets*, one counter per limit that applies
(``database``, ``database=redshift``, ``database=*redshift`` per unique value). A step attempt
takes every bucket's slot at once, all or nothing, under a *lease* named by its attempt id; a
lease lapses unless renewed within its lease time. Waiters are admitted by priority (higher
first), then arrival: a waiter is granted iff every one of its buckets has room and it is first
in line in each. Every grant gets a new *fencing token*: release, renew and confirm need it, so
a stale holder whose lease lapsed can never free or extend a newer holder's slot. A waiter that
is granted later (not in the call that asked) is announced with a ``slot_granted`` engine event
to its run.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.concurrency.config import APPLY_PER_UNIQUE, TagConcurrencyLimit
from orchestrator.errors import InvalidInputError

PRIORITY_BOUND = 4095  # ranks are -priority * 2^40 + arrival; exact in a double up to 2^52

# renew_many() outcomes
RENEWED = 1
GONE = 0  # expired, freed, released, or the token differs (a stale holder)
NOT_OWNER = 2  # the token matches but another process renews it now (a worker confirmed it)

SLOT_GRANTED = "slot_granted"  # ENGINE_EVENT data kind of a grant announced to its run


def limit_spec(limit: TagConcurrencyLimit) -> str:
    """The name a limit is stored under: ``key``, ``key=value`` or ``key=*`` (per unique
    value)."""
    if limit.per_unique_value:
        return f"{limit.key}=*"
    if isinstance(limit.value, str):
        return f"{limit.key}={limit.value}"
    return limit.key


def spec_for(key: str, value: str | Mapping[str, bool] | None = None) -> str:
    """The spec of the limit on ``key`` with ``value`` (None: key-wide; a string: that value;
    ``{"applyLimitPerUniqueValue": true}``: per unique value)."""
    if isinstance(value, Mapping):
        return f"{key}=*" if value.get(APPLY_PER_UNIQUE) else key
    return key if value is None else f"{key}={value}"


def check_settable(limit: TagConcurrencyLimit) -> None:
    """Raise :class:`InvalidInputError` for a limit whose value is the string ``"*"`` (that
    spec is the per-unique form's)."""
    if limit.value == "*":
        raise InvalidInputError(
            f"a limit on {limit.key}=* is spelled with "
            f'value {{"{APPLY_PER_UNIQUE}": true}} (per unique value)'
        )


def buckets_of(
    limits: Iterable[TagConcurrencyLimit], tags: Mapping[str, str]
) -> list[tuple[str, int]]:
    """The buckets a step with ``tags`` takes a slot of under ``limits``, with their limits
    (first definition wins for a bucket)."""
    out: dict[str, int] = {}
    for lim in limits:
        bucket = lim.bucket_for(tags)
        if bucket is not None and bucket not in out:
            out[bucket] = lim.limit
    return list(out.items())


def clamp_priority(priority: int) -> int:
    """``priority`` bounded to +-:data:`PRIORITY_BOUND` (ranks stay exact)."""
    return max(-PRIORITY_BOUND, min(PRIORITY_BOUND, int(priority)))


def ttl_ms(seconds: float) -> int:
    """A lease time in whole milliseconds (at least 1).

    Raises:
        InvalidInputError: ``seconds`` is not positive.
    """
    if seconds <= 0:
        raise InvalidInputError(f"lease time must be positive, got {seconds}")
    return max(1, round(seconds * 1000))


@dataclass(frozen=True)
class LeaseInfo:
    """One lease, holding slots or waiting for them.

    Attributes:
        lease_id: the step attempt id.
        run_id, step_key, attempt: the step attempt.
        worker: who renews the lease (``coordinator:<id>`` or ``worker:<host>/<pid>``).
        state: ``held`` or ``waiting``.
        buckets: the buckets it holds or waits for.
        priority: the step's priority.
        token: fencing token of the grant (0 while waiting).
        queued: when it asked (seconds since the epoch, the limiter's clock).
        since: when it was granted (while waiting: when it asked).
        expires: when it lapses unless renewed.
    """

    lease_id: str
    run_id: str
    step_key: str
    attempt: int
    worker: str
    state: str
    buckets: tuple[str, ...]
    priority: int
    token: int
    queued: float
    since: float
    expires: float

    @classmethod
    def from_fields(cls, lease_id: str, fields: Mapping[str, str]) -> LeaseInfo:
        """From a stored lease's string fields (times in milliseconds, ``expiry``)."""
        return cls(
            lease_id=lease_id,
            run_id=fields.get("run_id", ""),
            step_key=fields.get("step_key", ""),
            attempt=int(fields.get("attempt") or 0),
            worker=fields.get("worker", ""),
            state=fields.get("state", ""),
            buckets=tuple(json.loads(fields.get("buckets") or "[]") or ()),
            priority=int(fields.get("priority") or 0),
            token=int(fields.get("token") or 0),
            queued=int(fields.get("queued") or 0) / 1000,
            since=int(fields.get("since") or 0) / 1000,
            expires=int(fields.get("expiry") or 0) / 1000,
        )


@dataclass(frozen=True)
class BucketState:
    """One counter of a limit (``database``, ``database=redshift``, ``database=*redshift``).

    Attributes:
        bucket: its name.
        limit: its limit (None: no definition covers it any more).
        holders: live holders, oldest grant first.
        waiters: live waiters, next in line first.
    """

    bucket: str
    limit: int | None
    holders: tuple[LeaseInfo, ...]
    waiters: tuple[LeaseInfo, ...]


@dataclass(frozen=True)
class LimitState:
    """A limit definition and its buckets, as ``orchestrator concurrency list`` shows them.

    Attributes:
        spec: ``key``, ``key=value`` or ``key=*``.
        limit: the definition (None for buckets whose definition was deleted while they still
            had holders or waiters; their spec is then the bucket name).
        buckets: for key-wide and key=value limits, the one bucket; per unique value, one per
            value in use.
    """

    spec: str
    limit: TagConcurrencyLimit | None
    buckets: tuple[BucketState, ...]


def group_by_limit(
    defs: Mapping[str, TagConcurrencyLimit], states: Iterable[BucketState]
) -> list[LimitState]:
    """:meth:`Limiter.snapshot` from the definitions (by spec) and the states of the buckets
    in use: sorted by spec, a key-wide or key=value limit with its one bucket even if unused,
    buckets under no definition last with ``limit`` None."""
    grouped: dict[str, list[BucketState]] = {spec: [] for spec in defs}
    orphans: list[BucketState] = []
    for state in states:
        if state.bucket in defs:
            grouped[state.bucket].append(state)
            continue
        head, sep, _ = state.bucket.partition("=*")
        spec = head + "=*"
        if sep and spec in defs and defs[spec].per_unique_value:
            grouped[spec].append(state)
        else:
            orphans.append(state)
    out = []
    for spec in sorted(defs):
        lim = defs[spec]
        found = grouped[spec]
        if not lim.per_unique_value and not found:
            found = [BucketState(spec, lim.limit, (), ())]
        out.append(LimitState(spec, lim, tuple(found)))
    out.extend(LimitState(o.bucket, None, (o,)) for o in orphans)
    return out


class Limiter(ABC):
    """Cross-run tag concurrency limits (see the module docstring).

    Args:
        lease_ttl: seconds a lease lives unless renewed; a dead holder's slots come back
            within this time.

    Raises:
        InvalidInputError: ``lease_ttl`` is not positive.
    """

    def __init__(self, lease_ttl: float = 30.0):
        if lease_ttl <= 0:
            raise InvalidInputError(f"lease_ttl must be positive, got {lease_ttl}")
        self.lease_ttl = lease_ttl

    def _ttl_ms(self, ttl: float | None) -> int:
        return ttl_ms(self.lease_ttl if ttl is None else ttl)

    # -- limit definitions ----------------------------------------------------------------

    @abstractmethod
    def set_limit(self, limit: TagConcurrencyLimit) -> None:
        """Create or replace a limit. Waiters that a higher limit lets in are granted at once.

        Raises:
            InvalidInputError: ``value`` is the string ``"*"`` (that name is the per-unique
                form's).
        """

    @abstractmethod
    def delete_limit(self, key: str, value: str | Mapping[str, bool] | None = None) -> bool:
        """Delete the limit on ``key`` (``value`` as in :func:`spec_for`). Its waiters are
        granted (nothing limits them any more). Returns whether it existed."""

    @abstractmethod
    def list_limits(self) -> list[TagConcurrencyLimit]:
        """Every limit definition, sorted by spec."""

    @abstractmethod
    def buckets_for(self, tags: Mapping[str, str]) -> list[tuple[str, int]]:
        """The buckets a step with ``tags`` takes a slot of, with their limits."""

    # -- leases ---------------------------------------------------------------------------

    @abstractmethod
    def acquire(
        self,
        lease_id: str,
        run_id: str,
        step_key: str,
        attempt: int,
        tags: Mapping[str, str],
        priority: int = 0,
        worker: str = "",
        ttl: float | None = None,
    ) -> int | None:
        """Take every slot the step's tags need, all or nothing.

        Returns the fencing token when granted (now, or already: idempotent; a coordinator
        asking again takes over renewal from another coordinator), else None: the lease waits
        in line (a repeated call keeps its place and refreshes its expiry) and its grant is
        announced later with a ``slot_granted`` event to the run.
        """

    @abstractmethod
    def release(self, lease_id: str, token: int) -> bool:
        """Free the lease's slots (or withdraw a waiting lease with token 0) if ``token`` is
        its fencing token; the next waiters are granted at once. False: gone or stale."""

    @abstractmethod
    def queue_release(self, pipe: Any, lease_id: str, token: int) -> None:
        """Queue :meth:`release` on ``pipe`` (one reply: 1 released, 0 gone or stale)."""

    def renew(
        self,
        lease_id: str,
        token: int,
        worker: str = "",
        ttl: float | None = None,
        owner: str = "",
    ) -> bool:
        """Extend the lease to now + ``ttl`` (default ``lease_ttl``) if ``token`` matches and
        it has not expired; a waiting lease renews with token 0. ``worker`` (if given)
        becomes the renewer; with ``owner``, renew only while ``owner`` is the renewer."""
        return self.renew_many([(lease_id, token)], worker, ttl, owner)[0] == RENEWED

    @abstractmethod
    def renew_many(
        self,
        leases: Sequence[tuple[str, int]],
        worker: str = "",
        ttl: float | None = None,
        owner: str = "",
    ) -> list[int]:
        """:meth:`renew` for several ``(lease_id, token)`` at once. Returns one code per
        lease: :data:`RENEWED`, :data:`GONE` or :data:`NOT_OWNER`."""

    @abstractmethod
    def queue_renewals(
        self,
        pipe: Any,
        leases: Sequence[tuple[str, int]],
        worker: str = "",
        ttl: float | None = None,
        owner: str = "",
    ) -> None:
        """Queue :meth:`renew_many`'s work on ``pipe`` (one reply per lease)."""

    @abstractmethod
    def queue_sweep(self, pipe: Any) -> None:
        """Queue :meth:`sweep` on ``pipe`` (one reply: the number of grants)."""

    @abstractmethod
    def confirm(self, lease_id: str, token: int, worker: str, ttl: float | None = None) -> bool:
        """What a worker calls right before it runs a step: True if the lease is still held
        under ``token``, and the worker now renews it (expiry extended). False: the lease is
        gone; the step must not run."""

    @abstractmethod
    def free_run(self, run_id: str) -> int:
        """Free every lease of a run (held or waiting), whatever its token. Returns how many."""

    @abstractmethod
    def free_lease(self, lease_id: str) -> bool:
        """Free one lease (held or waiting), whatever its token. Returns whether it existed."""

    @abstractmethod
    def sweep(self) -> int:
        """Drop expired leases and grant every waiter that can be granted. Returns the number
        of grants. Coordinators call it periodically (a fraction of the lease time)."""

    @abstractmethod
    def lease(self, lease_id: str) -> LeaseInfo | None:
        """The live lease ``lease_id``, or None (absent or expired)."""

    @abstractmethod
    def run_leases(self, run_id: str) -> list[LeaseInfo]:
        """The live leases (held or waiting) of one run's steps, by lease id."""

    # -- views ----------------------------------------------------------------------------

    @abstractmethod
    def bucket_states(self, buckets: Sequence[str]) -> list[BucketState]:
        """Holders and waiters of the given buckets (one atomic read)."""

    @abstractmethod
    def snapshot(self) -> list[LimitState]:
        """Every limit with its buckets' holders and waiters (one atomic read), sorted by
        spec; buckets still in use under a deleted limit come last, with ``limit`` None."""
