"""Putting a record right and what to look at again: `void` an entry made in error, list `flags`."""

from __future__ import annotations

from typing import Annotated

import typer

from services.cli.base import (
    EXIT_REFUSED,
    ActorOption,
    DatabaseOption,
    JsonOption,
    PurposeOption,
    RoleOption,
    command,
    console,
    continuum,
    errors,
    heading,
    parse_moment,
    print_json,
    reader,
    shown,
)


@command("void")
def void(
    client: Annotated[str, typer.Argument(help="The client reference")],
    versions: Annotated[list[int], typer.Argument(help="Versions (#) of the entries made in error, as `continuum audit` shows them")],
    reason: Annotated[str, typer.Option("--reason", help="Why the entries were made in error (kept with the void)")],
    occurred_at: Annotated[str | None, typer.Option("--at", help="When the error was found (default: now)")] = None,
    as_json: JsonOption = False,
    actor: ActorOption = None,
    role: RoleOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Void entries made in error: they stay recorded and shown beside the void, and stop counting.

    Later entries that depend on one (a later change of level, the sessions of a voided admission) are
    voided in the same command, or first.
    """
    from domain.values import Actor
    from services.commands import parse_command

    with continuum(database_url, actor=actor, role=role) as wired:
        at = parse_moment(occurred_at, wired.settings.timezone) if occurred_at else wired.journeys.clock()
        line = {"command": "void", "client": client, "occurred_at": at.isoformat(), "versions": versions, "reason": reason}
        outcome = wired.service.execute(parse_command(line), Actor(wired.settings.actor, wired.settings.role))
        if outcome.error is not None:
            errors.print(f"[red]refused:[/red] {outcome.error}", highlight=False, markup=True)
            raise typer.Exit(EXIT_REFUSED)
        wired.runner.catch_up()
    voided = [{"version": e.version, "voids": v} for e, v in zip(outcome.events, sorted(set(versions), reverse=True), strict=False)]
    if as_json:
        print_json({"client": client, "voided": voided, "position": max((e.position for e in outcome.events), default=0)})
        return
    if not outcome.events:
        console.print(f"{client}: already voided by this command before; nothing new recorded")
        return
    for item in voided:
        console.print(f"{client}: #{item['voids']} voided by #{item['version']}")


@command("flags")
def flags(
    client: Annotated[str | None, typer.Option("--client", help="Only this client")] = None,
    site: Annotated[str | None, typer.Option("--site")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Clinical time from (date or ISO time)")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Clinical time before (date or ISO time)")] = None,
    as_json: JsonOption = False,
    purpose: PurposeOption = None,
    actor: ActorOption = None,
    role: RoleOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Admissions, steps and changes of track to look at again: hours outside the level's band, an
    ambulatory admission against a withdrawal need. Recorded, never refused; each client listed is an access record."""
    from rich.table import Table

    from services.cli.reads import current

    with continuum(database_url, actor=actor, role=role) as wired:
        zone = wired.settings.timezone
        start = parse_moment(since, zone, end_of_day=False) if since else None
        end = parse_moment(until, zone, end_of_day=False) if until else None
        rows = current(wired).flags(reader(wired, purpose), client_ref=client, site=site, since=start, until=end)
    if as_json:
        print_json({"flags": [
            {"client": r.client_ref, "version": r.version, "entry": r.event_type, "flag": r.flag, "level": r.level, "site": r.site,
             "planned_hours_per_week": r.hours, "occurred_at": r.occurred_at.isoformat(), "text": r.text}
            for r in rows
        ]})
        return
    settings = wired.settings
    table = Table("client", "#", "entry", heading("occurred", settings), "site", "flag", title=f"Flags ({len(rows)})")
    for r in rows:
        table.add_row(r.client_ref, str(r.version), r.event_type, shown(r.occurred_at, settings, label=False), r.site, r.text)
    console.print(table)
