"""Shared pieces of the audit tests: hand-worked histories, recorded-time cut points, the CLI, and raw
SQL connections for tampering with the store behind the application's back.

Clinical times are fixed days before the tests' clock reading `NOW` (tests/support/clock.py), which
the journey service reads; recorded times are the library's event `timestamp`, set from the wall clock
when each command is recorded, so a test that needs "what the record said before X" records X later in
the test and takes `datetime.now(UTC)` in between (`cut()`).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from typer.testing import CliRunner, Result

from domain.journey import ClientJourney
from domain.values import Actor
from infra.chain import GENESIS, link, row_hash
from infra.config import parse_database_url
from services.bootstrap import Continuum
from services.cli import app
from services.commands import parse_command
from services.journeys import Outcome
from tests.support.clock import NOW

INTAKE = Actor("intake-3", "intake")
CLINICIAN = Actor("dr-ames", "clinician")
LAB = Actor("lab-1", "lab")
SUPERVISOR = Actor("sup-9", "supervisor")

BASE = (NOW - timedelta(days=30)).replace(hour=9, minute=0, second=0, microsecond=0)  # 2026-10-25 09:00 UTC
UNREACHABLE_POSTGRES = "postgresql://postgres@127.0.0.1:1/nope"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def day(days: float) -> datetime:
    """Clinical time: `days` after BASE (09:00 UTC, 30 days before NOW)."""
    return BASE + timedelta(days=days)


def at(days: float) -> str:
    return day(days).isoformat()


def jid(client: str) -> UUID:
    return ClientJourney.create_id(client)


def cut() -> datetime:
    """A recorded-time cut point strictly between what was recorded before and what is recorded after."""
    time.sleep(0.005)
    moment = datetime.now(UTC)
    time.sleep(0.005)
    return moment


def send(wired: Continuum, command: str, client: str, when: float, actor: Actor = CLINICIAN, **fields: Any) -> Outcome:
    key = fields.get("specimen_id") or fields.get("session_id") or fields.get("field") or ""
    data = {"id": f"{client}:{command}:{when}:{key}", "command": command, "client": client,
            "occurred_at": at(when), **fields}
    outcome = wired.service.execute(parse_command(data), actor)
    assert outcome.ok, f"{command} {client}: {outcome.error}"
    assert outcome.events, f"{command} {client}: recorded nothing"
    return outcome


def registered(wired: Continuum, client: str, site: str = "north", when: float = 0) -> None:
    send(wired, "register", client, when, INTAKE, site=site)


def admitted(wired: Continuum, client: str, when: float, level: str = "2.1", site: str = "north", track: str | None = "evening") -> None:
    registered(wired, client, site)
    send(wired, "admit", client, when, level=level, site=site, **({"track": track} if track else {}))


# -- the hand-worked histories ------------------------------------------------------------------


@dataclass
class DrugTestHistory:
    """P-1: registered day 0 [v1], admitted to 2.1 north evening day 1 [v2], urine specimen sp-1
    collected day 20 [v3]; the result (negative) is for clinical day 23 [v4] and is recorded only after
    `before_result` was taken."""

    client: str
    before_result: datetime  # recorded time: after the collection was recorded, before the result was
    collected: datetime  # clinical times
    resulted: datetime


def drug_test_history(wired: Continuum, client: str = "P-1") -> DrugTestHistory:
    admitted(wired, client, 1)
    send(wired, "collect_drug_test", client, 20, specimen_id="sp-1")
    before = cut()
    send(wired, "result_drug_test", client, 23, LAB, specimen_id="sp-1", result="negative")
    return DrugTestHistory(client, before, day(20), day(23))


@dataclass
class CorrectionHistory:
    """K-1: registered day 0 [v1], admitted to 2.1 at site north, evening, day 1 [v2], sessions
    attended days 2 and 3 [v3, v4]; a week after the admission (clinical day 8) the supervisor corrects
    the admission's site to south [v5], recorded after `before_correction`."""

    client: str
    before_correction: datetime
    after_correction: datetime


def correction_history(wired: Continuum, client: str = "K-1") -> CorrectionHistory:
    admitted(wired, client, 1)
    send(wired, "attend_session", client, 2, session_id="s-1", minutes=180)
    send(wired, "attend_session", client, 3, session_id="s-2", minutes=120)
    before = cut()
    send(wired, "correct", client, 8, SUPERVISOR, corrects_version=2, field="site", value="south",
         reason="admitted at the south site")
    return CorrectionHistory(client, before, cut())


def small_clinic(wired: Continuum) -> dict[str, int]:
    """Three journeys, their events interleaved in the notification log; returns events per client.

    Positions (notification ids) 1..10:
      1 A v1 register   2 B v1 register   3 C v1 register
      4 A v2 admit      5 B v2 admit      6 A v3 session  7 A v4 session  8 A v5 session
      9 C v2 admit     10 B v3 session
    """
    for client, site in (("A", "north"), ("B", "south"), ("C", "north")):
        registered(wired, client, site)
    send(wired, "admit", "A", 1, level="2.1", site="north", track="evening")
    send(wired, "admit", "B", 1, level="3.5", site="south")
    for number in (1, 2, 3):
        send(wired, "attend_session", "A", 1 + number, session_id=f"a-{number}", minutes=180)
    send(wired, "admit", "C", 2, level="2.1", site="north", track="day")
    send(wired, "attend_session", "B", 3, session_id="b-1", minutes=60)
    return {"A": 5, "B": 3, "C": 2}


# -- the command line ------------------------------------------------------------------------------

runner = CliRunner()


def cli(url: str, *args: object, env: dict[str, str] | None = None) -> Result:
    """`continuum ARGS --database-url URL` in process; settings come from here, not the developer's CONTINUUM_*."""
    clean: dict[str, str | None] = {
        key: None for key in os.environ
        if key.startswith("CONTINUUM_") and not key.startswith("CONTINUUM_TEST_") and key != "CONTINUUM_REQUIRE_SERVICES"
    }
    return runner.invoke(app, [*(str(arg) for arg in args), "--database-url", url], env={**clean, **(env or {})},
                         catch_exceptions=False)


def cli_json(url: str, *args: object, code: int = 0, env: dict[str, str] | None = None) -> Any:
    result = cli(url, *args, "--json", env=env)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def plain(text: str) -> str:
    return " ".join(ANSI.sub("", text).split())


# -- raw SQL behind the application's back ---------------------------------------------------------


class Raw:
    """A plain DB-API connection to the store (autocommit), with the two dialects' names."""

    def __init__(self, url: str) -> None:
        self.db = parse_database_url(url)
        self.kind = self.db.kind
        if self.kind == "sqlite":
            self.connection: Any = sqlite3.connect(self.db.path, isolation_level=None)
        else:
            self.connection = psycopg.connect(
                host=self.db.host, port=self.db.port, user=self.db.user, password=self.db.password or None,
                dbname=self.db.name, options=f"-c search_path={self.db.schema}", autocommit=True,
            )
        self.table = "stored_events" if self.kind == "sqlite" else "carecontinuum_events"
        self.position = "rowid" if self.kind == "sqlite" else "notification_id"

    def sql(self, text: str) -> str:
        return text if self.kind == "sqlite" else text.replace("?", "%s")

    def execute(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.connection.execute(self.sql(text), tuple(params))
        rows = cursor.fetchall() if cursor.description else []
        return [tuple(row) for row in rows]

    def journey_value(self, journey: UUID) -> str:
        """How originator_id is stored: uuid hex on SQLite, uuid on PostgreSQL."""
        return journey.hex if self.kind == "sqlite" else str(journey)

    def events(self) -> list[tuple[int, UUID, int, str, bytes]]:
        rows = self.execute(f"SELECT {self.position}, originator_id, originator_version, topic, state FROM {self.table}"
                            f" ORDER BY {self.position}")
        return [(int(p), UUID(str(o)), int(v), str(t), s.encode() if isinstance(s, str) else bytes(s)) for p, o, v, t, s in rows]

    def position_of(self, client: str, version: int) -> int:
        rows = self.execute(f"SELECT {self.position} FROM {self.table} WHERE originator_id = ? AND originator_version = ?",
                            (self.journey_value(jid(client)), version))
        return int(rows[0][0])

    def replace_in_state(self, position: int, old: str, new: str) -> None:
        """Edit stored bytes in place, keeping the column's type (BLOB / bytea)."""
        if self.kind == "sqlite":
            statement = f"UPDATE {self.table} SET state = CAST(replace(CAST(state AS TEXT), ?, ?) AS BLOB) WHERE rowid = ?"
        else:
            statement = (f"UPDATE {self.table} SET state = convert_to(replace(convert_from(state, 'UTF8'), ?, ?), 'UTF8')"
                         " WHERE notification_id = ?")
        self.execute(statement, (old, new, position))

    def rewrite_chain(self) -> None:
        """What a careful forger does after editing rows: recompute every hash and link consistently."""
        heads: dict[UUID, str] = {}
        head = GENESIS
        for position, journey, version, topic, state in self.events():
            hashed = row_hash(position, journey, version, topic, state)
            heads[journey] = link(heads.get(journey, GENESIS), hashed)
            head = link(head, hashed)
            self.execute("UPDATE event_chain SET row_hash = ?, journey_link = ?, global_link = ? WHERE notification_id = ?",
                         (hashed, heads[journey], head, position))

    def close(self) -> None:
        self.connection.close()


@contextmanager
def raw(url: str) -> Iterator[Raw]:
    connection = Raw(url)
    try:
        yield connection
    finally:
        connection.close()


BROKEN = re.compile(r"^event #(\d+), journey ([0-9a-f-]{36})(?: version (-?\d+))?: (.*)$")


def located(broken: str) -> tuple[int, UUID, int | None, str]:
    """(position, journey, version, what) from the text `verify --json` gives as `broken`."""
    found = BROKEN.match(broken)
    assert found, broken
    version = found.group(3)
    return int(found.group(1)), UUID(found.group(2)), None if version is None else int(version), found.group(4)
