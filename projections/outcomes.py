"""Outcomes: treatment episodes and service stays, with how each ended and what came next.

A treatment episode runs from an admission (or the start of withdrawal management) to the
discharge; its id is the journey's version of the entry that opened it (`Entry.episode` in
`domain/record.py`), shown as `episode_id` = `"<journey id>:<opener version>"` and as an ordinal
`episode` (1, 2, ... per client, in order). A readmission opens the next episode.

A service stay is one level of care inside an episode: from the admission or step that entered the
level to the next step or the discharge (a change of track does not end it). Its end reason is in the
TEDS-D `REASON` categories: a step down on meeting goals ends it `completed`, a step up `transferred`,
a discharge with the discharge's own reason; a stay not ended yet has no reason (`open` in reports).

Each stay and episode row also holds the next level the client entered and when (a step: at once; a
discharge: the first level of the readmission, if any), so continuity of care and readmission are
range queries. Referrals and assessments are kept as first contacts (initiation of treatment).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import DomainEventProtocol

from domain import events as ev
from domain.levels import Level
from domain.record import OPENERS, STEPS
from infra.views import Cursor
from projections.base import Projection, from_utc, id_text, id_type, utc
from projections.pages import Carried, JourneyRows, Paged, journeys
from projections.placements import kept

ENDINGS = frozenset({*OPENERS, *STEPS, "Discharged"})
"""Entries that open or end a stay; only the latest of them may be voided."""
CONTACTS = frozenset({"ReferralReceived", "AssessmentCompleted"})
STEP_REASON = {"SteppedDown": "completed", "SteppedUp": "transferred"}


class Outcomes(Projection):
    name = "outcomes"
    handles = (
        ev.ReferralReceived, ev.AssessmentCompleted, ev.WithdrawalManagementStarted, ev.AdmittedToLevel, ev.SteppedUp,
        ev.SteppedDown, ev.Discharged, ev.EntryCorrected, ev.EntryVoided,
    )
    tables = ("outcome_stays", "outcome_episodes", "outcome_contacts")

    def ddl(self, dialect: str) -> list[str]:
        version = id_type(dialect)
        return [
            f"""CREATE TABLE IF NOT EXISTS outcome_stays (
                journey_id TEXT NOT NULL, opened_by {version} NOT NULL, episode_opened_by {version} NOT NULL,
                episode INTEGER NOT NULL, level TEXT NOT NULL, level_rank INTEGER NOT NULL, site TEXT NOT NULL,
                track TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT, closed_by {version}, end_event TEXT,
                end_reason TEXT, next_level TEXT, next_started_at TEXT, next_by {version},
                PRIMARY KEY (journey_id, opened_by))""",
            "CREATE INDEX IF NOT EXISTS outcome_stays_ended ON outcome_stays (ended_at)",
            "CREATE INDEX IF NOT EXISTS outcome_stays_started ON outcome_stays (started_at)",
            f"""CREATE TABLE IF NOT EXISTS outcome_episodes (
                journey_id TEXT NOT NULL, opened_by {version} NOT NULL, episode INTEGER NOT NULL, level TEXT NOT NULL,
                site TEXT NOT NULL, track TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT, closed_by {version},
                end_reason TEXT, next_level TEXT, next_started_at TEXT, next_by {version},
                PRIMARY KEY (journey_id, opened_by))""",
            "CREATE INDEX IF NOT EXISTS outcome_episodes_started ON outcome_episodes (started_at)",
            f"""CREATE TABLE IF NOT EXISTS outcome_contacts (
                journey_id TEXT NOT NULL, version {version} NOT NULL, kind TEXT NOT NULL, occurred_at TEXT NOT NULL,
                PRIMARY KEY (journey_id, version))""",
        ]

    @contextmanager
    def page(self, cursor: Cursor, events: Sequence[DomainEventProtocol[UUID]], dialect: str,
             carried: Carried | None = None) -> Iterator[Cursor]:
        """The stays and episodes of the page's journeys read once, changed in memory, written at its end."""
        state = OutcomesPage(cursor, dialect, journeys(event for event in events if ev.event_name(event) not in CONTACTS), carried)
        yield Paged(cursor, state)
        state.write()

    @singledispatchmethod
    def process(self, event: Any, cursor: Cursor, position: int) -> None:  # noqa: ANN401
        """Events the outcomes do not handle only move the position."""

    @process.register
    def _referred(self, event: ev.ReferralReceived, cursor: Cursor, position: int) -> None:
        _contact(cursor, event, "referral")

    @process.register
    def _assessed(self, event: ev.AssessmentCompleted, cursor: Cursor, position: int) -> None:
        _contact(cursor, event, "assessment")

    @process.register
    def _detox(self, event: ev.WithdrawalManagementStarted, cursor: Cursor, position: int) -> None:
        self._open_episode(cursor, event, event.level, event.site, "residential" if event.level.is_24_hour else "day")

    @process.register
    def _admitted(self, event: ev.AdmittedToLevel, cursor: Cursor, position: int) -> None:
        self._open_episode(cursor, event, event.level, event.site, event.track.value)

    @process.register
    def _stepped(self, event: ev.LevelChange, cursor: Cursor, position: int) -> None:
        journey, version, at = id_text(event.originator_id), event.originator_version, utc(event.occurred_at)
        page = _page(cursor)
        if page is not None:
            opened = [stay for stay in page.stays.of(journey) if stay["ended_at"] is None]
            if not opened:  # not reached: a step needs an open stay
                return
            name = ev.event_name(event)
            for stay in opened:
                stay.set(ended_at=at, closed_by=version, end_event=name, end_reason=STEP_REASON[name], next_level=event.to_level.code,
                         next_started_at=at, next_by=version)
            page.add_stay(journey, version, int(opened[0]["episode_opened_by"]), int(opened[0]["episode"]), event.to_level,
                          event.site, event.track.value, at)
            return
        cursor.execute(
            "UPDATE outcome_stays SET ended_at = ?, closed_by = ?, end_event = ?, end_reason = ?, next_level = ?,"
            " next_started_at = ?, next_by = ? WHERE journey_id = ? AND ended_at IS NULL RETURNING episode_opened_by, episode",
            (at, version, ev.event_name(event), STEP_REASON[ev.event_name(event)], event.to_level.code, at, version, journey),
        )
        row = cursor.fetchone()
        if row is None:  # not reached: a step needs an open stay
            return
        _insert_stay(cursor, journey, version, int(row[0]), int(row[1]), event.to_level, event.site, event.track.value, at)

    @process.register
    def _discharged(self, event: ev.Discharged, cursor: Cursor, position: int) -> None:
        journey, version, at = id_text(event.originator_id), event.originator_version, utc(event.occurred_at)
        page = _page(cursor)
        if page is not None:
            for stay in page.stays.of(journey):
                if stay["ended_at"] is None:
                    stay.set(ended_at=at, closed_by=version, end_reason=event.reason.value, end_event="Discharged")
            for episode in page.episodes.of(journey):
                if episode["ended_at"] is None:
                    episode.set(ended_at=at, closed_by=version, end_reason=event.reason.value)
            return
        for table, extra in (("outcome_stays", ", end_event = 'Discharged'"), ("outcome_episodes", "")):
            cursor.execute(
                f"UPDATE {table} SET ended_at = ?, closed_by = ?, end_reason = ?{extra}"  # noqa: S608
                " WHERE journey_id = ? AND ended_at IS NULL",
                (at, version, event.reason.value, journey),
            )

    @process.register
    def _voided(self, event: ev.EntryVoided, cursor: Cursor, position: int) -> None:
        """Only the latest opener, step or discharge is voided: its rows go, what it ended opens again."""
        _sync(cursor, id_text(event.originator_id))
        key = (id_text(event.originator_id), event.voided_version)
        if event.voided_type in CONTACTS:
            cursor.execute("DELETE FROM outcome_contacts WHERE journey_id = ? AND version = ?", key)
            return
        if event.voided_type not in ENDINGS:
            return
        for table, extra in (("outcome_stays", ", end_event = NULL"), ("outcome_episodes", "")):
            cursor.execute(f"DELETE FROM {table} WHERE journey_id = ? AND opened_by = ?", key)  # noqa: S608
            cursor.execute(
                f"UPDATE {table} SET ended_at = NULL, closed_by = NULL, end_reason = NULL{extra}"  # noqa: S608
                " WHERE journey_id = ? AND closed_by = ?",
                key,
            )
            cursor.execute(
                f"UPDATE {table} SET next_level = NULL, next_started_at = NULL, next_by = NULL"  # noqa: S608
                " WHERE journey_id = ? AND next_by = ?",
                key,
            )

    @process.register
    def _corrected(self, event: ev.EntryCorrected, cursor: Cursor, position: int) -> None:
        key = (id_text(event.originator_id), event.corrects_version)
        if event.corrects_type in CONTACTS:
            if event.field == "occurred_at":
                moment = utc(datetime.fromisoformat(str(event.corrected_value)))
                cursor.execute("UPDATE outcome_contacts SET occurred_at = ? WHERE journey_id = ? AND version = ?", (moment, *key))
            return
        if event.corrects_type in ENDINGS:
            page = _page(cursor)
            if page is not None:
                page.correct(event, *key)
            else:
                _correct_ending(cursor, event, key)

    @staticmethod
    def _open_episode(cursor: Cursor, event: ev.JourneyEvent, level: Level, site: str, track: str) -> None:
        """A new episode and its first stay; the previous episode and stay learn what came next."""
        journey, version, at = id_text(event.originator_id), event.originator_version, utc(event.occurred_at)
        page = _page(cursor)
        if page is not None:
            episodes = page.episodes.of(journey)
            number = len(episodes) + 1
            for rows in (page.stays.of(journey), episodes):
                if rows:
                    last = max(rows, key=lambda row: int(row["opened_by"]))
                    if last["next_by"] is None:
                        last.set(next_level=level.code, next_started_at=at, next_by=version)
            page.episodes.add(journey, opened_by=version, episode=number, level=level.code, site=site, track=track, started_at=at,
                              ended_at=None, closed_by=None, end_reason=None, next_level=None, next_started_at=None, next_by=None)
            page.add_stay(journey, version, version, number, level, site, track, at)
            return
        cursor.execute("SELECT COUNT(*) FROM outcome_episodes WHERE journey_id = ?", (journey,))
        number = int(cursor.fetchone()[0]) + 1
        for table in ("outcome_stays", "outcome_episodes"):
            cursor.execute(
                f"UPDATE {table} SET next_level = ?, next_started_at = ?, next_by = ?"  # noqa: S608
                f" WHERE journey_id = ? AND next_by IS NULL AND opened_by = (SELECT MAX(opened_by) FROM {table} WHERE journey_id = ?)",
                (level.code, at, version, journey, journey),
            )
        cursor.execute(
            "INSERT INTO outcome_episodes (journey_id, opened_by, episode, level, site, track, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (journey, version, number, level.code, site, track, at),
        )
        _insert_stay(cursor, journey, version, version, number, level, site, track, at)


class OutcomesPage:
    """What the outcomes keep for a page: the stays and episodes of its journeys (contacts are only inserted)."""

    def __init__(self, cursor: Cursor, dialect: str, journey_ids: Sequence[str],
                 carried: Carried | None = None) -> None:
        self.stays = JourneyRows(cursor, dialect, "outcome_stays", "opened_by",
                                 ("episode_opened_by", "episode", "ended_at", "closed_by", "next_by"), journey_ids, carried)
        self.episodes = JourneyRows(cursor, dialect, "outcome_episodes", "opened_by", ("ended_at", "closed_by", "next_by"),
                                    journey_ids, carried)

    def add_stay(self, journey: str, version: int, episode_opened_by: int, episode: int, level: Level, site: str, track: str,
                 at: str) -> None:
        """`_insert_stay`'s row, kept."""
        self.stays.add(journey, opened_by=version, episode_opened_by=episode_opened_by, episode=episode, level=level.code,
                       level_rank=level.rank, site=site, track=track, started_at=at, ended_at=None, closed_by=None, end_event=None,
                       end_reason=None, next_level=None, next_started_at=None, next_by=None)

    def correct(self, event: ev.EntryCorrected, journey: str, version: int) -> None:
        """`_correct_ending` on the rows in memory."""
        changes = _ending_changes(event)
        for rows in (self.stays.of(journey), self.episodes.of(journey)):
            for row in rows:
                for column, by, value in changes:
                    if row[by] == version:
                        row.set(**{column: value})

    def write(self) -> None:
        self.stays.write()
        self.episodes.write()

    def sync(self, journey: str) -> None:
        self.stays.sync(journey)
        self.episodes.sync(journey)


def _page(cursor: Cursor) -> OutcomesPage | None:
    return cursor.state if isinstance(cursor, Paged) and isinstance(cursor.state, OutcomesPage) else None


def _sync(cursor: Cursor, journey: str) -> None:
    """Before a handler's own SQL about `journey` on a page's cursor: the page's rows written (the journey's read again
    after)."""
    page = _page(cursor)
    if page is not None:
        page.sync(journey)


def _ending_changes(event: ev.EntryCorrected) -> list[tuple[str, str, str]]:
    """What a corrected time, site or track of an opener or step, or reason of a discharge changes: (column, key column,
    value), each row of the journey's stays and episodes whose key column holds the corrected version taking the value."""
    value = str(event.corrected_value)
    if event.field == "occurred_at":
        moment = utc(datetime.fromisoformat(value))
        return [("started_at", "opened_by", moment), ("ended_at", "closed_by", moment), ("next_started_at", "next_by", moment)]
    if event.field in ("site", "track"):
        return [(event.field, "opened_by", value)]
    if event.field == "reason" and event.corrects_type == "Discharged":
        return [("end_reason", "closed_by", value)]
    return []


def _correct_ending(cursor: Cursor, event: ev.EntryCorrected, key: tuple[str, int]) -> None:
    for table in ("outcome_stays", "outcome_episodes"):
        for column, by, value in _ending_changes(event):
            cursor.execute(f"UPDATE {table} SET {column} = ? WHERE journey_id = ? AND {by} = ?", (value, *key))  # noqa: S608


def _insert_stay(
    cursor: Cursor, journey: str, version: int, episode_opened_by: int, episode: int, level: Level, site: str, track: str,
    at: str,
) -> None:
    cursor.execute(
        "INSERT INTO outcome_stays (journey_id, opened_by, episode_opened_by, episode, level, level_rank, site, track,"
        " started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (journey, version, episode_opened_by, episode, level.code, level.rank, site, track, at),
    )


def _contact(cursor: Cursor, event: ev.JourneyEvent, kind: str) -> None:
    cursor.execute(
        "INSERT INTO outcome_contacts (journey_id, version, kind, occurred_at) VALUES (?, ?, ?, ?)",
        (id_text(event.originator_id), event.originator_version, kind, utc(event.occurred_at)),
    )


def days_between(start: datetime, end: datetime) -> int:
    """Whole calendar days (UTC) from one moment to a later one, as TEDS counts a length of stay."""
    return (end.date() - start.date()).days


@dataclass(frozen=True)
class _Span:
    """What a stay and an episode share: where and when, how it ended, and what came next (in whole days)."""

    journey_id: str
    opened_by: int  # the version of the entry that opened it
    episode: int  # 1, 2, ... per client
    level: str  # a stay's level of care; an episode's first
    site: str
    track: str
    started_at: datetime
    ended_at: datetime | None
    end_reason: str | None  # None: still open
    next_level: str | None  # a stay's next level; an episode's readmission's first level
    next_started_at: datetime | None

    @property
    def length_of_stay(self) -> int | None:
        return None if self.ended_at is None else days_between(self.started_at, self.ended_at)

    @property
    def days_to_next(self) -> int | None:
        if self.ended_at is None or self.next_started_at is None:
            return None
        return days_between(self.ended_at, self.next_started_at)


@dataclass(frozen=True)
class Stay(_Span):
    """One service stay: one level of care inside an episode."""

    episode_opened_by: int
    end_event: str | None  # the event that ended it: SteppedUp, SteppedDown or Discharged

    @property
    def episode_id(self) -> str:
        return f"{self.journey_id}:{self.episode_opened_by}"


@dataclass(frozen=True)
class Episode(_Span):
    """One treatment episode: an admission until its discharge."""

    @property
    def episode_id(self) -> str:
        return f"{self.journey_id}:{self.opened_by}"


@dataclass(frozen=True)
class Contact:
    journey_id: str
    version: int
    kind: str
    occurred_at: datetime


def _moment(text: str | None) -> datetime | None:
    return None if text is None else from_utc(text)


def stays_query(cursor: Cursor, *, started_before: datetime | None = None, ended_from: datetime | None = None) -> list[Stay]:
    """Stays that started before `started_before` and had not ended before `ended_from` (either may be left out)."""
    where, params = ["1 = 1"], []
    if started_before is not None:
        where.append("started_at < ?")
        params.append(utc(started_before))
    if ended_from is not None:
        where.append("(ended_at IS NULL OR ended_at >= ?)")
        params.append(utc(ended_from))
    cursor.execute(
        "SELECT journey_id, opened_by, episode_opened_by, episode, level, site, track, started_at, ended_at, end_event,"  # noqa: S608
        f" end_reason, next_level, next_started_at FROM outcome_stays WHERE {' AND '.join(where)}"
        " ORDER BY journey_id, started_at, opened_by",
        params,
    )
    return [
        Stay(j, int(o), int(n), lv, s, tr, from_utc(st), _moment(en), er, nl, _moment(ns), episode_opened_by=int(e), end_event=ee)
        for j, o, e, n, lv, s, tr, st, en, ee, er, nl, ns in cursor.fetchall()
    ]


def episodes_query(cursor: Cursor, *, started_before: datetime | None = None) -> list[Episode]:
    where, params = "1 = 1", []
    if started_before is not None:
        where, params = "started_at < ?", [utc(started_before)]
    cursor.execute(
        "SELECT journey_id, opened_by, episode, level, site, track, started_at, ended_at, end_reason, next_level,"  # noqa: S608
        f" next_started_at FROM outcome_episodes WHERE {where} ORDER BY journey_id, started_at, opened_by",
        params,
    )
    return [
        Episode(j, int(o), int(n), lv, s, tr, from_utc(st), _moment(en), er, nl, _moment(ns))
        for j, o, n, lv, s, tr, st, en, er, nl, ns in cursor.fetchall()
    ]


def contacts_query(cursor: Cursor) -> list[Contact]:
    cursor.execute("SELECT journey_id, version, kind, occurred_at FROM outcome_contacts ORDER BY journey_id, occurred_at, version")
    return [Contact(j, int(v), k, from_utc(at)) for j, v, k, at in cursor.fetchall()]


def day_count(dialect: str, later: str, earlier: str) -> str:
    """SQL for `days_between` of two time columns: whole calendar days (UTC) from `earlier` to `later`."""
    if dialect == "postgres":
        return f"(CAST(substr({later}, 1, 10) AS DATE) - CAST(substr({earlier}, 1, 10) AS DATE))"
    return f"CAST(julianday(substr({later}, 1, 10)) - julianday(substr({earlier}, 1, 10)) AS INTEGER)"


def _kept(where: list[str], params: list[Any], site: str | None, levels: tuple[str, ...] | None) -> None:
    conditions, values = kept(site, levels)
    where.extend(conditions)
    params.extend(values)


@dataclass(frozen=True)
class StayTally:
    """How many stays (`stays`) at `level` ended by `end_event` with `end_reason`; `length_of_stay` (days) when
    they ended in the period, None when they were still open at its end."""

    level: str
    end_reason: str | None
    end_event: str | None
    length_of_stay: int | None
    stays: int


def _started_before(
    until: datetime, since: datetime | None, since_condition: str, site: str | None, levels: tuple[str, ...] | None,
) -> tuple[list[str], list[Any]]:
    """The conditions (and their values) of a tally: started before `until`, `since_condition` with `since`, the site
    and levels kept; the values begin with `until` once more, for the tally's own CASE on it."""
    where, params = ["started_at < ?"], [utc(until), utc(until)]
    if since is not None:
        where.append(since_condition)
        params.append(utc(since))
    _kept(where, params, site, levels)
    return where, params


def stay_tally(
    cursor: Cursor, dialect: str, *, until: datetime, since: datetime | None = None, site: str | None = None,
    levels: tuple[str, ...] | None = None,
) -> list[StayTally]:
    """The stays that started before `until` and had not ended before `since`, counted by level, end reason, end
    event and length of stay (the stays of `stays_query`, as counts: what the stay reports add up)."""
    where, params = _started_before(until, since, "(ended_at IS NULL OR ended_at >= ?)", site, levels)
    cursor.execute(
        f"SELECT level, end_reason, end_event, CASE WHEN ended_at IS NOT NULL AND ended_at < ? THEN {day_count(dialect, 'ended_at', 'started_at')} END,"  # noqa: S608, E501
        f" COUNT(*) FROM outcome_stays WHERE {' AND '.join(where)} GROUP BY 1, 2, 3, 4",
        params,
    )
    return [StayTally(lv, er, ee, None if los is None else int(los), int(n)) for lv, er, ee, los, n in cursor.fetchall()]


@dataclass(frozen=True)
class EndingTally:
    """How many stays or episodes (`count`) at `level` ended on `ended_on` (a UTC day) and were followed by
    `next_level` `days_to_next` days later (None: nothing followed)."""

    level: str
    ended_on: date
    next_level: str | None
    days_to_next: int | None
    count: int


def ending_tally(
    cursor: Cursor, dialect: str, table: str, *, until: datetime, since: datetime | None = None, site: str | None = None,
    levels: tuple[str, ...] | None = None, steps_up: bool = True,
) -> list[EndingTally]:
    """The stays (`table` outcome_stays) or episodes (outcome_episodes) that started before `until` and ended in
    [since, until), but not by death (nor by a step up, unless `steps_up`), counted by level, day ended and what
    followed: continuity of care and readmission add these up."""
    if table not in ("outcome_stays", "outcome_episodes"):
        msg = f"no endings in table {table!r}"
        raise ValueError(msg)
    where = ["started_at < ?", "ended_at IS NOT NULL", "ended_at < ?", "(end_reason IS NULL OR end_reason <> 'died')"]
    params: list[Any] = [utc(until), utc(until)]
    if since is not None:
        where.append("ended_at >= ?")
        params.append(utc(since))
    if not steps_up:
        where.append("(end_event IS NULL OR end_event <> 'SteppedUp')")
    _kept(where, params, site, levels)
    cursor.execute(
        f"SELECT level, substr(ended_at, 1, 10), next_level, CASE WHEN next_started_at IS NOT NULL THEN"  # noqa: S608
        f" {day_count(dialect, 'next_started_at', 'ended_at')} END, COUNT(*) FROM {table} WHERE {' AND '.join(where)}"
        " GROUP BY 1, 2, 3, 4",
        params,
    )
    return [EndingTally(lv, date.fromisoformat(day), nl, None if d is None else int(d), int(n))
            for lv, day, nl, d, n in cursor.fetchall()]


@dataclass(frozen=True)
class EpisodeTally:
    """How many episodes (`count`) started on `started_on` (a UTC day) and lasted `days` (None: still open at the
    period's end)."""

    started_on: date
    days: int | None
    count: int


def episode_tally(
    cursor: Cursor, dialect: str, *, until: datetime, since: datetime | None = None, site: str | None = None,
    levels: tuple[str, ...] | None = None,
) -> list[EpisodeTally]:
    """The episodes that started in [since, until), counted by day started and days in treatment (retention)."""
    where, params = _started_before(until, since, "started_at >= ?", site, levels)
    cursor.execute(
        "SELECT substr(started_at, 1, 10), CASE WHEN ended_at IS NULL OR ended_at >= ? THEN NULL ELSE"  # noqa: S608
        f" {day_count(dialect, 'ended_at', 'started_at')} END, COUNT(*) FROM outcome_episodes WHERE {' AND '.join(where)}"
        " GROUP BY 1, 2",
        params,
    )
    return [EpisodeTally(date.fromisoformat(day), None if d is None else int(d), int(n)) for day, d, n in cursor.fetchall()]
