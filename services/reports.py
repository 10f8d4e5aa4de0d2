"""Measures for program directors and payers, from the read models (the README's "Reports" section
defines each: numerator, denominator, source).

`Reports(views, small_cells="suppress")` is what the dashboard role sees: every count under 11
becomes None, a rate or statistic built on such a count becomes None too, and the report says
`suppressed: true` (the public-health small-cell rule). Days are whole calendar days in UTC (a stay
from 3 March to 5 March is 2 days), as TEDS counts a length of stay. A period is [since, until):
a stay or episode ended in it when its end is in it; one that had not ended by `until` is open.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from domain.levels import DischargeReason, Level
from infra.views import ViewStore
from projections.attendance import placements_query, sessions_query
from projections.census import intervals_query
from projections.drug_tests import specimens_query
from projections.outcomes import Contact, Episode, Stay, contacts_query, days_between, episodes_query, stays_query

SMALL_CELL = 11
REASONS = tuple(reason.value for reason in DischargeReason)
GROUPS = ("wm", "residential", "php", "iop", "op")
GROUP_NAMES = {"wm": "withdrawal management", "residential": "residential/inpatient", "php": "partial hospitalization",
               "iop": "intensive outpatient", "op": "outpatient"}
READMISSION_DAYS = 30
INITIATION_DAYS = 14  # HEDIS IET: treatment within 14 days of the first contact
ENGAGEMENT_DAYS = 34  # and two or more further services within 34 days of initiation
ENGAGEMENT_SERVICES = 2
MINIMUM_HOURS = {"2.1": 9.0, "2.5": 20.0}  # a week meeting the level's minimum (ASAM adult bands)
REPORTS = ("end-reasons", "completion", "length-of-stay", "retention", "continuity", "initiation", "readmission",
           "attendance", "negative-tests", "census-trend", "time-to-step", "fidelity")


def group_of(level: str) -> str:
    code = Level(level)
    if code.is_withdrawal_management:
        return "wm"
    return {"1": "op", "2.1": "iop", "2.5": "php"}.get(level, "residential")


@dataclass(frozen=True)
class Scope:
    """The period and filters of a report: [since, until), a site, levels of care (codes)."""

    until: datetime
    since: datetime | None = None
    site: str | None = None
    levels: tuple[str, ...] | None = None

    def keeps(self, level: str, site: str) -> bool:
        return (self.site is None or site == self.site) and (self.levels is None or level in self.levels)

    def ended_in(self, end: datetime | None) -> bool:
        return end is not None and end < self.until and (self.since is None or end >= self.since)

    def started_in(self, start: datetime) -> bool:
        return start < self.until and (self.since is None or start >= self.since)


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    scope: Scope
    rows: list[Any]
    suppressed: bool
    note: str = ""


# -- rows ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndReasonRow:
    group: str
    ended: int | None
    open: int | None
    completed: int | None
    transferred: int | None
    left_against_advice: int | None
    terminated_by_facility: int | None
    incarcerated: int | None
    died: int | None
    other: int | None
    completed_pct: float | None
    transferred_pct: float | None
    left_against_advice_pct: float | None
    terminated_by_facility_pct: float | None
    incarcerated_pct: float | None
    died_pct: float | None
    other_pct: float | None


@dataclass(frozen=True)
class CompletionRow:
    group: str
    ended: int | None
    completed: int | None
    completed_or_transferred: int | None
    completion_rate: float | None
    completion_or_transfer_rate: float | None


@dataclass(frozen=True)
class StatsRow:
    group: str
    end_reason: str
    stays: int | None
    median_days: float | None
    mean_days: float | None
    q1_days: float | None
    q3_days: float | None


@dataclass(frozen=True)
class RateRow:
    measure: str
    days: int
    eligible: int | None
    met: int | None
    rate: float | None


@dataclass(frozen=True)
class AttendanceRow:
    level: str
    minimum_hours: float | None
    client_weeks: int | None
    weeks_meeting_minimum: int | None
    compliance_rate: float | None
    mean_hours_attended: float | None
    mean_hours_planned: float | None
    sessions_scheduled: int | None
    sessions_attended: int | None
    missed_excused: int | None
    missed_unexcused: int | None
    attendance_rate: float | None
    attendance_rate_unexcused_only: float | None


@dataclass(frozen=True)
class TestWeekRow:
    week: date
    site: str
    level: str
    collected: int | None
    resulted: int | None
    negative: int | None
    negative_share: float | None
    non_prescribed_positive: int | None
    expected_medication_only: int | None
    other_non_negative: int | None


@dataclass(frozen=True)
class CensusDayRow:
    day: date
    level: str
    clients: int | None


@dataclass(frozen=True)
class FidelityRow:
    group: str
    end_reason: str
    stays: int | None
    cohort_pct: float | None
    teds_pct: float
    difference: float | None


# -- the measures ----------------------------------------------------------------------------------


@dataclass
class _Cells:
    """Counts as the reader may see them: under 11 suppressed when asked."""

    suppress: bool
    hidden: bool = field(default=False)

    def n(self, count: int) -> int | None:
        if self.suppress and count < SMALL_CELL:
            self.hidden = True
            return None
        return count

    def rate(self, met: int, of: int, scale: float = 1.0, digits: int = 4) -> float | None:
        if of == 0 or self.n(met) is None or self.n(of) is None:
            return None
        return round(scale * met / of, digits)

    def stat(self, values: Sequence[float], pick: Callable[[Sequence[float]], float]) -> float | None:
        if not values or self.n(len(values)) is None:
            return None
        return round(float(pick(values)), 2)


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) == 1:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def reached(moment: datetime, days: int, until: datetime) -> bool:
    """Day `days` after `moment` (calendar days, UTC) had begun by `until`."""
    return until >= _midnight(moment.date() + timedelta(days=days))


def passed(moment: datetime, days: int, until: datetime) -> bool:
    """Day `days` after `moment` had ended by `until`: a window of that many days can be judged."""
    return until >= _midnight(moment.date() + timedelta(days=days + 1))


def _lower(level: str, then: str | None) -> bool:
    """`then` is a lower level of care than `level`, and not withdrawal management."""
    if then is None:
        return False
    following = Level(then)
    return not following.is_withdrawal_management and following.rank < Level(level).rank


def monday(moment: datetime) -> date:
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


class Reports:
    def __init__(self, views: ViewStore, *, small_cells: str = "show") -> None:
        self.views = views
        self.suppress = small_cells == "suppress"

    def run(self, name: str, scope: Scope) -> Report:
        method: Callable[[Scope], Report] = getattr(self, name.replace("-", "_"))
        return method(scope)

    def _report(self, name: str, title: str, scope: Scope, rows: list[Any], cells: _Cells, note: str = "") -> Report:
        if cells.hidden:
            note = (note + " " if note else "") + f"Counts under {SMALL_CELL} are suppressed (shown as none), with what is built on them."
        return Report(name, title, scope, rows, cells.hidden, note)

    def _stays(self, scope: Scope) -> list[Stay]:
        with self.views.transaction() as cursor:
            return [s for s in stays_query(cursor, started_before=scope.until, ended_from=scope.since) if scope.keeps(s.level, s.site)]

    def _episodes(self, scope: Scope) -> list[Episode]:
        with self.views.transaction() as cursor:
            return [e for e in episodes_query(cursor, started_before=scope.until) if scope.keeps(e.level, e.site)]

    # end reasons, completion, length of stay, time to step ---------------------------------------

    def end_reasons(self, scope: Scope) -> Report:
        """Stays ended in the period per level group, by TEDS-D reason; stays open at its end apart."""
        cells, stays = _Cells(self.suppress), self._stays(scope)
        rows = []
        for group in GROUPS:
            mine = [s for s in stays if group_of(s.level) == group]
            ended = [s.end_reason for s in mine if scope.ended_in(s.ended_at)]
            still = sum(1 for s in mine if s.ended_at is None or s.ended_at >= scope.until)
            if not mine:
                continue
            counts = {reason: sum(1 for r in ended if r == reason) for reason in REASONS}
            values: dict[str, Any] = {r: cells.n(counts[r]) for r in REASONS}
            values |= {f"{r}_pct": cells.rate(counts[r], len(ended), 100, 1) for r in REASONS}
            rows.append(EndReasonRow(group=GROUP_NAMES[group], ended=cells.n(len(ended)), open=cells.n(still), **values))
        return self._report("end-reasons", "End reasons of service stays (TEDS-D REASON), % of stays ended", scope, rows, cells)

    def completion(self, scope: Scope) -> Report:
        cells, stays = _Cells(self.suppress), self._stays(scope)
        rows = []
        for group in GROUPS:
            ended = [s.end_reason for s in stays if group_of(s.level) == group and scope.ended_in(s.ended_at)]
            if not ended:
                continue
            done = sum(1 for r in ended if r == "completed")
            moved = done + sum(1 for r in ended if r == "transferred")
            rows.append(CompletionRow(GROUP_NAMES[group], cells.n(len(ended)), cells.n(done), cells.n(moved),
                                      cells.rate(done, len(ended)), cells.rate(moved, len(ended))))
        return self._report("completion", "Completion, and completion or transfer, of service stays", scope, rows, cells)

    def length_of_stay(self, scope: Scope) -> Report:
        cells, stays = _Cells(self.suppress), self._stays(scope)
        by: dict[tuple[str, str], list[float]] = defaultdict(list)
        for s in stays:
            if scope.ended_in(s.ended_at) and s.length_of_stay is not None and s.end_reason is not None:
                by[(group_of(s.level), s.end_reason)].append(s.length_of_stay)
                by[(group_of(s.level), "all")].append(s.length_of_stay)
        rows = [self._stats(cells, GROUP_NAMES[g], reason, by[(g, reason)])
                for g in GROUPS for reason in ("all", *REASONS) if by.get((g, reason))]
        return self._report("length-of-stay", "Length of stay in days per level group and end reason", scope, rows, cells)

    def time_to_step(self, scope: Scope) -> Report:
        cells, stays = _Cells(self.suppress), self._stays(scope)
        by: dict[tuple[str, str], list[float]] = defaultdict(list)
        for s in stays:
            if scope.ended_in(s.ended_at) and s.end_event in ("SteppedUp", "SteppedDown") and s.length_of_stay is not None:
                by[(group_of(s.level), "step up" if s.end_event == "SteppedUp" else "step down")].append(s.length_of_stay)
        rows = [self._stats(cells, GROUP_NAMES[g], kind, by[(g, kind)])
                for g in GROUPS for kind in ("step up", "step down") if by.get((g, kind))]
        return self._report("time-to-step", "Days from entering a level to a step up or down from it", scope, rows, cells)

    @staticmethod
    def _stats(cells: _Cells, group: str, reason: str, values: list[float]) -> StatsRow:
        ordered = sorted(values)
        q1, q3 = _quartiles(ordered)
        return StatsRow(group, reason, cells.n(len(ordered)), cells.stat(ordered, statistics.median),
                        cells.stat(ordered, statistics.fmean), cells.stat(ordered, lambda _: q1), cells.stat(ordered, lambda _: q3))

    # episodes -------------------------------------------------------------------------------------

    def retention(self, scope: Scope) -> Report:
        """Episodes started in the period still in treatment N days after their start."""
        cells, rows = _Cells(self.suppress), []
        started = [e for e in self._episodes(scope) if scope.started_in(e.started_at)]
        for days in (30, 60, 90):
            eligible = [e for e in started if reached(e.started_at, days, scope.until)]
            kept = sum(1 for e in eligible if e.ended_at is None or e.ended_at >= scope.until
                       or days_between(e.started_at, e.ended_at) >= days)
            rows.append(RateRow("retained", days, cells.n(len(eligible)), cells.n(kept), cells.rate(kept, len(eligible))))
        return self._report("retention", "Retention: episodes still in treatment N days from their start", scope, rows, cells)

    def readmission(self, scope: Scope) -> Report:
        cells = _Cells(self.suppress)
        ended = [e for e in self._episodes(scope) if scope.ended_in(e.ended_at) and e.end_reason != "died"]
        eligible = [e for e in ended if e.ended_at is not None and passed(e.ended_at, READMISSION_DAYS, scope.until)]
        back = sum(1 for e in eligible if e.days_to_next is not None and e.days_to_next <= READMISSION_DAYS)
        rows = [RateRow("readmitted", READMISSION_DAYS, cells.n(len(eligible)), cells.n(back), cells.rate(back, len(eligible)))]
        return self._report("readmission", "Readmission within 30 days of discharge", scope, rows, cells)

    def continuity(self, scope: Scope) -> Report:
        """Stays in withdrawal management or residential care ending in the period, followed by a lower level."""
        cells, stays, rows = _Cells(self.suppress), self._stays(scope), []
        for group, measure in (("wm", "after withdrawal management"), ("residential", "after residential")):
            ending = [s for s in stays if group_of(s.level) == group and scope.ended_in(s.ended_at) and s.end_reason != "died"
                      and s.end_event != "SteppedUp"]
            for days in (7, 14, 30):
                eligible = [s for s in ending if s.ended_at is not None and passed(s.ended_at, days, scope.until)]
                met = sum(1 for s in eligible if _lower(s.level, s.next_level) and (s.days_to_next or 0) <= days)
                rows.append(RateRow(measure, days, cells.n(len(eligible)), cells.n(met), cells.rate(met, len(eligible))))
        return self._report("continuity", "Continuity of care: a lower level of care within N days", scope, rows, cells)

    def initiation(self, scope: Scope) -> Report:
        """First contacts (a referral or assessment outside an episode) in the period: treatment within 14 days,
        then two or more further attended sessions within 34 days of it."""
        cells = _Cells(self.suppress)
        with self.views.transaction() as cursor:
            contacts = contacts_query(cursor)
            episodes = episodes_query(cursor, started_before=None)
            sessions = sessions_query(cursor, None, None)
        attended: dict[tuple[str, int], list[datetime]] = defaultdict(list)
        for s in sessions:
            if s.attended:
                attended[(s.journey_id, s.episode)].append(s.occurred_at)
        first = [c for c in _first_contacts(contacts, episodes) if scope.started_in(c[0].occurred_at)]
        kept = [(c, e) for c, e in first if e is None or scope.keeps(e.level, e.site)] if scope.levels or scope.site else first
        rows = []
        eligible = [(c, e) for c, e in kept if passed(c.occurred_at, INITIATION_DAYS, scope.until)]
        begun = [(c, e) for c, e in eligible if e is not None and days_between(c.occurred_at, e.started_at) <= INITIATION_DAYS]
        rows.append(RateRow("initiated", INITIATION_DAYS, cells.n(len(eligible)), cells.n(len(begun)),
                            cells.rate(len(begun), len(eligible))))
        judged = [(c, e) for c, e in kept if passed(c.occurred_at, INITIATION_DAYS + ENGAGEMENT_DAYS, scope.until)]
        engaged = 0
        for c, e in judged:
            if e is None or days_between(c.occurred_at, e.started_at) > INITIATION_DAYS:
                continue
            later = [at for at in attended[(e.journey_id, e.opened_by)] if 1 <= days_between(e.started_at, at) <= ENGAGEMENT_DAYS]
            engaged += len(later) >= ENGAGEMENT_SERVICES
        rows.append(RateRow("engaged", ENGAGEMENT_DAYS, cells.n(len(judged)), cells.n(engaged), cells.rate(engaged, len(judged))))
        return self._report("initiation", "Initiation and engagement of treatment (as HEDIS IET)", scope, rows, cells)

    # attendance, drug tests, census ---------------------------------------------------------------

    def attendance(self, scope: Scope) -> Report:
        """Full weeks (Monday to Sunday, UTC) of each stay at the level inside the period, and the sessions in it."""
        cells, rows = _Cells(self.suppress), []
        for level in scope.levels or ("2.1",):
            with self.views.transaction() as cursor:
                intervals = [p for p in placements_query(cursor, level, scope.since, scope.until) if scope.site in (None, p.site)]
                sessions = [s for s in sessions_query(cursor, scope.since, scope.until)
                            if s.level == level and scope.site in (None, s.site)]
            minutes: dict[tuple[str, int, date], float] = defaultdict(float)
            for s in sessions:
                if s.attended:
                    minutes[(s.journey_id, s.stay, monday(s.occurred_at))] += s.minutes
            weeks, attended_hours, planned_hours = _full_weeks(intervals, scope, minutes)
            minimum = MINIMUM_HOURS.get(level)
            meeting = sum(1 for hours in attended_hours if minimum is not None and hours >= minimum)
            went = sum(1 for s in sessions if s.attended)
            excused = sum(1 for s in sessions if not s.attended and s.excused)
            unexcused = len(sessions) - went - excused
            rows.append(AttendanceRow(
                level, minimum, cells.n(weeks), cells.n(meeting) if minimum else None,
                cells.rate(meeting, weeks) if minimum else None, cells.stat(attended_hours, statistics.fmean),
                cells.stat(planned_hours, statistics.fmean), cells.n(len(sessions)), cells.n(went), cells.n(excused),
                cells.n(unexcused), cells.rate(went, len(sessions)), cells.rate(went, went + unexcused),
            ))
        return self._report("attendance", "Attendance: weeks meeting the level's minimum hours, sessions attended", scope, rows, cells)

    def negative_tests(self, scope: Scope) -> Report:
        cells = _Cells(self.suppress)
        with self.views.transaction() as cursor:
            specimens = [s for s in specimens_query(cursor, scope.since, scope.until) if scope.keeps(s.level, s.site)]
        by: dict[tuple[date, str, str], list[Any]] = defaultdict(list)
        for s in specimens:
            by[(monday(s.collected_at), s.site, s.level)].append(s)
        rows = []
        for (week, site, level), mine in sorted(by.items()):
            resulted = [s for s in mine if s.result is not None]
            negative = sum(1 for s in resulted if s.result == "negative")
            other = sum(1 for s in resulted if s.other_positives > 0)
            expected = sum(1 for s in resulted if s.other_positives == 0 and s.expected_positives > 0)
            odd = sum(1 for s in resulted if s.result not in ("negative", "positive"))
            rows.append(TestWeekRow(week, site, level, cells.n(len(mine)), cells.n(len(resulted)), cells.n(negative),
                                    cells.rate(negative, len(resulted)), cells.n(other), cells.n(expected), cells.n(odd)))
        return self._report("negative-tests", "Negative specimens by week (collected), site and level", scope, rows, cells)

    def census_trend(self, scope: Scope) -> Report:
        """The census at the end of each day (UTC) of the period, per level."""
        cells = _Cells(self.suppress)
        first = (scope.since or scope.until - timedelta(days=30)).astimezone(UTC).date()
        last = (scope.until - timedelta(microseconds=1)).astimezone(UTC).date()
        with self.views.transaction() as cursor:
            intervals = intervals_query(cursor, _midnight(first), scope.until, site=scope.site)
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        counts: dict[tuple[date, str], int] = defaultdict(int)
        for level, start, end in intervals:
            if scope.levels is not None and level not in scope.levels:
                continue
            for day in days:
                at = min(_midnight(day + timedelta(days=1)) - timedelta(microseconds=1), scope.until - timedelta(microseconds=1))
                if start <= at and (end is None or end > at):
                    counts[(day, level)] += 1
        rows = [CensusDayRow(day, level, cells.n(n)) for (day, level), n in sorted(counts.items(), key=_by_day_and_level)]
        return self._report("census-trend", "Census at the end of each day per level", scope, rows, cells)

    def fidelity(self, scope: Scope) -> Report:
        """The end-reason mix per level group beside TEDS-D 2004 (the demo cohort's target), with the differences,
        and the median IOP length of stay beside TEDS's 41 days; `stays` is each group's stays ended (the base)."""
        from services.demo import IOP_MEDIAN_DAYS
        from services.demo import REASONS as TEDS

        cells, stays = _Cells(self.suppress), self._stays(scope)
        targets = {"wm": TEDS["WM"], "residential": TEDS["RES"], "php": TEDS["2.5"], "iop": TEDS["2.1"], "op": TEDS["1"]}
        order = sorted(REASONS, key=list(TEDS["1"]).index)  # as the TEDS table: completed, transferred, left, ...
        rows = []
        for group in GROUPS:
            mine = [s for s in stays if group_of(s.level) == group and scope.ended_in(s.ended_at)]
            ended = [s.end_reason for s in mine]
            for reason in order:
                target = float(targets[group].get(reason, 0.0))
                share = cells.rate(sum(1 for r in ended if r == reason), len(ended), 100, 1)
                rows.append(FidelityRow(GROUP_NAMES[group], reason, cells.n(len(ended)), share, target,
                                        None if share is None else round(share - target, 1)))
            if group == "iop":
                los = [float(s.length_of_stay) for s in mine if s.length_of_stay is not None]
                median = cells.stat(los, statistics.median)
                rows.append(FidelityRow(GROUP_NAMES[group], "median length of stay (days)", cells.n(len(los)), median,
                                        float(IOP_MEDIAN_DAYS), None if median is None else round(median - IOP_MEDIAN_DAYS, 1)))
        return self._report("fidelity", "The cohort beside TEDS-D 2004: % of stays ended, by reason; median IOP stay",
                            scope, rows, cells)


def _by_day_and_level(item: tuple[tuple[date, str], int]) -> tuple[date, int]:
    (day, level), _ = item
    return day, -(Level(level).rank if level != "alumni" else -1)


def _full_weeks(
    intervals: Iterable[Any], scope: Scope, minutes: dict[tuple[str, int, date], float],
) -> tuple[int, list[float], list[float]]:
    """Weeks wholly inside one stay at the level and inside the period: count, hours attended, hours planned."""
    stays: dict[tuple[str, int], list[Any]] = defaultdict(list)
    for interval in intervals:
        stays[(interval.journey_id, interval.stay)].append(interval)
    attended, planned = [], []
    for (journey, stay), parts in stays.items():
        start = min(p.started_at for p in parts)
        end = scope.until if any(p.ended_at is None for p in parts) else min(scope.until, max(p.ended_at for p in parts))
        if scope.since is not None:
            start = max(start, scope.since)
        week = monday(start)
        if _midnight(week) < start:
            week += timedelta(days=7)
        while _midnight(week + timedelta(days=7)) <= end:
            in_force = [p for p in parts if p.started_at <= _midnight(week)]
            planned.append(max(in_force, key=lambda p: p.started_at).hours if in_force else parts[0].hours)
            attended.append(minutes.get((journey, stay, week), 0.0) / 60)
            week += timedelta(days=7)
    return len(attended), attended, planned


def _first_contacts(contacts: list[Contact], episodes: list[Episode]) -> list[tuple[Contact, Episode | None]]:
    """Each client's first referral or assessment outside an episode, after the previous episode ended (or ever),
    with the episode that followed it, if any."""
    by_journey: dict[str, list[Episode]] = defaultdict(list)
    for e in episodes:
        by_journey[e.journey_id].append(e)
    firsts: list[tuple[Contact, Episode | None]] = []
    taken: set[tuple[str, int | None]] = set()
    for c in contacts:
        mine = by_journey.get(c.journey_id, [])
        if any(e.started_at <= c.occurred_at and (e.ended_at is None or c.occurred_at < e.ended_at) for e in mine):
            continue  # a contact during an episode is not a first contact
        following = next((e for e in mine if e.started_at >= c.occurred_at), None)
        key = (c.journey_id, None if following is None else following.opened_by)
        if key in taken:
            continue
        taken.add(key)
        firsts.append((c, following))
    return firsts

