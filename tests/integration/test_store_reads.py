"""The store's batched reads by journey (a unit of work's `select_events_after`, the chain's `previous_links`) and its
notifications (`select_notifications`, made without the dataclass's `__init__`) return what the library's own reads return, on SQLite and PostgreSQL; on PostgreSQL they find each journey by
its key even in a large table that was never analysed (where a join of the VALUES list was planned as a scan
of the whole table); and the SQLite connections of the store and the views get our page cache."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

import infra.chain
from domain.values import Actor
from infra.chain import (
    CHAIN_TABLE,
    GENESIS,
    EventsTable,
    KnownLinks,
    global_links,
    journey_links,
    previous_links,
    previous_links_statement,
    published_rows,
)
from infra.config import SQLITE_CACHE_MB, SQLITE_CHECKPOINT_PAGES, Settings
from infra.recorders import ChainedPostgresRecorder
from infra.views import SQLiteViews
from services.bootstrap import Continuum, bootstrap
from services.demo import cohort_lines
from services.importer import import_lines
from services.verification import verify_store
from tests.support.clock import fixed_clock

ACTOR = Actor("dr-ames", "clinician")


@pytest.fixture
def ingested(wired: Continuum) -> Continuum:
    lines = list(cohort_lines(12, 11, start=datetime(2025, 1, 1, tzinfo=UTC), end=datetime(2025, 12, 31, tzinfo=UTC)))
    report = import_lines(wired.service, lines, ACTOR, chunk_size=50)
    assert report.ok, report.problems()[:3]
    return wired


def journeys_and_versions(wired: Continuum) -> dict[UUID, int]:
    latest: dict[UUID, int] = {}
    for notification in wired.app.recorder.select_notifications(start=None, limit=100_000):
        latest[notification.originator_id] = max(latest.get(notification.originator_id, 0), notification.originator_version)
    return latest


def test_notifications_are_those_the_librarys_own_read_gives_for_every_kind_of_request(ingested):
    recorder = ingested.app.recorder
    library = type(recorder).__mro__[1]  # the library's recorder this one extends
    assert library.__module__.startswith("eventsourcing.")
    head = recorder.max_notification_id()
    topics = sorted({n.topic for n in recorder.select_notifications(start=None, limit=200)})[:2]
    assert head > 400
    assert len(topics) == 2
    requests = [
        ((None, 300), {}), ((10, 250), {}), ((10, 250), {"inclusive_of_start": False}), ((5, 1000), {"stop": 120}),
        ((0, 80), {"topics": topics}), ((None, 40), {"stop": head, "topics": tuple(topics[:1])}),
        ((head - 5, 100), {}), ((head, 10), {"inclusive_of_start": False}),
    ]
    for args, options in requests:
        ours, theirs = recorder.select_notifications(*args, **options), library.select_notifications(recorder, *args, **options)
        assert ours == theirs, (args, options)
        assert [list(vars(n).items()) for n in ours] == [list(vars(n).items()) for n in theirs]  # the same fields, same order
        assert all(type(n.originator_id) is UUID and type(n.state) is bytes for n in ours)
    assert len(recorder.select_notifications(10, 250, inclusive_of_start=False)) == 250
    assert recorder.select_notifications(head, 10, inclusive_of_start=False) == []


def test_events_after_a_version_are_each_journeys_later_events_in_order(ingested):
    latest = journeys_and_versions(ingested)
    assert len(latest) > 3
    pairs = [(journey, version // 2) for journey, version in latest.items()] + [(uuid4(), 0)]
    expected = sorted(
        ((e.originator_id, e.originator_version, e.topic, bytes(e.state))
         for journey, after in pairs for e in ingested.app.recorder.select_events(journey, gt=after or None)),
        key=lambda row: (str(row[0]) if ingested.database.kind == "postgres" else row[0].hex, row[1]),
    )
    found = ingested.app.recorder.select_events_after(pairs)  # type: ignore[attr-defined]
    assert [(e.originator_id, e.originator_version, e.topic, bytes(e.state)) for e in found] == expected
    assert ingested.app.recorder.select_events_after([(j, v) for j, v in latest.items()]) == []  # type: ignore[attr-defined]


def test_the_link_before_each_journeys_next_event_is_its_last_chain_link(ingested):
    latest = journeys_and_versions(ingested)
    recorder = ingested.app.recorder
    with ingested.views.transaction() as cursor:
        cursor.execute(f"SELECT originator_id, originator_version, journey_link FROM {CHAIN_TABLE}")
        links = {(UUID(str(journey)), int(version)): str(value) for journey, version, value in cursor.fetchall()}
    # the next event of each journey after half its history, and the first event of a new journey
    nexts = [StoredEvent(journey, version // 2 + 1, "t", b"") for journey, version in latest.items()] + [StoredEvent(uuid4(), 1, "t", b"")]
    postgres = ingested.database.kind == "postgres"
    events = EventsTable(recorder.events_table_name, "notification_id" if postgres else "rowid", hex_ids=not postgres,  # type: ignore[attr-defined]
                         placeholder="%s" if postgres else "?", lateral=postgres)
    with ingested.views.transaction() as cursor:
        heads = previous_links(cursor, nexts, events)
    assert heads == {str(e.originator_id): links.get((e.originator_id, e.originator_version - 1), GENESIS) for e in nexts}
    assert sorted(heads.values()).count(GENESIS) == 1


def test_postgres_finds_each_journey_by_its_key_in_a_large_table_never_analysed(pg_url):
    wired = bootstrap(Settings(database_url=pg_url), clock=fixed_clock)
    try:
        recorder = wired.app.recorder
        assert isinstance(recorder, ChainedPostgresRecorder)
        table = f'"{wired.database.schema}".{recorder.events_table_name}'
        with psycopg.connect(pg_url.split("?")[0], autocommit=True) as connection:
            connection.execute(f"SET search_path TO {wired.database.schema}")
            connection.execute(  # 200,000 rows: large enough that a scan was chosen before (no statistics)
                f"INSERT INTO {table} (originator_id, originator_version, topic, state)"
                " SELECT md5((n / 40)::text)::uuid, n % 40 + 1, 't', repeat('x', 200)::bytea FROM generate_series(0, 199999) n",
            )
            connection.execute(
                f"INSERT INTO {CHAIN_TABLE} SELECT notification_id, originator_id::text, originator_version, '', '', '' FROM {table}",
            )
            analysed = connection.execute("SELECT count(*) FROM pg_stats WHERE schemaname = current_schema()").fetchone()
            assert analysed == (0,)
            pairs = [(uuid4(), 3) for _ in range(400)]
            events = EventsTable(table, "notification_id", hex_ids=False, placeholder="%s", lateral=True)
            for statement in (recorder.select_after_statement(400), previous_links_statement(events, 400)):
                plan = "\n".join(row[0] for row in connection.execute(
                    "EXPLAIN " + statement, [value for pair in pairs for value in pair]).fetchall())
                assert "Seq Scan" not in plan, plan
                assert "Index" in plan, plan
    finally:
        wired.close()


def test_published_rows_are_the_notifications_with_their_global_links_from_any_position(ingested):
    notifications = ingested.app.recorder.select_notifications(start=None, limit=100_000)
    head = notifications[-1].id
    with ingested.views.transaction() as cursor:
        links = global_links(cursor, 1, head)
        events = ingested.app.recorder.chain_events  # type: ignore[attr-defined]
        for after, limit in ((0, 100_000), (0, 7), (5, 1), (head // 2, 50), (head - 3, 10), (head, 10)):
            rows = published_rows(cursor, events, after, limit)
            expected = [(n.id, n.originator_id, n.originator_version, n.topic, n.state, links[n.id])
                        for n in notifications if n.id > after][:limit]
            assert [(p, UUID(journey), v, topic, bytes(state), link) for p, journey, v, topic, state, link in rows] == expected


def _last_links(wired: Continuum, latest: dict[UUID, int]) -> dict[UUID, str]:
    with wired.views.transaction() as cursor:
        return {journey: next(row.journey_link for row in journey_links(cursor, journey).values() if row.version == version)
                for journey, version in latest.items()}


def _chain_is_whole(wired: Continuum) -> None:
    report = verify_store(wired.views)
    assert report.broken is None, report.broken


def _next_event(journey: UUID, version: int) -> StoredEvent:
    return StoredEvent(journey, version, "tests:Extra", f'{{"n":{version}}}'.encode())


def test_links_this_process_committed_are_taken_without_a_lookup_and_stay_the_chains(ingested, monkeypatch):
    recorder = ingested.app.recorder
    latest = journeys_and_versions(ingested)
    chained = _last_links(ingested, latest)
    assert {journey: recorder.known_links.get(str(journey), version) for journey, version in latest.items()} == chained
    looked_up: list[int] = []
    statement = infra.chain.previous_links_statement
    monkeypatch.setattr(infra.chain, "previous_links_statement", lambda events, n: looked_up.append(n) or statement(events, n))
    journeys = sorted(latest, key=str)[:3]
    recorder.insert_events([_next_event(journey, latest[journey] + 1) for journey in journeys])
    assert looked_up == []  # every link came from what this process had committed
    _chain_is_whole(ingested)


def test_a_link_another_writer_made_stale_and_one_rolled_back_are_never_used(ingested, database_url, monkeypatch):
    recorder = ingested.app.recorder
    latest = journeys_and_versions(ingested)
    first, second = sorted(latest, key=str)[:2]
    other = bootstrap(Settings(database_url=database_url), clock=fixed_clock)  # another process's recorder
    try:
        other.app.recorder.insert_events([_next_event(first, latest[first] + 1)])
    finally:
        other.close()
    recorder.insert_events([_next_event(first, latest[first] + 2)])  # its link follows the other writer's event
    _chain_is_whole(ingested)
    staging = KnownLinks.stage

    def stage_then_fail(self, rows):  # the insert fails after its links were staged: it is rolled back
        staging(self, rows)
        raise RuntimeError("disk full")

    monkeypatch.setattr(KnownLinks, "stage", stage_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        recorder.insert_events([_next_event(second, latest[second] + 1)])
    monkeypatch.undo()
    assert journeys_and_versions(ingested)[second] == latest[second]
    assert recorder.known_links.get(str(second), latest[second] + 1) is None
    with pytest.raises(IntegrityError):  # a version that exists: nothing stored, nothing kept
        recorder.insert_events([_next_event(second, latest[second] + 1), _next_event(first, latest[first] + 2)])
    assert recorder.known_links.get(str(second), latest[second] + 1) is None
    recorder.insert_events([_next_event(second, latest[second] + 1)])
    _chain_is_whole(ingested)
    assert recorder.known_links.get(str(second), latest[second] + 1) == _last_links(ingested, {second: latest[second] + 1})[second]


def test_sqlite_connections_of_the_store_and_the_views_get_our_page_cache_and_checkpoint_interval(sqlite_url):
    wired = bootstrap(Settings(database_url=sqlite_url), clock=fixed_clock)
    settings = ("cache_size", "wal_autocheckpoint", "journal_mode")
    try:
        with wired.app.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
            store = [_setting(cursor, name) for name in settings]
        assert isinstance(wired.views, SQLiteViews)
        with wired.views.transaction() as cursor:
            views = [_setting(cursor, name) for name in settings]
        assert store == views == [-SQLITE_CACHE_MB * 1024, SQLITE_CHECKPOINT_PAGES, "wal"]
    finally:
        wired.close()


def _setting(cursor, name):
    cursor.execute(f"PRAGMA {name}")
    return cursor.fetchone()[0]
