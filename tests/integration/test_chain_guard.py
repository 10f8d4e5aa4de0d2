"""The chain cannot be switched off (the security review's point 6), on SQLite and PostgreSQL: the
library's own environment variables that would replace the chained recorder are refused in one line;
a recorder that is not ours is refused at bootstrap; a failure while chaining stores nothing; after a
stored event row is deleted, a command that would collide with what the chain remembers stops with
"store damaged: ... run `continuum verify`" (not a misleading concurrency conflict), and one that
would not goes on, chained.

The store is `small_clinic` (positions 1..10, see its docstring):
  1 A v1  2 B v1  3 C v1  4 A v2  5 B v2  6 A v3  7 A v4  8 A v5  9 C v2  10 B v3
"""

from __future__ import annotations

import pytest

from infra.chain import StoreDamaged
from infra.config import ConfigurationError, Settings
from infra.recorders import ChainedPostgresRecorder, ChainedSQLiteRecorder
from services.bootstrap import Continuum, bootstrap
from tests.integration.audit_builders import cli, cli_json, located, plain, raw, send, small_clinic
from tests.support.clock import fixed_clock

LIBRARY_RECORDER = {
    "sqlite": "eventsourcing.sqlite:SQLiteApplicationRecorder",
    "postgres": "eventsourcing.postgres:PostgresApplicationRecorder",
}


def kind_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgres"


@pytest.fixture
def clinic(wired: Continuum) -> Continuum:
    small_clinic(wired)
    wired.runner.catch_up()
    return wired


def unchaining(url: str) -> list[tuple[str, str]]:
    kind = kind_of(url)
    return [
        ("CARECONTINUUM_APPLICATION_RECORDER_TOPIC", LIBRARY_RECORDER[kind]),
        ("APPLICATION_RECORDER_TOPIC", LIBRARY_RECORDER[kind]),
        ("CARECONTINUUM_PERSISTENCE_MODULE", "eventsourcing.popo"),
        ("CARECONTINUUM_POSTGRES_ENABLE_DB_FUNCTIONS", "y"),
        ("POSTGRES_ENABLE_DB_FUNCTIONS", "yes"),
        ("CARECONTINUUM_INFRASTRUCTURE_FACTORY", "eventsourcing.popo:POPOFactory"),
    ]


@pytest.mark.parametrize("case", range(6))
def test_library_variables_that_would_store_unchained_events_are_refused(database_url, monkeypatch, case):
    variable, value = unchaining(database_url)[case]
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as refused:
        bootstrap(Settings(database_url=database_url))
    message = str(refused.value)
    assert message.startswith(f"{variable}={value!r} in the environment would replace the hash-chained event recorder")
    assert message.endswith(f"events would be stored unchained: unset {variable}")
    assert "\n" not in message


def test_the_cli_refuses_them_in_one_line_and_records_nothing(database_url, tmp_path):
    variable = "CARECONTINUUM_APPLICATION_RECORDER_TOPIC"
    lines = tmp_path / "register.jsonl"
    lines.write_text('{"command": "register", "client": "Z-1", "occurred_at": "2026-10-01T09:00:00+00:00", "site": "north"}\n')
    result = cli(database_url, "import", lines, env={variable: LIBRARY_RECORDER[kind_of(database_url)]})
    assert result.exit_code == 2, result.output
    assert plain(result.stderr).startswith(f"error: {variable}=")
    assert "Traceback" not in result.output
    if kind_of(database_url) == "postgres":  # a read never creates a SQLite store; PostgreSQL has its schema
        assert cli_json(database_url, "verify")["events_checked"] == 0


def test_the_values_we_set_ourselves_are_accepted(database_url, monkeypatch):
    kind = kind_of(database_url)
    monkeypatch.setenv("CARECONTINUUM_POSTGRES_ENABLE_DB_FUNCTIONS", "n")
    monkeypatch.setenv("CARECONTINUUM_APPLICATION_RECORDER_TOPIC",
                       "infra.recorders:" + ("ChainedSQLiteRecorder" if kind == "sqlite" else "ChainedPostgresRecorder"))
    wired = bootstrap(Settings(database_url=database_url), clock=fixed_clock)
    try:
        small_clinic(wired)
    finally:
        wired.close()
    assert cli_json(database_url, "verify")["events_checked"] == 10


def test_a_recorder_that_does_not_chain_is_refused_at_bootstrap(database_url):
    overrides = {"APPLICATION_RECORDER_TOPIC": LIBRARY_RECORDER[kind_of(database_url)]}
    with pytest.raises(ConfigurationError, match=r"skips the hash chain|does not hash-chain what it stores"):
        bootstrap(Settings(database_url=database_url), store_overrides=overrides)


def test_postgres_inserting_through_its_database_function_is_refused_at_bootstrap(pg_url):
    """SQLite has no insert function; on PostgreSQL the library's would store rows without their chain."""
    with pytest.raises(ConfigurationError, match=r"skips the hash chain|does not hash-chain what it stores"):
        bootstrap(Settings(database_url=pg_url), store_overrides={"POSTGRES_ENABLE_DB_FUNCTIONS": "y"})


def test_a_failure_while_chaining_stores_nothing(clinic, database_url, monkeypatch):
    def broken(*_: object) -> None:
        raise RuntimeError("the chain could not be written")

    monkeypatch.setattr(ChainedSQLiteRecorder, "_append_chain", broken)
    monkeypatch.setattr(ChainedPostgresRecorder, "_append_chain", broken)
    with pytest.raises(RuntimeError, match="the chain could not be written"):
        send(clinic, "attend_session", "A", 9, session_id="a-9", minutes=60)
    with raw(database_url) as connection:
        assert len(connection.events()) == 10  # the insert was rolled back with the chain
    monkeypatch.undo()
    assert cli_json(database_url, "verify")["events_checked"] == 10


# -- a deleted stored row (its chain row kept) --------------------------------------------------------------------------


def test_after_the_last_stored_row_is_deleted_a_command_stops_or_goes_on_chained(clinic, database_url):
    with raw(database_url) as connection:
        connection.execute(f"DELETE FROM {connection.table} WHERE {connection.position} = 10")
    if kind_of(database_url) == "sqlite":  # SQLite would give position 10 again: refused, nothing recorded
        with pytest.raises(StoreDamaged, match=r"position #10 is already in the hash chain .*run `continuum verify`"):
            send(clinic, "attend_session", "A", 9, session_id="a-9", minutes=60)
        with raw(database_url) as connection:
            assert len(connection.events()) == 9
    else:  # PostgreSQL's sequence gives position 11: recorded and chained
        outcome = send(clinic, "attend_session", "A", 9, session_id="a-9", minutes=60)
        assert outcome.events[0].position == 11
    # either way verify reports the deleted row, and nothing else
    assert located(cli_json(database_url, "verify", code=1)["broken"])[0] == 10


def test_after_a_journeys_last_stored_row_is_deleted_its_next_command_is_chained_and_verify_reports_the_deletion(clinic, database_url):
    # The chain has no index keyed by journey (it cost a dirtied page per event): a write finds the journey's
    # link before it through the events table, so it cannot see the chain row of a deleted journey tail.
    # The command goes on, chained from the journey's last stored event; `continuum verify` reports the deletion.
    with raw(database_url) as connection:
        connection.execute(f"DELETE FROM {connection.table} WHERE {connection.position} = 9")  # C v2, C's last event
    fresh = bootstrap(Settings(database_url=database_url), clock=fixed_clock)  # as another process: nothing cached
    try:
        outcome = send(fresh, "admit", "C", 3, level="2.1", site="north", track="day")
    finally:
        fresh.close()
    assert [event.version for event in outcome.events] == [2]
    position, _, version, what = located(cli_json(database_url, "verify", code=1)["broken"])
    assert (position, version, what) == (9, 2, "stored event is missing: it was deleted")
