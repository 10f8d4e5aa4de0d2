"""The database the projections write their tables to: the same SQLite file or PostgreSQL
database (and schema) as the event store, behind one small interface.

Projection SQL is written once, with `?` placeholders; the PostgreSQL cursor rewrites them.
"""

from __future__ import annotations

import functools
import glob
import re
import sqlite3
import struct
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import psycopg

from infra.config import SQLITE_PRAGMAS, Database

Params = Sequence[Any]


class DatabaseUnavailable(Exception):  # noqa: N818 - reads as what the user is told
    """The configured database cannot be reached or opened."""


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Params = (), /) -> object: ...
    def executemany(self, sql: str, rows: Sequence[Params], /) -> object: ...
    def fetchone(self) -> Any: ...  # noqa: ANN401 - a row, or None
    def fetchall(self) -> list[Any]: ...


class ViewStore(Protocol):
    dialect: str
    database: Database

    def transaction(self) -> Any: ...  # context manager yielding a Cursor, commits on success  # noqa: ANN401
    def stream(self, sql: str, params: Params = (), batch: int = 5000) -> Iterator[tuple[Any, ...]]: ...
    def snapshot(self) -> Any: ...  # context manager yielding a Snapshot  # noqa: ANN401
    def lock_for_ddl(self, cursor: Cursor) -> None: ...
    def creating(self) -> Any: ...  # context manager: the DDL lock held while another creates tables  # noqa: ANN401
    def scratch(self) -> Any: ...  # context manager yielding a ViewStore of its own, or None  # noqa: ANN401
    def attached(self, scratch: Any, name: str) -> Any: ...  # context manager  # noqa: ANN401
    def replacing(self) -> Any: ...  # context manager: tables dropped meanwhile are rebuilt ones' old tables  # noqa: ANN401
    def scratch_files(self) -> list[tuple[Path, int]]: ...
    def close(self) -> None: ...


class Snapshot(Protocol):
    """Reads that all see the database as it was at one moment, however many tables they stream."""

    def stream(self, sql: str, params: Params = (), batch: int = 5000) -> Iterator[tuple[Any, ...]]: ...


class _SQLiteSnapshot:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def stream(self, sql: str, params: Params = (), batch: int = 5000) -> Iterator[tuple[Any, ...]]:
        cursor = self.connection.execute(sql, params)
        while rows := cursor.fetchmany(batch):
            yield from rows


class _PGSnapshot:
    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection
        self._cursors = 0

    def stream(self, sql: str, params: Params = (), batch: int = 5000) -> Iterator[tuple[Any, ...]]:
        self._cursors += 1
        with self.connection.cursor(name=f"snapshot_{self._cursors}") as cursor:  # server-side: memory stays flat
            cursor.itersize = batch
            cursor.execute(sql.replace("?", "%s"), params)  # SQL is ours
            yield from cursor


class _ConnectionPerThread:
    """Each thread keeps one connection (the API and the follower run in threads); close() ends them all."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()

    def _keep(self, connection: Any) -> None:  # noqa: ANN401
        self._local.connection = connection
        with self._lock:
            self._connections.append(connection)

    def close(self) -> None:
        """Every thread's connection closed; a thread that goes on using the views opens a new one."""
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
            self._local = threading.local()


SCRATCH_SUFFIX = ".rebuild-"
"""A scratch file's name: the store's, this, and a random part (`SQLiteViews.scratch`, `SQLiteViews.scratch_files`)."""


class SQLiteViews(_ConnectionPerThread):
    dialect = "sqlite"

    def __init__(self, database: Database) -> None:
        self.database = database
        super().__init__()
        with self.transaction() as cursor:  # opens the file now: a bad path fails here, once
            cursor.execute("SELECT 1")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(
            self.database.path, timeout=30, isolation_level=None, check_same_thread=False, uri=self.database.memory,
        )

    journal: tuple[str, ...] = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")
    """How a file's changes reach the disk: the store's, through its write-ahead log."""

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = self._connect()
                if not self.database.memory:
                    for pragma in self.journal:
                        connection.execute(pragma)
                for pragma in SQLITE_PRAGMAS:
                    connection.execute(pragma)
            except sqlite3.Error as error:
                msg = f"cannot open database {self.database.display}: {error}"
                raise DatabaseUnavailable(msg) from None
            self._keep(connection)
        return connection

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        connection = self._connection()
        cursor = connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            connection.rollback()
            raise
        connection.commit()

    def lock_for_ddl(self, cursor: Cursor) -> None:
        """BEGIN IMMEDIATE already holds SQLite's single write lock."""

    @contextmanager
    def creating(self) -> Iterator[None]:
        """SQLite serialises writers itself."""
        yield

    @contextmanager
    def scratch(self) -> Iterator[SQLiteViews | None]:
        """A database file of its own beside the store's, for tables built before they are copied in (a rebuild's
        shadows): nobody else reads it and it is thrown away if the work stops, so it is written without the store's
        write-ahead log and without syncing (`ScratchViews`). Removed afterwards, whatever happened. None for an
        in-memory store."""
        if self.database.memory:
            yield None
            return
        path = f"{self.database.path}{SCRATCH_SUFFIX}{uuid.uuid4().hex[:12]}"
        scratch = open_scratch(path)
        try:
            yield scratch
        finally:
            scratch.close()
            Path(path).unlink(missing_ok=True)  # without a journal, the one file

    def scratch_files(self) -> list[tuple[Path, int]]:
        """The scratch files beside the store, with their sizes in bytes: a rebuild running now has one; any other was
        left by a rebuild that was killed (a scratch file is removed whenever its rebuild ends otherwise)."""
        if self.database.memory:
            return []
        store = Path(self.database.path)
        found = []
        for path in sorted(store.parent.glob(glob.escape(store.name + SCRATCH_SUFFIX) + "*")):
            try:
                found.append((path, path.stat().st_size))
            except FileNotFoundError:  # its rebuild ended meanwhile
                continue
        return found

    @contextmanager
    def attached(self, scratch: SQLiteViews, name: str) -> Iterator[None]:
        """`scratch`'s file attached as `name` to this thread's connection, for the transactions opened meanwhile to
        read its tables (`INSERT INTO main.t SELECT * FROM name.t` copies a table page by page). Outside a transaction."""
        connection = self._connection()
        connection.execute(f"ATTACH DATABASE ? AS {name}", (scratch.database.path,))
        try:
            yield
        finally:
            connection.execute(f"DETACH DATABASE {name}")

    @contextmanager
    def replacing(self) -> Iterator[None]:
        """For the transactions of this thread meanwhile that drop tables a rebuild has replaced: their pages are freed
        without being overwritten with zeros first (`PRAGMA secure_delete=FAST`; it is on in Debian's SQLite), then the
        connection's setting is what it was, for every other delete. What they held is held still by the events, which
        are never erased, and by the rebuilt tables (PostgreSQL does not zero a dropped table's files either): zeroing
        them wrote half of a rebuild's bytes (10^5 events, all projections: 485 MB against 243)."""
        connection = self._connection()
        before = int(connection.execute("PRAGMA secure_delete").fetchone()[0])
        connection.execute("PRAGMA secure_delete=FAST")
        try:
            yield
        finally:
            connection.execute(f"PRAGMA secure_delete={before}")

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """One read transaction on its own connection: in WAL mode it sees one moment while writers go on."""
        connection = self._connect()
        try:
            connection.execute("BEGIN")
            yield _SQLiteSnapshot(connection)
        finally:
            connection.close()

    def stream(self, sql: str, params: Params = (), batch: int = 5000) -> Iterator[tuple[Any, ...]]:
        """Rows read lazily: memory stays flat however large the table."""
        with self.snapshot() as snapshot:
            yield from snapshot.stream(sql, params, batch)


class ScratchViews(SQLiteViews):
    """A throwaway SQLite file (`SQLiteViews.scratch`): no journal and nothing synced. Each commit writes the pages it
    changed once, where the store's write-ahead log writes them twice (the log, then the checkpoint) and syncs at each
    checkpoint. Without a journal a transaction cannot be rolled back: whatever fails in one ends the work the file is
    for, and the file goes with it.

    Nobody reads the file while it is written, so a `transaction` commits only once the ones since the last commit have
    changed `COMMIT_ROWS` rows, and `close` commits the rest: a rebuild's pages (rows keyed by journey change pages all
    over its tables) write a page changed by several of them once, not once for each (a rebuild of all projections at
    10^5 events wrote 163 MB into the file, against 358 MB with a commit a page). One thread's: the views' other
    threads would share the open transaction's lock.

    Deleted rows and dropped tables are not overwritten with zeros (`secure_delete`, on in Debian's SQLite): the file
    is removed when the rebuild ends, without its blocks being overwritten either, and holds only what the rebuilt
    tables copy into the store. The store keeps its own setting: dropping the old tables there zeroes their pages."""

    journal = ("PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF", "PRAGMA secure_delete=OFF")
    COMMIT_ROWS = 20_000
    """Rows inserted, updated or deleted before a commit: about eight pages of 1,000 events of all projections."""

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        connection = self._connection()
        if not connection.in_transaction:
            connection.execute("BEGIN IMMEDIATE")
            self._local.committed_at = connection.total_changes
        try:
            yield connection.cursor()
        except BaseException:
            connection.rollback()
            raise
        if connection.total_changes - self._local.committed_at >= self.COMMIT_ROWS:
            connection.commit()

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                if connection.in_transaction:
                    connection.commit()
        super().close()


def open_scratch(path: str) -> ScratchViews:
    """The scratch file at `path`: made by `SQLiteViews.scratch`, and opened again by a rebuild's helper to fill it."""
    return ScratchViews(Database(kind="sqlite", path=path))


_PLAIN_INSERT = re.compile(r"\s*INSERT\s+INTO\s+(\w+)\s*\(([\w\s,]+)\)\s*VALUES\s*\(\s*\?(?:\s*,\s*\?)*\s*\)\s*", re.IGNORECASE)


@functools.lru_cache(maxsize=256)
def _copy_for(sql: str) -> tuple[str, str, tuple[str, ...]] | None:
    """(`COPY t (columns) FROM STDIN`, t, the columns) for a plain `INSERT INTO t (columns) VALUES (?, ...)`: one row
    of placeholders, nothing after it (no upsert, nothing returned); else None."""
    found = _PLAIN_INSERT.fullmatch(sql)
    if found is None:
        return None
    columns = tuple(column.strip() for column in found.group(2).split(","))
    return f"COPY {found.group(1)} ({', '.join(columns)}) FROM STDIN", found.group(1), columns


_FLOAT4 = struct.Struct("f")
_DDL_WORDS = frozenset(("CREAT", "ALTER", "DROP "))  # what a statement that makes, changes or drops a table begins with


def _as_real(value: Any) -> Any:  # noqa: ANN401 - a row's value
    """A float as a REAL column stores it from a parameter (the double cast to the nearest float4), so that COPY's text
    reads back that very value; anything else as it is."""
    return _FLOAT4.unpack(_FLOAT4.pack(value))[0] if type(value) is float else value


class _PGCursor:
    def __init__(self, cursor: psycopg.Cursor[Any], copied: set[str]) -> None:
        self._cursor = cursor
        self._reals: dict[str, frozenset[str]] | None = None  # per table looked up: its columns of type real (see `_real_columns`)
        self._copied = copied  # the names of the tables the views' cursors have copied into (shared by them)

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def execute(self, sql: str, params: Params = (), /) -> _PGCursor:
        if self._reals is not None and sql.lstrip()[:5].upper() in _DDL_WORDS:
            self._reals = None  # a table made, changed or dropped: its columns looked up again
        self._cursor.execute(sql.replace("?", "%s"), params)  # SQL is ours, never user text
        return self

    def executemany(self, sql: str, rows: Sequence[Params], /) -> None:
        """Each row, as `executemany`; the rows of a plain INSERT by COPY: the same rows, in order, all or none with
        the transaction, without a round of the protocol per row. A value is read as the column's type from its text,
        as a parameter is cast to it; a float bound for a REAL column is first made the float4 the cast would give."""
        if not rows:
            return
        copy = _copy_for(sql) if len(rows) > 1 else None
        if copy is None:
            self._cursor.executemany(sql.replace("?", "%s"), rows)
            return
        statement, table, columns = copy
        reals = self._real_columns(table)
        at = [index for index, column in enumerate(columns) if column in reals]
        with self._cursor.copy(statement) as rows_in:
            for row in rows:
                if at:
                    row = list(row)  # noqa: PLW2901 - this row as written
                    for index in at:
                        row[index] = _as_real(row[index])
                rows_in.write_row(row)

    def _real_columns(self, table: str) -> frozenset[str]:
        """The columns of `table` of type real, looked up the first time a transaction needs them and again after any
        DDL statement in it: those of every table the views have copied into so far (`copied`) at once, each found by
        its name as COPY finds it (the search path) and by the catalog's keys (one round of the protocol; scanning
        pg_class for the schema's tables took milliseconds once the catalog held many dead rows), and a table the
        transaction meets later on its own."""
        name = table.lower()
        if self._reals is None or name not in self._reals:
            wanted = sorted(self._copied | {name}) if self._reals is None else [name]
            self._cursor.execute(
                "SELECT t.name, a.attname FROM unnest(%s::text[]) AS t (name) JOIN pg_attribute a ON a.attrelid = to_regclass(t.name)"
                " WHERE a.atttypid = 'real'::regtype AND a.attnum > 0 AND NOT a.attisdropped",
                (wanted,),
            )
            reals: dict[str, set[str]] = {relation: set() for relation in wanted}
            for relation, column in self._cursor.fetchall():
                reals[str(relation)].add(str(column))
            self._reals = (self._reals or {}) | {relation: frozenset(columns) for relation, columns in reals.items()}
            self._copied.add(name)
        return self._reals[name]

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()


DDL_LOCK = 4711
"""The advisory lock every creator of tables takes on PostgreSQL: concurrent CREATE ... IF NOT EXISTS race
on the catalog ("tuple concurrently updated"), so first starts are serialised. `bootstrap` holds it
while the event store creates its tables: code run inside that (the recorders) must not take it again."""


class PostgresViews(_ConnectionPerThread):
    dialect = "postgres"

    def __init__(self, database: Database, connect_timeout: int = 5) -> None:
        self.database = database
        self.connect_timeout = connect_timeout
        self._copied: set[str] = set()  # the tables copied into (`_PGCursor._real_columns` looks theirs up together)
        super().__init__()
        with self.transaction() as cursor:
            self.lock_for_ddl(cursor)
            cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{database.schema}"')

    @contextmanager
    def creating(self) -> Iterator[None]:
        """Hold the DDL lock on a connection of its own while others (the event store) create their tables."""
        with self.connect() as connection:
            connection.autocommit = True
            connection.execute(f"SELECT pg_advisory_lock({DDL_LOCK})")
            try:
                yield
            finally:
                connection.execute(f"SELECT pg_advisory_unlock({DDL_LOCK})")

    @contextmanager
    def scratch(self) -> Iterator[None]:
        """None: PostgreSQL builds a rebuild's shadows beside the tables in use, in the same schema."""
        yield None

    def attached(self, scratch: Any, name: str) -> Any:  # noqa: ANN401
        msg = "PostgreSQL has no scratch database to attach"
        raise NotImplementedError(msg)

    @contextmanager
    def replacing(self) -> Iterator[None]:
        """Nothing to set: PostgreSQL drops a table by removing its files."""
        yield

    def scratch_files(self) -> list[tuple[Path, int]]:
        return []

    def connect(self) -> psycopg.Connection[Any]:
        """A new connection with the search path set to the configured schema."""
        db = self.database
        try:
            return psycopg.connect(
                host=db.host, port=db.port, user=db.user, password=db.password or None, dbname=db.name,
                connect_timeout=self.connect_timeout, options=f"-c search_path={db.schema}", autocommit=False,
            )
        except psycopg.OperationalError as error:
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            msg = f"cannot reach database {db.display}: {reason}"
            raise DatabaseUnavailable(msg) from None

    def _connection(self) -> psycopg.Connection[Any]:
        connection: psycopg.Connection[Any] | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = self.connect()
            self._keep(connection)
        return connection

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        connection = self._connection()
        try:
            with connection.cursor() as cursor:
                yield _PGCursor(cursor, self._copied)
        except BaseException:
            connection.rollback()
            raise
        connection.commit()

    def lock_for_ddl(self, cursor: Cursor) -> None:
        """Concurrent CREATE TABLE IF NOT EXISTS races on PostgreSQL's catalog: one creator at a time."""
        cursor.execute(f"SELECT pg_advisory_xact_lock({DDL_LOCK})")

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """A REPEATABLE READ transaction: every stream in it sees the same committed state."""
        with self.connect() as connection:
            connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            try:
                yield _PGSnapshot(connection)
            finally:
                connection.rollback()

    def stream(self, sql: str, params: Params = (), batch: int = 5000) -> Iterator[tuple[Any, ...]]:
        """Rows through a server-side cursor, `batch` at a time: memory stays flat."""
        with self.snapshot() as snapshot:
            yield from snapshot.stream(sql, params, batch)



def open_views(database: Database, connect_timeout: int = 5) -> SQLiteViews | PostgresViews:
    if database.kind == "sqlite":
        return SQLiteViews(database)
    return PostgresViews(database, connect_timeout)
