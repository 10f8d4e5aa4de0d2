"""`continuum import FILE --workers N`: the file's lines split by journey across N worker processes on
PostgreSQL, each with its own `bootstrap(settings)`, their reports merged into one.

Every line of a client goes to the same worker, in file order, so a journey's commands are applied in the
order the file gives them and a refused line still holds its client's later lines (the importer's rule, per
worker). The clients are dealt out by their line counts, so the workers get about as many lines each (a run
lasts as long as its busiest worker): the client with most lines first, each to the worker with fewest lines
so far (`assign`). A line that names no client (unreadable JSON, no `client` field) holds nothing and goes to
worker 0, which reports it. Each worker runs `services.importer.import_lines` on its share with the other
lines blank, so line numbers are the file's.

The workers are forked from a server process that has already imported the application (`WORKER_MODULES`),
so a worker is ready as soon as it has opened its store; that server starts first and imports while the
parent splits the file, and each worker is given its share as it starts.

Exactly-once: a command's id (its `id`, else a hash of its content) is recorded with its events and a
repeated id records nothing (`JourneyService`), so running the same file again after a partial failure
records nothing twice. A worker reports after each unit of work (what it applied, refused and held); one
that fails or dies leaves the others running to their end, and the merged report names the worker, why
it stopped and the first of its lines not confirmed recorded (they may or may not be: run the file again).

Workers write concurrently but store events one transaction at a time: the library takes an EXCLUSIVE
lock on the events table for each insert, and the global hash chain (infra/chain.py) is computed in that
lock, so the chain's order is the commit order. The parallel part is everything before the insert:
parsing, validating, loading journeys and applying the care rules.

SQLite has one writer at a time, so `--workers` above 1 is refused there (`WorkersNeedPostgres`).
"""

from __future__ import annotations

import heapq
import json
import multiprocessing
import multiprocessing.forkserver
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

import orjson

from infra.config import ConfigurationError, Settings, parse_database_url
from services.importer import HeldLine, ImportReport, LineError
from services.worker_processes import check_workers, describe_failure, end_all, fork_server, start

if TYPE_CHECKING:
    from domain.values import Actor

BYTE_ORDER_MARK = "\ufeff"
NO_CLIENT_WORKER = 0  # the worker that reports lines naming no client (they hold nothing)
# What a worker runs, imported once by the fork server its workers are forked from (0.4 s a process).
WORKER_MODULES = ("services.bootstrap", "services.importer", "services.parallel_import")


class WorkersNeedPostgres(ConfigurationError):  # noqa: N818 - reads as what the user is told
    """More than one import worker asked of a SQLite store."""


@dataclass(frozen=True)
class WorkerFailure:
    """A worker that stopped before its end: its lines from `first_unconfirmed` on (`unconfirmed` of them)
    may or may not be recorded; running the same file again records each of them once."""

    worker: int
    reason: str
    first_unconfirmed: int | None
    unconfirmed: int

    def describe(self) -> str:
        rest = (
            f"; {self.unconfirmed} of its lines from line {self.first_unconfirmed} on are not confirmed recorded:"
            " run the same file again (what was recorded is not recorded twice)"
            if self.first_unconfirmed is not None else "; every line of its share was accounted for"
        )
        return f"import worker {self.worker} stopped: {self.reason}{rest}"


@dataclass
class ParallelReport(ImportReport):
    """The workers' reports merged: counts added up, errors and held lines in file order, and any worker
    that stopped before its end."""

    workers: int = 1
    failures: list[WorkerFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.held and not self.failures

    def problems(self) -> list[str]:
        return [*(failure.describe() for failure in self.failures), *super().problems()]


def client_of(text: str) -> str | None:
    """The client a line names, if its JSON can be read (the importer validates the rest)."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:  # what orjson refuses and the importer's reader may still take (NaN, an integer beyond 64 bits)
            data = json.loads(text)
        except json.JSONDecodeError:
            return None
    client = data.get("client") if isinstance(data, dict) else None
    return client if isinstance(client, str) and client else None


def assign(lines_per_client: Mapping[str, int], workers: int, *, unnamed: int = 0) -> dict[str, int]:
    """Each client's worker: the clients with most lines first, each to the worker with fewest lines so far
    (worker 0 starts with the `unnamed` lines that name no client); ties go to the lower worker, and clients
    of equal count are taken in name order, so the same file always splits the same way."""
    loads = [(unnamed if index == NO_CLIENT_WORKER else 0, index) for index in range(workers)]
    heapq.heapify(loads)
    worker_of: dict[str, int] = {}
    for client in sorted(lines_per_client, key=lambda name: (-lines_per_client[name], name)):
        load, index = heapq.heappop(loads)
        worker_of[client] = index
        heapq.heappush(loads, (load + lines_per_client[client], index))
    return worker_of


def split(lines: Sequence[str], workers: int) -> list[list[tuple[int, str]]]:
    """Each worker's (line number, text) in file order, every line of a client in one worker's share
    (`assign`); blank lines go nowhere."""
    kept: list[tuple[int, str, str | None]] = []
    for number, text in enumerate(lines, start=1):
        if number == 1:
            text = text.removeprefix(BYTE_ORDER_MARK)  # noqa: PLW2901 - an editor's mark, not part of the line
        if text.strip():
            kept.append((number, text, client_of(text) if workers > 1 else None))
    counts = Counter(client for _, _, client in kept if client is not None)
    worker_of = assign(counts, workers, unnamed=len(kept) - counts.total())
    shares: list[list[tuple[int, str]]] = [[] for _ in range(workers)]
    for number, text, client in kept:
        shares[NO_CLIENT_WORKER if client is None else worker_of[client]].append((number, text))
    return shares


def refuse_sqlite(settings: Settings, workers: int) -> None:
    """`--workers N` with N > 1 needs PostgreSQL: one line saying why, before any work."""
    if workers > 1 and parse_database_url(settings.database_url).kind == "sqlite":
        msg = (f"--workers {workers} needs PostgreSQL: a SQLite store takes one writer at a time, so more workers"
               " would only wait for each other; use --workers 1 (the default) or a postgresql:// store")
        raise WorkersNeedPostgres(msg)


def import_parallel(
    settings: Settings,
    lines: Sequence[str],
    actor: Actor,
    *,
    workers: int,
    chunk_size: int | None = None,
    dry_run: bool = False,
    clock: Callable[[], datetime] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ParallelReport:
    """Import `lines` with `workers` processes (forked from a server that has the
    application imported), each bootstrapping its own store from `settings`.
    `on_progress` gets how many non-blank lines are done so far; `clock` (a picklable function) is each
    worker's journey service clock."""
    check_workers(workers)
    refuse_sqlite(settings, workers)
    job = _Job(settings, actor, chunk_size or settings.command_batch_size, dry_run, clock)
    context = fork_server(WORKER_MODULES)
    multiprocessing.forkserver.ensure_running()  # the server imports the application while the file is split
    shares = split(lines, workers)
    running: list[_Worker] = []
    try:
        for index, share in enumerate(shares):  # the file is split already: each worker takes its share as it starts
            process, receiver = start(context, _work, (share, job), f"continuum-import-{index}")
            running.append(_Worker(index, [number for number, _ in share], process, receiver))
        _follow(running, on_progress)
    finally:
        end_all(running)
    return _merge(running, workers, dry_run=dry_run)


@dataclass(frozen=True)
class _Job:
    settings: Settings
    actor: Actor
    chunk_size: int
    dry_run: bool
    clock: Callable[[], datetime] | None


@dataclass
class _Worker:
    """The parent's view of one worker: its line numbers, what it has reported, whether it ended."""

    index: int
    numbers: list[int]
    process: Any  # a forkserver context's Process
    receiver: Connection
    report: ImportReport = field(default_factory=ImportReport)
    confirmed: int = 0  # its lines up to this number are accounted for
    finished: bool = False
    failure: str | None = None

    @property
    def done(self) -> int:
        return bisect_right(self.numbers, self.confirmed)

    def take(self, message: tuple[str, dict[str, Any]]) -> None:
        kind, body = message
        report = self.report
        report.applied, report.duplicates, report.events = body["applied"], body["duplicates"], body["events"]
        report.lines, report.last_position = body["lines"], body["last_position"]
        report.errors.extend(body["errors"])
        report.held.extend(body["held"])
        self.confirmed = body["confirmed"]
        if kind == "done":
            self.finished = True
        elif kind == "failed":
            self.finished, self.failure = True, body["reason"]


def _follow(running: list[_Worker], on_progress: Callable[[int], None] | None) -> None:
    """Read every worker's messages until each has ended; a worker whose process ends without a last word
    (killed, or dead before it could say) failed."""
    waiting = {worker.index: worker for worker in running}
    while waiting:
        handles: dict[Any, _Worker] = {}
        for worker in waiting.values():
            handles[worker.receiver] = handles[worker.process.sentinel] = worker
        for ready in wait(list(handles)):
            worker = handles[ready]
            if worker.index in waiting:
                _read(worker, ended=ready is worker.process.sentinel)
                if worker.finished:
                    del waiting[worker.index]
        if on_progress is not None:
            on_progress(sum(worker.done for worker in running))


def _read(worker: _Worker, *, ended: bool) -> None:
    """What the worker has sent; once its process has ended, everything it sent, then whether it said it was done."""
    try:
        while worker.receiver.poll():
            worker.take(worker.receiver.recv())
            if not ended:
                break
    except EOFError:  # its end of the pipe is closed: the process is ending
        ended = True
    if ended and not worker.finished:
        worker.process.join()
        worker.finished, worker.failure = True, f"the process ended with exit code {worker.process.exitcode}"


def _merge(running: list[_Worker], workers: int, *, dry_run: bool) -> ParallelReport:
    merged = ParallelReport(dry_run=dry_run, workers=workers)
    for worker in running:
        report = worker.report
        merged.lines = max(merged.lines, report.lines)
        merged.applied += report.applied
        merged.duplicates += report.duplicates
        merged.events += report.events
        merged.last_position = max(merged.last_position, report.last_position)
        merged.errors.extend(report.errors)
        merged.held.extend(report.held)
        if worker.failure is not None:
            rest = worker.numbers[worker.done:]
            merged.failures.append(WorkerFailure(worker.index, worker.failure, rest[0] if rest else None, len(rest)))
    merged.errors.sort(key=lambda error: error.line)
    merged.held.sort(key=lambda held: held.line)
    return merged


def _numbered(share: list[tuple[int, str]]) -> Iterator[str]:
    """The share as the file's lines: blank where another worker's (or a blank) line is, so numbers are the file's."""
    last = 0
    for number, text in share:
        yield from ("" for _ in range(number - last - 1))
        yield text
        last = number


def _work(share: list[tuple[int, str]], job: _Job, sender: Connection) -> None:
    """One worker process: its own store, then `import_lines` over its share, a message
    after each unit of work (what is new since the last) and a last one, `done` or `failed`."""
    from services.bootstrap import bootstrap
    from services.importer import import_lines

    sent = {"errors": 0, "held": 0}
    current = ImportReport(dry_run=job.dry_run)
    confirmed = 0

    def message(kind: str, report: ImportReport, confirmed: int, **extra: object) -> tuple[str, dict[str, Any]]:
        errors: list[LineError] = report.errors[sent["errors"]:]
        held: list[HeldLine] = report.held[sent["held"]:]
        sent["errors"], sent["held"] = len(report.errors), len(report.held)
        return kind, {
            "applied": report.applied, "duplicates": report.duplicates, "events": report.events, "lines": report.lines,
            "last_position": report.last_position, "errors": errors, "held": held, "confirmed": confirmed, **extra,
        }

    def chunk_done(report: ImportReport) -> None:
        nonlocal current, confirmed
        # the line that ended the unit of work may be a refused one still to be reported: confirmed up to the one before
        current, confirmed = report, report.lines - 1
        sender.send(message("progress", report, confirmed))

    try:
        wired = bootstrap(job.settings, clock=job.clock)
        try:
            report = import_lines(wired.service, _numbered(share), job.actor, chunk_size=job.chunk_size,
                                  on_chunk=chunk_done, dry_run=job.dry_run)
        finally:
            wired.close()
        sender.send(message("done", report, share[-1][0] if share else 0))
    except Exception as error:  # noqa: BLE001 - told to the parent, which reports it with the lines left
        sender.send(message("failed", current, confirmed, reason=describe_failure(error)))
    finally:
        sender.close()
