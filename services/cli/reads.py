"""Read commands: census, history, matrix, audit, status. Each reads projection tables only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from domain.errors import UnknownClient
from domain.journey import ClientJourney
from domain.levels import ALUMNI, Level
from projections.audit_trail import trail_query
from projections.census import CensusClient, CensusLine, census_query
from projections.step_history import history_query, matrix_query
from services.bootstrap import Continuum
from services.cli.base import DatabaseOption, JsonOption, UsageError, command, console, continuum, parse_moment, print_json


def _level_code(value: str | None) -> str | None:
    if value is None or value == ALUMNI:
        return value
    try:
        return Level.from_code(value).code
    except ValueError as problem:
        raise UsageError(str(problem)) from None


def _catch_up(wired: Continuum) -> None:
    """Reads show the store as recorded: bring the projections up to the head first."""
    wired.runner.catch_up()


def census_table(lines: list[CensusLine], title: str) -> Table:
    table = Table(title=title)
    for column in ("level", "name", "site", "track"):
        table.add_column(column)
    table.add_column("clients", justify="right")
    for line in lines:
        name = "alumni / continuing care" if line.level == ALUMNI else Level(line.level).label
        table.add_row(line.level, name, line.site, line.track, str(line.clients))
    table.add_row("", "[b]total[/b]", "", "", f"[b]{sum(line.clients for line in lines)}[/b]")
    return table


@command("census")
def census(
    on: Annotated[str | None, typer.Option("--on", help="A past date (end of day) or ISO time; default now.")] = None,
    level: Annotated[str | None, typer.Option("--level", help="ASAM code, e.g. 2.1, or 'alumni'.")] = None,
    site: Annotated[str | None, typer.Option("--site")] = None,
    track: Annotated[str | None, typer.Option("--track", help="day, evening or residential")] = None,
    clients: Annotated[bool, typer.Option("--clients", help="List the clients, with days in level.")] = False,
    as_json: JsonOption = False,
    database_url: DatabaseOption = None,
) -> None:
    """Who is at which level of care, site and track: now, or on a past date."""
    with continuum(database_url) as wired:
        _catch_up(wired)
        at = parse_moment(on, wired.settings.timezone) if on else datetime.now(tz=UTC)
        with wired.views.transaction() as cursor:
            lines, listed = census_query(
                cursor, at, now=on is None, level=_level_code(level), site=site, track=track, with_clients=clients,
            )
            position = wired.runner.positions(cursor)["census"]
    if as_json:
        print_json({
            "at": at.isoformat(), "position": position, "total": sum(line.clients for line in lines),
            "counts": [vars(line) for line in lines],
            **({"clients": [_client_json(c) for c in listed]} if clients else {}),
        })
        return
    console.print(census_table(lines, f"Census at {at:%Y-%m-%d %H:%M} UTC"))
    if clients:
        table = Table("client", "level", "site", "track", "since", "days in level")
        for c in listed:
            table.add_row(c.client_ref, c.level, c.site, c.track, f"{c.since:%Y-%m-%d}", str(c.days_in_level))
        console.print(table)


def _client_json(client: CensusClient) -> dict[str, Any]:
    return {**vars(client), "since": client.since.isoformat()}


def _journey_of(wired: Continuum, client: str) -> Any:  # noqa: ANN401
    journey_id = ClientJourney.create_id(client)
    with wired.views.transaction() as cursor:
        cursor.execute("SELECT 1 FROM census_clients WHERE journey_id = ?", (str(journey_id),))
        if cursor.fetchone() is None:
            raise UnknownClient(client)
    return journey_id


@command("history")
def history(client: str, as_json: JsonOption = False, database_url: DatabaseOption = None) -> None:
    """A client's admissions, steps up and down, discharges and alumni enrolment, in clinical order."""
    with continuum(database_url) as wired:
        _catch_up(wired)
        journey_id = _journey_of(wired, client)
        with wired.views.transaction() as cursor:
            transitions = history_query(cursor, journey_id)
    if as_json:
        print_json({"client": client, "transitions": [
            {**vars(t), "occurred_at": t.occurred_at.isoformat()} for t in transitions
        ]})
        return
    table = Table("when (UTC)", "change", "from", "to", "reason", title=f"Step history of {client}")
    for t in transitions:
        table.add_row(f"{t.occurred_at:%Y-%m-%d %H:%M}", t.kind.replace("_", " "), t.from_level or "", t.to_level or "", t.reason)
    console.print(table)


def matrix_table(matrix: dict[tuple[str, str], int], title: str) -> Table:
    levels = sorted({code for pair in matrix for code in pair}, key=lambda code: -Level(code).rank)
    table = Table(title=title)
    table.add_column("from \\ to")
    for code in levels:
        table.add_column(code, justify="right")
    for origin in levels:
        table.add_row(origin, *[str(matrix.get((origin, to), "")) for to in levels])
    return table


@command("matrix")
def matrix(
    since: Annotated[str | None, typer.Option("--since", help="Start date (inclusive)")] = None,
    until: Annotated[str | None, typer.Option("--until", help="End date (inclusive)")] = None,
    as_json: JsonOption = False,
    database_url: DatabaseOption = None,
) -> None:
    """The step matrix: how many clients stepped from each level to each other level in a period."""
    with continuum(database_url) as wired:
        _catch_up(wired)
        zone = wired.settings.timezone
        start = parse_moment(since, zone, end_of_day=False) if since else None
        end = parse_moment(until, zone) if until else None
        with wired.views.transaction() as cursor:
            counts = matrix_query(cursor, start, end)
    if as_json:
        print_json({"since": since, "until": until, "steps": [
            {"from": f, "to": t, "count": n} for (f, t), n in sorted(counts.items())
        ]})
        return
    console.print(matrix_table(counts, "Steps from (rows) to (columns)"))


@command("audit")
def audit(
    client: str,
    after: Annotated[int, typer.Option("--after", help="Show entries after this version")] = 0,
    limit: Annotated[int | None, typer.Option("--limit")] = None,
    as_json: JsonOption = False,
    database_url: DatabaseOption = None,
) -> None:
    """Every recorded event of a client: who recorded it, clinical and recorded time, corrections beside."""
    with continuum(database_url) as wired:
        _catch_up(wired)
        journey_id = _journey_of(wired, client)
        with wired.views.transaction() as cursor:
            entries = trail_query(cursor, journey_id, after=after, limit=limit)
    if as_json:
        print_json({"client": client, "journey_id": str(journey_id), "entries": [e.as_json() for e in entries]})
        return
    table = Table("#", "event", "occurred (UTC)", "recorded (UTC)", "by", "details", title=f"Audit trail of {client}")
    for entry in entries:
        table.add_row(
            str(entry.version), entry.event_type, f"{entry.occurred_at:%Y-%m-%d %H:%M}", f"{entry.recorded_at:%Y-%m-%d %H:%M:%S}",
            f"{entry.actor_id} ({entry.actor_role})", _summary(entry.details),
        )
        for fix in entry.corrections:
            table.add_row(
                "", f"[yellow]↳ corrected by #{fix.version}[/yellow]", "", f"{fix.recorded_at:%Y-%m-%d %H:%M:%S}",
                f"{fix.actor_id} ({fix.actor_role})",
                _correction_text(fix.details),
            )
    console.print(table)


def _correction_text(details: dict[str, Any]) -> str:
    return f"{details['field']}: {details['previous_value']} → {details['corrected_value']} ({details['reason']})"


def _summary(details: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in details.items() if value not in (None, [], {}))[:90]


@command("status")
def status(as_json: JsonOption = False, database_url: DatabaseOption = None) -> None:
    """Each projection's position in the event log and its lag behind the head."""
    with continuum(database_url) as wired:
        statuses = wired.runner.status()
        where = wired.database.display
    if as_json:
        print_json({"database": where, "projections": [{"name": s.name, "position": s.position, "head": s.head, "lag": s.lag} for s in statuses]})  # noqa: E501
        return
    table = Table("projection", "position", "head", "lag", title=f"Projections in {where}")
    for s in statuses:
        table.add_row(s.name, str(s.position), str(s.head), str(s.lag))
    console.print(table)
