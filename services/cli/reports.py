"""Measures for program directors and payers: `continuum report NAME` (the README's "Reports" defines each)."""

from __future__ import annotations

from typing import Annotated

import typer

from services.cli.base import (
    DatabaseOption,
    JsonOption,
    RoleOption,
    UsageError,
    command,
    console,
    continuum,
    now,
    parse_moment,
    print_json,
)

NAMES = ("end-reasons", "completion", "length-of-stay", "retention", "continuity", "initiation", "readmission",
         "attendance", "negative-tests", "census-trend", "time-to-step", "fidelity")


@command("report")
def report(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(NAMES)}")],
    since: Annotated[str | None, typer.Option("--since", help="Period from (date or ISO time; default: all)")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Period before (date or ISO time; default: now)")] = None,
    site: Annotated[str | None, typer.Option("--site")] = None,
    level: Annotated[str | None, typer.Option("--level", help="An ASAM code, a level's name or a group (detox, residential)")] = None,
    as_json: JsonOption = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print the rows as CSV.")] = False,
    role: RoleOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """A measure over a period: counts under 11 are suppressed for the dashboard role (--role dashboard)."""
    import csv
    import sys
    from dataclasses import asdict, fields

    from rich.table import Table

    from services.cli.reads import level_filter, site_filter
    from services.reports import Reports, Scope

    if name not in NAMES:
        msg = f"unknown report {name!r} (known: {', '.join(NAMES)})"
        raise UsageError(msg)
    levels = level_filter(level)
    with continuum(database_url, role=role) as wired:
        zone = wired.settings.timezone
        wired.runner.catch_up()
        start = parse_moment(since, zone, end_of_day=False, name="--since") if since else None
        end = parse_moment(until, zone, end_of_day=False, name="--until") if until else now(wired)
        scope = Scope(end, start, site_filter(wired, site), levels.codes if levels else None)
        small = "suppress" if wired.settings.role == "dashboard" else "show"
        result = Reports(wired.views, small_cells=small).run(name, scope)
    rows = [asdict(row) for row in result.rows]
    if as_json:
        print_json({"report": result.name, "title": result.title, "since": scope.since, "until": scope.until, "site": scope.site,
                    "levels": scope.levels, "suppressed": result.suppressed, "note": result.note, "rows": rows})
        return
    columns = [f.name for f in fields(result.rows[0])] if result.rows else []
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row[c] is None else row[c] for c in columns])
        return
    period = f"{scope.since.date() if scope.since else 'the start'} to {scope.until.date()}"
    table = Table(*columns, title=f"{result.title}, {period}")
    for row in rows:
        table.add_row(*("-" if row[c] is None else str(row[c]) for c in columns))
    console.print(table)
    if result.note:
        console.print(result.note)
