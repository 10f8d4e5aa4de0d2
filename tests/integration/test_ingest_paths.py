"""The fast ingest path stores what the reference path stores, on SQLite and PostgreSQL: the same event
rows, chain rows and decoded events; and the benchmarks' raw baselines insert the same rows as the store.

The history holds every event type (the contract test's hand-written lines) and a small demo cohort."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Mapper, StoredEvent

from bench.ingest import RAW_CHAIN_TABLE, RAW_CHAINED_TABLE, RAW_TABLE, raw_insert
from domain.events import event_id
from domain.journey import ClientJourney
from domain.values import Actor
from infra.chain import CHAIN_COLUMNS, CHAIN_TABLE, GENESIS, ChainScheme, chain_params, link, row_hash
from infra.config import Settings
from infra.raw import events_table
from infra.transcoding import FastJSONTranscoder
from services.bootstrap import Continuum, bootstrap
from services.commands import parse_command
from services.demo import cohort_lines
from services.importer import import_lines
from tests.integration.audit_builders import cli_json, raw, send
from tests.support.clock import fixed_clock
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


def stored_events(wired: Continuum) -> list[tuple[int, UUID, int, str, bytes]]:
    kind = wired.database.kind
    position = "rowid" if kind == "sqlite" else "notification_id"
    found = rows(wired, f"SELECT {position}, originator_id, originator_version, topic, state FROM {events_table(kind)} ORDER BY {position}")
    return [(int(p), UUID(str(j)), int(v), str(t), bytes(s)) for p, j, v, t, s in found]


def every_event_type(events: list[tuple[int, UUID, int, str, bytes]]) -> bool:
    return {name for name, _ in HISTORY} <= {topic.rsplit(".", 1)[-1].rsplit(":", 1)[-1] for *_, topic, _ in events}


def reference_chain(events: list[tuple[int, UUID, int, str, bytes]], scheme: ChainScheme) -> list[tuple[Any, ...]]:
    """The chain as first written: `row_hash`, `link` and the scheme's global link, one row at a time."""
    heads: dict[UUID, str] = {}
    head, chain = GENESIS, []
    for position, journey, version, topic, state in events:
        hashed = row_hash(position, journey, version, topic, state)
        heads[journey] = link(heads.get(journey, GENESIS), hashed)
        head = scheme.global_link(head, hashed)
        chain.append((position, str(journey), version, hashed, heads[journey], head))
    return chain


@pytest.mark.parametrize("key", [None, b"k" * 32], ids=["unkeyed", "keyed"])
def test_the_lean_chain_loop_makes_the_reference_links(ingested, key):
    events = stored_events(ingested)
    scheme = ChainScheme(key)
    stored = [StoredEvent(journey, version, topic, state) for _, journey, version, topic, state in events]
    positions = [position for position, *_ in events]
    half = len(events) // 2  # in two inserts: the second starts from the first's heads
    heads: dict[str, str] = {}
    first = chain_params(positions[:half], stored[:half], GENESIS, heads, scheme)
    second = chain_params(positions[half:], stored[half:], first[-1][5], heads, scheme)
    assert first + second == reference_chain(events, scheme)


def test_the_stored_chain_is_the_reference_chain_and_verifies(ingested, database_url):
    events = stored_events(ingested)
    assert every_event_type(events)
    stored = rows(ingested, f"SELECT {CHAIN_COLUMNS} FROM {CHAIN_TABLE} ORDER BY notification_id")
    assert [(int(p), str(j), int(v), h, jl, gl) for p, j, v, h, jl, gl in stored] == reference_chain(events, ChainScheme())
    assert cli_json(database_url, "verify")["events_checked"] == len(events)


def journey_index(url: str) -> list[str]:
    with raw(url) as connection:
        if connection.kind == "sqlite":
            found = connection.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'event_chain'")
        else:
            found = connection.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'event_chain'")
    return sorted(str(name) for (name,) in found if "journey" in str(name))


def test_a_store_made_with_the_journey_index_loses_it_on_first_start_and_still_verifies(ingested, database_url):
    count = len(stored_events(ingested))
    ingested.close()
    with raw(database_url) as connection:  # the chain's DDL before: a unique index keyed by journey
        connection.execute("CREATE UNIQUE INDEX event_chain_journey ON event_chain (originator_id, originator_version)")
    assert journey_index(database_url) == ["event_chain_journey"]
    reopened = bootstrap(Settings(database_url=database_url), clock=fixed_clock)
    try:
        assert journey_index(database_url) == []
        assert cli_json(database_url, "verify")["events_checked"] == count
        send(reopened, "register", "M-1", 2, site="north", birth_year=1990, sex="male")
        send(reopened, "refer", "M-1", 3, source="court", referred_level="3.7-WM")  # its link from the row before
        assert cli_json(database_url, "verify")["events_checked"] == count + 2
    finally:
        reopened.close()


def reference_transcoder(wired: Continuum) -> JSONTranscoder:
    """The library's own JSON transcoder with the application's transcodings."""
    transcoder = JSONTranscoder()
    wired.app.register_transcodings(transcoder)
    return transcoder


def test_the_store_writes_and_reads_the_library_transcoders_bytes_for_every_event_type(ingested):
    assert isinstance(ingested.app.mapper.transcoder, FastJSONTranscoder)
    reference, fast = reference_transcoder(ingested), ingested.app.mapper.transcoder
    events = stored_events(ingested)
    for _, _, _, _, state in events:
        decoded = reference.decode(state)
        assert reference.encode(decoded) == state  # the store's bytes are the library's
        assert fast.encode(decoded) == state
        assert fast.decode(state) == decoded
    library = Mapper[UUID](transcoder=reference)
    for _, journey, version, topic, state in events:
        row = StoredEvent(journey, version, topic, state)
        assert ingested.app.mapper.to_domain_event(row) == library.to_domain_event(row)
    assert every_event_type(events)


def test_a_recorded_events_id_is_made_when_asked_and_is_the_events_id(ingested):
    outcome = send(ingested, "register", "M-2", 2, site="north", birth_year=1990, sex="male")
    [recorded] = outcome.events
    assert "id" not in vars(recorded)  # nothing computed at record time
    assert recorded.id == event_id(outcome.journey_id, recorded.version) == event_id(ClientJourney.create_id("M-2"), 1)


@pytest.fixture
def other_pg_url(postgres_url: str) -> Iterator[str]:
    schema = f"t_{uuid4().hex[:12]}"
    url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={schema}"
    yield url
    with raw(url) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_copy_stores_the_rows_the_librarys_insert_and_an_executemany_store(pg_url, other_pg_url):
    bulk = bootstrap(Settings(database_url=pg_url), clock=fixed_clock)
    reference = bootstrap(Settings(database_url=other_pg_url), clock=fixed_clock)
    try:
        assert bulk.app.recorder.bulk  # type: ignore[attr-defined]
        reference.app.recorder.bulk = False  # type: ignore[attr-defined]
        report = import_lines(bulk.service, history_lines(), ACTOR, chunk_size=40)
        assert report.ok, report.problems()[:3]
        events = stored_events(bulk)
        for start in range(0, len(events), 97):  # the same stored events through the library's insert
            reference.app.recorder.insert_events([StoredEvent(j, v, t, s) for _, j, v, t, s in events[start:start + 97]])
        assert stored_events(reference) == events
        for sql in (f"SELECT {CHAIN_COLUMNS} FROM {CHAIN_TABLE} ORDER BY notification_id", "SELECT name, value FROM chain_meta ORDER BY name"):
            assert rows(bulk, sql) == rows(reference, sql)
        _, journey, version, topic, state = events[-1]
        with pytest.raises(IntegrityError):  # a version stored already: refused, nothing stored, as with the library's insert
            bulk.app.recorder.insert_events([StoredEvent(UUID(int=5), 1, topic, state), StoredEvent(journey, version, topic, state)])
        assert stored_events(bulk) == events
        assert cli_json(pg_url, "verify")["events_checked"] == len(events)
    finally:
        bulk.close()
        reference.close()
