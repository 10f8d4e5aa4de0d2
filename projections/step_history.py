"""Step history: every change of level of every client (admissions, steps, discharges, alumni),
with clinical time and reason, and the from -> to matrix of steps over a period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import DomainEventProtocol

from domain import events as ev
from domain.levels import ALUMNI
from infra.sealing import PLAIN, FieldSeal
from infra.views import Cursor
from projections.base import Projection, from_utc, id_text, id_type, utc

STEP_KINDS = ("step_up", "step_down")


class StepHistory(Projection):
    name = "step_history"
    handles = (
        ev.WithdrawalManagementStarted, ev.AdmittedToLevel, ev.SteppedUp, ev.SteppedDown, ev.Discharged,
        ev.EnrolledInAlumni, ev.TrackChanged, ev.EntryCorrected, ev.EntryVoided,
    )
    tables = ("step_transitions",)

    def __init__(self, seal: FieldSeal = PLAIN) -> None:
        super().__init__()
        self.seal = seal  # reasons are clinicians' free text

    def ddl(self, dialect: str) -> list[str]:
        return [
            f"""CREATE TABLE IF NOT EXISTS step_transitions (
                journey_id TEXT NOT NULL, version {id_type(dialect)} NOT NULL, kind TEXT NOT NULL,
                from_level TEXT, to_level TEXT, occurred_at TEXT NOT NULL, reason TEXT NOT NULL,
                PRIMARY KEY (journey_id, version))""",
            "CREATE INDEX IF NOT EXISTS step_transitions_kind_time ON step_transitions (kind, occurred_at)",
        ]

    @singledispatchmethod
    def process(self, event: DomainEventProtocol[UUID], cursor: Cursor, position: int) -> None:
        """Events the step history does not handle only move its position."""

    @process.register
    def _detox(self, event: ev.WithdrawalManagementStarted, cursor: Cursor, position: int) -> None:
        self._insert(cursor, event, "admission", None, event.level.code, "withdrawal management")

    @process.register
    def _admitted(self, event: ev.AdmittedToLevel, cursor: Cursor, position: int) -> None:
        self._insert(cursor, event, "admission", None, event.level.code, "admission")

    @process.register
    def _up(self, event: ev.SteppedUp, cursor: Cursor, position: int) -> None:
        self._insert(cursor, event, "step_up", event.from_level.code, event.to_level.code, event.reason)

    @process.register
    def _down(self, event: ev.SteppedDown, cursor: Cursor, position: int) -> None:
        self._insert(cursor, event, "step_down", event.from_level.code, event.to_level.code, event.reason)

    @process.register
    def _track_changed(self, event: ev.TrackChanged, cursor: Cursor, position: int) -> None:
        self._insert(cursor, event, "track_change", event.level.code, event.level.code, event.reason)

    @process.register
    def _voided(self, event: ev.EntryVoided, cursor: Cursor, position: int) -> None:
        cursor.execute(
            "DELETE FROM step_transitions WHERE journey_id = ? AND version = ?", (id_text(event.originator_id), event.voided_version),
        )

    @process.register
    def _discharged(self, event: ev.Discharged, cursor: Cursor, position: int) -> None:
        self._insert(cursor, event, "discharge", event.level.code, None, event.reason.value)

    @process.register
    def _alumni(self, event: ev.EnrolledInAlumni, cursor: Cursor, position: int) -> None:
        self._insert(cursor, event, "alumni", None, ALUMNI, event.program)

    @process.register
    def _corrected(self, event: ev.EntryCorrected, cursor: Cursor, position: int) -> None:
        column = {"occurred_at": "occurred_at", "reason": "reason", "program": "reason"}.get(event.field)  # alumni: program
        if column is None:
            return
        value = event.corrected_value
        text = utc(datetime.fromisoformat(str(value))) if column == "occurred_at" else self.seal.seal(str(value))
        cursor.execute(
            f"UPDATE step_transitions SET {column} = ? WHERE journey_id = ? AND version = ?",  # noqa: S608
            (text, id_text(event.originator_id), event.corrects_version),
        )

    def _insert(
        self, cursor: Cursor, event: ev.JourneyEvent, kind: str, from_level: str | None, to_level: str | None, reason: str,
    ) -> None:
        cursor.execute(
            "INSERT INTO step_transitions (journey_id, version, kind, from_level, to_level, occurred_at, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (id_text(event.originator_id), event.originator_version, kind, from_level, to_level, utc(event.occurred_at),
             self.seal.seal(reason)),
        )


@dataclass(frozen=True)
class Transition:
    version: int
    kind: str
    from_level: str | None
    to_level: str | None
    occurred_at: datetime
    reason: str


def history_query(cursor: Cursor, journey_id: UUID, seal: FieldSeal = PLAIN) -> list[Transition]:
    cursor.execute(
        "SELECT version, kind, from_level, to_level, occurred_at, reason FROM step_transitions"
        " WHERE journey_id = ? ORDER BY occurred_at, version",
        (str(journey_id),),
    )
    return [Transition(v, k, f, t, from_utc(at), seal.open(r)) for v, k, f, t, at, r in cursor.fetchall()]


def matrix_query(cursor: Cursor, since: datetime | None, until: datetime | None) -> dict[tuple[str, str], int]:
    """Steps from -> to whose clinical time is in [since, until)."""
    where, params = ["kind IN (?, ?)"], list(STEP_KINDS)
    if since is not None:
        where.append("occurred_at >= ?")
        params.append(utc(since))
    if until is not None:
        where.append("occurred_at < ?")
        params.append(utc(until))
    cursor.execute(
        f"SELECT from_level, to_level, COUNT(*) FROM step_transitions WHERE {' AND '.join(where)}"  # noqa: S608
        " GROUP BY from_level, to_level",
        params,
    )
    return {(f, t): n for f, t, n in cursor.fetchall()}
