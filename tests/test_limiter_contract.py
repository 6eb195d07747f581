"""The cross-run limiter's contract (SPEC §5), run on every backend: the in-memory twin (its
clock moved by hand), the embedded Valkey, and the machine's Redis when
``ORCHESTRATOR_TEST_REDIS_URL`` names it. No mocks. On Redis the only sleeps let a tiny lease
expire, after which the outcome is checked through the API; Redis-only behaviour (key layout,
Lua files, round trips) is tested in ``test_concurrency_redis.py``."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestrator.concurrency.limiter import (
    GONE,
    NOT_OWNER,
    RENEWED,
    SLOT_GRANTED,
    Limiter,
    LimitState,
)
from orchestrator.concurrency.limits import LocalArbiter, SlotRequest
from orchestrator.errors import InvalidInputError
from orchestrator.events import Event, EventType
from tests.limiter_support import (
    BOUND,
    PER_UNIQUE,
    TINY_TTL,
    Backend,
    MemoryBackend,
    RedisBackend,
    acquire,
    held,
    holders_of,
    lim,
    waiters_of,
)
from tests.servers import delete_prefix

SERVERS = {"redis": "valkey_url", "machine-redis": "machine_redis_url"}


@pytest.fixture(params=["memory", "redis", "machine-redis"])
def backend(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend()
        return
    url = str(request.getfixturevalue(SERVERS[request.param]))
    server = RedisBackend(url, key_prefix)
    try:
        yield server
    finally:
        server.close()
        delete_prefix(url, key_prefix)


@pytest.fixture
def limiter(backend: Backend) -> Limiter:
    return backend.limiter


# -- definitions -------------------------------------------------------------------------------


def test_set_list_delete_limits(limiter: Limiter) -> None:
    limiter.set_limit(lim("database", None, 2))
    limiter.set_limit(lim("database", "redshift", 1))
    limiter.set_limit(lim("team", PER_UNIQUE, 3))
    assert limiter.list_limits() == [
        lim("database", None, 2),
        lim("database", "redshift", 1),
        lim("team", PER_UNIQUE, 3),
    ]

    limiter.set_limit(lim("database", None, 5))  # replaces
    assert limiter.list_limits()[0] == lim("database", None, 5)
    with pytest.raises(InvalidInputError):
        limiter.set_limit(lim("database", "*", 1))

    assert limiter.delete_limit("database", "redshift") is True
    assert limiter.delete_limit("database", "redshift") is False
    assert limiter.delete_limit("team", PER_UNIQUE) is True
    assert limiter.delete_limit("database") is True
    assert limiter.list_limits() == []


def test_buckets_for_all_three_forms(limiter: Limiter) -> None:
    limiter.set_limit(lim("database", None, 4))
    limiter.set_limit(lim("database", "redshift", 1))
    limiter.set_limit(lim("team", PER_UNIQUE, 2))
    assert limiter.buckets_for({"database": "redshift", "team": "a"}) == [
        ("database", 4),
        ("database=redshift", 1),
        ("team=*a", 2),
    ]
    assert limiter.buckets_for({"database": "postgres"}) == [("database", 4)]
    assert limiter.buckets_for({"other": "x"}) == []


def test_raising_a_limit_grants_waiters(limiter: Limiter) -> None:
    limiter.set_limit(lim("database", None, 1))
    assert acquire(limiter, "r1", "a", {"database": "x"}) is not None
    assert acquire(limiter, "r2", "b", {"database": "x"}) is None
    limiter.set_limit(lim("database", None, 2))
    assert held(limiter, "r2:b:1")


def test_a_limit_of_zero_holds_every_step_until_raised(limiter: Limiter) -> None:
    limiter.set_limit(lim("database", None, 0))
    assert acquire(limiter, "r1", "a", {"database": "x"}) is None
    (state,) = limiter.bucket_states(["database"])
    assert (state.limit, [w.lease_id for w in state.waiters]) == (0, ["r1:a:1"])
    limiter.set_limit(lim("database", None, 1))
    assert held(limiter, "r1:a:1")


# -- the guarantees ------------------------------------------------------------------------------


def test_never_more_holders_than_the_limit(backend: Backend, limiter: Limiter) -> None:
    # Given a limit of 2 and 8 threads, each one run, racing to take and free a slot
    limiter.set_limit(lim("database", "redshift", 2))
    threads, rounds = 8, 40
    lock = threading.Lock()
    current = 0
    peak = 0
    errors: list[str] = []
    first_hold = threading.Lock()  # taken by the first holder only
    two_held = threading.Event()  # two slots were held at once

    def worker(i: int) -> None:
        nonlocal current, peak
        run_id = f"race-{i}"
        try:
            for n in range(rounds):
                lease_id = f"{run_id}:s:{n}"
                token = limiter.acquire(lease_id, run_id, "s", n, {"database": "redshift"})
                if token is None:  # queued: the grant is announced to this run
                    token = backend.wait_grant(run_id, lease_id)
                with lock:
                    current += 1
                    peak = max(peak, current)
                    if current == 2:
                        two_held.set()
                if first_hold.acquire(blocking=False):
                    # the first holder keeps its slot until a second one is held: the limit of
                    # 2 is reached however the threads are scheduled (calls on the memory
                    # limiter are too short for threads to overlap by themselves)
                    two_held.wait(BOUND)
                holding = len(holders_of(limiter, "database=redshift"))
                if holding > 2:
                    errors.append(f"{holding} holders")
                with lock:
                    current -= 1
                if not limiter.release(lease_id, token):
                    errors.append(f"release of {lease_id} refused")
        except Exception as exc:  # reported below, not lost in the thread
            errors.append(repr(exc))

    # When they all run at once
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)

    # Then never more than 2 held at once, and 2 was reached; everything was freed
    assert errors == []
    assert peak == 2
    assert holders_of(limiter, "database=redshift") == []
    assert waiters_of(limiter, "database=redshift") == []


def test_key_wide_limit(limiter: Limiter) -> None:
    limiter.set_limit(lim("database", None, 2))
    assert acquire(limiter, "r1", "a", {"database": "redshift"}) is not None
    assert acquire(limiter, "r2", "b", {"database": "postgres"}) is not None
    assert acquire(limiter, "r3", "c", {"database": "mysql"}) is None
    assert acquire(limiter, "r3", "d", {"other": "x"}) is not None  # not limited
    assert holders_of(limiter, "database") == ["r1:a:1", "r2:b:1"]
    assert waiters_of(limiter, "database") == ["r3:c:1"]


def test_a_step_without_limited_tags_is_granted_a_fenced_lease(limiter: Limiter) -> None:
    limiter.set_limit(lim("database", None, 0))
    token = acquire(limiter, "r1", "a", {"other": "x"})
    assert token is not None and token > 0
    info = limiter.lease("r1:a:1")
    assert info is not None and (info.state, info.buckets, info.token) == ("held", (), token)
    assert acquire(limiter, "r1", "a", {"other": "x"}) == token
    assert limiter.release("r1:a:1", token)


def test_key_value_limit(limiter: Limiter) -> None:
    limiter.set_limit(lim("database", "redshift", 1))
    assert acquire(limiter, "r1", "a", {"database": "redshift"}) is not None
    assert acquire(limiter, "r2", "b", {"database": "redshift"}) is None
    assert acquire(limiter, "r2", "c", {"database": "postgres"}) is not None  # other value
    assert holders_of(limiter, "database=redshift") == ["r1:a:1"]


def test_per_unique_value_limit(limiter: Limiter) -> None:
    limiter.set_limit(lim("team", PER_UNIQUE, 1))
    assert acquire(limiter, "r1", "a", {"team": "x"}) is not None
    assert acquire(limiter, "r2", "b", {"team": "y"}) is not None
    assert acquire(limiter, "r3", "c", {"team": "x"}) is None
    assert holders_of(limiter, "team=*x") == ["r1:a:1"]
    assert holders_of(limiter, "team=*y") == ["r2:b:1"]
    assert waiters_of(limiter, "team=*x") == ["r3:c:1"]


def test_key_value_limit_beside_key_wide_one(backend: Backend, limiter: Limiter) -> None:
    # Given database (key-wide) 2 and database=redshift 1: a redshift step needs both
    limiter.set_limit(lim("database", None, 2))
    limiter.set_limit(lim("database", "redshift", 1))
    t1 = acquire(limiter, "r1", "a", {"database": "redshift"})
    assert t1 is not None
    assert holders_of(limiter, "database") == ["r1:a:1"]
    assert holders_of(limiter, "database=redshift") == ["r1:a:1"]

    # When a second redshift step waits, it is also first in line for the key-wide limit,
    # so a postgres step queues behind it although a database slot is free
    assert acquire(limiter, "r2", "b", {"database": "redshift"}) is None
    assert acquire(limiter, "r3", "c", {"database": "postgres"}) is None
    assert waiters_of(limiter, "database") == ["r2:b:1", "r3:c:1"]
    assert holders_of(limiter, "database=redshift") == ["r1:a:1"]

    # Then releasing the first grants both, at once, in line order, each announced to its run
    assert limiter.release("r1:a:1", t1)
    assert held(limiter, "r2:b:1") and held(limiter, "r3:c:1")
    assert sorted(holders_of(limiter, "database")) == ["r2:b:1", "r3:c:1"]
    assert [e["data"]["attempt_id"] for e in backend.grants("r2")] == ["r2:b:1"]
    assert [e["data"]["attempt_id"] for e in backend.grants("r3")] == ["r3:c:1"]


def test_all_or_nothing_and_no_starvation_of_multi_tag_waiters(limiter: Limiter) -> None:
    limiter.set_limit(lim("a", None, 1))
    limiter.set_limit(lim("b", None, 1))
    tx = acquire(limiter, "r1", "x", {"a": "1"})
    assert tx is not None

    # A step needing a and b waits, taking neither (b has room but is not taken)
    assert acquire(limiter, "r2", "both", {"a": "1", "b": "1"}) is None
    assert holders_of(limiter, "b") == []
    assert waiters_of(limiter, "a") == waiters_of(limiter, "b") == ["r2:both:1"]

    # A stream of b-only steps cannot overtake it
    for i in range(5):
        assert acquire(limiter, "r3", f"b{i}", {"b": "1"}) is None
    assert holders_of(limiter, "b") == []

    # When a is freed, the two-tag step gets both slots at once; b-only steps still wait
    assert limiter.release("r1:x:1", tx)
    assert held(limiter, "r2:both:1")
    assert holders_of(limiter, "a") == holders_of(limiter, "b") == ["r2:both:1"]
    assert waiters_of(limiter, "b") == [f"r3:b{i}:1" for i in range(5)]

    # Then the b-only steps follow in arrival order
    info = limiter.lease("r2:both:1")
    assert info is not None
    assert limiter.release("r2:both:1", info.token)
    assert holders_of(limiter, "b") == ["r3:b0:1"]


def test_waiters_granted_by_priority_then_arrival(limiter: Limiter) -> None:
    limiter.set_limit(lim("database", None, 1))
    assert acquire(limiter, "h", "s", {"database": "x"}) is not None
    for name, priority in [("w1", 0), ("w2", 5), ("w3", 0), ("w4", 5), ("w5", -2)]:
        assert acquire(limiter, name, "s", {"database": "x"}, priority) is None
    expected = ["w2", "w4", "w1", "w3", "w5"]
    assert waiters_of(limiter, "database") == [f"{n}:s:1" for n in expected]

    order = []
    current = "h:s:1"
    for _ in expected:
        info = limiter.lease(current)
        assert info is not None
        assert limiter.release(current, info.token)
        (current,) = holders_of(limiter, "database")
        order.append(current.split(":")[0])
    assert order == expected


def test_reacquire_is_idempotent(limiter: Limiter) -> None:
    limiter.set_limit(lim("database", None, 1))
    token = acquire(limiter, "r1", "a", {"database": "x"})
    assert token is not None
    assert acquire(limiter, "r1", "a", {"database": "x"}) == token
    assert acquire(limiter, "r2", "b", {"database": "x"}) is None
    assert acquire(limiter, "r3", "c", {"database": "x"}) is None
    assert acquire(limiter, "r2", "b", {"database": "x"}) is None  # keeps its place in line
    assert waiters_of(limiter, "database") == ["r2:b:1", "r3:c:1"]


def test_release_grants_next_waiter_and_announces_it_to_its_run(
    backend: Backend, limiter: Limiter
) -> None:
    limiter.set_limit(lim("database", "redshift", 1))
    token = acquire(limiter, "run-a", "load", {"database": "redshift"})
    assert token is not None
    assert acquire(limiter, "run-b", "copy", {"database": "redshift"}, attempt=2) is None
    assert backend.grants("run-b") == []

    # When the holder releases, the waiter holds the slot at once
    assert limiter.release("run-a:load:1", token)
    info = limiter.lease("run-b:copy:2")
    assert info is not None and info.state == "held"
    assert info.token > token

    # Then its run (not the releaser's) is told of the grant, with an event read as an Event
    assert backend.grants("run-a") == []
    (event,) = backend.grants("run-b")
    assert event["event_type_value"] == "ENGINE_EVENT"
    assert event["run_id"] == "run-b"
    assert event["step_key"] == "copy"
    assert event["data"] == {
        "kind": SLOT_GRANTED,
        "attempt": 2,
        "attempt_id": "run-b:copy:2",
        "token": info.token,
    }
    assert isinstance(event["timestamp"], float)
    assert abs(event["timestamp"] - info.since) < 1  # the limiter's own clock
    assert event["message"] == (
        "Concurrency slot granted to step 'copy' (attempt 2) for database=redshift "
        f"(fencing token {info.token})"
    )
    parsed = Event.from_dict(event)
    assert parsed.event_type is EventType.ENGINE_EVENT
    assert parsed.attempt == 2


def test_release_of_a_waiting_lease_withdraws_it(limiter: Limiter) -> None:
    limiter.set_limit(lim("a", None, 1))
    limiter.set_limit(lim("b", None, 1))
    assert acquire(limiter, "r1", "x", {"a": "1"}) is not None
    assert acquire(limiter, "r2", "both", {"a": "1", "b": "1"}) is None
    assert acquire(limiter, "r3", "y", {"b": "1"}) is None
    # Withdrawing the two-tag waiter lets the b-only step behind it in at once
    assert limiter.release("r2:both:1", 0)
    assert limiter.lease("r2:both:1") is None
    assert held(limiter, "r3:y:1")
    assert waiters_of(limiter, "a") == []


# -- expiry and fencing ----------------------------------------------------------------------


def test_dead_holders_slot_comes_back_within_the_lease_time(
    backend: Backend, limiter: Limiter
) -> None:
    limiter.set_limit(lim("database", None, 1))
    # Given a holder that never renews its tiny lease, and a waiter
    assert acquire(limiter, "dead", "s", {"database": "x"}, ttl=TINY_TTL) is not None
    assert acquire(limiter, "alive", "s", {"database": "x"}) is None

    # When the lease time passes, a sweep grants the waiter, and tells its run so
    backend.expire("dead:s:1")
    assert limiter.sweep() == 1
    assert held(limiter, "alive:s:1")
    assert [e["data"]["kind"] for e in backend.grants("alive")] == [SLOT_GRANTED]
    assert holders_of(limiter, "database") == ["alive:s:1"]
    assert limiter.sweep() == 0


def test_a_lapsed_waiter_leaves_the_line(backend: Backend, limiter: Limiter) -> None:
    limiter.set_limit(lim("database", None, 1))
    token = acquire(limiter, "r1", "a", {"database": "x"})
    assert token is not None
    assert acquire(limiter, "r2", "b", {"database": "x"}, ttl=TINY_TTL) is None
    assert acquire(limiter, "r3", "c", {"database": "x"}) is None
    backend.expire("r2:b:1")
    assert waiters_of(limiter, "database") == ["r3:c:1"]  # views leave it out at once
    assert limiter.release("r1:a:1", token)
    assert held(limiter, "r3:c:1")
    assert backend.grants("r2") == []
    assert limiter.renew("r2:b:1", 0) is False


def test_expired_holder_lets_a_new_acquire_in(backend: Backend, limiter: Limiter) -> None:
    limiter.set_limit(lim("database", None, 1))
    assert acquire(limiter, "dead", "s", {"database": "x"}, ttl=TINY_TTL) is not None
    assert acquire(limiter, "new", "s", {"database": "x"}) is None
    assert limiter.release("new:s:1", 0)
    backend.expire("dead:s:1")
    assert acquire(limiter, "new", "t", {"database": "x"}) is not None  # purged by acquire


def test_stale_holder_cannot_release_or_renew_the_new_holders_slot(
    backend: Backend, limiter: Limiter
) -> None:
    limiter.set_limit(lim("database", None, 1))
    # Given an old holder whose lease expired, and a new attempt that took the slot
    old = acquire(limiter, "r1", "s", {"database": "x"}, attempt=1, ttl=TINY_TTL)
    assert old is not None
    backend.expire("r1:s:1")
    new = acquire(limiter, "r1", "s", {"database": "x"}, attempt=2)
    assert new is not None and new > old
    before = limiter.lease("r1:s:2")
    assert before is not None

    # When the old holder wakes and releases or renews with its token
    assert limiter.release("r1:s:1", old) is False
    assert limiter.renew("r1:s:1", old) is False
    assert limiter.confirm("r1:s:1", old, "worker:old") is False
    # ... or uses its token on the new holder's lease
    assert limiter.release("r1:s:2", old) is False
    assert limiter.renew("r1:s:2", old, ttl=3600) is False
    assert limiter.confirm("r1:s:2", old, "worker:old") is False

    # Then the new holder's slot is untouched
    (state,) = limiter.bucket_states(["database"])
    assert [(h.lease_id, h.token, h.expires, h.worker) for h in state.holders] == [
        ("r1:s:2", new, before.expires, "coordinator:test")
    ]
    assert limiter.release("r1:s:2", new)


def test_same_lease_reacquired_after_expiry_gets_a_new_token(
    backend: Backend, limiter: Limiter
) -> None:
    limiter.set_limit(lim("database", None, 1))
    old = acquire(limiter, "r1", "s", {"database": "x"}, ttl=TINY_TTL)
    assert old is not None
    backend.expire("r1:s:1")
    new = acquire(limiter, "r1", "s", {"database": "x"})
    assert new is not None and new != old
    assert limiter.release("r1:s:1", old) is False
    assert held(limiter, "r1:s:1")
    assert limiter.release("r1:s:1", new) is True


def test_confirm(backend: Backend, limiter: Limiter) -> None:
    limiter.set_limit(lim("database", None, 1))
    token = acquire(limiter, "r1", "s", {"database": "x"})
    assert token is not None
    assert limiter.confirm("r1:s:1", token + 100, "worker:h/1") is False
    assert limiter.confirm("r1:s:1", token, "worker:h/1", ttl=60) is True
    info = limiter.lease("r1:s:1")
    assert info is not None and info.worker == "worker:h/1"
    assert info.expires - info.since > 50

    # A waiting lease cannot be confirmed; a released one neither
    assert acquire(limiter, "r2", "s", {"database": "x"}) is None
    assert limiter.confirm("r2:s:1", 0, "worker:h/1") is False
    assert limiter.release("r1:s:1", token)
    assert limiter.confirm("r1:s:1", token, "worker:h/1") is False

    # An expired one neither
    r2 = limiter.lease("r2:s:1")
    assert r2 is not None and r2.state == "held"
    assert limiter.release("r2:s:1", r2.token)
    t3 = acquire(limiter, "r3", "s", {"database": "x"}, ttl=TINY_TTL)
    assert t3 is not None
    backend.expire("r3:s:1")
    assert limiter.confirm("r3:s:1", t3, "worker:h/1") is False


def test_renew_held_and_waiting_leases(backend: Backend, limiter: Limiter) -> None:
    limiter.set_limit(lim("database", None, 1))
    token = acquire(limiter, "r1", "s", {"database": "x"}, ttl=TINY_TTL)
    assert token is not None
    assert acquire(limiter, "r2", "s", {"database": "x"}, ttl=TINY_TTL) is None
    # Renewed for an hour, both survive the tiny lease time
    assert limiter.renew_many(
        [("r1:s:1", token), ("r2:s:1", 0)], worker="coordinator:c2", ttl=3600
    ) == [RENEWED, RENEWED]
    backend.pass_time(TINY_TTL)
    assert limiter.sweep() == 0
    assert held(limiter, "r1:s:1")
    waiting = limiter.lease("r2:s:1")
    assert waiting is not None and waiting.state == "waiting"
    assert waiting.worker == "coordinator:c2"
    # owner: only the current renewer renews
    assert limiter.renew_many([("r1:s:1", token)], owner="coordinator:other") == [NOT_OWNER]
    assert limiter.renew_many([("r1:s:1", token)], owner="coordinator:c2") == [RENEWED]
    assert limiter.renew_many([("r1:s:1", token + 1), ("nope:s:1", 0)]) == [GONE, GONE]
    assert limiter.renew_many([]) == []
    with pytest.raises(InvalidInputError):
        limiter.renew("r1:s:1", token, ttl=0)


def test_a_coordinator_asking_again_takes_over_a_dead_coordinators_lease(
    limiter: Limiter,
) -> None:
    limiter.set_limit(lim("handover", None, 1))
    token = limiter.acquire("run-h:s:1", "run-h", "s", 1, {"handover": "x"}, worker="coordinator:a")
    assert token is not None
    again = limiter.acquire("run-h:s:1", "run-h", "s", 1, {"handover": "x"}, worker="coordinator:b")
    assert again == token
    assert limiter.renew("run-h:s:1", token, worker="coordinator:b", owner="coordinator:b")
    lease = limiter.lease("run-h:s:1")
    assert lease is not None and lease.worker == "coordinator:b"

    # A lease a worker renews stays the worker's
    assert limiter.confirm("run-h:s:1", token, "worker:h/1")
    assert limiter.acquire("run-h:s:1", "run-h", "s", 1, {"handover": "x"}, worker="coordinator:c")
    lease = limiter.lease("run-h:s:1")
    assert lease is not None and lease.worker == "worker:h/1"


def test_queued_operations_run_on_execute_with_one_reply_each(
    backend: Backend, limiter: Limiter
) -> None:
    limiter.set_limit(lim("database", None, 1))
    token = acquire(limiter, "r1", "a", {"database": "x"})
    assert token is not None
    assert acquire(limiter, "r2", "b", {"database": "x"}) is None

    # Given a release, two renewals and a sweep queued: nothing happens yet
    pipe = backend.pipeline()
    limiter.queue_release(pipe, "r1:a:1", token)
    limiter.queue_renewals(pipe, [("r1:a:1", token), ("r2:b:1", 0)], ttl=60)
    limiter.queue_sweep(pipe)
    assert held(limiter, "r1:a:1")

    # When the pipeline runs, they run in order: the renewal of the released lease finds it
    # gone, while the waiter it let in was granted by the release
    assert [int(reply) for reply in pipe.execute()] == [1, GONE, GONE, 0]
    assert held(limiter, "r2:b:1")
    assert [e["data"]["attempt_id"] for e in backend.grants("r2")] == ["r2:b:1"]


# -- administration and views ------------------------------------------------------------------


def test_free_run_and_free_lease(backend: Backend, limiter: Limiter) -> None:
    limiter.set_limit(lim("database", None, 1))
    assert acquire(limiter, "r1", "a", {"database": "x"}) is not None
    assert acquire(limiter, "r1", "b", {"database": "x"}) is None
    assert acquire(limiter, "r2", "c", {"database": "x"}) is None

    # free --run frees held and waiting leases of the run, and grants the next waiter
    assert limiter.free_run("r1") == 2
    assert limiter.lease("r1:a:1") is None and limiter.lease("r1:b:1") is None
    assert limiter.run_leases("r1") == []
    assert held(limiter, "r2:c:1")
    assert [e["data"]["attempt_id"] for e in backend.grants("r2")] == ["r2:c:1"]
    assert limiter.free_run("r1") == 0

    # free --lease, whatever its token
    assert limiter.free_lease("r2:c:1") is True
    assert limiter.free_lease("r2:c:1") is False
    assert holders_of(limiter, "database") == []


def test_run_leases(backend: Backend, limiter: Limiter) -> None:
    limiter.set_limit(lim("database", None, 1))
    assert acquire(limiter, "r1", "b", {"database": "x"}) is not None
    assert acquire(limiter, "r1", "a", {"database": "x"}, attempt=2) is None
    assert acquire(limiter, "r1", "c", {"other": "x"}, ttl=TINY_TTL) is not None
    assert acquire(limiter, "r2", "d", {"database": "x"}) is None
    backend.expire("r1:c:1")
    leases = limiter.run_leases("r1")
    assert [(i.lease_id, i.state, i.step_key, i.attempt) for i in leases] == [
        ("r1:a:2", "waiting", "a", 2),
        ("r1:b:1", "held", "b", 1),
    ]
    assert leases[0].token == 0 and leases[0].queued == leases[0].since
    assert leases[1].buckets == ("database",) and leases[1].token > 0
    assert limiter.run_leases("nope") == []


def test_snapshot_shape(limiter: Limiter) -> None:
    limiter.set_limit(lim("database", "redshift", 1))
    limiter.set_limit(lim("team", PER_UNIQUE, 1))
    limiter.set_limit(lim("gpu", None, 2))
    assert acquire(limiter, "r1", "a", {"database": "redshift", "team": "x"}, attempt=3)
    assert acquire(limiter, "r2", "b", {"database": "redshift"}) is None
    assert acquire(limiter, "r2", "c", {"team": "y"}) is not None
    assert limiter.confirm("r2:c:1", limiter.lease("r2:c:1").token, "worker:h/9")  # type: ignore[union-attr]

    snap = limiter.snapshot()
    assert [s.spec for s in snap] == ["database=redshift", "gpu", "team=*"]
    assert all(isinstance(s, LimitState) for s in snap)
    db, gpu, team = snap
    assert db.limit == lim("database", "redshift", 1)
    (bucket,) = db.buckets
    assert (bucket.bucket, bucket.limit) == ("database=redshift", 1)
    (holder,) = bucket.holders
    assert (holder.lease_id, holder.run_id, holder.step_key, holder.attempt) == (
        "r1:a:3",
        "r1",
        "a",
        3,
    )
    assert holder.worker == "coordinator:test" and holder.state == "held"
    assert holder.since <= holder.expires and holder.token > 0
    assert [w.lease_id for w in bucket.waiters] == ["r2:b:1"]
    assert bucket.waiters[0].state == "waiting" and bucket.waiters[0].token == 0
    assert [(b.bucket, b.holders, b.waiters) for b in gpu.buckets] == [("gpu", (), ())]
    assert [(b.bucket, [h.lease_id for h in b.holders]) for b in team.buckets] == [
        ("team=*x", ["r1:a:3"]),
        ("team=*y", ["r2:c:1"]),
    ]
    assert team.buckets[1].holders[0].worker == "worker:h/9"

    # A deleted limit's buckets still in use are listed, without a definition; its waiters
    # are let in (nothing limits them any more)
    assert limiter.delete_limit("database", "redshift")
    orphan = limiter.snapshot()[-1]
    assert orphan.limit is None and orphan.spec == "database=redshift"
    assert [h.lease_id for h in orphan.buckets[0].holders] == ["r1:a:3", "r2:b:1"]
    (unknown,) = limiter.bucket_states(["nothing"])
    assert (unknown.bucket, unknown.limit, unknown.holders, unknown.waiters) == (
        "nothing",
        None,
        (),
        (),
    )


def test_limiter_agrees_with_local_arbiter(limiter: Limiter) -> None:
    # The same random sequence of requests and releases, applied to the pure per-run arbiter
    # and to the limiter, holds the same attempts after every step (same fairness rules).
    limits = [
        lim("database", None, 2),
        lim("database", "redshift", 1),
        lim("team", PER_UNIQUE, 1),
        lim("gpu", None, 1),
    ]
    for each in limits:
        limiter.set_limit(each)
    local = LocalArbiter(limits)
    rng = random.Random(7)
    known: list[str] = []
    granted_later = 0
    for n in range(150):
        if known and rng.random() < 0.5:
            # mostly free a holder (grants follow), sometimes withdraw a waiter
            holding = [i for i in known if i in local._held]
            lease_id = rng.choice(holding if holding and rng.random() < 0.8 else known)
            known.remove(lease_id)
            local.release(lease_id)
            info = limiter.lease(lease_id)
            assert info is not None
            assert limiter.release(lease_id, info.token)
        else:
            tags: dict[str, str] = {}
            if rng.random() < 0.7:
                tags["database"] = rng.choice(["redshift", "postgres"])
            if rng.random() < 0.5:
                tags["team"] = rng.choice(["a", "b"])
            if rng.random() < 0.3:
                tags["gpu"] = "1"
            priority = rng.choice([0, 0, 1, 2])
            lease_id = f"r{n % 5}:s{n}:1"
            known.append(lease_id)
            req = SlotRequest(lease_id, f"r{n % 5}", f"s{n}", tags, priority)
            granted_locally = local.request(req)
            token = limiter.acquire(lease_id, req.run_id, req.step_key, 1, tags, priority)
            assert (token is not None) == granted_locally, (n, tags)
        granted_later += len(local.granted())
        in_limiter = {i for i in known if held(limiter, i)}
        assert in_limiter == set(local._held) & set(known), n
    assert granted_later >= 20  # the sequence exercised grants on release, not just requests


# -- the twin against the real one ---------------------------------------------------------------

TIMES = {"queued", "since", "expires", "timestamp"}  # the two clocks differ
TAG_CHOICES = {"db": ["rs", "pg"], "team": ["a", "b"], "gpu": ["1"]}
WORKERS = ["coordinator:a", "coordinator:b", "worker:x"]


def _without_times(value: Any) -> Any:
    """Leases, bucket and limit states as plain data, times left out (the clocks differ), and
    holders by lease id (they are listed by grant time)."""
    if isinstance(value, list | tuple):
        return [_without_times(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        out = {k: _without_times(v) for k, v in value.items() if k not in TIMES}
        if "holders" in out:
            out["holders"].sort(key=lambda h: h["lease_id"])
        return out
    return value


def test_memory_twin_agrees_with_redis_call_by_call(valkey_url: str, key_prefix: str) -> None:
    # Given both backends, fresh, and one random sequence of every kind of call
    memory, real = MemoryBackend(), RedisBackend(valkey_url, key_prefix)
    limits = [
        lim("db", None, 2),
        lim("db", "rs", 1),
        lim("team", PER_UNIQUE, 1),
        lim("gpu", None, 0),
        lim("gpu", None, 1),
    ]
    rng = random.Random(11)
    lease_ids: list[str] = []

    def call(n: int) -> tuple[str, Callable[[Limiter], Any]]:
        pick = rng.random()
        if pick < 0.35 or not lease_ids:
            tags = {k: rng.choice(vs) for k, vs in TAG_CHOICES.items() if rng.random() < 0.5}
            again = lease_ids and rng.random() < 0.2  # asks again, held or waiting
            lease_id = rng.choice(lease_ids) if again else f"r{n % 4}:s{n}:1"
            lease_ids.append(lease_id)
            run_id, step = lease_id.split(":")[:2]
            priority, worker = rng.choice([0, 1, -1, 9000]), rng.choice(WORKERS)
            return "acquire", lambda lm: lm.acquire(
                lease_id, run_id, step, 1, tags, priority, worker
            )
        lease_id = rng.choice(lease_ids)
        info = real.limiter.lease(lease_id)
        token = info.token if info is not None and rng.random() < 0.8 else rng.choice([0, 7])
        if pick < 0.5:
            return "release", lambda lm: lm.release(lease_id, token)
        if pick < 0.6:
            worker, owner = rng.choice(["", "coordinator:c"]), rng.choice(["", *WORKERS])
            return "renew", lambda lm: lm.renew_many([(lease_id, token)], worker, 60, owner)
        if pick < 0.68:
            return "confirm", lambda lm: lm.confirm(lease_id, token, "worker:y")
        if pick < 0.72:
            return "free_run", lambda lm: lm.free_run(lease_id.split(":")[0])
        if pick < 0.76:
            return "free_lease", lambda lm: lm.free_lease(lease_id)
        limit = rng.choice(limits)
        if pick < 0.84:
            return "set_limit", lambda lm: lm.set_limit(limit)
        if pick < 0.92:
            return "delete_limit", lambda lm: lm.delete_limit(limit.key, limit.value)
        return "sweep", lambda lm: lm.sweep()

    try:
        for n in range(250):
            # When each call is made on both
            name, make = call(n)
            replies = [_without_times(make(b.limiter)) for b in (memory, real)]

            # Then both reply alike and hold the same leases, lines and announcements
            assert replies[0] == replies[1], (n, name)
            views = [_without_times(b.limiter.snapshot()) for b in (memory, real)]
            assert views[0] == views[1], (n, name)
            for run_id in ("r0", "r1", "r2", "r3"):
                leases = [_without_times(b.limiter.run_leases(run_id)) for b in (memory, real)]
                assert leases[0] == leases[1], (n, name, run_id)
                grants = [_without_times(b.grants(run_id)) for b in (memory, real)]
                assert grants[0] == grants[1], (n, name, run_id)
        announced = sum(len(memory.grants(run_id)) for run_id in ("r0", "r1", "r2", "r3"))
        assert announced >= 10  # the sequence made waiters and granted them later
    finally:
        real.close()
        delete_prefix(valkey_url, key_prefix)
