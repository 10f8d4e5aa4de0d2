"""Growth: ingest and rebuild at 10^4, 10^5 and 10^6 events (full mode), each in a fresh store and
a fresh process (so its peak resident memory is its own), to show whether the cost per event stays
flat and memory bounded.

The growth stage's cohorts are one year each, so the clients in care at once grow with the log (223 at 10^4 events,
about 21,000 at 10^6). Beside them the log is grown at the smallest cohort's census (`held`): 10^5 and 10^6 events as
10 and 100 years of the 10^4 cohort, one after the other, which is how one program's log grows. Each series has its
own ratio of the largest cost per event to the smallest.

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
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.ingest import cohort_lines, held_census_lines
from bench.stats import middle
from bench.stores import Target

FLAT = 1.5  # the largest cost per event at most this multiple of the smallest
TIMED = ("ingest", "rebuild")  # the stages a worker times


def growth_stage(target: Target, sizes: tuple[int, ...], chunk: int, batch: int, end: datetime, seed: int = 7,
                 runs: Sequence[int] = ()) -> dict[str, Any]:
    """`runs[i]`: how many times size `sizes[i]` is run (once where not given); see `median_point`. Two series: the
    growth stage's own (`points`: a one-year cohort of each size, so the clients in care at once grow with the log),
    and the log grown at the smallest cohort's census (`held`: each size above the smallest as year after year of that
    cohort, `held_census_lines`; its first point is the smallest cohort's, the same lines)."""
    times = [runs[number] if number < len(runs) else 1 for number in range(len(sizes))]
    points = _points(target, sizes, times, chunk, batch, lambda size: cohort_lines(size, seed, end))
    held = points[:1] + _points(target, sizes[1:], times[1:], chunk, batch,
                                lambda size: held_census_lines(size, sizes[0], seed, end))
    summary, held_summary = _summary(points), _summary(held)
    return {
        "status": "ok",
        "how": ("a fresh store and a fresh process per size and run; lines streamed from a file; peak RSS from /proc"
                " (VmHWM); client CPU by time.process_time, PostgreSQL backends' CPU from /proc (bench.serverside);"
                " a size run more than once: the median run of each stage"),
        "points": points,
        "summary": summary,
        "target": f"cost per event flat (largest/smallest <= {FLAT}), memory bounded",
        "met": _met(summary),
        "held": {"census_of": sizes[0], "points": held, "summary": held_summary, "met": _met(held_summary)},
    }


def _points(target: Target, sizes: Sequence[int], times: Sequence[int], chunk: int, batch: int,
            lines_of: Callable[[int], list[str]]) -> list[dict[str, Any]]:
    """Each size's `lines_of(size)` written once and run `times[i]` times, each in a fresh store and process."""
    points: list[dict[str, Any]] = []
    for size, count in zip(sizes, times, strict=True):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as handle:
            handle.write("\n".join(lines_of(size)) + "\n")
            lines_file = handle.name
        try:
            measured = [_run(target, size, lines_file, chunk, batch) for _ in range(count)]
        finally:
            Path(lines_file).unlink(missing_ok=True)
        points.append(median_point(measured))
    return points


def _summary(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for stage in TIMED:
        costs = [p[f"{stage}_us_per_event"] for p in points]
        memory = [p[f"{stage}_peak_rss_mb"] for p in points if p[f"{stage}_peak_rss_mb"] is not None]
        summary[stage] = {
            "cost_spread": max(costs) / min(costs),
            "cost_flat": max(costs) / min(costs) <= FLAT,
            "peak_rss_mb": memory,
        }
    return summary


def _met(summary: dict[str, Any]) -> bool:
    return all(s["cost_flat"] for s in summary.values())


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
    if point["refused"]:
        msg = f"growth point {size}: {point['refused']:,} of its lines refused: the cost per event would be of fewer events"
        raise RuntimeError(msg)
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
