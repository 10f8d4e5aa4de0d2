"""Where a client was placed, as intervals, for projections that file facts under the level, site and
planned hours in force when they happened (attendance, drug tests).

Each projection keeps its own table of these intervals (it owns its tables); this module gives the
DDL, the handlers' shared steps and the query. An interval is opened by an admission, a step or a
change of track and closed by the next of them or the discharge; `stay` is the version of the
admission or step that entered the level (a change of track keeps it), `episode` the version that
opened the episode. Only the latest change of level is ever voided, so a void deletes the interval it
opened and reopens the one it closed. When the intervals of a journey change (a correction or a
void), its facts are filed again by their time.

On a runner's page (`Placements.page`, projections/pages.py) the intervals of the page's journeys are
read once and followed in memory, so a fact is filed without a query; on a plain cursor each step is
its statement, as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from domain import events as ev
from domain.record import TRANSITIONS
from infra.views import Cursor
from projections.base import from_utc, id_text, id_type, utc
from projections.pages import Carried, JourneyRows, Paged, Row, journeys

Placing = ev.WithdrawalManagementStarted | ev.AdmittedToLevel | ev.LevelChange | ev.TrackChanged | ev.Discharged
"""The events that open or close an interval (a projection registers one handler for them all)."""
PLACING = (ev.WithdrawalManagementStarted, ev.AdmittedToLevel, ev.SteppedUp, ev.SteppedDown, ev.TrackChanged, ev.Discharged)


@dataclass(frozen=True)
class Placed:
    level: str
    site: str
    track: str
    hours: float
    stay: int
    episode: int

    def columns(self) -> tuple[str, str, str, float, int, int]:
        """The values of a fact's level, site, track, hours, stay and episode columns."""
        return self.level, self.site, self.track, self.hours, self.stay, self.episode


NOWHERE = Placed("", "", "", 0.0, 0, 0)
"""Where a fact before any placement is filed."""


@dataclass(frozen=True)
class Interval(Placed):
    """One interval of a journey's placements."""

    journey_id: str
    started_at: datetime
    ended_at: datetime | None


class PlacedPage:
    """What a projection that files facts under placements keeps for a page: the intervals of its journeys."""

    COLUMNS = ("level", "site", "track", "hours", "stay", "episode", "started_at", "ended_at")

    def __init__(self, placements: Placements, cursor: Cursor, dialect: str, journey_ids: Sequence[str],
                 carried: Carried | None = None) -> None:
        self.intervals = JourneyRows(cursor, dialect, placements.table, "opened_by", self.COLUMNS, journey_ids, carried)
        self._placed: dict[Row, Placed] = {}  # an interval's columns never change in memory (corrections: `sync`, then SQL)

    def in_force(self, journey: str, moment: str) -> Placed:
        """`Placements.filed`'s query in memory: the latest interval (by start, then opener) started by `moment`."""
        best: Row | None = None
        latest = ("", 0)
        for row in self.intervals.of(journey):
            values = row.values
            started = values["started_at"]
            if started <= moment and (best is None or (started, values["opened_by"]) > latest):
                best, latest = row, (started, values["opened_by"])
        if best is None:
            return NOWHERE
        placed = self._placed.get(best)
        if placed is None:
            values = best.values
            placed = self._placed[best] = Placed(str(values["level"]), str(values["site"]), str(values["track"]),
                                                 float(values["hours"]), int(values["stay"]), int(values["episode"]))
        return placed

    def write(self) -> None:
        self.intervals.write()

    def sync(self, journey: str) -> None:
        """Before a handler's own SQL (a correction, a void) on `journey`: what the page holds written, the journey's
        rows to be read again after."""
        self.intervals.sync(journey)


def placed_page(cursor: Cursor) -> PlacedPage | None:
    """The page's intervals, when `cursor` is a page's (None: the one-event path, each step in SQL)."""
    return cursor.state if isinstance(cursor, Paged) and isinstance(cursor.state, PlacedPage) else None


class Placements:
    """The intervals in `table`, and the facts of table `facts` filed under them by their `time_column`."""

    def __init__(self, table: str, facts: str, time_column: str) -> None:
        self.table, self.facts, self.time_column = table, facts, time_column

    @contextmanager
    def page(self, cursor: Cursor, events: Sequence[DomainEventProtocol[UUID]], dialect: str, carried: Carried | None = None,
             kind: type[PlacedPage] = PlacedPage) -> Iterator[Cursor]:
        """A page's cursor: the intervals of its journeys read once, kept in memory, written back at its end."""
        state = kind(self, cursor, dialect, journeys(events), carried)
        yield Paged(cursor, state)
        state.write()

    def ddl(self, dialect: str) -> list[str]:
        version = id_type(dialect)
        return [
            f"""CREATE TABLE IF NOT EXISTS {self.table} (
                journey_id TEXT NOT NULL, opened_by {version} NOT NULL, closed_by {version}, level TEXT NOT NULL,
                site TEXT NOT NULL, track TEXT NOT NULL, hours REAL NOT NULL, stay {version} NOT NULL,
                episode {version} NOT NULL, started_at TEXT NOT NULL, ended_at TEXT, PRIMARY KEY (journey_id, opened_by))""",
        ]

    def follow(self, cursor: Cursor, event: Placing) -> None:
        """An admission or start of withdrawal management opens an episode, a step a stay, a change of track
        a new interval of the same stay; a discharge closes the last interval."""
        if isinstance(event, ev.Discharged):
            self.leave(cursor, event)
        elif isinstance(event, ev.WithdrawalManagementStarted):
            track = "residential" if event.level.is_24_hour else "day"
            self.enter(cursor, event, event.level.code, event.site, track, 0.0, kind="episode")
        elif isinstance(event, ev.AdmittedToLevel):
            self.enter(cursor, event, event.level.code, event.site, event.track.value, event.planned_hours_per_week, kind="episode")
        elif isinstance(event, ev.LevelChange):
            self.enter(cursor, event, event.to_level.code, event.site, event.track.value, event.planned_hours_per_week, kind="stay")
        else:
            self.enter(cursor, event, event.level.code, event.site, event.track.value, event.planned_hours_per_week, kind="track")

    def enter(self, cursor: Cursor, event: ev.JourneyEvent, level: str, site: str, track: str, hours: float, *, kind: str) -> None:
        """An admission (`kind` "episode"), a step ("stay") or a change of track ("track") at the event's time."""
        journey, version, at = id_text(event.originator_id), event.originator_version, utc(event.occurred_at)
        stay = episode = version
        page = placed_page(cursor)
        if page is not None:
            rows = page.intervals.of(journey)
            opened = [row for row in rows if row["ended_at"] is None]
            if kind != "episode" and opened:
                stay = version if kind == "stay" else int(opened[0]["stay"])
                episode = int(opened[0]["episode"])
            _close(opened, at, version)
            page.intervals.add(journey, opened_by=version, level=level, site=site, track=track, hours=hours, stay=stay,
                               episode=episode, started_at=at, ended_at=None, closed_by=None)
            return
        if kind != "episode":
            cursor.execute(
                f"SELECT stay, episode FROM {self.table} WHERE journey_id = ? AND ended_at IS NULL",  # noqa: S608
                (journey,),
            )
            row = cursor.fetchone()
            if row is not None:
                stay = version if kind == "stay" else int(row[0])
                episode = int(row[1])
        self.leave(cursor, event)
        cursor.execute(
            f"INSERT INTO {self.table} (journey_id, opened_by, level, site, track, hours, stay, episode, started_at)"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (journey, version, level, site, track, hours, stay, episode, at),
        )

    def leave(self, cursor: Cursor, event: ev.JourneyEvent) -> None:
        page = placed_page(cursor)
        if page is not None:
            rows = page.intervals.of(id_text(event.originator_id))
            _close([row for row in rows if row["ended_at"] is None], utc(event.occurred_at), event.originator_version)
            return
        cursor.execute(
            f"UPDATE {self.table} SET ended_at = ?, closed_by = ? WHERE journey_id = ? AND ended_at IS NULL",  # noqa: S608
            (utc(event.occurred_at), event.originator_version, id_text(event.originator_id)),
        )

    def voided(self, cursor: Cursor, event: ev.EntryVoided) -> None:
        """Drop a voided change of level, reopen what it closed and file the journey's facts again."""
        if event.voided_type not in TRANSITIONS:
            return
        sync(cursor, id_text(event.originator_id))
        key = (id_text(event.originator_id), event.voided_version)
        cursor.execute(f"DELETE FROM {self.table} WHERE journey_id = ? AND opened_by = ?", key)  # noqa: S608
        cursor.execute(
            f"UPDATE {self.table} SET ended_at = NULL, closed_by = NULL WHERE journey_id = ? AND closed_by = ?",  # noqa: S608
            key,
        )
        self.refile(cursor, key[0])

    def corrected(self, cursor: Cursor, event: ev.EntryCorrected) -> None:
        """Apply a correction of a change of level's time, site, track or hours, and file the journey's facts again."""
        if event.corrects_type not in TRANSITIONS:
            return
        sync(cursor, id_text(event.originator_id))
        key = (id_text(event.originator_id), event.corrects_version)
        if event.field == "occurred_at":
            moment = utc(datetime.fromisoformat(str(event.corrected_value)))
            cursor.execute(f"UPDATE {self.table} SET started_at = ? WHERE journey_id = ? AND opened_by = ?", (moment, *key))  # noqa: S608
            cursor.execute(f"UPDATE {self.table} SET ended_at = ? WHERE journey_id = ? AND closed_by = ?", (moment, *key))  # noqa: S608
            self.refile(cursor, key[0])
            return
        column = {"site": "site", "track": "track", "planned_hours_per_week": "hours"}.get(event.field)
        if column is None:
            return
        value: object = float(str(event.corrected_value)) if column == "hours" else str(event.corrected_value)
        cursor.execute(f"UPDATE {self.table} SET {column} = ? WHERE journey_id = ? AND opened_by = ?", (value, *key))  # noqa: S608
        self.refile(cursor, key[0])

    def filed(self, cursor: Cursor, journey_id: str, moment: str) -> Placed:
        """The interval in force at `moment` (UTC text); a fact after the discharge files under the last one."""
        page = placed_page(cursor)
        if page is not None:
            return page.in_force(journey_id, moment)
        cursor.execute(
            f"SELECT level, site, track, hours, stay, episode FROM {self.table} WHERE journey_id = ? AND started_at <= ?"  # noqa: S608
            " ORDER BY started_at DESC, opened_by DESC LIMIT 1",
            (journey_id, moment),
        )
        row = cursor.fetchone()
        return NOWHERE if row is None else Placed(str(row[0]), str(row[1]), str(row[2]), float(row[3]), int(row[4]), int(row[5]))

    def refile(self, cursor: Cursor, journey_id: str) -> None:
        """After the intervals or a fact's time changed: file the journey's facts again by their time."""
        sync(cursor, journey_id)
        placed, facts, when = self.table, self.facts, self.time_column
        cursor.execute(
            f"UPDATE {facts} SET level = p.level, site = p.site, track = p.track, hours = p.hours, stay = p.stay,"  # noqa: S608
            f" episode = p.episode FROM {placed} p WHERE {facts}.journey_id = ? AND p.journey_id = {facts}.journey_id"
            f" AND p.opened_by = (SELECT q.opened_by FROM {placed} q WHERE q.journey_id = {facts}.journey_id"
            f" AND q.started_at <= {facts}.{when} ORDER BY q.started_at DESC, q.opened_by DESC LIMIT 1)",
            (journey_id,),
        )

    def intervals(self, cursor: Cursor, level: str, since: datetime | None, until: datetime | None) -> list[Interval]:
        """The intervals at `level` that overlap [since, until)."""
        where, params = ["level = ?"], [level]
        if until is not None:
            where.append("started_at < ?")
            params.append(utc(until))
        if since is not None:
            where.append("(ended_at IS NULL OR ended_at > ?)")
            params.append(utc(since))
        cursor.execute(
            f"SELECT journey_id, level, site, track, hours, stay, episode, started_at, ended_at FROM {self.table}"  # noqa: S608
            f" WHERE {' AND '.join(where)} ORDER BY journey_id, started_at",
            params,
        )
        return [Interval(lv, s, t, float(h), int(st), int(ep), journey_id=j, started_at=from_utc(a),
                         ended_at=None if e is None else from_utc(e))
                for j, lv, s, t, h, st, ep, a, e in cursor.fetchall()]


def sync(cursor: Cursor, journey: str) -> None:
    """Before SQL of a handler's own about `journey` on a page's cursor: the page's rows written back (the journey's
    read again after)."""
    page = placed_page(cursor)
    if page is not None:
        page.sync(journey)


def _close(opened: list[Row], at: str, version: int) -> None:
    for row in opened:
        row.set(ended_at=at, closed_by=version)


def period(column: str, since: datetime | None, until: datetime | None) -> tuple[str, list[str]]:
    """The SQL condition, and its parameters, of the facts whose time `column` is in [since, until) (either may be left out)."""
    where, params = ["1 = 1"], []
    if since is not None:
        where.append(f"{column} >= ?")
        params.append(utc(since))
    if until is not None:
        where.append(f"{column} < ?")
        params.append(utc(until))
    return " AND ".join(where), params


def kept(site: str | None, levels: tuple[str, ...] | None, alias: str = "") -> tuple[list[str], list[str]]:
    """The SQL conditions, and their parameters, of the rows of one site and of one of `levels` (a report's --site and
    --level), each left out when not given; `alias` is the table's ("s." for `s.site`)."""
    where, params = [], []
    if site is not None:
        where.append(f"{alias}site = ?")
        params.append(site)
    if levels is not None:
        where.append(f"{alias}level IN ({', '.join('?' for _ in levels)})")
        params.extend(levels)
    return where, params
