"""The dashboard's pictures, drawn on the server as SVG from the API's own answers: horizontal bars
(the census now), a stacked area (the census over a period), a Sankey diagram (steps between
levels) and small meters (rates). No script draws them and nothing is fetched to show them, so the
page works offline and the picture cannot differ from the numbers in its table.

Every picture is an inline `<svg role="img">` with a title and a description for screen readers,
a `<title>` on each mark for a pointer, and presentation attributes rather than inline styles (the
page's Content-Security-Policy allows no inline style). Counts the API suppressed (`None`) are drawn
as such: a hatched stub, never as a number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

from domain.levels import ALUMNI, Level

INK = "#1a1a1a"
MUTED = "#5a5a5a"
GRID = "#d9d9d9"
STEP_DOWN = "#1b7f6b"
STEP_UP = "#b4521d"
HATCH = "hatch"

COLORS = {
    "4-WM": "#4a1f70", "3.7-WM": "#6a3596", "3.2-WM": "#8a55b6", "2-WM": "#a97bd0", "1-WM": "#c7a6e6",
    "4": "#0b3c6f", "3.7": "#1f5f9e", "3.5": "#3f82c4", "3.1": "#79aee0",
    "2.5": "#00838f", "2.1": "#2e7d32", "1": "#8a6d00", ALUMNI: "#6e6e6e",
}


def color(level: str) -> str:
    return COLORS.get(level, MUTED)


def rank(level: str) -> int:
    """Most intensive first: withdrawal management, inpatient, residential, PHP, IOP, outpatient, alumni."""
    return -1 if level == ALUMNI else Level(level).rank


def by_intensity(levels: Sequence[str]) -> list[str]:
    return sorted(set(levels), key=rank, reverse=True)


def _svg(width: int, height: int, title: str, description: str, body: str, key: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img"'
        f' aria-labelledby="{key}-title {key}-desc" focusable="false">'
        f'<title id="{key}-title">{escape(title)}</title><desc id="{key}-desc">{escape(description)}</desc>'
        f'<defs><pattern id="{key}-{HATCH}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        f'<rect width="6" height="6" fill="#ffffff"/><line x1="0" y1="0" x2="0" y2="6" stroke="{MUTED}" stroke-width="2"/></pattern></defs>'
        f"{body}</svg>"
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 12, fill: str = INK, weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{fill}"'
            f' font-weight="{weight}">{escape(text)}</text>')


def nice_ceiling(value: float) -> tuple[float, float]:
    """An axis maximum at or above `value` and its tick step (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0, 1.0
    raw = value / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    step = max(step, 1.0)
    return math.ceil(value / step) * step, step


# -- bars -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    level: str
    label: str
    shown: int  # the sum of the counts the API showed
    hidden: int  # cells the API suppressed (each under 11)
    heading: str | None = None  # a group heading drawn above this bar


def bars(rows: Sequence[Bar], *, title: str, description: str, key: str) -> str:
    """One horizontal bar per level: the counts shown, and a hatched stub when cells were suppressed."""
    width, label_w, value_w, row_h, head_h = 640, 230, 150, 24, 22
    scale_max, _ = nice_ceiling(max((r.shown for r in rows), default=0))
    usable = width - label_w - value_w
    y, body = 6.0, []
    for row in rows:
        if row.heading:
            body.append(_text(0, y + 15, row.heading, size=12, fill=MUTED, weight="bold"))
            y += head_h
        length = usable * row.shown / scale_max if scale_max else 0.0
        shown = f"{row.shown}" if row.hidden == 0 else (f"{row.shown} + {row.hidden} cell{'s' * (row.hidden > 1)} <11"
                                                          if row.shown else f"<11 ({row.hidden} cell{'s' * (row.hidden > 1)})")
        body.append(f"<g><title>{escape(row.label)}: {escape(shown)}</title>")
        body.append(_text(label_w - 8, y + 16, row.label, anchor="end"))
        if length:
            body.append(f'<rect x="{label_w}" y="{y + 4:.1f}" width="{length:.1f}" height="{row_h - 8}" fill="{color(row.level)}"/>')
        if row.hidden:
            body.append(f'<rect x="{label_w + length:.1f}" y="{y + 4:.1f}" width="10" height="{row_h - 8}" fill="url(#{key}-{HATCH})"'
                        f' stroke="{MUTED}" stroke-width="0.5"/>')
        body.append(_text(label_w + length + (16 if row.hidden else 6), y + 16, shown, fill=INK))
        body.append("</g>")
        y += row_h
    if not rows:
        body.append(_text(0, 20, "No client is counted here.", fill=MUTED))
        y = 30
    return _svg(width, int(y + 6), title, description, "".join(body), key)


# -- stacked area ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    level: str
    label: str
    values: list[int | None]  # one per day; None: suppressed (drawn as 0, hatched below the axis)


def stacked_area(days: Sequence[date], series: Sequence[Series], *, title: str, description: str, key: str) -> str:
    """The census per day, one band per level (in the order given, the first at the bottom)."""
    width, height, left, right, top, bottom, legend_h = 1000, 300, 48, 16, 12, 30, 22
    rows_of_legend = math.ceil(len(series) / 7) if series else 0
    total_h = height + rows_of_legend * legend_h
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(days))]
    y_max, step = nice_ceiling(max(totals, default=0))
    count = len(days)

    def x(i: int) -> float:
        return left + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / y_max

    body = []
    tick = 0.0
    while tick <= y_max + 1e-9:
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="{GRID}" stroke-width="1"/>')
        body.append(_text(left - 6, y(tick) + 4, f"{tick:g}", anchor="end", size=11, fill=MUTED))
        tick += step
    base = [0.0] * count
    for s in series:
        upper = [base[i] + (s.values[i] or 0) for i in range(count)]
        if count and any(upper[i] != base[i] for i in range(count)):
            top_edge = " ".join(f"{x(i):.1f},{y(upper[i]):.1f}" for i in range(count))
            bottom_edge = " ".join(f"{x(i):.1f},{y(base[i]):.1f}" for i in reversed(range(count)))
            body.append(f'<polygon points="{top_edge} {bottom_edge}" fill="{color(s.level)}" stroke="#ffffff" stroke-width="0.5">'
                        f"<title>{escape(s.label)}</title></polygon>")
        base = upper
    for i, label in _ticks(days):
        body.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" stroke="{MUTED}"/>')
        body.append(_text(x(i), top + plot_h + 20, label, anchor="middle", size=11, fill=MUTED))
    body.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="{MUTED}"/>')
    for n, s in enumerate(series):
        lx, ly = left + (n % 7) * (plot_w / 7), height + (n // 7) * legend_h
        body.append(f'<rect x="{lx:.1f}" y="{ly + 2}" width="12" height="12" fill="{color(s.level)}"/>')
        body.append(_text(lx + 16, ly + 12, s.label, size=11))
    if not days or not series:
        body.append(_text(left + 8, top + 20, "No client is counted in this period.", fill=MUTED))
    return _svg(width, total_h, title, description, "".join(body), key)


SHORT_PERIOD = 45  # days: up to this, a tick each Monday; beyond, one at each month's start


def _ticks(days: Sequence[date]) -> list[tuple[int, str]]:
    if len(days) <= SHORT_PERIOD:
        return [(i, day.strftime("%d %b")) for i, day in enumerate(days) if i == 0 or day.weekday() == 0]
    starts = [i for i, day in enumerate(days) if day.day == 1]
    return [(i, days[i].strftime("%b %Y" if n == 0 or days[i].month == 1 else "%b")) for n, i in enumerate(starts)]


# -- Sankey ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flow:
    source: str
    target: str
    count: int | None  # None: suppressed (under 11), drawn thin and hatched

    @property
    def up(self) -> bool:
        return rank(self.target) > rank(self.source)


THIN, SLOT, GAP = 3.0, 16.0, 8.0  # a suppressed band's width; the least room for a node's label; between nodes


def _thickness(f: Flow, k: float) -> float:
    return THIN if f.count is None else max(f.count * k, 1.0)


def _node_heights(flows: Sequence[Flow], lefts: list[str], rights: list[str], k: float) -> tuple[dict[str, float], dict[str, float]]:
    return ({level: sum(_thickness(f, k) for f in flows if f.source == level) for level in lefts},
            {level: sum(_thickness(f, k) for f in flows if f.target == level) for level in rights})


def _extent(sizes: dict[str, float]) -> float:
    return sum(max(size, SLOT) for size in sizes.values()) + GAP * max(len(sizes) - 1, 0)


def _sankey_scale(flows: Sequence[Flow], lefts: list[str], rights: list[str], room: float) -> float:
    """Pixels per step: as large as lets both columns fit in `room`, each node with room for its label."""
    k = room / max(sum(f.count or 0 for f in flows), 1)
    for _ in range(80):
        out_h, in_h = _node_heights(flows, lefts, rights, k)
        if max(_extent(out_h), _extent(in_h)) <= room:
            break
        k *= 0.9
    return k


def sankey(flows: Sequence[Flow], *, title: str, description: str, key: str) -> str:
    """Levels stepped from (left) to levels stepped to (right), most intensive at the top; a band's
    width is the number of steps, green for a step down and orange for a step up."""
    width, height, node_w, label_w = 640, 380, 12, 118
    lefts = by_intensity([f.source for f in flows])
    rights = by_intensity([f.target for f in flows])
    k = _sankey_scale(flows, lefts, rights, height - 20)
    out_h, in_h = _node_heights(flows, lefts, rights, k)
    height = max(height, int(max(_extent(out_h), _extent(in_h))) + 20)

    def stack(sizes: dict[str, float]) -> dict[str, float]:
        tops, y = {}, 10.0
        for level, size in sizes.items():
            tops[level] = y + (max(size, SLOT) - size) / 2
            y += max(size, SLOT) + GAP
        return tops

    left_top, right_top = stack(out_h), stack(in_h)
    x0, x1 = label_w + node_w, width - label_w - node_w
    body, out_cursor, in_cursor = [], dict(left_top), dict(right_top)
    ordered = sorted(flows, key=lambda f: (lefts.index(f.source), rights.index(f.target)))
    for f in ordered:
        t = _thickness(f, k)
        ys, yt = out_cursor[f.source], in_cursor[f.target]
        out_cursor[f.source] += t
        in_cursor[f.target] += t
        mid = (x0 + x1) / 2
        shape = (f"M{x0:.1f},{ys:.1f} C{mid:.1f},{ys:.1f} {mid:.1f},{yt:.1f} {x1:.1f},{yt:.1f} L{x1:.1f},{yt + t:.1f}"
                 f" C{mid:.1f},{yt + t:.1f} {mid:.1f},{ys + t:.1f} {x0:.1f},{ys + t:.1f} Z")
        kind = "step up" if f.up else "step down"
        shown = "under 11 (suppressed)" if f.count is None else str(f.count)
        fill = f"url(#{key}-{HATCH})" if f.count is None else (STEP_UP if f.up else STEP_DOWN)
        opacity = "0.9" if f.count is None else "0.55"
        body.append(f'<path d="{shape}" fill="{fill}" fill-opacity="{opacity}" stroke="{STEP_UP if f.up else STEP_DOWN}"'
                    f' stroke-width="0.6" stroke-opacity="0.8">'
                    f"<title>{escape(f.source)} → {escape(f.target)}: {shown} ({kind}s)</title></path>")
    for level in lefts:
        h = out_cursor[level] - left_top[level]
        body.append(f'<rect x="{label_w}" y="{left_top[level]:.1f}" width="{node_w}" height="{max(h, 1):.1f}" fill="{color(level)}"/>')
        body.append(_text(label_w - 6, left_top[level] + h / 2 + 4, level, anchor="end"))
    for level in rights:
        h = in_cursor[level] - right_top[level]
        body.append(f'<rect x="{x1}" y="{right_top[level]:.1f}" width="{node_w}" height="{max(h, 1):.1f}" fill="{color(level)}"/>')
        body.append(_text(x1 + node_w + 6, right_top[level] + h / 2 + 4, level))
    body.append(_text(label_w, height - 2, "from", size=11, fill=MUTED))
    body.append(_text(x1 + node_w, height - 2, "to", anchor="end", size=11, fill=MUTED))
    if not flows:
        body.append(_text(label_w, 40, "No step between levels in this period.", fill=MUTED))
    return _svg(width, height + 4, title, description, "".join(body), key)


# -- meters ---------------------------------------------------------------------------------------------


def meter(rate: float | None, *, label: str) -> str:
    """A small bar for a rate from 0 to 1 (hatched when the API gave none)."""
    width, height = 120, 10
    if rate is None:
        return (f'<svg class="meter" viewBox="0 0 {width} {height}" width="{width}" height="{height}" aria-hidden="true">'
                f'<rect width="{width}" height="{height}" fill="#eeeeee"/></svg>')
    filled = max(0.0, min(1.0, rate)) * width
    return (f'<svg class="meter" viewBox="0 0 {width} {height}" width="{width}" height="{height}" aria-hidden="true">'
            f"<title>{escape(label)}</title>"
            f'<rect width="{width}" height="{height}" fill="#e6e6e6"/>'
            f'<rect width="{filled:.1f}" height="{height}" fill="{STEP_DOWN}"/></svg>')
