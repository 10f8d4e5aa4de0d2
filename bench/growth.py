"""Growth: ingest and rebuild at 10^4, 10^5 and 10^6 events (full mode), each in a fresh store and
a fresh process (so its peak resident memory is its own), to show whether the cost per event stays
flat and memory bounded."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.ingest import cohort_lines
from bench.stores import Target

FLAT = 1.5  # the largest cost per event at most this multiple of the smallest


def growth_stage(target: Target, sizes: tuple[int, ...], chunk: int, batch: int, end: datetime, seed: int = 7) -> dict[str, Any]:
    points: list[dict[str, Any]] = []
    for size in sizes:
        url = target.fresh(f"growth{size}")
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as handle:
            handle.write("\n".join(cohort_lines(size, seed, end)) + "\n")
            lines_file = handle.name
        try:
            done = subprocess.run(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "bench.worker", url, lines_file, str(chunk), str(batch)],
                capture_output=True, text=True, check=False,
            )
        finally:
            Path(lines_file).unlink(missing_ok=True)
            target.release(url)
        if done.returncode != 0:
            msg = f"growth point {size}: worker failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}"
            raise RuntimeError(msg)
        point = json.loads(done.stdout.strip().splitlines()[-1])
        point["size"] = size
        point["ingest_us_per_event"] = point["ingest_seconds"] / point["events"] * 1e6
        point["rebuild_us_per_event"] = point["rebuild_seconds"] / point["rebuild_events"] * 1e6
        for stage, count in (("ingest", point["events"]), ("rebuild", point["rebuild_events"])):
            # where the wall time went: this process's CPU, and on PostgreSQL its server backends' CPU
            point[f"{stage}_client_cpu_us_per_event"] = point[f"{stage}_client_cpu_seconds"] / count * 1e6
            server = point.get(f"{stage}_server")
            if server is not None:
                point[f"{stage}_server_cpu_us_per_event"] = server["backend_cpu_seconds"] / count * 1e6
        for stage in ("ingest", "rebuild"):
            peak, base = point[f"{stage}_peak_rss_mb"], point["base_rss_mb" if stage == "ingest" else "rss_before_rebuild_mb"]
            point[f"{stage}_growth_mb"] = None if peak is None or base is None else peak - base
        points.append(point)
    summary: dict[str, Any] = {}
    for stage in ("ingest", "rebuild"):
        costs = [p[f"{stage}_us_per_event"] for p in points]
        memory = [p[f"{stage}_peak_rss_mb"] for p in points if p[f"{stage}_peak_rss_mb"] is not None]
        summary[stage] = {
            "cost_spread": max(costs) / min(costs),
            "cost_flat": max(costs) / min(costs) <= FLAT,
            "peak_rss_mb": memory,
        }
    return {
        "status": "ok",
        "how": ("a fresh store and a fresh process per size; lines streamed from a file; peak RSS from /proc (VmHWM);"
                " client CPU by time.process_time, PostgreSQL backends' CPU from /proc (bench.serverside)"),
        "points": points,
        "summary": summary,
        "target": f"cost per event flat (largest/smallest <= {FLAT}), memory bounded",
        "met": all(s["cost_flat"] for s in summary.values()),
    }
