"""One growth point in a process of its own, so that its peak memory is its own:
`python -m bench.worker URL LINES_FILE CHUNK BATCH [ingest]` prints one JSON object (with `ingest`, of the
ingest alone; the ingest's figures also go to stderr as soon as it is done).

Each stage's client CPU (time.process_time) is reported beside its wall time; on PostgreSQL also the
server side (bench.serverside): the CPU of the backends serving this process, their wait events
sampled, WAL bytes, full-page images and checkpoints meanwhile."""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from bench.ingest import ACTOR
from bench.memory import peak_mb, reset_peak, rss_mb
from bench.serverside import ServerProbe
from bench.stores import open_continuum
from infra.config import parse_database_url
from services.importer import import_lines

T = TypeVar("T")


def _server_probe(url: str) -> ServerProbe | None:
    database = parse_database_url(url)
    if database.kind != "postgres":
        return None
    os.environ["PGAPPNAME"] = f"growth-{os.getpid()}"  # libpq names every connection of this process: the probe finds its backends
    return ServerProbe(
        f"host={database.host} port={database.port} user={database.user} dbname={database.name}"
        + (f" password={database.password}" if database.password else ""),
        os.environ["PGAPPNAME"],
    )


def _timed(stage: str, probe: ServerProbe | None, work: Callable[[], T], into: dict[str, Any]) -> T:
    if probe is not None:
        probe.start()
    cpu, started = time.process_time(), time.perf_counter()
    done = work()
    into[f"{stage}_seconds"] = time.perf_counter() - started
    into[f"{stage}_client_cpu_seconds"] = time.process_time() - cpu
    if probe is not None:
        into[f"{stage}_server"] = probe.stop()
    return done


def main(argv: list[str]) -> dict[str, object]:
    url, lines_file, chunk, batch = argv[0], argv[1], int(argv[2]), int(argv[3])
    stages = argv[4] if len(argv) > 4 else "all"  # "ingest": the ingest alone  # noqa: PLR2004
    probe = _server_probe(url)
    wired = open_continuum(url, batch_size=batch)
    figures: dict[str, Any] = {}
    try:
        wired.runner.setup()
        gc.collect()
        base = rss_mb()
        resettable = reset_peak()
        with open(lines_file, encoding="utf-8") as lines:  # streamed: the file is never held whole  # noqa: PTH123
            report = _timed("ingest", probe, lambda: import_lines(wired.service, lines, ACTOR, chunk_size=chunk), figures)
        ingest_peak = peak_mb()
        sys.stderr.write(json.dumps({"events": report.events, **figures}) + "\n")  # kept if the rebuild is cut short
        if stages == "ingest":
            return {"commands": report.applied, "events": report.events, "refused": len(report.errors), **figures}
        gc.collect()
        before_rebuild = rss_mb()
        reset_peak()
        projected = _timed("rebuild", probe, lambda: wired.runner.rebuild(list(wired.runner.projections)), figures)
        rebuild_peak = peak_mb()
    finally:
        wired.close()
        if probe is not None:
            probe.close()
    return {
        "commands": report.applied, "events": report.events, "refused": len(report.errors), "rebuild_events": projected,
        **figures,
        "base_rss_mb": base, "ingest_peak_rss_mb": ingest_peak if resettable else None,
        "rss_before_rebuild_mb": before_rebuild, "rebuild_peak_rss_mb": rebuild_peak if resettable else None,
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(sys.argv[1:])) + "\n")
