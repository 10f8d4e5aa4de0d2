"""The peer a user of the eventsourcing library gets by default: its stock `ProjectionRunner`,
driving the same projection handlers through a thin adapter.

The adapter is a library `Projection` whose `process_event` runs our handler and the library's
tracking insert in one transaction per event (what the library's docs show). The stock SQLite
recorder cannot subscribe, so on SQLite the application uses the polling recorder of
notes/eventsourcing.md section 3 (a `ListenNotifySubscription` woken every 50 ms); on PostgreSQL it
is the library's own LISTEN/NOTIFY subscription.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any, ClassVar

from eventsourcing.persistence import ListenNotifySubscription, Subscription, Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import Projection as LibraryProjection
from eventsourcing.projection import ProjectionRunner as StockRunner
from eventsourcing.sqlite import SQLiteTrackingRecorder
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier

from infra.raw import events_table
from infra.recorders import ChainedSQLiteRecorder
from infra.store import store_environment
from projections.base import Projection
from services.bootstrap import Continuum
from services.journeys import CareContinuum

POLL_SECONDS = 0.05


class PollingChainedSQLiteRecorder(ChainedSQLiteRecorder):
    """The stock SQLite recorder raises NotImplementedError on subscribe(); this one polls."""

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> Subscription[Any]:
        subscription = ListenNotifySubscription(self, gt, topics)

        def tick() -> None:
            while not subscription._has_been_stopped:  # noqa: SLF001 - the notes' trick
                subscription._has_been_notified.set()  # noqa: SLF001
                time.sleep(POLL_SECONDS)

        threading.Thread(target=tick, daemon=True).start()
        return subscription


class _Cursor:
    """Our handlers' cursor (`?` placeholders, rows as tuples) over the library's cursor."""

    def __init__(self, cursor: Any, *, postgres: bool) -> None:  # noqa: ANN401
        self._cursor = cursor
        self._postgres = postgres

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._postgres else sql

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> object:
        return self._cursor.execute(self._sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], /) -> object:
        return self._cursor.executemany(self._sql(sql), rows)

    def fetchone(self) -> Any:  # noqa: ANN401
        row = self._cursor.fetchone()
        return None if row is None else self._tuple(row)

    def fetchall(self) -> list[Any]:
        return [self._tuple(row) for row in self._cursor.fetchall()]

    def _tuple(self, row: Any) -> tuple[Any, ...]:  # noqa: ANN401
        return tuple(row.values()) if isinstance(row, dict) else tuple(row)


class StockSQLiteView(SQLiteTrackingRecorder):
    def apply(self, projection: Projection, event: Any, tracking: Tracking) -> None:  # noqa: ANN401
        with self.datastore.transaction(commit=True) as cursor:
            self._insert_tracking(cursor, tracking)
            projection.process(event, _Cursor(cursor, postgres=False), tracking.notification_id)


class StockPostgresView(PostgresTrackingRecorder):
    _configured: ClassVar[weakref.WeakSet[Any]] = weakref.WeakSet()  # connections whose search_path is set

    def apply(self, projection: Projection, event: Any, tracking: Tracking) -> None:  # noqa: ANN401
        with self.datastore.transaction(commit=True) as cursor:
            if cursor.connection not in self._configured:  # our SQL names tables without a schema
                cursor.execute(SQL("SET search_path TO {0}").format(Identifier(self.datastore.schema)))
                self._configured.add(cursor.connection)
            self._insert_tracking(cursor, tracking)
            projection.process(event, _Cursor(cursor, postgres=True), tracking.notification_id)


class _Probe:
    """When the stock runner handled its first event and when it reached the target position."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.first: tuple[int, float] | None = None
        self.last: tuple[int, float] | None = None
        self.handled = 0
        self.done = threading.Event()

    def seen(self, position: int) -> None:
        now = time.perf_counter()
        self.handled += 1
        if self.first is None:
            self.first = (position, now)
        if position >= self.target:
            self.last = (position, now)
            self.done.set()


def _adapter(ours: Projection, probe: _Probe) -> type[LibraryProjection[Any]]:
    class Stock(LibraryProjection[Any]):
        name = ours.name
        topics = tuple(sorted(ours.topics))

        def process_event(self, domain_event: Any, tracking: Tracking) -> None:  # noqa: ANN401
            self.view.apply(ours, domain_event, tracking)
            probe.seen(tracking.notification_id)

    return Stock


def stock_run(wired: Continuum, name: str, positions: int, timeout: float = 900.0) -> dict[str, Any]:
    """Drive projection `name` from position zero with the stock runner until it has covered
    `positions` positions of the log (or the whole log, if shorter); positions per second."""
    projection = wired.runner.projections[name]
    kind = wired.database.kind
    position = "rowid" if kind == "sqlite" else "notification_id"
    topics = sorted(projection.topics)
    with wired.views.transaction() as cursor:
        marks = ", ".join("?" for _ in topics)
        cursor.execute(
            f"SELECT MIN({position}), MAX({position}), COUNT(*) FROM {events_table(kind)}"  # noqa: S608
            f" WHERE {position} <= ? AND topic IN ({marks})",
            (positions, *topics),
        )
        first, target, handled = cursor.fetchone()
        tracking = "tracking" if kind == "sqlite" else f"{name}_tracking"
        for table in (*projection.tables, tracking):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in projection.ddl(wired.views.dialect):
            cursor.execute(statement)
    if target is None:
        return {"status": "skipped", "reason": f"no {name} events in the first {positions} positions"}
    probe = _Probe(int(target))
    env = store_environment(wired.database, cipher_key=None, connect_timeout=wired.settings.connect_timeout)
    if kind == "sqlite":
        env["APPLICATION_RECORDER_TOPIC"] = get_topic(PollingChainedSQLiteRecorder)
    view_class: type[Any] = StockSQLiteView if kind == "sqlite" else StockPostgresView
    started = time.perf_counter()
    with StockRunner(application_class=CareContinuum, projection_class=_adapter(projection, probe),
                     view_class=view_class, env=env) as runner:
        reached = probe.done.wait(timeout)
        runner.stop()
    if not reached or probe.first is None or probe.last is None:
        msg = f"the stock runner did not reach position {target} of {name} in {timeout:.0f} s"
        raise RuntimeError(msg)
    covered = probe.last[0] - probe.first[0]
    seconds = probe.last[1] - probe.first[1]
    return {
        "status": "ok",
        "positions": covered,
        "events_handled": probe.handled,
        "seconds": seconds,
        "events_per_s": covered / seconds if seconds > 0 else float("inf"),
        "startup_seconds": probe.first[1] - started,
        "first_position": int(first),
        "last_position": probe.last[0],
        "handled_in_range": int(handled),
        "how": "stock eventsourcing.projection.ProjectionRunner, topics filtered, one transaction per event"
               + (" (polling SQLite recorder)" if kind == "sqlite" else " (LISTEN/NOTIFY)"),
    }
