"""Census: who is at which level, site and track, now and on any past moment.

Every stay at a level is an interval (opened by an admission or step, closed by the next step or
the discharge), so a past census is a range query over intervals, not a replay of the store. Alumni
enrolment opens an interval at the pseudo-level `alumni`. Corrections of a transition's site,
track or time are applied to the intervals it opened or closed.

The census now is read from `census_now`, the number of open intervals per level, site and track,
kept by the same handlers that open, close and correct intervals, in the same transaction: it costs
the same at any number of clients. On a runner's page (`CensusPage`) the intervals are followed in
memory and each count's change is added up, then written once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import DomainEventProtocol

from domain import events as ev
from domain.levels import ALUMNI, Level
from domain.record import TRANSITIONS
from infra.views import Cursor
from projections.base import Projection, from_utc, id_text, id_type, utc
from projections.pages import Carried, JourneyRows, Paged, by_journey, journeys

TRANSITION_TYPES = TRANSITIONS


def level_rank(code: str) -> int:
    return -1 if code == ALUMNI else Level(code).rank


class Census(Projection):
    name = "census"
    handles = (
        ev.ClientRegistered, ev.WithdrawalManagementStarted, ev.AdmittedToLevel, ev.SteppedUp, ev.SteppedDown,
        ev.Discharged, ev.EnrolledInAlumni, ev.TrackChanged, ev.EntryCorrected, ev.EntryVoided,
    )
    tables = ("census_clients", "census_intervals", "census_now")

    def ddl(self, dialect: str) -> list[str]:
        return [
            (
                "CREATE TABLE IF NOT EXISTS census_clients"
                " (journey_id TEXT PRIMARY KEY, client_ref TEXT NOT NULL, site TEXT NOT NULL)"
            ),
            f"""CREATE TABLE IF NOT EXISTS census_intervals (
                journey_id TEXT NOT NULL, opened_by {id_type(dialect)} NOT NULL, closed_by {id_type(dialect)},
                level TEXT NOT NULL, level_rank INTEGER NOT NULL, site TEXT NOT NULL, track TEXT NOT NULL,
                started_at TEXT NOT NULL, ended_at TEXT, PRIMARY KEY (journey_id, opened_by))""",
            "CREATE INDEX IF NOT EXISTS census_open ON census_intervals (ended_at, level, site)",
            "CREATE INDEX IF NOT EXISTS census_started ON census_intervals (started_at)",
            (
                "CREATE TABLE IF NOT EXISTS census_now (level TEXT NOT NULL, level_rank INTEGER NOT NULL, site TEXT NOT NULL,"
                " track TEXT NOT NULL, clients INTEGER NOT NULL, PRIMARY KEY (level, site, track))"
            ),
            RECOUNT_IF_EMPTY,  # a census projected before census_now existed gets its counts here, once
        ]

    @staticmethod
    def recount(cursor: Cursor) -> None:
        """Count the open intervals again (after rows were written other than by the handlers)."""
        cursor.execute("DELETE FROM census_now")
        cursor.execute(RECOUNT_IF_EMPTY)

    @contextmanager
    def page(self, cursor: Cursor, events: Sequence[DomainEventProtocol[UUID]], dialect: str,
             carried: Carried | None = None) -> Iterator[Cursor]:
        """The intervals of the page's journeys read once and the counts' changes added up: a few statements a page."""
        state = CensusPage(cursor, dialect, journeys(event for event in events if not isinstance(event, ev.ClientRegistered)),
                           journeys(event for event in events if isinstance(event, ev.EnrolledInAlumni)), carried)
        yield Paged(cursor, state)
        state.write()

    @singledispatchmethod
    def process(self, event: Any, cursor: Cursor, position: int) -> None:  # noqa: ANN401
        """Events the census does not handle only move its position."""

    @process.register
    def _registered(self, event: ev.ClientRegistered, cursor: Cursor, position: int) -> None:
        cursor.execute(
            "INSERT INTO census_clients (journey_id, client_ref, site) VALUES (?, ?, ?)",
            (id_text(event.originator_id), event.client_ref, event.site),
        )

    @process.register
    def _detox(self, event: ev.WithdrawalManagementStarted, cursor: Cursor, position: int) -> None:
        track = "residential" if event.level.is_24_hour else "day"
        self._close(cursor, event, event.occurred_at)  # an open alumni interval ends at readmission
        self._open(cursor, event, event.level.code, event.site, track)

    @process.register
    def _admitted(self, event: ev.AdmittedToLevel, cursor: Cursor, position: int) -> None:
        self._close(cursor, event, event.occurred_at)
        self._open(cursor, event, event.level.code, event.site, event.track.value)

    @process.register
    def _stepped(self, event: ev.LevelChange, cursor: Cursor, position: int) -> None:
        self._close(cursor, event, event.occurred_at)
        self._open(cursor, event, event.to_level.code, event.site, event.track.value)

    @process.register
    def _track_changed(self, event: ev.TrackChanged, cursor: Cursor, position: int) -> None:
        self._close(cursor, event, event.occurred_at)
        self._open(cursor, event, event.level.code, event.site, event.track.value)

    @process.register
    def _discharged(self, event: ev.Discharged, cursor: Cursor, position: int) -> None:
        self._close(cursor, event, event.occurred_at)

    @process.register
    def _voided(self, event: ev.EntryVoided, cursor: Cursor, position: int) -> None:
        """Only the latest change of a journey may be voided: its interval goes, the one it closed opens again."""
        if event.voided_type not in TRANSITION_TYPES:
            return
        _sync(cursor, id_text(event.originator_id))
        key = (id_text(event.originator_id), event.voided_version)
        cursor.execute(
            "DELETE FROM census_intervals WHERE journey_id = ? AND opened_by = ? RETURNING level, level_rank, site, track, ended_at",
            key,
        )
        for level, rank, site, track, ended_at in cursor.fetchall():
            if ended_at is None:
                _count(cursor, level, rank, site, track, -1)
        cursor.execute(
            "UPDATE census_intervals SET ended_at = NULL, closed_by = NULL WHERE journey_id = ? AND closed_by = ?"
            " RETURNING level, level_rank, site, track",
            key,
        )
        for level, rank, site, track in cursor.fetchall():
            _count(cursor, level, rank, site, track, +1)

    @process.register
    def _alumni(self, event: ev.EnrolledInAlumni, cursor: Cursor, position: int) -> None:
        page = _page(cursor)
        if page is not None:
            site = page.site(id_text(event.originator_id))
        else:
            cursor.execute("SELECT site FROM census_clients WHERE journey_id = ?", (id_text(event.originator_id),))
            row = cursor.fetchone()
            site = row[0] if row else None
        self._open(cursor, event, ALUMNI, site or "", ALUMNI)

    @process.register
    def _corrected(self, event: ev.EntryCorrected, cursor: Cursor, position: int) -> None:
        if event.corrects_type == "ClientRegistered" and event.field == "site":
            _sync(cursor, id_text(event.originator_id))
            home = (str(event.corrected_value), id_text(event.originator_id))
            _move_open(cursor, "site", home[0], f"journey_id = ? AND level = '{ALUMNI}'", (home[1],))
            cursor.execute("UPDATE census_clients SET site = ? WHERE journey_id = ?", home)
            cursor.execute(f"UPDATE census_intervals SET site = ? WHERE journey_id = ? AND level = '{ALUMNI}'", home)  # noqa: S608
            return
        if event.corrects_type not in TRANSITION_TYPES:
            return
        key = (id_text(event.originator_id), event.corrects_version)
        page = _page(cursor)
        if page is not None:
            page.correct(event, *key)
        elif event.field in ("site", "track"):
            _move_open(cursor, event.field, str(event.corrected_value), "journey_id = ? AND opened_by = ?", key)
            cursor.execute(
                f"UPDATE census_intervals SET {event.field} = ? WHERE journey_id = ? AND opened_by = ?",  # noqa: S608
                (str(event.corrected_value), *key),
            )
        elif event.field == "occurred_at":
            moment = utc(datetime.fromisoformat(str(event.corrected_value)))
            cursor.execute("UPDATE census_intervals SET started_at = ? WHERE journey_id = ? AND opened_by = ?", (moment, *key))
            cursor.execute("UPDATE census_intervals SET ended_at = ? WHERE journey_id = ? AND closed_by = ?", (moment, *key))

    @staticmethod
    def _open(cursor: Cursor, event: ev.JourneyEvent, level: str, site: str, track: str) -> None:
        page = _page(cursor)
        if page is not None:
            page.intervals.add(id_text(event.originator_id), opened_by=event.originator_version, level=level,
                               level_rank=level_rank(level), site=site, track=track, started_at=utc(event.occurred_at),
                               ended_at=None, closed_by=None)
            page.count(level, level_rank(level), site, track, +1)
            return
        cursor.execute(
            "INSERT INTO census_intervals (journey_id, opened_by, level, level_rank, site, track, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (id_text(event.originator_id), event.originator_version, level, level_rank(level), site, track, utc(event.occurred_at)),
        )
        _count(cursor, level, level_rank(level), site, track, +1)

    @staticmethod
    def _close(cursor: Cursor, event: ev.JourneyEvent, at: datetime) -> None:
        page = _page(cursor)
        if page is not None:
            for row in page.intervals.of(id_text(event.originator_id)):
                if row["ended_at"] is None:
                    row.set(ended_at=utc(at), closed_by=event.originator_version)
                    page.count(row["level"], row["level_rank"], row["site"], row["track"], -1)
            return
        cursor.execute(
            "UPDATE census_intervals SET ended_at = ?, closed_by = ? WHERE journey_id = ? AND ended_at IS NULL"
            " RETURNING level, level_rank, site, track",
            (utc(at), event.originator_version, id_text(event.originator_id)),
        )
        for level, rank, site, track in cursor.fetchall():
            _count(cursor, level, rank, site, track, -1)


class CensusPage:
    """What the census keeps for a page: its journeys' intervals, the sites of the clients it enrols in alumni, and
    the change of each count (census_now), written as one upsert per count at its end."""

    def __init__(self, cursor: Cursor, dialect: str, journey_ids: Sequence[str], enrolled: Sequence[str],
                 carried: Carried | None = None) -> None:
        self.cursor, self.dialect, self.enrolled = cursor, dialect, enrolled
        self.intervals = JourneyRows(cursor, dialect, "census_intervals", "opened_by",
                                     ("level", "level_rank", "site", "track", "ended_at", "closed_by"), journey_ids, carried)
        self.counts: dict[tuple[str, str, str], list[int]] = {}  # (level, site, track) -> [rank, change]
        self._sites: dict[str, str] | None = None

    def count(self, level: str, rank: int, site: str, track: str, change: int) -> None:
        self.counts.setdefault((level, site, track), [rank, 0])[1] += change

    def correct(self, event: ev.EntryCorrected, journey: str, version: int) -> None:
        """`Census._corrected`'s statements for a change of level's site, track or time, on the rows in memory."""
        rows = self.intervals.of(journey)
        if event.field in ("site", "track"):
            value = str(event.corrected_value)
            for row in rows:
                if row["opened_by"] == version:
                    if row["ended_at"] is None:  # `_move_open`
                        level, rank, site, track = row["level"], row["level_rank"], row["site"], row["track"]
                        self.count(level, rank, site, track, -1)
                        self.count(level, rank, value if event.field == "site" else site, value if event.field == "track" else track, +1)
                    row.set(**{event.field: value})
        elif event.field == "occurred_at":
            moment = utc(datetime.fromisoformat(str(event.corrected_value)))
            for row in rows:
                if row["opened_by"] == version:
                    row.set(started_at=moment)
                if row["closed_by"] == version:
                    row.set(ended_at=moment)

    def site(self, journey: str) -> str | None:
        """The client's site as registered (as `_alumni` reads it)."""
        if self._sites is None:
            self._sites = self._read_sites(self.enrolled)
        if journey not in self._sites:  # registered after the page's sites were read, or not at all
            self._sites.update(self._read_sites([journey]))
        return self._sites.get(journey)

    def _read_sites(self, journey_ids: Sequence[str]) -> dict[str, str]:
        return dict(by_journey(self.cursor, self.dialect, "census_clients", ("site",), journey_ids))

    def write(self) -> None:
        self.intervals.write()
        if self.counts:  # every count changed is upserted, a change of zero too: its row exists, as event by event
            self.cursor.executemany(COUNT, [(level, rank, site, track, change)
                                            for (level, site, track), (rank, change) in self.counts.items()])
            self.counts = {}

    def sync(self, journey: str) -> None:
        self.write()
        self.intervals.sync(journey)
        if self._sites is not None:
            self._sites.pop(journey, None)


def _page(cursor: Cursor) -> CensusPage | None:
    return cursor.state if isinstance(cursor, Paged) and isinstance(cursor.state, CensusPage) else None


def _sync(cursor: Cursor, journey: str) -> None:
    """Before a handler's own SQL about `journey` on a page's cursor: the page's rows and counts written (the journey's
    read again after)."""
    page = _page(cursor)
    if page is not None:
        page.sync(journey)


RECOUNT_IF_EMPTY = (
    "INSERT INTO census_now (level, level_rank, site, track, clients)"
    " SELECT level, level_rank, site, track, COUNT(*) FROM census_intervals"
    " WHERE ended_at IS NULL AND NOT EXISTS (SELECT 1 FROM census_now) GROUP BY level, level_rank, site, track"
)


COUNT = (
    "INSERT INTO census_now (level, level_rank, site, track, clients) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (level, site, track) DO UPDATE SET clients = census_now.clients + excluded.clients"
)


def _count(cursor: Cursor, level: str, rank: int, site: str, track: str, change: int) -> None:
    cursor.execute(COUNT, (level, rank, site, track, change))


def _move_open(cursor: Cursor, column: str, value: str, where: str, params: tuple[Any, ...]) -> None:
    """Before `column` of the intervals matching `where` is corrected to `value`: the open ones move count."""
    cursor.execute(
        f"SELECT level, level_rank, site, track FROM census_intervals WHERE {where} AND ended_at IS NULL",  # noqa: S608
        params,
    )
    for level, rank, site, track in cursor.fetchall():
        _count(cursor, level, rank, site, track, -1)
        _count(cursor, level, rank, value if column == "site" else site, value if column == "track" else track, +1)


@dataclass(frozen=True)
class CensusLine:
    level: str
    site: str
    track: str
    clients: int


@dataclass(frozen=True)
class CensusClient:
    client_ref: str
    level: str
    site: str
    track: str
    since: datetime
    days_in_level: int


def census_query(
    cursor: Cursor, at: datetime, *, now: bool, level: str | None = None, site: str | None = None,
    track: str | None = None, with_clients: bool = False,
) -> tuple[list[CensusLine], list[CensusClient]]:
    """The census at `at`; `now` counts from census_now (its clients from the open intervals) instead of a range."""
    where, params = ["i.ended_at IS NULL"] if now else ["i.started_at <= ?", "(i.ended_at IS NULL OR i.ended_at > ?)"], []
    if not now:
        params += [utc(at), utc(at)]
    for column, value in (("level", level), ("site", site), ("track", track)):
        if value is not None:
            where.append(f"i.{column} = ?")
            params.append(value)
    condition = " AND ".join(where)
    if now:
        filters = [(column, value) for column, value in (("level", level), ("site", site), ("track", track)) if value is not None]
        cursor.execute(
            "SELECT level, site, track, clients FROM census_now WHERE "  # noqa: S608
            + " AND ".join(["clients > 0", *(f"{column} = ?" for column, _ in filters)])
            + " ORDER BY level_rank DESC, site, track",
            [value for _, value in filters],
        )
    else:
        cursor.execute(
            f"SELECT i.level, i.site, i.track, COUNT(*) FROM census_intervals i WHERE {condition}"  # noqa: S608
            " GROUP BY i.level, i.level_rank, i.site, i.track ORDER BY i.level_rank DESC, i.site, i.track",
            params,
        )
    lines = [CensusLine(*row) for row in cursor.fetchall()]
    clients: list[CensusClient] = []
    if with_clients:
        cursor.execute(
            "SELECT c.client_ref, i.level, i.site, i.track, i.started_at FROM census_intervals i"  # noqa: S608
            f" JOIN census_clients c ON c.journey_id = i.journey_id WHERE {condition}"
            " ORDER BY i.level_rank DESC, i.site, c.client_ref",
            params,
        )
        for ref, lvl, st, trk, started in cursor.fetchall():
            since = from_utc(started)
            clients.append(CensusClient(ref, lvl, st, trk, since, (at - since).days))
    return lines, clients


def client_exists(cursor: Cursor, journey_id: UUID) -> bool:
    cursor.execute("SELECT 1 FROM census_clients WHERE journey_id = ?", (str(journey_id),))
    return cursor.fetchone() is not None


def journey_ids(cursor: Cursor) -> list[UUID]:
    cursor.execute("SELECT journey_id FROM census_clients ORDER BY journey_id")
    return [UUID(row[0]) for row in cursor.fetchall()]


def home_site(cursor: Cursor, journey_id: UUID) -> str | None:
    """The site a client is registered at (as corrected), or None for a client the census does not know."""
    cursor.execute("SELECT site FROM census_clients WHERE journey_id = ?", (str(journey_id),))
    row = cursor.fetchone()
    return str(row[0]) if row else None


def clients_at(cursor: Cursor, site: str) -> list[str]:
    """The references of the clients registered at `site`."""
    cursor.execute("SELECT client_ref FROM census_clients WHERE site = ? ORDER BY client_ref", (site,))
    return [str(row[0]) for row in cursor.fetchall()]


def known_sites(cursor: Cursor) -> list[str]:
    """Every site a client has been registered or treated at."""
    cursor.execute("SELECT site FROM census_clients UNION SELECT site FROM census_intervals")
    return sorted(str(row[0]) for row in cursor.fetchall() if row[0])


def client_ref(cursor: Cursor, journey_id: UUID) -> str | None:
    cursor.execute("SELECT client_ref FROM census_clients WHERE journey_id = ?", (str(journey_id),))
    row = cursor.fetchone()
    return str(row[0]) if row else None


def client_count(cursor: Cursor) -> int:
    cursor.execute("SELECT COUNT(*) FROM census_clients")
    return int(cursor.fetchone()[0])


def intervals_query(
    cursor: Cursor, since: datetime, until: datetime, *, site: str | None = None,
) -> list[tuple[str, datetime, datetime | None]]:
    """(level, started, ended) of every interval that overlaps [since, until), for a census trend."""
    where, params = ["started_at < ?", "(ended_at IS NULL OR ended_at > ?)"], [utc(until), utc(since)]
    if site is not None:
        where.append("site = ?")
        params.append(site)
    cursor.execute(f"SELECT level, started_at, ended_at FROM census_intervals WHERE {' AND '.join(where)}", params)  # noqa: S608
    return [(str(level), from_utc(start), None if end is None else from_utc(end)) for level, start, end in cursor.fetchall()]
