"""Each bench stage's rows, built once as strings from a `continuum bench` result, for both
renderings: the rich tables in the terminal (`bench.report`) and BENCHMARKS.md's Markdown tables
(`bench.markdown`). One `Section` a backend: its title, its column headers and its rows by stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bench.growth import FLAT
from bench.harness import STAGES
from bench.ingest import INGEST_TARGET
from bench.parallel import SPEEDUP_TARGET
from bench.queries import CENSUS_P99_TARGET_MS, TARGET_CLIENTS
from bench.rebuild import RAW_TARGET, STOCK_TARGET
from bench.relay import RELAY_TARGET
from bench.reports import SLOW_P50_MS, slowest

Row = tuple[str, str, str, str, str, str]
Justify = Literal["left", "right"]

HEADERS = ("stage", "measure", "ours", "baseline (same run, same store)", "ratio", "target")
JUSTIFY: tuple[Justify, ...] = ("left", "left", "right", "right", "right", "left")
LATER = frozenset({"reports"})  # stages added after results were first kept (BENCHMARKS.md's older runs lack them)
OPTIONAL = ("parallel",)  # stages some runs have (full mode on PostgreSQL): rows only where the stage ran
# A target cell with nothing to judge in a queries row: one space, which BENCHMARKS.md has always had there ("|  |").
NO_TARGET = " "


@dataclass(frozen=True)
class Section:
    """One backend's table. `skipped` is why the backend was not measured (then there are no rows)."""

    title: str
    headers: tuple[str, ...]
    justify: tuple[Justify, ...]
    stages: tuple[tuple[Row, ...], ...]  # the rows of each stage, in STAGES order
    skipped: str | None = None

    @property
    def rows(self) -> list[Row]:
        return [row for stage in self.stages for row in stage]


def stage_rows(results: dict[str, Any]) -> list[Section]:
    sections = []
    for label, backend in results["backends"].items():
        title = f"{label} ({backend.get('version', backend['status'])})"
        if backend["status"] == "skipped":
            sections.append(Section(title, HEADERS, JUSTIFY, (), skipped=str(backend["reason"])))
            continue
        stages = []
        for name in STAGES:
            if name in LATER and name not in backend["stages"]:
                continue  # a result from before the stage was added
            data = backend["stages"].get(name, {"status": "missing"})
            if data["status"] == "ok":
                stages.append(tuple(BUILDERS[name](data)))
            else:
                stages.append(((name, data["status"], str(data.get("reason") or data.get("error") or ""), "", "", ""),))
        stages.extend(tuple(BUILDERS[name](backend["stages"][name])) for name in OPTIONAL
                      if backend["stages"].get(name, {}).get("status") == "ok")
        sections.append(Section(title, HEADERS, JUSTIFY, tuple(stages)))
    return sections


def rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}/s"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def mark(met: bool) -> str:
    return "✅" if met else "❌"


def _at_least(share: float) -> str:
    return f"≥ {share * 100:.0f} %"


def _ingest(i: dict[str, Any]) -> list[Row]:
    rows: list[Row] = [
        ("ingest", f"events, {i['events']:,} demo commands", rate(i["events_per_s"]), f"raw insert {rate(i['baseline']['rows_per_s'])}",
         pct(i["ratio"]), "" if "ratio_with_chain" in i else f"{_at_least(INGEST_TARGET)} {mark(i['ratio'] >= INGEST_TARGET)}"),
    ]
    if "ratio_with_chain" in i:  # the design's floor: each event row with its chain row; the target is judged on it
        rows.append(("", "events, against event and chain rows", "", f"raw insert {rate(i['baseline_with_chain']['rows_per_s'])}",
                     pct(i["ratio_with_chain"]), f"{_at_least(INGEST_TARGET)} {mark(i['ratio_with_chain'] >= INGEST_TARGET)}"))
    return [
        *rows,
        ("", "commands", rate(i["commands_per_s"]), "", "", ""),
        ("", "share of ingest time: store insert / hash chain", f"{pct(i['store_insert_share'])} / {pct(i['chain_share'])}", "", "", ""),
    ]


def _rebuild(rb: dict[str, Any]) -> list[Row]:
    raw = rb["baseline"]
    rows: list[Row] = [
        ("rebuild", f"all together, {rb['events']:,} events", rate(rb["all"]["events_per_s"]),
         f"raw read-decode-write {rate(raw['events_per_s'])}", pct(rb["ratio"]),
         f"{_at_least(RAW_TARGET)} {mark(rb['ratio'] >= RAW_TARGET)}"),
    ]
    if "all_workers" in rb:  # runs before 2026-12-07 have no such figure
        parallel = rb["all_workers"]
        rows.append(("", f"all together, {parallel['workers']} workers (processes)", rate(parallel["events_per_s"]),
                     f"raw r-d-w {rate(raw['events_per_s'])}", pct(parallel["vs_raw"]), "one process's target: above"))
    for name, projection in rb["projections"].items():
        stock = projection.get("stock", {})
        versus = projection.get("vs_stock") or 0.0
        rows.append(("", name, rate(projection["events_per_s"]), f"raw r-d-w {rate(raw['events_per_s'])}", pct(projection["vs_raw"]), ""))
        rows.append(("", f"{name} vs stock `ProjectionRunner` (first {stock.get('positions', 0):,} positions)", "",
                     f"stock {rate(stock.get('events_per_s'))}", f"{versus:.1f}x", f"≥ {STOCK_TARGET:.0f}x {mark(versus >= STOCK_TARGET)}"))
    rows.append(("", "raw: read only / read + decode", "", f"{rate(raw['read_only_per_s'])} / {rate(raw['read_decode_per_s'])}", "", ""))
    return rows


def _relay(rl: dict[str, Any]) -> list[Row]:
    return [
        ("relay", "published", rate(rl["relay"]["events_per_s"]), f"bare producer {rate(rl['baseline']['events_per_s'])}",
         pct(rl["ratio"]), f"{_at_least(RELAY_TARGET)} {mark(rl['ratio'] >= RELAY_TARGET)}"),
    ]


def _queries(q: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for clients, scale in q["scales"].items():
        for name in ("census_now", "census_on_date", "step_matrix", "audit_trail"):
            target = NO_TARGET
            if name == "census_now" and int(clients) >= TARGET_CLIENTS:
                target = f"p99 < {CENSUS_P99_TARGET_MS:.0f} ms {mark(scale[name]['p99_ms'] < CENSUS_P99_TARGET_MS)}"
            rows.append(("queries", f"{name} @ {scale['clients']:,} clients", f"p50 {scale[name]['p50_ms']:.2f} ms",
                         f"p99 {scale[name]['p99_ms']:.2f} ms", "", target))
    return rows


def _reports(r: dict[str, Any]) -> list[Row]:
    """The slowest report at each size (every report's figures: BENCHMARKS.md's Reports table)."""
    rows: list[Row] = []
    for scale in r["scales"].values():
        worst = slowest(scale)
        target = NO_TARGET
        if scale["clients"] >= TARGET_CLIENTS:
            target = f"p50 ≤ {SLOW_P50_MS:.0f} ms {mark(worst['p50_ms'] <= SLOW_P50_MS)}"
        rows.append(("reports", f"slowest of {len(scale['reports'])} @ {scale['clients']:,} clients: {worst['report']} ({worst['scope']})",
                     f"p50 {worst['p50_ms']:.1f} ms", f"p99 {worst['p99_ms']:.1f} ms", "", target))
    return rows


def _growth(g: dict[str, Any]) -> list[Row]:
    rows: list[Row] = [_point("growth", f"{p['events']:,} events", p) for p in g["points"]]
    largest = g["points"][-1]
    ingested, rebuilt = largest.get("ingest_tenths_us_per_event"), largest.get("rebuild_tenths_us_per_event")
    if ingested and rebuilt:  # runs before these were taken have none
        rows.append(("", f"{largest['events']:,} events, first and last tenth: ingest / rebuild's pages",
                     f"{ingested[0]:.0f} → {ingested[-1]:.0f} / {rebuilt[0]:.0f} → {rebuilt[-1]:.0f} µs/event",
                     f"rebuild after its last page {largest['rebuild_after_pages_seconds']:.1f} s", "", ""))
    rows.append(_spread("cost per event, largest ÷ smallest: ingest / rebuild", g))
    held = g.get("held")  # runs before the held census have none
    if held:
        census = f"the {held['census_of']:,}-event cohort's census held"
        rows += [_point("", f"{p['events']:,} events, {census}", p) for p in held["points"][1:]]
        rows.append(_spread(f"{census}: cost per event, largest ÷ smallest: ingest / rebuild", held))
    return rows


def _point(stage: str, what: str, p: dict[str, Any]) -> Row:
    return (stage, f"{what}: ingest / rebuild{_median_of(p)}",
            f"{p['ingest_us_per_event']:.0f} / {p['rebuild_us_per_event']:.0f} µs/event",
            f"peak RSS {p['ingest_peak_rss_mb']:,.0f} / {p['rebuild_peak_rss_mb']:,.0f} MB", _each_run(p), "")


def _spread(measure: str, series: dict[str, Any]) -> Row:
    spread = series["summary"]
    return ("", measure, f"{spread['ingest']['cost_spread']:.2f} / {spread['rebuild']['cost_spread']:.2f}", "", "",
            f"≤ {FLAT} {mark(bool(series['met']))}")


def _median_of(point: dict[str, Any]) -> str:
    return f" (median of {len(point['runs'])} runs)" if point.get("runs") else ""


def _each_run(point: dict[str, Any]) -> str:
    """Every run's two costs, for a point run more than once (runs before the repeats have none)."""
    return ", ".join(f"{run['ingest_us_per_event']:.0f} / {run['rebuild_us_per_event']:.0f}" for run in point.get("runs", ()))


def _parallel(pl: dict[str, Any]) -> list[Row]:
    """Ingest across workers: the last worker count against the first, and what bounds it."""
    first, last = (str(count) for count in (pl["workers"][0], pl["workers"][-1]))
    base, most = pl["runs"][first], pl["runs"][last]
    rows: list[Row] = [
        ("ingest across workers", f"events, {pl['events']:,} demo lines, {last} workers", rate(most["events_per_s"]),
         f"{first} worker {rate(base['events_per_s'])}", f"{pl['speedup']:.2f}x",
         f"≥ {SPEEDUP_TARGET}x {mark(pl['speedup'] >= SPEEDUP_TARGET)}"),
    ]
    if pl.get("rounds"):
        rows.append(("", f"speed-up of each round (the median round shown, {len(pl['rounds'])} in alternating order)",
                     " / ".join(f"{taken['speedup']:.2f}x" for taken in pl["rounds"]), "", "", ""))
    if "cpu_bound" in pl:
        rows.append(("", "at most: the events table's lock / the CPU", f"{pl['lock_bound'][last]:.2f}x / {pl['cpu_bound']:.2f}x",
                     "", "", ""))
    return rows


BUILDERS = {"ingest": _ingest, "rebuild": _rebuild, "relay": _relay, "queries": _queries, "reports": _reports, "growth": _growth,
            "parallel": _parallel}
