"""Where a client was placed, as intervals, for projections that file facts under the level, site and
planned hours in force when they happened (attendance, drug tests).

Each projection keeps its own table of these intervals (it owns its tables); this module gives the
DDL and the handlers' shared steps. An interval is opened by an admission, a step or a change of
track and closed by the next of them or the discharge; `stay` is the version of the admission or
step that entered the level (a change of track keeps it), `episode` the version that opened the
episode. Only the latest change of level is ever voided, so a void deletes the interval it opened and
reopens the one it closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain import events as ev
from domain.record import TRANSITIONS
from infra.views import Cursor
from projections.base import id_type, utc


@dataclass(frozen=True)
class Placed:
    level: str
    site: str
    track: str
    hours: float
    stay: int
    episode: int


class Placements:
    def __init__(self, table: str) -> None:
        self.table = table

    def ddl(self, dialect: str) -> list[str]:
        version = id_type(dialect)
        return [
            f"""CREATE TABLE IF NOT EXISTS {self.table} (
                journey_id TEXT NOT NULL, opened_by {version} NOT NULL, closed_by {version}, level TEXT NOT NULL,
                site TEXT NOT NULL, track TEXT NOT NULL, hours REAL NOT NULL, stay {version} NOT NULL,
                episode {version} NOT NULL, started_at TEXT NOT NULL, ended_at TEXT, PRIMARY KEY (journey_id, opened_by))""",
        ]

    def enter(self, cursor: Cursor, event: ev.JourneyEvent, level: str, site: str, track: str, hours: float, *, kind: str) -> None:
        """An admission (`kind` "episode"), a step ("stay") or a change of track ("track") at the event's time."""
        journey, version, at = str(event.originator_id), event.originator_version, utc(event.occurred_at)
        stay = episode = version
        if kind != "episode":
            cursor.execute(
                f"SELECT stay, episode FROM {self.table} WHERE journey_id = ? AND ended_at IS NULL",  # noqa: S608
                (journey,),
            )
            row = cursor.fetchone()
            if row is not None:
                stay = version if kind == "stay" else int(row[0])
                episode = int(row[1])
        self.leave(cursor, event)
        cursor.execute(
            f"INSERT INTO {self.table} (journey_id, opened_by, level, site, track, hours, stay, episode, started_at)"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (journey, version, level, site, track, hours, stay, episode, at),
        )

    def leave(self, cursor: Cursor, event: ev.JourneyEvent) -> None:
        cursor.execute(
            f"UPDATE {self.table} SET ended_at = ?, closed_by = ? WHERE journey_id = ? AND ended_at IS NULL",  # noqa: S608
            (utc(event.occurred_at), event.originator_version, str(event.originator_id)),
        )

    def voided(self, cursor: Cursor, event: ev.EntryVoided) -> bool:
        """Drop a voided change of level; True when the intervals changed."""
        if event.voided_type not in TRANSITIONS:
            return False
        key = (str(event.originator_id), event.voided_version)
        cursor.execute(f"DELETE FROM {self.table} WHERE journey_id = ? AND opened_by = ?", key)  # noqa: S608
        cursor.execute(
            f"UPDATE {self.table} SET ended_at = NULL, closed_by = NULL WHERE journey_id = ? AND closed_by = ?",  # noqa: S608
            key,
        )
        return True

    def corrected(self, cursor: Cursor, event: ev.EntryCorrected) -> bool:
        """Apply a correction of a change of level's time, site, track or hours; True when the intervals changed."""
        if event.corrects_type not in TRANSITIONS:
            return False
        key = (str(event.originator_id), event.corrects_version)
        if event.field == "occurred_at":
            moment = utc(datetime.fromisoformat(str(event.corrected_value)))
            cursor.execute(f"UPDATE {self.table} SET started_at = ? WHERE journey_id = ? AND opened_by = ?", (moment, *key))  # noqa: S608
            cursor.execute(f"UPDATE {self.table} SET ended_at = ? WHERE journey_id = ? AND closed_by = ?", (moment, *key))  # noqa: S608
            return True
        column = {"site": "site", "track": "track", "planned_hours_per_week": "hours"}.get(event.field)
        if column is None:
            return False
        value: object = float(str(event.corrected_value)) if column == "hours" else str(event.corrected_value)
        cursor.execute(f"UPDATE {self.table} SET {column} = ? WHERE journey_id = ? AND opened_by = ?", (value, *key))  # noqa: S608
        return True

    def at(self, cursor: Cursor, journey_id: str, moment: str) -> Placed | None:
        """The interval in force at `moment` (UTC text); a fact after the discharge files under the last one."""
        cursor.execute(
            f"SELECT level, site, track, hours, stay, episode FROM {self.table} WHERE journey_id = ? AND started_at <= ?"  # noqa: S608
            " ORDER BY started_at DESC, opened_by DESC LIMIT 1",
            (journey_id, moment),
        )
        row = cursor.fetchone()
        return None if row is None else Placed(str(row[0]), str(row[1]), str(row[2]), float(row[3]), int(row[4]), int(row[5]))

    def refile(self, cursor: Cursor, journey_id: str, facts: str, time_column: str) -> None:
        """After the intervals of a journey changed: file its rows of table `facts` again by their time."""
        placed = self.table
        cursor.execute(
            f"UPDATE {facts} SET level = p.level, site = p.site, track = p.track, hours = p.hours, stay = p.stay,"  # noqa: S608
            f" episode = p.episode FROM {placed} p WHERE {facts}.journey_id = ? AND p.journey_id = {facts}.journey_id"
            f" AND p.opened_by = (SELECT q.opened_by FROM {placed} q WHERE q.journey_id = {facts}.journey_id"
            f" AND q.started_at <= {facts}.{time_column} ORDER BY q.started_at DESC, q.opened_by DESC LIMIT 1)",
            (journey_id,),
        )
