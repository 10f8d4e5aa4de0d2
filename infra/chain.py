"""Tamper evidence: every stored event row is hash-chained, in the transaction that stores it.

Each row's hash covers its notification id, journey id, version, topic and stored bytes (the
ciphertext when events are encrypted, so checking needs no key). Two chains link the row hashes:
one per journey (`journey_link`, from the journey's first event) and one over the whole
notification log (`global_link`). The links live in `event_chain`, written by the recorder
subclasses below inside the event insert's transaction (on PostgreSQL after the library's
EXCLUSIVE table lock, so the global order of links is the commit order; see infra/recorders.py). Editing, deleting,
inserting or reordering a stored row breaks a recomputed link; rewriting the whole chain changes
the head, which auditors keep outside the system.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

GENESIS = "0" * 64
CHAIN_TABLE = "event_chain"


def row_hash(position: int, originator_id: UUID, version: int, topic: str, state: bytes) -> str:
    head = f"{position}|{originator_id}|{version}|{topic}|".encode()
    return hashlib.sha256(head + bytes(state)).hexdigest()


def link(previous: str, hashed: str) -> str:
    return hashlib.sha256(f"{previous}{hashed}".encode()).hexdigest()


@dataclass(frozen=True)
class ChainRow:
    position: int
    originator_id: UUID
    version: int
    row_hash: str
    journey_link: str
    global_link: str


def chain_rows(
    positions: Sequence[int], stored: Sequence[StoredEvent], global_head: str, journey_heads: dict[UUID, str],
) -> list[ChainRow]:
    rows = []
    for position, event in zip(positions, stored, strict=True):
        originator = UUID(str(event.originator_id))
        hashed = row_hash(position, originator, event.originator_version, event.topic, event.state)
        journey_link = link(journey_heads.get(originator, GENESIS), hashed)
        global_head = link(global_head, hashed)
        journey_heads[originator] = journey_link
        rows.append(ChainRow(position, originator, event.originator_version, hashed, journey_link, global_head))
    return rows


CHAIN_COLUMNS = "notification_id, originator_id, originator_version, row_hash, journey_link, global_link"
LINKS_PER_SELECT = 400  # (id, version) pairs per lookup: well under SQLite's limit on bound parameters


def previous_links(cursor: Any, stored: Sequence[StoredEvent], placeholder: str) -> tuple[str, dict[UUID, str]]:  # noqa: ANN401
    cursor.execute(f"SELECT global_link FROM {CHAIN_TABLE} ORDER BY notification_id DESC LIMIT 1")  # noqa: S608
    row = cursor.fetchone()
    global_head = row[0] if row else GENESIS
    heads: dict[UUID, str] = {}
    wanted: dict[UUID, int] = {}  # the version before each journey's first event in this insert
    for event in stored:
        originator = UUID(str(event.originator_id))
        if originator in heads or originator in wanted:
            continue
        if event.originator_version == 1:
            heads[originator] = GENESIS
        else:
            wanted[originator] = event.originator_version - 1
    pairs = [(str(originator), version) for originator, version in wanted.items()]
    for start in range(0, len(pairs), LINKS_PER_SELECT):  # one statement for many journeys, not one each
        chunk = pairs[start:start + LINKS_PER_SELECT]
        values = ", ".join(f"({placeholder}, {placeholder})" for _ in chunk)
        cursor.execute(  # a join on VALUES, which both SQLite and PostgreSQL answer from the (id, version) index
            f"SELECT c.originator_id, c.originator_version, c.journey_link FROM (VALUES {values}) AS w"  # noqa: S608
            f" JOIN {CHAIN_TABLE} c ON c.originator_id = w.column1 AND c.originator_version = w.column2",
            [value for pair in chunk for value in pair],
        )
        found = {(str(ref), int(number)): journey_link for ref, number, journey_link in cursor.fetchall()}
        for ref, number in chunk:
            heads[UUID(ref)] = found.get((ref, number), GENESIS)
    return global_head, heads


def chain_params(rows: Iterable[ChainRow]) -> list[tuple[Any, ...]]:
    return [(r.position, str(r.originator_id), r.version, r.row_hash, r.journey_link, r.global_link) for r in rows]


def chain_ddl(table: str = CHAIN_TABLE) -> tuple[str, str]:
    return (
        (
            f"CREATE TABLE IF NOT EXISTS {table} (notification_id BIGINT PRIMARY KEY, originator_id TEXT NOT NULL,"
            " originator_version BIGINT NOT NULL, row_hash TEXT NOT NULL, journey_link TEXT NOT NULL,"
            " global_link TEXT NOT NULL)"
        ),
        f"CREATE UNIQUE INDEX IF NOT EXISTS {CHAIN_TABLE}_journey ON {table} (originator_id, originator_version)",
    )


def global_links(cursor: Any, first: int, last: int) -> dict[int, str]:  # noqa: ANN401 - a views cursor
    """The global link after each event from position `first` to `last` (the relay publishes them)."""
    cursor.execute(
        f"SELECT notification_id, global_link FROM {CHAIN_TABLE} WHERE notification_id BETWEEN ? AND ?",  # noqa: S608
        (first, last),
    )
    return {int(nid): str(value) for nid, value in cursor.fetchall()}


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
    sql = f"SELECT {CHAIN_COLUMNS} FROM {CHAIN_TABLE}"  # noqa: S608
    params: tuple[Any, ...] = ()
    if journey is not None:
        sql += " WHERE originator_id = ?"
        params = (str(journey),)
    for nid, originator, version, hashed, journey_link, global_link in source.stream(sql + " ORDER BY notification_id", params):
        yield ChainRow(int(nid), UUID(str(originator)), int(version), hashed, journey_link, global_link)
