"""The fast ingest path stores what the reference path stores, on SQLite and PostgreSQL: the same event
rows, chain rows and decoded events; and the benchmarks' raw baselines insert the same rows as the store.

The history holds every event type (the contract test's hand-written lines) and a small demo cohort."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bench.ingest import RAW_CHAIN_TABLE, RAW_CHAINED_TABLE, RAW_TABLE, raw_insert
from domain.values import Actor
from infra.chain import CHAIN_COLUMNS, CHAIN_TABLE
from infra.raw import events_table
from services.bootstrap import Continuum
from services.commands import parse_command
from services.demo import cohort_lines
from services.importer import import_lines
from tests.unit.test_kafka_contract import HISTORY

ACTOR = Actor("dr-ames", "clinician")


def history_lines() -> list[str]:
    """Every event type, then a small 2025 demo cohort (as import lines)."""
    lines = [json.dumps({"id": f"history-{n}", **data}) for n, (_, data) in enumerate(HISTORY, start=1)]
    for data in HISTORY:
        parse_command({"id": "check", **data[1]})  # a line the lead's domain no longer takes fails here, not later
    cohort = cohort_lines(25, 7, start=datetime(2025, 1, 1, tzinfo=UTC), end=datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC))
    return lines + list(cohort)


def rows(wired: Continuum, sql: str) -> list[tuple[Any, ...]]:
    with wired.views.transaction() as cursor:
        cursor.execute(sql)
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in cursor.fetchall()]


@pytest.fixture
def ingested(wired: Continuum) -> Continuum:
    report = import_lines(wired.service, history_lines(), ACTOR, chunk_size=40)
    assert report.ok, report.problems()[:3]
    return wired


def test_the_raw_baselines_insert_the_same_event_and_chain_rows_as_the_store(ingested):
    kind = ingested.database.kind
    position = "rowid" if kind == "sqlite" else "notification_id"
    stored = rows(ingested, f"SELECT originator_id, originator_version, topic, state FROM {events_table(kind)} ORDER BY {position}")
    alone, chained = raw_insert(ingested, 37), raw_insert(ingested, 37, chained=True)
    assert alone["rows"] == chained["rows"] == len(stored) > 100
    for table in (RAW_TABLE, RAW_CHAINED_TABLE):
        copied = rows(ingested, f"SELECT originator_id, originator_version, topic, state FROM {table} ORDER BY {position}")
        assert copied == stored
    chain = rows(ingested, f"SELECT {CHAIN_COLUMNS} FROM {CHAIN_TABLE} ORDER BY notification_id")
    assert rows(ingested, f"SELECT {CHAIN_COLUMNS} FROM {RAW_CHAIN_TABLE} ORDER BY notification_id") == chain
    assert len(chain) == len(stored)
