"""Tamper evidence: every stored event row is hash-chained, in the transaction that stores it.

Each row's hash covers its notification id, journey id, version, topic and stored bytes (the
ciphertext when events are encrypted, so checking needs no key). Two chains link the row hashes:
one per journey (`journey_link`, from the journey's first event) and one over the whole
notification log (`global_link`). The links live in `event_chain`, written by the recorder
subclasses below inside the event insert's transaction (on PostgreSQL after the library's
EXCLUSIVE table lock, so the global order of links is the commit order; see infra/recorders.py). Editing, deleting,
inserting or reordering a stored row breaks a recomputed link; rewriting the whole chain changes
the head, which signed checkpoints keep outside the system (services/checkpoints.py).

With `CONTINUUM_CHAIN_KEY` the global links are HMAC-SHA256 under that key (`ChainScheme`), so nobody
without it can recompute the chain after editing a row; the journey links stay SHA-256, so an audit
package is still checked offline without any key (every row is under the keyed global chain as well).
`chain_meta` records the scheme (and the key's id) when a store is first written, and the last
position ever chained: a keyed store refuses unkeyed writes and the reverse, and a position at or
below the last one is never given again (the store is damaged: `continuum verify` says how).

Writing a row looks up the journey link before each journey's first new event through the events
table's own (id, version) key and the chain's integer key (`notification_id`): the chain has no index
keyed by journey, which cost one dirtied index page per event once the log outgrew memory. A store
made before that loses the index (`event_chain_journey`) the first time it is opened (`chain_ddl`).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import PersistenceError, StoredEvent

from infra.config import ConfigurationError

GENESIS = "0" * 64
CHAIN_TABLE = "event_chain"
META_TABLE = "chain_meta"
UNKEYED, KEYED = "sha256", "hmac-sha256"
RUN_VERIFY = "nothing was recorded: run `continuum verify`"


class StoreDamaged(PersistenceError):  # noqa: N818 - reads as what the user is told
    """The store lost rows the chain remembers: recording on would reuse a position or a version."""


class ChainKeyMismatch(ConfigurationError):  # noqa: N818 - reads as what the user is told
    """The configured chain key (or its absence) is not the one the store's chain was started with."""


def row_hash(position: int, originator_id: UUID, version: int, topic: str, state: bytes) -> str:
    head = f"{position}|{originator_id}|{version}|{topic}|".encode()
    return hashlib.sha256(head + bytes(state)).hexdigest()


def link(previous: str, hashed: str) -> str:
    return hashlib.sha256(f"{previous}{hashed}".encode()).hexdigest()


class ChainScheme:
    """How global links are made: SHA-256 without a key, HMAC-SHA256 under `CONTINUUM_CHAIN_KEY` with one."""

    def __init__(self, key: bytes | None = None) -> None:
        self._mac = hmac.new(key, digestmod=hashlib.sha256) if key else None
        self.name = KEYED if key else UNKEYED
        self.key_id = hmac.new(key, b"care-continuum chain key id", hashlib.sha256).hexdigest()[:16] if key else ""

    @property
    def keyed(self) -> bool:
        return self._mac is not None

    def global_link(self, previous: str, hashed: str) -> str:
        if self._mac is None:
            return link(previous, hashed)
        mac = self._mac.copy()
        mac.update(f"{previous}{hashed}".encode())
        return mac.hexdigest()

    def __repr__(self) -> str:
        return f"ChainScheme({self.name}{', key ' + self.key_id if self.key_id else ''})"


UNKEYED_SCHEME = ChainScheme()


@dataclass(frozen=True)
class ChainMeta:
    """What `chain_meta` says: the scheme and key id the chain was started with, and the last position
    chained. All None in a store not written since `chain_meta` exists (or that was never written)."""

    scheme: str | None = None
    key_id: str = ""
    last_position: int | None = None

    @classmethod
    def of(cls, rows: Iterable[tuple[Any, ...]]) -> ChainMeta:
        values = {str(name): str(value) for name, value in rows}
        last = values.get("last_position")
        return cls(values.get("scheme"), values.get("key_id", ""), int(last) if last is not None and last.isdigit() else None)


def read_meta(cursor: Any) -> ChainMeta:  # noqa: ANN401 - a DB-API cursor
    cursor.execute(f"SELECT name, value FROM {META_TABLE}")  # noqa: S608
    return ChainMeta.of(cursor.fetchall())


def check_scheme(meta: ChainMeta, scheme: ChainScheme, last_position: int) -> None:
    """A write with `scheme` into a chain started with `meta`'s: the same scheme and key, or refused."""
    started = meta.scheme or (UNKEYED if last_position else None)  # a chain from before chain_meta is unkeyed
    if started is None or (started == scheme.name and meta.key_id == scheme.key_id):
        return
    if started == KEYED and not scheme.keyed:
        msg = "this store's hash chain is keyed (HMAC-SHA256): set CONTINUUM_CHAIN_KEY to its key to record in it; nothing was recorded"
    elif started == UNKEYED:
        msg = ("this store's hash chain was started without CONTINUUM_CHAIN_KEY (SHA-256 links) and a key cannot be added later:"
               " unset CONTINUUM_CHAIN_KEY to record in it; nothing was recorded")
    elif started == KEYED:
        msg = (f"CONTINUUM_CHAIN_KEY is not the key this store's hash chain was started with (key id {meta.key_id},"
               f" given {scheme.key_id}); nothing was recorded")
    else:
        msg = f"store damaged: chain_meta names an unknown scheme {started!r}; {RUN_VERIFY}"
        raise StoreDamaged(msg)
    raise ChainKeyMismatch(msg)


@dataclass(frozen=True)
class ChainRow:
    position: int
    originator_id: UUID
    version: int
    row_hash: str
    journey_link: str
    global_link: str
    previous_global: str | None = None  # the global link of the row before it (read for one journey's check)


def chain_params(
    positions: Sequence[int], stored: Sequence[StoredEvent], global_head: str, journey_heads: dict[str, str],
    scheme: ChainScheme = UNKEYED_SCHEME,
) -> list[tuple[int, str, int, str, str, str]]:
    """The chain rows of events just stored at `positions`, as the insert's parameters: (position, journey id,
    version, row hash, journey link, global link). `journey_heads` (journey id as text -> its last link) is
    updated. The same hashes as `row_hash`, `link` and `scheme.global_link`, in one lean loop."""
    sha256 = hashlib.sha256
    mac = scheme._mac  # noqa: SLF001 - the scheme's own key schedule, copied per link
    rows = []
    for position, event in zip(positions, stored, strict=True):
        originator = event.originator_id
        journey = str(originator if type(originator) is UUID else UUID(str(originator)))
        version = event.originator_version
        hashing = sha256(f"{position}|{journey}|{version}|{event.topic}|".encode())
        hashing.update(event.state)
        hashed = hashing.hexdigest()
        journey_link = sha256((journey_heads.get(journey, GENESIS) + hashed).encode()).hexdigest()
        if mac is None:
            global_head = sha256((global_head + hashed).encode()).hexdigest()
        else:
            keyed = mac.copy()
            keyed.update((global_head + hashed).encode())
            global_head = keyed.hexdigest()
        journey_heads[journey] = journey_link
        rows.append((position, journey, version, hashed, journey_link, global_head))
    return rows


CHAIN_COLUMNS = "notification_id, originator_id, originator_version, row_hash, journey_link, global_link"
LINKS_PER_SELECT = 400  # (id, version) pairs per lookup: well under SQLite's limit on bound parameters


@dataclass(frozen=True)
class EventsTable:
    """The library's events table, as the chain reads it: its name, its position column, how an id is
    bound (SQLite stores the hex, PostgreSQL a uuid) and the driver's placeholder."""

    name: str
    position: str
    hex_ids: bool
    placeholder: str
    lateral: bool = False  # PostgreSQL: each journey's lookup a subquery of its own (see `previous_links`)

    def id(self, journey: str) -> str | UUID:
        return UUID(journey).hex if self.hex_ids else UUID(journey)


ChainWriter = Callable[[list[tuple[int, str, int, str, str, str]]], None]
CHAIN_TYPES = ("int8", "text", "int8", "text", "text", "text")  # CHAIN_COLUMNS' types, for a binary COPY


class KnownLinks:
    """The journey link after the last event of each journey this process has chained, with that event's version,
    kept once its transaction has committed: the next insert for the journey takes the link from here instead of
    looking it up (at 10^6 events on PostgreSQL the lookups cost 9.5 us an event). A link is used only for the very
    version it follows, and a stored, chained row never changes, so another writer's events or a refused insert never
    make it wrong. Links are staged per thread while its insert runs (`stage`), kept by `commit` after the commit,
    dropped by `discard`; at `size` journeys the whole set starts again."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._links: dict[str, tuple[int, str]] = {}
        self._staged = threading.local()

    def get(self, journey: str, version: int) -> str | None:
        """The link after `journey`'s event `version`, if this process chained that event and still holds it."""
        known = self._links.get(journey)
        return known[1] if known is not None and known[0] == version else None

    def stage(self, rows: Sequence[tuple[int, str, int, str, str, str]]) -> None:
        """The links after each journey's last event in `rows` (`chain_params`' rows), kept if their insert commits."""
        self._staged.links = {journey: (version, journey_link) for _, journey, version, _, journey_link, _ in rows}

    def commit(self) -> None:
        staged: dict[str, tuple[int, str]] | None = getattr(self._staged, "links", None)
        self._staged.links = None
        if staged:
            if len(self._links) + len(staged) > self.size:
                self._links = {}
            self._links.update(staged)

    def discard(self) -> None:
        self._staged.links = None

    @contextmanager
    def kept(self) -> Iterator[None]:
        """Around an insert and its commit: what it staged is kept if it returns, dropped if it raises."""
        self.discard()
        try:
            yield
        except BaseException:
            self.discard()
            raise
        self.commit()


def append_chain(
    cursor: Any, positions: Sequence[int], stored: Sequence[StoredEvent], scheme: ChainScheme, events: EventsTable,  # noqa: ANN401
    write_rows: ChainWriter | None = None, known: KnownLinks | None = None,
) -> None:
    """Chain the rows just stored at `positions`, in the transaction that stored them (the recorders call it
    after the insert, holding the write lock). Refused, and so rolled back with the insert: a scheme or key
    other than the chain's (ChainKeyMismatch), and a store that lost its last rows (StoreDamaged), where
    recording on would give a position again. `write_rows` writes the chain rows (PostgreSQL: by COPY);
    without it, one executemany. With `known`, the links this process committed are taken from it, and this insert's
    are staged in it (the recorder commits or discards them with the transaction)."""
    meta = read_meta(cursor)
    last_position, global_head = chain_head(cursor)
    check_scheme(meta, scheme, last_position)
    reached = max(last_position, meta.last_position or 0)
    if reached > last_position:
        msg = (f"store damaged: the event log reached position #{reached} but its hash chain ends at #{last_position}:"
               f" the last events were deleted; {RUN_VERIFY}")
        raise StoreDamaged(msg)
    if min(positions) <= reached:
        msg = (f"store damaged: position #{min(positions)} is already in the hash chain (which reaches #{reached}):"
               f" a stored event was deleted and its position would be given again; {RUN_VERIFY}")
        raise StoreDamaged(msg)
    rows = chain_params(positions, stored, global_head, previous_links(cursor, stored, events, known), scheme)
    if known is not None:
        known.stage(rows)
    placeholder = events.placeholder
    if write_rows is None:
        marks = ", ".join(placeholder for _ in range(6))
        cursor.executemany(f"INSERT INTO {CHAIN_TABLE} ({CHAIN_COLUMNS}) VALUES ({marks})", rows)  # noqa: S608
    else:
        write_rows(rows)
    written = [("last_position", str(max(positions)))]
    if meta.scheme is None:
        written += [("scheme", scheme.name), ("key_id", scheme.key_id)]
    cursor.executemany(
        f"INSERT INTO {META_TABLE} (name, value) VALUES ({placeholder}, {placeholder})"  # noqa: S608
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        written,
    )


def previous_links(cursor: Any, stored: Sequence[StoredEvent], events: EventsTable, known: KnownLinks | None = None) -> dict[str, str]:  # noqa: ANN401
    """The journey link before each journey's first event in this insert (GENESIS for a new journey), by
    journey id as text: from `known` where this process chained that very version, else the version before is
    found by the events table's (id, version) key, its chain row by the chain's integer key, for many journeys in
    one statement."""
    wanted: dict[str, int] = {}  # the version before each journey's first event in this insert
    for event in stored:
        originator = event.originator_id
        wanted.setdefault(str(originator if type(originator) is UUID else UUID(str(originator))), event.originator_version - 1)
    heads: dict[str, str] = {}
    if known is not None:
        for journey, version in wanted.items():
            link = known.get(journey, version)
            if link is not None:
                heads[journey] = link
    pairs = [(events.id(journey), version) for journey, version in wanted.items() if version > 0 and journey not in heads]
    for start in range(0, len(pairs), LINKS_PER_SELECT):  # one statement for many journeys, not one each
        chunk = pairs[start:start + LINKS_PER_SELECT]
        cursor.execute(previous_links_statement(events, len(chunk)), [value for pair in chunk for value in pair])
        for ref, journey_link in cursor.fetchall():
            heads[str(ref if isinstance(ref, UUID) else UUID(str(ref)))] = str(journey_link)
    return {journey: heads.get(journey, GENESIS) for journey in wanted}


def previous_links_statement(events: EventsTable, journeys: int) -> str:
    """`previous_links`' lookup of `journeys` (id, version) pairs. On PostgreSQL (`events.lateral`) each pair is a
    subquery of its own, so each is found by the two keys whatever the planner estimates: a join of the VALUES
    list can be planned over whole tables while they have no statistics (never analysed, grown from empty)."""
    mark = events.placeholder
    values = ", ".join(f"({mark}, {mark})" for _ in range(journeys))
    if events.lateral:
        return (
            f"SELECT w.column1, l.journey_link FROM (VALUES {values}) AS w CROSS JOIN LATERAL"  # noqa: S608
            f" (SELECT c.journey_link FROM {events.name} e JOIN {CHAIN_TABLE} c ON c.notification_id = e.{events.position}"
            " WHERE e.originator_id = w.column1 AND e.originator_version = w.column2 LIMIT 1) l"
        )
    return (
        f"SELECT e.originator_id, c.journey_link FROM (VALUES {values}) AS w"  # noqa: S608
        f" JOIN {events.name} e ON e.originator_id = w.column1 AND e.originator_version = w.column2"
        f" JOIN {CHAIN_TABLE} c ON c.notification_id = e.{events.position}"
    )


def chain_ddl(prefix: str = "", *, table: str = CHAIN_TABLE, meta: bool = True) -> tuple[str, ...]:
    """The chain's tables; `prefix` is a PostgreSQL schema with its dot (`"public".`). `table` and `meta`
    (whether `chain_meta` too) let the benchmarks make a table of the same DDL under another name."""
    return (
        (
            f"CREATE TABLE IF NOT EXISTS {prefix}{table} (notification_id BIGINT PRIMARY KEY, originator_id TEXT NOT NULL,"
            " originator_version BIGINT NOT NULL, row_hash TEXT NOT NULL, journey_link TEXT NOT NULL,"
            " global_link TEXT NOT NULL)"
        ),
        f"DROP INDEX IF EXISTS {prefix}{table}_journey",  # a store made before the chain was keyed by position alone
        *([f"CREATE TABLE IF NOT EXISTS {prefix}{META_TABLE} (name TEXT PRIMARY KEY, value TEXT NOT NULL)"] if meta else []),
    )


def global_links(cursor: Any, first: int, last: int) -> dict[int, str]:  # noqa: ANN401 - a views cursor
    """The global link after each event from position `first` to `last` (the relay publishes them)."""
    cursor.execute(
        f"SELECT notification_id, global_link FROM {CHAIN_TABLE} WHERE notification_id BETWEEN ? AND ?",  # noqa: S608
        (first, last),
    )
    return {int(nid): str(value) for nid, value in cursor.fetchall()}


class ChainedRecorder(Protocol):
    """A recorder that chains what it stores (infra/recorders.py)."""

    @property
    def chain_events(self) -> EventsTable: ...


PublishedRow = tuple[int, str, int, str, bytes, str | None]
"""A stored event as the relay's encoder process takes it: position, journey id as text (hex on SQLite), version,
topic, stored bytes (text, where a hand-written UPDATE stored text in SQLite), and the global link after it (None
where the chain has no row for it)."""


def published_rows(cursor: Any, events: EventsTable, after: int, limit: int) -> list[PublishedRow]:  # noqa: ANN401 - a views cursor
    """Up to `limit` stored rows after position `after`, in order, each with its global link: one statement, straight
    from the tables (no Notification or UUID objects), for the relay to hand to its encoder process. The link is a
    subquery by the chain's key for each row returned, whatever the planner knows of the tables."""
    position = f"e.{events.position}"
    cursor.execute(
        f"SELECT {position}, CAST(e.originator_id AS TEXT), e.originator_version, e.topic, e.state,"  # noqa: S608
        f" (SELECT c.global_link FROM {CHAIN_TABLE} c WHERE c.notification_id = {position})"
        f" FROM {events.name} e WHERE {position} > ? ORDER BY {position} LIMIT ?",
        (after, limit),
    )
    rows: list[PublishedRow] = cursor.fetchall()  # as the drivers give them: the encoder process reads each (`infra/kafka/encoder.py`)
    return rows


def journey_links(cursor: Any, journey_id: UUID) -> dict[int, ChainRow]:  # noqa: ANN401 - a views cursor
    """A journey's chain rows by position (an audit package carries them)."""
    cursor.execute(f"SELECT {CHAIN_COLUMNS} FROM {CHAIN_TABLE} WHERE originator_id = ?", (str(journey_id),))  # noqa: S608
    return {int(row[0]): ChainRow(int(row[0]), UUID(str(row[1])), int(row[2]), *row[3:]) for row in cursor.fetchall()}


def chain_head(cursor: Any) -> tuple[int, str]:  # noqa: ANN401 - a views cursor
    """The position and global link of the last event, or (0, GENESIS) for an empty store."""
    cursor.execute(f"SELECT notification_id, global_link FROM {CHAIN_TABLE} ORDER BY notification_id DESC LIMIT 1")  # noqa: S608
    row = cursor.fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


def stream_chain(source: Any, *, journey: UUID | None = None) -> Iterator[ChainRow]:  # noqa: ANN401
    """Chain rows in position order; one journey's carry the global link of the row before each, so its
    rows can be checked against the (keyed) global chain too."""
    if journey is None:
        rows = source.stream(f"SELECT {CHAIN_COLUMNS}, NULL FROM {CHAIN_TABLE} ORDER BY notification_id")  # noqa: S608
    else:
        columns = ", ".join(f"c.{column}" for column in CHAIN_COLUMNS.split(", "))
        rows = source.stream(
            f"SELECT {columns}, (SELECT p.global_link FROM {CHAIN_TABLE} p WHERE p.notification_id < c.notification_id"  # noqa: S608
            f" ORDER BY p.notification_id DESC LIMIT 1) FROM {CHAIN_TABLE} c WHERE c.originator_id = ? ORDER BY c.notification_id",
            (str(journey),),
        )
    for nid, originator, version, hashed, journey_link, global_link, before in rows:
        previous = None if journey is None else str(before or GENESIS)
        yield ChainRow(int(nid), UUID(str(originator)), int(version), hashed, journey_link, global_link, previous)


def read_meta_from(source: Any) -> ChainMeta:  # noqa: ANN401 - a snapshot or a view store
    return ChainMeta.of(source.stream(f"SELECT name, value FROM {META_TABLE}"))  # noqa: S608
