"""Ingest: demo command lines through the importer and the journey service, against two raw inserts
of the same rows straight into the same database, with the same durability: the event rows alone,
and the event rows with their hash chain rows (what the design writes with every event, so the
ingest target is judged against it)."""

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
from domain.values import BIRTH_YEARS, Actor
from infra.chain import CHAIN_COLUMNS, CHAIN_TABLE, CHAIN_TYPES, chain_ddl
from infra.raw import events_table
from infra.views import PostgresViews
from services.bootstrap import Continuum
from services.demo import generate_cohort
from services.importer import ImportReport, import_lines

ACTOR = Actor("bench", "system")
RAW_TABLE = "bench_raw_events"
RAW_CHAINED_TABLE = "bench_raw_chained_events"  # the event rows of the event-and-chain baseline
RAW_CHAIN_TABLE = "bench_raw_chain"  # made by the chain's own DDL
INGEST_TARGET = 0.5


def cohort_lines(commands: int, seed: int, end: datetime) -> list[str]:
    """Exactly `commands` demo command lines (the earliest of a one-year cohort ending at `end`)."""
    clients = max(1, math.ceil(commands / 45))
    while True:
        cohort = generate_cohort(clients, seed, start=end - timedelta(days=365), end=end)
        if len(cohort) >= commands:
            return [json.dumps(command, separators=(",", ":")) for command in cohort[:commands]]
        clients = math.ceil(clients * 1.2) + 1


def held_census_lines(commands: int, block: int, seed: int, end: datetime) -> list[str]:
    """`commands` demo lines of a program whose census stays that of `block` lines while its log grows: one-year cohorts
    of `block` lines (`cohort_lines`), one after the other, the last ending at `end` and exactly `cohort_lines(block,
    seed, end)`. Each earlier one ends a year before the next; its clients and command ids are prefixed with how many
    years back it is (`H001-`), and a birth year is held at 1900 at the earliest (10^6 lines reach back a century)."""
    if commands % block:
        msg = f"a held census needs whole cohorts: {commands:,} lines are not a multiple of {block:,}"
        raise ValueError(msg)
    blocks = commands // block
    lines = []
    for back in range(blocks - 1, -1, -1):
        cohort = cohort_lines(block, seed, end - timedelta(days=365 * back))
        if back == 0:
            lines += cohort
            continue
        for line in cohort:
            command = json.loads(line)
            command["id"], command["client"] = f"H{back:03d}-{command['id']}", f"H{back:03d}-{command['client']}"
            if command.get("birth_year") is not None:
                command["birth_year"] = max(command["birth_year"], BIRTH_YEARS[0])
            lines.append(json.dumps(command, separators=(",", ":")))
    return lines


def all_recorded(report: ImportReport) -> ImportReport:
    """`report`, if every demo line was recorded; else RuntimeError naming how many were refused and the first."""
    if report.errors:
        first = report.errors[0]
        msg = f"{len(report.errors)} demo lines refused, e.g. line {first.line}: {first.reason}"
        raise RuntimeError(msg)
    return report


def ingest_stage(wired: Continuum, lines: list[str], chunk_size: int) -> dict[str, Any]:
    TIMER.reset()
    started = time.perf_counter()
    report = import_lines(wired.service, lines, ACTOR, chunk_size=chunk_size)
    seconds = time.perf_counter() - started
    all_recorded(report)
    baseline = raw_insert(wired, chunk_size)
    with_chain = raw_insert(wired, chunk_size, chained=True)
    events_per_s = report.events / seconds
    ratio = events_per_s / baseline["rows_per_s"]
    ratio_with_chain = events_per_s / with_chain["rows_per_s"]
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
        "baseline_with_chain": with_chain,
        "ratio_with_chain": ratio_with_chain,
        "target": f">= {INGEST_TARGET:.0%} of the raw event-and-chain insert rate",
        "met": ratio_with_chain >= INGEST_TARGET,
    }


def stored_rows(wired: Continuum, batch: int, *, chained: bool = False) -> Iterator[list[tuple[Any, ...]]]:
    """The stored event rows in notification order, a page at a time (each page its own short read);
    `chained`: each with its chain row's values after it (position, id, version, row hash, links)."""
    kind = wired.database.kind
    position = "rowid" if kind == "sqlite" else "notification_id"
    columns = f"e.{position}, e.originator_id, e.originator_version, e.topic, e.state"
    join = ""
    if chained:
        columns += ", " + ", ".join(f"c.{column}" for column in CHAIN_COLUMNS.split(", "))
        join = f" JOIN {CHAIN_TABLE} c ON c.notification_id = e.{position}"
    sql = (
        f"SELECT {columns} FROM {events_table(kind)} e{join}"  # noqa: S608
        f" WHERE e.{position} > ? ORDER BY e.{position} LIMIT ?"
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


def raw_insert(wired: Continuum, batch: int, *, chained: bool = False) -> dict[str, Any]:
    """The same rows (ids, versions, topics, stored bytes) inserted in transactions of `batch` rows
    into a table made by the library's own DDL, through a bare driver connection; `chained`: each
    event row with its chain row too (same values, into a table of the chain's own DDL)."""
    if wired.database.kind == "sqlite":
        return _raw_insert_sqlite(wired, batch, chained=chained)
    return _raw_insert_postgres(wired, batch, chained=chained)


EVENT_VALUES = 4  # originator_id, originator_version, topic, state: the rest of a chained page row is the chain row


def _raw_insert_sqlite(wired: Continuum, batch: int, *, chained: bool) -> dict[str, Any]:
    datastore = wired.app.recorder.datastore  # type: ignore[attr-defined]
    table = RAW_CHAINED_TABLE if chained else RAW_TABLE
    SQLiteApplicationRecorder(datastore, events_table_name=table).create_table()
    # The library's connection settings: WAL (already on the file), default synchronous, autocommit + BEGIN.
    connection = sqlite3.connect(wired.database.path, isolation_level=None, timeout=30)
    if chained:
        for statement in chain_ddl(table=RAW_CHAIN_TABLE, meta=False):
            connection.execute(statement)
    marks = ", ".join("?" for _ in CHAIN_COLUMNS.split(", "))
    seconds, rows = 0.0, 0
    try:
        for page in stored_rows(wired, batch, chained=chained):
            started = time.perf_counter()
            connection.execute("BEGIN")
            connection.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?)", [row[:EVENT_VALUES] for row in page])  # noqa: S608
            if chained:
                connection.executemany(f"INSERT INTO {RAW_CHAIN_TABLE} ({CHAIN_COLUMNS}) VALUES ({marks})",  # noqa: S608
                                       [row[EVENT_VALUES:] for row in page])
            connection.execute("COMMIT")
            seconds += time.perf_counter() - started
            rows += len(page)
    finally:
        connection.close()
    how = "executemany into tables of the library's DDL" + (" and the chain's" if chained else "") + ", same file, same pragmas"
    return _baseline(rows, seconds, batch, how, chained=chained)


def _raw_insert_postgres(wired: Continuum, batch: int, *, chained: bool) -> dict[str, Any]:
    """By binary COPY, as the recorder writes them (the fastest raw insert: an executemany is half as fast)."""
    datastore = wired.app.recorder.datastore  # type: ignore[attr-defined]
    table = RAW_CHAINED_TABLE if chained else RAW_TABLE
    PostgresApplicationRecorder(datastore, events_table_name=table).create_table()
    schema = wired.database.schema
    copy_events = f'COPY "{schema}".{table} (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)'
    copy_chain = f'COPY "{schema}".{RAW_CHAIN_TABLE} ({CHAIN_COLUMNS}) FROM STDIN (FORMAT BINARY)'
    seconds, rows = 0.0, 0
    views = wired.views
    assert isinstance(views, PostgresViews)  # noqa: S101 - only called for PostgreSQL
    with views.connect() as connection:
        if chained:
            with connection.transaction():
                for statement in chain_ddl(f'"{schema}".', table=RAW_CHAIN_TABLE, meta=False):
                    connection.execute(statement)
        for page in stored_rows(wired, batch, chained=chained):
            started = time.perf_counter()
            with connection.transaction(), connection.cursor() as cursor:
                with cursor.copy(copy_events) as copy:
                    copy.set_types(["uuid", "int8", "text", "bytea"])
                    for row in page:
                        copy.write_row(row[:EVENT_VALUES])
                if chained:
                    with cursor.copy(copy_chain) as copy:
                        copy.set_types(list(CHAIN_TYPES))
                        for row in page:
                            copy.write_row(row[EVENT_VALUES:])
            seconds += time.perf_counter() - started
            rows += len(page)
    how = "binary COPY into tables of the library's DDL" + (" and the chain's" if chained else "") + ", same schema"
    return _baseline(rows, seconds, batch, how, chained=chained)


def _baseline(rows: int, seconds: float, batch: int, how: str, *, chained: bool = False) -> dict[str, Any]:
    what = "event and chain rows" if chained else "event rows"
    return {"what": f"raw insert of the same {what}, {batch} per transaction: {how}", "rows": rows, "seconds": seconds,
            "rows_per_s": rows / seconds if seconds else math.inf}
