"""The projection runner: batched catch-up, positions and lag, rebuilds identical to live tables,
idempotent catch-up, and two runners catching up concurrently over the same view store."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

import pytest

from projections.catalogue import all_projections
from projections.runner import ProjectionRunner
from tests.projections.builders import (
    admit,
    build_clinic,
    build_mixed_history,
    dump,
    register,
)

NAMES = ["census", "step_history", "audit_trail", "flags", "outcomes", "attendance", "drug_tests"]


def event_count(wired) -> int:
    return len(wired.app.recorder.select_notifications(start=None, limit=10_000))


def test_batched_catch_up_equals_one_big_batch(wired):
    build_mixed_history(wired)
    head = wired.runner.head()
    total = event_count(wired)
    assert total == 33  # clinic 13 + D-1 9 + 7 corrections + 2 sessions + late discharge + step up

    wired.runner.batch_size = 2
    reached: list[tuple[int, int]] = []
    processed = wired.runner.catch_up(progress=lambda position, of: reached.append((position, of)))
    # every notification once, in pages of two (the last may hold one)
    assert processed == total
    assert len(reached) == (total + 1) // 2
    assert [of for _, of in reached] == [head] * len(reached)
    assert reached[-1][0] == head
    assert [p for p, _ in reached] == sorted({p for p, _ in reached})
    assert wired.runner.positions() == dict.fromkeys(NAMES, head)
    small_batches = dump(wired)

    wired.runner.batch_size = 1000
    assert wired.runner.rebuild(NAMES) == total
    assert dump(wired) == small_batches
    assert sum(len(rows) for rows in small_batches.values()) > 0
    assert len(small_batches["audit_entries"]) == total


def test_status_reports_positions_and_lag_before_and_after_catch_up(wired):
    build_clinic(wired)
    head = wired.runner.head()
    total = event_count(wired)
    # the clinic: 6 registrations + 5 admissions + 1 step + 1 discharge = 13 events
    assert total == 13
    before = wired.runner.status()
    assert [(s.name, s.position, s.head, s.lag) for s in before] == [(n, 0, head, head) for n in NAMES]
    assert wired.runner.positions() == dict.fromkeys(NAMES, 0)

    assert wired.runner.catch_up(["census"]) == total
    by_name = {s.name: s for s in wired.runner.status()}
    assert (by_name["census"].position, by_name["census"].lag) == (head, 0)
    assert (by_name["audit_trail"].position, by_name["audit_trail"].lag) == (0, head)
    assert (by_name["step_history"].position, by_name["step_history"].lag) == (0, head)

    wired.runner.catch_up()
    assert [s.lag for s in wired.runner.status()] == [0] * len(NAMES)
    assert wired.runner.positions() == dict.fromkeys(NAMES, head)

    # two more events: the lag of every projection is the distance to the new head
    register(wired, "N-1", "2026-11-01T10:00:00Z", "north")
    admit(wired, "N-1", "2026-11-02T10:00:00Z", "2.1", "north", "day")
    new_head = wired.runner.head()
    assert [(s.head, s.position) for s in wired.runner.status()] == [(new_head, head)] * len(NAMES)
    assert [s.lag for s in wired.runner.status()] == [new_head - head] * len(NAMES)
    assert wired.runner.catch_up() == 2
    assert [s.lag for s in wired.runner.status()] == [0] * len(NAMES)


def test_second_catch_up_is_a_no_op(wired):
    build_mixed_history(wired)
    assert wired.runner.catch_up() == event_count(wired)
    tables = dump(wired)
    positions = wired.runner.positions()
    assert wired.runner.catch_up() == 0
    assert wired.runner.catch_up(["census"]) == 0
    assert dump(wired) == tables
    assert wired.runner.positions() == positions


def test_live_projections_followed_along_equal_a_rebuild_of_all_three(wired):
    build_mixed_history(wired, catch_up_between=True)
    live = dump(wired)
    head = wired.runner.head()
    assert wired.runner.rebuild(NAMES) == event_count(wired)
    assert dump(wired) == live
    assert wired.runner.positions() == dict.fromkeys(NAMES, head)


@pytest.mark.parametrize("name", NAMES)
def test_rebuilding_one_projection_yields_its_live_tables(wired, name):
    build_mixed_history(wired, catch_up_between=True)
    live = dump(wired)
    head = wired.runner.head()
    wired.runner.rebuild([name])
    assert dump(wired) == live  # the rebuilt tables and the untouched others
    assert wired.runner.positions() == dict.fromkeys(NAMES, head)
    assert wired.runner.catch_up() == 0


def test_census_rebuild_after_more_events_matches_catch_up(wired):
    build_mixed_history(wired, catch_up_between=True)
    register(wired, "N-2", "2026-11-01T10:00:00Z", "west")
    admit(wired, "N-2", "2026-11-02T10:00:00Z", "3.1", "west")
    wired.runner.rebuild(["census"])  # census from zero, the others still behind by two events
    by_name = {s.name: s.lag for s in wired.runner.status()}
    assert by_name == {"census": 0, "step_history": 2, "audit_trail": 2, "flags": 2, "outcomes": 2, "attendance": 2, "drug_tests": 2}
    wired.runner.catch_up()
    live = dump(wired)
    wired.runner.rebuild(NAMES)
    assert dump(wired) == live


def _catch_up_concurrently(wired, runners: int, batch_size: int) -> list[int]:
    barrier = threading.Barrier(runners)
    processed: list[int] = []
    problems: list[BaseException] = []

    def work() -> None:
        runner = ProjectionRunner(wired.app, wired.views, all_projections(), batch_size=batch_size)
        try:
            barrier.wait(timeout=10)
            processed.append(runner.catch_up())
        except BaseException as problem:  # noqa: BLE001 - reported below
            problems.append(problem)

    threads = [threading.Thread(target=work) for _ in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert problems == []
    return processed


def test_two_runners_catching_up_concurrently_apply_each_event_once(wired):
    build_mixed_history(wired)
    total = event_count(wired)
    head = wired.runner.head()
    wired.runner.setup()  # tables exist; both runners race over the same positions
    processed = _catch_up_concurrently(wired, runners=2, batch_size=3)
    assert len(processed) == 2
    assert total <= sum(processed) <= 2 * total
    assert wired.runner.positions() == dict.fromkeys(NAMES, head)
    concurrent = dump(wired)
    assert len(concurrent["audit_entries"]) == total
    assert len({(row[0], row[1]) for row in concurrent["audit_entries"]}) == total
    wired.runner.rebuild(NAMES)
    assert dump(wired) == concurrent
    assert wired.runner.catch_up() == 0


class _HoldsFirstCreate:
    """A view store that, at the first CREATE TABLE of its runner's setup, signals and then keeps its
    transaction open a moment, so that a second runner's setup surely runs while the first one's has
    not committed (what happens when two workers start together on a fresh database)."""

    def __init__(self, views, creating: threading.Event) -> None:
        self._views, self._creating = views, creating
        self.dialect, self.database = views.dialect, views.database

    @contextmanager
    def transaction(self):
        with self._views.transaction() as cursor:
            yield _HoldingCursor(cursor, self._creating, self._until_the_other_waits)

    def lock_for_ddl(self, cursor) -> None:
        self._views.lock_for_ddl(cursor)

    def _until_the_other_waits(self) -> None:
        """On PostgreSQL, until the other runner's CREATE TABLE waits on our lock; on SQLite its
        BEGIN IMMEDIATE waits on ours and a short pause suffices."""
        if self.dialect != "postgres":
            time.sleep(0.3)
            return
        deadline = time.monotonic() + 10
        with self._views.connect() as watcher:
            while time.monotonic() < deadline:
                waiting = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND wait_event_type = 'Lock' AND (query LIKE 'CREATE TABLE IF NOT EXISTS projection_positions%'"
                    " OR query LIKE 'SELECT pg_advisory_xact_lock%')",
                ).fetchone()
                watcher.rollback()
                if waiting and waiting[0]:
                    return
                time.sleep(0.02)

    def close(self) -> None:
        pass


class _HoldingCursor:
    def __init__(self, cursor, creating: threading.Event, hold: Callable[[], None]) -> None:
        self._cursor, self._creating, self._hold = cursor, creating, hold

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def execute(self, sql, params=()):
        self._cursor.execute(sql, params)
        if sql.startswith("CREATE TABLE") and not self._creating.is_set():
            self._creating.set()
            self._hold()
        return self

    def executemany(self, sql, rows) -> None:
        self._cursor.executemany(sql, rows)

    def fetchone(self):
        return self._cursor.fetchone()

    def fetchall(self):
        return self._cursor.fetchall()


def test_two_runners_starting_together_on_a_fresh_store(wired, request):
    """Both set up the view tables (CREATE TABLE IF NOT EXISTS ...) and catch up; neither may fail."""
    build_mixed_history(wired)
    total = event_count(wired)
    creating = threading.Event()
    problems: list[BaseException] = []

    def first() -> None:
        try:
            ProjectionRunner(wired.app, _HoldsFirstCreate(wired.views, creating), all_projections(), 5).catch_up()
        except BaseException as problem:  # noqa: BLE001 - reported below
            problems.append(problem)

    def second() -> None:
        try:
            assert creating.wait(timeout=10)
            ProjectionRunner(wired.app, wired.views, all_projections(), 5).catch_up()
        except BaseException as problem:  # noqa: BLE001 - reported below
            problems.append(problem)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert problems == []
    assert wired.runner.positions() == dict.fromkeys(NAMES, wired.runner.head())
    concurrent = dump(wired)
    assert len(concurrent["audit_entries"]) == total
    wired.runner.rebuild(NAMES)
    assert dump(wired) == concurrent


def test_a_runner_keeps_the_collector_off_what_the_process_held_and_gives_it_back(wired):
    """What a process holds besides (an ingest's cached journeys) is frozen while pages are applied, so the cyclic
    collector scans each page's objects only (a rebuild after an ingest in one process spent 30 us an event on
    collections, 5 with the heap frozen); when the run ends every object is the collector's again."""
    build_mixed_history(wired, catch_up_between=True)
    held = [[index] for index in range(10_000)]  # long-lived, tracked objects of the process
    frozen: list[int] = []
    wired.runner.batch_size = 5
    wired.runner.rebuild(NAMES, progress=lambda *_: frozen.append(gc.get_freeze_count()))
    assert len(frozen) > 3
    assert all(count > len(held) for count in frozen)
    assert gc.get_freeze_count() == 0
    assert wired.runner.catch_up() == 0
