"""`continuum verify`: recompute the hash chains, streamed, and report the first broken link.

Memory is bounded by the number of journeys (one head each), not the number of events.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from uuid import UUID

from infra.access_log import AccessLog, AccessRecord
from infra.chain import GENESIS, ChainRow, link, row_hash, stream_chain
from infra.raw import stream_events
from infra.views import ViewStore

StoredRow = tuple[int, UUID, int, str, bytes]  # position, journey, version, topic, state


@dataclass(frozen=True)
class Break:
    """The first broken link: where it is and what is wrong."""

    what: str
    position: int | None = None
    journey_id: UUID | None = None
    version: int | None = None

    def __str__(self) -> str:
        where = []
        if self.position is not None:
            where.append(f"event #{self.position}")
        if self.journey_id is not None:
            where.append(f"journey {self.journey_id}" + (f" version {self.version}" if self.version is not None else ""))
        return f"{', '.join(where)}: {self.what}" if where else self.what


@dataclass
class ChainReport:
    checked: int = 0
    journeys: int = 0
    head: str = GENESIS  # the global chain head (the journey head when one journey was checked)
    broken: Break | None = None


def verify_events(rows: Iterable[StoredRow], chain: Iterable[ChainRow], *, one_journey: bool = False) -> ChainReport:  # noqa: PLR0911
    """Merge stored rows with their chain rows by position and recompute every link."""
    report = ChainReport()
    heads: dict[UUID, tuple[int, str]] = {}  # journey -> (version, link)
    global_head = GENESIS
    for stored, linked in _merge(rows, chain):
        if linked is None:
            assert stored is not None  # noqa: S101 - _merge yields at least one side
            position, journey, version = stored[0], stored[1], stored[2]
            report.broken = Break("stored event has no chain link: it was inserted outside the application", position, journey, version)
            return report
        if stored is None:
            report.broken = Break("stored event is missing: it was deleted", linked.position, linked.originator_id, linked.version)
            return report
        position, journey, version, topic, state = stored
        hashed = row_hash(position, journey, version, topic, state)
        if hashed != linked.row_hash or (journey, version) != (linked.originator_id, linked.version):
            report.broken = Break("stored content does not match its hash: it was edited, swapped or moved", position, journey, version)
            return report
        previous_version, previous_link = heads.get(journey, (0, GENESIS))
        if version != previous_version + 1:
            report.broken = Break(
                f"version {version} follows version {previous_version}: an event was deleted or reordered", position, journey, version,
            )
            return report
        if link(previous_link, hashed) != linked.journey_link:
            report.broken = Break("journey chain link does not match: the chain was altered", position, journey, version)
            return report
        if not one_journey:
            if link(global_head, hashed) != linked.global_link:
                report.broken = Break(
                    "global chain link does not match: a row before it was deleted, inserted or reordered", position, journey, version,
                )
                return report
            global_head = linked.global_link
        heads[journey] = (version, linked.journey_link)
        report.checked += 1
    report.journeys = len(heads)
    if one_journey:
        report.head = next(iter(heads.values()))[1] if heads else GENESIS
    else:
        report.head = global_head
    return report


def _merge(rows: Iterable[StoredRow], chain: Iterable[ChainRow]) -> Iterator[tuple[StoredRow | None, ChainRow | None]]:
    row_iter, chain_iter = iter(rows), iter(chain)
    stored, linked = next(row_iter, None), next(chain_iter, None)
    while stored is not None or linked is not None:
        if linked is None or (stored is not None and stored[0] < linked.position):
            yield stored, None
            stored = next(row_iter, None)
        elif stored is None or linked.position < stored[0]:
            yield None, linked
            linked = next(chain_iter, None)
        else:
            yield stored, linked
            stored, linked = next(row_iter, None), next(chain_iter, None)


@dataclass
class AccessReport:
    checked: int = 0
    head: str = GENESIS
    broken: Break | None = None


def verify_access(records: Iterable[AccessRecord]) -> AccessReport:
    report = AccessReport()
    expected_seq, previous = 1, GENESIS
    for record in records:
        problem = None
        if record.seq != expected_seq:
            problem = f"record {record.seq} follows {expected_seq - 1}: a record was deleted or inserted"
        elif record.prev_hash != previous:
            problem = f"record {record.seq} does not point at the record before it: the log was altered"
        elif record.expected_hash() != record.hash:
            problem = f"record {record.seq} does not match its hash: it was edited"
        if problem:
            report.broken = Break(f"access log: {problem}")
            return report
        previous, expected_seq = record.hash, expected_seq + 1
        report.checked += 1
    report.head = previous
    return report


@dataclass
class StoreReport:
    events: ChainReport
    access: AccessReport

    @property
    def broken(self) -> Break | None:
        return self.events.broken or self.access.broken


def verify_store(views: ViewStore, *, journey: UUID | None = None) -> StoreReport:
    """Both chains, read in one snapshot: events committed meanwhile are neither half-seen nor reported.

    Nothing is decoded and no projection is read, so a store is checked without its cipher key and
    however its rows were tampered with.
    """
    access_log = AccessLog(views)
    access_log.ensure()
    with views.snapshot() as snapshot:
        events = verify_events(
            stream_events(snapshot, views.database.kind, journey=journey), stream_chain(snapshot, journey=journey),
            one_journey=journey is not None,
        )
        access = verify_access(access_log.stream(snapshot))
    return StoreReport(events, access)
