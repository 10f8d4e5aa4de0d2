"""What a projection keeps for the length of one page of events (one transaction of the runner).

A handler that reads its own tables costs a round trip per event when it asks the database (on
PostgreSQL most of a rebuild's time). Given a page at once, a projection reads the rows its handlers
will need for every journey of the page in one SELECT, changes them in memory as the events come,
and writes them back when the page ends: a few statements per page instead of several per event.
The rows come out as the one-event path (`Projection.process` on a plain cursor, one statement at a
time) writes them; tests/projections/test_pages.py holds the two paths equal.

Rare events (corrections, voids) keep their SQL: their handler first writes back what the page holds
(`sync`), runs its statements, and the next handler to want the rows reads them again.

Within one run of the runner, what a page read and wrote is handed on to the next page (`Carried`), so a
page reads only the journeys the run has not met lately.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from infra.views import Cursor, Params
from projections.base import id_text

State = TypeVar("State")
SIZES = (1, 8, 64, 512)
"""How many journeys one SELECT asks for on SQLite (the list padded to the next size, the largest repeated): a few
statements whose text repeats, each compiled once (older builds allow 999 parameters per statement)."""


class Paged(Generic[State]):
    """The cursor a projection's handlers get for a page: the runner's, carrying what the projection keeps for it."""

    def __init__(self, cursor: Cursor, state: State) -> None:
        self.cursor, self.state = cursor, state

    @property
    def rowcount(self) -> int:
        return self.cursor.rowcount

    def execute(self, sql: str, params: Params = (), /) -> object:
        return self.cursor.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Params], /) -> object:
        return self.cursor.executemany(sql, rows)

    def fetchone(self) -> Any:  # noqa: ANN401 - a row, or None
        return self.cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self.cursor.fetchall()


def journeys(events: Iterable[DomainEventProtocol[UUID]]) -> list[str]:
    """The journeys of a page's events, each once, in order."""
    return list(dict.fromkeys(id_text(event.originator_id) for event in events))


def by_journey(cursor: Cursor, dialect: str, table: str, columns: Sequence[str], journey_ids: Sequence[str]) -> list[Any]:
    """(journey_id, *columns) of `table`'s rows of `journey_ids`, found by key: on PostgreSQL one statement, a
    LATERAL lookup per journey (`journey_id = ANY(?)` is planned as a scan of the whole table while a table filled
    by a rebuild has no statistics: read once a page, that made a rebuild's cost per event grow with the log); on
    SQLite `IN (?, ...)` per chunk, padded to one of `SIZES` with its last journey."""
    names = ", ".join(columns)
    if dialect == "postgres":
        if not journey_ids:
            return []
        cursor.execute(LOOKUP.format(columns=names, table=table), (list(journey_ids),))
        return cursor.fetchall()
    found: list[Any] = []
    largest = SIZES[-1]
    for start in range(0, len(journey_ids), largest):
        chunk = list(journey_ids[start : start + largest])
        size = next(size for size in SIZES if size >= len(chunk))
        cursor.execute(f"SELECT journey_id, {names} FROM {table} WHERE journey_id {_IN[size]}", chunk + chunk[-1:] * (size - len(chunk)))  # noqa: S608
        found += cursor.fetchall()
    return found


LOOKUP = (
    "SELECT j.id, t.* FROM unnest(?::text[]) AS j (id) CROSS JOIN LATERAL"
    " (SELECT {columns} FROM {table} WHERE journey_id = j.id OFFSET 0) AS t"
)
LOOKED_UP = re.compile(re.escape(LOOKUP).replace(r"\{columns\}", r"[\w, ]+").replace(r"\{table\}", r"(\w+)"))
"""A statement of LOOKUP's; its group is the one table it reads."""
_IN = {size: f"IN ({', '.join('?' * size)})" for size in SIZES}


class Row:
    """One row in memory: its values by column, whether it is new in this page, and which columns changed."""

    __slots__ = ("changed", "journey", "new", "values")

    def __init__(self, journey: str, values: dict[str, Any], *, new: bool) -> None:
        self.journey, self.values, self.new = journey, values, new
        self.changed: set[str] = set()

    def __getitem__(self, column: str) -> Any:  # noqa: ANN401 - a column's value
        return self.values[column]

    def set(self, **values: Any) -> None:  # noqa: ANN401
        self.values.update(values)
        if not self.new:
            self.changed.update(values)


class Carried:
    """What one projection's pages hand on to the next within one run of the runner: each table's rows (as stored) of
    the journeys its pages read or wrote last, up to `limit` journeys a table, the least recently wanted forgotten
    first. A page then reads only the journeys it does not find here: in a long log most events of a page are of a
    journey no other event of the page is, and each of those would otherwise be read again every page it comes up in.

    It holds only while this runner alone writes the projection's tables: the runner tells it the position its last
    page committed (`committed`), and a page that starts anywhere else (another runner moved the position, a rebuild
    reset it) begins with nothing kept (`start`). A handler's own SQL about a journey first drops the journey
    (`JourneyRows.sync`). A stdlib OrderedDict keeps the order of use: the library's `LRUCache` (the aggregate cache)
    takes a lock and raises KeyError on each miss, per journey of every page."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._at: int | None = None
        self._tables: dict[str, OrderedDict[str, list[Row]]] = {}

    def start(self, position: int) -> None:
        """Before a page applied from `position`: everything kept is forgotten unless the last page ended there."""
        if position != self._at:
            self._tables.clear()

    def committed(self, position: int) -> None:
        """The page applied is committed, the projection's position now `position`."""
        self._at = position

    def rows(self, table: str, journey: str) -> list[Row] | None:
        """The journey's rows of `table` as stored, if kept."""
        kept = self._tables.get(table)
        return None if kept is None else kept.get(journey)

    def keep(self, table: str, rows_of: dict[str, list[Row]]) -> None:
        """The journeys' rows of `table`, now as stored, kept as the most recently wanted; the least recently wanted
        beyond `limit` forgotten."""
        kept = self._tables.setdefault(table, OrderedDict())
        for journey, rows in rows_of.items():
            kept[journey] = rows
            kept.move_to_end(journey)
        while len(kept) > self.limit:
            kept.popitem(last=False)

    def forget(self, table: str, journey: str) -> None:
        kept = self._tables.get(table)
        if kept is not None:
            kept.pop(journey, None)


class JourneyRows:
    """The rows of `table` (keyed by journey_id and `key`) of a page's journeys: those not `carried` over from earlier
    pages read with one SELECT when first wanted, changed in memory (`add`, `Row.set`), written back by `write` (new rows
    with one INSERT per set of columns, changed ones with one UPDATE per set of changed columns, each an executemany)
    and then kept for the next page."""

    def __init__(
        self,
        cursor: Cursor,
        dialect: str,
        table: str,
        key: str,
        columns: tuple[str, ...],
        journeys: Sequence[str],
        carried: Carried | None = None,
    ) -> None:
        self.cursor, self.dialect, self.table, self.key = cursor, dialect, table, key
        self.columns = (key, *columns)  # the columns read; journey_id besides
        self.journeys = journeys
        self._rows: dict[str, list[Row]] | None = None
        self._carried = carried

    def of(self, journey: str) -> list[Row]:
        """The journey's rows (the page's journeys are read together, the first time any is wanted)."""
        if self._rows is None:
            self._rows = self._load(self.journeys)
        rows = self._rows.get(journey)
        if rows is None:  # a journey outside the page's: read alone
            rows = self._rows[journey] = self._load([journey]).get(journey, [])
        return rows

    def _load(self, journeys: Sequence[str]) -> dict[str, list[Row]]:
        """The journeys' rows, in the order given: those kept from earlier pages, the others read."""
        carried = self._carried
        if carried is None:
            return self._read(journeys)
        found: dict[str, list[Row]] = {}
        missing = []
        for journey in journeys:
            rows = carried.rows(self.table, journey)
            if rows is None:
                missing.append(journey)
                rows = []  # its place in the order, the rows read below
            found[journey] = rows
        if missing:
            found.update(self._read(missing))
        return found

    def add(self, journey: str, **values: Any) -> Row:  # noqa: ANN401
        """A new row (`values` holds its key and every column the one-event path would give it)."""
        row = Row(journey, values, new=True)
        self.of(journey).append(row)
        return row

    def write(self) -> None:
        """Send the new and changed rows; the rows in memory stay, now as stored."""
        if self._rows is None:
            return
        inserts: dict[tuple[str, ...], list[Params]] = {}
        updates: dict[tuple[str, ...], list[Params]] = {}
        for rows in self._rows.values():
            for row in rows:
                if row.new:
                    columns = tuple(row.values)
                    inserts.setdefault(columns, []).append((row.journey, *row.values.values()))
                    row.new = False
                elif row.changed:
                    columns = tuple(sorted(row.changed))
                    updates.setdefault(columns, []).append((*(row.values[c] for c in columns), row.journey, row.values[self.key]))
                    row.changed = set()
        for columns, params in inserts.items():
            self.cursor.executemany(
                f"INSERT INTO {self.table} (journey_id, {', '.join(columns)}) VALUES ({', '.join('?' * (len(columns) + 1))})",  # noqa: S608
                params,
            )
        for columns, params in updates.items():
            self.cursor.executemany(
                f"UPDATE {self.table} SET {', '.join(f'{c} = ?' for c in columns)} WHERE journey_id = ? AND {self.key} = ?",  # noqa: S608
                params,
            )
        if self._carried is not None:  # the rows, now as stored, for the next page
            self._carried.keep(self.table, self._rows)

    def sync(self, journey: str) -> None:
        """Write back, and forget the journey's rows: SQL of the handlers' own comes next, and may change them (only
        the journey's: every such statement names it); they are read again when next wanted."""
        self.write()
        if self._rows is not None:
            self._rows.pop(journey, None)
        if self._carried is not None:
            self._carried.forget(self.table, journey)

    def _read(self, journeys: Sequence[str]) -> dict[str, list[Row]]:
        found: dict[str, list[Row]] = {journey: [] for journey in journeys}
        names = self.columns
        for journey, *values in by_journey(self.cursor, self.dialect, self.table, names, journeys):
            found[journey].append(Row(journey, dict(zip(names, values, strict=True)), new=False))
        for rows in found.values():
            rows.sort(key=lambda row: row.values[self.key])
        return found
