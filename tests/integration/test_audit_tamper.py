"""Tampering with plain SQL behind the application's back, on SQLite and PostgreSQL: each kind is
detected by `continuum verify` (exit 1) and located (position, journey, version, what is wrong).

The store is `small_clinic` (positions 1..10, see its docstring):
  1 A v1  2 B v1  3 C v1  4 A v2  5 B v2  6 A v3  7 A v4  8 A v5  9 C v2  10 B v3
"""

from __future__ import annotations

import base64
import os
import threading
from datetime import UTC, datetime
from uuid import UUID

import pytest

from infra.chain import GENESIS, stream_chain
from infra.config import Settings
from infra.raw import stream_events
from services.bootstrap import Continuum, bootstrap
from services.reads import Reader
from services.verification import ChainReport, verify_events
from tests.integration.audit_builders import Raw, cli, cli_json, jid, located, plain, raw, send, small_clinic

A, B, C = jid("A"), jid("B"), jid("C")


@pytest.fixture
def clinic(wired: Continuum) -> Continuum:
    small_clinic(wired)
    wired.runner.catch_up()  # the projections have read every event before anyone tampers
    return wired


def broken_at(url: str) -> tuple[int, UUID, int | None, str]:
    """Run `continuum verify --json`, require exit 1, and return where the first broken link is."""
    data = cli_json(url, "verify", code=1)
    assert data["ok"] is False
    assert data["broken"], data
    return located(data["broken"])


def break_of(wired: Continuum, journey: UUID | None = None) -> ChainReport:
    kind = wired.database.kind
    return verify_events(stream_events(wired.views, kind, journey=journey), stream_chain(wired.views, journey=journey),
                         one_journey=journey is not None)


def assert_tampered_text(url: str, position: int) -> None:
    result = cli(url, "verify")
    assert result.exit_code == 1, result.output
    assert f"TAMPERED: event #{position}," in plain(result.stderr)


def heads(connection: Raw) -> tuple[str, dict[UUID, str]]:
    rows = connection.execute("SELECT notification_id, originator_id, journey_link, global_link FROM event_chain ORDER BY notification_id")
    journeys = {UUID(str(row[1])): row[2] for row in rows}
    return rows[-1][3], journeys


# -- an intact store -----------------------------------------------------------------------------------


def test_an_intact_store_verifies_and_prints_the_count_and_the_head(clinic, database_url):
    with raw(database_url) as connection:
        global_head, journey_heads = heads(connection)
    assert global_head != GENESIS

    result = cli(database_url, "verify")
    assert result.exit_code == 0, result.output
    text = plain(result.stdout)
    assert "intact: 10 events in 3 journeys and 0 access records checked" in text
    assert f"the chain head: {global_head}" in text

    data = cli_json(database_url, "verify")
    expected = {"ok": True, "events_checked": 10, "journeys": 3, "chain_head": global_head, "access_records_checked": 0,
                "access_head": GENESIS, "broken": None}
    assert {key: data.get(key) for key in expected} == expected
    assert cli_json(database_url, "verify", "--expect-head", global_head)["ok"] is True

    one = cli_json(database_url, "verify", "--client", "A")
    assert (one["ok"], one["events_checked"], one["journeys"], one["chain_head"]) == (True, 5, 1, journey_heads[A])
    assert "client A's chain head" in plain(cli(database_url, "verify", "--client", "A").stdout)


def test_the_head_moves_on_as_events_are_recorded(clinic, database_url):
    before = cli_json(database_url, "verify")["chain_head"]
    send(clinic, "attend_session", "C", 4, session_id="c-1", minutes=60)
    after = cli_json(database_url, "verify")
    assert (after["ok"], after["events_checked"]) == (True, 11)
    assert after["chain_head"] != before
    # the head kept earlier no longer matches: verify says so (a kept head is checked against the current one)
    assert cli_json(database_url, "verify", "--expect-head", before, code=1)["ok"] is False


def test_a_store_written_and_read_by_concurrent_processes_verifies(clinic, database_url):
    """Separately bootstrapped instances (as separate processes would be) write events and read records at once:
    the global chain follows the commit order and the access log stays linear."""
    instances = [bootstrap(Settings(database_url=database_url)) for _ in range(4)]
    barrier = threading.Barrier(len(instances))
    problems: list[BaseException] = []

    def work(number: int) -> None:
        try:
            wired = instances[number]
            barrier.wait(timeout=30)
            for n in range(8):
                send(wired, "attend_session", "A" if number % 2 else "C", 4 + n / 10, session_id=f"w{number}-{n}", minutes=30)
                wired.reads.history("B", Reader(f"reader-{number}", "auditor"))
        except BaseException as problem:  # noqa: BLE001 - reported below
            problems.append(problem)

    threads = [threading.Thread(target=work, args=(number,)) for number in range(len(instances))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for wired in instances:
            wired.close()
    assert problems == []
    data = cli_json(database_url, "verify")
    assert (data["ok"], data["events_checked"], data["access_records_checked"]) == (True, 10 + 32, 32)


# -- edit a payload byte -----------------------------------------------------------------------------------


def test_an_edited_payload_byte_is_detected_and_located(clinic, database_url):
    with raw(database_url) as connection:
        position = connection.position_of("A", 2)
        connection.replace_in_state(position, "north", "nortx")
        if connection.kind == "sqlite":  # still a BLOB: the edit kept the column's type
            assert connection.execute("SELECT typeof(state) FROM stored_events WHERE rowid = ?", (position,)) == [("blob",)]
    assert position == 4

    assert broken_at(database_url) == (4, A, 2, "stored content does not match its hash: it was edited, swapped or moved")
    assert_tampered_text(database_url, 4)
    report = break_of(clinic)
    assert (report.broken.position, report.broken.journey_id, report.broken.version) == (4, A, 2)
    assert report.checked == 3  # the three registrations before it

    # the journey's own check locates it too; another journey is intact
    assert located(cli_json(database_url, "verify", "--client", "A", code=1)["broken"])[:3] == (4, A, 2)
    assert cli_json(database_url, "verify", "--client", "B")["ok"] is True


def test_a_text_typed_edit_on_sqlite_is_detected(sqlite_url):
    wired = bootstrap(Settings(database_url=sqlite_url))
    try:
        small_clinic(wired)
        wired.runner.catch_up()
        with raw(sqlite_url) as connection:
            connection.execute("UPDATE stored_events SET state = replace(state, 'north', 'nortx') WHERE rowid = 4")
            assert connection.execute("SELECT typeof(state) FROM stored_events WHERE rowid = 4") == [("text",)]
        assert broken_at(sqlite_url) == (4, A, 2, "stored content does not match its hash: it was edited, swapped or moved")
    finally:
        wired.close()


def test_an_edited_byte_of_an_encrypted_store_is_detected(database_url):
    key = base64.b64encode(os.urandom(32)).decode()
    wired = bootstrap(Settings(database_url=database_url, cipher_key=key))
    try:
        small_clinic(wired)
        wired.runner.catch_up()
        with_key = {"CONTINUUM_CIPHER_KEY": key}
        assert cli_json(database_url, "verify", env=with_key)["ok"] is True
        with raw(database_url) as connection:
            state = bytearray(connection.events()[6][4])
            state[20] ^= 0x01
            connection.execute(f"UPDATE {connection.table} SET state = ? WHERE {connection.position} = 7", (bytes(state),))
        data = cli_json(database_url, "verify", env=with_key, code=1)
        assert located(data["broken"]) == (7, A, 4, "stored content does not match its hash: it was edited, swapped or moved")
    finally:
        wired.close()


# -- delete a row -----------------------------------------------------------------------------------------


def test_a_deleted_event_row_is_detected_and_located(clinic, database_url):
    with raw(database_url) as connection:
        connection.execute(f"DELETE FROM {connection.table} WHERE {connection.position} = 6")
    assert broken_at(database_url) == (6, A, 3, "stored event is missing: it was deleted")
    assert_tampered_text(database_url, 6)
    assert located(cli_json(database_url, "verify", "--client", "A", code=1)["broken"])[:3] == (6, A, 3)


@pytest.mark.parametrize(("deleted", "expected"), [
    # the next row is the same journey's next version: a version gap
    (6, (7, A, 4, "version 4 follows version 2: an event was deleted or reordered")),
    # the next row belongs to another journey: the global chain breaks there
    (5, (6, A, 3, "global chain link does not match: a row before it was deleted, inserted or reordered")),
])
def test_a_deleted_event_row_and_its_chain_row_are_detected_at_the_next_row(clinic, database_url, deleted, expected):
    with raw(database_url) as connection:
        connection.execute(f"DELETE FROM {connection.table} WHERE {connection.position} = ?", (deleted,))
        connection.execute("DELETE FROM event_chain WHERE notification_id = ?", (deleted,))
    assert broken_at(database_url) == expected
    if deleted == 5:  # B's own chain has a gap where its version 2 was
        assert located(cli_json(database_url, "verify", "--client", "B", code=1)["broken"]) == (
            10, B, 3, "version 3 follows version 1: an event was deleted or reordered")


def test_the_last_rows_deleted_with_their_chain_rows_are_detected(clinic, database_url):
    kept = cli_json(database_url, "verify")["chain_head"]
    with raw(database_url) as connection:
        connection.execute(f"DELETE FROM {connection.table} WHERE {connection.position} = 10")
        connection.execute("DELETE FROM event_chain WHERE notification_id = 10")
    # the chain is consistent but shorter than the last position chain_meta recorded
    truncated = cli_json(database_url, "verify", code=1)
    assert (truncated["ok"], truncated["events_checked"]) == (False, 9)
    assert truncated["broken"] == "the event log reached position #10 but its chain ends at #9: the last events were deleted (truncated)"
    with raw(database_url) as connection:  # chain_meta set back too: only a head kept outside shows it
        connection.execute("UPDATE chain_meta SET value = '9' WHERE name = 'last_position'")
    assert cli_json(database_url, "verify")["ok"] is True
    data = cli_json(database_url, "verify", "--expect-head", kept, code=1)
    assert "is not the head you kept" in data["broken"]
    result = cli(database_url, "verify", "--expect-head", kept)
    assert result.exit_code == 1
    assert "history was rewritten" in plain(result.stderr)


# -- swap two rows ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("first", "second", "expected"), [
    (4, 5, (4, A, 2)),  # two journeys' admissions
    (6, 7, (6, A, 3)),  # two sessions of one journey
])
def test_two_swapped_rows_are_detected_at_the_first(clinic, database_url, first, second, expected):
    with raw(database_url) as connection:
        states = {p: s for p, *_, s in connection.events()}
        statement = f"UPDATE {connection.table} SET state = ? WHERE {connection.position} = ?"
        connection.execute(statement, (states[second], first))
        connection.execute(statement, (states[first], second))
    position, journey, version, what = broken_at(database_url)
    assert (position, journey, version) == expected
    assert "does not match its hash" in what


# -- insert a forged row ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "new_version"), [
    (4, "originator_version + 100"),  # a copy of A's admission at a new version
    (8, "originator_version + 1"),  # a copy of A's last session as its next version, as the application would number it
])
def test_an_inserted_forged_row_is_detected_and_located(clinic, database_url, source, new_version):
    with raw(database_url) as connection:
        connection.execute(
            f"INSERT INTO {connection.table} (originator_id, originator_version, topic, state)"
            f" SELECT originator_id, {new_version}, topic, state FROM {connection.table} WHERE {connection.position} = ?",
            (source,),
        )
        forged = connection.events()[-1]
    assert forged[0] == 11
    assert broken_at(database_url) == (11, A, forged[2], "stored event has no chain link: it was inserted outside the application")
    assert_tampered_text(database_url, 11)


# -- reorder ------------------------------------------------------------------------------------------


def test_two_events_of_a_journey_exchanging_versions_are_detected(clinic, database_url):
    with raw(database_url) as connection:
        value = connection.journey_value(A)
        statement = f"UPDATE {connection.table} SET originator_version = ? WHERE originator_id = ? AND originator_version = ?"
        connection.execute(statement, (-1, value, 3))
        connection.execute(statement, (3, value, 4))
        connection.execute(statement, (4, value, -1))
        assert [(p, v) for p, j, v, *_ in connection.events() if j == A] == [(1, 1), (4, 2), (6, 4), (7, 3), (8, 5)]
    position, journey, version, what = broken_at(database_url)
    assert (position, journey, version) == (6, A, 4)
    assert "does not match its hash" in what
    assert located(cli_json(database_url, "verify", "--client", "A", code=1)["broken"])[:2] == (6, A)


# -- a consistently rewritten chain -----------------------------------------------------------------------


def test_a_consistently_rewritten_chain_is_detected_only_by_the_kept_head(clinic, database_url):
    kept = cli_json(database_url, "verify")["chain_head"]
    with raw(database_url) as connection:
        connection.replace_in_state(4, "north", "nortx")
        connection.rewrite_chain()
    rewritten = cli_json(database_url, "verify")
    assert (rewritten["ok"], rewritten["events_checked"]) == (True, 10)  # every link is consistent again...
    assert rewritten["chain_head"] != kept  # ...but the head is not the one the auditor kept
    data = cli_json(database_url, "verify", "--expect-head", kept, code=1)
    assert data["broken"] == f"the chain head {rewritten['chain_head']} is not the head you kept ({kept}): history was rewritten"


# -- the access log -----------------------------------------------------------------------------------------


def read_three_times(wired: Continuum) -> None:
    reads = wired.reads
    reads.history("A", Reader("dr-ames", "clinician", "treatment review"))
    reads.audit("B", Reader("aud-1", "auditor", "payer audit"))
    wired.audit.replay("A", Reader("surveyor-2", "surveyor", None), as_of=datetime.now(UTC), as_recorded=None)


@pytest.mark.parametrize(("tamper", "problem"), [
    ("UPDATE access_log SET purpose = 'curiosity' WHERE seq = 2", "access log: record 2 does not match its hash: it was edited"),
    ("UPDATE access_log SET actor_id = 'nobody' WHERE seq = 1", "access log: record 1 does not match its hash: it was edited"),
    ("DELETE FROM access_log WHERE seq = 2", "access log: record 3 follows 1: a record was deleted or inserted"),
    ("DELETE FROM access_log WHERE seq = 1", "access log: record 2 follows 0: a record was deleted or inserted"),
    ("UPDATE access_log SET prev_hash = (SELECT hash FROM access_log WHERE seq = 1) WHERE seq = 3",
     "access log: record 3 does not point at the record before it: the log was altered"),
])
def test_a_tampered_access_log_is_detected(clinic, database_url, tamper, problem):
    read_three_times(clinic)
    intact = cli_json(database_url, "verify")
    assert (intact["ok"], intact["access_records_checked"]) == (True, 3)
    with raw(database_url) as connection:
        connection.execute(tamper)
    data = cli_json(database_url, "verify", code=1)
    assert data["broken"] == problem
    assert data["events_checked"] == 10  # the events themselves are intact
    result = cli(database_url, "verify")
    assert result.exit_code == 1
    assert f"TAMPERED: {problem}" in plain(result.stderr)


# -- verify must report tampering, not trip over it ----------------------------------------------------------


def test_verify_reports_a_tampered_row_the_projections_have_not_read_yet(wired, database_url):
    small_clinic(wired)  # no catch-up: the projections lag, as they do between `project --follow` polls
    with raw(database_url) as connection:
        connection.replace_in_state(4, '"site"', '"sitx"')
    result = cli(database_url, "verify", "--json")
    assert result.exit_code == 1
    assert located(cli_json(database_url, "verify", code=1)["broken"])[:3] == (4, A, 2)


def test_verify_reports_a_tampered_first_row(clinic, database_url):
    with raw(database_url) as connection:
        connection.replace_in_state(1, '{"timestamp"', '{"timestamp" x')
    assert located(cli_json(database_url, "verify", code=1)["broken"])[:3] == (1, A, 1)


def test_verify_of_an_encrypted_store_needs_no_key(database_url):
    key = base64.b64encode(os.urandom(32)).decode()
    wired = bootstrap(Settings(database_url=database_url, cipher_key=key))
    try:
        small_clinic(wired)
        wired.runner.catch_up()
        assert cli_json(database_url, "verify")["ok"] is True
    finally:
        wired.close()


def test_verify_while_the_application_records_reports_no_false_tampering(clinic, database_url, monkeypatch):
    from services import verification

    original = verification.stream_chain

    def chain_read_a_moment_later(views, **options):
        # another process commits an event after verify began reading the events, before it reads the chain
        send(clinic, "attend_session", "C", 5, session_id="meanwhile", minutes=30)
        yield from original(views, **options)

    monkeypatch.setattr(verification, "stream_chain", chain_read_a_moment_later)
    data = cli_json(database_url, "verify")
    assert (data["ok"], data["broken"]) == (True, None)
