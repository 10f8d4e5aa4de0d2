"""Runs projections over the notification log: a page of events per transaction.

Each page is read once, decoded once, handed to every projection that has not yet seen it, and
committed together with every projection's new position. The positions are read again inside the
transaction (and locked on PostgreSQL), so two runners never apply the same event twice.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from threading import Event
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import DomainEventProtocol

from infra.lag import Lag
from infra.views import Cursor, Params, ViewStore
from projections.base import Projection

Progress = Callable[[int, int], None]  # (position reached, head)


class GatheredInserts:
    """The cursor handlers write through: plain INSERTs are held per table and sent with one
    executemany per run of the same statement; any other statement first sends what it could
    depend on: the held inserts into the one table it reads or changes, or all of them when it
    may touch more than one. Within every table, statements run in the order given; each
    projection owns its tables, so the rows are those one execute per event gives.
    """

    def __init__(self, cursor: Cursor) -> None:
        self._cursor = cursor
        self._held: dict[str, list[tuple[str, list[Params]]]] = {}  # table -> [(INSERT, rows)], in order

    @property
    def rowcount(self) -> int:
        self.flush()
        return self._cursor.rowcount

    def execute(self, sql: str, params: Params = (), /) -> object:
        table = _inserted_table(sql)
        if table is not None:
            runs = self._held.setdefault(table, [])
            if runs and runs[-1][0] == sql:
                runs[-1][1].append(params)
            else:
                runs.append((sql, [params]))
            return self
        self._send_before(sql)
        return self._cursor.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Params], /) -> object:
        self._send_before(sql)
        return self._cursor.executemany(sql, rows)

    def fetchone(self) -> Any:  # noqa: ANN401 - a row, or None
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def flush(self) -> None:
        for table in list(self._held):
            self._send(table)

    def _send(self, table: str) -> None:
        for sql, rows in self._held.pop(table, []):
            self._cursor.executemany(sql, rows)

    def _send_before(self, sql: str) -> None:
        table = _touched_table(sql)
        if table is None:
            self.flush()
        else:
            self._send(table)


@functools.lru_cache(maxsize=256)  # handlers use a few constant statements
def _inserted_table(sql: str) -> str | None:
    """t, for a plain `INSERT INTO t (...) VALUES (...)`: nothing read, nothing returned, no upsert."""
    words = sql.split(None, 3)
    if len(words) < 4 or (words[0].upper(), words[1].upper()) != ("INSERT", "INTO") or _reads(sql):  # noqa: PLR2004
        return None
    return words[2].split("(")[0]


@functools.lru_cache(maxsize=256)
def _touched_table(sql: str) -> str | None:
    """t, for a statement that reads or changes table t alone: `UPDATE t ...`, `DELETE FROM t ...`,
    `SELECT ... FROM t ...` or an upsert into t, with no join, subquery or second table."""
    words = sql.split()
    upper = [word.upper() for word in words]
    if len(words) < 3 or {"JOIN", "USING"} & set(upper) or upper.count("SELECT") + upper.count("FROM") > 2 or "(SELECT" in sql.upper():  # noqa: PLR2004
        return None
    if upper[0] == "UPDATE" and "FROM" not in upper:
        return words[1]
    if upper[0] == "DELETE" and upper[1] == "FROM" and "SELECT" not in upper:
        return words[2]
    if upper[0] == "SELECT" and upper.count("FROM") == 1:
        return words[upper.index("FROM") + 1]
    if upper[:2] == ["INSERT", "INTO"] and "SELECT" not in upper and "FROM" not in upper:
        return words[2].split("(")[0]
    return None


def _reads(sql: str) -> bool:
    """Whether an INSERT also reads (a subquery), returns rows or upserts: then it is not held."""
    upper = sql.upper()
    return any(word in upper for word in ("SELECT", "RETURNING", "CONFLICT"))


class ProjectionStatus(Lag):
    """A projection's position in the event log (`name` is the projection's)."""


class ProjectionRunner:
    def __init__(self, app: Application[UUID], views: ViewStore, projections: Sequence[Projection], batch_size: int = 1000) -> None:
        self.app = app
        self.views = views
        self.projections = {projection.name: projection for projection in projections}
        self.batch_size = batch_size
        self._created = False

    def setup(self) -> None:
        if self._created:
            return
        with self.views.transaction() as cursor:
            self.views.lock_for_ddl(cursor)
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS projection_positions (name TEXT PRIMARY KEY, position BIGINT NOT NULL,"
                " updated_at TEXT NOT NULL)",
            )
            for projection in self.projections.values():
                for statement in projection.ddl(self.views.dialect):
                    cursor.execute(statement)
                cursor.execute(
                    "INSERT INTO projection_positions (name, position, updated_at) VALUES (?, 0, ?)"
                    " ON CONFLICT (name) DO NOTHING",
                    (projection.name, _now()),
                )
        self._created = True

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def positions(self, cursor: Cursor | None = None, *, lock: bool = False) -> dict[str, int]:
        if cursor is None:
            with self.views.transaction() as own:
                return self.positions(own)
        suffix = " FOR UPDATE" if lock and self.views.dialect == "postgres" else ""
        cursor.execute(f"SELECT name, position FROM projection_positions{suffix}")  # noqa: S608
        return {name: position for name, position in cursor.fetchall() if name in self.projections}

    def status(self) -> list[ProjectionStatus]:
        self.setup()
        head, positions = self.head(), self.positions()
        return [ProjectionStatus(name, positions.get(name, 0), head) for name in self.projections]

    def catch_up(self, names: Sequence[str] | None = None, progress: Progress | None = None) -> int:
        """Process every recorded event the chosen projections have not seen; returns how many."""
        self.setup()
        chosen = [self.projections[name] for name in (names or self.projections)]
        head = self.head()
        processed = 0
        while True:
            start = min(self.positions()[p.name] for p in chosen)
            if start >= head:
                break
            # The page is read outside the write transaction (on SQLite that transaction holds the
            # database's one write lock: reading the store meanwhile could wait on writers that wait on
            # it). Inside, the positions are read again, locked: a rebuild that reset one below this
            # page's start meanwhile makes the page go unapplied and be chosen again, never skipped past.
            notifications = self.app.recorder.select_notifications(start=start, limit=self.batch_size, inclusive_of_start=False)
            if not notifications:
                break
            last = notifications[-1].id
            with self.views.transaction() as cursor:
                current = self.positions(cursor, lock=True)
                if any(current[p.name] < start for p in chosen):
                    continue
                decoded: dict[int, DomainEventProtocol[UUID]] = {}
                writes = GatheredInserts(cursor)
                for notification in notifications:
                    for projection in chosen:
                        if notification.id > current[projection.name] and notification.topic in projection.topics:
                            if notification.id not in decoded:
                                decoded[notification.id] = self.app.mapper.to_domain_event(notification)
                            projection.process(decoded[notification.id], writes, notification.id)
                writes.flush()
                cursor.executemany(
                    "UPDATE projection_positions SET position = ?, updated_at = ? WHERE name = ? AND position < ?",
                    [(last, _now(), p.name, last) for p in chosen],
                )
            processed += len(notifications)
            if progress is not None:
                progress(last, head)
        return processed

    def rebuild(self, names: Sequence[str], progress: Progress | None = None) -> int:
        """Drop the projections' tables, start them from position zero and catch up."""
        self.setup()
        with self.views.transaction() as cursor:
            self.positions(cursor, lock=True)  # positions first, then tables: the order every runner locks in
            for name in names:
                projection = self.projections[name]
                for table in projection.tables:
                    cursor.execute(f"DROP TABLE IF EXISTS {table}")
                for statement in projection.ddl(self.views.dialect):
                    cursor.execute(statement)
                cursor.execute("UPDATE projection_positions SET position = 0, updated_at = ? WHERE name = ?", (_now(), name))
        return self.catch_up(names, progress)

    def wait_for(self, position: int, timeout: float) -> bool:
        """Catch up until every projection has reached `position` or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            self.catch_up()
            if min(self.positions().values()) >= position:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def follow(self, wait: Callable[[float], None], stop: Event, poll: float = 0.5, progress: Progress | None = None) -> None:
        """Keep the projections current until `stop` is set; `wait` returns early when events arrive."""
        while not stop.is_set():
            self.catch_up(progress=progress)
            wait(poll)


def _now() -> str:
    return datetime.now(tz=UTC).isoformat()
