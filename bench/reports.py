"""Report latency (p50, p99) at 10^4 and 10^5 clients: every `continuum report NAME` through the
service call the CLI and the API make (`services.reports.Reports(views).run(name, scope)`).

The clients are made as for the census (`bench.queries.grow_to`): the recorded cohort's projection
rows (outcomes, attendance, drug tests, census, ...) copied inside the database with new journey
ids, so the copies have the shapes and the distribution of real journeys. Each report is timed with
the default range (all time until the end of the cohort; the census trend's last 30 days) and with a
site and level filter (`--site north --level 2.1`, as `continuum report NAME --site north --level 2.1`).

`python -m bench.reports` runs this stage alone on a fresh cohort (see `--help`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.queries import grow_to
from bench.stats import percentile
from services.bootstrap import Continuum
from services.reports import REPORTS, Reports, Scope

FILTER_SITE = "north"
FILTER_LEVELS = ("2.1",)
SLOW_P50_MS = 300.0  # issue 13: a report slower than this at 10^5 clients is profiled and fixed
SCOPES = ("all", "site+level")
BUDGET_S = 30.0  # timed seconds per report and scope at most, at the warmup's pace ...
MIN_RUNS = 3  # ... but never fewer runs than this
REPORT_HEADERS = ("report", "scope", "backend", "clients", "p50 ms", "p99 ms", "rows returned", "runs")
REPORT_NUMBERS = frozenset({"clients", "p50 ms", "p99 ms", "rows returned", "runs"})


def scopes(end: datetime) -> dict[str, Scope]:
    return {"all": Scope(end), "site+level": Scope(end, site=FILTER_SITE, levels=FILTER_LEVELS)}


class ReportsStage:
    """Every report at each of `scales` (`runs[i]` timed runs at `scales[i]`), both scopes.

    The tables only grow, so each size is timed before the queries stage grows them past it: `hook(next)`
    (the queries stage calls it before growing to `next` clients) times every size below `next` not yet
    timed, on the rows the census was timed on when the size is one of the queries'; `result()` times
    the sizes left and gives the stage's result."""

    def __init__(self, wired: Continuum, scales: tuple[int, ...], runs: tuple[int, ...], end: datetime, warmup: int = 1) -> None:
        self.wired, self.runs, self.end, self.warmup = wired, dict(zip(scales, runs, strict=True)), end, warmup
        self.scales: dict[str, Any] = {}
        self.seconds = 0.0
        self.error: Exception | None = None

    def hook(self, following: int) -> None:
        """`at` every size below `following`; a failure here is the reports stage's, not the queries'."""
        try:
            for clients in sorted(self.runs):
                if clients < following:
                    self.at(clients)
        except Exception as error:  # noqa: BLE001 - reported by result()
            self.error = error

    def at(self, clients: int) -> None:
        if clients in self.runs and str(clients) not in self.scales:
            started = time.perf_counter()
            made = grow_to(self.wired, clients)
            reports, count = Reports(self.wired.views), self.runs[clients]
            timings = {
                f"{name} {label}": {"report": name, "scope": label, **timed(reports, name, scope, count, self.warmup)}
                for name in REPORTS for label, scope in scopes(self.end).items()
            }
            self.scales[str(clients)] = {"clients": made, "runs": count, "reports": timings}
            self.seconds += time.perf_counter() - started

    def result(self) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        for clients in sorted(self.runs):
            self.at(clients)
        return {
            "status": "ok",
            "how": "projection rows of the recorded cohort copied in the database with new journey ids; "
                   "services.reports.Reports.run, as the CLI and the API call it",
            "filter": {"site": FILTER_SITE, "levels": list(FILTER_LEVELS)},
            "timing_seconds": self.seconds,
            "scales": self.scales,
        }


def timed(reports: Reports, name: str, scope: Scope, runs: int, warmup: int, budget_s: float = BUDGET_S) -> dict[str, Any]:
    """p50 and p99 of `runs` timed runs after `warmup` untimed ones; fewer runs (never under MIN_RUNS) when
    that many would take more than `budget_s` at the warmup's pace (the result says how many ran)."""
    paced = 0.0
    for _ in range(warmup):
        started = time.perf_counter()
        reports.run(name, scope)
        paced = time.perf_counter() - started
    count = runs if paced == 0.0 else max(MIN_RUNS, min(runs, int(budget_s / paced)))
    samples = []
    rows = 0
    for _ in range(count):
        started = time.perf_counter()
        rows = len(reports.run(name, scope).rows)
        samples.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": percentile(samples, 0.5), "p99_ms": percentile(samples, 0.99), "max_ms": max(samples), "rows": rows,
            "runs": count}


def slowest(scale: dict[str, Any]) -> dict[str, Any]:
    """The timing with the highest p50 of one size's reports."""
    return max(scale["reports"].values(), key=lambda timing: timing["p50_ms"])


def report_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    """(report, scope, backend, clients, p50 ms, p99 ms, rows, runs) for every report measured, by report then backend."""
    found = [
        (timing, label, scale["clients"])
        for label, backend in results["backends"].items()
        if backend.get("stages", {}).get("reports", {}).get("status") == "ok"
        for scale in backend["stages"]["reports"]["scales"].values()
        for timing in scale["reports"].values()
    ]
    order = {name: i for i, name in enumerate(REPORTS)}
    found.sort(key=lambda item: (order.get(item[0]["report"], len(order)), SCOPES.index(item[0]["scope"]), item[1], item[2]))
    return [
        (timing["report"], _scope_text(timing["scope"], results), label.split(" ")[0], f"{clients:,}",
         f"{timing['p50_ms']:.1f}", f"{timing['p99_ms']:.1f}", f"{timing['rows']:,}", str(timing["runs"]))
        for timing, label, clients in found
    ]


def _scope_text(scope: str, results: dict[str, Any]) -> str:
    if scope == "all":
        return "default"
    for backend in results["backends"].values():
        found = backend.get("stages", {}).get("reports", {}).get("filter")
        if found:
            return f"--site {found['site']} --level {','.join(found['levels'])}"
    return scope


def main(argv: list[str] | None = None) -> None:
    """Only the reports stage of `continuum bench`: a fresh store per backend, the bench's cohort recorded and
    projected, grown to each of the mode's sizes, every report timed; the JSON to --out, the table to stdout."""
    from bench.harness import MODES, run_reports_alone
    from bench.stores import DEFAULT_POSTGRES, Target

    parser = argparse.ArgumentParser(prog="python -m bench.reports", description=main.__doc__)
    parser.add_argument("--full", dest="mode", action="store_const", const="full", default="quick",
                        help="10^4 and 10^5 clients (default: --quick, 10^4)")
    parser.add_argument("--quick", dest="mode", action="store_const", const="quick")
    parser.add_argument("--sqlite", action="store_true", help="SQLite in a temporary folder (default: both backends)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL at CONTINUUM_BENCH_POSTGRES_URL or 127.0.0.1")
    parser.add_argument("--clients", type=int, nargs="+", help="the sizes instead of the mode's (ascending)")
    parser.add_argument("--runs", type=int, nargs="+", help="timed runs at each size instead of the mode's")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before the timed ones (default 1)")
    parser.add_argument("--out", type=Path, default=Path("bench-reports.json"), help="where to write the JSON results")
    args = parser.parse_args(argv)
    mode = MODES[args.mode]
    clients = tuple(args.clients or mode.report_clients)
    runs = tuple(args.runs or (mode.report_runs if args.clients is None else (mode.report_runs[-1],)))
    if len(runs) == 1:
        runs *= len(clients)
    if len(runs) != len(clients):
        parser.error(f"--runs gives {len(runs)} counts for {len(clients)} sizes of --clients (give one, or one a size)")
    mode = replace(mode, report_clients=clients, report_runs=runs)
    targets = []
    if args.sqlite or not args.postgres:
        targets.append(Target.sqlite())
    if args.postgres or not args.sqlite:
        targets.append(Target.postgres(os.environ.get("CONTINUUM_BENCH_POSTGRES_URL", DEFAULT_POSTGRES)))
    results = run_reports_alone(targets, mode, warmup=args.warmup, say=lambda text: print(text, file=sys.stderr, flush=True))  # noqa: T201
    results["command"] = " ".join(["python -m bench.reports", *(sys.argv[1:] if argv is None else argv)])
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    from bench.markdown import reports_table

    print(reports_table(results))  # noqa: T201
    if any(backend["status"] == "failed" for backend in results["backends"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
