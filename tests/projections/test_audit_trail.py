"""Audit trail: every event of a client in version order with actor id/role, clinical and recorded
times, the command id and the details; corrections attached to the entry they correct; keyset paging."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.values import Actor
from projections.audit_trail import trail_query
from services.commands import parse_command
from tests.projections.builders import CLINICIAN, INTAKE, LAB, jid, line, register, send, t


def build_trail(wired):
    """T-1, versions in brackets (actor in parentheses):
    [1] register north 1990 female (intake-3/intake)      [2] refer court -> 2.1 (intake-3/intake)
    [3] assess 10:00+02:00 = 08:00Z (dr-ames/clinician)    [4] admit 2.1 north evening
    [5] attend s-1 180 min                                 [6] collect sp-1
    [7] result sp-1 negative (lab-1/lab)                   [8] correct [5] minutes -> 150
    [9] correct [4] site -> south                          [10] correct [5] telehealth -> true
    [11] attend s-0, recorded last but clinically before s-1 (no explicit id: derived sha256 id)
    T-2 is registered only (another journey, must not leak into T-1's trail).
    """
    outcomes = [register(wired, "T-1", "2026-10-01T08:00:00Z", "north", birth_year=1990, sex="female")]
    outcomes += send(
        wired, line("T-1:refer", "refer", "T-1", "2026-10-01T09:00:00Z", source="court", referred_level="2.1"), actor=INTAKE,
    )
    outcomes += send(
        wired,
        line("T-1:assess", "assess", "T-1", "2026-10-02T10:00:00+02:00", ratings=[1, 2, 1, 0, 2, 1],
             recommended_level="2.1", clinician="dr-ames"),
        line("T-1:admit", "admit", "T-1", "2026-10-05T18:00:00Z", level="2.1", site="north", track="evening",
             planned_hours_per_week=9.0),
        line("T-1:s-1", "attend_session", "T-1", "2026-10-06T18:00:00Z", session_id="s-1", minutes=180),
        line("T-1:sp-1", "collect_drug_test", "T-1", "2026-10-06T18:30:00Z", specimen_id="sp-1", observed=True),
    )
    outcomes += send(
        wired, line("T-1:sp-1:result", "result_drug_test", "T-1", "2026-10-08T09:00:00Z", specimen_id="sp-1",
                    result="negative", substances={"opiates": "negative"}), actor=LAB,
    )
    outcomes += send(
        wired,
        line("T-1:fix-minutes", "correct", "T-1", "2026-10-07T09:00:00Z", corrects_version=5, field="minutes",
             value=150, reason="left early"),
        line("T-1:fix-site", "correct", "T-1", "2026-10-07T09:05:00Z", corrects_version=4, field="site",
             value="south", reason="wrong site"),
        line("T-1:fix-telehealth", "correct", "T-1", "2026-10-07T09:10:00Z", corrects_version=5, field="telehealth",
             value=True, reason="was on video"),
    )
    no_id = parse_command({"command": "attend_session", "client": "T-1", "occurred_at": "2026-10-05T19:00:00Z",
                           "session_id": "s-0", "minutes": 60, "kind": "individual"})
    outcome = wired.service.execute(no_id, CLINICIAN)
    assert outcome.ok, outcome.error
    assert outcome.events
    outcomes.append(outcome)
    register(wired, "T-2", "2026-10-01T08:00:00Z", "north")
    wired.runner.catch_up()
    return outcomes


def trail(wired, ref, **paging):
    with wired.views.transaction() as cursor:
        return trail_query(cursor, jid(ref), **paging)


def test_every_event_in_version_order_with_actor_times_and_command_id(wired):
    started = datetime.now(tz=UTC)
    outcomes = build_trail(wired)
    finished = datetime.now(tz=UTC)
    entries = trail(wired, "T-1")

    assert [e.version for e in entries] == list(range(1, 12))
    assert [e.event_type for e in entries] == [
        "ClientRegistered", "ReferralReceived", "AssessmentCompleted", "AdmittedToLevel", "SessionAttended",
        "DrugTestCollected", "DrugTestResulted", "EntryCorrected", "EntryCorrected", "EntryCorrected",
        "SessionAttended",
    ]
    actors = [Actor(e.actor_id, e.actor_role) for e in entries]
    assert actors == [INTAKE, INTAKE, *[CLINICIAN] * 4, LAB, *[CLINICIAN] * 4]
    # Clinical time as given, in UTC (the assessment was at 10:00+02:00); version order, not clinical order:
    # s-0 (05 19:00) is recorded last, as version 11.
    assert [e.occurred_at for e in entries] == [t(x) for x in (
        "2026-10-01T08:00:00Z", "2026-10-01T09:00:00Z", "2026-10-02T08:00:00Z", "2026-10-05T18:00:00Z",
        "2026-10-06T18:00:00Z", "2026-10-06T18:30:00Z", "2026-10-08T09:00:00Z", "2026-10-07T09:00:00Z",
        "2026-10-07T09:05:00Z", "2026-10-07T09:10:00Z", "2026-10-05T19:00:00Z",
    )]
    assert all(e.occurred_at.tzinfo is not None for e in entries)
    # Recorded time: the store's clock while the test ran, never decreasing with the version.
    recorded = [e.recorded_at for e in entries]
    assert all(started <= moment <= finished for moment in recorded)
    assert recorded == sorted(recorded)
    # Command ids as sent; the id-less command carries the id derived from its content.
    assert [e.command_id for e in entries[:10]] == [
        "T-1:register", "T-1:refer", "T-1:assess", "T-1:admit", "T-1:s-1", "T-1:sp-1", "T-1:sp-1:result",
        "T-1:fix-minutes", "T-1:fix-site", "T-1:fix-telehealth",
    ]
    assert entries[10].command_id.startswith("sha256:")
    assert entries[10].command_id == outcomes[-1].command_id
    # Each entry's position is the event's place in the notification log.
    recorded_events = [event for outcome in outcomes for event in outcome.events]
    assert [e.position for e in entries] == [event.position for event in recorded_events]
    assert [e.position for e in entries] == sorted(e.position for e in entries)


def test_details_hold_the_facts_without_envelope_actor_time_or_command(wired):
    build_trail(wired)
    entries = trail(wired, "T-1")
    assert entries[0].details == {"client_ref": "T-1", "site": "north", "birth_year": 1990, "sex": "female"}
    assert entries[1].details == {"source": "court", "referred_level": "2.1"}
    assert entries[2].details == {"ratings": [1, 2, 1, 0, 2, 1], "recommended_level": "2.1", "clinician": "dr-ames"}
    assert entries[3].details == {
        "level": "2.1", "site": "north", "track": "evening", "planned_hours_per_week": 9.0, "expected_end": None,
        "medication": "none", "flags": [],
    }
    assert entries[4].details == {
        "session_id": "s-1", "minutes": 180, "kind": "group", "group_type": None, "modality": None, "telehealth": False,
    }
    assert entries[6].details == {
        "specimen_id": "sp-1", "result": "negative", "substances": {"opiates": "negative"}, "expected_medications": [],
    }
    assert entries[7].details == {
        "corrects_version": 5, "corrects_type": "SessionAttended", "field": "minutes", "previous_value": 180.0,
        "corrected_value": 150.0, "reason": "left early", "flags": None,
    }
    assert [e.corrects_version for e in entries] == [None] * 7 + [5, 4, 5, None]
    assert entries[0].as_json()["recorded_by"] == {"id": "intake-3", "role": "intake"}


def test_corrections_sit_beside_the_entry_they_correct_which_stays_as_recorded(wired):
    build_trail(wired)
    entries = {e.version: e for e in trail(wired, "T-1")}
    # [5] keeps minutes 180 and telehealth false as recorded; [8] and [10] correct it, in version order.
    assert (entries[5].details["minutes"], entries[5].details["telehealth"]) == (180, False)
    assert [(c.version, c.details["field"], c.details["corrected_value"]) for c in entries[5].corrections] == [
        (8, "minutes", 150.0), (10, "telehealth", True),
    ]
    assert entries[4].details["site"] == "north"
    assert [(c.version, c.details["previous_value"], c.details["corrected_value"]) for c in entries[4].corrections] == [
        (9, "north", "south"),
    ]
    assert [(c.actor_id, c.command_id) for c in entries[4].corrections] == [("dr-ames", "T-1:fix-site")]
    assert {v for v, e in entries.items() if e.corrections} == {4, 5}
    # The corrections are entries of their own too, and nothing is corrected twice over.
    assert entries[8].corrections == []
    assert entries[8].corrects_version == 5
    as_json = entries[5].as_json()
    assert [c["version"] for c in as_json["corrections"]] == [8, 10]
    assert as_json["corrections"][0]["type"] == "EntryCorrected"


def test_keyset_paging_with_after_and_limit(wired):
    build_trail(wired)
    whole = trail(wired, "T-1")
    first = trail(wired, "T-1", limit=4)
    second = trail(wired, "T-1", after=first[-1].version, limit=4)
    third = trail(wired, "T-1", after=second[-1].version, limit=4)
    assert [e.version for e in first] == [1, 2, 3, 4]
    assert [e.version for e in second] == [5, 6, 7, 8]
    assert [e.version for e in third] == [9, 10, 11]
    assert trail(wired, "T-1", after=11, limit=4) == []
    assert trail(wired, "T-1", after=11) == []
    # A correction recorded on a later page is still attached to its entry on an earlier page.
    assert [c.version for c in first[3].corrections] == [9]
    assert [c.version for c in second[0].corrections] == [8, 10]
    assert [e.as_json() for e in first + second + third] == [e.as_json() for e in whole]
    assert [e.version for e in trail(wired, "T-1", after=6)] == [7, 8, 9, 10, 11]
    assert [e.version for e in trail(wired, "T-1", after=0, limit=1)] == [1]


def test_trails_are_per_journey(wired):
    build_trail(wired)
    other = trail(wired, "T-2")
    assert [(e.version, e.event_type, e.command_id) for e in other] == [(1, "ClientRegistered", "T-2:register")]
    assert trail(wired, "NOBODY") == []
