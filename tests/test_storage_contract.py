"""Contract tests of the run storage: every backend in ``BACKENDS`` must pass all of them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestrator.errors import InvalidInputError
from orchestrator.events import Event, EventType, make_event
from orchestrator.storage.base import (
    RUN_EVENT_STATUSES,
    TERMINAL_STATUSES,
    Instance,
    RunRecord,
    RunsFilter,
    RunStatus,
)
from tests.servers import delete_prefix


# Backend name -> factory. A new backend (e.g. "redis") is added here and nowhere else; a factory
# may ask pytest for fixtures it needs (a server, a key prefix) through ``request``.
def _redis_backend(url_fixture: str) -> Callable[[pytest.FixtureRequest], Instance]:
    def make(request: pytest.FixtureRequest) -> Instance:
        url = request.getfixturevalue(url_fixture)
        prefix = request.getfixturevalue("key_prefix")
        request.addfinalizer(lambda: delete_prefix(url, prefix))
        return Instance.from_url(url, key_prefix=prefix)

    return make


BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Instance]] = {
    "memory": lambda request: Instance.ephemeral(),
    "valkey": _redis_backend("valkey_url"),  # embedded Valkey: always runs
    "redis": _redis_backend("machine_redis_url"),  # the machine's Redis, when CI names it
}

# How long a test lets a waiter block before deciding it is blocked; and the upper bound on how
# long anything that should happen "at once" may take.
SHORT = 0.1
BOUND = 5.0


@pytest.fixture(params=sorted(BACKENDS))
def instance(request: pytest.FixtureRequest) -> Iterator[Instance]:
    with BACKENDS[request.param](request) as inst:
        yield inst


def make_run(
    run_id: str,
    job_name: str = "job",
    status: RunStatus = RunStatus.QUEUED,
    **kwargs: Any,
) -> RunRecord:
    kwargs.setdefault("tags", {})
    kwargs.setdefault("run_config", {})
    return RunRecord(run_id=run_id, job_name=job_name, status=status, **kwargs)


def log_event(run_id: str, message: str, timestamp: float | None = None) -> Event:
    return make_event(EventType.LOG_MESSAGE, run_id, message, timestamp=timestamp)


# -- create / get --------------------------------------------------------------------------


def test_create_and_get_run(instance: Instance) -> None:
    before = time.time()
    stored = instance.create_run(
        make_run("r1", tags={"team": "data"}, run_config={"ops": {"a": {"config": {"x": 1}}}})
    )
    after = time.time()

    assert before <= stored.created_at <= after
    assert before <= stored.updated_at <= after
    assert instance.get_run("r1") == stored
    assert stored.job_name == "job"
    assert stored.status is RunStatus.QUEUED
    assert stored.tags == {"team": "data"}
    assert stored.run_config == {"ops": {"a": {"config": {"x": 1}}}}
    assert stored.start_time is None and stored.end_time is None
    assert instance.get_run("missing") is None


def test_create_keeps_given_timestamps(instance: Instance) -> None:
    stored = instance.create_run(make_run("r1", created_at=100.0, updated_at=101.0))
    assert (stored.created_at, stored.updated_at) == (100.0, 101.0)


def test_create_keeps_every_field(instance: Instance) -> None:
    record = full_record()
    stored = instance.create_run(record)
    assert stored == record
    assert instance.get_run(record.run_id) == record


def test_create_duplicate_run_id_is_an_error(instance: Instance) -> None:
    instance.create_run(make_run("r1", job_name="first"))
    with pytest.raises(InvalidInputError, match="r1"):
        instance.create_run(make_run("r1", job_name="second"))
    stored = instance.get_run("r1")
    assert stored is not None and stored.job_name == "first"


def test_stored_record_does_not_share_caller_mappings(instance: Instance) -> None:
    tags = {"a": "1"}
    instance.create_run(make_run("r1", tags=tags))
    tags["a"] = "changed"
    stored = instance.get_run("r1")
    assert stored is not None and stored.tags == {"a": "1"}


# -- get_runs ------------------------------------------------------------------------------


def test_get_runs_newest_first(instance: Instance) -> None:
    instance.create_run(make_run("old", created_at=100.0))
    instance.create_run(make_run("new", created_at=300.0))
    instance.create_run(make_run("mid", created_at=200.0))
    assert instance.get_run_ids() == ["new", "mid", "old"]
    assert [r.run_id for r in instance.get_runs()] == ["new", "mid", "old"]


def test_get_runs_ties_are_last_created_first(instance: Instance) -> None:
    for run_id in ["a", "b", "c"]:
        instance.create_run(make_run(run_id, created_at=100.0))
    assert instance.get_run_ids() == ["c", "b", "a"]


def test_get_runs_with_default_timestamps_newest_first(instance: Instance) -> None:
    for run_id in ["a", "b", "c"]:
        instance.create_run(make_run(run_id))
    assert instance.get_run_ids() == ["c", "b", "a"]


def test_get_runs_limit(instance: Instance) -> None:
    for i in range(5):
        instance.create_run(make_run(f"r{i}", created_at=100.0 + i))
    assert instance.get_run_ids(limit=2) == ["r4", "r3"]
    assert instance.get_run_ids(limit=0) == []
    assert len(instance.get_runs(limit=10)) == 5
    with pytest.raises(InvalidInputError):
        instance.get_runs(limit=-1)


@pytest.fixture
def populated(instance: Instance) -> Instance:
    """Four runs of two jobs, with different statuses and tags."""
    runs = [
        make_run("a1", "job_a", RunStatus.SUCCESS, tags={"team": "data", "env": "prod"}),
        make_run("a2", "job_a", RunStatus.FAILURE, tags={"team": "data", "env": "dev"}),
        make_run("b1", "job_b", RunStatus.QUEUED, tags={"team": "web", "env": "prod"}),
        make_run("b2", "job_b", RunStatus.SUCCESS, tags={}),
    ]
    for i, record in enumerate(runs):
        instance.create_run(RunRecord.from_dict({**record.to_dict(), "created_at": 100.0 + i}))
    return instance


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (None, ["b2", "b1", "a2", "a1"]),
        (RunsFilter(), ["b2", "b1", "a2", "a1"]),
        (RunsFilter(job_name="job_a"), ["a2", "a1"]),
        (RunsFilter(job_name="nope"), []),
        (RunsFilter(statuses=[RunStatus.SUCCESS]), ["b2", "a1"]),
        (RunsFilter(statuses=[RunStatus.QUEUED, RunStatus.FAILURE]), ["b1", "a2"]),
        (RunsFilter(statuses=[]), []),
        (RunsFilter(tags={"team": "data"}), ["a2", "a1"]),
        (RunsFilter(tags={"team": "data", "env": "prod"}), ["a1"]),
        (RunsFilter(tags={"env": "staging"}), []),
        (RunsFilter(run_ids=["a1", "b2", "unknown"]), ["b2", "a1"]),
        (RunsFilter(run_ids=[]), []),
        (RunsFilter(job_name="job_b", statuses=[RunStatus.SUCCESS]), ["b2"]),
        (RunsFilter(run_ids=["a1", "b1"], tags={"env": "prod"}, job_name="job_b"), ["b1"]),
    ],
)
def test_get_runs_filters(
    populated: Instance, filters: RunsFilter | None, expected: list[str]
) -> None:
    assert populated.get_run_ids(filters) == expected


def test_get_runs_filter_and_limit(populated: Instance) -> None:
    assert populated.get_run_ids(RunsFilter(job_name="job_a"), limit=1) == ["a2"]


# -- update_run ----------------------------------------------------------------------------


def test_update_run_status_transitions_and_timestamps(instance: Instance) -> None:
    # Given a queued run created long ago
    instance.create_run(make_run("r1", created_at=100.0, updated_at=100.0))

    # When it starts
    before = time.time()
    started = instance.update_run("r1", status=RunStatus.STARTED)
    after = time.time()

    # Then its start time and update time are now, and it is not finished
    assert started.status is RunStatus.STARTED
    assert started.start_time is not None and before <= started.start_time <= after
    assert before <= started.updated_at <= after
    assert started.created_at == 100.0
    assert started.end_time is None
    assert not started.is_finished

    # When it is marked STARTED again, its start time does not move
    again = instance.update_run("r1", status=RunStatus.STARTED)
    assert again.start_time == started.start_time

    # When it succeeds, it has an end time and is finished
    done = instance.update_run("r1", status=RunStatus.SUCCESS)
    assert done.status is RunStatus.SUCCESS
    assert done.end_time is not None and done.end_time >= started.start_time
    assert done.start_time == started.start_time
    assert done.is_finished
    assert instance.get_run("r1") == done


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_every_terminal_status_sets_end_time(instance: Instance, status: RunStatus) -> None:
    instance.create_run(make_run("r1"))
    record = instance.update_run("r1", status=status)
    assert record.end_time is not None
    assert record.start_time is None
    assert record.is_finished


def test_update_run_merges_tags_and_extra(instance: Instance) -> None:
    instance.create_run(make_run("r1", tags={"a": "1", "b": "2"}, extra={"plan": {"steps": []}}))
    record = instance.update_run("r1", tags={"b": "x", "c": "3"}, extra={"inputs": {"n": 1}})
    assert record.status is RunStatus.QUEUED
    assert record.tags == {"a": "1", "b": "x", "c": "3"}
    assert record.extra == {"plan": {"steps": []}, "inputs": {"n": 1}}
    assert instance.get_run("r1") == record


def test_update_unknown_run_is_an_error(instance: Instance) -> None:
    with pytest.raises(InvalidInputError, match="nope"):
        instance.update_run("nope", status=RunStatus.STARTED)


# -- events --------------------------------------------------------------------------------


def test_store_and_get_events_with_cursors(instance: Instance) -> None:
    instance.create_run(make_run("r1"))
    events = [log_event("r1", f"line {i}", timestamp=1000.0 + i) for i in range(5)]
    cursors = [instance.store_event(event) for event in events]

    assert len(set(cursors)) == 5
    got = instance.get_events("r1")
    assert [c for c, _ in got] == cursors
    assert [e for _, e in got] == events
    assert instance.all_events("r1") == events

    # after= returns only later events; the last cursor has nothing after it
    assert instance.get_events("r1", after=cursors[1]) == list(
        zip(cursors[2:], events[2:], strict=True)
    )
    assert instance.get_events("r1", after=cursors[-1]) == []

    # limit= returns the oldest events first
    assert instance.get_events("r1", limit=2) == list(zip(cursors[:2], events[:2], strict=True))
    assert instance.get_events("r1", after=cursors[0], limit=2) == list(
        zip(cursors[1:3], events[1:3], strict=True)
    )
    assert instance.get_events("r1", limit=0) == []


def test_cursor_of_later_store_continues_the_log(instance: Instance) -> None:
    first = instance.store_event(log_event("r1", "one"))
    second_event = log_event("r1", "two")
    second = instance.store_event(second_event)
    assert instance.get_events("r1", after=first) == [(second, second_event)]


def test_event_logs_are_per_run(instance: Instance) -> None:
    a = log_event("a", "for a")
    b = log_event("b", "for b")
    instance.store_event(a)
    instance.store_event(b)
    assert instance.all_events("a") == [a]
    assert instance.all_events("b") == [b]
    assert instance.get_events("unknown") == []


def test_bad_cursor_is_an_error(instance: Instance) -> None:
    instance.store_event(log_event("r1", "x"))
    with pytest.raises(InvalidInputError):
        instance.get_events("r1", after="not a cursor")


def test_events_round_trip(instance: Instance) -> None:
    event = make_event(
        EventType.STEP_FAILURE,
        "r1",
        "step failed",
        step_key="outer.inner",
        timestamp=1234.5,
        attempt=2,
        error={"cls_name": "ValueError", "message": "bad", "stack": "tb", "cause": None},
    )
    instance.store_event(event)
    (stored,) = instance.all_events("r1")
    assert stored == event
    assert stored.event_type is EventType.STEP_FAILURE
    assert stored.step_key == "outer.inner"
    assert stored.attempt == 2
    assert stored.error is not None and stored.error.cls_name == "ValueError"
    assert Event.from_dict(json.loads(json.dumps(stored.to_dict()))) == event


def test_run_events_update_status(instance: Instance) -> None:
    # Given a run, when its life-cycle events are stored, its status follows them
    instance.create_run(make_run("r1", created_at=10.0))
    steps = [
        (EventType.RUN_ENQUEUED, RunStatus.QUEUED),
        (EventType.RUN_STARTING, RunStatus.STARTING),
        (EventType.RUN_START, RunStatus.STARTED),
        (EventType.RUN_CANCELING, RunStatus.CANCELING),
        (EventType.RUN_CANCELED, RunStatus.CANCELED),
    ]
    for i, (event_type, status) in enumerate(steps):
        instance.store_event(make_event(event_type, "r1", timestamp=1000.0 + i))
        record = instance.get_run("r1")
        assert record is not None and record.status is status

    # Then start and end times are the events' timestamps
    record = instance.get_run("r1")
    assert record is not None
    assert record.start_time == 1002.0
    assert record.end_time == 1004.0
    assert record.is_finished


@pytest.mark.parametrize(
    ("event_type", "status"),
    [(EventType.RUN_SUCCESS, RunStatus.SUCCESS), (EventType.RUN_FAILURE, RunStatus.FAILURE)],
)
def test_run_end_events(instance: Instance, event_type: EventType, status: RunStatus) -> None:
    instance.create_run(make_run("r1"))
    instance.store_event(make_event(EventType.RUN_START, "r1", timestamp=2000.0))
    instance.store_event(make_event(EventType.STEP_START, "r1", step_key="a", timestamp=2001.0))
    record = instance.get_run("r1")
    assert record is not None and record.status is RunStatus.STARTED

    instance.store_event(make_event(event_type, "r1", timestamp=2005.0))
    record = instance.get_run("r1")
    assert record is not None
    assert (record.status, record.start_time, record.end_time) == (status, 2000.0, 2005.0)


def test_run_event_status_mapping_covers_every_run_event() -> None:
    run_events = {t.value for t in EventType if t.value.startswith("RUN_")}
    assert set(RUN_EVENT_STATUSES) == run_events
    assert set(RUN_EVENT_STATUSES.values()) == set(RunStatus)


def test_events_of_a_run_without_record_are_kept(instance: Instance) -> None:
    event = make_event(EventType.RUN_START, "ghost")
    instance.store_event(event)
    assert instance.all_events("ghost") == [event]
    assert instance.get_run("ghost") is None


def test_concurrent_stores_get_distinct_ordered_cursors(instance: Instance) -> None:
    n_threads, per_thread = 4, 50

    def store(thread: int) -> None:
        for i in range(per_thread):
            instance.store_event(log_event("r1", f"{thread}-{i}"))

    threads = [threading.Thread(target=store, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND)

    got = instance.get_events("r1")
    assert len(got) == n_threads * per_thread
    assert len({cursor for cursor, _ in got}) == len(got)
    # Each thread's events appear in the order it stored them
    for t in range(n_threads):
        mine = [e.message for _, e in got if e.message.startswith(f"{t}-")]
        assert mine == [f"{t}-{i}" for i in range(per_thread)]


# -- wait_for_events -----------------------------------------------------------------------


def test_wait_for_events_returns_at_once_when_events_exist(instance: Instance) -> None:
    event = log_event("r1", "ready")
    cursor = instance.store_event(event)
    start = time.monotonic()
    assert instance.wait_for_events("r1", None, timeout=BOUND * 2) == [(cursor, event)]
    assert time.monotonic() - start < BOUND


def test_wait_for_events_times_out_with_nothing(instance: Instance) -> None:
    cursor = instance.store_event(log_event("r1", "old"))
    start = time.monotonic()
    assert instance.wait_for_events("r1", cursor, timeout=0.05) == []
    assert time.monotonic() - start >= 0.04
    assert instance.wait_for_events("unknown", None, timeout=0.0) == []


def test_wait_for_events_wakes_when_another_thread_stores(instance: Instance) -> None:
    # Given a waiter blocked on events after the last one stored
    old_cursor = instance.store_event(log_event("r1", "old"))
    started = threading.Event()
    done = threading.Event()
    result: list[list[tuple[str, Event]]] = []

    def wait() -> None:
        started.set()
        result.append(instance.wait_for_events("r1", old_cursor, timeout=BOUND * 4))
        done.set()

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    assert started.wait(BOUND)
    assert not done.wait(SHORT), "wait_for_events returned before any new event was stored"

    # When another thread stores an event (events of other runs do not wake it with a result)
    instance.store_event(log_event("other", "elsewhere"))
    new_event = log_event("r1", "new")
    new_cursor = instance.store_event(new_event)

    # Then the waiter returns that event well before its timeout
    assert done.wait(BOUND)
    waiter.join(BOUND)
    assert result == [[(new_cursor, new_event)]]


# -- serialization -------------------------------------------------------------------------


def full_record() -> RunRecord:
    return RunRecord(
        run_id="r-full",
        job_name="etl",
        status=RunStatus.STARTED,
        tags={"team": "data", "orchestrator/priority": "3"},
        run_config={"ops": {"load": {"config": {"n": 2, "names": ["a", "b"]}}}},
        op_selection=("*load", "clean+"),
        partition_key="2024-01-01",
        pointer={"module": "examples.jobs", "attribute": "etl", "args": [], "kwargs": {}},
        parent_run_id="r-parent",
        root_run_id="r-root",
        created_at=100.5,
        updated_at=101.5,
        start_time=101.0,
        end_time=None,
        extra={"plan": {"steps": ["load"]}, "inputs": {"load.x": 1}},
    )


@pytest.mark.parametrize("record", [full_record(), make_run("r-min")], ids=["full", "minimal"])
def test_run_record_round_trips_through_json(record: RunRecord) -> None:
    data = json.loads(json.dumps(record.to_dict()))
    back = RunRecord.from_dict(data)
    assert back == record
    assert back.status is record.status
    assert back.op_selection == record.op_selection


def test_stored_run_round_trips_through_json(instance: Instance) -> None:
    stored = instance.create_run(full_record())
    assert RunRecord.from_dict(json.loads(json.dumps(stored.to_dict()))) == stored


def test_run_record_helpers() -> None:
    record = make_run("r1")
    assert record.dagster_run is record
    assert not record.is_finished
    assert RunStatus("SUCCESS") is RunStatus.SUCCESS
    assert RunStatus.SUCCESS == "SUCCESS"


# -- delete / lifecycle --------------------------------------------------------------------


def test_delete_run_removes_run_and_events(instance: Instance) -> None:
    instance.create_run(make_run("r1"))
    instance.create_run(make_run("r2"))
    instance.store_event(log_event("r1", "gone"))
    kept = log_event("r2", "kept")
    instance.store_event(kept)

    instance.delete_run("r1")

    assert instance.get_run("r1") is None
    assert instance.get_events("r1") == []
    assert instance.get_run_ids() == ["r2"]
    assert instance.all_events("r2") == [kept]
    instance.delete_run("r1")  # deleting again does nothing
    # The id can be used again
    instance.create_run(make_run("r1"))
    assert instance.get_run("r1") is not None


def test_ephemeral_instances_are_independent() -> None:
    with Instance.ephemeral() as first, Instance.ephemeral() as second:
        first.create_run(make_run("r1"))
        assert second.get_run("r1") is None


def test_a_late_run_event_does_not_move_a_run_back(instance: Instance) -> None:
    instance.create_run(make_run("late"))
    instance.store_event(make_event(EventType.RUN_START, "late"))
    instance.store_event(make_event(EventType.RUN_SUCCESS, "late"))
    instance.store_event(make_event(EventType.RUN_CANCELING, "late"))  # a cancel that came late
    assert instance.get_run("late").status is RunStatus.SUCCESS  # type: ignore[union-attr]
    instance.create_run(make_run("canceling"))
    instance.store_event(make_event(EventType.RUN_CANCELING, "canceling"))
    instance.store_event(make_event(EventType.RUN_START, "canceling"))  # a coordinator, late
    assert instance.get_run("canceling").status is RunStatus.CANCELING  # type: ignore[union-attr]
    instance.store_event(make_event(EventType.RUN_CANCELED, "canceling"))
    assert instance.get_run("canceling").status is RunStatus.CANCELED  # type: ignore[union-attr]
