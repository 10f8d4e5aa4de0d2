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
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from typing import Any

from domain.levels import DischargeReason, Level
from infra.views import ViewStore
from projections.attendance import attended_after_start, placements_query, session_weeks
from projections.census import intervals_query
from projections.drug_tests import specimen_weeks
from projections.outcomes import (
    Contact,
    Episode,
    StayTally,
    contacts_query,
    days_between,
    ending_tally,
    episode_tally,
    episodes_query,
    stay_tally,
)

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

    def _stays(self, scope: Scope) -> list[StayTally]:
        """The period's stays (started before its end, not ended before its start) at its site and levels, counted
        by level, end reason, end event and length of stay (days; None for a stay still open at the period's end)."""
        with self.views.transaction() as cursor:
            return stay_tally(cursor, self.views.dialect, until=scope.until, since=scope.since, site=scope.site,
                              levels=scope.levels)

    # end reasons, completion, length of stay, time to step ---------------------------------------

    def end_reasons(self, scope: Scope) -> Report:
        """Stays ended in the period per level group, by TEDS-D reason; stays open at its end apart."""
        cells, stays = _Cells(self.suppress), self._stays(scope)
        rows = []
        for group in GROUPS:
            mine = [s for s in stays if group_of(s.level) == group]
            ended = [s for s in mine if s.length_of_stay is not None]
            still = sum(s.stays for s in mine if s.length_of_stay is None)
            if not mine:
                continue
            counts = {reason: sum(s.stays for s in ended if s.end_reason == reason) for reason in REASONS}
            total = sum(s.stays for s in ended)
            values: dict[str, Any] = {r: cells.n(counts[r]) for r in REASONS}
            values |= {f"{r}_pct": cells.rate(counts[r], total, 100, 1) for r in REASONS}
            rows.append(EndReasonRow(group=GROUP_NAMES[group], ended=cells.n(total), open=cells.n(still), **values))
        return self._report("end-reasons", "End reasons of service stays (TEDS-D REASON), % of stays ended", scope, rows, cells)

    def completion(self, scope: Scope) -> Report:
        cells, stays = _Cells(self.suppress), self._stays(scope)
        rows = []
        for group in GROUPS:
            ended = [s for s in stays if group_of(s.level) == group and s.length_of_stay is not None]
            if not ended:
                continue
            total = sum(s.stays for s in ended)
            done = sum(s.stays for s in ended if s.end_reason == "completed")
            moved = done + sum(s.stays for s in ended if s.end_reason == "transferred")
            rows.append(CompletionRow(GROUP_NAMES[group], cells.n(total), cells.n(done), cells.n(moved),
                                      cells.rate(done, total), cells.rate(moved, total)))
        return self._report("completion", "Completion, and completion or transfer, of service stays", scope, rows, cells)

    def length_of_stay(self, scope: Scope) -> Report:
        cells, stays = _Cells(self.suppress), self._stays(scope)
        by: dict[tuple[str, str], list[float]] = defaultdict(list)
        for s in stays:
            if s.length_of_stay is not None and s.end_reason is not None:
                by[(group_of(s.level), s.end_reason)].extend([s.length_of_stay] * s.stays)
                by[(group_of(s.level), "all")].extend([s.length_of_stay] * s.stays)
        rows = [self._stats(cells, GROUP_NAMES[g], reason, by[(g, reason)])
                for g in GROUPS for reason in ("all", *REASONS) if by.get((g, reason))]
        return self._report("length-of-stay", "Length of stay in days per level group and end reason", scope, rows, cells)

    def time_to_step(self, scope: Scope) -> Report:
        cells, stays = _Cells(self.suppress), self._stays(scope)
        by: dict[tuple[str, str], list[float]] = defaultdict(list)
        for s in stays:
            if s.end_event in ("SteppedUp", "SteppedDown") and s.length_of_stay is not None:
                by[(group_of(s.level), "step up" if s.end_event == "SteppedUp" else "step down")].extend([s.length_of_stay] * s.stays)
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
        with self.views.transaction() as cursor:
            started = episode_tally(cursor, self.views.dialect, until=scope.until, since=scope.since, site=scope.site,
                                    levels=scope.levels)
        for days in (30, 60, 90):
            eligible = [e for e in started if reached(_midnight(e.started_on), days, scope.until)]
            kept = sum(e.count for e in eligible if e.days is None or e.days >= days)
            total = sum(e.count for e in eligible)
            rows.append(RateRow("retained", days, cells.n(total), cells.n(kept), cells.rate(kept, total)))
        return self._report("retention", "Retention: episodes still in treatment N days from their start", scope, rows, cells)

    def readmission(self, scope: Scope) -> Report:
        cells = _Cells(self.suppress)
        with self.views.transaction() as cursor:
            ended = ending_tally(cursor, self.views.dialect, "outcome_episodes", until=scope.until, since=scope.since,
                                 site=scope.site, levels=scope.levels)
        eligible = [e for e in ended if passed(_midnight(e.ended_on), READMISSION_DAYS, scope.until)]
        back = sum(e.count for e in eligible if e.days_to_next is not None and e.days_to_next <= READMISSION_DAYS)
        total = sum(e.count for e in eligible)
        rows = [RateRow("readmitted", READMISSION_DAYS, cells.n(total), cells.n(back), cells.rate(back, total))]
        return self._report("readmission", "Readmission within 30 days of discharge", scope, rows, cells)

    def continuity(self, scope: Scope) -> Report:
        """Stays in withdrawal management or residential care ending in the period, followed by a lower level."""
        cells, rows = _Cells(self.suppress), []
        with self.views.transaction() as cursor:
            endings = ending_tally(cursor, self.views.dialect, "outcome_stays", until=scope.until, since=scope.since,
                                   site=scope.site, levels=scope.levels, steps_up=False)
        for group, measure in (("wm", "after withdrawal management"), ("residential", "after residential")):
            ending = [s for s in endings if group_of(s.level) == group]
            for days in (7, 14, 30):
                eligible = [s for s in ending if passed(_midnight(s.ended_on), days, scope.until)]
                met = sum(s.count for s in eligible if _lower(s.level, s.next_level) and (s.days_to_next or 0) <= days)
                total = sum(s.count for s in eligible)
                rows.append(RateRow(measure, days, cells.n(total), cells.n(met), cells.rate(met, total)))
        return self._report("continuity", "Continuity of care: a lower level of care within N days", scope, rows, cells)

    def initiation(self, scope: Scope) -> Report:
        """First contacts (a referral or assessment outside an episode) in the period: treatment within 14 days,
        then two or more further attended sessions within 34 days of it."""
        cells = _Cells(self.suppress)
        with self.views.transaction() as cursor:
            contacts = contacts_query(cursor)
            episodes = episodes_query(cursor, started_before=None)
            attended = attended_after_start(cursor, self.views.dialect, 1, ENGAGEMENT_DAYS)
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
            engaged += attended.get((e.journey_id, e.opened_by), 0) >= ENGAGEMENT_SERVICES
        rows.append(RateRow("engaged", ENGAGEMENT_DAYS, cells.n(len(judged)), cells.n(engaged), cells.rate(engaged, len(judged))))
        return self._report("initiation", "Initiation and engagement of treatment (as HEDIS IET)", scope, rows, cells)

    # attendance, drug tests, census ---------------------------------------------------------------

    def attendance(self, scope: Scope) -> Report:
        """Full weeks (Monday to Sunday, UTC) of each stay at the level inside the period, and the sessions in it."""
        cells, rows = _Cells(self.suppress), []
        for level in scope.levels or ("2.1",):
            with self.views.transaction() as cursor:
                intervals = [p for p in placements_query(cursor, level, scope.since, scope.until) if scope.site in (None, p.site)]
                held = session_weeks(cursor, self.views.dialect, level, scope.since, scope.until, scope.site)
            minutes = {(w.journey_id, w.stay, w.week): w.minutes for w in held if w.attended}
            weeks, attended_hours, planned_hours = _full_weeks(intervals, scope, minutes)
            minimum = MINIMUM_HOURS.get(level)
            meeting = sum(1 for hours in attended_hours if minimum is not None and hours >= minimum)
            scheduled = sum(w.sessions for w in held)
            went = sum(w.attended for w in held)
            excused = sum(w.excused for w in held)
            unexcused = scheduled - went - excused
            rows.append(AttendanceRow(
                level, minimum, cells.n(weeks), cells.n(meeting) if minimum else None,
                cells.rate(meeting, weeks) if minimum else None, cells.stat(attended_hours, statistics.fmean),
                cells.stat(planned_hours, statistics.fmean), cells.n(scheduled), cells.n(went), cells.n(excused),
                cells.n(unexcused), cells.rate(went, scheduled), cells.rate(went, went + unexcused),
            ))
        return self._report("attendance", "Attendance: weeks meeting the level's minimum hours, sessions attended", scope, rows, cells)

    def negative_tests(self, scope: Scope) -> Report:
        cells = _Cells(self.suppress)
        with self.views.transaction() as cursor:
            weeks = specimen_weeks(cursor, scope.since, scope.until, site=scope.site, levels=scope.levels)
        rows = [
            TestWeekRow(w.week, w.site, w.level, cells.n(w.collected), cells.n(w.resulted), cells.n(w.negative),
                        cells.rate(w.negative, w.resulted), cells.n(w.other_positive), cells.n(w.expected_only), cells.n(w.odd))
            for w in sorted(weeks, key=lambda w: (w.week, w.site, w.level))
        ]
        return self._report("negative-tests", "Negative specimens by week (collected), site and level", scope, rows, cells)

    def census_trend(self, scope: Scope) -> Report:
        """The census at the end of each day (UTC) of the period, per level."""
        cells = _Cells(self.suppress)
        first = (scope.since or scope.until - timedelta(days=30)).astimezone(UTC).date()
        last = (scope.until - timedelta(microseconds=1)).astimezone(UTC).date()
        with self.views.transaction() as cursor:
            intervals = intervals_query(cursor, _midnight(first), scope.until, site=scope.site)
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        ends = [min(_midnight(day + timedelta(days=1)) - timedelta(microseconds=1), scope.until - timedelta(microseconds=1))
                for day in days]  # the moment each day's census is taken, in order
        steps: dict[str, list[int]] = defaultdict(lambda: [0] * (len(days) + 1))
        for level, start, end in intervals:  # in the census of the days from the first taken at or after its start
            if scope.levels is not None and level not in scope.levels:  # to the last taken before its end
                continue
            first_in, first_out = bisect_left(ends, start), len(days) if end is None else bisect_left(ends, end)
            if first_in < first_out:
                steps[level][first_in] += 1
                steps[level][first_out] -= 1
        counts: dict[tuple[date, str], int] = {}
        for level, changes in steps.items():
            for day, n in zip(days, accumulate(changes), strict=False):
                if n > 0:
                    counts[(day, level)] = n
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
            mine = [s for s in stays if group_of(s.level) == group and s.length_of_stay is not None]
            ended = sum(s.stays for s in mine)
            for reason in order:
                target = float(targets[group].get(reason, 0.0))
                share = cells.rate(sum(s.stays for s in mine if s.end_reason == reason), ended, 100, 1)
                rows.append(FidelityRow(GROUP_NAMES[group], reason, cells.n(ended), share, target,
                                        None if share is None else round(share - target, 1)))
            if group == "iop":
                los = [float(s.length_of_stay) for s in mine if s.length_of_stay is not None for _ in range(s.stays)]
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

