"""Attendance: every session attended or missed, filed under the level, site, track and planned hours
in force when it was held, and the stay and episode it belongs to.

Weekly figures (hours attended per client per week against the plan, weeks meeting the level's
minimum, attendance rates) are read from these rows and the placement intervals by the queries
below and `services/reports.py`. A voided session drops its row; a corrected time, length or
excuse changes it; a corrected or voided change of level files the journey's sessions again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.dispatch import singledispatchmethod

from domain import events as ev
from infra.views import Cursor
from projections.base import Projection, from_utc, id_type, utc
from projections.placements import Placements

PLACEMENTS = Placements("attendance_placements")
SESSIONS = frozenset({"SessionAttended", "SessionMissed"})


class Attendance(Projection):
    name = "attendance"
    handles = (
        ev.WithdrawalManagementStarted, ev.AdmittedToLevel, ev.SteppedUp, ev.SteppedDown, ev.TrackChanged, ev.Discharged,
        ev.SessionAttended, ev.SessionMissed, ev.EntryCorrected, ev.EntryVoided,
    )
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
        ]

    @singledispatchmethod
    def process(self, event: Any, cursor: Cursor, position: int) -> None:  # noqa: ANN401
        """Events attendance does not handle only move the position."""

    @process.register
    def _detox(self, event: ev.WithdrawalManagementStarted, cursor: Cursor, position: int) -> None:
        track = "residential" if event.level.is_24_hour else "day"
        PLACEMENTS.enter(cursor, event, event.level.code, event.site, track, 0.0, kind="episode")

    @process.register
    def _admitted(self, event: ev.AdmittedToLevel, cursor: Cursor, position: int) -> None:
        PLACEMENTS.enter(cursor, event, event.level.code, event.site, event.track.value, event.planned_hours_per_week,
                         kind="episode")

    @process.register
    def _stepped(self, event: ev.LevelChange, cursor: Cursor, position: int) -> None:
        PLACEMENTS.enter(cursor, event, event.to_level.code, event.site, event.track.value, event.planned_hours_per_week,
                         kind="stay")

    @process.register
    def _track_changed(self, event: ev.TrackChanged, cursor: Cursor, position: int) -> None:
        PLACEMENTS.enter(cursor, event, event.level.code, event.site, event.track.value, event.planned_hours_per_week,
                         kind="track")

    @process.register
    def _discharged(self, event: ev.Discharged, cursor: Cursor, position: int) -> None:
        PLACEMENTS.leave(cursor, event)

    @process.register
    def _attended(self, event: ev.SessionAttended, cursor: Cursor, position: int) -> None:
        _insert(cursor, event, attended=True, excused=False)

    @process.register
    def _missed(self, event: ev.SessionMissed, cursor: Cursor, position: int) -> None:
        _insert(cursor, event, attended=False, excused=event.excused)

    @process.register
    def _corrected(self, event: ev.EntryCorrected, cursor: Cursor, position: int) -> None:
        journey = str(event.originator_id)
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
                PLACEMENTS.refile(cursor, journey, "attendance_sessions", "occurred_at")
        elif PLACEMENTS.corrected(cursor, event):
            PLACEMENTS.refile(cursor, journey, "attendance_sessions", "occurred_at")

    @process.register
    def _voided(self, event: ev.EntryVoided, cursor: Cursor, position: int) -> None:
        journey = str(event.originator_id)
        if event.voided_type in SESSIONS:
            cursor.execute(
                "DELETE FROM attendance_sessions WHERE journey_id = ? AND version = ?", (journey, event.voided_version),
            )
        elif PLACEMENTS.voided(cursor, event):
            PLACEMENTS.refile(cursor, journey, "attendance_sessions", "occurred_at")


def _insert(cursor: Cursor, event: ev.SessionAttended | ev.SessionMissed, *, attended: bool, excused: bool) -> None:
    journey, at = str(event.originator_id), utc(event.occurred_at)
    placed = PLACEMENTS.at(cursor, journey, at)
    where = (placed.level, placed.site, placed.track, placed.hours, placed.stay, placed.episode) if placed else ("", "", "", 0.0, 0, 0)
    cursor.execute(
        "INSERT INTO attendance_sessions (journey_id, version, session_id, occurred_at, attended, excused, minutes, kind,"
        " level, site, track, hours, stay, episode) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (journey, event.originator_version, event.session_id, at, int(attended), int(excused), float(event.minutes),
         event.kind.value, *where),
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


@dataclass(frozen=True)
class PlacementInterval:
    journey_id: str
    level: str
    site: str
    track: str
    hours: float
    stay: int
    episode: int
    started_at: datetime
    ended_at: datetime | None


def sessions_query(cursor: Cursor, since: datetime | None, until: datetime | None) -> list[Session]:
    """Sessions held in [since, until)."""
    where, params = ["1 = 1"], []
    if since is not None:
        where.append("occurred_at >= ?")
        params.append(utc(since))
    if until is not None:
        where.append("occurred_at < ?")
        params.append(utc(until))
    cursor.execute(
        "SELECT journey_id, occurred_at, attended, excused, minutes, level, site, stay, episode FROM attendance_sessions"  # noqa: S608
        f" WHERE {' AND '.join(where)} ORDER BY journey_id, occurred_at",
        params,
    )
    return [Session(j, from_utc(at), bool(a), bool(x), float(m), lv, s, int(st), int(ep))
            for j, at, a, x, m, lv, s, st, ep in cursor.fetchall()]


def placements_query(cursor: Cursor, level: str, since: datetime | None, until: datetime | None) -> list[PlacementInterval]:
    """The placement intervals at `level` that overlap [since, until)."""
    where, params = ["level = ?"], [level]
    if until is not None:
        where.append("started_at < ?")
        params.append(utc(until))
    if since is not None:
        where.append("(ended_at IS NULL OR ended_at > ?)")
        params.append(utc(since))
    cursor.execute(
        "SELECT journey_id, level, site, track, hours, stay, episode, started_at, ended_at FROM attendance_placements"  # noqa: S608
        f" WHERE {' AND '.join(where)} ORDER BY journey_id, started_at",
        params,
    )
    return [PlacementInterval(j, lv, s, t, float(h), int(st), int(ep), from_utc(a), None if e is None else from_utc(e))
            for j, lv, s, t, h, st, ep, a, e in cursor.fetchall()]
