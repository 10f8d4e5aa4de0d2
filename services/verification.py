"""`continuum verify`: recompute the hash chains, streamed, and report the first broken link.

Memory is bounded by the number of journeys (one head each), not the number of events.

A keyed chain (`CONTINUUM_CHAIN_KEY`, see infra/chain.py) is recomputed with its key; the key must be
the one `chain_meta` names. The chain must reach the last position `chain_meta` recorded: a cut-off
tail is reported. The global links and access-log hashes at the positions and sequence numbers of
signed checkpoints are collected on the way (`links_at`, `hashes_at`; services/checkpoints.py).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from infra.access_log import AccessLog, AccessRecord
from infra.chain import (
    CHAIN_TABLE,
    GENESIS,
    KEYED,
    UNKEYED,
    UNKEYED_SCHEME,
    ChainMeta,
    ChainRow,
    ChainScheme,
    link,
    read_meta_from,
    row_hash,
    stream_chain,
)
from infra.config import ConfigurationError
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
    last_position: int = 0  # of the last event checked
    links_at: dict[int, str] = field(default_factory=dict)  # the global link at each watched position


def verify_events(  # noqa: PLR0911 - one check after another, in order
    rows: Iterable[StoredRow], chain: Iterable[ChainRow], *, one_journey: bool = False,
    scheme: ChainScheme = UNKEYED_SCHEME, watch: Collection[int] = (),
) -> ChainReport:
    """Merge stored rows with their chain rows by position and recompute every link (the global links with
    `scheme`; for one journey, each row's global link from the link of the row before it)."""
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
        before = linked.previous_global if one_journey else global_head
        if before is not None and scheme.global_link(before, hashed) != linked.global_link:
            report.broken = Break(
                "global chain link does not match: a row before it was deleted, inserted or reordered"
                + (", or the row and its links were recomputed without the chain key" if scheme.keyed else ""),
                position, journey, version,
            )
            return report
        global_head = linked.global_link
        if position in watch:
            report.links_at[position] = linked.global_link
        heads[journey] = (version, linked.journey_link)
        report.checked += 1
        report.last_position = position
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
    hashes_at: dict[int, str] = field(default_factory=dict)  # the hash of each watched record


def verify_access(records: Iterable[AccessRecord], *, watch: Collection[int] = ()) -> AccessReport:
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
        if record.seq in watch:
            report.hashes_at[record.seq] = record.hash
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


def verify_store(
    views: ViewStore, *, journey: UUID | None = None, scheme: ChainScheme = UNKEYED_SCHEME,
    positions: Collection[int] = (), seqs: Collection[int] = (),
) -> StoreReport:
    """Both chains, read in one snapshot: events committed meanwhile are neither half-seen nor reported.

    Nothing is decoded and no projection is read, so a store is checked without its cipher key and
    however its rows were tampered with. A keyed chain needs its key (`scheme`): ConfigurationError without.
    `positions` and `seqs` are watched: the global links and access hashes there come back in the report.
    """
    access_log = AccessLog(views)
    access_log.ensure()
    with views.snapshot() as snapshot:
        meta = read_meta_from(snapshot)
        last = _last_position(snapshot)
        problem = scheme_problem(meta, scheme, last)
        if problem is not None:
            events = ChainReport(broken=Break(problem))
        else:
            events = verify_events(
                stream_events(snapshot, views.database.kind, journey=journey), stream_chain(snapshot, journey=journey),
                one_journey=journey is not None, scheme=scheme, watch=positions,
            )
            if events.broken is None and journey is None:
                events.broken = _tail_problem(meta, events.last_position)
        access = verify_access(access_log.stream(snapshot), watch=seqs)
    return StoreReport(events, access)


def scheme_problem(meta: ChainMeta, scheme: ChainScheme, last_position: int) -> str | None:
    """Why the chain cannot be checked with `scheme` (None if it can); ConfigurationError for a keyed chain and no key."""
    started = meta.scheme or (UNKEYED if last_position else None)
    if started is None or (started == scheme.name and meta.key_id == scheme.key_id):
        return None
    if started == KEYED and not scheme.keyed:
        msg = "this store's hash chain is keyed (HMAC-SHA256): set CONTINUUM_CHAIN_KEY to its key to verify it"
        raise ConfigurationError(msg)
    if started == KEYED:
        return (f"CONTINUUM_CHAIN_KEY is not the key this store's hash chain was started with (key id {meta.key_id},"
                f" given {scheme.key_id}): the wrong key, or chain_meta was altered")
    if started == UNKEYED:
        return ("the hash chain is not keyed although CONTINUUM_CHAIN_KEY is set: the store was started without the key,"
                " or its chain was rewritten (and chain_meta altered) by someone without it")
    return f"chain_meta names an unknown scheme {started!r}: it was altered"


def _tail_problem(meta: ChainMeta, last_position: int) -> Break | None:
    if meta.last_position is None or meta.last_position == last_position:
        return None
    if meta.last_position > last_position:
        return Break(f"the event log reached position #{meta.last_position} but its chain ends at #{last_position}:"
                     " the last events were deleted (truncated)")
    return Break(f"chain_meta says the log reached position #{meta.last_position} but its chain goes on to #{last_position}:"
                 " chain_meta was altered")


def _last_position(snapshot: Any) -> int:  # noqa: ANN401 - a Snapshot
    for (position,) in snapshot.stream(f"SELECT notification_id FROM {CHAIN_TABLE} ORDER BY notification_id DESC LIMIT 1"):  # noqa: S608
        return int(position)
    return 0
