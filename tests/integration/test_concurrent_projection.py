"""Runners, rebuilds and follow loops at once: the projection tables end equal to a rebuild from zero.

A runner used to choose its next page from a position read outside its transaction; a rebuild that
reset the position meanwhile made it apply one page and move past everything before it (SQLite),
or deadlock against the rebuild's dropped tables (PostgreSQL). A runner now chooses its page from the
positions it has locked, and a rebuild locks the positions before it drops tables.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from domain.values import Actor
from infra.config import Settings
from projections.catalogue import all_projections
from services.bootstrap import bootstrap
from services.demo import cohort_lines
from services.importer import import_lines
from tests.integration.test_concurrent_commands import run_together
from tests.projections.builders import dump

NAMES = [projection.name for projection in all_projections()]


def test_rebuilds_and_runners_at_once_end_equal_to_a_rebuild_from_zero(wired, database_url):
    lines = list(cohort_lines(40, 5, start=datetime(2025, 1, 1, tzinfo=UTC), end=datetime(2025, 12, 31, tzinfo=UTC)))
    report = import_lines(wired.service, lines, Actor("importer", "system"))
    assert report.ok
    wired.runner.catch_up()
    expected = dump(wired)
    assert sum(len(rows) for rows in expected.values()) > 1000

    small = Settings(database_url=database_url, projection_batch_size=100)
    opened = [bootstrap(small) for _ in range(4)]
    stop = threading.Event()

    def follow(continuum):
        def loop():
            while not stop.is_set():
                continuum.runner.catch_up()
                time.sleep(0.01)
        return loop

    def rebuild_twice(continuum, pause):
        def run():
            continuum.runner.rebuild(NAMES)
            time.sleep(pause)
            continuum.runner.rebuild(NAMES)
            stop.set()
        return run

    try:
        followers = [threading.Thread(target=follow(c)) for c in opened[:2]]
        for thread in followers:
            thread.start()
        run_together([rebuild_twice(opened[2], 0.05), rebuild_twice(opened[3], 0.2)])
        for thread in followers:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in followers)
        opened[0].runner.catch_up()
        assert dump(opened[0]) == expected
        assert [s.lag for s in opened[0].runner.status()] == [0] * len(NAMES)
    finally:
        stop.set()
        for continuum in opened:
            continuum.close()
