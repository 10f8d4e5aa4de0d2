"""Tamper evidence: every stored event row is hash-chained, in the transaction that stores it.

Each row's hash covers its notification id, journey id, version, topic and stored bytes (the
ciphertext when events are encrypted, so checking needs no key). Two chains link the row hashes:
one per journey (`journey_link`, from the journey's first event) and one over the whole
notification log (`global_link`). The links live in `event_chain`, written by the recorder
subclasses below inside the event insert's transaction (on PostgreSQL after the library's
EXCLUSIVE table lock, so the global order of links is the commit order). Editing, deleting,
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
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

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


def _previous_links(cursor: Any, stored: Sequence[StoredEvent], placeholder: str) -> tuple[str, dict[UUID, str]]:  # noqa: ANN401
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


def _chain_params(rows: Iterable[ChainRow]) -> list[tuple[Any, ...]]:
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


def _after_values(pairs: Sequence[tuple[UUID, int]], placeholder: str) -> str:
    return ", ".join(f"({placeholder}, {placeholder})" for _ in pairs)


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    def select_events_after(self, pairs: Sequence[tuple[UUID, int]]) -> list[StoredEvent]:
        """Every stored event of many journeys after a version each, in one statement per 400 journeys
        (the library reads one journey per statement)."""
        found: list[StoredEvent] = []
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(pairs), LINKS_PER_SELECT):
                chunk = pairs[start:start + LINKS_PER_SELECT]
                c.execute(
                    f"SELECT e.originator_id, e.originator_version, e.topic, e.state FROM (VALUES {_after_values(chunk, '?')}) AS w"  # noqa: S608
                    f" JOIN {self.events_table_name} e ON e.originator_id = w.column1 AND e.originator_version > w.column2"
                    " ORDER BY e.originator_id, e.originator_version",
                    [value for journey, version in chunk for value in (journey.hex, version)],
                )
                found.extend(StoredEvent(UUID(row[0]), int(row[1]), str(row[2]), bytes(row[3])) for row in c.fetchall())
        return found

    def select_positions(self, journey_id: UUID, versions: Sequence[int]) -> dict[int, int]:
        """The notification ids (log positions) of a journey's versions, from the chain written with them."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT originator_version, notification_id FROM {CHAIN_TABLE} WHERE originator_id = ?"  # noqa: S608
                " AND originator_version BETWEEN ? AND ?",
                (str(journey_id), min(versions, default=0), max(versions, default=0)),
            )
            return {int(version): int(position) for version, position in c.fetchall()}

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *chain_ddl()]

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:  # noqa: ANN401
        positions = self._insert_rows(c, stored_events)
        if positions:
            self._append_chain(c, positions, stored_events)
        return positions

    def _insert_rows(self, c: Any, stored_events: Sequence[StoredEvent]) -> list[int]:  # noqa: ANN401
        """The library's insert, as one executemany instead of one execute per row (to read each
        lastrowid): the rows get consecutive rowids in this write transaction (the next rowid is
        one more than the largest), so the last one and the count give them all."""
        if not stored_events:
            return []
        c.executemany(
            self.insert_events_statement,
            [
                (s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id, s.originator_version, s.topic, s.state)
                for s in stored_events
            ],
        )
        c.execute("SELECT last_insert_rowid()")
        last = int(c.fetchone()[0])
        return list(range(last - len(stored_events) + 1, last + 1))

    def _append_chain(self, c: Any, positions: Sequence[int], stored_events: Sequence[StoredEvent]) -> None:  # noqa: ANN401
        global_head, heads = _previous_links(c, stored_events, "?")
        c.executemany(
            f"INSERT INTO {CHAIN_TABLE} ({CHAIN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
            _chain_params(chain_rows(positions, stored_events, global_head, heads)),
        )


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    def select_events_after(self, pairs: Sequence[tuple[UUID, int]]) -> list[StoredEvent]:
        """As on SQLite: many journeys' new events in one statement per 400 journeys."""
        found: list[StoredEvent] = []
        table = f'"{self.datastore.schema}".{self.events_table_name}'
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            for start in range(0, len(pairs), LINKS_PER_SELECT):
                chunk = pairs[start:start + LINKS_PER_SELECT]
                values = ", ".join("(%s::uuid, %s::bigint)" for _ in chunk)
                curs.execute(
                    f"SELECT e.originator_id, e.originator_version, e.topic, e.state FROM (VALUES {values}) AS w (id, version)"  # noqa: S608
                    f" JOIN {table} e ON e.originator_id = w.id AND e.originator_version > w.version"
                    " ORDER BY e.originator_id, e.originator_version",
                    [value for journey, version in chunk for value in (journey, version)],
                )
                found.extend(
                    StoredEvent(row["originator_id"], int(row["originator_version"]), row["topic"], bytes(row["state"]))
                    for row in curs.fetchall()
                )
        return found

    def select_positions(self, journey_id: UUID, versions: Sequence[int]) -> dict[int, int]:
        """As on SQLite: the log positions of a journey's versions."""
        table = f'"{self.datastore.schema}".{CHAIN_TABLE}'
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                f"SELECT originator_version, notification_id FROM {table} WHERE originator_id = %s"  # noqa: S608
                " AND originator_version BETWEEN %s AND %s",
                (str(journey_id), min(versions, default=0), max(versions, default=0)),
            )
            return {int(row["originator_version"]): int(row["notification_id"]) for row in curs.fetchall()}

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(*args, **kwargs)
        table = f'"{self.datastore.schema}".{CHAIN_TABLE}'
        for statement in chain_ddl(table):
            self.sql_create_statements.append(SQL(statement).format())  # type: ignore[arg-type,unused-ignore]

    def _fetch_ids_after_insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:  # noqa: ANN401
        positions = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if positions:
            self._append_chain(curs, positions, stored_events)
        return positions

    def _append_chain(self, curs: Any, positions: Sequence[int], stored_events: Sequence[StoredEvent]) -> None:  # noqa: ANN401
        curs.execute(SQL("SET LOCAL search_path TO {0}").format(Identifier(self.datastore.schema)))
        global_head, heads = _previous_links(_Positional(curs), stored_events, "%s")
        curs.executemany(
            f"INSERT INTO {CHAIN_TABLE} ({CHAIN_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",  # noqa: S608
            _chain_params(chain_rows(positions, stored_events, global_head, heads)),
        )


class _Positional:
    """The library's PostgreSQL cursor returns dict rows; the chain code reads columns by position."""

    def __init__(self, cursor: Any) -> None:  # noqa: ANN401
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(sql, params)

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._cursor.fetchone()
        return None if row is None else tuple(row.values())

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(row.values()) for row in self._cursor.fetchall()]


def recorder_topic(kind: str) -> str:
    return f"infra.chain:{'ChainedSQLiteRecorder' if kind == 'sqlite' else 'ChainedPostgresRecorder'}"


def events_table(kind: str) -> str:
    return "stored_events" if kind == "sqlite" else "carecontinuum_events"


def stream_events(source: Any, kind: str, *, journey: UUID | None = None) -> Iterator[tuple[int, UUID, int, str, bytes]]:  # noqa: ANN401
    """Stored rows in notification order, straight from the table (no library decoding)."""
    position = "rowid" if kind == "sqlite" else "notification_id"
    sql = f"SELECT {position}, originator_id, originator_version, topic, state FROM {events_table(kind)}"  # noqa: S608
    params: tuple[Any, ...] = ()
    if journey is not None:
        sql += " WHERE originator_id = ?"
        params = (journey.hex if kind == "sqlite" else str(journey),)
    for nid, originator, version, topic, state in source.stream(sql + f" ORDER BY {position}", params):
        yield int(nid), UUID(str(originator)), int(version), str(topic), _as_bytes(state)


def _as_bytes(state: Any) -> bytes:  # noqa: ANN401
    """SQLite gives back text where a hand-written UPDATE stored text in the state column."""
    return state.encode() if isinstance(state, str) else bytes(state)


def stream_chain(source: Any, *, journey: UUID | None = None) -> Iterator[ChainRow]:  # noqa: ANN401
    sql = f"SELECT {CHAIN_COLUMNS} FROM {CHAIN_TABLE}"  # noqa: S608
    params: tuple[Any, ...] = ()
    if journey is not None:
        sql += " WHERE originator_id = ?"
        params = (str(journey),)
    for nid, originator, version, hashed, journey_link, global_link in source.stream(sql + " ORDER BY notification_id", params):
        yield ChainRow(int(nid), UUID(str(originator)), int(version), hashed, journey_link, global_link)
