"""The library's application recorders, extended: the hash chain of `infra/chain.py` is written in the
events' own insert transaction, and a unit of work reads many journeys' new events in one statement
(`select_events_after`) and the log positions of a journey's versions (`select_positions`).

A failure while chaining (a refused key, a damaged store, a bug) rolls the insert back: no event is
ever stored without its chain row. `bootstrap` gives the recorder the chain's scheme (`chain_scheme`,
keyed when `CONTINUUM_CHAIN_KEY` is set) right after the application is built."""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, Notification, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteConnection, SQLiteConnectionPool
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

from infra.chain import (
    CHAIN_COLUMNS,
    CHAIN_TABLE,
    CHAIN_TYPES,
    LINKS_PER_SELECT,
    UNKEYED_SCHEME,
    ChainScheme,
    EventsTable,
    KnownLinks,
    append_chain,
    chain_ddl,
)
from infra.config import SQLITE_PRAGMAS

NO_JIT = "SET LOCAL jit = off"
"""For the transaction's own lookups by key: a table never analysed gets row estimates that grow with it, and
past `jit_above_cost` each statement of a few hundred index probes would be compiled first (tens of ms)."""


def _after_values(pairs: Sequence[tuple[UUID, int]], placeholder: str) -> str:
    return ", ".join(f"({placeholder}, {placeholder})" for _ in pairs)


_new = object.__new__


def notification(position: int, originator_id: UUID | str, originator_version: int, topic: str, state: bytes) -> Notification:
    """`Notification(id=position, ...)`, the same object (its fields in the same order), made without the frozen
    dataclass's `__init__`, which sets each field through `object.__setattr__`: a rebuild makes one per event."""
    made = _new(Notification)
    fields = made.__dict__
    fields["originator_id"] = originator_id
    fields["originator_version"] = originator_version
    fields["topic"] = topic
    fields["state"] = state
    fields["id"] = position
    return made


def _notifications_where(start: int | None, stop: int | None, topics: Sequence[str], *, inclusive_of_start: bool,
                         position: str, placeholder: str) -> tuple[str, list[Any]]:
    """The library's conditions of `select_notifications` (start, stop, topics), as one WHERE clause and its values."""
    conditions: list[str] = []
    params: list[Any] = []
    if start is not None:
        conditions.append(f"{position} {'>=' if inclusive_of_start else '>'} {placeholder}")
        params.append(start)
    if stop is not None:
        conditions.append(f"{position} <= {placeholder}")
        params.append(stop)
    if topics:
        if placeholder == "?":
            conditions.append(f"topic IN ({', '.join('?' * len(topics))})")
            params += list(topics)
        else:
            conditions.append(f"topic = ANY({placeholder})")
            params.append(list(topics))
    return (f" WHERE {' AND '.join(conditions)}" if conditions else ""), params


class _TunedSQLitePool(SQLiteConnectionPool):
    """The library's pool, each new connection given our page cache (`SQLITE_PRAGMAS`)."""

    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        for pragma in SQLITE_PRAGMAS:
            connection._sqlite_conn.execute(pragma)  # noqa: SLF001 - the library keeps the driver connection private
        return connection


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    chain_scheme: ChainScheme = UNKEYED_SCHEME  # bootstrap sets the configured one on the instance

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(*args, **kwargs)
        self.known_links = KnownLinks()
        pool = self.datastore.pool
        if type(pool) is SQLiteConnectionPool:  # the library builds its own pool: ours only adds connection settings
            pool.__class__ = _TunedSQLitePool

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:  # noqa: ANN401
        """The library's insert; the chain links it staged kept once it has committed (`KnownLinks`)."""
        with self.known_links.kept():
            return super().insert_events(stored_events, **kwargs)

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

    def select_notifications(self, start: int | None, limit: int, stop: int | None = None, topics: Sequence[str] = (), *,
                             inclusive_of_start: bool = True) -> Sequence[Notification]:
        """The library's notifications, by its conditions, each made by `notification` (a rebuild reads every event)."""
        where, params = _notifications_where(start, stop, topics, inclusive_of_start=inclusive_of_start, position="rowid",
                                             placeholder="?")
        convert = self.convert_originator_id
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT rowid, originator_id, originator_version, topic, state FROM {self.events_table_name}{where}"  # noqa: S608
                " ORDER BY rowid LIMIT ?",
                [*params, limit],
            )
            return [
                notification(position, convert(originator_id), version, topic, state)
                for position, originator_id, version, topic, state in c.fetchall()
            ]

    def topic_counts(self, stop: int) -> dict[str, int]:
        """How many events of each topic the log holds up to position `stop` (one scan: a rebuild's shares)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT topic, count(*) FROM {self.events_table_name} WHERE rowid <= ? GROUP BY topic", (stop,))  # noqa: S608
            return {str(topic): int(count) for topic, count in c.fetchall()}

    def select_positions(self, journey_id: UUID, versions: Sequence[int]) -> dict[int, int]:
        """The notification ids (log positions) of a journey's versions, by the events table's (id, version) key."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT originator_version, rowid FROM {self.events_table_name} WHERE originator_id = ?"  # noqa: S608
                " AND originator_version BETWEEN ? AND ?",
                (journey_id.hex, min(versions, default=0), max(versions, default=0)),
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
        """In the insert's write transaction; an exception rolls the insert back (the library's transaction)."""
        append_chain(c, positions, stored_events, self.chain_scheme, self.chain_events, known=self.known_links)

    @property
    def chain_events(self) -> EventsTable:
        """The events table as the chain (and the relay's `published_rows`) reads it."""
        return EventsTable(self.events_table_name, "rowid", hex_ids=True, placeholder="?")


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    chain_scheme: ChainScheme = UNKEYED_SCHEME  # bootstrap sets the configured one on the instance

    def select_events_after(self, pairs: Sequence[tuple[UUID, int]]) -> list[StoredEvent]:
        """As on SQLite: many journeys' new events in one statement per 400 journeys."""
        found: list[StoredEvent] = []
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            curs.execute(NO_JIT)
            for start in range(0, len(pairs), LINKS_PER_SELECT):
                chunk = pairs[start:start + LINKS_PER_SELECT]
                curs.execute(self.select_after_statement(len(chunk)), [value for journey, version in chunk for value in (journey, version)])
                found.extend(
                    StoredEvent(row["originator_id"], int(row["originator_version"]), row["topic"], bytes(row["state"]))
                    for row in curs.fetchall()
                )
        return found

    def select_after_statement(self, journeys: int) -> str:
        """`select_events_after`'s statement for `journeys` (id, version) pairs. Each journey is read through the
        (id, version) key whatever the planner estimates: a plain join of the VALUES list was planned as a hash
        join over the whole events table while the table had no statistics (never analysed: autovacuum off, or
        not yet run on a table that grew from empty), so each unit of work's read grew with the log. OFFSET 0
        keeps the subquery one per journey (it is not flattened into a join)."""
        values = ", ".join("(%s::uuid, %s::bigint)" for _ in range(journeys))
        return (
            f"SELECT e.originator_id, e.originator_version, e.topic, e.state FROM (VALUES {values}) AS w (id, version)"  # noqa: S608
            f' CROSS JOIN LATERAL (SELECT * FROM "{self.datastore.schema}".{self.events_table_name} j'
            " WHERE j.originator_id = w.id AND j.originator_version > w.version ORDER BY j.originator_version OFFSET 0) e"
            " ORDER BY e.originator_id, e.originator_version"
        )

    def select_notifications(self, start: int | None, limit: int, stop: int | None = None, topics: Sequence[str] = (), *,
                             inclusive_of_start: bool = True) -> Sequence[Notification]:
        """As on SQLite: the library's notifications, each made by `notification` from the row as it is read."""
        where, params = _notifications_where(start, stop, topics, inclusive_of_start=inclusive_of_start,
                                             position="notification_id", placeholder="%s")
        statement = (
            "SELECT notification_id, originator_id, originator_version, topic, state"  # noqa: S608
            f" FROM {self._events_name}{where} ORDER BY notification_id LIMIT %s"
        )
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=_notification_rows) as curs:
            curs.execute(statement, [*params, limit], prepare=True)
            return curs.fetchall()

    def topic_counts(self, stop: int) -> dict[str, int]:
        """As on SQLite: events of each topic up to position `stop`."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(f"SELECT topic, count(*) AS n FROM {self._events_name} WHERE notification_id <= %s GROUP BY topic",  # noqa: S608
                         (stop,))
            return {str(row["topic"]): int(row["n"]) for row in curs.fetchall()}

    def select_positions(self, journey_id: UUID, versions: Sequence[int]) -> dict[int, int]:
        """As on SQLite: the log positions of a journey's versions."""
        table = f'"{self.datastore.schema}".{self.events_table_name}'
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                f"SELECT originator_version, notification_id FROM {table} WHERE originator_id = %s"  # noqa: S608
                " AND originator_version BETWEEN %s AND %s",
                (journey_id, min(versions, default=0), max(versions, default=0)),
            )
            return {int(row["originator_version"]): int(row["notification_id"]) for row in curs.fetchall()}

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(*args, **kwargs)
        self.known_links = KnownLinks()
        self._refusal = threading.local()  # why the chain refused an insert, raised once the library has rolled it back
        for statement in chain_ddl(f'"{self.datastore.schema}".'):
            self.sql_create_statements.append(SQL(statement).format())  # type: ignore[arg-type,unused-ignore]

    bulk = True  # COPY for the event and chain rows; False: the library's pipelined insert and an executemany

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:  # noqa: ANN401
        """COPY (`bulk`) or the library's insert; the chain links staged kept once it has committed (`KnownLinks`)."""
        with self.known_links.kept():
            if self.bulk and stored_events:
                copied: list[int] = self._copy_events(stored_events)  # the library's retry wrapper is untyped
                return copied
            return self._insert_events_refused_as_chained(stored_events, **kwargs)

    def _insert_events_refused_as_chained(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:  # noqa: ANN401
        self._refusal.error = None
        try:
            positions: Sequence[int] | None = super().insert_events(stored_events, **kwargs)  # the library's retry wrapper is untyped
        except Exception:
            refusal, self._refusal.error = self._refusal.error, None
            if refusal is not None:
                raise refusal from None
            raise
        return positions

    def _fetch_ids_after_insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:  # noqa: ANN401
        positions = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if positions:
            try:
                self._append_chain(curs, positions, stored_events)
            except Exception as refusal:
                # The library catches what is raised here and commits its transaction before raising it again:
                # a failing statement aborts the transaction first, so the COMMIT rolls the events back.
                self._refusal.error = refusal
                curs.execute("DO $$ BEGIN RAISE EXCEPTION 'the hash chain refused this insert'; END $$")
                raise
        return positions

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _copy_events(self, stored_events: Sequence[StoredEvent]) -> list[int]:
        """The bulk path: in one transaction, the library's EXCLUSIVE table lock and NOTIFY, as many positions
        taken from the table's sequence at once as there are events (no other insert can take any while the
        lock is held), the event rows by one binary COPY with those positions, in order (as the library's
        INSERT ... RETURNING numbers them), then the chain rows, by COPY too. Any failure rolls it all back;
        a duplicate (journey, version) is the library's IntegrityError, as with its own insert."""
        schema = Identifier(self.datastore.schema)
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._lock_table(curs)
            self._notify_channel(curs)
            curs.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'),"
                " nextval(pg_get_serial_sequence(%s, 'notification_id')) + %s - 1) AS last",
                (self._events_name, self._events_name, len(stored_events)),
            )
            row = curs.fetchone()
            assert row is not None  # noqa: S101 - setval returns a row
            last = int(row["last"])
            positions = list(range(last - len(stored_events) + 1, last + 1))
            uuid_ids = self.datastore.originator_id_type == "uuid"
            copy_events = SQL(
                "COPY {0}.{1} (notification_id, originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)",
            ).format(schema, Identifier(self.events_table_name))
            with curs.copy(copy_events) as copy:
                copy.set_types(["int8", "uuid" if uuid_ids else "text", "int8", "text", "bytea"])
                for position, event in zip(positions, stored_events, strict=True):
                    originator = event.originator_id
                    if uuid_ids and not isinstance(originator, UUID):
                        originator = UUID(str(originator))
                    copy.write_row((position, originator if uuid_ids else str(originator), event.originator_version, event.topic,
                                    event.state))
            self._append_chain(curs, positions, stored_events)
        return positions

    @property
    def _events_name(self) -> str:
        return f'"{self.datastore.schema}"."{self.events_table_name}"'

    def _append_chain(self, curs: Any, positions: Sequence[int], stored_events: Sequence[StoredEvent]) -> None:  # noqa: ANN401
        curs.execute(SQL("SET LOCAL search_path TO {0}").format(Identifier(self.datastore.schema)))
        curs.execute(NO_JIT)
        write_rows = functools.partial(self._copy_chain, curs) if self.bulk else None
        append_chain(_Positional(curs), positions, stored_events, self.chain_scheme, self.chain_events, write_rows,
                     known=self.known_links)

    @property
    def chain_events(self) -> EventsTable:
        """The events table as the chain (and the relay's `published_rows`) reads it."""
        return EventsTable(self.events_table_name, "notification_id", hex_ids=False, placeholder="%s", lateral=True)

    def _copy_chain(self, curs: Any, rows: list[tuple[int, str, int, str, str, str]]) -> None:  # noqa: ANN401
        copy_chain = SQL("COPY {0}.{1} ({2}) FROM STDIN (FORMAT BINARY)").format(
            Identifier(self.datastore.schema), Identifier(CHAIN_TABLE), SQL(CHAIN_COLUMNS),  # type: ignore[arg-type,unused-ignore]
        )
        with curs.copy(copy_chain) as copy:
            copy.set_types(list(CHAIN_TYPES))
            for row in rows:
                copy.write_row(row)


def _notification_rows(_cursor: Any) -> Any:  # noqa: ANN401 - psycopg's row factory: a row maker per cursor
    def make(values: Sequence[Any]) -> Notification:
        position, originator_id, originator_version, topic, state = values
        return notification(position, originator_id, originator_version, topic, bytes(state))

    return make


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

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(sql, rows)


def recorder_topic(kind: str) -> str:
    return f"infra.recorders:{'ChainedSQLiteRecorder' if kind == 'sqlite' else 'ChainedPostgresRecorder'}"


