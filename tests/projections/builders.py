"""Small hand-built histories for the projection and integration tests.

Commands are written as the JSON lines the importer reads (explicit ids, ISO times in 2026 before
"today", 2026-11-24), parsed with `parse_command` and sent through the real `JourneyService`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from domain.journey import ClientJourney
from domain.values import Actor
from projections.catalogue import all_projections
from services.bootstrap import Continuum
from services.commands import parse_command
from services.journeys import Outcome

INTAKE = Actor("intake-3", "intake")
CLINICIAN = Actor("dr-ames", "clinician")
LAB = Actor("lab-1", "lab")


def t(text: str) -> datetime:
    """An aware datetime from ISO text (`Z` accepted)."""
    return datetime.fromisoformat(text)


def utc_text(text: str) -> str:
    """The fixed-width UTC text the projections store for a moment."""
    return t(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def jid(client_ref: str) -> Any:
    return ClientJourney.create_id(client_ref)


def line(command_id: str, command: str, client: str, occurred_at: str, **fields: Any) -> dict[str, Any]:
    return {"id": command_id, "command": command, "client": client, "occurred_at": occurred_at, **fields}


def send(wired: Continuum, *lines: dict[str, Any], actor: Actor = CLINICIAN) -> list[Outcome]:
    """Execute the lines one by one; each must record at least one event."""
    outcomes = []
    for data in lines:
        outcome = wired.service.execute(parse_command(data), actor)
        assert outcome.ok, f"{data['id']}: {outcome.error}"
        assert outcome.events, f"{data['id']}: recorded nothing"
        outcomes.append(outcome)
    return outcomes


def register(wired: Continuum, ref: str, when: str, site: str, **fields: Any) -> Outcome:
    return send(wired, line(f"{ref}:register", "register", ref, when, site=site, **fields), actor=INTAKE)[0]


def admit(wired: Continuum, ref: str, when: str, level: str, site: str, track: str | None = None, **fields: Any) -> Outcome:
    extra = {"track": track} if track else {}
    return send(wired, line(f"{ref}:admit:{when}", "admit", ref, when, level=level, site=site, **extra, **fields))[0]


def step(wired: Continuum, ref: str, when: str, direction: str, to: str, reason: str, **fields: Any) -> Outcome:
    return send(wired, line(f"{ref}:{direction}:{when}", direction, ref, when, to_level=to, reason=reason, **fields))[0]


def discharge(wired: Continuum, ref: str, when: str, reason: str = "completed") -> Outcome:
    return send(wired, line(f"{ref}:discharge:{when}", "discharge", ref, when, reason=reason))[0]


def alumni(wired: Continuum, ref: str, when: str, program: str = "alumni") -> Outcome:
    return send(wired, line(f"{ref}:alumni:{when}", "enrol_alumni", ref, when, program=program))[0]


def correct(wired: Continuum, ref: str, version: int, field: str, value: Any, when: str, reason: str = "mistyped") -> Outcome:
    return send(
        wired,
        line(f"{ref}:correct:{version}:{field}", "correct", ref, when, corrects_version=version, field=field,
             value=value, reason=reason),
    )[0]


def build_clinic(wired: Continuum) -> None:
    """Six clients over 2026 (versions in brackets).

    C-1 north: IOP (2.1) evening from 02-01 09:00Z [v2]; stepped down to OP (1), still evening, 06-01 09:00Z [v3]
    C-2 south: residential 3.5 from 03-10 12:00Z [v2]
    C-3 north: PHP (2.5) day from 04-01 08:00Z [v2]; discharged (completed) 07-01 08:00Z [v3]
    C-4 north: IOP evening from 09-01 20:00+02:00 = 18:00Z [v2]
    C-5 north: IOP day from 08-15 09:00Z [v2]
    C-6 north: registered only, never admitted
    """
    for ref, site in (("C-1", "north"), ("C-2", "south"), ("C-3", "north"), ("C-4", "north"), ("C-5", "north"),
                      ("C-6", "north")):
        register(wired, ref, "2026-01-05T10:00:00Z", site, birth_year=1985, sex="unknown")
    admit(wired, "C-1", "2026-02-01T09:00:00Z", "2.1", "north", "evening")
    admit(wired, "C-2", "2026-03-10T12:00:00Z", "3.5", "south")
    admit(wired, "C-3", "2026-04-01T08:00:00Z", "2.5", "north", "day")
    step(wired, "C-1", "2026-06-01T09:00:00Z", "step_down", "1", "progress")
    discharge(wired, "C-3", "2026-07-01T08:00:00Z")
    admit(wired, "C-5", "2026-08-15T09:00:00Z", "2.1", "north", "day")
    admit(wired, "C-4", "2026-09-01T20:00:00+02:00", "2.1", "north", "evening")


def build_mixed_history(wired: Continuum, *, catch_up_between: bool = False) -> None:
    """The clinic plus detox, alumni, readmission, late events and corrections of every kind the
    projections handle. With `catch_up_between`, the projections follow along (as live ones do)."""

    def follow() -> None:
        if catch_up_between:
            wired.runner.catch_up()

    build_clinic(wired)
    follow()
    # D-1: detox pathway to alumni, then readmitted
    register(wired, "D-1", "2026-01-10T10:00:00Z", "east")
    send(wired, line("D-1:detox", "start_detox", "D-1", "2026-02-01T08:00:00Z", level="3.7-WM", site="east",
                     substances=["alcohol"]))
    send(wired, line("D-1:detox-done", "complete_detox", "D-1", "2026-02-05T08:00:00Z"))
    step(wired, "D-1", "2026-02-05T12:00:00Z", "step_down", "3.5", "detox complete")
    follow()
    step(wired, "D-1", "2026-03-15T12:00:00Z", "step_down", "2.1", "residential goals met", track="evening")
    discharge(wired, "D-1", "2026-05-01T10:00:00Z")
    enrolment = alumni(wired, "D-1", "2026-05-02T10:00:00Z").events[0].version
    follow()
    send(wired, line("D-1:activity", "attend_alumni_activity", "D-1", "2026-06-02T10:00:00Z", activity="picnic"))
    admit(wired, "D-1", "2026-09-01T09:00:00Z", "2.5", "east", "day")
    # corrections: an admission's site and track, a step's time and reason, a discharge's and an enrolment's
    # time, a registration's site
    correct(wired, "C-5", 2, "site", "south", "2026-11-20T10:00:00Z")
    correct(wired, "C-5", 2, "track", "evening", "2026-11-20T10:05:00Z")
    follow()
    correct(wired, "C-1", 3, "occurred_at", "2026-06-10T09:00:00+00:00", "2026-11-20T11:00:00Z")
    correct(wired, "C-1", 3, "reason", "met goals", "2026-11-20T11:05:00Z")
    correct(wired, "C-3", 3, "occurred_at", "2026-07-03T08:00:00+00:00", "2026-11-20T12:00:00Z")
    correct(wired, "D-1", enrolment, "occurred_at", "2026-05-03T10:00:00+00:00", "2026-11-20T12:05:00Z")
    correct(wired, "D-1", 1, "site", "east wing", "2026-11-20T12:10:00Z")  # a registration: census ignores it
    # sessions and a late-arriving discharge recorded today, 10 days after it happened
    send(wired, line("C-4:s-1", "attend_session", "C-4", "2026-09-02T18:00:00Z", session_id="s-1", minutes=180))
    send(wired, line("C-4:s-2", "miss_session", "C-4", "2026-09-03T18:00:00Z", session_id="s-2", excused=True))
    follow()
    discharge(wired, "C-2", "2026-11-14T09:00:00Z", reason="transferred")
    step(wired, "C-4", "2026-10-01T18:00:00Z", "step_up", "2.5", "relapse")
    follow()


def table_rows(wired: Continuum, table: str) -> list[tuple[Any, ...]]:
    """Every row of a table, in a total order (NULLs first in each column)."""
    with wired.views.transaction() as cursor:
        cursor.execute(f"SELECT * FROM {table}")
        rows = [tuple(row) for row in cursor.fetchall()]
    return sorted(rows, key=lambda row: tuple((value is not None, str(value)) for value in row))


def dump(wired: Continuum, names: Iterable[str] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Full, ordered dumps of the tables of the named projections (all by default)."""
    chosen = set(names) if names is not None else None
    return {
        table: table_rows(wired, table)
        for projection in all_projections()
        if chosen is None or projection.name in chosen
        for table in projection.tables
    }
