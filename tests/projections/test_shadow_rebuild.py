"""A rebuild fills shadow tables and swaps them in when built: a reader during it sees the old complete
tables, after it tables equal to live ones; a rebuild stopped part way (or failing in its swap) leaves
the old tables serving, and the next rebuild discards the shadow and starts again from zero. On SQLite the
shadow is filled in a scratch file beside the store: the store holds no shadow table until the swap, and the
file is gone after the rebuild, however it ended."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from infra.config import Settings
from infra.views import ScratchViews
from projections.catalogue import all_projections
from projections.runner import SHADOW, ProjectionRunner, Shadow
from services.bootstrap import bootstrap
from tests.projections.builders import admit, build_mixed_history, dump, register, table_rows
from tests.support.clock import fixed_clock

NAMES = [projection.name for projection in all_projections()]
TABLES = [table for projection in all_projections() for table in projection.tables]


class Crash(Exception):  # noqa: N818 - what the test injects
    """Injected part way through a rebuild."""


def stale_audit_row(wired) -> None:
    """A row no event gives: the old tables are told apart from rebuilt ones by it."""
    with wired.views.transaction() as cursor:
        cursor.execute(
            "INSERT INTO audit_entries (journey_id, version, position, event_type, occurred_at, recorded_at, actor_id,"
            " actor_role, command_id, details) VALUES ('stale', 1, 0, 'Stale', 'x', 'x', 'x', 'x', 'x', '{}')",
        )


def shadow_rows(wired) -> list[str]:
    with wired.views.transaction() as cursor:
        cursor.execute("SELECT name FROM projection_positions ORDER BY name")
        return [name for (name,) in cursor.fetchall() if name.endswith(SHADOW)]


def scratch_files(wired) -> list[Path]:
    """The scratch files beside a SQLite store (a rebuild's, while it fills its shadows)."""
    return [path for path, _ in wired.views.scratch_files()]


def filling(wired, table: str) -> list[tuple]:
    """The rows of `table`'s shadow while a rebuild fills it: in the store on PostgreSQL, in the rebuild's scratch
    file on SQLite (and then the store has no shadow table at all; none in the file before its first commit)."""
    if wired.views.dialect == "postgres":
        return table_rows(wired, table + SHADOW)
    with wired.views.transaction() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE name LIKE ?", (f"%{SHADOW}",))
        assert cursor.fetchall() == []
    [scratch] = scratch_files(wired)
    with closing(sqlite3.connect(f"file:{scratch}?mode=ro", uri=True)) as connection:
        if connection.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table + SHADOW,)).fetchone() is None:
            return []
        return connection.execute(f"SELECT * FROM {table}{SHADOW}").fetchall()


def schema(wired) -> dict[str, list[str]]:
    """The indexes on each projection table, by name (what a fresh setup creates)."""
    with wired.views.transaction() as cursor:
        if wired.views.dialect == "postgres":
            cursor.execute("SELECT tablename, indexname FROM pg_indexes WHERE schemaname = current_schema()")
        else:
            cursor.execute("SELECT tbl_name, name FROM sqlite_master WHERE type = 'index'")
        found: dict[str, list[str]] = {}
        for table, index in cursor.fetchall():
            found.setdefault(table, []).append(index)
    return {table: sorted(found.get(table, [])) for table in sorted(found) if table in TABLES or SHADOW in table}


def test_a_reader_during_a_rebuild_sees_the_old_tables_and_after_it_rebuilt_ones(wired, monkeypatch):
    monkeypatch.setattr(ScratchViews, "COMMIT_ROWS", 1)  # each page committed to the scratch file: watched as it grows
    build_mixed_history(wired, catch_up_between=True)
    live = dump(wired)
    head = wired.runner.head()
    stale_audit_row(wired)
    old = dump(wired)
    assert old != live
    indexes = schema(wired)
    wired.runner.batch_size = 4
    seen: list[int] = []

    def read_between_pages(position: int, of: int) -> None:
        assert dump(wired) == old  # the old tables, complete, however far the shadow has got
        assert wired.runner.positions() == dict.fromkeys(NAMES, head)
        assert len(filling(wired, "audit_entries")) == min(position, head)  # the shadow is being filled meanwhile
        seen.append(position)

    assert wired.runner.rebuild(NAMES, progress=read_between_pages) == head
    assert len(seen) == (head + 3) // 4
    assert dump(wired) == live
    assert wired.runner.positions() == dict.fromkeys(NAMES, head)
    assert shadow_rows(wired) == []
    assert scratch_files(wired) == []
    assert schema(wired) == indexes  # the indexes a fresh setup makes, by their own names
    assert wired.runner.rebuild(NAMES) == head  # and again: no name left taken
    assert dump(wired) == live
    assert schema(wired) == indexes


def test_a_scratch_file_is_committed_once_enough_rows_have_changed_and_in_full_before_the_copy(sqlite_url, monkeypatch):
    """Nobody reads the scratch file while the shadows fill, so pages are committed together (a page changed by
    several of them is written once): what the file holds between pages is the filling up to a commit before."""
    wired = bootstrap(Settings(database_url=sqlite_url), clock=fixed_clock)
    try:
        build_mixed_history(wired, catch_up_between=True)
        live, head = dump(wired), wired.runner.head()
        monkeypatch.setattr(ScratchViews, "COMMIT_ROWS", 100)
        wired.runner.batch_size = 2
        seen: list[tuple[int, int]] = []
        wired.runner.rebuild(NAMES, progress=lambda position, _of: seen.append((position, len(filling(wired, "audit_entries")))))
        held = [rows for _, rows in seen]
        assert len(seen) == (head + 1) // 2
        assert all(rows <= position for position, rows in seen)  # never ahead of the pages filled
        assert held == sorted(held)
        assert 2 <= len(set(held)) <= len(seen) // 3  # committed part way (not only at the end), every few pages, not after each
        assert dump(wired) == live  # and all of it reached the store
        assert scratch_files(wired) == []
    finally:
        wired.close()


@pytest.mark.parametrize("name", NAMES)
def test_each_projection_rebuilt_alone_equals_its_live_tables(wired, name):
    build_mixed_history(wired, catch_up_between=True)
    live = dump(wired)
    wired.runner.batch_size = 5
    wired.runner.rebuild([name])
    assert dump(wired) == live
    assert wired.runner.catch_up() == 0


def test_a_crash_part_way_leaves_the_old_tables_and_the_next_rebuild_starts_again(wired):
    build_mixed_history(wired, catch_up_between=True)
    head = wired.runner.head()
    stale_audit_row(wired)
    old = dump(wired)
    wired.runner.batch_size = 3

    def crash_on_the_third_page(position: int, of: int) -> None:
        if position >= 9:
            raise Crash

    with pytest.raises(Crash):
        wired.runner.rebuild(NAMES, progress=crash_on_the_third_page)
    assert dump(wired) == old
    assert wired.runner.positions() == dict.fromkeys(NAMES, head)
    if wired.views.dialect == "postgres":
        assert len(shadow_rows(wired)) == len(NAMES)  # left behind, at the page it reached
    else:  # filled beside the store, in a file removed as the rebuild ended
        assert shadow_rows(wired) == []
        assert scratch_files(wired) == []

    # the old tables keep serving: live events still reach them
    register(wired, "L-1", "2026-11-01T10:00:00Z", "west")
    admit(wired, "L-1", "2026-11-02T10:00:00Z", "3.1", "west")
    assert wired.runner.catch_up() == 2
    assert len(table_rows(wired, "audit_entries")) == len(old["audit_entries"]) + 2

    fresh = ProjectionRunner(wired.app, wired.views, all_projections(), batch_size=1000)
    assert fresh.rebuild(NAMES) == head + 2  # the shadow discarded: every event read again, once
    rebuilt = dump(wired)
    assert ("stale", 1) not in {(row[0], row[1]) for row in rebuilt["audit_entries"]}
    assert len(rebuilt["audit_entries"]) == head + 2
    assert shadow_rows(wired) == []
    fresh.rebuild(NAMES)
    assert dump(wired) == rebuilt


def test_a_failing_swap_swaps_nothing(wired, monkeypatch):
    build_mixed_history(wired, catch_up_between=True)
    stale_audit_row(wired)
    old = dump(wired)
    positions = wired.runner.positions()
    swap = Shadow.swap

    def fail_at_the_last(shadow: Shadow, cursor, position: int) -> None:
        if shadow.projection.name == NAMES[-1]:
            raise Crash
        swap(shadow, cursor, position)

    monkeypatch.setattr(Shadow, "swap", fail_at_the_last)
    with pytest.raises(Crash):
        wired.runner.rebuild(NAMES)
    assert dump(wired) == old  # audit_trail's swap, done before the failure, went with it
    assert wired.runner.positions() == positions
    if wired.views.dialect == "postgres":
        assert len(shadow_rows(wired)) == len(NAMES)  # filled, left for the next rebuild to discard
    else:  # copied in by the transaction that failed: none
        assert shadow_rows(wired) == []
    assert scratch_files(wired) == []


@pytest.mark.parametrize("fails", [False, True])
def test_a_swap_drops_the_old_tables_unzeroed_and_the_store_keeps_zeroing_other_deletes(sqlite_url, monkeypatch, fails):
    """SQLite's secure_delete (on in Debian's build) zeroes the pages a drop frees: the old tables of a rebuild hold only
    what the events and the rebuilt tables hold, so their pages are freed as they are (FAST) in the swap; the connection's
    setting is what it was afterwards, whether the swap committed or failed."""
    wired = bootstrap(Settings(database_url=sqlite_url), clock=fixed_clock)
    try:
        build_mixed_history(wired, catch_up_between=True)
        with wired.views.transaction() as cursor:
            cursor.execute("PRAGMA secure_delete=ON")
        swap, during = Shadow.swap, []

        def watched(shadow: Shadow, cursor, position: int) -> None:
            cursor.execute("PRAGMA secure_delete")
            during.append(cursor.fetchone()[0])
            if fails and shadow.projection.name == NAMES[-1]:
                raise Crash
            swap(shadow, cursor, position)

        monkeypatch.setattr(Shadow, "swap", watched)
        if fails:
            with pytest.raises(Crash):
                wired.runner.rebuild(NAMES)
        else:
            wired.runner.rebuild(NAMES)
        assert during == [2] * len(NAMES)  # FAST
        with wired.views.transaction() as cursor:
            cursor.execute("PRAGMA secure_delete")
            assert cursor.fetchone()[0] == 1
    finally:
        wired.close()


def test_an_in_memory_store_rebuilds_in_place():
    """No file to put a scratch file beside: the shadows are filled in the store itself, as on PostgreSQL."""
    wired = bootstrap(Settings(database_url="sqlite:///:memory:"), clock=fixed_clock)
    try:
        build_mixed_history(wired, catch_up_between=True)
        live = dump(wired)
        stale_audit_row(wired)
        filled: list[tuple[int, int]] = []
        wired.runner.batch_size = 4
        wired.runner.rebuild(NAMES, progress=lambda at, _head: filled.append((at, len(table_rows(wired, "audit_entries" + SHADOW)))))
        assert filled[:2] == [(4, 4), (8, 8)]  # the store's own shadow table, a page at a time
        assert dump(wired) == live
        assert shadow_rows(wired) == []
    finally:
        wired.close()


def test_a_live_runner_tailing_during_a_rebuild_applies_each_event_once(wired):
    build_mixed_history(wired, catch_up_between=True)
    live = ProjectionRunner(wired.app, wired.views, all_projections(), batch_size=2)
    wired.runner.batch_size = 4
    added: list[str] = []

    def events_arrive_and_are_followed(position: int, of: int) -> None:
        ref = f"L-{len(added)}"
        register(wired, ref, "2026-11-01T10:00:00Z", "west")
        admit(wired, ref, "2026-11-02T10:00:00Z", "3.1", "west")
        added.append(ref)
        assert live.catch_up() == 2  # the old tables, kept current while the shadow fills

    wired.runner.rebuild(NAMES, progress=events_arrive_and_are_followed)
    assert added
    assert live.catch_up() == 0  # the rebuild caught its tables up to the head after the swap
    head = wired.runner.head()
    assert wired.runner.positions() == dict.fromkeys(NAMES, head)
    tailed = dump(wired)
    assert len(tailed["audit_entries"]) == head
    wired.runner.batch_size = 1000
    wired.runner.rebuild(NAMES)
    assert dump(wired) == tailed


def test_one_projection_reads_only_its_events_and_reaches_the_head(wired):
    build_mixed_history(wired)
    head = wired.runner.head()
    notifications = wired.app.recorder.select_notifications(start=None, limit=10_000)
    census = wired.runner.projections["census"]
    handled = [n.id for n in notifications if n.topic in census.topics]
    assert 0 < len(handled) < head
    wired.runner.batch_size = 4
    reached: list[int] = []
    assert wired.runner.catch_up(["census"], progress=lambda position, _head: reached.append(position)) == len(handled)
    full_pages = handled[3::4]  # each ends at its fourth event of the census; the short last one at the head
    assert reached == full_pages + ([] if full_pages and full_pages[-1] == head else [head])
    assert wired.runner.positions()["census"] == head
    assert wired.runner.catch_up(["census"]) == 0
    wired.runner.catch_up()
    live = dump(wired)
    wired.runner.rebuild(["census"])
    assert dump(wired) == live


def test_a_table_filled_without_its_key_has_it_again_after_the_swap(wired):
    """The audit trail only appends, so its shadow is filled without its primary key (a key led by the journey
    dirties a page per row) and gets it once filled: after the rebuild the key refuses a second row for a version,
    as a fresh setup's does, and the rows are those the live tables hold."""
    build_mixed_history(wired, catch_up_between=True)
    live = dump(wired)
    assert any(shadow.keys for shadow in (Shadow(p, wired.views.dialect) for p in all_projections()))
    wired.runner.rebuild(["audit_trail"])
    assert dump(wired) == live
    journey, version = live["audit_entries"][0][:2]
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"), wired.views.transaction() as cursor:
        cursor.execute(
            "INSERT INTO audit_entries (journey_id, version, position, event_type, occurred_at, recorded_at, actor_id,"
            " actor_role, command_id, details) VALUES (?, ?, 0, 'Again', 'x', 'x', 'x', 'x', 'x', '{}')",
            (journey, version),
        )
    assert dump(wired) == live


def test_an_appending_table_is_copied_in_its_keys_order(sqlite_url):
    """On SQLite the audit trail's shadow is filled in the scratch file without its key and copied into the store in
    the key's order: the keyed table is built appending, and its rows lie in key order as a keyed fill leaves them."""
    wired = bootstrap(Settings(database_url=sqlite_url), clock=fixed_clock)
    try:
        build_mixed_history(wired, catch_up_between=True)
        live = dump(wired)
        wired.runner.rebuild(["audit_trail"])
        assert dump(wired) == live
        with wired.views.transaction() as cursor:
            cursor.execute("SELECT journey_id, version FROM audit_entries ORDER BY rowid")
            stored = [tuple(row) for row in cursor.fetchall()]
        assert len(stored) > 1
        assert stored == sorted(stored)
    finally:
        wired.close()
