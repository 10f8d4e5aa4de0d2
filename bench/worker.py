"""One growth point in a process of its own, so that its peak memory is its own:
`python -m bench.worker URL LINES_FILE CHUNK BATCH` prints one JSON object."""

from __future__ import annotations

import gc
import json
import sys
import time

from bench.ingest import ACTOR
from bench.memory import peak_mb, reset_peak, rss_mb
from bench.stores import open_continuum
from services.importer import import_lines


def main(argv: list[str]) -> dict[str, object]:
    url, lines_file, chunk, batch = argv[0], argv[1], int(argv[2]), int(argv[3])
    wired = open_continuum(url, batch_size=batch)
    try:
        wired.runner.setup()
        gc.collect()
        base = rss_mb()
        resettable = reset_peak()
        started = time.perf_counter()
        with open(lines_file, encoding="utf-8") as lines:  # streamed: the file is never held whole  # noqa: PTH123
            report = import_lines(wired.service, lines, ACTOR, chunk_size=chunk)
        ingest_seconds = time.perf_counter() - started
        ingest_peak = peak_mb()
        gc.collect()
        before_rebuild = rss_mb()
        reset_peak()
        started = time.perf_counter()
        projected = wired.runner.rebuild(list(wired.runner.projections))
        rebuild_seconds = time.perf_counter() - started
        rebuild_peak = peak_mb()
    finally:
        wired.close()
    return {
        "commands": report.applied, "events": report.events, "refused": len(report.errors),
        "ingest_seconds": ingest_seconds, "rebuild_events": projected, "rebuild_seconds": rebuild_seconds,
        "base_rss_mb": base, "ingest_peak_rss_mb": ingest_peak if resettable else None,
        "rss_before_rebuild_mb": before_rebuild, "rebuild_peak_rss_mb": rebuild_peak if resettable else None,
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(sys.argv[1:])) + "\n")
