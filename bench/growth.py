"""Growth: ingest and rebuild at 10^4, 10^5 and 10^6 events (full mode), each in a fresh store and
a fresh process (so its peak resident memory is its own), to show whether the cost per event stays
flat and memory bounded.

A point below the largest lasts a second or a few: one pause of a shared machine moves it by a fifth or more
(10^4 events have taken 53 and 90 µs an event in two runs of the same code), and the smallest point is the
ratio's divisor. Each size is run `runs` times (full mode: three times, the largest once: it lasts minutes), each
run in a fresh store and process, and the point is the median run: the ingest's figures from the run with the
median ingest cost, the rebuild's from the run with the median rebuild cost; every run's two costs are kept
beside it (`runs`)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.ingest import cohort_lines
from bench.stats import middle
from bench.stores import Target

FLAT = 1.5  # the largest cost per event at most this multiple of the smallest
TIMED = ("ingest", "rebuild")  # the stages a worker times


def growth_stage(target: Target, sizes: tuple[int, ...], chunk: int, batch: int, end: datetime, seed: int = 7,
                 runs: Sequence[int] = ()) -> dict[str, Any]:
    """`runs[i]`: how many times size `sizes[i]` is run (once where not given); see `median_point`."""
    points: list[dict[str, Any]] = []
    for number, size in enumerate(sizes):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as handle:
            handle.write("\n".join(cohort_lines(size, seed, end)) + "\n")
            lines_file = handle.name
        try:
            times = runs[number] if number < len(runs) else 1
            measured = [_run(target, size, lines_file, chunk, batch) for _ in range(times)]
        finally:
            Path(lines_file).unlink(missing_ok=True)
        points.append(median_point(measured))
    summary: dict[str, Any] = {}
    for stage in TIMED:
        costs = [p[f"{stage}_us_per_event"] for p in points]
        memory = [p[f"{stage}_peak_rss_mb"] for p in points if p[f"{stage}_peak_rss_mb"] is not None]
        summary[stage] = {
            "cost_spread": max(costs) / min(costs),
            "cost_flat": max(costs) / min(costs) <= FLAT,
            "peak_rss_mb": memory,
        }
    return {
        "status": "ok",
        "how": ("a fresh store and a fresh process per size and run; lines streamed from a file; peak RSS from /proc"
                " (VmHWM); client CPU by time.process_time, PostgreSQL backends' CPU from /proc (bench.serverside);"
                " a size run more than once: the median run of each stage"),
        "points": points,
        "summary": summary,
        "target": f"cost per event flat (largest/smallest <= {FLAT}), memory bounded",
        "met": all(s["cost_flat"] for s in summary.values()),
    }


def _run(target: Target, size: int, lines_file: str, chunk: int, batch: int) -> dict[str, Any]:
    """One run of `size` events in a fresh store, by a worker process of its own, with its costs per event."""
    url = target.fresh(f"growth{size}")
    try:
        done = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bench.worker", url, lines_file, str(chunk), str(batch)],
            capture_output=True, text=True, check=False,
        )
    finally:
        target.release(url)
    if done.returncode != 0:
        msg = f"growth point {size}: worker failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}"
        raise RuntimeError(msg)
    point: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    point["size"] = size
    point["ingest_us_per_event"] = point["ingest_seconds"] / point["events"] * 1e6
    point["rebuild_us_per_event"] = point["rebuild_seconds"] / point["rebuild_events"] * 1e6
    for stage, count in (("ingest", point["events"]), ("rebuild", point["rebuild_events"])):
        # where the wall time went: this process's CPU, and on PostgreSQL its server backends' CPU
        point[f"{stage}_client_cpu_us_per_event"] = point[f"{stage}_client_cpu_seconds"] / count * 1e6
        server = point.get(f"{stage}_server")
        if server is not None:
            point[f"{stage}_server_cpu_us_per_event"] = server["backend_cpu_seconds"] / count * 1e6
    for stage in TIMED:
        peak, base = point[f"{stage}_peak_rss_mb"], point["base_rss_mb" if stage == "ingest" else "rss_before_rebuild_mb"]
        point[f"{stage}_growth_mb"] = None if peak is None or base is None else peak - base
    return point


def median_point(measured: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One run as it is; of several, the ingest's figures from the run with the median ingest cost per event and the
    rebuild's (every figure named for it, and the memory it started from) from the run with the median rebuild cost,
    with each run's two costs in `runs`. Of two runs, the slower of each stage."""
    if len(measured) == 1:
        return dict(measured[0])
    by_ingest = middle(measured, key=lambda run: run["ingest_us_per_event"])
    by_rebuild = middle(measured, key=lambda run: run["rebuild_us_per_event"])
    point = dict(by_ingest)
    point.update({key: value for key, value in by_rebuild.items() if key.startswith("rebuild") or key == "rss_before_rebuild_mb"})
    point["runs"] = [{f"{stage}_us_per_event": run[f"{stage}_us_per_event"] for stage in TIMED} for run in measured]
    return point
