"""`continuum bench --quick` runs to the end and reports every stage (it asserts no timing: these
machines are noisy, and the figures are for BENCHMARKS.md, not for CI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.harness import STAGES
from bench.markdown import render
from bench.reports import SCOPES
from projections.catalogue import all_projections
from services.cli import app
from services.cli.reports import NAMES

pytestmark = pytest.mark.slow


def _bench(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "--quick", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def _check(results: dict, kind: str) -> None:
    backends = [b for b in results["backends"].values() if b.get("kind") == kind]
    assert len(backends) == 1, results["backends"]
    backend = backends[0]
    assert backend["status"] == "ok", backend
    assert set(backend["stages"]) == set(STAGES)
    for name, stage in backend["stages"].items():
        assert stage["status"] in ("ok", "skipped"), (name, stage.get("error"), stage.get("traceback"))
    for name in ("ingest", "rebuild", "queries", "reports", "growth"):
        assert backend["stages"][name]["status"] == "ok", name
    _check_reports(backend["stages"]["reports"], results["settings"])
    rendered = render(results)  # BENCHMARKS.md's Reports table: a row per report, scope, backend and size
    assert all(f"| {name} | default | {kind} |" in rendered for name in NAMES), rendered
    assert backend["stages"]["ingest"]["events"] == results["settings"]["events"]
    assert set(backend["stages"]["rebuild"]["projections"]) == {p.name for p in all_projections()}
    for point in backend["stages"]["growth"]["points"]:  # each stage's cost tenth by tenth, as it went
        for stage in ("ingest", "rebuild"):
            tenths = point[f"{stage}_tenths_us_per_event"]
            assert 1 <= len(tenths) <= 10, point
            assert min(tenths) > 0, point
        assert 0 < point["rebuild_after_pages_seconds"] < point["rebuild_seconds"], point
    smallest = backend["stages"]["growth"]["points"][0]  # run three times (quick mode): the median run of each stage
    for stage in ("ingest", "rebuild"):
        costs = sorted(run[f"{stage}_us_per_event"] for run in smallest["runs"])
        assert len(costs) == results["settings"]["growth_runs"][0] == 3, smallest
        assert smallest[f"{stage}_us_per_event"] == costs[1], smallest
    growth = backend["stages"]["growth"]  # the log grown at the smallest cohort's census: its first point that cohort's
    held, sizes = growth["held"], results["settings"]["growth_events"]
    assert held["census_of"] == sizes[0]
    assert [p["events"] for p in held["points"]] == sizes
    assert held["points"][0] == smallest
    assert all(p["refused"] == 0 for p in growth["points"] + held["points"])
    assert f"{sizes[-1]:,} events, the {sizes[0]:,}-event cohort's census held: ingest / rebuild" in render(results)
    rebuild = backend["stages"]["rebuild"]
    assert (rebuild["all_workers"]["workers"], rebuild["all_workers"]["read"]) == (2, rebuild["events"])  # two processes, every event read


def _check_reports(stage: dict, settings: dict) -> None:
    """Every report `continuum report` accepts was run at each size, with and without the site/level filter."""
    assert [int(size) for size in stage["scales"]] == settings["report_clients"]
    for scale in stage["scales"].values():
        assert scale["clients"] >= 1
        timed = {(timing["report"], timing["scope"]) for timing in scale["reports"].values()}
        assert timed == {(name, scope) for name in NAMES for scope in SCOPES}
        assert all(timing["runs"] >= 1 and timing["rows"] >= 0 for timing in scale["reports"].values())


def test_quick_bench_on_sqlite(tmp_path):
    results = _bench(tmp_path, "--sqlite")
    assert results["mode"] == "quick"
    _check(results, "sqlite")


def test_quick_bench_on_postgres(tmp_path, pg_url):
    results = _bench(tmp_path, "--database-url", pg_url)
    _check(results, "postgres")
