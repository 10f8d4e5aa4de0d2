"""What can be read from the projections, for every entry point (CLI, API, benchmarks): counts for
dashboards, one client's history, audit trail and flags for clinicians and auditors. Every read of a
client's record leaves an access record first. Replays and packages are in `services/audit.py`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from domain.errors import UnknownClient
from domain.journey import ClientJourney
from domain.replay import replay
from infra.access_log import AccessLog, AccessRecord
from projections.audit_trail import AuditEntry, first_corrected_journey, trail_query
from projections.census import (
    CensusClient,
    CensusLine,
    census_query,
    client_exists,
    client_ref,
    clients_at,
    journey_ids,
    level_rank,
)
from projections.census import home_site as census_home_site
from projections.flags import FlagRow, flags_query
from projections.step_history import Transition, history_query, matrix_query

if TYPE_CHECKING:
    from services.bootstrap import Continuum


@dataclass(frozen=True)
class Reader:
    actor_id: str
    role: str
    purpose: str | None = None


@dataclass(frozen=True)
class Census:
    at: datetime
    position: int
    lines: list[CensusLine]
    clients: list[CensusClient]

    @property
    def total(self) -> int:
        return sum(line.clients for line in self.lines)


class Reads:
    def __init__(self, wired: Continuum) -> None:
        self.wired = wired
        self.access = AccessLog(wired.views)

    # -- aggregates (projections) -----------------------------------------------------------

    def census(
        self, at: datetime | None = None, *, level: str | None = None, site: str | None = None, track: str | None = None,
        with_clients: bool = False,
    ) -> Census:
        moment = at or self.wired.service.clock()  # the clinical clock: days in level count to it
        with self.wired.views.transaction() as cursor:
            lines, clients = census_query(
                cursor, moment, now=at is None, level=level, site=site, track=track, with_clients=with_clients,
            )
            position = self.wired.runner.positions(cursor)["census"]
        return Census(moment, position, lines, clients)

    def census_as_recorded(self, at: datetime, recorded: datetime, *, level: str | None = None, site: str | None = None) -> Census:
        """The census of clinical time `at` as the record stood at `recorded`: replayed from the store."""
        counts: Counter[tuple[str, str, str]] = Counter()
        for journey_id in self._journey_ids():
            state = replay(list(self.wired.app.events.get(journey_id)), as_of=at, as_recorded=recorded).state
            if state.level is None or (level and state.level != level) or (site and state.site != site):
                continue
            counts[(state.level, state.site or "", state.track or "")] += 1
        lines = [CensusLine(lvl, st, trk, n) for (lvl, st, trk), n in counts.items()]
        lines.sort(key=lambda line: (-level_rank(line.level), line.site, line.track))
        return Census(at, self.wired.runner.head(), lines, [])

    def _journey_ids(self) -> list[UUID]:
        with self.wired.views.transaction() as cursor:
            return journey_ids(cursor)

    def matrix(self, since: datetime | None, until: datetime | None) -> dict[tuple[str, str], int]:
        with self.wired.views.transaction() as cursor:
            return matrix_query(cursor, since, until)

    # -- one client's record (each read is recorded) ----------------------------------------

    def home_site(self, client_ref: str) -> str | None:
        """The site a client is registered at, or None for a client the census does not know (yet)."""
        with self.wired.views.transaction() as cursor:
            return census_home_site(cursor, ClientJourney.create_id(client_ref))

    def clients_at(self, site: str) -> set[str]:
        with self.wired.views.transaction() as cursor:
            return set(clients_at(cursor, site))

    def example_client(self) -> str | None:
        """A client whose record shows a correction if any has one, else the first client (the demo shows it)."""
        with self.wired.views.transaction() as cursor:
            journey_id = first_corrected_journey(cursor) or next(iter(journey_ids(cursor)), None)
            return client_ref(cursor, journey_id) if journey_id else None

    def journey_id(self, client_ref: str) -> UUID:
        journey_id = ClientJourney.create_id(client_ref)
        with self.wired.views.transaction() as cursor:
            if not client_exists(cursor, journey_id):
                raise UnknownClient(client_ref)
        return journey_id

    def record_listing(self, reader: Reader, client_refs: list[str], what: str) -> list[AccessRecord]:
        """A list of clients (`census --clients`, `flags`) was shown: one access record per client listed,
        like any read of a client's record, in one transaction of the hash-chained access log."""
        return self.access.record_many(
            actor_id=reader.actor_id, role=reader.role, client_refs=client_refs, what=what, purpose=reader.purpose,
            at=datetime.now(tz=UTC),
        )

    def record_read(self, reader: Reader, client_ref: str, what: str) -> AccessRecord:
        return self.access.record(
            actor_id=reader.actor_id, role=reader.role, client_ref=client_ref, what=what, purpose=reader.purpose,
            at=datetime.now(tz=UTC),
        )

    def history(self, client_ref: str, reader: Reader) -> list[Transition]:
        journey_id = self.journey_id(client_ref)
        self.record_read(reader, client_ref, "history")
        with self.wired.views.transaction() as cursor:
            return history_query(cursor, journey_id, self.wired.seal)

    def audit(self, client_ref: str, reader: Reader, *, after: int = 0, limit: int | None = None) -> list[AuditEntry]:
        journey_id = self.journey_id(client_ref)
        self.record_read(reader, client_ref, f"audit trail after {after}" + (f" limit {limit}" if limit else ""))
        with self.wired.views.transaction() as cursor:
            return trail_query(cursor, journey_id, after=after, limit=limit, seal=self.wired.seal)

    def flags(
        self, reader: Reader, *, client_ref: str | None = None, site: str | None = None, since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[FlagRow]:
        """Flagged admissions, steps and changes of track; each client listed leaves an access record."""
        journey_id = self.journey_id(client_ref) if client_ref else None
        with self.wired.views.transaction() as cursor:
            rows = flags_query(cursor, journey_id=journey_id, site=site, since=since, until=until)
        self.record_listing(reader, sorted({row.client_ref for row in rows}), "flags")
        return rows
