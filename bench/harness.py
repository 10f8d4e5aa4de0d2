"""The run: for each backend, one cohort recorded through the service, then every stage on that
store, each against its raw baseline; growth in fresh stores. Results as one JSON-ready dict."""

from __future__ import annotations

import os
import platform
import re
import sqlite3
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psycopg

from bench.growth import growth_stage
from bench.ingest import ACTOR, all_recorded, cohort_lines, ingest_stage
from bench.instrument import timed_recorder_topic
from bench.queries import queries_stage
from bench.rebuild import rebuild_stage
from bench.relay import relay_stage
from bench.stores import Target, open_continuum
from services.bootstrap import Continuum
from services.importer import import_lines

STAGES = ("ingest", "rebuild", "relay", "queries", "reports", "growth")
SEED = 7


@dataclass(frozen=True)
class Mode:
    name: str
    events: int  # the cohort every stage but growth runs on (commands = events in the demo mix)
    chunk: int  # import lines per unit of work (CONTINUUM_COMMAND_BATCH_SIZE default)
    batch: int  # events per projection transaction (CONTINUUM_PROJECTION_BATCH_SIZE default)
    stock_positions: int  # how far into the log the stock runner is driven (it is slow)
    query_clients: tuple[int, ...]
    query_runs: int
    growth_events: tuple[int, ...]
    growth_runs: tuple[int, ...]  # how many times each growth size is run (the median run reported; bench.growth)
    relay_events: int
    report_clients: tuple[int, ...]  # every `continuum report` is timed at these sizes (the tables only grow)
    report_runs: tuple[int, ...]  # timed runs of each report at each of those sizes


MODES = {
    "quick": Mode("quick", 10_000, 2000, 1000, 2_000, (10_000,), 100, (1_000, 10_000), (3, 1), 10_000, (1_000,), (3,)),
    "full": Mode("full", 100_000, 2000, 1000, 10_000, (10_000, 100_000), 200, (10_000, 100_000, 1_000_000), (3, 3, 1),
                 100_000, (10_000, 100_000), (50, 20)),
}

Say = Callable[[str], None]


def run_bench(
    targets: list[Target], mode: Mode, say: Say = lambda _: None, save: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every backend in turn; `save` gets the results so far after each (a long run keeps what it measured)."""
    started = time.perf_counter()
    results: dict[str, Any] = {
        "mode": mode.name,
        "settings": asdict(mode),
        "started_at": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "backends": {},
    }
    for target in targets:
        say(f"[bold]{target.label}[/bold]")
        results["backends"][target.label] = run_backend(target, mode, say)
        results["seconds"] = time.perf_counter() - started
        if save is not None:
            save(results)
    results["seconds"] = time.perf_counter() - started
    return results


def run_backend(target: Target, mode: Mode, say: Say) -> dict[str, Any]:
    problem = target.reachable()
    if problem is not None:
        say(f"  skipped: {problem}")
        return {"status": "skipped", "reason": problem, "stages": {}}
    end = datetime.now(tz=UTC).replace(microsecond=0)
    stages: dict[str, Any] = {}
    backend: dict[str, Any] = {"status": "ok", "kind": target.kind, "stages": stages}
    try:
        lines = cohort_lines(mode.events, SEED, end)
        wired = open_continuum(target.fresh("main"), recorder_topic=timed_recorder_topic(target.kind), batch_size=mode.batch)
        backend["version"] = server_version(wired.views)
        try:
            _stage(stages, "ingest", say, lambda: ingest_stage(wired, lines, mode.chunk))
            if stages["ingest"]["status"] != "ok":
                for name in ("rebuild", "relay", "queries", "reports"):
                    stages[name] = {"status": "skipped", "reason": "ingest failed"}
            else:
                _stage(stages, "rebuild", say, lambda: rebuild_stage(wired, mode.stock_positions))
                _stage(stages, "relay", say, lambda: relay_stage(wired, mode.relay_events))
                from bench.reports import ReportsStage  # here: `python -m bench.reports` imports this module

                reports = ReportsStage(wired, mode.report_clients, mode.report_runs, end)
                _stage(stages, "queries", say,
                       lambda: queries_stage(wired, mode.query_clients, mode.query_runs, end, before_growing=reports.hook))
                _stage(stages, "reports", say, reports.result)
        finally:
            wired.close()
        _stage(stages, "growth", say,
               lambda: growth_stage(target, mode.growth_events, mode.chunk, mode.batch, end, runs=mode.growth_runs))
        if mode.name == "full" and target.kind == "postgres":  # ingest across workers: `python -m bench.parallel`
            from bench.parallel import parallel_stage

            _stage(stages, "parallel", say, lambda: parallel_stage(target, mode.events, mode.chunk, end))
    finally:
        target.cleanup()
    if any(stage["status"] == "failed" for stage in stages.values()):
        backend["status"] = "failed"
    return backend


def run_reports_alone(targets: list[Target], mode: Mode, say: Say = lambda _: None, warmup: int = 1) -> dict[str, Any]:
    """Only the reports stage (`python -m bench.reports`): each backend's cohort recorded through the service and
    projected, then grown to each of `mode.report_clients` and every report timed. Shaped as `run_bench`'s result."""
    started = time.perf_counter()
    results: dict[str, Any] = {"mode": mode.name, "only": "reports", "settings": asdict(mode), "machine": machine(),
                               "started_at": datetime.now(tz=UTC).isoformat(timespec="seconds"), "backends": {}}
    for target in targets:
        say(f"[bold]{target.label}[/bold]")
        results["backends"][target.label] = _reports_backend(target, mode, say, warmup)
    results["seconds"] = time.perf_counter() - started
    return results


def _reports_backend(target: Target, mode: Mode, say: Say, warmup: int) -> dict[str, Any]:
    from bench.reports import ReportsStage  # here: `python -m bench.reports` imports this module

    problem = target.reachable()
    if problem is not None:
        return {"status": "skipped", "reason": problem, "stages": {}}
    end = datetime.now(tz=UTC).replace(microsecond=0)
    stages: dict[str, Any] = {}
    backend: dict[str, Any] = {"status": "ok", "kind": target.kind, "stages": stages}
    try:
        wired = open_continuum(target.fresh("reports"), batch_size=mode.batch)
        try:
            backend["version"] = server_version(wired.views)
            _stage(stages, "cohort", say, lambda: record_cohort(wired, mode, end))
            if stages["cohort"]["status"] == "ok":
                _stage(stages, "reports", say, ReportsStage(wired, mode.report_clients, mode.report_runs, end, warmup).result)
        finally:
            wired.close()
    finally:
        target.cleanup()
    if any(stage["status"] == "failed" for stage in stages.values()):
        backend["status"] = "failed"
    return backend


def record_cohort(wired: Continuum, mode: Mode, end: datetime) -> dict[str, Any]:
    """The bench's cohort through the importer and the journey service, then every projection brought up to it."""
    report = all_recorded(import_lines(wired.service, cohort_lines(mode.events, SEED, end), ACTOR, chunk_size=mode.chunk))
    wired.runner.catch_up()
    return {"status": "ok", "events": report.events}


def _stage(stages: dict[str, Any], name: str, say: Say, work: Callable[[], dict[str, Any]]) -> None:
    say(f"  {name} ...")
    started = time.perf_counter()
    try:
        stages[name] = work()
    except Exception as error:  # noqa: BLE001 - a failed stage is reported, the others still run
        stages[name] = {"status": "failed", "error": f"{type(error).__name__}: {error}",
                        "traceback": traceback.format_exc(limit=8)}
    stages[name]["stage_seconds"] = time.perf_counter() - started
    status = stages[name]["status"]
    say(f"  {name} {status} in {stages[name]['stage_seconds']:.1f} s" + (
        f": {stages[name].get('reason') or stages[name].get('error')}" if status != "ok" else ""))


def server_version(views: Any) -> str:  # noqa: ANN401
    if views.dialect == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    with views.transaction() as cursor:
        cursor.execute("SHOW server_version")
        return f"PostgreSQL {cursor.fetchone()[0]}"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    memory_gb = None
    try:
        info = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", info, re.MULTILINE)
        cpu = found.group(1).strip() if found else cpu
        total = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
        memory_gb = round(int(total.group(1)) / 1024 / 1024, 1) if total else None
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "memory_gb": memory_gb,
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "psycopg": psycopg.__version__,
        "eventsourcing": version("eventsourcing"),
    }
