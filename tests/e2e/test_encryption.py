"""Events encrypted at rest (AES) with a key from the environment: unreadable without it."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from datetime import timedelta

import psycopg
from typer.testing import CliRunner

from infra.config import parse_database_url
from services.cli import app
from tests.support.clock import NOW

runner = CliRunner()


def _lines(tmp_path):
    day = NOW - timedelta(days=3)
    lines = [
        {"command": "register", "client": "SECRET-77", "occurred_at": day.isoformat(), "site": "north"},
        {"command": "admit", "client": "SECRET-77", "occurred_at": (day + timedelta(hours=2)).isoformat(), "level": "2.1",
         "site": "north", "track": "evening"},
    ]
    path = tmp_path / "lines.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def _raw_states(url: str) -> list[bytes]:
    db = parse_database_url(url)
    if db.kind == "sqlite":
        return [bytes(row[0]) for row in sqlite3.connect(db.path).execute("SELECT state FROM stored_events")]
    with psycopg.connect(host=db.host, port=db.port, user=db.user, dbname=db.name) as connection:
        rows = connection.execute(f'SELECT state FROM "{db.schema}".carecontinuum_events').fetchall()
    return [bytes(row[0]) for row in rows]


def test_events_are_encrypted_at_rest_and_readable_with_the_key(database_url, tmp_path):
    key = base64.b64encode(os.urandom(32)).decode()
    env = {"CONTINUUM_CIPHER_KEY": key, "CONTINUUM_DATABASE_URL": database_url}
    imported = runner.invoke(app, ["import", str(_lines(tmp_path))], env=env)
    assert imported.exit_code == 0, imported.output
    states = _raw_states(database_url)
    assert len(states) == 2
    assert all(b"SECRET-77" not in state and b"north" not in state for state in states)
    census = runner.invoke(app, ["census", "--json"], env=env)
    assert json.loads(census.stdout)["total"] == 1
    replayed = runner.invoke(app, ["replay", "SECRET-77", "--json"], env=env)
    assert json.loads(replayed.stdout)["state"]["track"] == "evening"
    assert runner.invoke(app, ["verify"], env=env).exit_code == 0


def test_an_encrypted_store_without_its_key_is_one_line_error(database_url, tmp_path):
    key = base64.b64encode(os.urandom(32)).decode()
    assert runner.invoke(app, ["import", str(_lines(tmp_path))],
                         env={"CONTINUUM_CIPHER_KEY": key, "CONTINUUM_DATABASE_URL": database_url}).exit_code == 0
    without = runner.invoke(app, ["replay", "SECRET-77"], env={"CONTINUUM_CIPHER_KEY": "", "CONTINUUM_DATABASE_URL": database_url})
    assert without.exit_code == 2
    assert "encrypted: set CONTINUUM_CIPHER_KEY" in without.stderr
    wrong = base64.b64encode(os.urandom(32)).decode()
    other = runner.invoke(app, ["census"], env={"CONTINUUM_CIPHER_KEY": wrong, "CONTINUUM_DATABASE_URL": database_url})
    assert other.exit_code == 2
    assert "does not open them" in other.stderr
    assert "Traceback" not in other.output


def test_a_malformed_cipher_key_is_refused(sqlite_url, tmp_path):
    result = runner.invoke(app, ["census"], env={"CONTINUUM_CIPHER_KEY": "not-base64!", "CONTINUUM_DATABASE_URL": sqlite_url})
    assert result.exit_code == 2
    assert "not base64" in result.stderr


def _read_table(url: str, sql: str) -> list[tuple]:
    db = parse_database_url(url)
    if db.kind == "sqlite":
        return list(sqlite3.connect(db.path).execute(sql))
    with psycopg.connect(host=db.host, port=db.port, user=db.user, dbname=db.name,
                         options=f"-c search_path={db.schema}") as connection:
        return connection.execute(sql).fetchall()


def test_clinical_text_in_the_read_models_is_sealed_with_the_key(database_url, tmp_path):
    key = base64.b64encode(os.urandom(32)).decode()
    env = {"CONTINUUM_CIPHER_KEY": key, "CONTINUUM_DATABASE_URL": database_url}
    day = NOW - timedelta(days=3)
    lines = [
        {"command": "register", "client": "T-1", "occurred_at": day.isoformat(), "site": "north"},
        {"command": "assess", "client": "T-1", "occurred_at": day.isoformat(), "ratings": [1, 1, 1, 1, 1, 1],
         "recommended_level": "2.1", "clinician": "Dr Jane Marlow"},
        {"command": "start_detox", "client": "T-1", "occurred_at": (day + timedelta(hours=1)).isoformat(), "level": "1-WM",
         "site": "north", "substances": ["oxycodone"]},
        {"command": "complete_detox", "client": "T-1", "occurred_at": (day + timedelta(hours=30)).isoformat()},
        {"command": "step_down", "client": "T-1", "occurred_at": (day + timedelta(hours=31)).isoformat(), "to_level": "2.1",
         "reason": "custody hearing on Friday", "track": "evening"},
        {"command": "plan", "client": "T-1", "occurred_at": (day + timedelta(hours=32)).isoformat(), "goals": ["reunite with daughter"]},
    ]
    path = tmp_path / "lines.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert runner.invoke(app, ["import", str(path)], env=env).exit_code == 0
    stored = json.dumps([*_read_table(database_url, "SELECT details FROM audit_entries"),
                         *_read_table(database_url, "SELECT reason FROM step_transitions")])
    for secret in ("Jane Marlow", "oxycodone", "custody hearing", "reunite with daughter"):
        assert secret not in stored, secret
    trail = json.loads(runner.invoke(app, ["audit", "T-1", "--json"], env=env).stdout)
    assert trail["entries"][1]["details"]["clinician"] == "Dr Jane Marlow"
    history = json.loads(runner.invoke(app, ["history", "T-1", "--json"], env=env).stdout)
    assert "custody hearing on Friday" in json.dumps(history)
