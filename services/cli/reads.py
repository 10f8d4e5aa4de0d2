"""Read commands for dashboards and clinicians: census, history, matrix, audit, status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table  # typer's help loads it anyway

from domain.levels import ALUMNI, Level  # a small module of enums
from services.cli.base import (
    ActorOption,
    DatabaseOption,
    JsonOption,
    PurposeOption,
    RoleOption,
    UsageError,
    command,
    console,
    continuum,
    heading,
    now,
    open_store,
    parse_moment,
    print_json,
    reader,
    settings_for,
    shown,
)
from services.moments import json_moment, recording_clock

if TYPE_CHECKING:
    from projections.census import CensusLine
    from services.bootstrap import Continuum
    from services.census_filters import Levels
    from services.reads import Reads


def level_filter(value: str | None) -> Levels | None:
    from services.census_filters import census_levels

    try:
        return None if value is None else census_levels(value)
    except ValueError as problem:
        raise UsageError(str(problem)) from None


def track_filter(value: str | None) -> str | None:
    from services.census_filters import census_track

    try:
        return None if value is None else census_track(value)
    except ValueError as problem:
        raise UsageError(str(problem)) from None


def site_filter(wired: Continuum, value: str | None) -> str | None:
    from services.census_filters import census_site

    if value is None:
        return None
    with wired.views.transaction() as cursor:
        try:
            return census_site(cursor, value)
        except ValueError as problem:
            raise UsageError(str(problem)) from None


def current(wired: Continuum) -> Reads:
    """Reads show the store as recorded: bring the projections up to the head first."""
    wired.runner.catch_up()
    return wired.reads


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
def census(  # noqa: PLR0913 - the census's filters are its options
    on: Annotated[str | None, typer.Option("--on", help="A past date (end of day) or ISO time; default now.")] = None,
    as_recorded: Annotated[str | None, typer.Option("--as-recorded", help="As the record stood at this time (replays the store)")] = None,
    level: Annotated[str | None, typer.Option(
        "--level", help="ASAM code (2.1), name (iop, php, outpatient), group (detox, residential) or 'alumni'.",
    )] = None,
    site: Annotated[str | None, typer.Option("--site", help="A site clients are registered or treated at")] = None,
    track: Annotated[str | None, typer.Option("--track", help="day, evening, residential or alumni")] = None,
    clients: Annotated[bool, typer.Option("--clients", help="List the clients, with days in level (an access record each).")] = False,
    as_json: JsonOption = False,
    purpose: PurposeOption = None,
    actor: ActorOption = None,
    role: RoleOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Who is at which level of care, site and track: now, on a past date, or as recorded at a time."""
    settings = settings_for(database_url, actor=actor, role=role)
    levels, track = level_filter(level), track_filter(track)  # a mistake is said before the store is opened
    zone = settings.timezone
    for text, name in ((on, "--on"), (as_recorded, "--as-recorded")):
        if text:
            parse_moment(text, zone, name=name)
    if as_recorded and (clients or track):
        msg = "--as-recorded gives counts by level and site; it takes no --clients or --track"
        raise UsageError(msg)
    single = levels.single if levels else None
    with open_store(settings) as wired:
        clock = now(wired)  # the census is of what has happened: nothing after now; today means so far
        at = parse_moment(on, zone, now=clock, name="--on") if on else None
        recorded = parse_moment(as_recorded, zone, now=recording_clock(), name="--as-recorded") if as_recorded else None
        reads = current(wired)
        site = site_filter(wired, site)
        if recorded is not None:
            result = reads.census_as_recorded(at or clock, recorded, level=single, site=site)
        else:
            result = reads.census(at, level=single, site=site, track=track, with_clients=clients)
        result = levels.keep(result) if levels else result
        if clients:
            what = "census client list" + (" now" if at is None else f" at {json_moment(result.at)}") + "".join(
                f" {name} {value}" for name, value in (("level", level), ("site", site), ("track", track)) if value
            )
            reads.record_listing(reader(wired, purpose), [c.client_ref for c in result.clients], what)
    if as_json:
        print_json({
            "at": result.at, "position": result.position, "total": result.total,
            **({"as_recorded": recorded} if recorded else {}),
            "counts": [vars(line) for line in result.lines],
            **({"clients": [vars(c) for c in result.clients]} if clients else {}),
        })
        return
    title = f"Census at {shown(result.at, settings)}" + (f", as recorded at {shown(recorded, settings)}" if recorded else "")
    console.print(census_table(result.lines, title))
    if clients:
        table = Table("client", "level", "site", "track", heading("since", settings), "days in level")
        for c in result.clients:
            table.add_row(c.client_ref, c.level, c.site, c.track, shown(c.since, settings, label=False), str(c.days_in_level))
        console.print(table)


@command("history")
def history(
    client: str, as_json: JsonOption = False, purpose: PurposeOption = None, actor: ActorOption = None,
    role: RoleOption = None, database_url: DatabaseOption = None,
) -> None:
    """A client's admissions, steps up and down, discharges and alumni enrolment, in clinical order."""
    with continuum(database_url, actor=actor, role=role) as wired:
        transitions = current(wired).history(client, reader(wired, purpose))
    if as_json:
        print_json({"client": client, "transitions": [vars(t) for t in transitions]})
        return
    settings = wired.settings
    table = Table(heading("when", settings), "change", "from", "to", "reason", title=f"Step history of {client}")
    for t in transitions:
        table.add_row(shown(t.occurred_at, settings, label=False), t.kind.replace("_", " "), t.from_level or "", t.to_level or "",
                      t.reason)
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
    settings = settings_for(database_url)
    start = parse_moment(since, settings.timezone, end_of_day=False, name="--since") if since else None
    end = parse_moment(until, settings.timezone, name="--until") if until else None
    with open_store(settings) as wired:
        counts = current(wired).matrix(start, end)
    if as_json:
        print_json({"since": start, "until": end, "steps": [
            {"from": f, "to": t, "count": n} for (f, t), n in sorted(counts.items())
        ]})
        return
    period = "".join(part for part in (
        f" from {shown(start, settings)}" if start else "", f" up to {shown(end, settings)}" if end else "",
    ))
    console.print(matrix_table(counts, f"Steps from (rows) to (columns){period}"))


@command("audit")
def audit(
    client: str,
    after: Annotated[int, typer.Option("--after", help="Show entries after this version")] = 0,
    limit: Annotated[int | None, typer.Option("--limit")] = None,
    as_json: JsonOption = False,
    purpose: PurposeOption = None,
    actor: ActorOption = None,
    role: RoleOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Every recorded event of a client: who recorded it, clinical and recorded time, corrections beside."""
    with continuum(database_url, actor=actor, role=role) as wired:
        reads = current(wired)
        entries = reads.audit(client, reader(wired, purpose), after=after, limit=limit)
        journey_id = reads.journey_id(client)
    if as_json:
        print_json({"client": client, "journey_id": str(journey_id), "entries": [e.as_json() for e in entries]})
        return
    settings = wired.settings
    table = Table("#", "event", heading("occurred", settings), heading("recorded", settings), "by", "details",
                  title=f"Audit trail of {client}")
    for entry in entries:
        table.add_row(
            str(entry.version), entry.event_type, shown(entry.occurred_at, settings, label=False),
            shown(entry.recorded_at, settings, seconds=True, label=False), f"{entry.actor_id} ({entry.actor_role})",
            _summary(entry.details),
        )
        for fix in entry.corrections:
            label = "voided" if fix.event_type == "EntryVoided" else "corrected"
            table.add_row(
                "", f"[yellow]↳ {label} by #{fix.version}[/yellow]", "", shown(fix.recorded_at, settings, seconds=True, label=False),
                f"{fix.actor_id} ({fix.actor_role})", correction_text(fix.details),
            )
    console.print(table)


def correction_text(details: dict[str, Any]) -> str:
    if "voided_version" in details:
        return f"entered in error: {details['reason']}"
    return f"{details['field']}: {details['previous_value']} → {details['corrected_value']} ({details['reason']})"


def _summary(details: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in details.items() if value not in (None, [], {}))[:90]


@command("status")
def status(as_json: JsonOption = False, database_url: DatabaseOption = None) -> None:
    """Each projection's position in the event log and its lag behind the head; the Kafka relay's and its feeds' too."""
    from infra.kafka.positions import RelayPositions

    with continuum(database_url) as wired:
        statuses = wired.runner.status()
        relays = RelayPositions(wired.views)
        relay = relays.status(wired.settings.kafka_topic, wired.runner.head())
        feeds = [relays.status(name, relay.head) for name in sorted(relays.all()) if name.startswith(f"{relay.topic}.to.")]
        where = wired.database.display
    if as_json:
        print_json({"database": where, "projections": [{"name": s.name, "position": s.position, "head": s.head, "lag": s.lag} for s in statuses],  # noqa: E501
                    "relay": relay.as_json(), "feeds": [feed.as_json() for feed in feeds]})
        return
    table = Table("projection", "position", "head", "lag", title=f"Projections in {where}")
    for s in statuses:
        table.add_row(s.name, str(s.position), str(s.head), str(s.lag))
    for r in (relay, *feeds):  # a recipient's feed: <topic>.to.<recipient>
        table.add_row(f"kafka relay → {r.topic}", str(r.position), str(r.head), str(r.lag))
    console.print(table)
