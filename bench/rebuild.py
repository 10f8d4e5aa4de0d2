"""Projection rebuild from position zero: each projection and all together through our batched
runner (all together in one process, and with two workers), against a raw read-decode-write of the
same rows in one process and the library's stock runner."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from bench.stock import stock_run
from bench.stores import settled
from infra.heap import FrozenHeap
from infra.raw import events_table
from services.bootstrap import Continuum

RAW_TABLE = "bench_raw_projection"
RAW_TARGET = 0.5
WORKERS = 2  # `continuum rebuild --all --workers 2`, beside the one process the target is for
STOCK_TARGET = 10.0


def rebuild_stage(wired: Continuum, stock_positions: int) -> dict[str, Any]:
    runner = wired.runner
    runner.setup()
    head = runner.head()
    settled(wired)  # each timed run, ours and the stock runner's, starts from a settled store
    raw = raw_read_decode_write(wired, runner.batch_size)
    names = list(runner.projections)
    stock = {}
    for name in names:
        settled(wired)
        stock[name] = stock_run(wired, name, stock_positions)
    projections: dict[str, Any] = {}
    for name in names:
        settled(wired)
        seconds = _timed(lambda name=name: runner.rebuild([name]))
        projections[name] = _versus(head, seconds, raw, stock[name])
    settled(wired)
    seconds = _timed(lambda: runner.rebuild(names))
    together = _versus(head, seconds, raw, None)
    ratio = together["events_per_s"] / raw["events_per_s"]
    settled(wired)
    read: list[int] = []
    seconds = _timed(lambda: read.append(wired.rebuild(names, workers=WORKERS)))  # helpers' start (fork server, stores) included
    workers = _versus(head, seconds, raw, None) | {"workers": WORKERS, "read": read[0]}
    stock_ratios = [p["vs_stock"] for p in projections.values() if p.get("vs_stock") is not None]
    return {
        "status": "ok",
        "events": head,
        "batch_size": runner.batch_size,
        "projections": projections,
        "all": together,
        "all_workers": workers,
        "baseline": raw,
        "ratio": ratio,
        "min_vs_stock": min(stock_ratios) if stock_ratios else None,
        "target": f"all together >= {RAW_TARGET:.0%} of raw read-decode-write; each >= {STOCK_TARGET:.0f}x the stock runner",
        "met": ratio >= RAW_TARGET and all(r >= STOCK_TARGET for r in stock_ratios),
    }


def _timed(work: Any) -> float:  # noqa: ANN401
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _versus(events: int, seconds: float, raw: dict[str, Any], stock: dict[str, Any] | None) -> dict[str, Any]:
    rate = events / seconds
    result: dict[str, Any] = {"events": events, "seconds": seconds, "events_per_s": rate, "vs_raw": rate / raw["events_per_s"]}
    if stock is not None:
        result["stock"] = stock
        result["vs_stock"] = rate / stock["events_per_s"] if stock.get("status") == "ok" else None
    return result


def raw_read_decode_write(wired: Continuum, batch: int) -> dict[str, Any]:
    """Pages of `batch` rows read with one SELECT, each row decoded to its domain event by the
    application's mapper, one row per event written with executemany, a transaction per page:
    the least any projection must do. Read-only and read+decode rates are reported beside it.
    The heap is frozen after each page as the runner freezes it (`FrozenHeap`): else the cyclic
    collector's full collections scan whatever the process held before (after the bench's ingest,
    its 200,000 cached objects), a cost of the process's past that the runner does not pay."""
    kind = wired.database.kind
    position = "rowid" if kind == "sqlite" else "notification_id"
    select = (
        f"SELECT {position}, originator_id, originator_version, topic, state FROM {events_table(kind)}"  # noqa: S608
        f" WHERE {position} > ? ORDER BY {position} LIMIT ?"
    )
    insert = f"INSERT INTO {RAW_TABLE} (position, journey_id, version, event_type) VALUES (?, ?, ?, ?)"  # noqa: S608
    with wired.views.transaction() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
        cursor.execute(
            f"CREATE TABLE {RAW_TABLE} (position BIGINT PRIMARY KEY, journey_id TEXT NOT NULL, version BIGINT NOT NULL,"
            " event_type TEXT NOT NULL)",
        )
    mapper = wired.app.mapper
    timings = {"read": 0.0, "decode": 0.0, "write": 0.0}
    last, events = 0, 0
    heap = FrozenHeap()
    try:
        while True:
            started = time.perf_counter()
            with wired.views.transaction() as cursor:
                cursor.execute(select, (last, batch))
                rows = cursor.fetchall()
                read = time.perf_counter()
                if not rows:
                    break
                decoded = [
                    mapper.to_domain_event(StoredEvent(UUID(str(journey)), version, topic, bytes(state)))
                    for _, journey, version, topic, state in rows
                ]
                decoding = time.perf_counter()
                cursor.executemany(
                    insert, [(row[0], str(event.originator_id), event.originator_version, type(event).__name__)
                             for row, event in zip(rows, decoded, strict=True)],
                )
            heap.after_unit()  # in the time, as in the runner's
            written = time.perf_counter()
            timings["read"] += read - started
            timings["decode"] += decoding - read
            timings["write"] += written - decoding
            last = rows[-1][0]
            events += len(rows)
    finally:
        heap.close()
    seconds = sum(timings.values())
    return {
        "what": f"SELECT a page of {batch}, mapper.to_domain_event per row, executemany one row per event, a transaction per page",
        "events": events,
        "seconds": seconds,
        "events_per_s": events / seconds,
        "read_only_per_s": events / timings["read"],
        "read_decode_per_s": events / (timings["read"] + timings["decode"]),
    }
