"""The application layer on an in-memory store with a fixed clock: what the CLI and the API call,
through the one object the composition root builds (`bootstrap`), in about a second."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from domain import errors
from domain.values import Actor
from infra.config import Settings
from services.bootstrap import Continuum, bootstrap
from services.commands import parse_command
from services.importer import import_lines
from services.reads import Reader
from services.tokens import Role

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
CLINICIAN = Actor("dr-ames", "clinician")
AUDITOR = Reader("aud-1", "auditor", "annual review")


@pytest.fixture
def wired() -> Iterator[Continuum]:
    continuum = bootstrap(Settings(database_url="sqlite:///:memory:"), clock=lambda: NOW)
    yield continuum
    continuum.close()


def line(client: str, command: str, when: str, **fields: object) -> dict[str, object]:
    return {"command": command, "client": client, "occurred_at": f"2025-{when}T09:00:00+00:00", **fields}


def run(wired: Continuum, *lines: dict[str, object], site: str | None = None) -> list[object]:
    outcomes = [wired.journeys.execute(parse_command(data), CLINICIAN, site=site) for data in lines]
    wired.runner.catch_up()
    return outcomes


def test_the_in_memory_store_is_private_to_its_application(wired):
    run(wired, line("A-1", "register", "01-02", site="north"))
    other = bootstrap(Settings(database_url="sqlite:///:memory:"), clock=lambda: NOW)
    try:
        other.runner.catch_up()
        assert other.reads.census().total == 0
        assert other.reads.home_site("A-1") is None
    finally:
        other.close()
    assert wired.reads.home_site("A-1") == "north"


def test_commands_reads_and_a_void_through_the_application(wired):
    run(
        wired,
        line("A-1", "register", "01-02", site="north"),
        line("A-1", "admit", "01-03", level="iop", site="north", track="day", planned_hours_per_week=40),
        line("A-1", "step_down", "03-01", to_level="1", reason="goals met"),
    )
    assert [(c.level, c.clients) for c in wired.reads.census(datetime(2025, 2, 1, tzinfo=UTC)).lines] == [("2.1", 1)]
    # 40 h/week is outside IOP's band, and the step down kept the hours, outside outpatient's band too
    assert [(r.version, r.flag) for r in wired.reads.flags(AUDITOR)] == [(2, "hours_outside_adult_band"), (3, "hours_outside_adult_band")]

    run(wired, line("A-1", "void", "03-02", versions=[3], reason="the step was for another client"))
    assert [(c.level, c.clients) for c in wired.reads.census().lines] == [("2.1", 1)]
    assert [t.kind for t in wired.reads.history("A-1", AUDITOR)] == ["admission"]
    trail = wired.reads.audit("A-1", AUDITOR)
    assert [e.version for e in trail if e.voided] == [3]
    replayed = wired.audit.replay("A-1", AUDITOR, as_of=None, as_recorded=None)
    assert (replayed.state.level, replayed.state.track) == ("2.1", "day")
    assert wired.audit.verify().broken is None
    package = wired.audit.export("A-1", AUDITOR)
    assert wired.audit.verify_package(package).ok
    assert {r.what for r in wired.audit.access_log(client_ref="A-1")} >= {"flags", "history", "export-audit"}


def test_a_clinician_acts_only_on_its_own_sites_clients(wired):
    run(wired, line("A-1", "register", "01-02", site="north"))
    elsewhere = run(wired, line("A-1", "admit", "01-03", level="2.1", site="north", track="day"), site="south")[0]
    assert isinstance(elsewhere.error, errors.UnknownClient)  # another site's client looks like no client
    register_there = run(wired, line("B-1", "register", "01-02", site="north"), site="south")[0]
    assert isinstance(register_there.error, errors.OtherSite)
    own = run(wired, line("A-1", "admit", "01-03", level="2.1", site="north", track="day"), site="north")[0]
    assert own.ok


def test_a_repeated_command_returns_its_first_result(wired):
    data = {**line("A-1", "register", "01-02", site="north"), "id": "intake-1"}
    first, again = run(wired, data, data)
    assert not first.duplicate
    assert again.duplicate
    assert again.events == first.events
    assert first.events[0].position == 1


def test_an_import_holds_and_a_dry_run_records_nothing(wired):
    import json

    lines = [json.dumps(data) for data in (
        line("A-1", "register", "01-02", site="north"),
        line("A-1", "step_up", "01-03", to_level="2.5", reason="x"),  # not admitted: refused
        line("A-1", "admit", "01-04", level="2.1", site="north"),  # held
        line("B-1", "register", "01-02", site="south"),
    )]
    dry = import_lines(wired.journeys, lines, CLINICIAN, dry_run=True)
    assert (dry.applied, len(dry.errors), len(dry.held)) == (2, 1, 1)
    assert wired.runner.head() == 0
    real = import_lines(wired.journeys, lines, CLINICIAN)
    assert (real.applied, len(real.errors), len(real.held)) == (2, 1, 1)
    assert wired.runner.head() == 2


def test_tokens_are_made_found_and_revoked(wired):
    token = wired.tokens.add("wallboard", Role.DASHBOARD, None)
    found = wired.tokens.find(token)
    assert found is not None
    assert (found.name, found.role) == ("wallboard", Role.DASHBOARD)
    wired.tokens.revoke("wallboard")
    assert wired.tokens.find(token) is None
