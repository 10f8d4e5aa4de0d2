"""Concurrent writers on one journey, each a separately bootstrapped Continuum (as separate processes
would be) over the same SQLite file or PostgreSQL schema.

Every command is either recorded exactly once or refused with a clear error; nothing is lost,
doubled or recorded at a duplicate version.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from domain import errors
from domain.journey import ClientJourney
from domain.values import Actor
from infra.config import Settings
from services.bootstrap import Continuum, bootstrap
from services.commands import parse_command
from services.journeys import ConcurrencyConflict, Outcome

ACTOR = Actor("dr-ames", "clinician")
WRITERS = 6


@contextmanager
def instances(database_url: str, count: int) -> Iterator[list[Continuum]]:
    opened: list[Continuum] = []
    try:
        opened.extend(bootstrap(Settings(database_url=database_url)) for _ in range(count))
        yield opened
    finally:
        for continuum in opened:
            continuum.close()


def run_together(work: list[Callable[[], Any]]) -> list[Any]:
    """Run each callable in its own thread, released together; return their results in order."""
    barrier = threading.Barrier(len(work))
    results: list[Any] = [None] * len(work)
    problems: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work[index]()
        except BaseException as problem:  # noqa: BLE001 - reported below
            problems.append(problem)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert problems == [], problems
    return results


def stored_events(wired: Continuum, client: str) -> list[Any]:
    """The journey's events as the store holds them (version order), decoded."""
    journey_id = ClientJourney.create_id(client)
    return [wired.app.mapper.to_domain_event(stored) for stored in wired.app.recorder.select_events(journey_id)]


def admitted_client(wired: Continuum, client: str) -> int:
    """Register and admit `client`; returns how many events that recorded (2)."""
    for data in (
        {"id": f"{client}:reg", "command": "register", "client": client, "occurred_at": "2026-11-01T09:00:00Z", "site": "north"},
        {"id": f"{client}:admit", "command": "admit", "client": client, "occurred_at": "2026-11-02T09:00:00Z",
         "level": "2.1", "site": "north", "track": "evening"},
    ):
        assert wired.service.execute(parse_command(data), ACTOR).ok
    return 2


def test_concurrent_sessions_on_one_client_are_each_recorded_once_or_refused(wired, database_url):
    prior = admitted_client(wired, "X-1")
    per_writer = 4

    def writer(continuum: Continuum, w: int) -> Callable[[], list[Outcome]]:
        def send() -> list[Outcome]:
            return [
                continuum.service.execute(parse_command({
                    "id": f"X-1:w{w}:s{s}", "command": "attend_session", "client": "X-1",
                    "occurred_at": f"2026-11-{10 + s:02d}T18:{w:02d}:00Z", "session_id": f"w{w}-s{s}", "minutes": 180,
                }), ACTOR)
                for s in range(per_writer)
            ]
        return send

    with instances(database_url, WRITERS) as writers:
        results = run_together([writer(c, w) for w, c in enumerate(writers)])
    outcomes = [o for result in results for o in result]
    assert len(outcomes) == WRITERS * per_writer

    recorded = [o for o in outcomes if o.ok]
    refused = [o for o in outcomes if not o.ok]
    # a refusal is the clear "kept changing, try again", never a silent loss or a care-rule mix-up
    assert all(isinstance(o.error, ConcurrencyConflict) and "try again" in str(o.error) for o in refused)
    assert all(len(o.events) == 1 and o.events[0].type == "SessionAttended" for o in recorded)
    assert recorded, "at least one writer got through"

    events = stored_events(wired, "X-1")
    assert len(events) == prior + len(recorded)
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
    sessions = [e.session_id for e in events if type(e).__name__ == "SessionAttended"]
    assert len(sessions) == len(set(sessions))
    assert set(sessions) == {o.command.session_id for o in recorded}
    assert sorted(e.version for o in recorded for e in o.events) == list(range(prior + 1, len(events) + 1))
    assert {e.command_id for e in events[prior:]} == {o.command_id for o in recorded}

    # the journey as loaded agrees, and every refused command can simply be sent again
    journey = wired.app.repository.get(ClientJourney.create_id("X-1"))
    assert journey.version == len(events)
    assert journey.sessions == set(sessions)
    for o in refused:
        again = wired.service.execute(o.command, ACTOR)
        assert again.ok, again.error
        assert len(again.events) == 1
    assert len(stored_events(wired, "X-1")) == prior + len(outcomes)

    # the projections see each event once
    wired.runner.catch_up()
    with wired.views.transaction() as cursor:
        cursor.execute("SELECT COUNT(*), COUNT(DISTINCT version) FROM audit_entries WHERE journey_id = ?",
                       (str(ClientJourney.create_id("X-1")),))
        assert cursor.fetchone() == (prior + len(outcomes), prior + len(outcomes))


def test_concurrent_registration_of_one_client_reference_succeeds_once(wired, database_url):
    writers = 4

    def register(continuum: Continuum, w: int) -> Callable[[], Outcome]:
        return lambda: continuum.service.execute(parse_command({
            "id": f"Y-1:reg:{w}", "command": "register", "client": "Y-1", "occurred_at": "2026-11-01T09:00:00Z",
            "site": f"site-{w}",
        }), ACTOR)

    with instances(database_url, writers) as instances_:
        outcomes = run_together([register(c, w) for w, c in enumerate(instances_)])

    winners = [o for o in outcomes if o.ok]
    losers = [o for o in outcomes if not o.ok]
    assert len(winners) == 1
    assert [e.type for e in winners[0].events] == ["ClientRegistered"]
    assert len(losers) == writers - 1
    assert all(isinstance(o.error, errors.AlreadyRegistered) for o in losers)
    assert all("already registered" in str(o.error) for o in losers)

    events = stored_events(wired, "Y-1")
    assert [(type(e).__name__, e.originator_version, e.command_id) for e in events] == [
        ("ClientRegistered", 1, winners[0].command_id),
    ]
    assert events[0].site == winners[0].command.site
    wired.runner.catch_up()
    with wired.views.transaction() as cursor:
        cursor.execute("SELECT client_ref, site FROM census_clients")
        assert cursor.fetchall() == [("Y-1", winners[0].command.site)]


def test_the_same_command_sent_concurrently_records_once(wired, database_url):
    prior = admitted_client(wired, "Z-1")
    writers = 4
    same_session = {"id": "Z-1:s-1", "command": "attend_session", "client": "Z-1",
                    "occurred_at": "2026-11-10T18:00:00Z", "session_id": "s-1", "minutes": 90}
    same_registration = {"id": "Z-2:reg", "command": "register", "client": "Z-2",
                         "occurred_at": "2026-11-01T09:00:00Z", "site": "north"}

    with instances(database_url, writers) as instances_:
        for data, kind in ((same_session, "SessionAttended"), (same_registration, "ClientRegistered")):
            outcomes = run_together(
                [lambda c=c, data=data: c.service.execute(parse_command(data), ACTOR) for c in instances_],
            )
            assert all(o.ok for o in outcomes), [str(o.error) for o in outcomes]
            assert sum(o.duplicate for o in outcomes) == writers - 1
            assert {o.command_id for o in outcomes} == {data["id"]}
            first = next(o for o in outcomes if not o.duplicate)
            assert [e.type for e in first.events] == [kind]
            assert all(o.events == first.events for o in outcomes)  # a repeat is answered with the first result

    session_events = stored_events(wired, "Z-1")
    assert len(session_events) == prior + 1
    assert [e.originator_version for e in session_events] == [1, 2, 3]
    assert session_events[-1].command_id == "Z-1:s-1"
    assert [type(e).__name__ for e in stored_events(wired, "Z-2")] == ["ClientRegistered"]


def test_concurrent_discharges_of_one_client_apply_once_and_the_rest_meet_the_care_rule(wired, database_url):
    prior = admitted_client(wired, "V-1")
    reasons = ["completed", "transferred", "left_against_advice", "other"]

    def discharge(continuum: Continuum, reason: str) -> Callable[[], Outcome]:
        return lambda: continuum.service.execute(parse_command({
            "id": f"V-1:discharge:{reason}", "command": "discharge", "client": "V-1",
            "occurred_at": "2026-11-20T12:00:00Z", "reason": reason,
        }), ACTOR)

    with instances(database_url, len(reasons)) as instances_:
        outcomes = run_together([discharge(c, r) for c, r in zip(instances_, reasons, strict=True)])

    winners = [o for o in outcomes if o.ok]
    assert len(winners) == 1
    assert [o.events[0].type for o in winners] == ["Discharged"]
    # the others were checked against the journey as it is after the winner: discharged already
    assert all(isinstance(o.error, errors.JourneyClosed) for o in outcomes if not o.ok)
    events = stored_events(wired, "V-1")
    assert [type(e).__name__ for e in events] == ["ClientRegistered", "AdmittedToLevel", "Discharged"]
    assert len(events) == prior + 1
    assert events[-1].reason.value == winners[0].command.reason.value


def test_concurrent_chunks_over_shared_clients_record_every_command_once(wired, database_url):
    prior = admitted_client(wired, "W-1") + admitted_client(wired, "W-2")
    writers = 3

    def chunk(continuum: Continuum, w: int) -> Callable[[], list[Outcome]]:
        lines = [
            {"id": f"{ref}:w{w}:s{s}", "command": "attend_session", "client": ref,
             "occurred_at": f"2026-11-{10 + s:02d}T18:{w:02d}:00Z", "session_id": f"w{w}-s{s}"}
            for s in range(3) for ref in ("W-1", "W-2")
        ]
        lines.append({**lines[0], "id": f"W-1:w{w}:again"})  # the same session id again: refused by the care rule
        return lambda: continuum.service.execute_many([parse_command(line) for line in lines], ACTOR)

    with instances(database_url, writers) as instances_:
        results = run_together([chunk(c, w) for w, c in enumerate(instances_)])

    outcomes = [o for result in results for o in result]
    for result in results:
        assert isinstance(result[-1].error, errors.DuplicateSession)
    assert all(o.ok or isinstance(o.error, ConcurrencyConflict) for result in results for o in result[:-1])
    recorded = [o for o in outcomes if o.ok]
    assert all(len(o.events) == 1 for o in recorded)
    total = 0
    for ref in ("W-1", "W-2"):
        events = stored_events(wired, ref)
        total += len(events)
        assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
        sessions = [e.session_id for e in events if type(e).__name__ == "SessionAttended"]
        assert len(sessions) == len(set(sessions))
        assert set(sessions) == {o.command.session_id for o in recorded if o.command.client == ref}
    assert total == prior + len(recorded)


def test_a_runner_following_concurrent_writers_misses_no_event(wired, database_url):
    """Notifications must become visible in id order: a projection that follows the log while
    writers commit must not step over an event committed late with a smaller id."""
    writers = 3
    stop = threading.Event()
    follow_problems: list[BaseException] = []

    def follow() -> None:
        try:
            while not stop.is_set():
                wired.runner.catch_up()
        except BaseException as problem:  # noqa: BLE001 - reported below
            follow_problems.append(problem)

    def writer(continuum: Continuum, w: int) -> Callable[[], list[Outcome]]:
        ref = f"F-{w}"
        lines = [
            {"id": f"{ref}:reg", "command": "register", "client": ref, "occurred_at": "2026-11-01T09:00:00Z", "site": "north"},
            {"id": f"{ref}:admit", "command": "admit", "client": ref, "occurred_at": "2026-11-02T09:00:00Z",
             "level": "2.1", "site": "north", "track": "day"},
            *({"id": f"{ref}:s{s}", "command": "attend_session", "client": ref,
               "occurred_at": f"2026-11-{10 + s:02d}T09:00:00Z", "session_id": f"s{s}"} for s in range(6)),
        ]
        return lambda: [continuum.service.execute(parse_command(line), ACTOR) for line in lines]

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        with instances(database_url, writers) as instances_:
            results = run_together([writer(c, w) for w, c in enumerate(instances_)])
    finally:
        stop.set()
        follower.join(timeout=60)
    assert follow_problems == []
    assert all(o.ok for result in results for o in result)

    wired.runner.catch_up()
    stored = len(wired.app.recorder.select_notifications(start=None, limit=10_000))
    assert stored == writers * 8
    with wired.views.transaction() as cursor:
        cursor.execute("SELECT COUNT(*) FROM audit_entries")
        assert cursor.fetchone() == (stored,)
        cursor.execute("SELECT COUNT(*) FROM census_intervals WHERE ended_at IS NULL")
        assert cursor.fetchone() == (writers,)
    assert [s.lag for s in wired.runner.status()] == [0] * len(wired.runner.status())
