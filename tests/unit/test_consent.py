"""42 CFR Part 2 consents in the journey: granted, revoked, expired, voided; a consent never moves a client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import get_args

import pytest

from domain.consent import ALL, RECORD_KINDS, ConsentPurpose
from domain.journey import ClientJourney
from domain.values import Actor
from infra.config import Settings
from services.bootstrap import Continuum, bootstrap
from services.commands import RecordKind, parse_command

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
CLINICIAN = Actor("dr-ames", "clinician")


@pytest.fixture
def wired() -> Iterator[Continuum]:
    continuum = bootstrap(Settings(database_url="sqlite:///:memory:"), clock=lambda: NOW)
    yield continuum
    continuum.close()


def line(client: str, command: str, when: str, **fields: object) -> dict[str, object]:
    return {"command": command, "client": client, "occurred_at": f"2025-{when}T09:00:00+00:00", **fields}


def run(wired: Continuum, *lines: dict[str, object]) -> list[str | None]:
    return [None if (o := wired.journeys.execute(parse_command(data), CLINICIAN)).error is None else str(o.error) for data in lines]


def journey(wired: Continuum, client: str) -> ClientJourney:
    found: ClientJourney = wired.app.repository.get(ClientJourney.create_id(client))
    return found


GRANT = {"consent_id": "CF-1", "recipient": "County Probation", "purpose": "named",
         "purpose_text": "court-ordered treatment compliance", "scope": ["episodes", "drug_tests"], "expires_on": "2025-12-31"}


def test_the_record_kinds_are_one_vocabulary():
    assert set(get_args(RecordKind)) == {ALL, *RECORD_KINDS}


def test_a_consent_is_granted_revoked_and_does_not_move_the_client(wired):
    assert run(
        wired,
        line("A-1", "register", "01-02", site="north"),
        line("A-1", "admit", "01-03", level="iop", site="north", track="day"),
        line("A-1", "grant_consent", "01-04", **GRANT),
    ) == [None, None, None]
    record = journey(wired, "A-1")
    assert record.level is not None
    assert record.level.value == "2.1"
    assert record.moved_at == datetime(2025, 1, 3, 9, tzinfo=UTC)
    [consent] = record.consents()
    assert consent.purpose is ConsentPurpose.NAMED
    assert consent.scope == ("episodes", "drug_tests")
    assert consent.expires_on == date(2025, 12, 31)
    at = datetime(2025, 2, 1, tzinfo=UTC)
    assert consent.covers("County Probation", at, ["drug_tests"])
    assert not consent.covers("County Probation", at, ["sessions"])
    assert not consent.covers("County Probation", at, [ALL])
    assert not consent.covers("Someone Else", at, ["drug_tests"])
    assert not consent.covers("County Probation", at, ["drug_tests"], ConsentPurpose.TREATMENT)
    assert not consent.covers("County Probation", datetime(2026, 1, 1, tzinfo=UTC), ["drug_tests"])  # expired
    assert not consent.covers("County Probation", datetime(2025, 1, 1, tzinfo=UTC), ["drug_tests"])  # before the grant
    # a discharge dated before the consent is not held by it: the consent belongs to no stay
    assert run(wired, line("A-1", "discharge", "01-03", reason="completed")) == [None]
    assert run(wired, line("A-1", "revoke_consent", "03-01", consent_id="CF-1")) == [None]
    [consent] = journey(wired, "A-1").consents()
    assert consent.revoked_at == datetime(2025, 3, 1, 9, tzinfo=UTC)
    assert consent.covers("County Probation", datetime(2025, 2, 28, tzinfo=UTC), ["drug_tests"])
    assert not consent.covers("County Probation", datetime(2025, 3, 1, 9, tzinfo=UTC), ["drug_tests"])


def test_consent_rules(wired):
    run(wired, line("A-1", "register", "01-02", site="north"), line("A-1", "grant_consent", "01-04", **GRANT))
    errors = run(
        wired,
        line("A-1", "grant_consent", "01-05", **GRANT),
        line("A-1", "grant_consent", "01-05", **{**GRANT, "consent_id": "CF-2", "purpose_text": None}),
        line("A-1", "grant_consent", "01-05", **{**GRANT, "consent_id": "CF-3", "expires_on": "2025-01-01"}),
        line("A-1", "revoke_consent", "01-05", consent_id="CF-9"),
        line("A-1", "revoke_consent", "01-03", consent_id="CF-1"),
        line("A-1", "grant_consent", "01-05", **{**GRANT, "consent_id": "CF-4", "purpose": "treatment", "scope": ["all", "sessions"]}),
        line("A-1", "revoke_consent", "01-06", consent_id="CF-1"),
        line("A-1", "revoke_consent", "01-07", consent_id="CF-1"),
    )
    assert "already recorded" in str(errors[0])
    assert "named purpose needs its text" in str(errors[1])
    assert "cannot expire before it is granted" in str(errors[2])
    assert "no such consent" in str(errors[3])
    assert "cannot precede its grant" in str(errors[4])
    assert errors[5] is None
    assert errors[6] is None
    assert "already revoked" in str(errors[7])
    consents = {c.consent_id: c for c in journey(wired, "A-1").consents()}
    assert consents["CF-4"].scope == (ALL,)
    with pytest.raises(ValueError, match="scope"):
        parse_command(line("A-1", "grant_consent", "01-05", **{**GRANT, "scope": ["everything"]}))


def test_a_voided_grant_covers_nothing(wired):
    run(wired, line("A-1", "register", "01-02", site="north"), line("A-1", "grant_consent", "01-04", **GRANT))
    assert run(wired, line("A-1", "void", "01-05", versions=[2], reason="signed by the wrong client")) == [None]
    [consent] = journey(wired, "A-1").consents()
    assert consent.voided
    assert not consent.in_force(datetime(2025, 2, 1, tzinfo=UTC))
    assert "no such consent" in str(run(wired, line("A-1", "revoke_consent", "01-06", consent_id="CF-1"))[0])


def test_a_deceased_clients_record_may_be_consented_by_a_representative(wired):
    assert run(
        wired,
        line("A-1", "register", "01-02", site="north"),
        line("A-1", "admit", "01-03", level="iop", site="north", track="day"),
        line("A-1", "discharge", "02-01", reason="died"),
        line("A-1", "grant_consent", "03-01", **GRANT),
    ) == [None, None, None, None]
    assert "before the client's registration" in str(run(wired, line("A-2", "register", "03-01", site="north"),
                                                          line("A-2", "grant_consent", "02-01", **GRANT))[1])
