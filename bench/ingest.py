"""Ingest: demo command lines through the importer and the journey service, against a raw insert
of the same number of event rows, straight into the same database, with the same durability."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from bench.instrument import TIMER
from domain.values import Actor
from infra.raw import events_table
from infra.views import PostgresViews
from services.bootstrap import Continuum
from services.demo import generate_cohort
from services.importer import import_lines

ACTOR = Actor("bench", "system")
RAW_TABLE = "bench_raw_events"
INGEST_TARGET = 0.5


def cohort_lines(commands: int, seed: int, end: datetime) -> list[str]:
    """Exactly `commands` demo command lines (the earliest of a one-year cohort ending at `end`)."""
    clients = max(1, math.ceil(commands / 45))
    while True:
        cohort = generate_cohort(clients, seed, start=end - timedelta(days=365), end=end)
        if len(cohort) >= commands:
            return [json.dumps(command, separators=(",", ":")) for command in cohort[:commands]]
        clients = math.ceil(clients * 1.2) + 1


def ingest_stage(wired: Continuum, lines: list[str], chunk_size: int) -> dict[str, Any]:
    TIMER.reset()
    started = time.perf_counter()
    report = import_lines(wired.service, lines, ACTOR, chunk_size=chunk_size)
    seconds = time.perf_counter() - started
    if report.errors:
        first = report.errors[0]
        msg = f"{len(report.errors)} demo lines refused, e.g. line {first.line}: {first.reason}"
        raise RuntimeError(msg)
    baseline = raw_insert(wired, chunk_size)
    events_per_s = report.events / seconds
    ratio = events_per_s / baseline["rows_per_s"]
    return {
        "status": "ok",
        "commands": report.applied,
        "events": report.events,
        "seconds": seconds,
        "commands_per_s": report.applied / seconds,
        "events_per_s": events_per_s,
        "transactions": TIMER.transactions,
        "store_insert_seconds": TIMER.insert_seconds,
        "store_insert_share": TIMER.insert_seconds / seconds,
        "chain_seconds": TIMER.chain_seconds,
        "chain_share": TIMER.chain_seconds / seconds,
        "baseline": baseline,
        "ratio": ratio,
        "target": f">= {INGEST_TARGET:.0%} of the raw insert rate",
        "met": ratio >= INGEST_TARGET,
    }


def stored_rows(wired: Continuum, batch: int) -> Iterator[list[tuple[Any, ...]]]:
    """The stored event rows in notification order, a page at a time (each page its own short read)."""
    kind = wired.database.kind
    position = "rowid" if kind == "sqlite" else "notification_id"
    sql = (
        f"SELECT {position}, originator_id, originator_version, topic, state FROM {events_table(kind)}"  # noqa: S608
        f" WHERE {position} > ? ORDER BY {position} LIMIT ?"
    )
    last = 0
    while True:
        with wired.views.transaction() as cursor:
            cursor.execute(sql, (last, batch))
            rows = cursor.fetchall()
        if not rows:
            return
        last = rows[-1][0]
        yield [tuple(row[1:]) for row in rows]


def raw_insert(wired: Continuum, batch: int) -> dict[str, Any]:
    """The same rows (ids, versions, topics, stored bytes) inserted in transactions of `batch` rows
    into a table made by the library's own DDL, through a bare driver connection."""
    if wired.database.kind == "sqlite":
        return _raw_insert_sqlite(wired, batch)
    return _raw_insert_postgres(wired, batch)


def _raw_insert_sqlite(wired: Continuum, batch: int) -> dict[str, Any]:
    datastore = wired.app.recorder.datastore  # type: ignore[attr-defined]
    SQLiteApplicationRecorder(datastore, events_table_name=RAW_TABLE).create_table()
    # The library's connection settings: WAL (already on the file), default synchronous, autocommit + BEGIN.
    connection = sqlite3.connect(wired.database.path, isolation_level=None, timeout=30)
    seconds, rows = 0.0, 0
    try:
        for page in stored_rows(wired, batch):
            started = time.perf_counter()
            connection.execute("BEGIN")
            connection.executemany(f"INSERT INTO {RAW_TABLE} VALUES (?, ?, ?, ?)", page)  # noqa: S608
            connection.execute("COMMIT")
            seconds += time.perf_counter() - started
            rows += len(page)
    finally:
        connection.close()
    return _baseline(rows, seconds, batch, "executemany into a table of the library's DDL, same file, same pragmas")


def _raw_insert_postgres(wired: Continuum, batch: int) -> dict[str, Any]:
    datastore = wired.app.recorder.datastore  # type: ignore[attr-defined]
    PostgresApplicationRecorder(datastore, events_table_name=RAW_TABLE).create_table()
    schema = wired.database.schema
    sql = f'INSERT INTO "{schema}".{RAW_TABLE} (originator_id, originator_version, topic, state) VALUES (%s, %s, %s, %s)'  # noqa: S608
    seconds, rows = 0.0, 0
    views = wired.views
    assert isinstance(views, PostgresViews)  # noqa: S101 - only called for PostgreSQL
    with views.connect() as connection:
        for page in stored_rows(wired, batch):
            started = time.perf_counter()
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(sql, page)
            seconds += time.perf_counter() - started
            rows += len(page)
    return _baseline(rows, seconds, batch, "executemany (pipelined) into a table of the library's DDL, same schema")


def _baseline(rows: int, seconds: float, batch: int, how: str) -> dict[str, Any]:
    return {"what": f"raw insert of the same rows, {batch} per transaction: {how}", "rows": rows, "seconds": seconds,
            "rows_per_s": rows / seconds if seconds else math.inf}
