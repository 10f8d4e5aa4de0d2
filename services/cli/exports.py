"""Disclosures under 42 CFR Part 2: `continuum export teds|fhir` for a recipient, and the accounting
of disclosures, `continuum disclosures`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.cli.base import (
    ActorOption,
    DatabaseOption,
    JsonOption,
    RoleOption,
    UsageError,
    app,
    command,
    console,
    continuum,
    heading,
    one_line_errors,
    parse_moment,
    print_json,
    shown,
    writable,
)

export_app = typer.Typer(help="Exports for a recipient (a Part 2 disclosure: consented clients only, recorded).", no_args_is_help=True)
app.add_typer(export_app, name="export")

RecipientOption = Annotated[str, typer.Option("--recipient", help="Who receives the export, as named in the clients' consents")]
ConsentPurposeOption = Annotated[
    str | None,
    typer.Option("--purpose", help="treatment, payment, health_care_operations or named: only consents for it count"),
]


def _purpose(value: str | None) -> object:
    from domain.consent import ConsentPurpose

    if value is None:
        return None
    try:
        return ConsentPurpose(value)
    except ValueError:
        known = ", ".join(p.value for p in ConsentPurpose)
        msg = f"--purpose {value!r} is not a consent purpose (known: {known})"
        raise UsageError(msg) from None


def teds(
    out: Annotated[Path, typer.Option("--out", help="The CSV file to write (the notice goes beside it, FILE.notice.txt)")],
    recipient: RecipientOption,
    since: Annotated[str | None, typer.Option("--since", help="Stays ended from (date or ISO time)")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Stays ended before (date or ISO time)")] = None,
    purpose: ConsentPurposeOption = None,
    as_json: JsonOption = False,
    actor: ActorOption = None,
    role: RoleOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """The TEDS-D discharge extract: one record per service-stay end, in the codebook's codes (-9: not recorded)."""
    from services.exports import teds_extract

    writable(out, "--out")
    wanted = _purpose(purpose)
    with continuum(database_url, actor=actor, role=role) as wired:
        zone = wired.settings.timezone
        start = parse_moment(since, zone, end_of_day=False) if since else None
        end = parse_moment(until, zone, end_of_day=False) if until else None
        report = teds_extract(wired, out, recipient=recipient, purpose=wanted, since=start, until=end)  # type: ignore[arg-type]
    if as_json:
        print_json(report.as_json())
        return
    console.print(
        f"{report.records} TEDS-D records of {report.clients} clients written to {out} for {recipient}"
        f" ({report.without_consent} clients left out: no consent in force covers it);"
        f" {len(report.disclosures)} disclosures recorded; the §2.32 notice in {report.files[-1]}",
    )


export_app.command("teds")(one_line_errors(teds))


def fhir(
    out: Annotated[Path, typer.Option("--out", help="The folder for the bundles (one <journey id>.json per client)")],
    client: Annotated[str | None, typer.Argument(help="The client reference (or --all)")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every client")] = False,
    recipient: Annotated[str | None, typer.Option("--recipient", help="A disclosure to this recipient: consented clients only")] = None,
    purpose: ConsentPurposeOption = None,
    as_json: JsonOption = False,
    actor: ActorOption = None,
    role: RoleOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """FHIR R4 Bundles: Patient, EpisodeOfCare, Encounter, Observation, CarePlan, Goal, Consent, each with the DS4P labels."""
    from services.cli.base import reader
    from services.exports import fhir_export

    if (client is None) == (not every):
        msg = "give a client reference or --all (not both)"
        raise UsageError(msg)
    if out.exists() and not out.is_dir():
        msg = f"--out {out} is a file: give a folder"
        raise UsageError(msg)
    if not out.parent.is_dir():
        msg = f"--out {out}: folder {out.parent} does not exist"
        raise UsageError(msg)
    wanted = _purpose(purpose)
    with continuum(database_url, actor=actor, role=role) as wired:
        report = fhir_export(wired, out, None if every else [str(client)], reader(wired, "FHIR export"),
                             recipient=recipient, purpose=wanted)  # type: ignore[arg-type]
    if as_json:
        print_json(report.as_json())
        return
    to = f" for {recipient} ({report.without_consent} clients left out: no consent in force for it;"
    to += f" {len(report.disclosures)} disclosures recorded; the §2.32 notice in {out / 'NOTICE.txt'})" if recipient else ""
    console.print(f"{report.records} FHIR bundles written to {out}{to if recipient else ''} in {report.seconds:.1f} s")


export_app.command("fhir")(one_line_errors(fhir))


@command("disclosures")
def disclosures(
    client: Annotated[str | None, typer.Option("--client", help="Only this client's disclosures")] = None,
    recipient: Annotated[str | None, typer.Option("--recipient", help="Only to this recipient")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Disclosed from (date or ISO time; default: everything)")] = None,
    as_json: JsonOption = False,
    actor: ActorOption = None,
    role: RoleOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """The accounting of disclosures (42 CFR 2.24, 2.25): to whom, when, what, under which consent. Never deleted."""
    from rich.table import Table

    from services.disclosures import Disclosures

    with continuum(database_url, actor=actor, role=role) as wired:
        start = parse_moment(since, wired.settings.timezone, end_of_day=False) if since else None
        rows = Disclosures(wired.views).query(client_ref=client, recipient=recipient, since=start)
    if as_json:
        print_json({"disclosures": [r.as_json() for r in rows]})
        return
    settings = wired.settings
    table = Table(heading("disclosed", settings), "client", "recipient", "purpose", "consent", "what", "by",
                  title=f"Disclosures ({len(rows)})")
    for r in rows:
        table.add_row(shown(r.at, settings, label=False), r.client_ref, r.recipient, r.purpose, r.consent_id, r.what,
                      f"{r.actor_id} ({r.role})")
    console.print(table)
