"""`continuum bench --quick` runs to the end and reports every stage (it asserts no timing: these
machines are noisy, and the figures are for BENCHMARKS.md, not for CI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.harness import STAGES
from projections.catalogue import all_projections
from services.cli import app

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
    for name in ("ingest", "rebuild", "queries", "growth"):
        assert backend["stages"][name]["status"] == "ok", name
    assert backend["stages"]["ingest"]["events"] == results["settings"]["events"]
    assert set(backend["stages"]["rebuild"]["projections"]) == {p.name for p in all_projections()}


def test_quick_bench_on_sqlite(tmp_path):
    results = _bench(tmp_path, "--sqlite")
    assert results["mode"] == "quick"
    _check(results, "sqlite")


def test_quick_bench_on_postgres(tmp_path, pg_url):
    results = _bench(tmp_path, "--database-url", pg_url)
    _check(results, "postgres")
