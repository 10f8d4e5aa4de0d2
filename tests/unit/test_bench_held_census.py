"""The growth stage's second series: the log grown at one cohort's census (`bench.ingest.held_census_lines`), year
after year of the same program, every line of it recorded by the journey service."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bench.ingest import ACTOR, cohort_lines, held_census_lines
from domain.values import BIRTH_YEARS
from infra.config import Settings
from services.bootstrap import bootstrap
from services.importer import import_lines

END = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
BLOCK = 100


def _at(command: dict) -> datetime:
    return datetime.fromisoformat(command["occurred_at"])


def test_the_last_year_is_the_cohort_itself_and_each_year_before_is_the_same_cohort_a_year_earlier():
    cohort = cohort_lines(BLOCK, 7, END)
    lines = held_census_lines(3 * BLOCK, BLOCK, 7, END)
    assert len(lines) == 3 * BLOCK
    assert lines[2 * BLOCK:] == cohort  # the smallest growth point's lines: one divisor for both series
    for back, block in ((2, lines[:BLOCK]), (1, lines[BLOCK:2 * BLOCK])):
        commands = [json.loads(line) for line in block]
        originals = [json.loads(line) for line in cohort_lines(BLOCK, 7, END - timedelta(days=365 * back))]
        assert [c["client"] for c in commands] == [f"H{back:03d}-{o['client']}" for o in originals]
        assert [c["id"] for c in commands] == [f"H{back:03d}-{o['id']}" for o in originals]
        assert [c["occurred_at"] for c in commands] == [o["occurred_at"] for o in originals]
        assert max(_at(c) for c in commands) <= END - timedelta(days=365 * back)
    clients = Counter(json.loads(line)["client"].split("-")[0] for line in lines)  # the same census each year
    assert clients["H002"] == clients["H001"] == clients["C"]


def test_the_census_stays_while_the_log_grows():
    commands = [json.loads(line) for line in held_census_lines(10 * BLOCK, BLOCK, 7, END)]
    assert len({c["id"] for c in commands}) == len(commands)
    registered = Counter(_at(c).year for c in commands if c["command"] == "register")
    one_year = sum(1 for line in cohort_lines(BLOCK, 7, END) if json.loads(line)["command"] == "register")
    assert sum(registered.values()) == 10 * one_year
    assert _at(commands[0]) >= END - timedelta(days=365 * 10)
    assert [_at(c) for c in commands] == sorted(_at(c) for c in commands)  # year after year, in time order


def test_a_century_of_the_program_is_recorded_line_for_line():
    """A century back, birth years are held at the earliest the service records (1900): no line is refused."""
    lines = held_census_lines(100 * BLOCK, BLOCK, 7, END)
    commands = [json.loads(line) for line in lines]
    births = [c["birth_year"] for c in commands if c["command"] == "register"]
    assert min(births) == BIRTH_YEARS[0]
    assert all(BIRTH_YEARS[0] <= year <= END.year for year in births)
    wired = bootstrap(Settings(database_url="sqlite:///:memory:"), clock=lambda: END)
    try:
        report = import_lines(wired.service, lines, ACTOR, chunk_size=2000)
    finally:
        wired.close()
    assert report.errors == []
    assert report.applied == len(lines)


def test_a_held_census_needs_whole_cohorts():
    with pytest.raises(ValueError, match="not a multiple of 100"):
        held_census_lines(250, BLOCK, 7, END)
