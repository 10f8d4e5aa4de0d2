"""`python -m bench.parallel` runs to the end on PostgreSQL and reports each worker count, the CPU, the backends'
waits and the serial share (no timing asserted: the figures are for the README, not for CI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.parallel import main, parallel_stage, table
from bench.stores import Target

pytestmark = pytest.mark.slow


def test_parallel_stage_on_postgres(tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTINUUM_BENCH_POSTGRES_URL", pg_url.split("?", 1)[0])
    out = tmp_path / "parallel.json"

    main(["--events", "400", "--chunk", "100", "--out", str(out)])

    stage = json.loads(out.read_text())
    assert stage["status"] == "ok"
    assert stage["events"] == 400
    assert set(stage["runs"]) == {"1", "2"}
    for run in stage["runs"].values():
        assert run["events"] == 400
        assert run["samples"] >= 0
        assert 0 <= run["machine_busy"] <= 1
        assert run["our_cpu_seconds"] > 0
    assert stage["serial"]["transactions"] == 4
    assert 1 <= stage["bound"]["2"] <= 2
    assert stage["bound"]["2"] == min(stage["lock_bound"]["2"], stage["cpu_bound"])
    assert stage["lock_bound"]["2"] == min(2, 1 / stage["serial"]["insert_share"])
    assert len(stage["rounds"]) == 3  # one worker and two, three times in alternating order
    shown = stage["rounds"][stage["round_shown"] - 1]
    assert shown["speedup"] == stage["speedup"] == stage["runs"]["2"]["events_per_s"] / stage["runs"]["1"]["events_per_s"]
    assert sorted(r["speedup"] for r in stage["rounds"])[1] == stage["speedup"]  # the median round
    printed = capsys.readouterr().out
    assert "Speed-up with 2 workers" in printed
    assert "of 3, the median:" in printed
    assert "| 2 | 400 |" in table(stage)


def test_parallel_stage_is_skipped_on_sqlite() -> None:
    target = Target.sqlite()
    try:
        assert parallel_stage(target, 10, 10, end=None)["status"] == "skipped"  # type: ignore[arg-type]
    finally:
        target.cleanup()
