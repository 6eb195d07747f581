"""Cross-run concurrency limits in Redis (SPEC §5), what only the Redis limiter has: its key
layout, its Lua files, its round trips, and the slot arbiter of one run built on it. Against
real servers: the embedded Valkey always, the machine's Redis when ``ORCHESTRATOR_TEST_REDIS_URL``
names it. No mocks. The limiter's contract, which its in-memory twin shares, is tested on both
in ``test_limiter_contract.py``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any

import pytest
import redis

from orchestrator.concurrency.limits import SlotRequest
from orchestrator.concurrency.redis import SLOT_GRANTED, RedisLimiter
from orchestrator.concurrency.redis_arbiter import RedisArbiter
from orchestrator.redis_keys import RedisKeys
from tests.limiter_support import PER_UNIQUE, acquire, holders_of, lim, run_events
from tests.servers import delete_prefix


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


# -- what Redis holds ----------------------------------------------------------------------------


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

    # Freeing a run deletes its set of lease ids
    assert limiter.free_run("r1") == 1
    assert not client.exists(keys.limit_run("r1"))


def test_limit_definitions_are_json_under_their_spec(
    limiter: RedisLimiter, client: redis.Redis, keys: RedisKeys
) -> None:
    limiter.set_limit(lim("database", None, 2))
    limiter.set_limit(lim("database", "redshift", 1))
    limiter.set_limit(lim("team", PER_UNIQUE, 3))
    assert sorted(client.hgetall(keys.limit_defs)) == ["database", "database=redshift", "team=*"]
    assert json.loads(client.hget(keys.limit_defs, "team=*")) == {  # type: ignore[arg-type]
        "key": "team",
        "value": PER_UNIQUE,
        "limit": 3,
    }


def test_grant_events_go_to_the_runs_stream_at_redis_time(
    limiter: RedisLimiter, client: redis.Redis, keys: RedisKeys
) -> None:
    limiter.set_limit(lim("database", None, 1))
    token = acquire(limiter, "run-a", "load", {"database": "x"})
    assert token is not None
    assert acquire(limiter, "run-b", "copy", {"database": "x"}) is None
    assert limiter.release("run-a:load:1", token)
    (event,) = run_events(client, keys, "run-b")
    assert event["data"]["kind"] == SLOT_GRANTED
    sec, _ = client.time()
    assert abs(event["timestamp"] - sec) < 60


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
