"""BENCHMARKS.md's tables from a `continuum bench --out FILE` result: `python -m bench.markdown FILE`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

INGEST_TARGET, REBUILD_TARGET, STOCK_TARGET, RELAY_TARGET = 0.5, 0.5, 10.0, 0.8
CENSUS_P99_MS, CENSUS_AT_CLIENTS = 5.0, 100_000
HEADER = "| stage | measure | ours | baseline (same run, same store) | ratio | target |\n|---|---|---:|---:|---:|---|"


def _rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}/s"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _mark(met: bool) -> str:
    return "✅" if met else "❌"


def render(results: dict[str, Any]) -> str:
    machine = results["machine"]
    out = [
        f"Run `continuum bench --{results['mode']}` on {results['started_at']} ({results['seconds'] / 60:.0f} min).\n",
        f"Machine: {machine['nproc']} vCPU ({machine['cpu']}), {machine['memory_gb']} GB RAM, Python {machine['python']},"
        f" eventsourcing {machine['eventsourcing']}, psycopg {machine['psycopg']}; {machine['platform']}.\n",
    ]
    for label, backend in results["backends"].items():
        out.append(f"\n### {label} ({backend.get('version', backend['status'])})\n")
        if backend["status"] == "skipped":
            out.append(f"skipped: {backend['reason']}\n")
            continue
        out.append(HEADER)
        stages = backend["stages"]
        for stage, rows in (("ingest", _ingest), ("rebuild", _rebuild), ("relay", _relay), ("queries", _queries), ("growth", _growth)):
            data = stages.get(stage, {"status": "missing"})
            out.extend(rows(data) if data["status"] == "ok" else [f"| {stage} | {data['status']} | {data.get('reason') or data.get('error')} | | | |"])
    return "\n".join(out)


def _ingest(i: dict[str, Any]) -> list[str]:
    return [
        f"| ingest | events, {i['events']:,} demo commands | {_rate(i['events_per_s'])} | raw insert {_rate(i['baseline']['rows_per_s'])}"
        f" | {_pct(i['ratio'])} | ≥ 50 % {_mark(i['ratio'] >= INGEST_TARGET)} |",
        f"| | commands | {_rate(i['commands_per_s'])} | | | |",
        f"| | share of ingest time: store insert / hash chain | {_pct(i['store_insert_share'])} / {_pct(i['chain_share'])} | | | |",
    ]


def _rebuild(rb: dict[str, Any]) -> list[str]:
    raw = rb["baseline"]
    rows = [
        f"| rebuild | all together, {rb['events']:,} events | {_rate(rb['all']['events_per_s'])} | raw read-decode-write"
        f" {_rate(raw['events_per_s'])} | {_pct(rb['ratio'])} | ≥ 50 % {_mark(rb['ratio'] >= REBUILD_TARGET)} |",
    ]
    for name, projection in rb["projections"].items():
        stock = projection.get("stock", {})
        versus = projection.get("vs_stock") or 0.0
        rows.append(f"| | {name} | {_rate(projection['events_per_s'])} | raw r-d-w {_rate(raw['events_per_s'])} | {_pct(projection['vs_raw'])} | |")
        rows.append(
            f"| | {name} vs stock `ProjectionRunner` (first {stock.get('positions', 0):,} positions) | | stock"
            f" {_rate(stock.get('events_per_s'))} | {versus:.1f}x | ≥ 10x {_mark(versus >= STOCK_TARGET)} |",
        )
    rows.append(f"| | raw: read only / read + decode | | {_rate(raw['read_only_per_s'])} / {_rate(raw['read_decode_per_s'])} | | |")
    return rows


def _relay(rl: dict[str, Any]) -> list[str]:
    return [
        f"| relay | published | {_rate(rl['relay']['events_per_s'])} | bare producer {_rate(rl['baseline']['events_per_s'])}"
        f" | {_pct(rl['ratio'])} | ≥ 80 % {_mark(rl['ratio'] >= RELAY_TARGET)} |",
    ]


def _queries(q: dict[str, Any]) -> list[str]:
    rows = []
    for clients, scale in q["scales"].items():
        for name in ("census_now", "census_on_date", "step_matrix", "audit_trail"):
            target = ""
            if name == "census_now" and int(clients) >= CENSUS_AT_CLIENTS:
                target = f"p99 < 5 ms {_mark(scale[name]['p99_ms'] < CENSUS_P99_MS)}"
            rows.append(
                f"| queries | {name} @ {scale['clients']:,} clients | p50 {scale[name]['p50_ms']:.2f} ms"
                f" | p99 {scale[name]['p99_ms']:.2f} ms | | {target} |",
            )
    return rows


def _growth(g: dict[str, Any]) -> list[str]:
    rows = [
        f"| growth | {p['events']:,} events: ingest / rebuild | {p['ingest_us_per_event']:.0f} / {p['rebuild_us_per_event']:.0f} µs/event"
        f" | peak RSS {p['ingest_peak_rss_mb']:,.0f} / {p['rebuild_peak_rss_mb']:,.0f} MB | | |"
        for p in g["points"]
    ]
    spread = g["summary"]
    rows.append(
        f"| | cost per event, largest ÷ smallest: ingest / rebuild | {spread['ingest']['cost_spread']:.2f} /"
        f" {spread['rebuild']['cost_spread']:.2f} | | | ≤ 1.5 {_mark(bool(g['met']))} |",
    )
    return rows


def main() -> None:
    if len(sys.argv) != 2:  # noqa: PLR2004
        sys.exit("usage: python -m bench.markdown FILE (the JSON of `continuum bench --out FILE`)")
    print(render(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))  # noqa: T201


if __name__ == "__main__":
    main()
