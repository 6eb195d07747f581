"""Contract tests of run listing at scale: ``Instance.runs_page`` and ``count_runs_by_status``,
against every backend of ``tests.test_storage_contract.BACKENDS``; then the Redis backend's
run indexes (their upkeep on every write path, and the backfill of runs stored before them)."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator

import pytest

from orchestrator.errors import InvalidInputError
from orchestrator.events import EventType, make_event
from orchestrator.storage.base import Instance, RunRecord, RunsFilter, RunsPage, RunStatus
from orchestrator.storage.redis import INDEX_VERSION, RedisInstance
from tests.test_storage_contract import BACKENDS, BOUND, make_run

REDIS_BACKENDS = sorted(name for name in BACKENDS if name != "memory")


@pytest.fixture(params=sorted(BACKENDS))
def instance(request: pytest.FixtureRequest) -> Iterator[Instance]:
    with BACKENDS[request.param](request) as inst:
        yield inst


@pytest.fixture(params=REDIS_BACKENDS)
def redis_instance(request: pytest.FixtureRequest) -> Iterator[RedisInstance]:
    with BACKENDS[request.param](request) as inst:
        assert isinstance(inst, RedisInstance)
        yield inst


def all_pages(
    instance: Instance, filters: RunsFilter | None = None, limit: int = 7
) -> list[list[str]]:
    """The run ids of every page, following the cursors to the end."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = instance.runs_page(filters, limit=limit, cursor=cursor)
        pages.append([r.run_id for r in page.records])
        assert len(pages) < 1000, "the cursors never end"
        if page.cursor is None:
            return pages
        assert len(page.records) == limit  # only the last page is short
        cursor = page.cursor


def flat(pages: list[list[str]]) -> list[str]:
    return [run_id for page in pages for run_id in page]


def page_order(records: list[RunRecord]) -> list[str]:
    """Run ids in page order: newest first, equal creation times by run id descending."""
    ordered = sorted(records, key=lambda r: (r.created_at, r.run_id), reverse=True)
    return [r.run_id for r in ordered]


def counts(**given: int) -> dict[RunStatus, int]:
    return {status: given.get(status.value, 0) for status in RunStatus}


# -- paging --------------------------------------------------------------------------------


def test_pages_return_every_run_once_newest_first(instance: Instance) -> None:
    for i in range(25):
        instance.create_run(make_run(f"r{i:02d}", created_at=1000.0 + i))

    pages = all_pages(instance, limit=7)

    assert [len(page) for page in pages] == [7, 7, 7, 4]
    assert flat(pages) == [f"r{i:02d}" for i in reversed(range(25))]
    assert flat(pages) == instance.get_run_ids()


def test_pages_of_runs_with_default_timestamps(instance: Instance) -> None:
    for i in range(10):
        instance.create_run(make_run(f"r{i}"))
    assert flat(all_pages(instance, limit=3)) == page_order(instance.get_runs())


def test_pages_ending_exactly_at_the_limit_have_no_next_cursor(instance: Instance) -> None:
    assert instance.runs_page() == RunsPage([], None)
    for i in range(4):
        instance.create_run(make_run(f"r{i}", created_at=100.0 + i))
    assert instance.runs_page(limit=4).cursor is None
    assert all_pages(instance, limit=2) == [["r3", "r2"], ["r1", "r0"]]
    assert all_pages(instance, limit=50) == [["r3", "r2", "r1", "r0"]]


def test_runs_created_at_the_same_instant_page_by_run_id(instance: Instance) -> None:
    # Given more runs created at one instant than a Redis walk reads per chunk, between others
    instance.create_run(make_run("newest", created_at=300.0))
    tied = [f"t{i:03d}" for i in range(130)]
    for run_id in tied:
        instance.create_run(make_run(run_id, created_at=200.0))
    instance.create_run(make_run("oldest", created_at=100.0))

    # When they are paged through in small pages, Then each comes once, by run id descending
    expected = ["newest", *sorted(tied, reverse=True), "oldest"]
    assert flat(all_pages(instance, limit=7)) == expected
    assert flat(all_pages(instance, limit=60)) == expected


def test_a_run_created_between_pages_causes_no_duplicate_or_skip(instance: Instance) -> None:
    # Given 25 runs and the first page of 7
    for i in range(25):
        instance.create_run(make_run(f"r{i:02d}", created_at=1000.0 + i))
    first = instance.runs_page(limit=7)
    seen = [r.run_id for r in first.records]

    # When new runs are created (one newer than all, one at an existing run's instant), and
    # a run of the first page is deleted, before the next pages are read
    instance.create_run(make_run("new", created_at=5000.0))
    instance.create_run(make_run("r10-twin", created_at=1010.0))
    instance.delete_run(seen[-1])
    cursor = first.cursor
    while cursor is not None:
        page = instance.runs_page(limit=7, cursor=cursor)
        seen += [r.run_id for r in page.records]
        cursor = page.cursor

    # Then every older run comes exactly once, in order; the run created older than the
    # cursor comes in its place, the newer one on no later page
    expected = [f"r{i:02d}" for i in reversed(range(25))]
    expected.insert(expected.index("r10"), "r10-twin")  # same instant, greater id: first
    assert seen == expected


POPULATION = [
    # run_id, job, status, tags
    *[(f"a{i:02d}", "job_a", RunStatus.SUCCESS, {"team": "data"}) for i in range(12)],
    *[(f"b{i:02d}", "job_b", RunStatus.FAILURE, {"team": "web", "env": "prod"}) for i in range(5)],
    *[(f"c{i:02d}", "job_a", RunStatus.QUEUED, {"env": "prod"}) for i in range(6)],
    *[(f"d{i:02d}", "job_c", RunStatus.STARTED, {}) for i in range(4)],
    *[(f"e{i:02d}", "job_b", RunStatus.SUCCESS, {"team": "data", "env": "dev"}) for i in range(3)],
]


def populate(instance: Instance) -> Instance:
    """Create the runs of ``POPULATION``, their creation times not in id order."""
    for n, (run_id, job, status, tags) in enumerate(POPULATION):
        created_at = 1000.0 + (n * 7) % len(POPULATION)
        instance.create_run(make_run(run_id, job, status, tags=tags, created_at=created_at))
    return instance


@pytest.fixture
def population(instance: Instance) -> Instance:
    return populate(instance)


@pytest.mark.parametrize(
    "filters",
    [
        None,
        RunsFilter(),
        RunsFilter(statuses=[RunStatus.SUCCESS]),
        RunsFilter(statuses=[RunStatus.QUEUED, RunStatus.STARTED]),
        RunsFilter(statuses=list(RunStatus)),
        RunsFilter(statuses=[RunStatus.CANCELED]),
        RunsFilter(statuses=[]),
        RunsFilter(job_name="job_a"),
        RunsFilter(job_name="job_b"),
        RunsFilter(job_name="nope"),
        RunsFilter(tags={"team": "data"}),
        RunsFilter(tags={"env": "prod"}),
        RunsFilter(tags={"env": "staging"}),
        RunsFilter(job_name="job_a", statuses=[RunStatus.SUCCESS]),
        RunsFilter(job_name="job_b", statuses=[RunStatus.SUCCESS, RunStatus.FAILURE]),
        RunsFilter(job_name="job_b", tags={"team": "data"}),
        RunsFilter(statuses=[RunStatus.SUCCESS], tags={"env": "dev"}),
        RunsFilter(job_name="job_a", statuses=[RunStatus.QUEUED], tags={"env": "prod"}),
        RunsFilter(run_ids=["a03", "b01", "c05", "unknown"]),
        RunsFilter(run_ids=["a03", "b01", "c05"], statuses=[RunStatus.SUCCESS]),
        RunsFilter(run_ids=[]),
    ],
    ids=repr,
)
def test_pages_apply_filters(population: Instance, filters: RunsFilter | None) -> None:
    expected = page_order(population.get_runs(filters))
    assert flat(all_pages(population, filters, limit=4)) == expected
    assert flat(all_pages(population, filters, limit=100)) == expected


def test_status_pages_follow_status_changes(instance: Instance) -> None:
    for i in range(5):
        instance.create_run(make_run(f"r{i}", created_at=100.0 + i))
    instance.store_event(make_event(EventType.RUN_START, "r1"))
    instance.store_event(make_event(EventType.RUN_START, "r3"))
    instance.update_run("r4", status=RunStatus.CANCELED)

    queued = RunsFilter(statuses=[RunStatus.QUEUED])
    started = RunsFilter(statuses=[RunStatus.STARTED])
    assert flat(all_pages(instance, queued, limit=1)) == ["r2", "r0"]
    assert flat(all_pages(instance, started, limit=1)) == ["r3", "r1"]
    assert flat(all_pages(instance, RunsFilter(statuses=[RunStatus.CANCELED]))) == ["r4"]


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "",
        "1",
        "0-1",
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b'["100.0", "r1"]').decode(),
        base64.urlsafe_b64encode(b"[true, 1]").decode(),
        base64.urlsafe_b64encode(b"[NaN, 1]").decode(),
    ],
)
def test_invalid_cursor_is_an_error(instance: Instance, cursor: str) -> None:
    instance.create_run(make_run("r1"))
    with pytest.raises(InvalidInputError, match="not a runs cursor of this backend"):
        instance.runs_page(cursor=cursor)


@pytest.mark.parametrize("limit", [0, -1])
def test_page_limit_must_be_positive(instance: Instance, limit: int) -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        instance.runs_page(limit=limit)


# -- counts --------------------------------------------------------------------------------


def test_status_counts_follow_every_write(instance: Instance) -> None:
    # Given no runs, every status counts zero
    assert instance.count_runs_by_status() == counts()

    # When runs are created, they count as created
    for i in range(4):
        instance.create_run(make_run(f"a{i}", "job_a"))
    instance.create_run(make_run("b0", "job_b", RunStatus.STARTED))
    assert instance.count_runs_by_status() == counts(QUEUED=4, STARTED=1)

    # When run events move them, the counts follow (a batch of events too)
    instance.store_event(make_event(EventType.RUN_STARTING, "a0"))
    instance.store_events(
        [make_event(EventType.RUN_START, "a0"), make_event(EventType.RUN_START, "a1")]
    )
    instance.store_event(make_event(EventType.LOG_MESSAGE, "a1", "no status change"))
    instance.store_event(make_event(EventType.RUN_SUCCESS, "a0"))
    instance.store_event(make_event(EventType.RUN_START, "a1"))  # already STARTED
    assert instance.count_runs_by_status() == counts(QUEUED=2, STARTED=2, SUCCESS=1)

    # When a late event would move a finished run back, nothing moves
    instance.store_event(make_event(EventType.RUN_CANCELING, "a0"))
    assert instance.count_runs_by_status() == counts(QUEUED=2, STARTED=2, SUCCESS=1)

    # When update_run changes a status (or only tags), the counts follow
    instance.update_run("a2", status=RunStatus.CANCELING)
    instance.update_run("a3", tags={"x": "1"})
    instance.update_run("b0", status=RunStatus.FAILURE)
    assert instance.count_runs_by_status() == counts(
        QUEUED=1, STARTED=1, SUCCESS=1, CANCELING=1, FAILURE=1
    )
    assert instance.count_runs_by_status("job_a") == counts(
        QUEUED=1, STARTED=1, SUCCESS=1, CANCELING=1
    )
    assert instance.count_runs_by_status("job_b") == counts(FAILURE=1)
    assert instance.count_runs_by_status("nope") == counts()

    # When runs are deleted, they no longer count
    instance.delete_run("a0")
    instance.delete_run("b0")
    instance.delete_run("missing")
    assert instance.count_runs_by_status() == counts(QUEUED=1, STARTED=1, CANCELING=1)
    assert instance.count_runs_by_status("job_b") == counts()

    # And events of a run with no record count nowhere
    instance.store_event(make_event(EventType.RUN_START, "ghost"))
    assert instance.count_runs_by_status() == counts(QUEUED=1, STARTED=1, CANCELING=1)


def test_status_counts_match_the_runs(population: Instance) -> None:
    for job_name in [None, "job_a", "job_b", "job_c"]:
        expected = counts()
        for record in population.get_runs(RunsFilter(job_name=job_name)):
            expected[record.status] += 1
        assert population.count_runs_by_status(job_name) == expected


# -- the Redis run indexes -----------------------------------------------------------------


def index_keys(instance: RedisInstance) -> list[str]:
    """Every key of the run indexes in the instance's store (and their version key)."""
    patterns = [
        instance.keys.runs_by_status("*"),
        instance.keys.runs_by_job("*"),
        f"{instance.keys.prefix}:runs:tag:*",
    ]
    found = [str(k) for pattern in patterns for k in instance.client.scan_iter(match=pattern)]
    return [*found, instance.keys.runs_indexed]


def assert_indexes_exact(instance: RedisInstance) -> None:
    """Each run is in its status's index and its job's, scored by created_at; nothing else is."""
    runs = instance.get_runs()
    for status in RunStatus:
        members = instance.client.zrange(
            instance.keys.runs_by_status(status), 0, -1, withscores=True
        )
        assert dict(members) == {r.run_id: r.created_at for r in runs if r.status is status}
    for job_name in {r.job_name for r in runs}:
        members = instance.client.zrange(
            instance.keys.runs_by_job(job_name), 0, -1, withscores=True
        )
        assert dict(members) == {r.run_id: r.created_at for r in runs if r.job_name == job_name}
    tagged = {instance.keys.runs_by_tag(k, v): (k, v) for r in runs for k, v in r.tags.items()}
    stored = {str(k) for k in instance.client.scan_iter(match=f"{instance.keys.prefix}:runs:tag:*")}
    assert stored == set(tagged)  # an index per tag of a stored run, and no other
    for index, (key, value) in tagged.items():
        members = dict(instance.client.zrange(index, 0, -1, withscores=True))
        assert members == {r.run_id: r.created_at for r in runs if r.tags.get(key) == value}


def test_every_write_path_keeps_the_indexes_exact(redis_instance: RedisInstance) -> None:
    inst = redis_instance
    for i in range(6):
        tags = {"team": "a" if i % 3 else "b", "k=x:y": "v=1"}  # '=' and ':' in tags too
        inst.create_run(
            make_run(f"r{i}", "job_a" if i % 2 else "job_b", created_at=10.0 + i, tags=tags)
        )
    assert_indexes_exact(inst)
    inst.store_event(make_event(EventType.RUN_START, "r0"))
    inst.store_events(
        [make_event(EventType.RUN_START, "r1"), make_event(EventType.RUN_SUCCESS, "r1")]
    )
    inst.store_event(make_event(EventType.RUN_CANCELING, "r1"))  # late: no move
    inst.store_event(make_event(EventType.RUN_CANCELING, "r2"))
    inst.store_event(make_event(EventType.RUN_START, "r2"))  # after CANCELING: no move
    inst.update_run("r3", status=RunStatus.FAILURE)
    inst.update_run("r4", extra={"k": 1})
    inst.update_run("r4", tags={"team": "c", "new": "1"})  # a tag changed, one added
    assert_indexes_exact(inst)
    inst.delete_run("r0")
    inst.delete_run("r3")
    assert_indexes_exact(inst)


def test_launched_runs_are_indexed(redis_instance: RedisInstance) -> None:
    # Given a run launched for the coordinators (launch.lua)
    record = make_run("launched", "job_l", tags={"team": "l"})
    enqueued = make_event(EventType.RUN_ENQUEUED, "launched")
    stored = redis_instance.create_launched_run(record, '{"steps": []}', enqueued, priority=0)

    # Then it is listed and counted like any run
    assert redis_instance.count_runs_by_status() == counts(QUEUED=1)
    assert redis_instance.count_runs_by_status("job_l") == counts(QUEUED=1)
    page = redis_instance.runs_page(RunsFilter(job_name="job_l", statuses=[RunStatus.QUEUED]))
    assert page == RunsPage([stored], None)

    # And its status events move it between indexes
    redis_instance.store_event(make_event(EventType.RUN_START, "launched"))
    assert redis_instance.count_runs_by_status("job_l") == counts(STARTED=1)
    assert_indexes_exact(redis_instance)


def test_backfill_rebuilds_the_indexes(redis_instance: RedisInstance) -> None:
    # Given a store listed through its indexes, with some runs moved since created
    inst = redis_instance
    populate(inst)
    inst.store_event(make_event(EventType.RUN_START, "c00"))
    inst.update_run("c01", status=RunStatus.CANCELED)
    filters = [None, RunsFilter(statuses=[RunStatus.SUCCESS]), RunsFilter(job_name="job_b")]
    pages = [all_pages(inst, f, limit=5) for f in filters]
    status_counts = [inst.count_runs_by_status(job) for job in [None, "job_a"]]
    assert inst.ensure_run_indexes() == 0  # complete already

    # When its runs are no longer in the indexes (as if stored before they existed), a run
    # is in a wrong status's index, and a run no longer stored is in some
    inst.client.delete(*index_keys(inst))
    inst.client.zadd(inst.keys.runs_by_status(RunStatus.FAILURE), {"a00": 1.0})
    inst.client.zadd(inst.keys.runs_by_status(RunStatus.SUCCESS), {"gone": 2.0})
    inst.client.zadd(inst.keys.runs_by_job("job_a"), {"gone": 2.0})
    assert inst.count_runs_by_status()[RunStatus.QUEUED] == 0  # this instance indexed once

    # Then the backfill indexes every run, once
    assert inst.ensure_run_indexes() == len(POPULATION)
    assert inst.ensure_run_indexes() == 0
    assert_indexes_exact(inst)
    assert [all_pages(inst, f, limit=5) for f in filters] == pages
    assert [inst.count_runs_by_status(job) for job in [None, "job_a"]] == status_counts


def test_a_new_instance_backfills_on_first_listing(redis_instance: RedisInstance) -> None:
    inst = redis_instance
    populate(inst)
    pages = all_pages(inst, RunsFilter(statuses=[RunStatus.SUCCESS]), limit=5)
    status_counts = inst.count_runs_by_status()
    inst.client.delete(*index_keys(inst))

    fresh = RedisInstance(inst.client, inst.keys.prefix)
    assert all_pages(fresh, RunsFilter(statuses=[RunStatus.SUCCESS]), limit=5) == pages
    assert fresh.count_runs_by_status() == status_counts
    assert inst.client.get(inst.keys.runs_indexed) == INDEX_VERSION


def test_an_indexed_filter_reads_about_one_page(
    redis_instance: RedisInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given many finished runs of one job and a few queued runs of another, older
    inst = redis_instance
    for i in range(5):
        inst.create_run(make_run(f"q{i}", "rare", created_at=100.0 + i, tags={"batch": "old"}))
    for i in range(400):
        tags = {"batch": "new", "team": "t"}
        inst.create_run(
            make_run(f"s{i:03d}", "common", RunStatus.SUCCESS, created_at=1000.0 + i, tags=tags)
        )
    inst.ensure_run_indexes()  # once per store (it reads every run)
    loaded: list[int] = []
    load_many = inst._load_many

    def counting(run_ids: list[str]) -> list[RunRecord | None]:
        loaded.append(len(run_ids))
        return load_many(run_ids)

    monkeypatch.setattr(inst, "_load_many", counting)

    # When a page of queued runs, of the rare job, of a rare tag, or of the newest runs is
    # read, Then it reads the page and one more run (to know whether a next page exists);
    # with conditions, at most the runs of the smallest condition's index
    for filters, most in [
        (RunsFilter(statuses=[RunStatus.QUEUED]), 4),
        (RunsFilter(job_name="rare"), 4),
        (RunsFilter(tags={"batch": "old"}), 4),
        (None, 4),
        (RunsFilter(job_name="rare", statuses=[RunStatus.QUEUED, RunStatus.SUCCESS]), 5),
        # no run matches both: the rare tag's index (5 runs) is walked, not the common ones
        (RunsFilter(tags={"batch": "old", "team": "t"}, job_name="common"), 5),
        (RunsFilter(tags={"team": "t", "batch": "old"}), 5),
    ]:
        matches = [r for r in inst.get_runs() if filters is None or filters.matches(r)]
        loaded.clear()
        page = inst.runs_page(filters, limit=3)
        assert page.records == matches[:3] and (page.cursor is not None) == (len(matches) > 3)
        assert sum(loaded) <= most, filters


def test_backfill_while_runs_change_leaves_the_indexes_exact(
    redis_instance: RedisInstance,
) -> None:
    # Given runs not in the indexes
    inst = redis_instance
    run_ids = [f"r{i:03d}" for i in range(600)]
    for n, run_id in enumerate(run_ids):
        inst.create_run(make_run(run_id, f"job{n % 3}", created_at=100.0 + n))
    inst.client.delete(*index_keys(inst))

    # When another thread moves, updates and deletes runs while the backfill runs
    def change() -> None:
        for n, run_id in enumerate(run_ids):
            if n % 4 == 0:
                inst.store_event(make_event(EventType.RUN_START, run_id))
            elif n % 4 == 1:
                inst.update_run(run_id, status=RunStatus.FAILURE)
            elif n % 4 == 2:
                inst.delete_run(run_id)

    changer = threading.Thread(target=change)
    changer.start()
    inst.ensure_run_indexes()
    changer.join(BOUND)
    assert not changer.is_alive()

    # Then every run is indexed as it now is, and deleted runs are in no index
    assert_indexes_exact(inst)
    assert inst.count_runs_by_status() == counts(STARTED=150, FAILURE=150, QUEUED=150)
