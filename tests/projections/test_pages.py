"""A page of events at once gives the rows event by event gives: each projection's tables built by the runner in
pages of one, seven and a thousand events, and followed live, equal the tables its one-event path writes (every
event through `process` on a plain cursor, one transaction each: what the stock runner and the Kafka workers do);
and a page costs a few statements, not several per event."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from domain.values import Actor
from infra.config import Settings
from projections import pages
from projections.catalogue import all_projections
from projections.pages import LOOKUP, by_journey
from projections.runner import GatheredInserts, ProjectionRunner
from services.bootstrap import bootstrap
from services.demo import generate_cohort
from services.importer import import_lines
from tests.projections.builders import (
    admit,
    alumni,
    build_mixed_history,
    correct,
    discharge,
    dump,
    line,
    register,
    send,
    step,
)
from tests.support.clock import NOW, fixed_clock

NAMES = [projection.name for projection in all_projections()]
DAY0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def on(day: float) -> str:
    return (DAY0 + timedelta(days=day)).isoformat()


def session(wired, ref: str, day: float, sid: str, *, missed: bool = False, **fields) -> None:
    command = "miss_session" if missed else "attend_session"
    send(wired, line(f"{ref}:{sid}", command, ref, on(day), session_id=sid, **fields))


def specimen(wired, ref: str, day: float, sid: str, result_day: float | None = None, result: str = "negative") -> None:
    send(wired, line(f"{ref}:{sid}", "collect_drug_test", ref, on(day), specimen_id=sid))
    if result_day is not None:
        send(wired, line(f"{ref}:{sid}:result", "result_drug_test", ref, on(result_day), specimen_id=sid, result=result,
                         substances={"opiates": "negative", "benzodiazepines": "positive"}, expected_medications=["benzodiazepines"]))


def void(wired, ref: str, day: float, *versions: int) -> None:
    send(wired, line(f"{ref}:void:{versions}", "void", ref, on(day), versions=list(versions), reason="entered in error"))


def build_busy_history(wired) -> None:
    """Journeys whose events meet inside one page: sessions and specimens around steps, changes of track and a
    discharge; late sessions filed under an earlier interval; results in the page of their collection and after;
    corrections of times, sites and tracks with sessions and specimens to file again; voids of a step, a change of
    track, a discharge, a result, a collection and a session; a readmission and alumni after a corrected site."""
    build_mixed_history(wired)
    register(wired, "P-1", on(0), "north")  # v1
    admit(wired, "P-1", on(1), "2.1", "north", "day", planned_hours_per_week=9.3)  # v2
    session(wired, "P-1", 2, "p1-s1")  # v3
    session(wired, "P-1", 3, "p1-s2", missed=True, excused=True)  # v4
    specimen(wired, "P-1", 4, "p1-x1", result_day=6)  # v5, v6
    step(wired, "P-1", on(10), "step_up", "2.5", "relapse", track="day")  # v7
    session(wired, "P-1", 9, "p1-s3")  # v8: held before the step, recorded after it
    session(wired, "P-1", 11, "p1-s4")  # v9
    send(wired, line("P-1:eve", "change_track", "P-1", on(20), track="evening", reason="found work"))  # v10
    session(wired, "P-1", 21, "p1-s5", minutes=90)  # v11
    specimen(wired, "P-1", 22, "p1-x2")  # v12
    correct(wired, "P-1", 10, "occurred_at", on(18), on(23))  # v13: the change of track earlier, s5 stays after it
    correct(wired, "P-1", 11, "occurred_at", on(17), on(23.5))  # v14: s5 now before the change of track
    specimen(wired, "P-1", 24, "p1-x3", result_day=25, result="positive")  # v15, v16
    void(wired, "P-1", 26, 16)  # v17: the result goes, the specimen stays
    specimen(wired, "P-1", 27, "p1-x4")  # v18
    void(wired, "P-1", 28, 18)  # v19: the collection goes
    session(wired, "P-1", 29, "p1-s6")  # v20
    void(wired, "P-1", 30, 20)  # v21
    send(wired, line("P-1:undo", "void", "P-1", on(31), versions=[10], reason="the job fell through"))  # v22
    session(wired, "P-1", 32, "p1-s7")
    specimen(wired, "P-1", 38, "p1-x5")
    discharge(wired, "P-1", on(40))
    send(wired, line("P-1:p1-x5:result", "result_drug_test", "P-1", on(41), specimen_id="p1-x5", result="dilute"))  # v26
    correct(wired, "P-1", 25, "reason", "transferred", on(42))
    correct(wired, "P-1", 25, "occurred_at", on(39.5), on(42.5))

    register(wired, "P-2", on(0), "south")  # v1
    admit(wired, "P-2", on(2), "3.5", "south")  # v2
    session(wired, "P-2", 3, "p2-s1")  # v3
    step(wired, "P-2", on(8), "step_down", "2.1", "progress", track="evening")  # v4
    session(wired, "P-2", 9, "p2-s2")  # v5
    specimen(wired, "P-2", 9, "p2-x1", result_day=12)  # v6, v7
    void(wired, "P-2", 13, 4)  # v8: the step goes, sessions after it file under the residential stay
    step(wired, "P-2", on(14), "step_down", "2.5", "progress", track="day")  # v9
    correct(wired, "P-2", 2, "site", "east", on(15))  # v10
    correct(wired, "P-2", 9, "track", "evening", on(15.5))  # v11
    session(wired, "P-2", 16, "p2-s3")
    discharge(wired, "P-2", on(30), reason="left_against_advice")
    void(wired, "P-2", 31, 13)  # the discharge goes: the stay and episode open again
    discharge(wired, "P-2", on(32))
    correct(wired, "P-2", 1, "site", "west", on(33))  # the registration's site, before alumni
    alumni(wired, "P-2", on(34))
    admit(wired, "P-2", on(60), "2.1", "west", "day")  # readmitted
    session(wired, "P-2", 61, "p2-s4")


def build_cohort(wired, clients: int = 12) -> None:
    """A small demo cohort, as `continuum demo` records it (its corrections included)."""
    commands = generate_cohort(clients, 5, start=NOW - timedelta(days=365), end=NOW)
    report = import_lines(wired.service, (json.dumps(c) for c in commands), Actor("demo", "system"), chunk_size=500)
    assert not report.errors, report.errors[:3]


def one_event_at_a_time(wired, name: str) -> dict[str, list[tuple]]:
    """The projection's tables made again, every event through `process` on a plain cursor in its own transaction."""
    projection = wired.runner.projections[name]
    with wired.views.transaction() as cursor:
        for table in projection.tables:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in projection.ddl(wired.views.dialect):
            cursor.execute(statement)
    for notification in wired.app.recorder.select_notifications(start=None, limit=100_000):
        if notification.topic in projection.topics:
            event = wired.app.mapper.to_domain_event(notification)
            with wired.views.transaction() as cursor:
                projection.process(event, cursor, notification.id)
    return dump(wired, [name])


@pytest.mark.parametrize("name", NAMES)
def test_pages_of_any_size_give_the_rows_of_the_one_event_path(wired, name):
    build_busy_history(wired)
    build_cohort(wired)
    tables: list[dict[str, list[tuple]]] = []
    for size in (1, 7, 1000):
        wired.runner.batch_size = size
        wired.runner.rebuild([name])
        tables.append(dump(wired, [name]))
    assert tables[0] == tables[1] == tables[2]
    assert sum(len(rows) for rows in tables[0].values()) > 0
    assert one_event_at_a_time(wired, name) == tables[0]


def test_followed_live_in_small_pages_equals_one_page(wired):
    wired.runner.batch_size = 3
    build_busy_history(wired)
    wired.runner.catch_up()
    live = dump(wired)
    wired.runner.batch_size = 1000
    wired.runner.rebuild(NAMES)
    assert dump(wired) == live
    assert live["drug_analytes"]
    assert any(row[6] == "east" for row in live["outcome_stays"])  # P-2's admission, its site corrected


CARRYING = ("census_intervals", "outcome_stays", "outcome_episodes", "attendance_placements", "drug_test_placements")
"""The tables whose rows a page keeps in memory (`JourneyRows`) and carries to the next page of its run."""


def test_rows_carried_from_page_to_page_are_read_once_a_run(wired, monkeypatch):
    """In pages of three, each journey's rows of a table are read from the database once in a rebuild, and again only
    after a handler's own SQL about the journey (a correction or a void: `sync`); carrying nothing, every page that
    has the journey reads them again. The rows are the same either way."""
    build_busy_history(wired)
    build_cohort(wired)
    wired.runner.batch_size = 3
    asked: Counter = Counter()
    synced: Counter = Counter()
    read, sync = pages.by_journey, pages.JourneyRows.sync

    def counted_read(cursor, dialect, table, columns, journey_ids):
        asked.update((table, journey) for journey in dict.fromkeys(journey_ids))
        return read(cursor, dialect, table, columns, journey_ids)

    def counted_sync(self, journey):
        synced[(self.table, journey)] += 1
        return sync(self, journey)

    monkeypatch.setattr(pages, "by_journey", counted_read)
    monkeypatch.setattr(pages.JourneyRows, "sync", counted_sync)
    reads, tables = {}, {}
    for carried in (10_000, 0):
        asked.clear()
        synced.clear()
        wired.runner.carried_journeys = carried
        wired.runner.rebuild(NAMES)
        tables[carried] = dump(wired)
        reads[carried] = {key: n for key, n in asked.items() if key[0] in CARRYING}
        again = {key: n for key, n in reads[carried].items() if n > 1 + synced[key]}
        assert bool(again) == (carried == 0), again
    assert {table for table, _ in reads[10_000]} == set(CARRYING)
    assert sum(reads[0].values()) > 2 * sum(reads[10_000].values())
    assert tables[10_000] == tables[0]


def test_a_runner_taking_turns_with_another_reads_again_what_the_other_changed(wired):
    """Two runners take turns, a page each, on the same projections: a page that starts where another runner's page
    ended uses nothing its runner carried from its own last page (the other changed the tables since), and the
    tables come out as one runner in one page makes them."""
    build_busy_history(wired)
    build_cohort(wired)
    other = ProjectionRunner(wired.app, wired.views, list(wired.runner.projections.values()), batch_size=3)
    wired.runner.batch_size = 3

    class OnePage(Exception):  # noqa: N818 - ends the other runner's turn after one page
        pass

    def stop(last: int, head: int) -> None:
        raise OnePage

    turns = []

    def take_turn(last: int, head: int) -> None:
        try:
            other.catch_up(progress=stop)
        except OnePage:
            turns.append(last)

    wired.runner.catch_up(progress=take_turn)
    assert len(turns) > 20
    taken_turns = dump(wired)
    wired.runner.batch_size = 1000
    wired.runner.rebuild(NAMES)
    assert dump(wired) == taken_turns


class Counting:
    """A view cursor that counts the statements sent through it, by their first word and table."""

    def __init__(self, cursor, counts: Counter) -> None:
        self._cursor, self.counts = cursor, counts

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def execute(self, sql, params=(), /):
        words = sql.split()
        self.counts[(words[0].upper(), next((w for w in words if w.endswith(("_rebuilding",))), ""))] += 1
        return self._cursor.execute(sql, params)

    def executemany(self, sql, rows, /):
        words = sql.split()
        self.counts[(words[0].upper() + " many", next((w for w in words if w.endswith("_rebuilding")), ""))] += 1
        return self._cursor.executemany(sql, rows)

    def fetchone(self):
        return self._cursor.fetchone()

    def fetchall(self):
        return self._cursor.fetchall()


@pytest.mark.parametrize("name", ["attendance", "census", "outcomes", "drug_tests"])
def test_a_page_reads_its_rows_once_and_writes_them_together(wired, name, monkeypatch):
    build_cohort(wired, clients=30)
    counts: Counter = Counter()
    transaction = wired.views.transaction

    @contextmanager
    def counted() -> Iterator[Counting]:
        with transaction() as cursor:
            yield Counting(cursor, counts)

    monkeypatch.setattr(wired.views, "transaction", counted)
    handled = wired.runner.rebuild([name])
    monkeypatch.undo()
    projection = wired.runner.projections[name]
    events = sum(1 for n in wired.app.recorder.select_notifications(start=None, limit=100_000) if n.topic in projection.topics)
    assert handled == events > 100
    rows = {key: n for key, n in counts.items() if key[1] and key[0].split()[0] in ("SELECT", "INSERT", "UPDATE", "DELETE")}
    # one page: each table read once and written with one statement of each kind (census_clients twice: the sites of
    # the clients enrolled in alumni are read after some registrations); none per event
    assert sum(rows.values()) <= 8, rows
    assert all(n <= 2 for n in rows.values()), rows


class Recorder:
    """A view cursor that records what it is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple] = []

    @property
    def rowcount(self) -> int:
        return 0

    def execute(self, sql, params=(), /):
        self.sent.append(("execute", sql, tuple(params)))

    def executemany(self, sql, rows, /):
        self.sent.append(("executemany", sql, [tuple(r) for r in rows]))

    def fetchone(self):
        return None

    def fetchall(self):
        return []


def test_held_inserts_go_together_per_table_and_keep_their_order():
    view = Recorder()
    writes = GatheredInserts(view)
    insert = "INSERT INTO t (a, b) VALUES (?, ?)"
    many = [(i, str(i)) for i in range(50)]
    writes.executemany(insert, many[:10])
    for row in many[10:]:
        writes.execute(insert, row)
    writes.execute("INSERT INTO u (a) VALUES (?)", (1,))
    writes.execute("UPDATE t SET b = ? WHERE a = ?", ("x", 1))  # sends t's inserts first, not u's
    writes.execute("INSERT INTO t (a, b) VALUES (?, 'literal')", (99,))
    writes.flush()
    assert view.sent == [
        ("executemany", insert, many),
        ("execute", "UPDATE t SET b = ? WHERE a = ?", ("x", 1)),
        ("executemany", "INSERT INTO u (a) VALUES (?)", [(1,)]),
        ("executemany", "INSERT INTO t (a, b) VALUES (?, 'literal')", [(99,)]),
    ]


def test_one_insert_again_and_again_keeps_its_place_around_what_comes_between():
    """The same INSERT (the same text object, as a handler's constant) joins its run only while that run is its table's
    last: a statement on the table in between sends the run, and the rows after it make a new run."""
    view = Recorder()
    writes = GatheredInserts(view)
    t, u = "INSERT INTO t (a) VALUES (?)", "INSERT INTO u (a) VALUES (?)"
    for statement, row in ((t, 1), (t, 2), (u, 10), (t, 3)):
        writes.execute(statement, (row,))
    writes.execute("DELETE FROM t WHERE a = ?", (2,))
    writes.execute(t, (4,))
    writes.execute(t, (5,))
    writes.execute("UPDATE u SET a = 11 WHERE a = ?", (10,))
    writes.execute(u, (12,))
    writes.flush()
    writes.execute(t, (6,))
    writes.flush()
    assert view.sent == [
        ("executemany", t, [(1,), (2,), (3,)]),
        ("execute", "DELETE FROM t WHERE a = ?", (2,)),
        ("executemany", u, [(10,)]),
        ("execute", "UPDATE u SET a = 11 WHERE a = ?", (10,)),
        ("executemany", t, [(4,), (5,)]),
        ("executemany", u, [(12,)]),
        ("executemany", t, [(6,)]),
    ]


def test_a_page_finds_its_journeys_rows_by_key_in_a_large_table_never_analysed(pg_url):
    """A rebuild's tables are new, so PostgreSQL has no statistics on them: `journey_id = ANY(?)` was planned as a
    scan of the whole table, once a page, and a rebuild's cost per event grew with the log. The page's read is a
    lookup by key, and gives the rows a plain SELECT gives."""
    wired = bootstrap(Settings(database_url=pg_url), clock=fixed_clock)
    try:
        wired.runner.setup()
        with wired.views.transaction() as cursor:
            cursor.execute(  # 100,000 rows of 2,500 journeys; never analysed
                "INSERT INTO census_intervals (journey_id, opened_by, closed_by, level, level_rank, site, track, started_at)"
                " SELECT 'j' || (n / 40), mod(n, 40) + 1, NULL, '2.1', 3, 'north', 'day', '2026-01-01' FROM generate_series(0, 99999) n",
            )
            cursor.execute("SELECT count(*) FROM pg_stats WHERE schemaname = current_schema()")
            assert cursor.fetchone()[0] == 0
            wanted = [f"j{n}" for n in range(0, 2500, 5)] + ["nobody"]
            statement = LOOKUP.format(columns="opened_by, level", table="census_intervals")
            cursor.execute("EXPLAIN " + statement, (wanted,))
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Seq Scan on census_intervals" not in plan, plan
            assert "Index" in plan, plan
            found = by_journey(cursor, "postgres", "census_intervals", ("opened_by", "level"), wanted)
            cursor.execute("SELECT journey_id, opened_by, level FROM census_intervals WHERE journey_id = ANY(?)", (wanted,))
            plain = cursor.fetchall()
        assert sorted(map(tuple, found)) == sorted(map(tuple, plain))
        assert len(found) == 500 * 40
    finally:
        wired.close()


@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 512, 513, 1100])
def test_a_page_reads_the_rows_of_any_number_of_journeys_on_sqlite(sqlite_url, count):
    """SQLite's reads go in chunks padded to a few sizes: every journey's rows come back once."""
    wired = bootstrap(Settings(database_url=sqlite_url), clock=fixed_clock)
    try:
        wired.runner.setup()
        with wired.views.transaction() as cursor:
            cursor.executemany(
                "INSERT INTO census_clients (journey_id, client_ref, site) VALUES (?, ?, ?)",
                [(f"j{n}", f"K-{n}", "north" if n % 2 else "south") for n in range(1200)],
            )
            wanted = [f"j{n}" for n in range(count)]
            found = by_journey(cursor, "sqlite", "census_clients", ("site",), wanted)
        assert sorted(found) == sorted((f"j{n}", "north" if n % 2 else "south") for n in range(count))
    finally:
        wired.close()
