"""The dashboard's panels: what a program director reads, built from the API's own answers to a
dashboard token (the functions behind GET /census, /reports/{name}, /steps/matrix and /projections,
called in process with the dashboard role), drawn as SVG (`services/api/charts.py`) beside tables of
the same numbers. Aggregates only: every count the API suppresses for the dashboard role stays
suppressed here, no client is listed, and no number is shown that the API does not give.

A panel is a title, a picture and its tables; the page (`services/api/pages.py`) lays them out, the
routes (`services/api/routes/dashboard.py`) serve them whole, one at a time for live updates, and
each table as CSV.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from html import escape
from typing import Any
from urllib.parse import urlencode

from fastapi import Response

from domain.levels import ALUMNI, Level
from infra.kafka.positions import RelayPositions
from services.api import charts
from services.api.deps import Api, level_query
from services.api.routes import census as census_api
from services.api.routes import reports as reports_api
from services.api.schemas import CensusPublic, MatrixPublic, StatusPublic
from services.census_filters import Levels
from services.moments import shown, zone
from services.reports import GROUP_NAMES, SMALL_CELL, group_of
from services.tokens import Principal, Role

DEFAULT_DAYS = 90
MAX_DAYS = 366
SUPPRESSED = f"<{SMALL_CELL}"
NONE = "—"
# the page's level-group filter: its value is the API's `level` value; the label says which levels it keeps
GROUP_FILTERS: dict[str, str] = {
    "detox": "withdrawal management (every -WM level)",
    "residential": "residential (3.1, 3.5, 3.7)",
    "php": "partial hospitalization (2.5)",
    "iop": "intensive outpatient (2.1)",
    "op": "outpatient (1)",
}
ALUMNI_NAME = "alumni / continuing care"
SHORT_NAMES = {
    "4-WM": "managed inpatient WM", "3.7-WM": "monitored inpatient WM", "3.2-WM": "residential WM", "2-WM": "ambulatory WM, extended",
    "1-WM": "ambulatory WM", "4": "managed inpatient", "3.7": "monitored inpatient", "3.5": "high-intensity residential",
    "3.1": "low-intensity residential", "2.5": "partial hospitalization", "2.1": "intensive outpatient", "1": "outpatient",
}


def level_name(level: str) -> str:
    return ALUMNI_NAME if level == ALUMNI else Level(level).label


def short_name(level: str) -> str:
    """`2.1 intensive outpatient`: the code and a name short enough for a chart's label."""
    return ALUMNI if level == ALUMNI else f"{level} {SHORT_NAMES.get(level, '')}".strip()


def group_name(level: str) -> str:
    return ALUMNI_NAME if level == ALUMNI else GROUP_NAMES[group_of(level)]


# -- filters ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """What the page shows: a site, a level group and a period of whole days [first, last]."""

    site: str | None
    group: str | None
    first: date
    last: date
    today: date

    def query(self) -> str:
        """The page's own query string (no client, no token: site, level group and dates only)."""
        values = {"site": self.site, "group": self.group, "from": self.first.isoformat(), "to": self.last.isoformat()}
        return urlencode({name: value for name, value in values.items() if value})

    def stream_query(self) -> str:
        values = {"site": self.site, "level": self.group}
        return urlencode({name: value for name, value in values.items() if value})

    @property
    def since(self) -> str:
        return self.first.isoformat()

    @property
    def report_until(self) -> str | None:
        """Reports read [since, until): the day after the last, or now when the period ends today."""
        return None if self.last >= self.today else (self.last + timedelta(days=1)).isoformat()

    @property
    def matrix_until(self) -> str:
        return self.last.isoformat()  # the matrix's until is inclusive: the end of that day

    @property
    def levels(self) -> Levels | None:
        return level_query(self.group)

    def keeps(self, level: str) -> bool:
        levels = self.levels
        return levels is None or level in levels.codes


def today_of(api: Api) -> date:
    return api.wired.service.clock().astimezone(zone(api.settings.timezone)).date()


def known_sites(api: Api) -> list[str]:
    from projections.census import known_sites as sites  # the census owns its tables' SQL

    with api.wired.views.transaction() as cursor:
        return sites(cursor)


def read_filters(api: Api, values: dict[str, str]) -> tuple[Filters, list[str]]:
    """The filters a page asked for, and what was wrong with them (each wrong value falls back to its default)."""
    problems: list[str] = []
    today = today_of(api)
    site = values.get("site") or None
    if site is not None and site not in known_sites(api):
        problems.append(f"Unknown site {site!r}: showing every site.")
        site = None
    group = values.get("group") or None
    if group is not None and group not in GROUP_FILTERS:
        problems.append(f"Unknown level group {group!r}: showing every level.")
        group = None
    last = _day(values.get("to"), today, "to", problems)
    if last > today:
        problems.append(f"The period cannot end after today ({today}): it ends today.")
        last = today
    first = _day(values.get("from"), last - timedelta(days=DEFAULT_DAYS - 1), "from", problems)
    if first > last:
        problems.append("The period's first day is after its last: showing the 90 days before the last.")
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if (last - first).days + 1 > MAX_DAYS:
        problems.append(f"A period is at most {MAX_DAYS} days: showing the {MAX_DAYS} days up to the last.")
        first = last - timedelta(days=MAX_DAYS - 1)
    return Filters(site, group, first, last, today), problems


def _day(text: str | None, default: date, name: str, problems: list[str]) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.append(f"{name} {text!r} is not a date (YYYY-MM-DD): using {default}.")
        return default


# -- the API's answers ---------------------------------------------------------------------------------


class Aggregates:
    """The API's answers to a dashboard token: the route functions themselves, with the dashboard role,
    so every number here is the number GET /census, /reports/{name}, /steps/matrix and /projections give."""

    def __init__(self, api: Api, principal: Principal, filters: Filters) -> None:
        self.api = api
        self.principal = Principal(principal.name, Role.DASHBOARD)  # whoever signed in, the dashboard role's view
        self.filters = filters

    def census(self) -> CensusPublic:
        position = self.api.freshness.at_least(("census",), None)
        answer = census_api.census(self.principal, self.api, position, Response(), self.filters.levels, self.filters.site)
        assert isinstance(answer, CensusPublic)  # noqa: S101 - without If-None-Match the census is answered
        return answer

    def matrix(self) -> MatrixPublic:
        position = self.api.freshness.at_least(("step_history",), None)
        answer = census_api.matrix(self.principal, self.api, position, Response(), self.filters.since, self.filters.matrix_until)
        assert isinstance(answer, MatrixPublic)  # noqa: S101
        return answer

    def report(self, name: reports_api.ReportName, levels: Levels | None = None, *, whole: bool = False) -> reports_api.ReportPublic:
        """`whole`: ignore the level-group filter (the report names its level itself)."""
        chosen = levels if levels is not None or whole else self.filters.levels
        return reports_api.report(self.principal, self.api, Response(), name, chosen, self.filters.site, self.filters.since,
                                  self.filters.report_until)

    def projections(self) -> StatusPublic:
        return census_api.projections(self.principal, self.api, Response())

    def relays(self) -> dict[str, int]:
        return RelayPositions(self.api.wired.views).all()


# -- tables -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    value: Any  # the API's value (None: suppressed, or none)
    text: str  # what a person reads
    blank: str = ""  # what the CSV says for None

    @property
    def csv(self) -> str:
        return self.blank if self.value is None else str(self.value)


def count(value: int | None) -> Cell:
    return Cell(value, SUPPRESSED, SUPPRESSED) if value is None else Cell(value, f"{value:,}")


def number(value: Any) -> Cell:  # noqa: ANN401 - a report's cell: a count, a rate, a date or a name
    if value is None:
        return Cell(None, NONE)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Cell(value, str(value))
    return Cell(value, f"{value:,}" if isinstance(value, int) else f"{value:g}")


def percent(value: float | None, *, scale: float = 100.0) -> Cell:
    return Cell(None, NONE) if value is None else Cell(value, f"{value * scale:.1f} %")


@dataclass(frozen=True)
class Table:
    key: str  # its CSV's name
    caption: str
    headings: tuple[str, ...]
    rows: Sequence[tuple[Cell, ...]]
    strong: frozenset[int] = frozenset()  # rows shown as subtotals

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.headings)
        writer.writerows([cell.csv for cell in row] for row in self.rows)
        return out.getvalue()


@dataclass
class Panel:
    key: str
    title: str
    meta: str  # when and at which position
    figure: str  # SVG or HTML, escaped
    caption: str
    tables: list[Table]
    notes: list[str] = field(default_factory=list)
    position: int | None = None
    beside: bool = False  # the first table beside the picture, not behind a toggle


# -- the panels -----------------------------------------------------------------------------------------


def census_panel(data: Aggregates) -> Panel:
    """The census now by level, subtotals by level group; the API's lines behind a toggle."""
    answer = data.census()
    settings = data.api.settings
    shown_sum: dict[str, int] = defaultdict(int)
    hidden: dict[str, int] = defaultdict(int)
    for line in answer.counts:
        shown_sum[line.level] += line.clients or 0
        hidden[line.level] += line.clients is None
    levels = charts.by_intensity([line.level for line in answer.counts])
    bars, rows, strong = [], [], set()
    previous = None
    for index, level in enumerate(levels):
        group = group_name(level)
        bars.append(charts.Bar(level, short_name(level), shown_sum[level], hidden[level], heading=group if group != previous else None))
        previous = group
        rows.append((Cell(level, short_name(level)), count(shown_sum[level]), count(hidden[level])))
        if index + 1 == len(levels) or group_name(levels[index + 1]) != group:
            members = [lv for lv in levels if group_name(lv) == group]
            strong.add(len(rows))
            rows.append((Cell(f"subtotal: {group}", f"Subtotal: {group}"), count(sum(shown_sum[lv] for lv in members)),
                         count(sum(hidden[lv] for lv in members))))
    strong.add(len(rows))
    total_text = "suppressed" if answer.total is None else f"{answer.total:,}"
    rows.append((Cell("total", "Total (as the API gives it)"), Cell(answer.total, total_text, "suppressed"), count(sum(hidden.values()))))
    levels_table = Table("census-levels", "Clients by level: the counts shown, and the cells under 11 not shown",
                         ("level", "clients shown", "cells <11"), rows, frozenset(strong))
    lines = Table("census-lines", "The API's census lines (level, site, track)", ("level", "site", "track", "clients"),
                  [(Cell(x.level, x.level), Cell(x.site, x.site), Cell(x.track, x.track), count(x.clients)) for x in answer.counts])
    hidden_total = sum(hidden.values())
    description = (f"Clients in care now by level: {sum(shown_sum.values()):,} in cells of {SMALL_CELL} or more"
                   + (f", and {hidden_total} cells under {SMALL_CELL} not shown." if hidden_total else "."))
    figure = charts.bars(bars, title="Census now by level of care", description=description, key="census")
    notes = [answer.note] if answer.note else []
    if hidden_total:
        notes.append(f"A level's bar is the sum of its site-and-track cells of {SMALL_CELL} or more; the hatched stub stands for "
                     f"cells under {SMALL_CELL}, which are not shown.")
    return Panel("census", "Census now", f"At {shown(answer.at, settings.timezone)} · position {answer.position}", figure,
                 description, [levels_table, lines], notes, answer.position, beside=True)


def trend_panel(data: Aggregates) -> Panel:
    """The census at the end of each day of the period, one band per level (alumni in the table only)."""
    report = data.report("census-trend")
    filters = data.filters
    days = [filters.first + timedelta(days=n) for n in range((min(filters.last, filters.today) - filters.first).days + 1)]
    values: dict[tuple[str, str], int | None] = {(str(row["day"]), row["level"]): row["clients"] for row in report.rows}
    levels = charts.by_intensity([row["level"] for row in report.rows])
    drawn = [level for level in levels if level != ALUMNI]
    series = [charts.Series(level, level, [_day_value(values, day, level) for day in days]) for level in reversed(drawn)]
    rows = [(Cell(day.isoformat(), day.isoformat()), *(count(_day_value(values, day, level)) for level in levels)) for day in days]
    table = Table("census-trend", "Clients at the end of each day, by level", ("day", *levels), rows)
    suppressed_cells = sum(1 for value in values.values() if value is None)
    description = f"Census at the end of each day from {filters.first} to {days[-1] if days else filters.last}, stacked by level."
    figure = charts.stacked_area(days, series, title="Census over the period", description=description, key="trend")
    notes = [report.note] if report.note else []
    if suppressed_cells:
        notes.append(f"{suppressed_cells} day-and-level counts under {SMALL_CELL} are drawn as 0; the table says <11.")
    if ALUMNI in levels:
        notes.append("Alumni are in the table, not in the picture: it shows levels of care.")
    return Panel("trend", "Census over the period", f"{filters.first} to {days[-1] if days else filters.last} · position "
                 f"{report.position}", figure, description, [table], notes, report.position)


def _day_value(values: dict[tuple[str, str], int | None], day: date, level: str) -> int | None:
    return values.get((day.isoformat(), level), 0)


def flows_panel(data: Aggregates) -> Panel:
    """Steps up and down between levels over the period, as a Sankey diagram and a table."""
    answer = data.matrix()
    filters = data.filters
    steps = [s for s in answer.steps if filters.keeps(s.from_level) or filters.keeps(s.to_level)]
    flows = [charts.Flow(s.from_level, s.to_level, s.count) for s in steps]
    rows = [(Cell(f.source, f.source), Cell(f.target, f.target), Cell("step up" if f.up else "step down",
             "step up" if f.up else "step down"), count(f.count)) for f in sorted(flows, key=lambda f: (f.up, -(f.count or 0)))]
    table = Table("steps", "Steps between levels", ("from", "to", "kind", "steps"), rows)
    down = sum(f.count or 0 for f in flows if not f.up)
    up = sum(f.count or 0 for f in flows if f.up)
    hidden = sum(1 for f in flows if f.count is None)
    description = (f"Steps from {filters.first} to {filters.last}: {down:,} step-downs and {up:,} step-ups in cells of "
                   f"{SMALL_CELL} or more" + (f"; {hidden} pairs of levels with fewer than {SMALL_CELL} steps, hatched." if hidden
                                               else "."))
    figure = charts.sankey(flows, title="Steps between levels of care", description=description, key="flows")
    notes = [answer.note] if answer.note else []
    if filters.site:
        notes.append("Every site: the API's step matrix has no site filter.")
    return Panel("flows", "Steps between levels", f"{filters.first} to {filters.last} · position {answer.position}", figure,
                 description, [table], notes, answer.position, beside=True)


@dataclass(frozen=True)
class Metric:
    label: str
    rate: float | None
    base: str


@dataclass(frozen=True)
class Tile:
    key: str
    title: str
    metrics: list[Metric]
    note: str = ""


def outcomes_panel(data: Aggregates) -> Panel:
    """Outcome tiles: completion, retention, continuity, readmission, IOP weekly compliance, negative specimens."""
    filters = data.filters
    completion = data.report("completion")
    retention = data.report("retention")
    continuity = data.report("continuity")
    readmission = data.report("readmission")
    iop_only = filters.group in (None, "iop")
    attendance = data.report("attendance", level_query("iop")) if iop_only else None
    tests = data.report("negative-tests")

    def base(value: int | None, what: str) -> str:
        return f"of {SUPPRESSED} {what}" if value is None else f"of {value:,} {what}"

    tiles = [
        Tile("completion", "Completion", [Metric(r["group"], r["completion_rate"], base(r["ended"], "stays ended"))
                                          for r in completion.rows]),
        Tile("retention", "Retention", [Metric(f"day {r['days']}", r["rate"], base(r["eligible"], "episodes"))
                                        for r in retention.rows]),
    ]
    for measure, title in (("after withdrawal management", "Continuity after withdrawal management"),
                           ("after residential", "Continuity after residential")):
        tiles.append(Tile(f"continuity-{measure.split()[-1]}", title, [
            Metric(f"a lower level within {r['days']} days", r["rate"], base(r["eligible"], "stays"))
            for r in continuity.rows if r["measure"] == measure]))
    tiles.append(Tile("readmission", "Readmission", [Metric(f"within {r['days']} days", r["rate"], base(r["eligible"], "discharges"))
                                                     for r in readmission.rows]))
    if attendance is not None:
        tiles.append(Tile("iop", "IOP weekly compliance", [
            m for r in attendance.rows for m in (
                Metric(f"weeks with {r['minimum_hours']:g} h or more" if r["minimum_hours"] else "weeks meeting the minimum",
                       r["compliance_rate"], base(r["client_weeks"], "client-weeks")),
                Metric("sessions attended", r["attendance_rate"], base(r["sessions_scheduled"], "sessions")),
            )]))
    else:
        tiles.append(Tile("iop", "IOP weekly compliance", [], "Not in the level group chosen."))
    visible = [r for r in tests.rows if r["negative"] is not None and r["resulted"] is not None]
    resulted, negative = sum(r["resulted"] for r in visible), sum(r["negative"] for r in visible)
    tiles.append(Tile("negative-tests", "Negative specimens", [Metric(
        "negative", negative / resulted if resulted else None, f"of {resulted:,} specimens resulted")],
        f"Pooled over the {len(visible)} of {len(tests.rows)} week, site and level cells with {SMALL_CELL} or more."))
    reports = [completion, retention, continuity, readmission, *([attendance] if attendance else []), tests]
    tables = [_report_table(r) for r in reports]
    figure = "".join(_tile(t) for t in tiles)
    position = min(r.position for r in reports)
    notes = sorted({r.note for r in reports if r.note})
    notes.append(f"{NONE} in a table: suppressed (a count under {SMALL_CELL}, or a rate or statistic built on one) or none.")
    caption = "Outcome rates over the period; each tile's numbers are the report's rows below."
    return Panel("outcomes", "Outcomes", f"{filters.first} to {filters.last} · position {position}", f'<div class="tiles">{figure}</div>',
                 caption, tables, notes, position)


def _report_table(report: reports_api.ReportPublic) -> Table:
    headings = tuple(report.rows[0]) if report.rows else ("no rows",)
    rows = [tuple(_report_cell(name, value) for name, value in row.items()) for row in report.rows]
    return Table(report.report if report.report != "attendance" else "attendance-iop", report.title, headings, rows)


def _report_cell(name: str, value: Any) -> Cell:  # noqa: ANN401 - a report's cell
    if name.endswith(("_rate", "_share")) or name == "rate":
        return percent(value)
    if name.endswith("_pct"):
        return percent(value, scale=1.0)
    return number(value)


def _tile(tile: Tile) -> str:
    items = "".join(
        f'<li><span class="metric-label">{escape(m.label)}</span>'
        f'<span class="metric-value" data-value="{"" if m.rate is None else m.rate}">{escape(percent(m.rate).text)}</span>'
        f'{charts.meter(m.rate, label=m.label)}<span class="metric-base">{escape(m.base)}</span></li>'
        for m in tile.metrics
    )
    body = f"<ul>{items}</ul>" if tile.metrics else ""
    note = f'<p class="tile-note">{escape(tile.note)}</p>' if tile.note else ""
    if not tile.metrics and not tile.note:
        note = '<p class="tile-note">Nothing to measure in this period.</p>'
    return (f'<article class="tile" id="tile-{tile.key}" aria-labelledby="tile-{tile.key}-h">'
            f'<h3 id="tile-{tile.key}-h">{escape(tile.title)}</h3>{body}{note}</article>')


def freshness_panel(data: Aggregates) -> Panel:
    """Where the projections and the relay stand: their positions, the head and the lag."""
    status = data.projections()
    relays = data.relays()
    rows = [(Cell(p.name, f"projection {p.name}"), count(p.position), count(p.lag)) for p in status.projections]
    rows += [(Cell(topic, f"relay to {topic}"), count(position), count(max(status.head - position, 0)))
             for topic, position in sorted(relays.items())]
    table = Table("freshness", "Positions and lag (events behind the head)", ("what", "position", "lag"), rows)
    lag = max((p.lag for p in status.projections), default=0)
    relay_text = ("; ".join(f"relay {max(status.head - pos, 0):,} events behind on {topic}" for topic, pos in sorted(relays.items()))
                  or "no relay has published from this store")
    summary = (f"Head of the log: position {status.head:,}. Projections at most {lag:,} events behind"
               f"{' (kept current by this server)' if status.follower else ''}; {relay_text}.")
    figure = f'<p class="freshness-summary" data-head="{status.head}" data-lag="{lag}">{escape(summary)}</p>'
    return Panel("freshness", "Freshness", f"Head {status.head:,}", figure, summary, [table], [], status.head)


PANELS: dict[str, Callable[[Aggregates], Panel]] = {
    "census": census_panel, "trend": trend_panel, "flows": flows_panel, "outcomes": outcomes_panel, "freshness": freshness_panel,
}
TABLES = {"census-levels": "census", "census-lines": "census", "census-trend": "trend", "steps": "flows", "completion": "outcomes",
          "retention": "outcomes", "continuity": "outcomes", "readmission": "outcomes", "attendance-iop": "outcomes",
          "negative-tests": "outcomes", "freshness": "freshness"}


def table_of(panels: Sequence[Panel], key: str) -> Table | None:
    return next((t for p in panels for t in p.tables if t.key == key), None)
