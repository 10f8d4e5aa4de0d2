"""A growth size run more than once is reported as its median run, stage by stage (bench.growth.median_point)."""

from __future__ import annotations

from typing import Any

from bench.growth import median_point


def _run(ingest: float, rebuild: float, tag: str) -> dict[str, Any]:
    """One worker's figures, each marked with `tag` so the test can tell which run a figure came from."""
    return {
        "size": 1000, "events": 1000, "commands": 1000, "refused": 0, "rebuild_events": 1000,
        "ingest_us_per_event": ingest, "ingest_seconds": ingest / 1000, "ingest_tenths_us_per_event": [ingest],
        "ingest_peak_rss_mb": f"ingest peak {tag}", "base_rss_mb": f"base {tag}",
        "rebuild_us_per_event": rebuild, "rebuild_seconds": rebuild / 1000, "rebuild_tenths_us_per_event": [rebuild],
        "rebuild_after_pages_seconds": f"after {tag}", "rebuild_peak_rss_mb": f"rebuild peak {tag}",
        "rss_before_rebuild_mb": f"before rebuild {tag}",
    }


def test_one_run_is_the_point_as_it_is():
    only = _run(80.0, 40.0, "a")
    assert median_point([only]) == only
    assert "runs" not in median_point([only])


def test_the_ingest_figures_come_from_the_median_ingest_run_and_the_rebuild_figures_from_the_median_rebuild_run():
    runs = [_run(120.0, 30.0, "a"), _run(90.0, 45.0, "b"), _run(100.0, 60.0, "c")]
    point = median_point(runs)
    assert (point["ingest_us_per_event"], point["ingest_seconds"], point["ingest_tenths_us_per_event"]) == (100.0, 0.1, [100.0])
    assert (point["ingest_peak_rss_mb"], point["base_rss_mb"]) == ("ingest peak c", "base c")
    assert (point["rebuild_us_per_event"], point["rebuild_seconds"], point["rebuild_tenths_us_per_event"]) == (45.0, 0.045, [45.0])
    assert (point["rebuild_after_pages_seconds"], point["rebuild_peak_rss_mb"], point["rss_before_rebuild_mb"]) == (
        "after b", "rebuild peak b", "before rebuild b")
    assert point["runs"] == [{"ingest_us_per_event": 120.0, "rebuild_us_per_event": 30.0},
                             {"ingest_us_per_event": 90.0, "rebuild_us_per_event": 45.0},
                             {"ingest_us_per_event": 100.0, "rebuild_us_per_event": 60.0}]
    assert runs[2]["rebuild_us_per_event"] == 60.0  # the runs themselves are left as they were


def test_of_two_runs_the_slower_is_reported():
    point = median_point([_run(90.0, 60.0, "a"), _run(120.0, 30.0, "b")])
    assert (point["ingest_us_per_event"], point["rebuild_us_per_event"]) == (120.0, 60.0)
