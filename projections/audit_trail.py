"""Audit trail: every event of a client in order, with who recorded it, the clinical and the
recorded time, and each correction shown beside the entry it corrects (nothing is erased)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from domain import events as ev
from infra.sealing import PLAIN, FieldSeal
from infra.views import Cursor
from projections.base import Projection, from_utc, id_text, id_type, utc


class AuditTrail(Projection):
    name = "audit_trail"
    handles = ev.EVENT_TYPES
    tables = ("audit_entries",)
    appends_only = True

    def __init__(self, seal: FieldSeal = PLAIN) -> None:
        super().__init__()
        self.seal = seal  # the details hold goals, clinicians' names, reasons and substances

    def ddl(self, dialect: str) -> list[str]:
        ids = id_type(dialect)
        return [
            f"""CREATE TABLE IF NOT EXISTS audit_entries (
                journey_id TEXT NOT NULL, version {ids} NOT NULL, position {ids} NOT NULL, event_type TEXT NOT NULL,
                occurred_at TEXT NOT NULL, recorded_at TEXT NOT NULL, actor_id TEXT NOT NULL, actor_role TEXT NOT NULL,
                command_id TEXT NOT NULL, details TEXT NOT NULL, corrects_version {ids},
                PRIMARY KEY (journey_id, version))""",
            "CREATE INDEX IF NOT EXISTS audit_corrections ON audit_entries (journey_id, corrects_version)",
        ]

    def process(self, event: DomainEventProtocol[UUID], cursor: Cursor, position: int) -> None:
        if not isinstance(event, ev.JourneyEvent | ev.ClientRegistered):  # every event of the catalogue is one
            raise TypeError(f"not an event of the catalogue: {type(event).__name__}")
        facts = _payload(event)
        actor = event.recorded_by
        cursor.execute(
            "INSERT INTO audit_entries (journey_id, version, position, event_type, occurred_at, recorded_at, actor_id,"
            " actor_role, command_id, details, corrects_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                id_text(event.originator_id), event.originator_version, position, ev.event_name(event), utc(event.occurred_at),
                utc(event.timestamp), actor.id, actor.role, event.command_id, self.seal.seal(_write_details(facts)),
                facts.get("corrects_version", facts.get("voided_version")),
            ),
        )


_FIELDS: dict[type, tuple[str, ...]] = {}
_PLAIN = frozenset({str, int, float, bool, type(None)})
_OWN_COLUMNS = frozenset({"recorded_by", "occurred_at", "command_id"})
"""Fields with columns of their own, not repeated in the details."""
_DETAILS = json.JSONEncoder(sort_keys=True)
"""`json.dumps(details, sort_keys=True)`'s encoder, made once (`dumps` makes one per call for `sort_keys`)."""


def _details_writer() -> Callable[[dict[str, Any]], str]:
    """`_DETAILS.encode` for a dict: the C encoder its `encode` makes on every call (with these arguments), made once and
    called directly, less the check for circular references (a payload is a tree). Without json's C module, `encode`."""
    if c_make_encoder is None:
        return _DETAILS.encode
    write = c_make_encoder(
        None, _DETAILS.default, encode_basestring_ascii, None, _DETAILS.key_separator, _DETAILS.item_separator,
        _DETAILS.sort_keys, _DETAILS.skipkeys, _DETAILS.allow_nan,
    )
    return lambda details: "".join(write(details, 0))


_write_details = _details_writer()


def _payload(event: ev.JourneyEvent | ev.ClientRegistered) -> dict[str, Any]:
    """`domain.events.payload` less the fields with columns of their own, without its per-event cost: the
    field names are looked up once per event class, and values that are already plain JSON are not walked."""
    names = _FIELDS.get(type(event))
    if names is None:
        names = _FIELDS[type(event)] = tuple(
            f.name for f in fields(event) if f.name not in ev.COMMON_FIELDS and f.name not in _OWN_COLUMNS
        )
    facts = {}
    for name in names:
        value = getattr(event, name)
        facts[name] = value if type(value) in _PLAIN else ev._plain(value)  # noqa: SLF001 - the same conversion
    return facts


@dataclass
class AuditEntry:
    version: int
    position: int
    event_type: str
    occurred_at: datetime
    recorded_at: datetime
    actor_id: str
    actor_role: str
    command_id: str
    details: dict[str, Any]
    corrects_version: int | None
    corrections: list[AuditEntry] = field(default_factory=list)  # and voids, beside the entry they void

    @property
    def voided(self) -> bool:
        return any(fix.event_type == "EntryVoided" for fix in self.corrections)

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version, "position": self.position, "type": self.event_type,
            "occurred_at": self.occurred_at.isoformat(), "recorded_at": self.recorded_at.isoformat(),
            "recorded_by": {"id": self.actor_id, "role": self.actor_role}, "command_id": self.command_id,
            "details": self.details, "corrects_version": self.corrects_version,
            "corrections": [c.as_json() for c in self.corrections], "voided": self.voided,
        }


_COLUMNS = "version, position, event_type, occurred_at, recorded_at, actor_id, actor_role, command_id, details, corrects_version"


def _entry(row: tuple[Any, ...], seal: FieldSeal) -> AuditEntry:
    version, position, kind, occurred, recorded, actor_id, role, command_id, details, corrects = row
    return AuditEntry(
        version, position, kind, from_utc(occurred), from_utc(recorded), actor_id, role, command_id,
        json.loads(seal.open(details)), corrects,
    )


def trail_query(
    cursor: Cursor, journey_id: UUID, *, after: int = 0, limit: int | None = None, seal: FieldSeal = PLAIN,
) -> list[AuditEntry]:
    """Entries in order, from version `after` + 1 (keyset paging), each with its corrections."""
    sql = f"SELECT {_COLUMNS} FROM audit_entries WHERE journey_id = ? AND version > ? ORDER BY version"  # noqa: S608
    params: list[str | int] = [str(journey_id), after]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    cursor.execute(sql, params)
    entries = [_entry(row, seal) for row in cursor.fetchall()]
    if entries:
        versions = [e.version for e in entries]
        cursor.execute(
            f"SELECT {_COLUMNS} FROM audit_entries WHERE journey_id = ? AND corrects_version BETWEEN ? AND ?"  # noqa: S608
            " ORDER BY version",
            (str(journey_id), min(versions), max(versions)),
        )
        by_version = {e.version: e for e in entries}
        for correction in (_entry(row, seal) for row in cursor.fetchall()):
            if correction.corrects_version in by_version:
                by_version[correction.corrects_version].corrections.append(correction)
    return entries


def first_corrected_journey(cursor: Cursor) -> UUID | None:
    """A journey with a correction, for showing what a correction looks like (the demo)."""
    cursor.execute("SELECT journey_id FROM audit_entries WHERE event_type = 'EntryCorrected' ORDER BY journey_id LIMIT 1")
    row = cursor.fetchone()
    return UUID(row[0]) if row else None
