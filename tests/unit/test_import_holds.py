"""A refused line holds its client's later lines, and `dry_run` reports an import without recording it.

In memory (the library's POPO recorder, with its aggregate cache on), at a fixed clock: every
clinical time is in March 2024 and the service's clock reads 1 June 2024.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from domain.journey import ClientJourney
from domain.values import Actor
from services.commands import parse_command
from services.importer import HeldLine, ImportReport, import_lines
from services.journeys import CareContinuum, JourneyService

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
ACTOR = Actor("dr-ames", "clinician")


def at(day: int, hour: int = 9) -> str:
    return datetime(2024, 3, day, hour, tzinfo=UTC).isoformat()


def register(client: str) -> dict[str, Any]:
    return {"command": "register", "client": client, "occurred_at": at(1), "site": "north"}


def admit(client: str) -> dict[str, Any]:
    return {"command": "admit", "client": client, "occurred_at": at(2), "level": "2.1", "site": "north", "track": "evening"}


def session(client: str, number: int) -> dict[str, Any]:
    return {"command": "attend_session", "client": client, "occurred_at": at(3 + number, 18), "session_id": f"s-{number}"}


def wrong_step(client: str) -> dict[str, Any]:
    """Refused by the journey: a step up to a lower level."""
    return {"command": "step_up", "client": client, "occurred_at": at(10), "to_level": "1", "reason": "use"}


def discharge(client: str) -> dict[str, Any]:
    return {"command": "discharge", "client": client, "occurred_at": at(20), "reason": "completed"}


# The file of the issue: line 5 for C-1042 is refused; its lines 6 and 8 are held, C-2001 goes on.
FILE = [
    register("C-1042"),     # 1
    register("C-2001"),     # 2
    admit("C-1042"),        # 3
    admit("C-2001"),        # 4
    wrong_step("C-1042"),   # 5 refused
    session("C-1042", 1),   # 6 held by 5
    session("C-2001", 1),   # 7
    discharge("C-1042"),    # 8 held by 5
    discharge("C-2001"),    # 9
]


def text(rows: list[dict[str, Any] | str]) -> list[str]:
    return [row if isinstance(row, str) else json.dumps(row) for row in rows]


def new_app() -> CareContinuum:
    return CareContinuum(env={"PERSISTENCE_MODULE": "eventsourcing.popo", "AGGREGATE_CACHE_MAXSIZE": "100"})


@pytest.fixture
def service() -> JourneyService:
    return JourneyService(new_app(), clock=lambda: NOW)


def run(service: JourneyService, rows: list[dict[str, Any] | str], **options: Any) -> ImportReport:
    return import_lines(service, text(rows), ACTOR, **options)


def event_types(service: JourneyService, client: str) -> list[str]:
    stored = service.app.recorder.select_events(ClientJourney.create_id(client))
    return [type(service.app.mapper.to_domain_event(event)).__name__ for event in stored]


def event_count(service: JourneyService) -> int:
    return len(service.app.recorder.select_notifications(start=1, limit=1_000_000))


def cached(service: JourneyService) -> dict[Any, tuple[int, int]]:
    """The journeys in the library's aggregate cache (an LRU cache of links): version, pending events."""
    cache = service.app.repository.cache
    assert cache is not None
    journeys = {key: link[3] for key, link in cache.cache.items()}
    return {key: (journey.version, len(journey.pending_events)) for key, journey in journeys.items()}


# -- holds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [500, 1, 2, 4], ids=lambda size: f"chunk{size}")
def test_a_refused_line_holds_its_clients_later_lines_and_not_others(service, chunk_size):
    report = run(service, FILE, chunk_size=chunk_size)

    assert (report.applied, report.duplicates, report.events) == (6, 0, 6)
    assert [error.line for error in report.errors] == [5]
    assert "step up must raise intensity" in report.errors[0].reason
    assert report.held == [HeldLine(6, 5, "C-1042"), HeldLine(8, 5, "C-1042")]
    assert not report.ok
    assert event_types(service, "C-1042") == ["ClientRegistered", "AdmittedToLevel"]
    assert event_types(service, "C-2001") == ["ClientRegistered", "AdmittedToLevel", "SessionAttended", "Discharged"]


def test_the_held_message_names_the_line_the_refused_line_and_the_client(service):
    report = run(service, FILE)

    assert report.problems()[1:] == [
        "line 6 held: line 5 for C-1042 was refused",
        "line 8 held: line 5 for C-1042 was refused",
    ]
    assert report.problems()[0].startswith("line 5: client C-1042: ")


def test_holds_cross_a_chunk_boundary(service):
    rows = [register("C-1"), admit("C-1"), wrong_step("C-1"), register("C-2"), admit("C-2"), session("C-1", 1)]

    report = run(service, rows, chunk_size=2)  # line 3 is refused in the second chunk, line 6 is in the third

    assert report.held == [HeldLine(6, 3, "C-1")]
    assert report.applied == 4
    assert "SessionAttended" not in event_types(service, "C-1")


def test_a_line_held_after_a_held_line_is_still_attributed_to_the_refused_line(service):
    rows = [register("C-1"), admit("C-1"), wrong_step("C-1"), session("C-1", 1), session("C-1", 2), discharge("C-1")]

    report = run(service, rows, chunk_size=2)

    assert [(held.line, held.held_by) for held in report.held] == [(4, 3), (5, 3), (6, 3)]


def test_an_invalid_line_that_names_its_client_holds_the_clients_later_lines(service):
    rows: list[dict[str, Any] | str] = [
        register("C-1"), register("C-2"),
        {**admit("C-1"), "level": "9.9"},  # 3: invalid, but names C-1
        admit("C-1"), admit("C-2"),
    ]

    report = run(service, rows)

    assert [error.line for error in report.errors] == [3]
    assert report.errors[0].reason.startswith("level: ")
    assert report.held == [HeldLine(4, 3, "C-1")]
    assert event_types(service, "C-2") == ["ClientRegistered", "AdmittedToLevel"]


def test_unreadable_json_holds_nothing(service):
    rows: list[dict[str, Any] | str] = [
        register("C-1"),
        '{"command": "admit", "client": "C-1", ',  # 2: cannot be read, so names no client
        '["admit", "C-1"]',  # 3: not an object
        admit("C-1"),
    ]

    report = run(service, rows)

    assert [error.line for error in report.errors] == [2, 3]
    assert report.held == []
    assert event_types(service, "C-1") == ["ClientRegistered", "AdmittedToLevel"]


@pytest.mark.parametrize("chunk_size", [500, 1])
def test_an_invalid_line_after_a_refused_line_of_its_client_in_the_same_chunk_is_held(service, chunk_size):
    rows: list[dict[str, Any] | str] = [
        register("C-1"), admit("C-1"), wrong_step("C-1"),
        {**session("C-1", 1), "minutes": -5},  # 4: invalid, but line 3 is refused first
        session("C-1", 2),
    ]

    report = run(service, rows, chunk_size=chunk_size)

    assert [error.line for error in report.errors] == [3]
    assert report.held == [HeldLine(4, 3, "C-1"), HeldLine(5, 3, "C-1")]


def test_a_duplicate_of_a_held_client_is_held_too(service):
    assert run(service, [register("C-1"), admit("C-1"), session("C-1", 1)]).ok

    report = run(service, [register("C-1"), wrong_step("C-1"), session("C-1", 1), admit("C-2")])

    assert report.duplicates == 1  # line 1, before the refusal
    assert [error.line for error in report.errors] == [2, 4]  # 4: C-2 was never registered
    assert report.held == [HeldLine(3, 2, "C-1")]  # recorded before, but held: the report does not look


def test_holds_apply_in_the_one_at_a_time_replay_after_a_concurrent_writer(service):
    """The chunk's save meets a concurrent writer (who discharged C-1): the replay, one command at a
    time against the journeys as now stored, refuses C-1's session and holds C-1's later line."""
    assert run(service, [register("C-1"), admit("C-1"), register("C-2"), admit("C-2")]).ok
    save = service.app.save
    other_writer = JourneyService(service.app, clock=lambda: NOW)
    conflicts = []

    def save_meeting_a_writer(*journeys: Any) -> Any:
        if not conflicts:
            conflicts.append(journeys)
            service.app.save = save  # type: ignore[method-assign]
            assert other_writer.execute(parse_command(discharge("C-1")), Actor("other", "clinician")).ok
            service.app.save = save_meeting_a_writer  # type: ignore[method-assign]
            raise IntegrityError
        return save(*journeys)

    service.app.save = save_meeting_a_writer  # type: ignore[method-assign]
    report = run(service, [session("C-1", 1), session("C-2", 1), session("C-1", 2), session("C-2", 2)])

    assert conflicts
    assert [error.line for error in report.errors] == [1]
    assert "discharged" in report.errors[0].reason
    assert report.held == [HeldLine(3, 1, "C-1")]
    assert report.applied == 2
    assert event_types(service, "C-1") == ["ClientRegistered", "AdmittedToLevel", "Discharged"]
    assert event_types(service, "C-2")[-2:] == ["SessionAttended", "SessionAttended"]


def test_the_service_holds_only_when_asked(service):
    commands = [parse_command(row) for row in (register("C-1"), wrong_step("C-1"), admit("C-1"))]

    held = service.check_many(commands, ACTOR, service.new_dry_run(), hold=True)
    not_held = service.check_many(commands, ACTOR, service.new_dry_run())

    assert [(o.ok, o.held_by) for o in held] == [(True, None), (False, None), (False, 1)]
    assert [(o.ok, o.held_by) for o in not_held] == [(True, None), (False, None), (True, None)]


# -- dry run -------------------------------------------------------------------------------------


def real(report: ImportReport) -> ImportReport:
    """A dry run's report as the real run's would read, but for the positions it cannot know."""
    return dataclasses.replace(report, dry_run=False, last_position=0)


@pytest.mark.parametrize("chunk_size", [500, 2])
def test_a_dry_run_records_nothing_and_reports_what_the_import_then_does(service, chunk_size):
    dry = run(service, FILE, chunk_size=chunk_size, dry_run=True)

    assert dry.dry_run
    assert event_count(service) == 0
    assert cached(service) == {}
    done = run(service, FILE, chunk_size=chunk_size)
    assert real(dry) == dataclasses.replace(done, last_position=0)
    assert (done.applied, done.events, event_count(service)) == (6, 6, 6)


def test_a_dry_run_sees_earlier_lines_across_chunks(service):
    rows = [register("C-1"), admit("C-1"), session("C-1", 1), session("C-1", 1), discharge("C-1")]

    report = run(service, rows, chunk_size=1, dry_run=True)

    assert (report.applied, report.duplicates, report.events, report.errors, report.held) == (4, 1, 4, [], [])
    assert event_count(service) == 0


def test_a_dry_run_of_recorded_lines_reports_them_as_duplicates(service):
    assert run(service, FILE[:4]).ok
    before, in_cache = event_count(service), cached(service)

    report = run(service, FILE, dry_run=True)

    assert (report.applied, report.duplicates) == (2, 4)
    assert [error.line for error in report.errors] == [5]
    assert [held.line for held in report.held] == [6, 8]
    assert (event_count(service), cached(service)) == (before, in_cache)


def test_a_dry_run_leaves_no_changed_journey_in_the_cache(service):
    assert run(service, FILE[:4]).ok
    in_cache = cached(service)
    assert len(in_cache) == 2

    run(service, [session("C-1042", 1), session("C-2001", 1), discharge("C-2001")], dry_run=True)

    assert cached(service) == in_cache
    after = run(service, [session("C-1042", 1), session("C-2001", 1), discharge("C-2001")])
    assert (after.applied, after.duplicates, after.events) == (3, 0, 3)
    assert event_types(service, "C-2001")[-2:] == ["SessionAttended", "Discharged"]
