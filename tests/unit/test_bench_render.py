"""One set of bench rows, two renderings: the terminal's rich tables (`bench.report.tables`) and
BENCHMARKS.md's Markdown (`bench.markdown.render`) show the same cells, built once in `bench.rows`."""

from __future__ import annotations

from typing import Any

import pytest
from rich.text import Text

from bench.markdown import render
from bench.report import tables
from bench.rows import HEADERS

MACHINE = {"nproc": 2, "cpu": "Test CPU", "memory_gb": 4.0, "python": "3.11.7", "eventsourcing": "9.5.6",
           "psycopg": "3.3.9", "platform": "Linux-test"}


def _measured() -> dict[str, Any]:
    """One backend with every stage measured: one projection, one query scale at the target size, one growth point."""
    return {
        "status": "ok", "kind": "sqlite", "version": "SQLite 3.40.1",
        "stages": {
            "ingest": {"status": "ok", "events": 1000, "events_per_s": 600.0, "commands_per_s": 500.4, "ratio": 0.6,
                       "baseline": {"rows_per_s": 1000.0}, "store_insert_share": 0.25, "chain_share": 0.125},
            "rebuild": {"status": "ok", "events": 1000, "all": {"events_per_s": 400.0}, "ratio": 0.4,
                        "all_workers": {"events_per_s": 560.0, "vs_raw": 0.56, "workers": 2},
                        "baseline": {"events_per_s": 1000.0, "read_only_per_s": 5000.0, "read_decode_per_s": 2000.0},
                        "projections": {"census": {"events_per_s": 3000.0, "vs_raw": 3.0, "vs_stock": 12.0,
                                                   "stock": {"status": "ok", "positions": 200, "events_per_s": 250.0}}}},
            "relay": {"status": "ok", "relay": {"events_per_s": 700.0}, "baseline": {"events_per_s": 1000.0}, "ratio": 0.7},
            "queries": {"status": "ok", "scales": {"100000": {
                "clients": 100_123,
                "census_now": {"p50_ms": 0.5, "p99_ms": 1.25},
                "census_on_date": {"p50_ms": 2.0, "p99_ms": 3.0},
                "step_matrix": {"p50_ms": 4.0, "p99_ms": 6.5},
                "audit_trail": {"p50_ms": 0.25, "p99_ms": 0.75},
            }}},
            "growth": {"status": "ok", "met": True, "points": [
                {"events": 1000, "ingest_us_per_event": 100.4, "rebuild_us_per_event": 50.0,
                 "ingest_peak_rss_mb": 60.2, "rebuild_peak_rss_mb": 61.0,
                 "ingest_tenths_us_per_event": [90.4, 95.0, 110.6], "rebuild_tenths_us_per_event": [40.0, 55.5],
                 "rebuild_after_pages_seconds": 0.5},
            ], "summary": {"ingest": {"cost_spread": 1.0}, "rebuild": {"cost_spread": 1.25}}},
        },
    }


def _results(**backends: dict[str, Any]) -> dict[str, Any]:
    return {"mode": "quick", "started_at": "2026-01-02T03:04:05+00:00", "seconds": 120.0, "machine": MACHINE, "backends": backends}


def _markdown_tables(text: str) -> list[list[tuple[str, ...]]]:
    """Each Markdown table's body rows (header and rule left out), cells stripped."""
    found: list[list[tuple[str, ...]]] = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = tuple(cell.strip() for cell in line.strip("|").split("|"))
        if cells == HEADERS:
            found.append([])
        elif not set("".join(cells)) <= set("-:"):
            found[-1].append(cells)
    return found


def _rich_tables(results: dict[str, Any]) -> list[list[tuple[str, ...]]]:
    found = []
    for table in tables(results):
        assert tuple(str(column.header) for column in table.columns) == HEADERS
        columns = [[cell.plain if isinstance(cell, Text) else str(cell) for cell in column.cells] for column in table.columns]
        found.append([tuple(cell.strip() for cell in row) for row in zip(*columns, strict=True)])
    return found


def test_the_same_cells_in_the_terminal_and_in_markdown():
    failed = {**_measured(), "status": "failed"}
    failed["stages"] = {**failed["stages"], "relay": {"status": "failed", "error": "KeyError: ['topic']"},
                        "queries": {"status": "skipped", "reason": "ingest failed"}}
    results = _results(sqlite=_measured(), other=failed)
    markdown, terminal = _markdown_tables(render(results)), _rich_tables(results)
    assert markdown == terminal
    assert len(markdown) == 2
    assert ("relay", "failed", "KeyError: ['topic']", "", "", "") in terminal[1]
    assert ("queries", "census_now @ 100,123 clients", "p50 0.50 ms", "p99 1.25 ms", "", "p99 < 5 ms ✅") in terminal[0]


def test_a_skipped_backend_is_a_line_in_markdown_and_a_row_in_the_terminal():
    results = _results(postgres={"status": "skipped", "reason": "no server", "stages": {}})
    assert render(results).endswith("\n### postgres (skipped)\n\nskipped: no server\n")
    [table] = tables(results)
    assert table.title == "postgres (skipped), quick mode"
    assert [[str(cell) for cell in column.cells] for column in table.columns][:3] == [["all"], ["skipped"], ["no server"]]


def test_the_markdown_of_one_backend_exactly():
    assert render(_results(sqlite=_measured())) == """\
Run `continuum bench --quick` on 2026-01-02T03:04:05+00:00 (2 min).

Machine: 2 vCPU (Test CPU), 4.0 GB RAM, Python 3.11.7, eventsourcing 9.5.6, psycopg 3.3.9; Linux-test.


### sqlite (SQLite 3.40.1)

| stage | measure | ours | baseline (same run, same store) | ratio | target |
|---|---|---:|---:|---:|---|
| ingest | events, 1,000 demo commands | 600/s | raw insert 1,000/s | 60% | ≥ 50 % ✅ |
| | commands | 500/s | | | |
| | share of ingest time: store insert / hash chain | 25% / 12% | | | |
| rebuild | all together, 1,000 events | 400/s | raw read-decode-write 1,000/s | 40% | ≥ 50 % ❌ |
| | all together, 2 workers (processes) | 560/s | raw r-d-w 1,000/s | 56% | one process's target: above |
| | census | 3,000/s | raw r-d-w 1,000/s | 300% | |
| | census vs stock `ProjectionRunner` (first 200 positions) | | stock 250/s | 12.0x | ≥ 10x ✅ |
| | raw: read only / read + decode | | 5,000/s / 2,000/s | | |
| relay | published | 700/s | bare producer 1,000/s | 70% | ≥ 80 % ❌ |
| queries | census_now @ 100,123 clients | p50 0.50 ms | p99 1.25 ms | | p99 < 5 ms ✅ |
| queries | census_on_date @ 100,123 clients | p50 2.00 ms | p99 3.00 ms | |  |
| queries | step_matrix @ 100,123 clients | p50 4.00 ms | p99 6.50 ms | |  |
| queries | audit_trail @ 100,123 clients | p50 0.25 ms | p99 0.75 ms | |  |
| growth | 1,000 events: ingest / rebuild | 100 / 50 µs/event | peak RSS 60 / 61 MB | | |
| | 1,000 events, first and last tenth: ingest / rebuild's pages | 90 → 111 / 40 → 56 µs/event | rebuild after its last page 0.5 s | | |
| | cost per event, largest ÷ smallest: ingest / rebuild | 1.00 / 1.25 | | | ≤ 1.5 ✅ |"""


def test_a_full_run_rewrites_only_the_figures_section_of_the_document():
    from bench.markdown import BEGIN, END, NoFiguresSectionError, update

    results = _results(sqlite=_measured())
    document = f"# Benchmarks\n\nHow we measure.\n\n{BEGIN}\n\nold figures\n\n{END}\n\n## Targets\n\nkept\n"
    once = update(document, results)
    assert once.startswith(f"# Benchmarks\n\nHow we measure.\n\n{BEGIN}\n\n{render(results).rstrip()}\n\n{END}")
    assert once.endswith(f"{END}\n\n## Targets\n\nkept\n")
    assert "old figures" not in once
    assert update(once, results) == once  # a second run of the same results changes nothing
    with pytest.raises(NoFiguresSectionError, match="no figures section"):
        update("# Benchmarks without marks\n", results)


def test_ingest_across_workers_is_rows_where_the_stage_ran():
    measured = _measured()
    measured["stages"]["parallel"] = {
        "status": "ok", "events": 1000, "workers": [1, 2], "speedup": 1.75,
        "runs": {"1": {"events_per_s": 400.0}, "2": {"events_per_s": 700.0}},
        "lock_bound": {"1": 1.0, "2": 2.0}, "cpu_bound": 1.9,
    }
    text = render(_results(postgres=measured, sqlite=_measured()))
    assert "| ingest across workers | events, 1,000 demo lines, 2 workers | 700/s | 1 worker 400/s | 1.75x | ≥ 1.7x ✅ |" in text
    assert "| | at most: the events table's lock / the CPU | 2.00x / 1.90x | | | |" in text
    assert "rounds" not in text  # a run from before the rounds
    assert text.count("ingest across workers") == 1  # the SQLite section, which has no such stage, has no such row
    assert _markdown_tables(text) == _rich_tables(_results(postgres=measured, sqlite=_measured()))
    measured["stages"]["parallel"]["rounds"] = [{"speedup": 1.75}, {"speedup": 1.9}, {"speedup": 1.6}]
    rounds = render(_results(postgres=measured, sqlite=_measured()))
    assert "| | speed-up of each round (the median round shown, 3 in alternating order) | 1.75x / 1.90x / 1.60x | | | |" in rounds
    assert _markdown_tables(rounds) == _rich_tables(_results(postgres=measured, sqlite=_measured()))


def test_the_parallel_stage_reports_the_round_with_the_median_speed_up():
    from bench.parallel import median_round

    def rounds(*pairs):
        return [{"1": {"events_per_s": one}, "2": {"events_per_s": two}} for one, two in pairs]

    assert median_round(rounds((100, 170), (100, 210), (100, 150)), (1, 2)) == (0, [1.7, 2.1, 1.5])
    assert median_round(rounds((100, 210), (200, 300)), (1, 2))[0] == 1  # of two, the lower
    assert median_round(rounds((100, 190)), (1, 2)) == (0, [1.9])


def test_a_growth_point_measured_before_the_tenths_were_taken_renders_without_their_row():
    from bench.rows import BUILDERS

    growth = _measured()["stages"]["growth"]
    for key in ("ingest_tenths_us_per_event", "rebuild_tenths_us_per_event", "rebuild_after_pages_seconds"):
        growth["points"][-1].pop(key)
    rows = BUILDERS["growth"](growth)
    assert [row[1] for row in rows] == ["1,000 events: ingest / rebuild", "cost per event, largest ÷ smallest: ingest / rebuild"]


def test_a_growth_point_run_more_than_once_renders_the_median_run_and_every_run():
    from bench.rows import BUILDERS

    growth = _measured()["stages"]["growth"]
    growth["points"][0]["runs"] = [{"ingest_us_per_event": 120.4, "rebuild_us_per_event": 50.0},
                                   {"ingest_us_per_event": 100.4, "rebuild_us_per_event": 61.2},
                                   {"ingest_us_per_event": 90.0, "rebuild_us_per_event": 45.0}]
    rows = BUILDERS["growth"](growth)
    assert rows[0] == ("growth", "1,000 events: ingest / rebuild (median of 3 runs)", "100 / 50 µs/event",
                       "peak RSS 60 / 61 MB", "120 / 50, 100 / 61, 90 / 45", "")


def test_the_log_grown_at_a_held_census_renders_its_points_and_its_own_spread():
    from bench.rows import BUILDERS

    growth = _measured()["stages"]["growth"]
    smallest = growth["points"][0]
    larger = dict(smallest, events=10_000, ingest_us_per_event=140.6, rebuild_us_per_event=55.0,
                  ingest_peak_rss_mb=80.0, rebuild_peak_rss_mb=90.4)
    growth["held"] = {"census_of": 1000, "points": [smallest, larger], "met": True,
                      "summary": {"ingest": {"cost_spread": 1.40}, "rebuild": {"cost_spread": 1.10}}}
    rows = BUILDERS["growth"](growth)
    assert rows[-2:] == [
        ("", "10,000 events, the 1,000-event cohort's census held: ingest / rebuild", "141 / 55 µs/event",
         "peak RSS 80 / 90 MB", "", ""),
        ("", "the 1,000-event cohort's census held: cost per event, largest ÷ smallest: ingest / rebuild", "1.40 / 1.10",
         "", "", "≤ 1.5 ✅"),
    ]
