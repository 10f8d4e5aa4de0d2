"""One growth point in a process of its own, so that its peak memory is its own:
`python -m bench.worker URL LINES_FILE CHUNK BATCH [ingest]` prints one JSON object (with `ingest`, of the
ingest alone; the ingest's figures also go to stderr as soon as it is done).

Each stage's client CPU (time.process_time) is reported beside its wall time; on PostgreSQL also the
server side (bench.serverside): the CPU of the backends serving this process, their wait events
sampled, WAL bytes, full-page images and checkpoints meanwhile.

Each stage's cost per event is also taken tenth by tenth as it goes (`Tenths`): whether a stage slows as its process
and its store grow, and on a rebuild what its last part (the copy and swap after the last page) costs."""

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
TENTHS = 10


class Tenths:
    """Wall time per event of each tenth of a stage's work, as it goes: `reached(done, events)` after each unit of
    work (`done` of `total` units: lines read, or the log's position), `events` handled so far. A tenth is closed at the
    first unit at or past its end, so a stage of a few large units has fewer."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.us_per_event: list[float] = []
        self._at, self._events, self._next = time.perf_counter(), 0, 1

    def reached(self, done: int, events: int) -> None:
        if self._next > TENTHS or done * TENTHS < self.total * self._next or events == self._events:
            return
        now = time.perf_counter()
        self.us_per_event.append((now - self._at) / (events - self._events) * 1e6)
        self._at, self._events = now, events
        while self._next <= TENTHS and done * TENTHS >= self.total * self._next:
            self._next += 1

    def since_last(self) -> float:
        """Seconds since the last unit that closed a tenth (on a rebuild, after its last page: the copy and swap)."""
        return time.perf_counter() - self._at


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
        with open(lines_file, encoding="utf-8") as lines:  # noqa: PTH123
            total = sum(1 for _ in lines)
        ingested = Tenths(total)
        with open(lines_file, encoding="utf-8") as lines:  # streamed: the file is never held whole  # noqa: PTH123
            report = _timed("ingest", probe, lambda: import_lines(
                wired.service, lines, ACTOR, chunk_size=chunk, on_chunk=lambda done: ingested.reached(done.lines, done.events),
            ), figures)
        ingest_peak = peak_mb()
        figures["ingest_tenths_us_per_event"] = ingested.us_per_event
        sys.stderr.write(json.dumps({"events": report.events, **figures}) + "\n")  # kept if the rebuild is cut short
        if stages == "ingest":
            return {"commands": report.applied, "events": report.events, "refused": len(report.errors), **figures}
        gc.collect()
        before_rebuild = rss_mb()
        reset_peak()
        rebuilt = Tenths(wired.runner.head())

        def rebuild() -> int:  # the log's positions from zero: a page's position is the events read so far
            read = wired.runner.rebuild(list(wired.runner.projections), lambda position, _head: rebuilt.reached(position, position))
            figures["rebuild_after_pages_seconds"] = rebuilt.since_last()
            return read

        projected = _timed("rebuild", probe, rebuild, figures)
        rebuild_peak = peak_mb()
        figures["rebuild_tenths_us_per_event"] = rebuilt.us_per_event
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
    if len(sys.argv) not in (5, 6):
        sys.exit("usage: python -m bench.worker URL LINES_FILE CHUNK BATCH [ingest]")
    sys.stdout.write(json.dumps(main(sys.argv[1:])) + "\n")
