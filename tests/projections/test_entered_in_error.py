"""Putting a record right on both databases: voids, changes of track and flags, through the service,
the projections, the replay and the topic's encoding."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from domain import errors
from infra.kafka.envelope import Pseudonyms, encode
from projections.catalogue import all_projections
from services.commands import parse_command
from services.reads import Reader
from tests.projections.builders import (
    CLINICIAN,
    admit,
    alumni,
    correct,
    discharge,
    dump,
    line,
    register,
    send,
    step,
    t,
)

AUDITOR = Reader("aud-1", "auditor")
DAY0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def on(day: float) -> str:
    return (DAY0 + timedelta(days=day)).isoformat()


def census(wired, day: float) -> list[tuple[str, str, str, int]]:
    result = wired.reads.census(DAY0 + timedelta(days=day))
    return [(c.level, c.site, c.track, c.clients) for c in result.lines]


def mistaken_detox(wired) -> None:
    """The admit meant as a step down to IOP on day 4 was refused, so the record says: 80 days in
    detox, discharged, alumni."""
    register(wired, "D-1", on(0), "north")
    send(wired, line("D-1:wm", "start_detox", "D-1", on(0), level="3.7-WM", site="north", medication="buprenorphine"))
    send(wired, line("D-1:done", "complete_detox", "D-1", on(3)))
    refused = wired.service.execute(
        parse_command(line("D-1:iop", "admit", "D-1", on(4), level="2.1", site="north", track="evening")), CLINICIAN,
    )
    assert isinstance(refused.error, errors.AlreadyAdmitted)
    discharge(wired, "D-1", on(80))  # version 4
    alumni(wired, "D-1", on(81))  # version 5


def test_a_mistaken_history_is_put_right_and_the_originals_stay_visible(wired):
    mistaken_detox(wired)
    wired.runner.catch_up()
    assert census(wired, 30) == [("3.7-WM", "north", "residential", 1)]
    before_void = datetime.now(tz=UTC)

    send(wired, line("D-1:void", "void", "D-1", on(82), versions=[4, 5], reason="the IOP step on day 4 was refused"))
    send(wired, line("D-1:iop2", "step_down", "D-1", on(4), to_level="2.1", reason="detox done", track="evening"))
    send(wired, line("D-1:dc2", "discharge", "D-1", on(80), reason="completed"))
    send(wired, line("D-1:al2", "enrol_alumni", "D-1", on(81)))
    wired.runner.catch_up()

    assert census(wired, 2) == [("3.7-WM", "north", "residential", 1)]
    assert census(wired, 30) == [("2.1", "north", "evening", 1)]
    assert census(wired, 80.5) == []
    assert census(wired, 90) == [("alumni", "north", "alumni", 1)]

    history = [(h.version, h.kind, h.to_level) for h in wired.reads.history("D-1", AUDITOR)]
    assert history == [(2, "admission", "3.7-WM"), (8, "step_down", "2.1"), (9, "discharge", None), (10, "alumni", "alumni")]

    trail = {e.version: e for e in wired.reads.audit("D-1", AUDITOR)}
    assert trail[4].event_type == "Discharged"
    assert trail[4].voided
    assert [(fix.event_type, fix.version) for fix in trail[4].corrections] == [("EntryVoided", 7)]
    assert [(fix.event_type, fix.version) for fix in trail[5].corrections] == [("EntryVoided", 6)]
    assert trail[6].details["voided_version"] == 5
    assert not trail[9].voided

    replayed = wired.audit.replay("D-1", AUDITOR, as_of=None, as_recorded=None)
    voided = {entry.version: entry.voided for entry in replayed.entries}
    assert voided[4] is not None
    assert voided[4].reason == "the IOP step on day 4 was refused"
    assert voided[9] is None
    assert (replayed.state.status, replayed.state.level) == ("alumni", "alumni")
    earlier = wired.audit.replay("D-1", AUDITOR, as_of=DAY0 + timedelta(days=30), as_recorded=None).state
    assert (earlier.level, earlier.track, earlier.medication) == ("2.1", "evening", "buprenorphine")

    as_known_then = wired.reads.census_as_recorded(DAY0 + timedelta(days=30), before_void)
    assert [(c.level, c.clients) for c in as_known_then.lines] == [("3.7-WM", 1)]

    live = dump(wired)
    wired.runner.rebuild([p.name for p in all_projections()])
    assert dump(wired) == live


def test_a_void_is_published_without_its_reason(wired):
    register(wired, "P-1", on(0), "north")
    admit(wired, "P-1", on(1), "2.1", "north", "day", planned_hours_per_week=9)
    send(wired, line("P-1:void", "void", "P-1", on(2), versions=[2], reason="wrong client, Jane Doe's record"))
    stored = wired.app.recorder.select_notifications(start=None, limit=10)
    event = wired.app.mapper.to_domain_event(stored[-1])
    message = encode(event, stored[-1].id, None, Pseudonyms(b"k" * 32))
    payload = json.loads(message.value)
    assert payload["voided_version"] == 2
    assert payload["voided_type"] == "AdmittedToLevel"
    assert "Jane" not in message.value.decode()
    assert message.headers["ce_type"] == b"org.carecontinuum.journey.EntryVoided.v2"


def test_a_void_waits_for_the_entries_that_depend_on_it(wired):
    register(wired, "B-1", on(0), "north")
    admit(wired, "B-1", on(1), "2.1", "north", "day")
    discharge(wired, "B-1", on(40))
    alumni(wired, "B-1", on(41))
    outcome = wired.service.execute(parse_command(line("B-1:v", "void", "B-1", on(42), versions=[3], reason="x")), CLINICIAN)
    assert isinstance(outcome.error, errors.VoidBlocked)
    assert "EnrolledInAlumni #4" in str(outcome.error)
    wired.runner.catch_up()
    assert census(wired, 50) == [("alumni", "north", "alumni", 1)]


def test_a_change_of_track_is_not_a_step_and_the_census_follows_it(wired):
    register(wired, "T-1", on(0), "north")
    admit(wired, "T-1", on(1), "2.1", "north", "day", planned_hours_per_week=9)
    send(wired, line("T-1:eve", "change_track", "T-1", on(20), track="evening", reason="started a day job"))
    wired.runner.catch_up()
    assert census(wired, 10) == [("2.1", "north", "day", 1)]
    assert census(wired, 30) == [("2.1", "north", "evening", 1)]
    assert wired.reads.matrix(None, None) == {}
    kinds = [h.kind for h in wired.reads.history("T-1", AUDITOR)]
    assert kinds == ["admission", "track_change"]

    send(wired, line("T-1:undo", "void", "T-1", on(31), versions=[3], reason="the job fell through"))
    wired.runner.catch_up()
    assert census(wired, 30) == [("2.1", "north", "day", 1)]


@pytest.mark.parametrize(("level", "hours", "flagged"), [("2.1", 40, True), ("2.1", 0, True), ("2.5", 2, True), ("2.1", 12, False)])
def test_planned_hours_outside_the_band_are_flagged_and_listed(wired, level, hours, flagged):
    register(wired, "F-1", on(0), "north", birth_year=1980)
    admit(wired, "F-1", on(1), level, "north", "day", planned_hours_per_week=hours)
    wired.runner.catch_up()
    rows = wired.reads.flags(AUDITOR)
    assert [(r.client_ref, r.version, r.flag) for r in rows] == ([("F-1", 2, "hours_outside_adult_band")] if flagged else [])
    if flagged:
        assert f"planned {hours:g} h/week is outside the {level} band for adults" in rows[0].text
        correct(wired, "F-1", 2, "planned_hours_per_week", 9 if level == "2.1" else 20, on(2))
        wired.runner.catch_up()
        assert wired.reads.flags(AUDITOR) == []


def test_a_voided_admission_loses_its_flags(wired):
    register(wired, "F-2", on(0), "north")
    send(wired, line("F-2:assess", "assess", "F-2", on(1), ratings=[3, 1, 1, 1, 1, 1], recommended_level="3.7-WM", clinician="dr-k"))
    admit(wired, "F-2", on(2), "2.1", "north", "day", planned_hours_per_week=9)
    wired.runner.catch_up()
    assert [r.flag for r in wired.reads.flags(AUDITOR, client_ref="F-2")] == ["withdrawal_need_at_ambulatory_admission"]
    send(wired, line("F-2:void", "void", "F-2", on(3), versions=[3], reason="admitted the wrong client"))
    wired.runner.catch_up()
    assert wired.reads.flags(AUDITOR, client_ref="F-2") == []
    assert census(wired, 5) == []


def test_step_to_the_same_level_says_to_change_track(wired):
    register(wired, "S-1", on(0), "north")
    admit(wired, "S-1", on(1), "2.1", "north", "day")
    outcome = wired.service.execute(
        parse_command(line("S-1:x", "step_down", "S-1", on(5), to_level="2.1", reason="evening", track="evening")), CLINICIAN,
    )
    assert isinstance(outcome.error, errors.StepDirectionError)
    assert "change_track" in str(outcome.error)
    step(wired, "S-1", on(6), "step_down", "1", "goals met")
    assert t(on(6)) > t(on(5))
