"""42 CFR Part 2 disclosures: who may be disclosed to a recipient, the §2.32 notice, and the
accounting of disclosures (§2.24, §2.25).

A disclosure (an export for a recipient, a recipient's feed) includes a client only under a
consent in force that covers the recipient, the purpose and the kinds of record disclosed
(`eligible`); what was disclosed is recorded first, one row per client, in `disclosures`: an
append-only, hash-chained table owned by this module alone, written like the access log (never
updated or deleted, so every disclosure stays listed well beyond the three years §2.24 asks for).
`continuum disclosures` and `GET /disclosures` list it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from domain.consent import ALL, Consent, ConsentPurpose, covering
from domain.journey import ClientJourney
from infra.chain import GENESIS
from services.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from uuid import UUID

    from infra.views import Cursor, ViewStore
    from services.journeys import CareContinuum

NOTICE = (
    "This information has been disclosed to you from records protected by federal confidentiality rules (42 CFR part 2). "
    "The federal rules prohibit you from making any further disclosure of information in this record that identifies a "
    "patient as having or having had a substance use disorder either directly, by reference to publicly available "
    "information, or through verification of such identification by another person unless further disclosure is expressly "
    "permitted by the written consent of the individual whose information is being disclosed or as otherwise permitted by "
    "42 CFR part 2. A general authorization for the release of medical or other information is NOT sufficient for this "
    "purpose (see § 2.31). The federal rules restrict any use of the information to investigate or prosecute with regard "
    "to a crime any patient with a substance use disorder, except as provided at §§ 2.12(c)(5) and 2.65."
)
"""The notice against redisclosure that accompanies every disclosure (§2.32(a)(1), verbatim)."""

DDL = (
    "CREATE TABLE IF NOT EXISTS disclosures (seq BIGINT PRIMARY KEY, at TEXT NOT NULL, actor_id TEXT NOT NULL,"
    " role TEXT NOT NULL, recipient TEXT NOT NULL, purpose TEXT NOT NULL, client_ref TEXT NOT NULL,"
    " consent_id TEXT NOT NULL, what TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
)
INDEXES = (
    "CREATE INDEX IF NOT EXISTS disclosures_client ON disclosures (client_ref, seq)",
    "CREATE INDEX IF NOT EXISTS disclosures_recipient ON disclosures (recipient, seq)",
)
COLUMNS = "seq, at, actor_id, role, recipient, purpose, client_ref, consent_id, what, prev_hash, hash"


@dataclass(frozen=True)
class Disclosure:
    """One client's record disclosed to one recipient: who disclosed it, when, under which consent, what."""

    seq: int
    at: str  # ISO 8601 UTC
    actor_id: str
    role: str
    recipient: str
    purpose: str
    client_ref: str
    consent_id: str
    what: str  # "FHIR Bundle (all)", "TEDS-D extract 2025-01-01..2026-01-01 (episodes, discharges)", ...
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        return disclosure_hash(*astuple_fields(self), self.prev_hash)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def astuple_fields(d: Disclosure) -> tuple[int, str, str, str, str, str, str, str, str]:
    return (d.seq, d.at, d.actor_id, d.role, d.recipient, d.purpose, d.client_ref, d.consent_id, d.what)


def disclosure_hash(
    seq: int, at: str, actor_id: str, role: str, recipient: str, purpose: str, client_ref: str, consent_id: str, what: str,
    prev_hash: str,
) -> str:
    fields = [seq, at, actor_id, role, recipient, purpose, client_ref, consent_id, what]
    return hashlib.sha256((prev_hash + json.dumps(fields, separators=(",", ":"))).encode()).hexdigest()


@dataclass(frozen=True)
class Permitted:
    """A client who may be disclosed, and the consent that allows it."""

    client_ref: str
    consent: Consent


def load_journeys(app: CareContinuum, journey_ids: Iterable[UUID], chunk: int = 1000) -> Iterator[ClientJourney]:
    """The journeys as stored, read `chunk` at a time (one read of the store each, the aggregate cache left alone)."""
    wanted = list(journey_ids)
    for start in range(0, len(wanted), chunk):
        work = UnitOfWork(app, cached=False)
        part = wanted[start:start + chunk]
        work.read_ahead(part)
        for journey_id in part:
            journey = work.journey(journey_id)
            if journey is not None:
                yield journey


def load_histories(
    app: CareContinuum, journey_ids: Iterable[UUID], chunk: int = 1000,
) -> Iterator[tuple[ClientJourney, list[Any]]]:
    """Each journey with its recorded events, `chunk` journeys per read of the store (the FHIR export needs
    facts the journey does not keep, such as each analyte of a result)."""
    from eventsourcing.application import project_aggregate

    wanted = list(journey_ids)
    select_after = getattr(app.recorder, "select_events_after", None)
    for start in range(0, len(wanted), chunk):
        part = wanted[start:start + chunk]
        events: dict[UUID, list[Any]] = {journey_id: [] for journey_id in part}
        if select_after is None:  # the in-memory recorder
            for journey_id in part:
                events[journey_id] = list(app.events.get(journey_id))
        else:
            for stored in select_after([(journey_id, 0) for journey_id in part]):
                events[stored.originator_id].append(app.mapper.to_domain_event(stored))
        for journey_id in part:
            if events[journey_id]:
                journey: ClientJourney | None = project_aggregate(None, events[journey_id])
                if journey is not None:
                    yield journey, events[journey_id]


def consents_of(journeys: Iterable[ClientJourney]) -> dict[str, list[Consent]]:
    """Every client's consents as recorded."""
    return {journey.client_ref: journey.consents() for journey in journeys}


def eligible(
    consents: dict[str, list[Consent]], recipient: str, at: datetime, kinds: Sequence[str] = (ALL,),
    purpose: ConsentPurpose | None = None,
) -> list[Permitted]:
    """The clients with a consent in force at `at` covering `recipient`, `kinds` (and `purpose`), in the order given."""
    permitted = []
    for ref, theirs in consents.items():
        consent = covering(theirs, recipient, at, kinds, purpose)
        if consent is not None:
            permitted.append(Permitted(ref, consent))
    return permitted


class Disclosures:
    """The accounting of disclosures (§2.24, §2.25): append, verify, list."""

    def __init__(self, views: ViewStore) -> None:
        self.views = views
        self._ready = False

    def setup(self, cursor: Cursor) -> None:
        if not self._ready:
            self.views.lock_for_ddl(cursor)
            cursor.execute(DDL)
            for index in INDEXES:
                cursor.execute(index)
            self._ready = True

    def record(
        self, permitted: Sequence[Permitted], *, recipient: str, what: str, actor_id: str, role: str,
        at: datetime | None = None,
    ) -> list[Disclosure]:
        """One row per client disclosed, chained in one transaction, before the disclosure leaves."""
        return self.record_each([(item, what) for item in permitted], recipient=recipient, actor_id=actor_id, role=role, at=at)

    def record_each(
        self, entries: Sequence[tuple[Permitted, str]], *, recipient: str, actor_id: str, role: str, at: datetime | None = None,
    ) -> list[Disclosure]:
        """`record` with what was disclosed said per client (a recipient's feed: each client's events of a batch)."""
        rows: list[Disclosure] = []
        if not entries:
            return rows
        stamp = (at or datetime.now(tz=UTC)).astimezone(UTC).isoformat()
        with self.views.transaction() as cursor:
            self.setup(cursor)
            if self.views.dialect == "postgres":
                cursor.execute("LOCK TABLE disclosures IN EXCLUSIVE MODE")  # one writer at a time keeps the chain linear
            seq, prev = self.head(cursor)
            for item, what in entries:
                seq += 1
                purpose = item.consent.purpose_text if item.consent.purpose is ConsentPurpose.NAMED else None
                fields = (seq, stamp, actor_id, role, recipient, purpose or item.consent.purpose.value, item.client_ref,
                          item.consent.consent_id, what)
                rows.append(Disclosure(*fields, prev, disclosure_hash(*fields, prev)))
                prev = rows[-1].hash
            cursor.executemany(
                f"INSERT INTO disclosures ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                [(*astuple_fields(r), r.prev_hash, r.hash) for r in rows],
            )
        return rows

    @staticmethod
    def head(cursor: Cursor) -> tuple[int, str]:
        cursor.execute("SELECT seq, hash FROM disclosures ORDER BY seq DESC LIMIT 1")
        last = cursor.fetchone()
        return (int(last[0]), str(last[1])) if last else (0, GENESIS)

    def query(
        self, *, client_ref: str | None = None, clients: Iterable[str] | None = None, recipient: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> list[Disclosure]:
        """Disclosures in order; `clients` restricts to a set of clients (a clinician's site)."""
        where: list[str] = []
        params: list[str] = []
        for column, value in (("client_ref", client_ref), ("recipient", recipient)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("at >= ?")
            params.append(since.astimezone(UTC).isoformat())
        if until is not None:
            where.append("at < ?")
            params.append(until.astimezone(UTC).isoformat())
        sql = f"SELECT {COLUMNS} FROM disclosures"  # noqa: S608
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        with self.views.transaction() as cursor:
            self.setup(cursor)
            cursor.execute(sql, params)
            found = [Disclosure(int(row[0]), *row[1:]) for row in cursor.fetchall()]
        if clients is not None:
            allowed = set(clients)
            found = [d for d in found if d.client_ref in allowed]
        return found

    def verify(self) -> tuple[int, str | None]:
        """(rows checked, the first broken row's description or None): the chain recomputed."""
        prev = GENESIS
        rows = self.query()
        for row in rows:
            if row.prev_hash != prev or row.expected_hash() != row.hash:
                return row.seq, f"disclosure #{row.seq} does not match its hash chain"
            prev = row.hash
        return len(rows), None
