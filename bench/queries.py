"""Query latency (p50, p99) at 10^4 and 10^5 clients.

The clients are made fast: the projection rows of the recorded cohort (what our runner built) are
copied inside the database with new journey ids (`INSERT ... SELECT`, one statement per table and
scale), so the copies have exactly the shapes and the distribution of real journeys."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from bench.stats import percentile
from projections.audit_trail import trail_query
from projections.census import client_count, journey_ids
from services.bootstrap import Continuum
from services.reads import Reads

ORIGINALS = "bench_originals"
CENSUS_P99_TARGET_MS = 5.0
TARGET_CLIENTS = 100_000


def queries_stage(
    wired: Continuum, scales: tuple[int, ...], runs: int, end: datetime, seed: int = 7,
    before_growing: Callable[[int], None] = lambda _: None,
) -> dict[str, Any]:
    """`before_growing(clients)` runs before the rows are grown to each scale (the reports are timed there)."""
    reads = wired.reads
    results: dict[str, Any] = {}
    for clients in scales:
        before_growing(clients)
        made = grow_to(wired, clients)
        queries = _queries(wired, reads, end, seed)
        results[str(clients)] = {"clients": made, **{name: latency(query, runs) for name, query in queries.items()}}
    largest = results[str(max(scales))]
    census_p99 = largest["census_now"]["p99_ms"]
    at_target_scale = max(scales) >= TARGET_CLIENTS
    return {
        "status": "ok",
        "how": "projection rows of the recorded cohort copied in the database with new journey ids",
        "runs": runs,
        "scales": results,
        "target": f"census now p99 < {CENSUS_P99_TARGET_MS:.0f} ms at {TARGET_CLIENTS:,} clients",
        "met": census_p99 < CENSUS_P99_TARGET_MS if at_target_scale else None,
        "census_now_p99_ms_at_largest": census_p99,
    }


def _queries(wired: Continuum, reads: Reads, end: datetime, seed: int) -> dict[str, Callable[[], object]]:
    ids = _journey_ids(wired)
    rng = random.Random(seed)  # noqa: S311 - which client to read, not security
    moment = end - timedelta(days=120)  # a past day inside the year the cohort covers
    return {
        "census_now": reads.census,
        "census_on_date": lambda: reads.census(moment),
        "step_matrix": lambda: reads.matrix(end - timedelta(days=365), end),
        "audit_trail": lambda: _trail(wired, rng.choice(ids)),
    }


def _trail(wired: Continuum, journey: str) -> object:
    with wired.views.transaction() as cursor:
        return trail_query(cursor, UUID(journey), seal=wired.seal)


def latency(query: Callable[[], object], runs: int, warmup: int = 5) -> dict[str, float]:
    for _ in range(warmup):
        query()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        query()
        samples.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": percentile(samples, 0.5), "p99_ms": percentile(samples, 0.99), "max_ms": max(samples)}


def _journey_ids(wired: Continuum) -> list[str]:
    with wired.views.transaction() as cursor:
        return [str(journey_id) for journey_id in journey_ids(cursor)]


def grow_to(wired: Continuum, clients: int) -> int:
    """Copy the original journeys' projection rows until there are at least `clients` clients."""
    views, postgres = wired.views, wired.views.dialect == "postgres"
    tables = [table for projection in wired.runner.projections.values() for table in projection.tables]
    with views.transaction() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {ORIGINALS} (journey_id TEXT PRIMARY KEY)")
        cursor.execute(f"SELECT COUNT(*) FROM {ORIGINALS}")  # noqa: S608
        if cursor.fetchone()[0] == 0:
            cursor.executemany(f"INSERT INTO {ORIGINALS} (journey_id) VALUES (?)", [(str(j),) for j in journey_ids(cursor)])  # noqa: S608
        cursor.execute(f"SELECT COUNT(*) FROM {ORIGINALS}")  # noqa: S608
        base = int(cursor.fetchone()[0])
        present = client_count(cursor)
    copies_made, copies_wanted = present // base - 1, -(-clients // base) - 1
    if copies_wanted <= copies_made:
        return present
    for table in tables:
        columns = _columns(wired, table)
        if "journey_id" not in columns:
            continue
        new_id = "lpad(to_hex(n.k), 8, '0') || substr(t.journey_id, 9)" if postgres else "printf('%08x', n.k) || substr(t.journey_id, 9)"
        values = ", ".join(
            new_id if column == "journey_id" else "t.client_ref || '~' || n.k" if column == "client_ref" else f"t.{column}"
            for column in columns
        )
        numbers = (
            "generate_series(CAST(? AS INTEGER), CAST(? AS INTEGER)) AS n(k)" if postgres
            else "(WITH RECURSIVE s(k) AS (SELECT ? UNION ALL SELECT k + 1 FROM s WHERE k < ?) SELECT k FROM s) AS n"
        )
        with views.transaction() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM {table} t"  # noqa: S608
                f" JOIN {ORIGINALS} o ON o.journey_id = t.journey_id CROSS JOIN {numbers}",
                (copies_made + 1, copies_wanted),
            )
    with views.transaction() as cursor:  # tables derived from the copied rows (the census counts) are counted again
        for projection in wired.runner.projections.values():
            recount = getattr(projection, "recount", None)
            if recount is not None:
                recount(cursor)
    if postgres:  # what autovacuum would do after a bulk load
        with views.transaction() as cursor:
            for table in tables:
                cursor.execute(f"ANALYZE {table}")
    return base * (copies_wanted + 1)


def _columns(wired: Continuum, table: str) -> list[str]:
    with wired.views.transaction() as cursor:
        if wired.views.dialect == "postgres":
            cursor.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND table_name = ? ORDER BY ordinal_position",
                (table,),
            )
            return [row[0] for row in cursor.fetchall()]
        cursor.execute(f"PRAGMA table_info({table})")
        return [row[1] for row in cursor.fetchall()]
