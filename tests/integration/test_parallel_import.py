"""`continuum import FILE --workers N` (services/parallel_import.py) on PostgreSQL: the same journeys as one
process, nothing recorded twice on a re-run, holds per client, a worker that fails leaves the others' work
whole, and SQLite refuses more than one worker.

The reference is the importer in this process (`services.importer.import_lines`) on another fresh schema,
computed in the same test. The cohort is the demo generator's, dated in 2025 (before the fixed NOW).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from domain.values import Actor
from infra.config import Settings, parse_database_url
from services.bootstrap import Continuum, bootstrap
from services.cli import app
from services.demo import generate_cohort
from services.importer import import_lines
from services.journeys import journey_id_of
from services.parallel_import import ParallelReport, assign, client_of, import_parallel, split
from tests.support.clock import NOW, fixed_clock

ACTOR = Actor("importer", "system")
CHUNK = 40  # many units of work per worker
PROJECTED = ("census_now", "census_intervals", "step_transitions", "attendance_sessions", "outcome_stays", "care_flags")
VARYING = re.compile(r"position|notification|recorded|^id$")  # where a row lands in the log, not what it says


def cohort(clients: int = 24) -> list[str]:
    rows = generate_cohort(clients, 11, start=datetime(2025, 1, 1, tzinfo=UTC), end=datetime(2025, 12, 31, tzinfo=UTC))
    return [json.dumps(row, separators=(",", ":")) for row in rows]


def at(day: int, hour: int = 9) -> str:
    return f"2024-03-{day:02d}T{hour:02d}:00:00-05:00"


def line(command: str, client: str, day: int, **fields: Any) -> str:
    return json.dumps({"command": command, "client": client, "occurred_at": at(day), **fields})


@pytest.fixture
def second_pg_url(postgres_url: str) -> Iterator[str]:
    """Another fresh schema, for the reference import."""
    from tests.conftest import _drop_schema, _schema_url

    url, schema = _schema_url(postgres_url)
    yield url
    _drop_schema(url, schema)


def opened(url: str) -> Continuum:
    return bootstrap(Settings(database_url=url), clock=fixed_clock)


def reference(url: str, lines: list[str]) -> Any:
    wired = opened(url)
    try:
        report = import_lines(wired.service, lines, ACTOR, chunk_size=CHUNK)
        wired.runner.catch_up()
        return report
    finally:
        wired.close()


def parallel(url: str, lines: list[str], workers: int = 2, clock: Any = fixed_clock) -> ParallelReport:
    opened(url).close()  # the store's tables, as the CLI makes them before the workers start
    return import_parallel(Settings(database_url=url), lines, ACTOR, workers=workers, chunk_size=CHUNK, clock=clock)


def journeys(url: str, clients: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Each client's stored events, in version order, without the wall-clock time they were recorded at."""
    wired = opened(url)
    try:
        return {
            client: [{k: v for k, v in vars(e).items() if k != "timestamp"} | {"type": type(e).__name__}
                     for e in wired.app.events.get(journey_id_of(client))]
            for client in sorted(clients)
        }
    finally:
        wired.close()


def projected(url: str) -> dict[str, list[tuple[str, ...]]]:
    wired = opened(url)
    try:
        wired.runner.catch_up()
    finally:
        wired.close()
    database = parse_database_url(url)
    schema = url.rsplit("schema=", 1)[1]
    tables: dict[str, list[tuple[str, ...]]] = {}
    with psycopg.connect(host=database.host, port=database.port, user=database.user, dbname=database.name) as connection:
        for table in PROJECTED:
            columns = [row[0] for row in connection.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (schema, table),
            ) if not VARYING.search(row[0])]
            assert columns, f"no table {table} in {schema}"
            listed = ", ".join(f'"{column}"' for column in columns)
            rows = connection.execute(f'SELECT {listed} FROM "{schema}".{table}').fetchall()
            tables[table] = sorted(tuple(str(value) for value in row) for row in rows)
    return tables


def clients_of(lines: list[str]) -> set[str]:
    return {json.loads(text)["client"] for text in lines}


def worker_of(lines: list[str], workers: int = 2) -> dict[str, int]:
    """Each client's worker, as `split` deals them out."""
    shares = enumerate(split(lines, workers))
    return {client: index for index, share in shares for _, text in share if (client := client_of(text)) is not None}


def test_the_split_keeps_each_client_in_one_worker_in_file_order_and_balances_the_lines() -> None:
    lines = cohort(12)
    shares = split(lines, 2)
    assert all(shares), "both workers have clients"
    seen: dict[str, int] = {}
    for index, share in enumerate(shares):
        numbers = [number for number, _ in share]
        assert numbers == sorted(numbers)
        for _, text in share:
            assert seen.setdefault(json.loads(text)["client"], index) == index, "a client's lines in two workers"
    assert sorted(number for share in shares for number, _ in share) == list(range(1, len(lines) + 1))
    most = max(Counter(json.loads(text)["client"] for text in lines).values())
    assert abs(len(shares[0]) - len(shares[1])) <= most  # no more apart than one client's lines
    assert split(lines, 2) == shares  # the same file splits the same way


def test_clients_are_dealt_by_their_line_counts() -> None:
    # the busiest first, each to the worker with fewest lines so far; lines naming no client start worker 0
    assert assign({"a": 5, "b": 4, "c": 3, "d": 3, "e": 1}, 2) == {"a": 0, "b": 1, "c": 1, "d": 0, "e": 1}
    assert assign({"a": 5, "b": 4}, 2, unnamed=6) == {"a": 1, "b": 1}
    assert assign({"a": 2, "b": 2, "c": 2}, 3) == {"a": 0, "b": 1, "c": 2}
    skewed = [line("register", "C-big", 1, site="north"), *(line("attend_session", "C-big", 2, session_id=f"s-{n}") for n in range(9)),
              *(line("register", f"C-{n}", 1, site="north") for n in range(10))]
    assert [len(share) for share in split(skewed, 2)] == [10, 10]  # by lines, not by clients (1 against 10)


def test_two_workers_record_the_same_journeys_as_one(pg_url: str, second_pg_url: str) -> None:
    lines = cohort()
    one = reference(second_pg_url, lines)
    two = parallel(pg_url, lines)

    assert two.ok, two.problems()
    assert one.ok
    assert (two.applied, two.events, two.duplicates, two.lines) == (one.applied, one.events, 0, len(lines))
    clients = clients_of(lines)
    assert journeys(pg_url, clients) == journeys(second_pg_url, clients)
    assert projected(pg_url) == projected(second_pg_url)
    verified = CliRunner().invoke(app, ["verify", "--database-url", pg_url], catch_exceptions=False)
    assert verified.exit_code == 0, verified.output

    again = parallel(pg_url, lines)
    assert (again.applied, again.events, again.duplicates, again.ok) == (0, 0, len(lines), True)
    assert journeys(pg_url, clients) == journeys(second_pg_url, clients)


def test_a_refused_line_holds_its_clients_later_lines_across_workers(pg_url: str, second_pg_url: str) -> None:
    others = [f"C-{n}" for n in range(1, 7)]
    lines = [
        line("register", "C-1042", 1, site="north"),
        *(line("register", client, 1, site="north") for client in others),
        line("admit", "C-1042", 2, level="2.1", site="north", track="evening"),
        *(line("admit", client, 2, level="2.1", site="north", track="day") for client in others),
        line("step_up", "C-1042", 9, to_level="1", reason="use"),  # a step up to a lower level: refused
        line("attend_session", "C-1042", 10, session_id="s-1"),
        '{"command": "attend_session", "client": "C-1042", "occurred_at": "not a time"}',
        *(line("attend_session", client, 10, session_id="s-1") for client in others),
        "{not json",
        line("discharge", "C-1042", 20, reason="completed"),
        *(line("discharge", client, 20, reason="completed") for client in others),
    ]
    assert len({worker_of(lines)[client] for client in ["C-1042", *others]}) == 2

    one = reference(second_pg_url, lines)
    two = parallel(pg_url, lines)

    assert [(e.line, e.reason) for e in two.errors] == [(e.line, e.reason) for e in one.errors]
    assert [(h.line, h.held_by, h.client) for h in two.held] == [(h.line, h.held_by, h.client) for h in one.held]
    assert [h.line for h in two.held] == [16, 17, 25]  # C-1042's lines after its refused line 15
    assert [e.line for e in two.errors] == [15, 24]  # the step up, and the unreadable line (it names no client)
    assert two.problems() == one.problems()
    assert (two.applied, two.events) == (one.applied, one.events)
    clients = clients_of([text for text in lines if text.startswith('{"command')])
    assert journeys(pg_url, clients) == journeys(second_pg_url, clients)


def clock_failing_in_worker_1() -> datetime:
    """Worker 1's clock fails on its third unit of work; worker 0's never does."""
    if _third_call_in_worker_1():
        msg = "the clock broke"
        raise RuntimeError(msg)
    return NOW


def clock_killing_worker_1() -> datetime:
    """Worker 1's process ends abruptly on its third unit of work (as if killed): no last word to the parent."""
    if _third_call_in_worker_1():
        os._exit(9)
    return NOW


def _third_call_in_worker_1() -> bool:
    if multiprocessing.current_process().name != "continuum-import-1":
        return False
    FAILING["calls"] += 1
    return FAILING["calls"] > 2


FAILING = {"calls": 0}


@pytest.mark.parametrize(("clock", "reason"), [
    (clock_failing_in_worker_1, "RuntimeError: the clock broke"),
    (clock_killing_worker_1, "the process ended with exit code 9"),
], ids=["error", "killed"])
def test_a_failed_worker_loses_nothing_of_the_others_and_a_rerun_records_nothing_twice(
    pg_url: str, second_pg_url: str, clock: Any, reason: str,
) -> None:
    lines = cohort()
    one = reference(second_pg_url, lines)

    broken = parallel(pg_url, lines, clock=clock)

    assert not broken.ok
    [failure] = broken.failures
    assert failure.worker == 1
    assert reason in failure.reason
    assert failure.first_unconfirmed is not None
    assert failure.unconfirmed > 0
    assert "not confirmed recorded: run the same file again" in broken.problems()[0]
    worker_0 = {client for client, worker in worker_of(lines).items() if worker == 0}
    assert journeys(pg_url, worker_0) == journeys(second_pg_url, worker_0)  # all of worker 0's work, once
    assert 0 < broken.applied < one.applied

    again = parallel(pg_url, lines)
    assert again.ok, again.problems()
    assert again.applied + broken.applied == one.applied
    assert again.duplicates == len(lines) - again.applied
    clients = clients_of(lines)
    assert journeys(pg_url, clients) == journeys(second_pg_url, clients)
    assert projected(pg_url) == projected(second_pg_url)


def test_the_cli_imports_with_two_workers_and_refuses_them_on_sqlite(pg_url: str, tmp_path: Path) -> None:
    file = tmp_path / "cohort.jsonl"
    lines = cohort(8)
    file.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    runner = CliRunner()

    rehearsed = runner.invoke(app, ["import", str(file), "--workers", "2", "--database-url", pg_url, "--json", "--dry-run"],
                              catch_exceptions=False)
    assert rehearsed.exit_code == 0, rehearsed.output
    assert (json.loads(rehearsed.stdout)["applied"], json.loads(rehearsed.stdout)["dry_run"]) == (len(lines), True)
    assert journeys(pg_url, clients_of(lines)) == {client: [] for client in sorted(clients_of(lines))}  # nothing recorded

    result = runner.invoke(app, ["import", str(file), "--workers", "2", "--database-url", pg_url, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["applied"], report["refused"], report["workers"], report["worker_failures"]) == (len(lines), 0, 2, [])

    sqlite = tmp_path / "store.db"
    refused = runner.invoke(app, ["import", str(file), "--workers", "2", "--database-url", f"sqlite:///{sqlite}"], catch_exceptions=False)
    assert refused.exit_code == 2
    message = " ".join(refused.stderr.split())
    assert "--workers 2 needs PostgreSQL: a SQLite store takes one writer at a time" in message
    assert len(refused.stderr.strip().splitlines()) == 1 or "Traceback" not in refused.stderr
    assert not sqlite.exists()
