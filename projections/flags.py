"""Flags: admissions, steps and changes of track a clinician should look at again (hours outside the
level's band, an ambulatory admission against a withdrawal need). Recorded on the events, never
refused; listed here for `continuum flags` and `GET /flags`. A void drops an entry's flags, and a
correction of planned hours replaces them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import DomainEventProtocol

from domain import events as ev
from domain.flags import describe
from domain.levels import Level
from infra.views import Cursor
from projections.base import Projection, from_utc, id_text, id_type, utc


class Flags(Projection):
    name = "flags"
    handles = (
        ev.ClientRegistered, ev.AdmittedToLevel, ev.SteppedUp, ev.SteppedDown, ev.TrackChanged, ev.EntryCorrected,
        ev.EntryVoided,
    )
    tables = ("flag_clients", "care_flags")

    def ddl(self, dialect: str) -> list[str]:
        return [
            "CREATE TABLE IF NOT EXISTS flag_clients (journey_id TEXT PRIMARY KEY, client_ref TEXT NOT NULL)",
            f"""CREATE TABLE IF NOT EXISTS care_flags (
                journey_id TEXT NOT NULL, version {id_type(dialect)} NOT NULL, event_type TEXT NOT NULL, flags TEXT NOT NULL,
                level TEXT NOT NULL, site TEXT NOT NULL, hours REAL NOT NULL, occurred_at TEXT NOT NULL,
                PRIMARY KEY (journey_id, version))""",
            "CREATE INDEX IF NOT EXISTS care_flags_time ON care_flags (occurred_at)",
        ]

    @singledispatchmethod
    def process(self, event: DomainEventProtocol[UUID], cursor: Cursor, position: int) -> None:
        """Events without flags only move the position."""

    @process.register
    def _registered(self, event: ev.ClientRegistered, cursor: Cursor, position: int) -> None:
        cursor.execute(
            "INSERT INTO flag_clients (journey_id, client_ref) VALUES (?, ?)", (id_text(event.originator_id), event.client_ref),
        )

    @process.register
    def _admitted(self, event: ev.AdmittedToLevel, cursor: Cursor, position: int) -> None:
        _insert(cursor, event, event.flags, event.level, event.site, event.planned_hours_per_week)

    @process.register
    def _stepped(self, event: ev.LevelChange, cursor: Cursor, position: int) -> None:
        _insert(cursor, event, event.flags, event.to_level, event.site, event.planned_hours_per_week)

    @process.register
    def _track_changed(self, event: ev.TrackChanged, cursor: Cursor, position: int) -> None:
        _insert(cursor, event, event.flags, event.level, event.site, event.planned_hours_per_week)

    @process.register
    def _corrected(self, event: ev.EntryCorrected, cursor: Cursor, position: int) -> None:
        key = (id_text(event.originator_id), event.corrects_version)
        if event.field in ("site", "planned_hours_per_week", "occurred_at"):
            value: object = event.corrected_value
            if event.field == "occurred_at":
                value = utc(datetime.fromisoformat(str(value)))
            column = {"planned_hours_per_week": "hours"}.get(event.field, event.field)
            cursor.execute(f"UPDATE care_flags SET {column} = ? WHERE journey_id = ? AND version = ?", (value, *key))  # noqa: S608
        if event.flags is not None:
            cursor.execute("UPDATE care_flags SET flags = ? WHERE journey_id = ? AND version = ?", (" ".join(event.flags), *key))

    @process.register
    def _voided(self, event: ev.EntryVoided, cursor: Cursor, position: int) -> None:
        cursor.execute(
            "DELETE FROM care_flags WHERE journey_id = ? AND version = ?", (id_text(event.originator_id), event.voided_version),
        )


def _insert(cursor: Cursor, event: ev.JourneyEvent, flags: list[str], level: Level, site: str, hours: float) -> None:
    """One row per admission, step or change of track, flagged or not, so a correction can flag it later."""
    cursor.execute(
        "INSERT INTO care_flags (journey_id, version, event_type, flags, level, site, hours, occurred_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (id_text(event.originator_id), event.originator_version, ev.event_name(event), " ".join(flags), level.code, site, hours,
         utc(event.occurred_at)),
    )


@dataclass(frozen=True)
class FlagRow:
    client_ref: str
    version: int
    event_type: str
    flag: str
    level: str
    site: str
    hours: float
    occurred_at: datetime

    @property
    def text(self) -> str:
        return describe(self.flag, Level(self.level), self.hours)


def flags_query(
    cursor: Cursor, *, journey_id: UUID | None = None, site: str | None = None, since: datetime | None = None,
    until: datetime | None = None,
) -> list[FlagRow]:
    where, params = ["f.flags <> ''"], []
    for condition, value in (
        ("f.journey_id = ?", journey_id and str(journey_id)), ("f.site = ?", site),
        ("f.occurred_at >= ?", since and utc(since)), ("f.occurred_at < ?", until and utc(until)),
    ):
        if value is not None:
            where.append(condition)
            params.append(value)
    cursor.execute(
        "SELECT c.client_ref, f.version, f.event_type, f.flags, f.level, f.site, f.hours, f.occurred_at FROM care_flags f"  # noqa: S608
        f" JOIN flag_clients c ON c.journey_id = f.journey_id WHERE {' AND '.join(where)} ORDER BY f.occurred_at, c.client_ref",
        params,
    )
    return [
        FlagRow(ref, version, kind, flag, level, site, float(hours), from_utc(at))
        for ref, version, kind, flags, level, site, hours, at in cursor.fetchall()
        for flag in flags.split()
    ]
