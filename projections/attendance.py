"""Attendance: every session attended or missed, filed under the level, site, track and planned hours
in force when it was held, and the stay and episode it belongs to.

Weekly figures (hours attended per client per week against the plan, weeks meeting the level's
minimum, attendance rates) are read from these rows and the placement intervals by the queries
below and `services/reports.py`. A voided session drops its row; a corrected time, length or
excuse changes it; a corrected or voided change of level files the journey's sessions again.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import DomainEventProtocol

from domain import events as ev
from infra.views import Cursor
from projections.base import Projection, from_utc, id_text, id_type, utc
from projections.pages import Carried
from projections.placements import PLACING, Interval, Placements, Placing, kept, period

PLACEMENTS = Placements("attendance_placements", "attendance_sessions", "occurred_at")
SESSIONS = frozenset({"SessionAttended", "SessionMissed"})


class Attendance(Projection):
    name = "attendance"
    handles = (*PLACING, ev.SessionAttended, ev.SessionMissed, ev.EntryCorrected, ev.EntryVoided)
    tables = ("attendance_placements", "attendance_sessions")

    def ddl(self, dialect: str) -> list[str]:
        version = id_type(dialect)
        return [
            *PLACEMENTS.ddl(dialect),
            f"""CREATE TABLE IF NOT EXISTS attendance_sessions (
                journey_id TEXT NOT NULL, version {version} NOT NULL, session_id TEXT NOT NULL, occurred_at TEXT NOT NULL,
                attended INTEGER NOT NULL, excused INTEGER NOT NULL, minutes REAL NOT NULL, kind TEXT NOT NULL,
                level TEXT NOT NULL, site TEXT NOT NULL, track TEXT NOT NULL, hours REAL NOT NULL, stay {version} NOT NULL,
                episode {version} NOT NULL, PRIMARY KEY (journey_id, version))""",
            "CREATE INDEX IF NOT EXISTS attendance_sessions_time ON attendance_sessions (occurred_at)",
            # an episode's sessions by time, attended or not, without reading the row (initiation's engagement window)
            "CREATE INDEX IF NOT EXISTS attendance_sessions_episode ON attendance_sessions (journey_id, episode, occurred_at, attended)",
        ]

    def page(self, cursor: Cursor, events: Sequence[DomainEventProtocol[UUID]], dialect: str,
             carried: Carried | None = None) -> AbstractContextManager[Cursor]:
        """The page's intervals read once: each session is filed without a query."""
        return PLACEMENTS.page(cursor, events, dialect, carried)

    @singledispatchmethod
    def process(self, event: Any, cursor: Cursor, position: int) -> None:  # noqa: ANN401
        """Events attendance does not handle only move the position."""

    @process.register
    def _placed(self, event: Placing, cursor: Cursor, position: int) -> None:
        PLACEMENTS.follow(cursor, event)

    @process.register
    def _attended(self, event: ev.SessionAttended, cursor: Cursor, position: int) -> None:
        _insert(cursor, event, attended=True, excused=False)

    @process.register
    def _missed(self, event: ev.SessionMissed, cursor: Cursor, position: int) -> None:
        _insert(cursor, event, attended=False, excused=event.excused)

    @process.register
    def _corrected(self, event: ev.EntryCorrected, cursor: Cursor, position: int) -> None:
        journey = id_text(event.originator_id)
        if event.corrects_type in SESSIONS:
            column = {"occurred_at": "occurred_at", "minutes": "minutes", "excused": "excused"}.get(event.field)
            if column is None:
                return
            value: object = event.corrected_value
            if column == "occurred_at":
                value = utc(datetime.fromisoformat(str(value)))
            elif column == "minutes":
                value = float(str(value))
            else:
                value = int(str(value).lower() in ("true", "1"))
            cursor.execute(
                f"UPDATE attendance_sessions SET {column} = ? WHERE journey_id = ? AND version = ?",  # noqa: S608
                (value, journey, event.corrects_version),
            )
            if column == "occurred_at":
                PLACEMENTS.refile(cursor, journey)
        else:
            PLACEMENTS.corrected(cursor, event)

    @process.register
    def _voided(self, event: ev.EntryVoided, cursor: Cursor, position: int) -> None:
        if event.voided_type in SESSIONS:
            cursor.execute(
                "DELETE FROM attendance_sessions WHERE journey_id = ? AND version = ?",
                (id_text(event.originator_id), event.voided_version),
            )
        else:
            PLACEMENTS.voided(cursor, event)


def _insert(cursor: Cursor, event: ev.SessionAttended | ev.SessionMissed, *, attended: bool, excused: bool) -> None:
    journey, at = id_text(event.originator_id), utc(event.occurred_at)
    cursor.execute(
        "INSERT INTO attendance_sessions (journey_id, version, session_id, occurred_at, attended, excused, minutes, kind,"
        " level, site, track, hours, stay, episode) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (journey, event.originator_version, event.session_id, at, int(attended), int(excused), float(event.minutes),
         event.kind.value, *PLACEMENTS.filed(cursor, journey, at).columns()),
    )


@dataclass(frozen=True)
class Session:
    journey_id: str
    occurred_at: datetime
    attended: bool
    excused: bool
    minutes: float
    level: str
    site: str
    stay: int
    episode: int


def sessions_query(cursor: Cursor, since: datetime | None, until: datetime | None) -> list[Session]:
    """Sessions held in [since, until)."""
    held, params = period("occurred_at", since, until)
    cursor.execute(
        "SELECT journey_id, occurred_at, attended, excused, minutes, level, site, stay, episode FROM attendance_sessions"  # noqa: S608
        f" WHERE {held} ORDER BY journey_id, occurred_at",
        params,
    )
    return [Session(j, from_utc(at), bool(a), bool(x), float(m), lv, s, int(st), int(ep))
            for j, at, a, x, m, lv, s, st, ep in cursor.fetchall()]


def placements_query(cursor: Cursor, level: str, since: datetime | None, until: datetime | None) -> list[Interval]:
    """The placement intervals at `level` that overlap [since, until)."""
    return PLACEMENTS.intervals(cursor, level, since, until)


@dataclass(frozen=True)
class SessionWeek:
    """A stay's sessions at one level in one week (Monday, UTC): how many, attended, missed excused, minutes attended."""

    journey_id: str
    stay: int
    week: date
    sessions: int
    attended: int
    excused: int
    minutes: float


def monday_of(dialect: str, column: str) -> str:
    """SQL: the Monday (UTC, as YYYY-MM-DD) of the week of a time column."""
    if dialect == "postgres":
        return f"to_char(date_trunc('week', CAST(substr({column}, 1, 10) AS DATE)), 'YYYY-MM-DD')"
    return f"date(substr({column}, 1, 10), 'weekday 0', '-6 days')"


def session_weeks(
    cursor: Cursor, dialect: str, level: str, since: datetime | None, until: datetime | None, site: str | None = None,
) -> list[SessionWeek]:
    """The sessions held at `level` (and `site`) in [since, until), added up per stay and week."""
    held, params = period("occurred_at", since, until)
    conditions, chosen = kept(site, (level,))
    where, values = [held, *conditions], [*params, *chosen]
    cursor.execute(
        f"SELECT journey_id, stay, {monday_of(dialect, 'occurred_at')}, COUNT(*), SUM(attended),"  # noqa: S608
        " SUM(CASE WHEN attended = 0 AND excused <> 0 THEN 1 ELSE 0 END), SUM(CASE WHEN attended <> 0 THEN minutes ELSE 0 END)"
        f" FROM attendance_sessions WHERE {' AND '.join(where)} GROUP BY 1, 2, 3",
        values,
    )
    return [SessionWeek(j, int(st), date.fromisoformat(week), int(n), int(a), int(x), float(m))
            for j, st, week, n, a, x, m in cursor.fetchall()]


def day_after(dialect: str, column: str, days: int) -> str:
    """SQL: the day (UTC, as YYYY-MM-DD) `days` days after that of a time column; compared with a time column, a
    time on that day or later is >= it."""
    if dialect == "postgres":
        return f"to_char(CAST(substr({column}, 1, 10) AS DATE) + {int(days)}, 'YYYY-MM-DD')"
    return f"date(substr({column}, 1, 10), '+{int(days)} days')"


def attended_after_start(cursor: Cursor, dialect: str, first: int, last: int) -> dict[tuple[str, int], int]:
    """Per episode (journey, version of its opener) with any: the sessions attended from day `first` to day `last`
    (calendar days, UTC) after the episode began (the start of the interval its opener opened)."""
    since, before = day_after(dialect, "p.started_at", first), day_after(dialect, "p.started_at", last + 1)
    cursor.execute(  # a correlated count: one range of the episode index per episode on both databases (a join let
        # PostgreSQL hash all the sessions)
        "SELECT p.journey_id, p.opened_by, (SELECT COUNT(*) FROM attendance_sessions s WHERE s.journey_id = p.journey_id"  # noqa: S608
        f" AND s.episode = p.opened_by AND s.occurred_at >= {since} AND s.occurred_at < {before} AND s.attended <> 0)"
        " FROM attendance_placements p WHERE p.opened_by = p.episode",
    )
    return {(j, int(ep)): int(n) for j, ep, n in cursor.fetchall() if n}
