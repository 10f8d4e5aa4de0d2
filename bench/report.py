"""The bench results as rich tables (one per backend) and as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}/s"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def _met(target: str, value: bool | None) -> str:
    mark = {True: " [green]ok[/green]", False: " [red]no[/red]", None: ""}[value]
    return f"{target}{mark}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MB"


def tables(results: dict[str, Any]) -> list[Table]:
    out = []
    for label, backend in results["backends"].items():
        title = f"{label}: {backend.get('version', backend['status'])}, {results['mode']} mode"
        table = Table(title=title, title_justify="left")
        for column in ("stage", "measure", "ours", "baseline", "ratio", "target"):
            table.add_column(column, overflow="fold", justify="right" if column in ("ours", "baseline", "ratio") else "left")
        if backend["status"] == "skipped":
            table.add_row("all", "skipped", backend["reason"], "", "", "")
            out.append(table)
            continue
        for name, rows in ROWS.items():
            stage = backend["stages"].get(name, {"status": "failed", "error": "missing"})
            if stage["status"] != "ok":
                table.add_row(name, stage["status"], "", "", "", "")
                table.add_row("", str(stage.get("reason") or stage.get("error", "")), "", "", "", "")
            else:
                rows(table, stage)
            table.add_section()
        out.append(table)
    return out


def _ingest_rows(table: Table, s: dict[str, Any]) -> None:
    table.add_row("ingest", f"events, {s['events']:,} (demo mix)", _rate(s["events_per_s"]),
                  f"raw insert {_rate(s['baseline']['rows_per_s'])}", _pct(s["ratio"]), _met(">= 50%", s["met"]))
    table.add_row("", "commands", _rate(s["commands_per_s"]), "", "", "")
    table.add_row("", "share: store insert / chain", f"{_pct(s['store_insert_share'])} / {_pct(s['chain_share'])}", "", "", "")


def _rebuild_rows(table: Table, s: dict[str, Any]) -> None:
    raw = s["baseline"]
    table.add_row("rebuild", f"all together, {s['events']:,} events", _rate(s["all"]["events_per_s"]),
                  f"raw r-d-w {_rate(raw['events_per_s'])}", _pct(s["ratio"]), _met(">= 50%", s["ratio"] >= 0.5))  # noqa: PLR2004
    for name, p in s["projections"].items():
        stock = p.get("stock", {})
        table.add_row("", name, _rate(p["events_per_s"]), f"raw r-d-w {_rate(raw['events_per_s'])}", _pct(p["vs_raw"]), "")
        table.add_row("", f"{name} vs stock runner", "",
                      f"stock {_rate(stock.get('events_per_s'))}" if stock.get("status") == "ok" else "skipped",
                      _times(p.get("vs_stock")), _met(">= 10x", None if p.get("vs_stock") is None else p["vs_stock"] >= 10))  # noqa: PLR2004
    table.add_row("", "raw: read only / read+decode", "", f"{_rate(raw['read_only_per_s'])} / {_rate(raw['read_decode_per_s'])}", "", "")


def _relay_rows(table: Table, s: dict[str, Any]) -> None:
    table.add_row("relay", "published", _rate(s["relay"]["events_per_s"]), f"bare producer {_rate(s['baseline']['events_per_s'])}",
                  _pct(s["ratio"]), _met(">= 80%", s["met"]))


def _queries_rows(table: Table, s: dict[str, Any]) -> None:
    for index, scale in enumerate(s["scales"].values()):
        last = index == len(s["scales"]) - 1
        for name in ("census_now", "census_on_date", "step_matrix", "audit_trail"):
            q = scale[name]
            target = _met("p99 < 5 ms @ 10^5", s["met"]) if name == "census_now" and last else ""
            table.add_row("queries" if name == "census_now" else "", f"{name} @ {scale['clients']:,} clients",
                          f"p50 {q['p50_ms']:.2f} ms", f"p99 {q['p99_ms']:.2f} ms", "", target)


def _growth_rows(table: Table, s: dict[str, Any]) -> None:
    for p in s["points"]:
        table.add_row("growth" if p is s["points"][0] else "", f"ingest, {p['events']:,} events",
                      f"{p['ingest_us_per_event']:.0f} us/ev", f"peak RSS {_mb(p['ingest_peak_rss_mb'])}", "", "")
        table.add_row("", f"rebuild, {p['events']:,} events",
                      f"{p['rebuild_us_per_event']:.0f} us/ev", f"peak RSS {_mb(p['rebuild_peak_rss_mb'])}", "", "")
    summary = s["summary"]
    table.add_row("", "cost per event, max/min", f"{summary['ingest']['cost_spread']:.2f} / {summary['rebuild']['cost_spread']:.2f}",
                  "ingest / rebuild", "", _met("<= 1.5", s["met"]))


ROWS = {"ingest": _ingest_rows, "rebuild": _rebuild_rows, "relay": _relay_rows, "queries": _queries_rows, "growth": _growth_rows}
