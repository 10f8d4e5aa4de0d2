"""Ingest across workers: the same demo lines imported with 1 and with 2 worker processes
(`services.parallel_import.import_parallel`, as `continuum import FILE --workers N` runs it), each into a
fresh PostgreSQL schema; events/s and the speed-up.

The machine may be shared, so each run also reports the CPU it had: the seconds of CPU our processes used
(the parent and its workers) and the run's PostgreSQL backends used (from /proc, the server being local) over
the wall time, and how busy the whole machine was meanwhile (/proc/stat, every process of every user); what
is left is other users' ("others busy"). A speed-up taken with the machine
already busy is said to be taken under load.

What limits the speed-up is sampled, not guessed: every 50 ms `pg_stat_activity` is read for the run's
backends (their statements name its schema): how many are running a statement, how many wait and on what
(a `Lock`/`relation` wait is the library's EXCLUSIVE lock on the events table, which every insert takes and
the global hash chain is computed under), and how many sit idle inside a transaction (Python work between
statements, such as the chain's hashes, with the lock held). And two bounds are measured:
- the lock: one process ingests the first 20,000 lines with the timed recorder (bench/instrument.py); the
  share of its time inside the insert transactions is how busy one worker keeps the events table's lock, and
  the lock cannot be busier than all the time, so N workers go at most min(N, 1 / share) times as fast (the
  other workers prepare their next units of work meanwhile; only inserts wait for each other);
- the CPU: the one-worker run used C seconds of CPU (ours and its backends') in W seconds, so the machine's
  cores can run at most cores x W / C times as much work in the same time.

The worker counts run in turn `ROUNDS` times, the order alternating (1, 2, then 2, 1, ...), each run on a
fresh schema; the round with the median speed-up is reported, with every round's speed-up beside it (as the
relay's rounds are: on a shared machine one run of a few seconds moves by a tenth either way).

`python -m bench.parallel` runs this stage alone; `continuum bench --full` runs it on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.ingest import ACTOR, cohort_lines
from bench.instrument import TIMER, timed_recorder_topic
from bench.serverside import process_cpu
from bench.stats import middle
from bench.stores import DEFAULT_POSTGRES, Target, open_continuum
from infra.config import Settings, parse_database_url
from services.importer import import_lines
from services.parallel_import import import_parallel

SEED = 7
SAMPLE_S = 0.05
STATES_SHOWN = 6
SERIAL_LINES = 20_000  # lines ingested in this process with the timed recorder, for the serial share
SPEEDUP_TARGET = 1.7  # with 2 workers on 2 cores
ROUNDS = 3  # each worker count this many times, in alternating order; the median round is reported
LOADED = 0.25  # the rest of the machine kept more than this share of its CPUs busy: the figure is taken under load


def parallel_stage(
    target: Target, events: int, chunk: int, end: datetime, workers: tuple[int, ...] = (1, 2), rounds: int = ROUNDS,
) -> dict[str, Any]:
    """Each worker count in turn on a fresh store of `target` (PostgreSQL), the same `events` demo lines, `rounds`
    times in alternating order; the round with the median speed-up is the one reported."""
    if target.kind != "postgres":
        return {"status": "skipped", "reason": "more than one import worker needs PostgreSQL"}
    lines = cohort_lines(events, SEED, end)
    serial = serial_share(target, lines[:SERIAL_LINES], chunk)
    taken = []
    for number in range(rounds):
        order = workers if number % 2 == 0 else tuple(reversed(workers))
        done = {str(count): _run(target, lines, count, chunk) for count in order}
        taken.append({str(count): done[str(count)] for count in workers})
    if len({run["events"] for runs in taken for run in runs.values()}) != 1:
        msg = f"the runs recorded different numbers of events: { [{n: run['events'] for n, run in runs.items()} for runs in taken] }"
        raise RuntimeError(msg)
    median, speedups = median_round(taken, workers)
    runs, speedup = taken[median], speedups[median]
    first = runs[str(workers[0])]
    under_load = any(run["others_busy"] > LOADED for runs_of in taken for run in runs_of.values())
    return {
        "status": "ok",
        "events": first["events"],
        "chunk": chunk,
        "runs": runs,
        "speedup": speedup,
        "rounds": [{"speedup": value, "events_per_s": {count: run["events_per_s"] for count, run in runs_of.items()}}
                   for value, runs_of in zip(speedups, taken, strict=True)],
        "round_shown": median + 1,
        "serial": serial,
        "bound": {str(count): min(count, 1 / serial["insert_share"], cpu_bound(first)) for count in workers},
        "lock_bound": {str(count): min(count, 1 / serial["insert_share"]) for count in workers},
        "cpu_bound": cpu_bound(first),
        "workers": list(workers),
        "cores": os.cpu_count(),
        "under_load": under_load,
        "target": f">= {SPEEDUP_TARGET}x with 2 workers on 2 cores",
        "met": speedup >= SPEEDUP_TARGET,
        "note": ("taken under load: other processes kept the machine busy (others_busy)" if under_load
                 else "the machine was otherwise mostly idle"),
    }


def median_round(taken: list[dict[str, dict[str, Any]]], workers: tuple[int, ...]) -> tuple[int, list[float]]:
    """The index of the round with the median speed-up (the lower middle one of an even number), and each round's
    speed-up: the most workers' events/s over the fewest's."""
    speedups = [runs[str(workers[-1])]["events_per_s"] / runs[str(workers[0])]["events_per_s"] for runs in taken]
    return middle(range(len(taken)), key=lambda index: speedups[index], lower=True), speedups


def cpu_bound(run: dict[str, Any]) -> float:
    """How many times the work of `run` the machine's cores could do in its wall time: cores x W / C, with C the
    CPU seconds it used, ours (parent and workers) and its PostgreSQL backends'."""
    used = run["our_cpu_seconds"] + run["server_cpu_seconds"]
    return (os.cpu_count() or 1) * run["seconds"] / used if used else float("inf")


def serial_share(target: Target, lines: list[str], chunk: int) -> dict[str, Any]:
    """The share of one process's ingest time spent in the store's insert transactions (the events table's EXCLUSIVE
    lock is held from the insert to the commit, the hash chain computed inside): how busy one worker keeps the
    lock, so with N workers the speed-up is at most min(N, 1 / share)."""
    url = target.fresh("serial")
    try:
        wired = open_continuum(url, recorder_topic=timed_recorder_topic("postgres"))
        try:
            TIMER.reset()
            started = time.perf_counter()
            report = import_lines(wired.service, lines, ACTOR, chunk_size=chunk)
            seconds = time.perf_counter() - started
        finally:
            wired.close()
        return {
            "events": report.events, "seconds": seconds, "transactions": TIMER.transactions,
            "insert_share": TIMER.insert_seconds / seconds, "chain_share": TIMER.chain_seconds / seconds,
            "insert_ms_per_transaction": TIMER.insert_seconds / max(TIMER.transactions, 1) * 1000,
        }
    finally:
        target.release(url)


def _run(target: Target, lines: list[str], workers: int, chunk: int) -> dict[str, Any]:
    url = target.fresh(f"parallel{workers}")
    try:
        open_continuum(url).close()  # the store's tables, as `continuum import` makes them before its workers start
        settings = Settings(database_url=url)
        with _cpu() as cpu, _waits(url) as waits:
            started = time.perf_counter()
            report = import_parallel(settings, lines, ACTOR, workers=workers, chunk_size=chunk)
            seconds = time.perf_counter() - started
        if not report.ok:
            problems = report.problems()
            msg = f"{len(problems)} problems importing the demo lines, e.g. {problems[0]}"
            raise RuntimeError(msg)
        return {
            "workers": workers,
            "events": report.events,
            "seconds": seconds,
            "events_per_s": report.events / seconds,
            **_shares(cpu.result(seconds), waits.result(), seconds),
        }
    finally:
        target.release(url)


def _shares(cpu: dict[str, Any], waits: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The server's backends' CPU counted with ours: what is left of the machine's busy time is other users'."""
    cores = os.cpu_count() or 1
    server_share = waits["server_cpu_seconds"] / (seconds * cores)
    return {**cpu, **waits, "server_cpu_share": server_share,
            "others_busy": max(cpu["machine_busy"] - cpu["our_cpu_share"] - server_share, 0.0)}


class _Cpu:
    def __init__(self) -> None:
        self.times = os.times()
        self.machine = _machine_ticks()

    def result(self, seconds: float) -> dict[str, Any]:
        after, busy_total = os.times(), _machine_ticks()
        ours = (after.user - self.times.user) + (after.system - self.times.system)
        ours += (after.children_user - self.times.children_user) + (after.children_system - self.times.children_system)
        busy, total = busy_total[0] - self.machine[0], busy_total[1] - self.machine[1]
        cores = os.cpu_count() or 1
        machine_busy = busy / total if total else 0.0
        ours_share = ours / (seconds * cores)
        return {
            "our_cpu_seconds": ours,
            "our_cpu_share": ours_share,  # of all the machine's CPUs over the run
            "machine_busy": machine_busy,  # every process on the machine, ours and the server's included
        }


@contextmanager
def _cpu() -> Iterator[_Cpu]:
    yield _Cpu()


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat; (0, 0) where there is none."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # noqa: PLR2004 - idle and iowait
    return sum(fields) - idle, sum(fields)


class _Waits:
    """`pg_stat_activity` sampled for the backends whose statements name the run's schema."""

    def __init__(self, url: str) -> None:
        database = parse_database_url(url)
        self.schema = database.schema
        self.connection = psycopg.connect(
            host=database.host, port=database.port, user=database.user, password=database.password or None,
            dbname=database.name, autocommit=True,
        )
        self.samples = 0
        self.states: Counter[str] = Counter()
        self.lock_waits_in_samples = 0  # samples in which one of the run's backends waited on a lock
        self.backend_cpu: dict[int, tuple[float, float]] = {}  # pid -> CPU seconds (first seen, last seen), from /proc
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        ours: set[int] = set()  # a backend once seen naming the schema is the run's for the rest of it (pooled)
        marker = f'"{self.schema}"'
        while not self.stop.wait(SAMPLE_S):
            rows = self.connection.execute(
                "SELECT pid, state, wait_event_type, wait_event, query FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()",
            ).fetchall()
            self.samples += 1
            waited = False
            for pid, state, kind, event, query in rows:
                if marker in (query or ""):
                    ours.add(pid)
                if pid not in ours:
                    continue
                cpu = process_cpu(pid)
                if cpu is not None:
                    self.backend_cpu[pid] = (self.backend_cpu.get(pid, (cpu, cpu))[0], cpu)
                if state == "active" and kind is not None:
                    self.states[f"waiting {kind}:{event}"] += 1
                    waited = waited or kind == "Lock"
                else:
                    self.states[str(state)] += 1
            self.lock_waits_in_samples += waited

    def result(self) -> dict[str, Any]:
        samples = max(self.samples, 1)
        return {
            "samples": self.samples,
            "sample_ms": SAMPLE_S * 1000,
            "backends_by_state": {state: round(count / samples, 3) for state, count in self.states.most_common()},
            "lock_wait_share": self.lock_waits_in_samples / samples,
            "server_cpu_seconds": sum(last - first for first, last in self.backend_cpu.values()),
        }



@contextmanager
def _waits(url: str) -> Iterator[_Waits]:
    waits = _Waits(url)
    waits.thread.start()
    try:
        yield waits
    finally:
        waits.stop.set()
        waits.thread.join()
        waits.connection.close()


def table(stage: dict[str, Any]) -> str:
    """The stage as Markdown: a row per worker count."""
    lines = [
        ("| workers | events | seconds | events/s | speed-up | our CPU (of all cores) | its backends' CPU | machine busy | others busy |"
         " lock waits (share of samples) | backends by state (mean per sample) |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = stage["runs"][str(stage["workers"][0])]["events_per_s"]
    for count, run in stage["runs"].items():
        states = ", ".join(f"{name} {mean:.2f}" for name, mean in list(run["backends_by_state"].items())[:STATES_SHOWN])
        lines.append(
            f"| {count} | {run['events']:,} | {run['seconds']:.1f} | {run['events_per_s']:,.0f} | {run['events_per_s'] / base:.2f}x"
            f" | {run['our_cpu_share']:.0%} | {run['server_cpu_share']:.0%} | {run['machine_busy']:.0%} | {run['others_busy']:.0%}"
            f" | {run['lock_wait_share']:.0%} | {states} |",
        )
    serial, most = stage["serial"], str(stage["workers"][-1])
    lines.append("")
    lines.append(
        f"Bounds with {most} workers: the lock, at most {stage['lock_bound'][most]:.2f}x (one process, {serial['events']:,} events,"
        f" timed recorder: the insert transactions under the events table's EXCLUSIVE lock take {serial['insert_share']:.0%}"
        f" of ingest time, {serial['chain_share']:.0%} the hash chain, {serial['insert_ms_per_transaction']:.1f} ms a transaction);"
        f" the CPU, at most {stage['cpu_bound']:.2f}x (the one-worker run's CPU, ours and its backends', against"
        f" {stage['cores']} cores).",
    )
    rounds = stage.get("rounds", [])
    each = ", ".join(f"{taken['speedup']:.2f}x" for taken in rounds)
    shown = f" (round {stage['round_shown']} of {len(rounds)}, the median: {each})" if rounds else ""
    lines.append(
        f"Speed-up with {stage['workers'][-1]} workers: {stage['speedup']:.2f}x{shown} (target {stage['target']}); {stage['note']}.",
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Only the ingest-across-workers stage: the same demo lines with 1 and 2 workers on PostgreSQL; the JSON to
    --out, a Markdown table to stdout."""
    from bench.harness import MODES  # here: the harness imports most of the bench's modules

    parser = argparse.ArgumentParser(prog="python -m bench.parallel", description=main.__doc__)
    parser.add_argument("--events", type=int, default=100_000, help="demo command lines (one event each; default 10^5)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts, the first is the base (default 1 2)")
    chunk = MODES["full"].chunk
    parser.add_argument("--chunk", type=int, default=chunk, help=f"lines per unit of work (default {chunk}, as in the full run)")
    parser.add_argument("--rounds", type=int, default=ROUNDS,
                        help=f"runs of each worker count, the median round reported (default {ROUNDS})")
    parser.add_argument("--out", type=Path, default=Path("bench-parallel.json"), help="where to write the JSON results")
    args = parser.parse_args(argv)
    target = Target.postgres(os.environ.get("CONTINUUM_BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    problem = target.reachable()
    if problem is not None:
        sys.exit(f"PostgreSQL at {target.base} cannot be reached: {problem}")
    try:
        stage = parallel_stage(target, args.events, args.chunk, datetime.now(tz=UTC).replace(microsecond=0), tuple(args.workers),
                               args.rounds)
    finally:
        target.cleanup()
    stage["command"] = " ".join(["python -m bench.parallel", *(sys.argv[1:] if argv is None else argv)])
    args.out.write_text(json.dumps(stage, indent=2, default=str) + "\n", encoding="utf-8")
    print(table(stage))  # noqa: T201


if __name__ == "__main__":
    main()
