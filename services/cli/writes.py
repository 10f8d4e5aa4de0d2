"""Write commands: `import` a file of command lines, and `demo`, which records a synthetic cohort
through the very same importer."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from domain.values import Actor  # a small module of dataclasses
from services.cli.base import (
    EXIT_REFUSED,
    ActorOption,
    DatabaseOption,
    JsonOption,
    RoleOption,
    UsageError,
    command,
    console,
    continuum,
    errors,
    open_store,
    print_json,
    settings_for,
    shown,
)
from services.cli.reads import census_table, matrix_table

if TYPE_CHECKING:  # the importer, the projections and the store load when a command records
    from rich.progress import Progress

    from infra.config import Settings
    from projections.runner import ProjectionRunner
    from services.bootstrap import Continuum
    from services.importer import ImportReport
    from services.journeys import JourneyService

MAX_SHOWN_ERRORS = 50


BYTE_ORDER_MARK = "\ufeff"


def import_lines(
    service: JourneyService, lines: Sequence[str], actor: Actor, *, chunk_size: int = 500,
    on_chunk: Callable[[ImportReport], None] | None = None, dry_run: bool = False,
) -> ImportReport:
    """`services.importer.import_lines`, imported when it is first called (it loads the domain and the store).

    A UTF-8 byte-order mark, which some editors write at the start of a file, is not part of the first line.
    """
    from services.importer import import_lines as run

    if lines and lines[0].startswith(BYTE_ORDER_MARK):
        lines = [lines[0].removeprefix(BYTE_ORDER_MARK), *lines[1:]]
    return run(service, lines, actor, chunk_size=chunk_size, on_chunk=on_chunk, dry_run=dry_run)


def _progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=errors, transient=False,
    )


def record(wired: Continuum, lines: list[str], actor: Actor, label: str) -> ImportReport:
    with _progress() as bar:
        task = bar.add_task(label, total=len(lines))
        report = import_lines(
            wired.service, lines, actor, chunk_size=wired.settings.command_batch_size,
            on_chunk=lambda r: bar.update(task, completed=r.lines),
        )
        bar.update(task, completed=len(lines))
    return report


def project(runner: ProjectionRunner) -> int:
    statuses = runner.status()
    behind = max((s.lag for s in statuses), default=0)
    with _progress() as bar:
        task = bar.add_task("projecting census, steps, audit", total=behind)
        start = min((s.position for s in statuses), default=0)
        return runner.catch_up(progress=lambda position, _head: bar.update(task, completed=position - start))


@command("import", creates_store=True)
def import_file(
    file: Annotated[Path, typer.Argument(help="JSON lines, one command per line", exists=False)],
    actor: ActorOption = None,
    role: RoleOption = None,
    as_json: JsonOption = False,
    database_url: DatabaseOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every line against the current store and report; record nothing"),
    ] = False,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=64, help="Worker processes (PostgreSQL only): lines split by client, each client's in file order",
    )] = 1,
) -> None:
    """Apply one command per line; bad lines are reported by number and reason and change nothing.

    A refused line holds its client's later lines (reported as held); other clients go on.
    With --workers N the clients are split across N processes (see README, "Ingest across workers and machines").
    """
    if not file.is_file():
        msg = f"no such file: {file}"
        raise UsageError(msg)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as problem:
        msg = f"{file} is not UTF-8 text (byte {problem.start}): save it as UTF-8 JSON lines"
        raise UsageError(msg) from None
    if workers > 1:
        report = _import_across(file, lines, workers, settings_for(database_url, actor=actor, role=role), dry_run=dry_run)
        _report(report, as_json=as_json)
        if not report.ok:
            raise typer.Exit(EXIT_REFUSED)
        return
    with continuum(database_url, actor=actor, role=role) as wired:
        who = Actor(wired.settings.actor, wired.settings.role)
        if dry_run:
            with _progress() as bar:
                task = bar.add_task(f"checking {file.name} (dry run)", total=len(lines))
                report = import_lines(
                    wired.service, lines, who, chunk_size=wired.settings.command_batch_size, dry_run=True,
                    on_chunk=lambda r: bar.update(task, completed=r.lines),
                )
                bar.update(task, completed=len(lines))
        else:
            report = record(wired, lines, who, f"importing {file.name}")
            project(wired.runner)
    _report(report, as_json=as_json)
    if not report.ok:
        raise typer.Exit(EXIT_REFUSED)


def _import_across(file: Path, lines: list[str], workers: int, settings: Settings, *, dry_run: bool) -> ImportReport:
    """`--workers N`: the lines split by client across N processes (services/parallel_import.py), then projected here."""
    from services.parallel_import import import_parallel, refuse_sqlite

    refuse_sqlite(settings, workers)  # before a SQLite store is made
    with open_store(settings) as wired:  # makes the store's tables once, before the workers open it
        total = sum(1 for text in lines if text.strip())
        with _progress() as bar:
            label = f"{'checking' if dry_run else 'importing'} {file.name} with {workers} workers" + (" (dry run)" if dry_run else "")
            task = bar.add_task(label, total=total)
            report = import_parallel(
                settings, lines, Actor(settings.actor, settings.role), workers=workers, dry_run=dry_run,
                on_progress=lambda done: bar.update(task, completed=done),
            )
        if not dry_run:
            project(wired.runner)
    return report


def _report(report: ImportReport, *, as_json: bool) -> None:
    failures = getattr(report, "failures", [])
    if as_json:
        print_json({
            "dry_run": report.dry_run, "lines": report.lines, "applied": report.applied, "duplicates": report.duplicates,
            "events": report.events, "position": report.last_position, "refused": len(report.errors), "held": len(report.held),
            "errors": [vars(e) for e in report.errors],
            "held_lines": [{"line": h.line, "held_by": h.held_by, "client": h.client, "reason": h.reason} for h in report.held],
            **({"workers": report.workers, "worker_failures": [vars(f) | {"text": f.describe()} for f in failures]}
               if hasattr(report, "workers") else {}),
        })
        return
    counts = (
        f"({report.events} events), {report.duplicates} already recorded, {len(report.errors)} refused"
        + (f", {len(report.held)} held" if report.held else "")
    )
    if report.dry_run:
        console.print(f"dry run: {report.applied} commands would be applied {counts}; nothing was recorded")
    else:
        console.print(f"{report.applied} commands applied {counts}")
    problems = report.problems()
    for problem in problems[:MAX_SHOWN_ERRORS]:
        errors.print(problem, highlight=False, soft_wrap=True, markup=False)
    if len(problems) > MAX_SHOWN_ERRORS:
        errors.print(f"... and {len(problems) - MAX_SHOWN_ERRORS} more refused or held lines (use --json for all)")


@command("demo", creates_store=True)
def demo(
    clients: Annotated[int, typer.Option("--clients", min=1, max=1_000_000, help="Cohort size")] = 1000,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    start: Annotated[str | None, typer.Option(
        "--start", help="First day of the cohort, YYYY-MM-DD [default: 2025-01-01, or a year before --end]",
    )] = None,
    end: Annotated[str | None, typer.Option(
        "--end", help="Last day, YYYY-MM-DD, or `today` (up to now) [default: 2025-12-31, or a year after --start]",
    )] = None,
    write: Annotated[Path | None, typer.Option("--write", help="Also write the command lines to this file")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Generate a realistic one-year cohort (2025 unless --start/--end say otherwise), record it through the
    importer, project it, and show it.

    The same options give the same cohort whatever the day it runs, and running it again records nothing
    new. A store that already holds another cohort (or other events) is refused.
    """
    from rich.markup import escape

    from services.demo import cohort_lines, cohort_window, other_cohort  # the generator is only needed here

    started = time.perf_counter()
    with continuum(database_url) as wired:
        try:  # "today" is the journey service's clock reading: no clinical time after it is recorded
            first, last = cohort_window(start, end, wired.service.clock())
        except ValueError as problem:
            raise UsageError(str(problem)) from None
        refusal = other_cohort(wired.app, clients, seed, first, last)
        if refusal is not None:
            errors.print(f"[red]refused:[/red] {escape(refusal)}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_REFUSED)
        lines = list(cohort_lines(clients, seed, start=first, end=last))
        if write is not None:
            write.write_text("\n".join(lines) + "\n", encoding="utf-8")
        label = f"recording {clients} clients, {first:%Y-%m-%d} to {last:%Y-%m-%d}"
        report = record(wired, lines, Actor("demo", "system"), label)
        recorded = time.perf_counter()
        project(wired.runner)
        projected = time.perf_counter()
        _show_demo(wired, last)
    console.print(
        f"\n{report.applied} commands → {report.events} events ({report.duplicates} already recorded,"
        f" {len(report.errors)} refused) in {wired.database.display}; recorded in {recorded - started:.1f} s,"
        f" projected in {projected - recorded:.1f} s, total {projected - started:.1f} s",
    )
    for error in report.errors[:10]:
        errors.print(f"line {error.line}: {error.reason}", highlight=False, markup=False)


def _show_demo(wired: Continuum, end: datetime) -> None:
    from datetime import timedelta

    from rich.table import Table

    from domain.journey import ClientJourney
    from projections.audit_trail import trail_query
    from projections.census import census_query
    from projections.step_history import matrix_query
    from services.demo import IOP_MEDIAN_DAYS
    from services.demo import REASONS as TEDS
    from services.reports import GROUP_NAMES, Reports, Scope

    example = wired.reads.example_client()
    row = (example,) if example else None
    with wired.views.transaction() as cursor:
        census_lines, _ = census_query(cursor, end, now=False)
        steps = matrix_query(cursor, None, None)
        entries = trail_query(cursor, ClientJourney.create_id(example), limit=8, seal=wired.seal) if example else []
    settings = wired.settings
    console.print(census_table(census_lines, f"Census at the end of the cohort ({shown(end, settings)})"))
    console.print(matrix_table(steps, "Steps in the cohort, from (rows) to (columns)"))
    if row:
        console.print(f"\nFirst audit lines of {row[0]} (see `continuum audit {row[0]}`):")
        for entry in entries:
            fixes = "".join(
                f"\n      ↳ corrected by #{fix.version}: {fix.details['field']} {fix.details['previous_value']}"
                f" → {fix.details['corrected_value']} ({fix.actor_id}, {shown(fix.recorded_at, settings, seconds=True)})"
                for fix in entry.corrections
            )
            console.print(
                f"  #{entry.version} {entry.event_type:<28} occurred {shown(entry.occurred_at, settings)}"
                f"  recorded {shown(entry.recorded_at, settings, seconds=True)} by {entry.actor_id} ({entry.actor_role}){fixes}",
                highlight=False,
            )

    # outcomes a program director reads (services/reports.py; `continuum report NAME` for each in full)
    reports, scope = Reports(wired.views), Scope(end + timedelta(seconds=1))
    completion = reports.completion(scope).rows
    median = {r.group: r.median_days for r in reports.length_of_stay(scope).rows if r.end_reason == "all"}
    readmitted = reports.readmission(scope).rows[0]
    iop = reports.attendance(scope).rows[0]
    soon = 14  # days: continuity of care after withdrawal management, as CBE #3312
    after_wm = next((r for r in reports.continuity(scope).rows if r.measure == "after withdrawal management" and r.days == soon), None)
    teds = {GROUP_NAMES[group]: TEDS[key]["completed"]
            for group, key in (("wm", "WM"), ("residential", "RES"), ("php", "2.5"), ("iop", "2.1"), ("op", "1"))}

    def pct(rate: float | None) -> str:
        return "-" if rate is None else f"{100 * rate:.1f} %"

    def days(value: float | None) -> str:
        return "-" if value is None else f"{value:g}"

    table = Table(title=f"Outcomes of service stays ended by {shown(end, settings)} (TEDS-D 2004 beside)")
    for column in ("level of care", "stays ended", "completed", "TEDS-D completed", "completed or transferred", "median days"):
        table.add_column(column, justify="left" if column == "level of care" else "right")
    for r in completion:
        table.add_row(r.group, f"{r.ended:,}", pct(r.completion_rate), f"{teds[r.group]:.1f} %",
                      pct(r.completion_or_transfer_rate), days(median.get(r.group)))
    console.print(table)
    console.print(f"Median IOP length of stay: {days(median.get('intensive outpatient'))} days"
                  f" (TEDS-D 2004: {IOP_MEDIAN_DAYS}).", highlight=False)
    console.print(f"Readmitted within 30 days of discharge: {pct(readmitted.rate)} of {readmitted.eligible or 0:,}"
                  " discharges whose 30 days had passed.", highlight=False)
    console.print(f"IOP weeks meeting the 9-hour minimum: {pct(iop.compliance_rate)} of {iop.client_weeks or 0:,} client-weeks;"
                  f" sessions attended {pct(iop.attendance_rate)} ({pct(iop.attendance_rate_unexcused_only)}"
                  " leaving out excused absences).", highlight=False)
    if after_wm is not None:
        console.print(f"After withdrawal management, a lower level of care within {soon} days: {pct(after_wm.rate)}"
                      f" of {after_wm.eligible or 0:,} stays.", highlight=False)
