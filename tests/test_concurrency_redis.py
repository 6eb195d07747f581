"""Cross-run concurrency limits in Redis (SPEC §5), against real servers: the embedded Valkey
always, the machine's Redis when ``ORCHESTRATOR_TEST_REDIS_URL`` names it. No mocks; the only
sleeps let a tiny lease expire, after which the outcome is checked through the API."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any

import pytest
import redis

from orchestrator.concurrency.config import APPLY_PER_UNIQUE, TagConcurrencyLimit
from orchestrator.concurrency.limits import LocalArbiter, SlotRequest
from orchestrator.concurrency.redis import (
    GONE,
    NOT_OWNER,
    RENEWED,
    SLOT_GRANTED,
    LimitState,
    RedisLimiter,
)
from orchestrator.concurrency.redis_arbiter import RedisArbiter
from orchestrator.errors import InvalidInputError
from orchestrator.events import Event, EventType
from orchestrator.redis_keys import RedisKeys
from tests.servers import delete_prefix

PER_UNIQUE = {APPLY_PER_UNIQUE: True}
TINY_TTL = 0.2  # a lease that is let expire
BOUND = 5.0  # upper bound on anything that should happen promptly


class CountingRedis(redis.Redis):
    """A real client that counts the commands it sends (no mock: every command still runs)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.commands = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands += 1
        return super().execute_command(*args, **options)


@pytest.fixture(params=["valkey_url", "machine_redis_url"], ids=["valkey", "redis"])
def url(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[str]:
    server_url = str(request.getfixturevalue(request.param))
    yield server_url
    delete_prefix(server_url, key_prefix)


@pytest.fixture
def client(url: str) -> Iterator[CountingRedis]:
    conn = CountingRedis.from_url(url, decode_responses=True)
    assert isinstance(conn, CountingRedis)
    yield conn
    conn.close()


@pytest.fixture
def keys(key_prefix: str) -> RedisKeys:
    return RedisKeys(key_prefix)


@pytest.fixture
def limiter(client: CountingRedis, keys: RedisKeys) -> RedisLimiter:
    return RedisLimiter(client, keys, lease_ttl=30.0)


@pytest.fixture
def short(client: CountingRedis, keys: RedisKeys) -> RedisLimiter:
    """A limiter on the same keys whose leases live TINY_TTL seconds (a holder about to die)."""
    return RedisLimiter(client, keys, lease_ttl=TINY_TTL)


def lim(key: str, value: str | dict[str, bool] | None, limit: int) -> TagConcurrencyLimit:
    return TagConcurrencyLimit(key=key, value=value, limit=limit)


def acquire(
    limiter: RedisLimiter,
    run_id: str,
    step: str,
    tags: Mapping[str, str],
    priority: int = 0,
    attempt: int = 1,
) -> int | None:
    lease_id = f"{run_id}:{step}:{attempt}"
    return limiter.acquire(lease_id, run_id, step, attempt, tags, priority, "coordinator:test")


def held(limiter: RedisLimiter, lease_id: str) -> bool:
    info = limiter.lease(lease_id)
    return info is not None and info.state == "held"


def run_events(client: redis.Redis, keys: RedisKeys, run_id: str) -> list[dict[str, Any]]:
    entries: Any = client.xrange(keys.run_events(run_id))
    return [json.loads(f["e"]) for _, f in entries]


def holders_of(limiter: RedisLimiter, bucket: str) -> list[str]:
    (state,) = limiter.bucket_states([bucket])
    return [h.lease_id for h in state.holders]


def waiters_of(limiter: RedisLimiter, bucket: str) -> list[str]:
    (state,) = limiter.bucket_states([bucket])
    return [w.lease_id for w in state.waiters]


def wait_until_expired(limiter: RedisLimiter, lease_id: str) -> None:
    time.sleep(TINY_TTL)  # let the tiny lease lapse; then check it through the API
    deadline = time.monotonic() + BOUND
    while limiter.lease(lease_id) is not None:
        assert time.monotonic() < deadline, f"lease {lease_id} did not expire"
        time.sleep(0.01)


# -- definitions -------------------------------------------------------------------------------


def test_set_list_delete_limits(
    limiter: RedisLimiter, client: redis.Redis, keys: RedisKeys
) -> None:
    limiter.set_limit(lim("database", None, 2))
    limiter.set_limit(lim("database", "redshift", 1))
    limiter.set_limit(lim("team", PER_UNIQUE, 3))
    assert limiter.list_limits() == [
        lim("database", None, 2),
        lim("database", "redshift", 1),
        lim("team", PER_UNIQUE, 3),
    ]
    assert sorted(client.hgetall(keys.limit_defs)) == ["database", "database=redshift", "team=*"]
    assert json.loads(client.hget(keys.limit_defs, "team=*")) == {  # type: ignore[arg-type]
        "key": "team",
        "value": PER_UNIQUE,
        "limit": 3,
    }

    limiter.set_limit(lim("database", None, 5))  # replaces
    assert limiter.list_limits()[0] == lim("database", None, 5)
    with pytest.raises(InvalidInputError):
        limiter.set_limit(lim("database", "*", 1))

    assert limiter.delete_limit("database", "redshift") is True
    assert limiter.delete_limit("database", "redshift") is False
    assert limiter.delete_limit("team", PER_UNIQUE) is True
    assert limiter.delete_limit("database") is True
    assert limiter.list_limits() == []


def test_buckets_for_all_three_forms(limiter: RedisLimiter) -> None:
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


# -- the guarantees ------------------------------------------------------------------------------


def test_never_more_holders_than_the_limit(limiter: RedisLimiter, client: redis.Redis) -> None:
    # Given a limit of 2 and 8 threads, each one run, racing to take and free a slot
    limiter.set_limit(lim("database", "redshift", 2))
    threads, rounds = 8, 40
    lock = threading.Lock()
    current = 0
    peak = 0
    errors: list[str] = []
    holders_key = limiter.keys.limit_holders("database=redshift")

    def worker(i: int) -> None:
        nonlocal current, peak
        run_id = f"race-{i}"
        stream = limiter.keys.run_events(run_id)
        cursor = "0-0"
        try:
            for n in range(rounds):
                lease_id = f"{run_id}:s:{n}"
                token = limiter.acquire(lease_id, run_id, "s", n, {"database": "redshift"})
                deadline = time.monotonic() + BOUND
                while token is None:  # queued: the grant arrives on this run's stream
                    assert time.monotonic() < deadline, f"{lease_id} never granted"
                    reply: Any = client.xread({stream: cursor}, block=1000)
                    for _, entries in reply or []:
                        for entry_id, fields in entries:
                            cursor = entry_id
                            data = json.loads(fields["e"])["data"]
                            if data["attempt_id"] == lease_id:
                                token = int(data["token"])
                with lock:
                    current += 1
                    peak = max(peak, current)
                in_redis = client.zcard(holders_key)
                if in_redis > 2:
                    errors.append(f"{in_redis} holders in Redis")
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
    assert 1 <= peak <= 2
    assert peak == 2
    assert client.zcard(holders_key) == 0
    assert waiters_of(limiter, "database=redshift") == []


def test_key_wide_limit(limiter: RedisLimiter) -> None:
    limiter.set_limit(lim("database", None, 2))
    assert acquire(limiter, "r1", "a", {"database": "redshift"}) is not None
    assert acquire(limiter, "r2", "b", {"database": "postgres"}) is not None
    assert acquire(limiter, "r3", "c", {"database": "mysql"}) is None
    assert acquire(limiter, "r3", "d", {"other": "x"}) is not None  # not limited
    assert holders_of(limiter, "database") == ["r1:a:1", "r2:b:1"]
    assert waiters_of(limiter, "database") == ["r3:c:1"]


def test_key_value_limit(limiter: RedisLimiter) -> None:
    limiter.set_limit(lim("database", "redshift", 1))
    assert acquire(limiter, "r1", "a", {"database": "redshift"}) is not None
    assert acquire(limiter, "r2", "b", {"database": "redshift"}) is None
    assert acquire(limiter, "r2", "c", {"database": "postgres"}) is not None  # other value
    assert holders_of(limiter, "database=redshift") == ["r1:a:1"]


def test_per_unique_value_limit(limiter: RedisLimiter) -> None:
    limiter.set_limit(lim("team", PER_UNIQUE, 1))
    assert acquire(limiter, "r1", "a", {"team": "x"}) is not None
    assert acquire(limiter, "r2", "b", {"team": "y"}) is not None
    assert acquire(limiter, "r3", "c", {"team": "x"}) is None
    assert holders_of(limiter, "team=*x") == ["r1:a:1"]
    assert holders_of(limiter, "team=*y") == ["r2:b:1"]
    assert waiters_of(limiter, "team=*x") == ["r3:c:1"]


def test_key_value_limit_beside_key_wide_one(
    limiter: RedisLimiter, client: redis.Redis, keys: RedisKeys
) -> None:
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

    # Then releasing the first grants both, at once, in line order
    assert limiter.release("r1:a:1", t1)
    assert held(limiter, "r2:b:1") and held(limiter, "r3:c:1")
    assert sorted(holders_of(limiter, "database")) == ["r2:b:1", "r3:c:1"]
    assert [e["data"]["attempt_id"] for e in run_events(client, keys, "r2")] == ["r2:b:1"]
    assert [e["data"]["attempt_id"] for e in run_events(client, keys, "r3")] == ["r3:c:1"]


def test_all_or_nothing_and_no_starvation_of_multi_tag_waiters(limiter: RedisLimiter) -> None:
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


def test_waiters_granted_by_priority_then_arrival(limiter: RedisLimiter) -> None:
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


def test_reacquire_is_idempotent(limiter: RedisLimiter) -> None:
    limiter.set_limit(lim("database", None, 1))
    token = acquire(limiter, "r1", "a", {"database": "x"})
    assert token is not None
    assert acquire(limiter, "r1", "a", {"database": "x"}) == token
    assert acquire(limiter, "r2", "b", {"database": "x"}) is None
    assert acquire(limiter, "r3", "c", {"database": "x"}) is None
    assert acquire(limiter, "r2", "b", {"database": "x"}) is None  # keeps its place in line
    assert waiters_of(limiter, "database") == ["r2:b:1", "r3:c:1"]


def test_release_grants_next_waiter_and_appends_event_to_its_run(
    limiter: RedisLimiter, client: redis.Redis, keys: RedisKeys
) -> None:
    limiter.set_limit(lim("database", "redshift", 1))
    token = acquire(limiter, "run-a", "load", {"database": "redshift"})
    assert token is not None
    assert acquire(limiter, "run-b", "copy", {"database": "redshift"}, attempt=2) is None
    assert run_events(client, keys, "run-b") == []

    # When the holder releases, the waiter holds the slot at once
    assert limiter.release("run-a:load:1", token)
    info = limiter.lease("run-b:copy:2")
    assert info is not None and info.state == "held"
    assert info.token > token

    # Then its run's stream (not the releaser's) carries the grant, readable as an Event
    assert run_events(client, keys, "run-a") == []
    (event,) = run_events(client, keys, "run-b")
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
    sec, _ = client.time()
    assert abs(event["timestamp"] - sec) < 60
    assert "Concurrency slot granted" in event["message"]
    parsed = Event.from_dict(event)
    assert parsed.event_type is EventType.ENGINE_EVENT
    assert parsed.attempt == 2


def test_release_of_a_waiting_lease_withdraws_it(limiter: RedisLimiter) -> None:
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


def test_dead_holders_slot_comes_back_within_the_lease_time(
    limiter: RedisLimiter, short: RedisLimiter, client: redis.Redis, keys: RedisKeys
) -> None:
    limiter.set_limit(lim("database", None, 1))
    # Given a holder that never renews its tiny lease, and a waiter
    assert acquire(short, "dead", "s", {"database": "x"}) is not None
    assert acquire(limiter, "alive", "s", {"database": "x"}) is None

    # When the lease time passes, a sweep grants the waiter, and says so on its run stream
    wait_until_expired(limiter, "dead:s:1")
    assert limiter.sweep() == 1
    assert held(limiter, "alive:s:1")
    assert [e["data"]["kind"] for e in run_events(client, keys, "alive")] == [SLOT_GRANTED]
    assert holders_of(limiter, "database") == ["alive:s:1"]


def test_expired_holder_lets_a_new_acquire_in(limiter: RedisLimiter, short: RedisLimiter) -> None:
    limiter.set_limit(lim("database", None, 1))
    assert acquire(short, "dead", "s", {"database": "x"}) is not None
    assert acquire(limiter, "new", "s", {"database": "x"}) is None
    assert limiter.release("new:s:1", 0)
    wait_until_expired(limiter, "dead:s:1")
    assert acquire(limiter, "new", "t", {"database": "x"}) is not None  # purged by acquire


def test_stale_holder_cannot_release_or_renew_the_new_holders_slot(
    limiter: RedisLimiter, short: RedisLimiter
) -> None:
    limiter.set_limit(lim("database", None, 1))
    # Given an old holder whose lease expired, and a new attempt that took the slot
    old = acquire(short, "r1", "s", {"database": "x"}, attempt=1)
    assert old is not None
    wait_until_expired(limiter, "r1:s:1")
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

    # Then the new holder's slot is untouched
    (state,) = limiter.bucket_states(["database"])
    assert [(h.lease_id, h.token, h.expires) for h in state.holders] == [
        ("r1:s:2", new, before.expires)
    ]
    assert limiter.release("r1:s:2", new)


def test_same_lease_reacquired_after_expiry_gets_a_new_token(
    limiter: RedisLimiter, short: RedisLimiter
) -> None:
    limiter.set_limit(lim("database", None, 1))
    old = acquire(short, "r1", "s", {"database": "x"})
    assert old is not None
    wait_until_expired(limiter, "r1:s:1")
    new = acquire(limiter, "r1", "s", {"database": "x"})
    assert new is not None and new != old
    assert limiter.release("r1:s:1", old) is False
    assert held(limiter, "r1:s:1")
    assert limiter.release("r1:s:1", new) is True


def test_confirm(limiter: RedisLimiter, short: RedisLimiter) -> None:
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
    t3 = acquire(short, "r3", "s", {"database": "x"})
    assert t3 is not None
    wait_until_expired(limiter, "r3:s:1")
    assert limiter.confirm("r3:s:1", t3, "worker:h/1") is False


def test_renew_held_and_waiting_leases(limiter: RedisLimiter, short: RedisLimiter) -> None:
    limiter.set_limit(lim("database", None, 1))
    token = acquire(short, "r1", "s", {"database": "x"})
    assert token is not None
    assert acquire(short, "r2", "s", {"database": "x"}) is None
    # Renewed for an hour, both survive the tiny lease time
    assert limiter.renew_many(
        [("r1:s:1", token), ("r2:s:1", 0)], worker="coordinator:c2", ttl=3600
    ) == [RENEWED, RENEWED]
    time.sleep(TINY_TTL)
    assert limiter.sweep() == 0
    assert held(limiter, "r1:s:1")
    waiting = limiter.lease("r2:s:1")
    assert waiting is not None and waiting.state == "waiting"
    # owner: only the current renewer renews
    assert limiter.renew_many([("r1:s:1", token)], owner="coordinator:other") == [NOT_OWNER]
    assert limiter.renew_many([("r1:s:1", token)], owner="coordinator:c2") == [RENEWED]
    assert limiter.renew_many([("r1:s:1", token + 1), ("nope:s:1", 0)]) == [GONE, GONE]


def test_free_run_and_free_lease(
    limiter: RedisLimiter, client: redis.Redis, keys: RedisKeys
) -> None:
    limiter.set_limit(lim("database", None, 1))
    assert acquire(limiter, "r1", "a", {"database": "x"}) is not None
    assert acquire(limiter, "r1", "b", {"database": "x"}) is None
    assert acquire(limiter, "r2", "c", {"database": "x"}) is None

    # free --run frees held and waiting leases of the run, and grants the next waiter
    assert limiter.free_run("r1") == 2
    assert limiter.lease("r1:a:1") is None and limiter.lease("r1:b:1") is None
    assert held(limiter, "r2:c:1")
    assert [e["data"]["attempt_id"] for e in run_events(client, keys, "r2")] == ["r2:c:1"]
    assert not client.exists(keys.limit_run("r1"))
    assert limiter.free_run("r1") == 0

    # free --lease, whatever its token
    assert limiter.free_lease("r2:c:1") is True
    assert limiter.free_lease("r2:c:1") is False
    assert holders_of(limiter, "database") == []


def test_snapshot_shape(limiter: RedisLimiter) -> None:
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


def test_raising_a_limit_grants_waiters(limiter: RedisLimiter) -> None:
    limiter.set_limit(lim("database", None, 1))
    assert acquire(limiter, "r1", "a", {"database": "x"}) is not None
    assert acquire(limiter, "r2", "b", {"database": "x"}) is None
    limiter.set_limit(lim("database", None, 2))
    assert held(limiter, "r2:b:1")


def test_keys_follow_redis_keys_and_share_one_hash_tag(
    limiter: RedisLimiter, client: redis.Redis, keys: RedisKeys
) -> None:
    limiter.set_limit(lim("database", None, 1))
    assert acquire(limiter, "r1", "a", {"database": "x"}) is not None
    assert acquire(limiter, "r2", "b", {"database": "x"}) is None
    assert client.zscore(keys.limit_holders("database"), "r1:a:1") is not None
    assert client.zscore(keys.limit_waiters("database"), "r2:b:1") is not None
    assert client.hget(keys.limit_lease("r1:a:1"), "state") == "held"
    assert client.smembers(keys.limit_run("r2")) == {"r2:b:1"}
    assert client.smembers(keys.limit_buckets) == {"database"}
    assert set(client.zrange(keys.limit_expiry, 0, -1)) == {"r1:a:1", "r2:b:1"}
    names = set(client.scan_iter(match=f"{keys.prefix}:*"))
    assert names and all(n.startswith(f"{keys.prefix}:{{limits}}:") for n in names)


def test_lua_files_state_keys_argv_and_schema() -> None:
    folder = resources.files("orchestrator.concurrency").joinpath("lua")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".lua"))
    assert "_lib.lua" in names and "acquire.lua" in names
    lib = folder.joinpath("_lib.lua").read_text()
    for needle in ("KEYS[1]", "KEYS[5]", "ARGV[1]", "ARGV[3]", "holders:", "waiters:", "lease:"):
        assert needle in lib
    for name in names:
        header = folder.joinpath(name).read_text().split("\nlocal", 1)[0]
        assert "ARGV" in header, name
        assert "TIME" not in folder.joinpath(name).read_text() or name == "_lib.lua"


def test_limiter_agrees_with_local_arbiter(limiter: RedisLimiter) -> None:
    # The same random sequence of requests and releases, applied to the pure per-run arbiter
    # and to Redis, holds the same attempts after every step (same fairness rules).
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
        in_redis = {i for i in known if held(limiter, i)}
        assert in_redis == set(local._held) & set(known), n
    assert granted_later >= 20  # the sequence exercised grants on release, not just requests


# -- the arbiter of one run ----------------------------------------------------------------------


def request(run_id: str, step: str, tags: Mapping[str, str], attempt: int = 1) -> SlotRequest:
    return SlotRequest(f"{run_id}:{step}:{attempt}", run_id, step, dict(tags))


def test_arbiter_makes_no_redis_call_for_a_step_without_limited_tags(
    limiter: RedisLimiter, client: CountingRedis
) -> None:
    limiter.set_limit(lim("database", None, 1))
    arbiter = RedisArbiter(limiter, "r1", worker="coordinator:c1")
    assert arbiter.request(request("r1", "warm", {"database": "x"})) is True  # cache warm
    before = client.commands
    assert arbiter.request(request("r1", "plain", {"team": "a"})) is True
    assert arbiter.request(request("r1", "bare", {})) is True
    arbiter.release("r1:plain:1")
    arbiter.release("r1:bare:1")
    assert client.commands == before


def test_arbiter_pending_then_granted_from_the_event(
    limiter: RedisLimiter, client: redis.Redis, keys: RedisKeys
) -> None:
    limiter.set_limit(lim("database", "redshift", 1))
    first = RedisArbiter(limiter, "run-a", worker="coordinator:c1")
    second = RedisArbiter(limiter, "run-b", worker="coordinator:c2")
    assert first.request(request("run-a", "load", {"database": "redshift"}))
    req = request("run-b", "copy", {"database": "redshift"})

    # A queued step: pending, and the wait message names the limit and its holder
    assert second.request(req) is False
    assert second.granted() == []
    message = second.describe_wait(req.attempt_id)
    assert message.startswith("waiting for a slot of database=redshift (limit 1; held by ")
    assert "run-a/load (attempt 1, coordinator:c1)" in message

    # When the holder ends, the grant event lands on run-b's stream; fed in, it is granted
    first.release("run-a:load:1")
    (event,) = run_events(client, keys, "run-b")
    assert event["data"]["kind"] == SLOT_GRANTED
    second.note_granted(event["data"]["attempt_id"], event["data"]["token"])
    assert second.granted() == [req.attempt_id]
    assert second.granted() == []
    assert second.tokens[req.attempt_id] == event["data"]["token"]

    # Then releasing it frees the slot
    second.release(req.attempt_id)
    assert holders_of(limiter, "database=redshift") == []


def test_arbiter_release_withdraws_a_waiting_request(limiter: RedisLimiter) -> None:
    limiter.set_limit(lim("database", None, 1))
    arbiter = RedisArbiter(limiter, "r1", worker="coordinator:c1")
    assert arbiter.request(request("r1", "a", {"database": "x"}))
    assert not arbiter.request(request("r1", "b", {"database": "x"}))
    arbiter.release("r1:b:1")
    assert limiter.lease("r1:b:1") is None
    assert arbiter.waiting == []
    arbiter.release("r1:a:1")
    assert holders_of(limiter, "database") == []
    arbiter.release("unknown")

    # A request granted in Redis whose event was not fed in yet is freed all the same
    other = RedisArbiter(limiter, "r2", worker="coordinator:c2")
    assert arbiter.request(request("r1", "c", {"database": "x"}))
    assert not other.request(request("r2", "d", {"database": "x"}))
    arbiter.release("r1:c:1")
    assert holders_of(limiter, "database") == ["r2:d:1"]
    other.release("r2:d:1")
    assert holders_of(limiter, "database") == []
    other.note_granted("r2:d:1", 99)  # the late event changes nothing
    assert other.granted() == [] and other.tokens == {}


def test_arbiter_renew_all(limiter: RedisLimiter) -> None:
    limiter.set_limit(lim("database", None, 1))
    arbiter = RedisArbiter(limiter, "r1", worker="coordinator:c1")
    held_req = request("r1", "a", {"database": "x"})
    wait_req = request("r1", "b", {"database": "x"})
    assert arbiter.request(held_req) and not arbiter.request(wait_req)
    assert arbiter.renew_all() == []

    # Once a worker confirms a lease, the worker renews it, not the coordinator
    token = arbiter.tokens[held_req.attempt_id]
    assert limiter.confirm(held_req.attempt_id, token, "worker:h/1")
    assert arbiter.renew_all() == []
    info = limiter.lease(held_req.attempt_id)
    assert info is not None and info.worker == "worker:h/1"

    # A grant whose event was not fed in is found by renewal; a freed lease is reported lost
    arbiter.release(held_req.attempt_id)
    assert holders_of(limiter, "database") == [wait_req.attempt_id]
    assert arbiter.renew_all() == []
    assert arbiter.granted() == [wait_req.attempt_id]
    assert limiter.free_lease(wait_req.attempt_id)
    assert arbiter.renew_all() == [wait_req.attempt_id]


def test_arbiter_adopt_reuses_the_lease(limiter: RedisLimiter) -> None:
    limiter.set_limit(lim("database", None, 1))
    old = RedisArbiter(limiter, "r1", worker="coordinator:dead")
    req = request("r1", "a", {"database": "x"})
    assert old.request(req)
    token = old.tokens[req.attempt_id]

    # A restarted coordinator adopts the in-flight attempt: same lease, same token, renewed
    # by the new coordinator from now on
    new = RedisArbiter(limiter, "r1", worker="coordinator:new")
    new.adopt(req)
    new.adopt(req)
    assert new.tokens[req.attempt_id] == token
    info = limiter.lease(req.attempt_id)
    assert info is not None and info.worker == "coordinator:new"
    assert holders_of(limiter, "database") == [req.attempt_id]

    # A lease a worker renews stays the worker's
    assert limiter.confirm(req.attempt_id, token, "worker:h/1")
    third = RedisArbiter(limiter, "r1", worker="coordinator:third")
    third.adopt(req)
    assert third.renew_all() == []
    info = limiter.lease(req.attempt_id)
    assert info is not None and info.worker == "worker:h/1"


def test_a_coordinator_asking_again_takes_over_a_dead_coordinators_lease(
    limiter: RedisLimiter,
) -> None:
    limiter.set_limit(TagConcurrencyLimit(key="handover", limit=1))
    token = limiter.acquire("run-h:s:1", "run-h", "s", 1, {"handover": "x"}, worker="coordinator:a")
    assert token is not None
    again = limiter.acquire("run-h:s:1", "run-h", "s", 1, {"handover": "x"}, worker="coordinator:b")
    assert again == token
    assert limiter.renew("run-h:s:1", token, worker="coordinator:b", owner="coordinator:b")
    lease = limiter.lease("run-h:s:1")
    assert lease is not None and lease.worker == "coordinator:b"
