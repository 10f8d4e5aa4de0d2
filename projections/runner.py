"""Runs projections over the notification log: a page of events per transaction.

Each page is read once, decoded once, handed to every projection that has not yet seen it, and
committed together with every projection's new position. The positions are read again inside the
transaction (and locked on PostgreSQL), so two runners never apply the same event twice.

A rebuild from zero fills shadow tables (`Shadow`: the projection's own DDL and handlers, with its
table and index names given the suffix `_rebuilding`) under a position of their own, creates the
secondary indexes once they are filled, and swaps them in with the projection's position in one
transaction: readers see the old complete tables until then, the new ones after. A rebuild that
stops part way (a crash, Ctrl-C) leaves the old tables serving; the next rebuild discards its shadow
and starts again from zero. On SQLite the shadows are filled in a file of their own beside the store
and copied in by the transaction that swaps them in (`ProjectionRunner._rebuild_beside`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from threading import Event
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Notification

from infra.heap import FrozenHeap
from infra.lag import Lag
from infra.views import Cursor, Params, ViewStore
from projections.base import Projection
from projections.pages import LOOKED_UP, Carried

Progress = Callable[[int, int], None]  # (position reached, head)
Share = tuple[list[str], str | None]  # projections' names, and the scratch file they are filled in (SQLite) or None
Helpers = Callable[[list[Share], int], AbstractContextManager[Callable[[], list[int]]]]
"""Fills shares of a rebuild elsewhere (`ProjectionRunner.fill` in other processes: services/parallel_rebuild.py): entered
with the shares and the head, gives `join`, which waits for them all and returns how many events each read, or raises if
one failed; leaving it stops any still running."""
Handler = Callable[[DomainEventProtocol[UUID], Cursor, int], None]  # a projection's process, for one class of event


class GatheredInserts:
    """The cursor handlers write through: plain INSERTs (execute or executemany) are held per table and
    sent with one executemany per run of the same statement; any other statement first sends what it
    could depend on: the held inserts into the one table it reads or changes, or all of them when it may
    touch more than one. Within every table, statements run in the order given; each projection owns its
    tables, so the rows are those one execute per event gives.
    """

    def __init__(self, cursor: Cursor) -> None:
        self._cursor = cursor
        self._held: dict[str, list[tuple[str, list[Params]]]] = {}  # table -> [(INSERT, rows)], in order
        self._tail: tuple[str | None, list[Params]] = (None, [])  # the last run held (its table's last): INSERT, rows

    @property
    def rowcount(self) -> int:
        self.flush()
        return self._cursor.rowcount

    def execute(self, sql: str, params: Params = (), /) -> object:
        if sql is self._tail[0]:  # the handler's constant INSERT again, nothing else held or sent since: one more row
            self._tail[1].append(params)
            return self
        table = _inserted_table(sql)
        if table is not None:
            self._hold(table, sql, [params])
            return self
        self._send_before(sql)
        return self._cursor.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Params], /) -> object:
        table = _inserted_table(sql)
        if table is not None:
            self._hold(table, sql, rows)
            return self
        self._send_before(sql)
        return self._cursor.executemany(sql, rows)

    def _hold(self, table: str, sql: str, rows: Sequence[Params]) -> None:
        runs = self._held.setdefault(table, [])
        if runs and runs[-1][0] == sql:
            runs[-1][1].extend(rows)
        else:
            runs.append((sql, list(rows)))
        self._tail = runs[-1]

    def fetchone(self) -> Any:  # noqa: ANN401 - a row, or None
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def flush(self) -> None:
        for table in list(self._held):
            self._send(table)

    def _send(self, table: str) -> None:
        self._tail = (None, [])
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
    `SELECT ... FROM t ...` or an upsert into t, with no join, subquery or second table; or a page's read of
    t by journey (`pages.LOOKUP`, a LATERAL lookup on PostgreSQL)."""
    lookup = LOOKED_UP.fullmatch(sql)
    return lookup.group(1) if lookup is not None else _one_table(sql)


def _one_table(sql: str) -> str | None:
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
    def __init__(self, app: Application[UUID], views: ViewStore, projections: Sequence[Projection], batch_size: int = 1000,
                 carried_journeys: int = 10_000) -> None:
        self.app = app
        self.views = views
        self.projections = {projection.name: projection for projection in projections}
        self.batch_size = batch_size
        self.carried_journeys = carried_journeys  # journeys whose rows a projection carries from page to page, a table
        self._created = False
        self._topics = frozenset().union(*(projection.topics for projection in projections))

    def setup(self) -> None:
        if self._created:
            return
        with self.views.transaction() as cursor:
            self.views.lock_for_ddl(cursor)
            cursor.execute(POSITIONS_DDL)
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
        return {name: position for name, position in self._rows(cursor, lock=lock).items() if name in self.projections}

    def _rows(self, cursor: Cursor | None = None, *, lock: bool = False, only: Sequence[str] = ()) -> dict[str, int]:
        """Every row of projection_positions: the projections' and their shadows' (locked on PostgreSQL, in the names'
        order, as every runner locks them); `only` those named, when given (runners filling other shadows meanwhile, a
        rebuild's helpers, lock theirs)."""
        if cursor is None:
            with self.views.transaction() as own:
                return self._rows(own)
        where = f" WHERE name IN ({', '.join('?' for _ in only)})" if only else ""
        suffix = " ORDER BY name FOR UPDATE" if lock and self.views.dialect == "postgres" else ""
        cursor.execute(f"SELECT name, position FROM projection_positions{where}{suffix}", tuple(only))  # noqa: S608
        return dict(cursor.fetchall())

    def status(self) -> list[ProjectionStatus]:
        self.setup()
        head, positions = self.head(), self.positions()
        return [ProjectionStatus(name, positions.get(name, 0), head) for name in self.projections]

    def catch_up(self, names: Sequence[str] | None = None, progress: Progress | None = None) -> int:
        """Process every recorded event the chosen projections have not seen; returns how many."""
        self.setup()
        return self._run([_Target(self.projections[name]) for name in (names or self.projections)], self.head(), progress)

    def _run(self, targets: list[_Target], head: int, progress: Progress | None) -> int:
        """Pages of events up to `head` for each target's tables, from its position; a target whose
        position row has gone (a shadow another rebuild swapped in) is done. Only the events of the
        targets' topics are read (all, when they take every topic of the runner's projections)."""
        heap = FrozenHeap()  # collections scan a page's objects, not what else the process holds (an ingest's journeys)
        try:
            return self._pages(targets, head, progress, heap)
        finally:
            heap.close()

    def _pages(self, targets: list[_Target], head: int, progress: Progress | None, heap: FrozenHeap) -> int:
        processed = 0
        window = self.batch_size  # positions read at a time for the targets' topics (see `_page`)
        carried = {target.row: Carried(self.carried_journeys) for target in targets}  # for this run's pages only
        while True:
            rows = self._rows()
            targets = [t for t in targets if t.row in rows]
            start = min((rows[t.row] for t in targets), default=head)
            if start >= head:
                break
            topics = frozenset().union(*(t.topics for t in targets))
            wanted = sorted(topics) if topics < self._topics else ()
            # The page is read outside the write transaction (on SQLite that transaction holds the
            # database's one write lock: reading the store meanwhile could wait on writers that wait on
            # it). Inside, the positions are read again, locked: a rebuild that reset one below this
            # page's start meanwhile makes the page go unapplied and be chosen again, never skipped past.
            notifications, last, window = self._page(start, head, wanted, window)
            with self.views.transaction() as cursor:
                current = self._rows(cursor, lock=True, only=[t.row for t in targets])
                if any(t.row not in current or current[t.row] < start for t in targets):
                    continue
                for target in targets:
                    carried[target.row].start(current[target.row])
                self._apply(cursor, notifications, last, [(t, current[t.row]) for t in targets], carried)
            for target in targets:  # committed: where the next page starts, unless another runner moves the position
                carried[target.row].committed(max(current[target.row], last))
            processed += len(notifications)
            heap.after_unit()
            if progress is not None:
                progress(last, head)
        return processed

    def _page(self, start: int, head: int, topics: Sequence[str], window: int) -> tuple[Sequence[Notification], int, int]:
        """The next `batch_size` events of `topics` (every topic, when empty) after `start`; the position the page
        reaches (its last event's, or `head` when it is short); and the window for the next page. Events of some
        topics only are read `window` positions at a time: asked for the next events up to `head`, PostgreSQL
        without statistics on the log (autovacuum off) reads every event up to `head` for every page."""
        if not topics:
            notifications = self.app.recorder.select_notifications(
                start=start, limit=self.batch_size, stop=head, inclusive_of_start=False,
            )
            return notifications, notifications[-1].id if len(notifications) == self.batch_size else head, window
        page: list[Notification] = []
        while True:
            stop, wanted = min(head, start + window), self.batch_size - len(page)
            found = self.app.recorder.select_notifications(
                start=start, limit=wanted, stop=stop, topics=topics, inclusive_of_start=False,
            )
            page += found
            window = self._window((found[-1].id if len(found) == wanted else stop) - start, len(found), window)
            if len(page) == self.batch_size:
                return page, page[-1].id, window
            if stop >= head:
                return page, head, window  # a short page: all up to head
            start = stop

    def _window(self, covered: int, found: int, window: int) -> int:
        """Positions to read next: 1.25 pages' worth at the density of the last range (`found` events in `covered`
        positions; twice the range when it held none), at least a page's, at most eight times the last window."""
        wanted = covered * 2 if found == 0 else covered * self.batch_size * 5 // (found * 4)
        return max(self.batch_size, min(wanted, window * 8))

    def _apply(self, cursor: Cursor, notifications: Sequence[Notification], last: int, targets: list[tuple[_Target, int]],
               carried: Mapping[str, Carried]) -> None:
        """A page to each target from its position (its events in order, through the cursor its projection's `page`
        gives; each projection owns its tables, so one after another gives the rows event by event gives), and the
        targets' new position `last`. Each projection's pages hand on what they read and wrote (`carried`, by target)."""
        decoded: dict[int, DomainEventProtocol[UUID]] = {}
        writes = GatheredInserts(cursor)
        for target, position in targets:
            topics = target.topics
            page: list[tuple[DomainEventProtocol[UUID], int]] = []
            for notification in notifications:
                if notification.id > position and notification.topic in topics:
                    event = decoded.get(notification.id)
                    if event is None:
                        event = decoded[notification.id] = self.app.mapper.to_domain_event(notification)
                    page.append((event, notification.id))
            if not page:
                continue
            events = [event for event, _ in page]
            with target.projection.page(target.cursor(writes), events, self.views.dialect, carried[target.row]) as into:
                for event, at in page:
                    target.handler(type(event))(event, into, at)
        writes.flush()
        cursor.executemany(
            "UPDATE projection_positions SET position = ?, updated_at = ? WHERE name = ? AND position < ?",
            [(last, _now(), t.row, last) for t, _ in targets],
        )

    def rebuild(self, names: Sequence[str], progress: Progress | None = None, *, workers: int = 1,
                helpers: Helpers | None = None) -> int:
        """Build the projections' tables again from the first event, beside the tables in use, and swap
        them in when built (see the module's docstring); returns how many events were read (by the share
        that read most). With `workers` above 1 and `helpers`, the projections are dealt into that many
        shares (`shares`), this process fills the first and the helpers the others at once (other processes:
        each reads and decodes the events its share takes); then this process swaps them all in together."""
        self.setup()
        shadows = [Shadow(self.projections[name], self.views.dialect) for name in names]
        with contextlib.ExitStack() as stack:
            scratch = stack.enter_context(self.views.scratch())
            if scratch is not None or self.views.dialect == "postgres":
                shares = self.shares(shadows, workers if helpers is not None else 1)
            else:
                shares = [shadows]  # an in-memory store: nothing another process could fill
            if scratch is not None:
                scratches = [scratch, *(stack.enter_context(self.views.scratch()) for _ in shares[1:])]
                return self._rebuild_beside(list(zip(scratches, shares, strict=True)), names, progress, helpers)
        with self.views.transaction() as cursor:
            self.views.lock_for_ddl(cursor)
            self._rows(cursor, lock=True)  # the DDL lock, then positions, then tables: the order every runner locks in
            for shadow in shadows:
                shadow.create(cursor)
        head, done = self.head(), 0
        if len(shares) > 1 and helpers is not None:
            with helpers([([shadow.projection.name for shadow in share], None) for share in shares[1:]], head) as join:
                own = self._run([shadow.target for shadow in shares[0]], head, progress)
                done = max(own, *join())
        while shadows:
            done = max(done, self._run([shadow.target for shadow in shadows], head, progress))
            with self.views.transaction() as cursor:  # keys and indexes outside the swap: the positions stay locked briefly
                self.views.lock_for_ddl(cursor)  # shadows are created and swapped under it
                rows = self._rows(cursor)
                for shadow in shadows:
                    if shadow.row in rows:
                        shadow.index(cursor)
            with self.views.transaction() as cursor:
                self.views.lock_for_ddl(cursor)
                rows = self._rows(cursor, lock=True)
                shadows = [shadow for shadow in shadows if shadow.row in rows]  # the others another rebuild swapped in
                if all(rows[shadow.row] >= head for shadow in shadows):  # else another rebuild began them again: go on
                    for shadow in shadows:
                        shadow.swap(cursor, rows[shadow.row])
                    shadows = []
        return done + self.catch_up(names)

    def shares(self, shadows: Sequence[Shadow], workers: int) -> list[list[Shadow]]:
        """`shadows` dealt into at most `workers` shares of about as many events to process each (the events of each
        projection's topics, counted in the log): the projection with most first, each to the share with fewest so
        far. One share (no count) for one worker or one projection."""
        if workers <= 1 or len(shadows) <= 1:
            return [list(shadows)]
        counts = self.app.recorder.topic_counts(self.head())  # type: ignore[attr-defined] # ours: infra/recorders.py
        weights = {shadow.row: sum(counts.get(topic, 0) for topic in shadow.target.topics) for shadow in shadows}
        shares: list[list[Shadow]] = [[] for _ in range(min(workers, len(shadows)))]
        loads = [0] * len(shares)
        for shadow in sorted(shadows, key=lambda shadow: -weights[shadow.row]):
            lightest = loads.index(min(loads))
            shares[lightest].append(shadow)
            loads[lightest] += weights[shadow.row]
        return sorted(shares, key=lambda share: [shadows.index(shadow) for shadow in share])

    def fill(self, names: Sequence[str], head: int, scratch: ViewStore | None) -> int:
        """A helper's share of another process's rebuild (`rebuild`'s `helpers`): the named projections' shadows filled
        up to `head`, in `scratch` (SQLite: the file the rebuilding process made, with its tables; closed after) or in the
        store, where that process created them; returns how many events were read."""
        shadows = [Shadow(self.projections[name], self.views.dialect) for name in names]
        if scratch is None:
            return self._run([shadow.target for shadow in shadows], head, None)
        try:
            return self._fill_beside(scratch, shadows, head, None)
        finally:
            scratch.close()

    def _fill_beside(self, scratch: ViewStore, shadows: list[Shadow], head: int, progress: Progress | None) -> int:
        """The shadows filled up to `head` in `scratch` by a runner of the same projections (an appending projection's
        tables without their keys: the copy into the store builds them, `Shadow.copy`)."""
        builder = ProjectionRunner(self.app, scratch, list(self.projections.values()), self.batch_size, self.carried_journeys)
        done = builder._run([shadow.target for shadow in shadows], head, progress)
        scratch.close()  # committed, and its page cache freed before the store's fills with the copy
        return done

    def _rebuild_beside(self, shares: list[tuple[ViewStore, list[Shadow]]], names: Sequence[str], progress: Progress | None,
                        helpers: Helpers | None) -> int:
        """A rebuild on SQLite: the shadows filled up to the head in scratch files of their own (`SQLiteViews.scratch`), a
        share each (the first by this process, the others by `helpers`); then, in one transaction of the store, each copied
        in (`Shadow.copy`: page by page where the tables are alike, an appending projection's in its key's order) and
        swapped in. The store's write-ahead log never holds the pages the filling changes again and again (a key led by
        the journey dirties about one page per row), only the filled tables, once. Nothing reaches the store before that
        transaction: a rebuild that stops part way leaves it as it was."""
        for scratch, shadows in shares:
            with scratch.transaction() as cursor:  # the shadows alone: no name the store's statements could find there
                cursor.execute(POSITIONS_DDL)
                for shadow in shadows:
                    shadow.create(cursor)
            scratch.close()  # committed: a helper fills it from its own connection
        head = self.head()
        (own, own_shadows), others = shares[0], shares[1:]
        if others and helpers is not None:
            paths: list[Share] = [([shadow.projection.name for shadow in shadows], scratch.database.path) for scratch, shadows in others]
            with helpers(paths, head) as join:
                done = self._fill_beside(own, own_shadows, head, progress)
                done = max(done, *join())
        else:
            done = self._fill_beside(own, own_shadows, head, progress)
        with contextlib.ExitStack() as attached:
            for number, (scratch, _) in enumerate(shares):
                attached.enter_context(self.views.attached(scratch, f"{SCRATCH}{number}"))
            attached.enter_context(self.views.replacing())  # the old tables dropped without zeroing their pages
            with self.views.transaction() as cursor:  # the store's one write lock
                for number, (_, shadows) in enumerate(shares):
                    for shadow in shadows:
                        shadow.create(cursor, copied=True)
                        shadow.copy(cursor, f"{SCRATCH}{number}")
                        shadow.swap(cursor, head)
        return done + self.catch_up(names)

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


POSITIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS projection_positions (name TEXT PRIMARY KEY, position BIGINT NOT NULL, updated_at TEXT NOT NULL)"
)
SHADOW = "_rebuilding"
"""The suffix of a shadow's table and index names, and of its row in projection_positions."""
SCRATCH = "scratch"
"""The name a rebuild's scratch file is attached under (SQLite) while its tables are copied into the store."""
_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)
_KEY = re.compile(r",\s*PRIMARY\s+KEY\s*\(([^()]*)\)\s*\)\s*$", re.IGNORECASE)
_INDEX = re.compile(r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)


def renaming(names: Mapping[str, str]) -> Callable[[str], str]:
    """SQL with the given table and index names (whole words) replaced; each statement rewritten once."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + r")\b")

    @functools.lru_cache(maxsize=256)  # handlers use a few constant statements
    def rename(sql: str) -> str:
        return pattern.sub(lambda match: names[match.group(1)], sql)

    return rename


class Renamed:
    """A cursor that sends every statement through `rename`."""

    def __init__(self, cursor: Cursor, rename: Callable[[str], str]) -> None:
        self._cursor, self.rename = cursor, rename

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def execute(self, sql: str, params: Params = (), /) -> object:
        return self._cursor.execute(self.rename(sql), params)

    def executemany(self, sql: str, rows: Sequence[Params], /) -> object:
        return self._cursor.executemany(self.rename(sql), rows)

    def fetchone(self) -> Any:  # noqa: ANN401 - a row, or None
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


class _Target:
    """What a page is applied to: a projection's tables under its position row, or (`renames` given) its shadow's."""

    def __init__(self, projection: Projection, renames: Mapping[str, str] | None = None) -> None:
        self.projection, self.topics = projection, projection.topics
        self.row = projection.name + (SHADOW if renames else "")
        self._rename = renaming(renames) if renames else None
        self._handlers: dict[type, Handler] = {}

    def cursor(self, writes: Cursor) -> Cursor:
        return writes if self._rename is None else Renamed(writes, self._rename)

    def handler(self, kind: type) -> Handler:
        """`projection.process` for events of class `kind`: a single-dispatch method's implementation for
        the class is looked up once (called through the method, the lookup and a new wrapper are per event)."""
        found = self._handlers.get(kind)
        if found is None:
            method = inspect.getattr_static(self.projection, "process")
            if isinstance(method, functools.singledispatchmethod):
                method.__get__(self.projection)  # the library's registers its deferred implementations then
                found = method.dispatcher.dispatch(kind).__get__(self.projection)
            else:
                found = self.projection.process
            self._handlers[kind] = found
        return found


class Shadow:
    """A projection's tables built again beside the ones in use, from its own DDL with the names changed:
    the tables first, the secondary indexes once they are filled (`index`; and the primary keys of a projection
    that only appends: added on PostgreSQL, its rows copied in key order into the keyed table on SQLite), then
    `swap`. Every CREATE INDEX waits for the filling, so a key a handler relies on (ON CONFLICT) belongs in its
    CREATE TABLE."""

    def __init__(self, projection: Projection, dialect: str) -> None:
        self.projection, self.dialect = projection, dialect
        statements = projection.ddl(dialect)
        self.indexes = [statement for statement in statements if _INDEX.match(statement)]
        self.tables = [statement for statement in statements if not _INDEX.match(statement)]
        self.keyed = list(self.tables)
        self.keys: list[tuple[str, str, str]] = []  # (table, columns, CREATE TABLE) of keys given once the tables are filled
        if projection.appends_only:
            self.tables = [self._unkeyed(statement) for statement in self.tables]
        index_names = [match.group(1) for match in map(_INDEX.match, self.indexes) if match]
        names = {name: name + SHADOW for name in (*projection.tables, *index_names)}
        self.target = _Target(projection, names)
        self.row = self.target.row

    def _unkeyed(self, statement: str) -> str:
        """A CREATE TABLE without its closing PRIMARY KEY clause (kept in `keys`)."""
        table, key = _TABLE.match(statement), _KEY.search(statement)
        if table is None or key is None:
            return statement
        self.keys.append((table.group(1), key.group(1), statement))
        return statement[: key.start()] + statement[key.end() - 1 :]

    def create(self, cursor: Cursor, *, copied: bool = False) -> None:
        """Discard what an earlier rebuild left and create the tables, at position zero. `copied`: for rows copied from
        a scratch file attached to the connection (SQLite), whose filled tables have the same names: each table with its
        primary key, as the projection's DDL makes it, and only the store's ("main") leftovers dropped."""
        into = self.target.cursor(cursor)
        for table in self.projection.tables:
            into.execute(f"DROP TABLE IF EXISTS {'main.' if copied else ''}{table}")
        for statement in self.keyed if copied else self.tables:
            into.execute(statement)
        cursor.execute("DELETE FROM projection_positions WHERE name = ?", (self.row,))
        cursor.execute("INSERT INTO projection_positions (name, position, updated_at) VALUES (?, 0, ?)", (self.row, _now()))

    def copy(self, cursor: Cursor, source: str) -> None:
        """Every table's rows from the same-named shadow of the scratch file attached as `source` (SQLite) into the
        store's, created by `create(copied=True)`: as they are (page by page: the tables are alike), and an appending
        projection's, filled there without its key, in the key's order, so its keyed table is built once, appending,
        with the rows a keyed fill gives (the same order of rowids as `_key`'s)."""
        ordered = {table: columns for table, columns, _ in self.keys}
        for table in self.projection.tables:
            _copy_rows(cursor, f"main.{table}{SHADOW}", f"{source}.{table}{SHADOW}", ordered.get(table))

    def index(self, cursor: Cursor) -> None:
        """The keys an appending projection's tables were filled without, and on PostgreSQL the secondary indexes: on
        the filled tables, cheaper than keeping them up row by row (a key led by the journey dirties a page per row)."""
        if self.dialect == "postgres":
            into = self.target.cursor(cursor)
            for statement in self.indexes:
                into.execute(statement)
        for table, columns, statement in self.keys:
            self._key(cursor, table + SHADOW, columns, statement)

    def _key(self, cursor: Cursor, shadow: str, columns: str, statement: str) -> None:
        """The primary key `columns` on the filled `shadow` table, unless it has it already. PostgreSQL adds it;
        SQLite cannot, so the rows go in key order into the table as its DDL makes it."""
        if self.dialect == "postgres":
            cursor.execute("SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(?) AND contype = 'p'", (shadow,))
            if cursor.fetchone() is None:
                cursor.execute(f"ALTER TABLE {shadow} ADD PRIMARY KEY ({columns})")
            return
        cursor.execute("SELECT count(*) FROM pragma_table_info(?) WHERE pk > 0", (shadow,))
        if cursor.fetchone()[0] > 0:
            return
        cursor.execute(f"ALTER TABLE {shadow} RENAME TO {shadow}_unkeyed")
        self.target.cursor(cursor).execute(statement)
        _copy_rows(cursor, shadow, f"{shadow}_unkeyed", columns)
        cursor.execute(f"DROP TABLE {shadow}_unkeyed")

    def swap(self, cursor: Cursor, position: int) -> None:
        """Drop the tables in use, give the shadow's their names and the projection the shadow's position.
        PostgreSQL renames the shadow's indexes (its primary keys' too); SQLite cannot rename an index and
        creates them here (readers meanwhile read the old tables: its WAL gives them the last commit)."""
        name = self.projection.name
        self.index(cursor)  # no-ops, unless another rebuild began the shadow again since they were built
        for table in self.projection.tables:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        for table in self.projection.tables:
            cursor.execute(f"ALTER TABLE {table}{SHADOW} RENAME TO {table}")
        if self.dialect == "postgres":
            cursor.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ANY(?)"
                " AND strpos(indexname, ?) > 0",
                (list(self.projection.tables), SHADOW),
            )
            for (index,) in cursor.fetchall():
                cursor.execute(f"ALTER INDEX {index} RENAME TO {index.replace(SHADOW, '', 1)}")
        else:
            for statement in self.indexes:
                cursor.execute(statement)
        cursor.execute("DELETE FROM projection_positions WHERE name = ?", (self.row,))
        cursor.execute("UPDATE projection_positions SET position = ?, updated_at = ? WHERE name = ?", (position, _now(), name))


def _copy_rows(cursor: Cursor, into: str, source: str, key: str | None = None) -> None:
    """Every row of `source` into the alike table `into`; with `key`, in the order of those columns (a keyed table then
    built appending, its rowids in key order)."""
    order = f" ORDER BY {key}" if key else ""
    cursor.execute(f"INSERT INTO {into} SELECT * FROM {source}{order}")  # noqa: S608


def _now() -> str:
    return datetime.now(tz=UTC).isoformat()
