"""What the feed tests share: a recorded-time clock the tests set (the library stamps each event with the wall clock
when it is recorded; a feed decides by that time), and command lines of a small history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from eventsourcing.domain import CanCreateTimestamp

from domain.journey import ClientJourney
from domain.values import Actor
from services.commands import parse_command

CLINICIAN = Actor("dr-ames", "clinician")
HIE = "State HIE"
PROBATION = "County Probation"


class RecordedClock:
    """The recorded time (`timestamp`) of the events recorded while it is installed: `at` until moved."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> RecordedClock:
    clock = RecordedClock(datetime(2026, 11, 24, 13, 0, tzinfo=UTC))
    monkeypatch.setattr(CanCreateTimestamp, "create_timestamp", staticmethod(clock))
    return clock


def line(client: str, command: str, when: str, **fields: Any) -> dict[str, Any]:
    """A command line dated `when` (MM-DD of 2026, 09:00 UTC)."""
    return {"command": command, "client": client, "occurred_at": f"2026-{when}T09:00:00+00:00", **fields}


def grant(client: str, when: str, consent_id: str, recipient: str, scope: list[str], expires_on: str | None = None) -> dict[str, Any]:
    return line(client, "grant_consent", when, consent_id=consent_id, recipient=recipient, purpose="treatment",
                purpose_text=None, scope=scope, expires_on=expires_on)


def admitted(client: str, when: str = "10-01") -> list[dict[str, Any]]:
    return [line(client, "register", when, site="north", birth_year=1990, sex="female"),
            line(client, "admit", when, level="2.1", site="north", track="evening")]


def session(client: str, when: str, number: int) -> dict[str, Any]:
    return line(client, "attend_session", when, session_id=f"{client}-S{number}", minutes=180, kind="group")


def run(service: Any, *lines: dict[str, Any]) -> None:
    for data in lines:
        outcome = service.execute(parse_command(data), CLINICIAN)
        assert outcome.ok, f"{data}: {outcome.error}"


def journey_id(client: str) -> Any:
    return ClientJourney.create_id(client)
