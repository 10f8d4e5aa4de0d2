"""Commands for auditors: replay a record as it stood, verify nothing was changed, list who read
what, and export a self-contained package."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.table import Table  # typer's help loads it anyway

from services.cli.base import (
    EXIT_REFUSED,
    ActorOption,
    DatabaseOption,
    JsonOption,
    PurposeOption,
    RoleOption,
    UsageError,
    command,
    console,
    continuum,
    errors,
    heading,
    now,
    open_store,
    parse_moment,
    print_json,
    reader,
    settings_for,
    shown,
    writable,
)
from services.cli.reads import current
from services.moments import recording_clock

if TYPE_CHECKING:
    from domain.replay import Replay
    from services.checkpoints import Checkpoint, CheckpointReport
    from services.verification import StoreReport


@command("replay")
def replay(
    client: str,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Clinical time: what had happened by then, as known now")] = None,
    as_recorded: Annotated[str | None, typer.Option("--as-recorded", help="Recorded time: what the record said then")] = None,
    as_json: JsonOption = False,
    purpose: PurposeOption = None,
    actor: ActorOption = None,
    role: RoleOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """A client's state and events at a clinical time and/or as recorded at a time, from the store."""
    settings = settings_for(database_url, actor=actor, role=role)
    for text, name in ((as_of, "--as-of"), (as_recorded, "--as-recorded")):
        if text:
            parse_moment(text, settings.timezone, name=name)  # a mistake is said before the store is opened
    with open_store(settings) as wired:
        clock = now(wired)  # a replay is of what has happened: nothing after now; today means so far
        of = parse_moment(as_of, settings.timezone, now=clock, name="--as-of") if as_of else None
        recorded = parse_moment(as_recorded, settings.timezone, now=recording_clock(), name="--as-recorded") if as_recorded else None
        current(wired)
        result = wired.audit.replay(client, reader(wired, purpose), as_of=of, as_recorded=recorded)
    if as_json:
        print_json({"client": client, "as_of": of, "as_recorded": recorded, **_replay_json(result)})
        return
    state = result.state
    console.print(
        f"[b]{client}[/b] {'as of ' + shown(of, settings) if of else 'now'}"
        f"{', as recorded at ' + shown(recorded, settings) if recorded else ''}: "
        f"{state.status}, level {state.level or '-'} at {state.site or '-'} ({state.track or '-'})"
        f"{', since ' + shown(state.level_since, settings) if state.level_since else ''}; episodes {state.episodes};"
        f" sessions {state.sessions_attended} attended / {state.sessions_missed} missed;"
        f" specimens awaiting results {len(state.pending_specimens)}; results {len(state.results)}",
        highlight=False,
    )
    table = Table("#", "event", heading("occurred", settings), heading("recorded", settings), "by", "corrections",
                  title="Events, in clinical order")
    for entry in result.entries:
        fixes = "; ".join(
            f"#{c.version} {c.field}: {c.previous_value} → {c.corrected_value} by {c.recorded_by['id']}"
            f" at {shown(c.recorded_at, settings)}"
            for c in entry.corrections
        )
        if entry.voided is not None:
            void = entry.voided
            fixes = "; ".join(filter(None, [fixes, f"VOIDED by #{void.version} ({void.reason}) by {void.recorded_by['id']}"]))
        table.add_row(str(entry.version), entry.type, shown(entry.occurred_at, settings, label=False),
                      shown(entry.recorded_at, settings, label=False),
                      entry.recorded_by["id"], fixes)
    console.print(table)


def _replay_json(result: Replay) -> dict[str, Any]:
    return {"state": asdict(result.state), "entries": [asdict(entry) for entry in result.entries]}


@command("verify")
def verify(
    client: Annotated[str | None, typer.Option("--client", help="Check one client's chain only")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Check an exported audit package, offline")] = None,
    expect_head: Annotated[str | None, typer.Option("--expect-head", help="The chain head you kept; must still match")] = None,
    checkpoints: Annotated[
        Path | None, typer.Option("--checkpoints", help="Signed checkpoints (`continuum checkpoint --out`): the store must hold each"),
    ] = None,
    as_json: JsonOption = False,
    database_url: DatabaseOption = None,
) -> None:
    """Recompute the hash chains of the events and of the access log; report the first broken link."""
    from domain.errors import UnknownClient

    if file is not None:
        _verify_file(file, as_json=as_json)
        return
    signed: list[tuple[int, Checkpoint]] = []
    if checkpoints is not None:
        from services.cli.checkpoints import load_checkpoints

        if client:
            msg = "--checkpoints checks the whole log: give it without --client"
            raise UsageError(msg)
        signed, problem = load_checkpoints(checkpoints, settings_for(database_url))
        if problem is not None:  # a forged or altered checkpoint: said before the store is read
            _tampered(problem, as_json=as_json, checked=0)
    with continuum(database_url, decode_check=False) as wired:  # hashes need no key and no decodable row
        report = wired.audit.verify(client, positions={c.position for _, c in signed}, seqs={c.access_seq for _, c in signed})
    events = report.events
    broken = str(report.broken) if report.broken else None
    if client and events.checked == 0 and broken is None:
        raise UnknownClient(client)
    if broken is None and expect_head and expect_head != events.head:
        broken = f"the chain head {events.head} is not the head you kept ({expect_head}): history was rewritten"
    held = None
    if broken is None and checkpoints is not None:
        from services.checkpoints import check_store

        held = check_store(signed, report)
        broken = held.problem
    _show(report, broken, held, client=client, as_json=as_json, with_checkpoints=checkpoints is not None)
    if broken is not None:
        raise typer.Exit(EXIT_REFUSED)


def _show(
    report: StoreReport, broken: str | None, held: CheckpointReport | None, *, client: str | None, as_json: bool,
    with_checkpoints: bool,
) -> None:
    events, access = report.events, report.access
    if as_json:
        extra = {"checkpoints_checked": held.checked if held else 0} if with_checkpoints else {}
        print_json({"ok": broken is None, "events_checked": events.checked, "journeys": events.journeys,
                    "chain_head": events.head, "access_records_checked": access.checked, "access_head": access.head,
                    **extra, "broken": broken})
    elif broken is None:
        scope = f"client {client}'s" if client else "the"
        console.print(f"intact: {events.checked} events in {events.journeys} journeys and {access.checked} access records checked")
        console.print(f"{scope} chain head: {events.head}\naccess log head: {access.head}", highlight=False)
        if held is not None and held.latest is not None:
            console.print(f"checkpoints: {held.checked} held; the latest, signed at {held.latest.at}: event #{held.latest.position},"
                          f" access record {held.latest.access_seq}", highlight=False)
    else:
        errors.print(f"[red]TAMPERED:[/red] {escape(broken)}", highlight=False, soft_wrap=True)
        if report.broken is not None:
            errors.print(f"({events.checked} events checked before the broken link)")
        else:
            errors.print(f"({events.checked} events and {access.checked} access records checked: each chain is consistent,"
                         " but not the history that was kept)")


def _tampered(problem: str, *, as_json: bool, checked: int) -> NoReturn:
    if as_json:
        print_json({"ok": False, "events_checked": checked, "broken": problem})
    else:
        errors.print(f"[red]TAMPERED:[/red] {escape(problem)}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_REFUSED)


PACKAGE_FIELDS = ("format", "client", "journey_id", "events", "journey_head")
EVENT_FIELDS = (
    "position", "version", "type", "topic", "occurred_at", "recorded_at", "recorded_by", "command_id", "payload",
    "stored_state", "row_hash", "journey_link",
)
ACCESS_FIELDS = ("seq", "at", "actor_id", "role", "client_ref", "what", "purpose", "prev_hash", "hash")


def package_shape_problem(package: object) -> str | None:  # noqa: PLR0911 - any JSON; one check after another
    """Why a JSON document cannot be checked as an audit package (wrong kind, or parts missing), or None."""
    from services.audit_package import FORMAT

    if not isinstance(package, dict):
        kind = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(package), "null")
        return f"not a {FORMAT}: the file holds a JSON {kind}, not an object"
    if package.get("format") != FORMAT:
        return f"not a {FORMAT} (format {package.get('format')!r})"
    missing = [name for name in PACKAGE_FIELDS if name not in package]
    if missing:
        return f"incomplete audit package: no {', '.join(missing)}"
    if not isinstance(package["events"], list) or not isinstance(package.get("access_records", []), list):
        return "incomplete audit package: events and access_records must be lists"
    for number, event in enumerate(package["events"], start=1):
        absent = [name for name in EVENT_FIELDS if not isinstance(event, dict) or name not in event]
        if absent:
            return f"incomplete audit package: event {number} has no {', '.join(absent)}"
    for number, record in enumerate(package.get("access_records", []), start=1):
        if not isinstance(record, dict) or sorted(record) != sorted(ACCESS_FIELDS):
            return f"incomplete audit package: access record {number} does not have exactly {', '.join(ACCESS_FIELDS)}"
    return None


def _verify_file(file: Path, *, as_json: bool) -> None:
    from services.audit_package import PackageReport, verify_package

    try:
        package = json.loads(file.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as unreadable:
        msg = f"cannot read audit package {file}: {unreadable}"
        raise UsageError(msg) from None
    problem = package_shape_problem(package)
    if problem is None:
        try:
            report = verify_package(package)
        except (KeyError, TypeError, ValueError, AttributeError) as malformed:  # a value of the wrong kind
            problem = f"malformed audit package: {type(malformed).__name__}: {malformed}"
    if problem is not None:
        client = str(package.get("client", "?")) if isinstance(package, dict) else "?"
        report = PackageReport(client, 0, "", [problem])
    if as_json:
        print_json({"ok": report.ok, "client": report.client, "events_checked": report.events,
                    "journey_head": report.journey_head, "problems": report.problems})
    elif report.ok:
        console.print(f"intact: {report.events} events of {report.client}; journey head {report.journey_head}", highlight=False)
    else:
        for problem in report.problems:
            errors.print(f"[red]TAMPERED:[/red] {problem}", highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(EXIT_REFUSED)


@command("access-log")
def access_log(
    client: Annotated[str | None, typer.Option("--client")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only reads by this actor")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only reads at or after this date or time")] = None,
    as_json: JsonOption = False,
    database_url: DatabaseOption = None,
) -> None:
    """Who read which client's record, what, when and why."""
    settings = settings_for(database_url)
    start = parse_moment(since, settings.timezone, end_of_day=False, name="--since") if since else None
    with open_store(settings) as wired:
        records = wired.audit.access_log(client_ref=client, actor_id=actor, since=start)
    if as_json:
        print_json({"records": [record.as_json() for record in records]})
        return
    table = Table("#", heading("when", settings), "who", "client", "what", "purpose", title="Access log")
    for r in records:
        table.add_row(str(r.seq), shown(r.at, settings, seconds=True, label=False), f"{r.actor_id} ({r.role})", r.client_ref, r.what,
                      r.purpose or "")
    console.print(table)


@command("export-audit")
def export_audit(
    client: str,
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON package")],
    purpose: PurposeOption = None,
    actor: ActorOption = None,
    role: RoleOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Write a client's events, hash links and access records as one self-contained JSON document."""
    writable(out, "--out")  # before the export is read and recorded in the access log
    with continuum(database_url, actor=actor, role=role) as wired:
        current(wired)
        package = wired.audit.export(client, reader(wired, purpose))
    try:
        out.write_text(json.dumps(package, indent=2, default=str), encoding="utf-8")
    except OSError as problem:
        msg = f"cannot write {out}: {problem.strerror or problem}"
        raise UsageError(msg) from None
    console.print(f"wrote {len(package['events'])} events and {len(package['access_records'])} access records of {client}"
                  f" to {out}; journey head {package['journey_head']}", highlight=False)
