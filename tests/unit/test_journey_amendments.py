"""Voids, changes of track and medication, flags, the amendment rules and the one state model.

Pure domain, in memory, at the fixed clock of tests/unit/test_journey_rules.py, whose helpers are
reused here (`refuses` also checks that a refused command leaves nothing pending and the version
unchanged).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from domain import errors, flags
from domain.journey import ClientJourney, Status
from domain.levels import DischargeReason, Level, Medication, ReferralSource, TestResult, Track
from domain.replay import fold, replay, state_of
from tests.unit.test_journey_rules import (
    NOW,
    admit,
    admitted,
    attend,
    collect,
    correct,
    ctx,
    days_ago,
    discharge,
    miss,
    names,
    pending,
    refuses,
    registered,
    result,
    step_down,
    step_up,
)

START = NOW - timedelta(days=120)
ERROR = "entered in error"


# -- helpers ------------------------------------------------------------------------------


def day(number: float) -> datetime:
    """Day `number` of a stay that began 120 days before the clock."""
    return START + timedelta(days=number)


def void(journey: ClientJourney, *versions: int, reason: str = ERROR, command_id: str | None = None) -> None:
    journey.void(versions=list(versions), reason=reason, at=NOW, ctx=ctx(command_id))


def only_event(journey: ClientJourney):
    (event,) = journey.collect_events()
    return event


def admit_with(
    journey: ClientJourney, level: Level, hours: float | None, *, track: Track | None = Track.DAY, at: datetime | None = None,
):
    """Admit and return the one `AdmittedToLevel` recorded."""
    journey.collect_events()
    journey.admit(
        level=level,
        site="north",
        track=None if level.is_24_hour else track,
        planned_hours_per_week=hours,
        expected_end=date(2024, 6, 1),
        medication=Medication.NONE,
        at=at or days_ago(30),
        ctx=ctx(),
    )
    return only_event(journey)


def adolescent() -> ClientJourney:
    """Born 2010: 13 when admitted 30 days before the 2024 clock."""
    journey = ClientJourney.register("C-teen", site="north", birth_year=2010, sex="male", at=days_ago(40), ctx=ctx())
    journey.collect_events()
    return journey


def assessed(*, dimension_1: int, recommended: Level) -> ClientJourney:
    journey = registered()
    journey.assess(
        ratings=[dimension_1, 1, 1, 1, 1, 1], recommended=recommended, clinician="dr-k", at=days_ago(35), ctx=ctx(),
    )
    journey.collect_events()
    return journey


def change_track(journey: ClientJourney, track: Track | None, *, hours: float | None = None, at: datetime | None = None) -> None:
    journey.change_track(track=track, planned_hours_per_week=hours, reason="works days", at=at or days_ago(10), ctx=ctx())


def change_medication(journey: ClientJourney, medication: Medication, *, at: datetime | None = None) -> None:
    journey.change_medication(medication=medication, reason="cravings", at=at or days_ago(20), ctx=ctx())


def detox_on_buprenorphine() -> ClientJourney:
    journey = registered()
    journey.start_withdrawal_management(
        level=Level.WM_INPATIENT_MONITORED, site="north", substances=["opioids"], at=days_ago(30), ctx=ctx(),
        medication=Medication.BUPRENORPHINE,
    )
    return journey


def negative_result(journey: ClientJourney, substances: dict[str, str], expected: list[str]) -> None:
    journey.record_result(
        specimen_id="sp-1", result=TestResult.NEGATIVE, substances=substances, expected_medications=expected,
        at=days_ago(8), ctx=ctx(),
    )


def placed(journey: ClientJourney) -> tuple:
    """Status, level, site, track and episodes, as `JourneyState` spells them."""
    return (
        journey.status.value,
        journey.level and journey.level.code,
        journey.site,
        journey.track and journey.track.value,
        journey.episodes,
    )


def shown(state) -> tuple:
    return (state.status, state.level, state.site, state.track, state.episodes)


# -- voids --------------------------------------------------------------------------------


def test_voided_session_stops_counting_and_its_id_is_free_again():
    journey = admitted()
    attend(journey, "s-1", at=days_ago(10))  # version 3
    journey.collect_events()
    void(journey, 3)
    (voided,) = journey.collect_events()
    assert names([voided]) == ["EntryVoided"]
    assert (voided.voided_version, voided.voided_type, voided.reason, voided.originator_version) == (
        3, "SessionAttended", ERROR, 4,
    )
    assert journey.sessions == set()
    assert (journey.entries[3].type, journey.entries[3].key, journey.entries[3].voided) == ("SessionAttended", "s-1", True)

    attend(journey, "s-1", at=days_ago(9))
    assert pending(journey) == ["SessionAttended"]
    assert journey.sessions == {"s-1"}
    assert (journey.entries[5].voided, journey.entries[3].voided) == (False, True)


def test_mistaken_discharge_needs_its_alumni_enrolment_voided_first():
    journey = registered(at=day(-1))
    journey.start_withdrawal_management(
        level=Level.WM_INPATIENT_MONITORED, site="north", substances=["opioids"], at=day(0), ctx=ctx(),
    )  # version 2
    journey.complete_detox(completed=True, at=day(3), ctx=ctx())  # version 3
    discharge(journey, at=day(80))  # version 4: the mistaken line, 80 days "in detox"
    journey.enrol_in_alumni(program="alumni", at=day(81), ctx=ctx())  # version 5
    assert journey.status is Status.ALUMNI

    error = refuses(journey, errors.VoidBlocked, lambda: void(journey, 4))
    assert error.values == {"entry": "Discharged #4", "later": "EnrolledInAlumni #5"}
    assert (journey.status, journey.entries[4].voided) == (Status.ALUMNI, False)


def test_mistaken_discharge_and_alumni_voided_together_reopen_the_detox_stay():
    journey = registered(at=day(-1))
    journey.start_withdrawal_management(
        level=Level.WM_INPATIENT_MONITORED, site="north", substances=["opioids"], at=day(0), ctx=ctx(),
    )  # version 2
    journey.complete_detox(completed=True, at=day(3), ctx=ctx())  # version 3
    discharge(journey, at=day(80))  # version 4
    journey.enrol_in_alumni(program="alumni", at=day(81), ctx=ctx())  # version 5
    journey.collect_events()

    void(journey, 4, 5)
    voids = journey.collect_events()
    assert names(voids) == ["EntryVoided", "EntryVoided"]
    assert [(e.voided_version, e.voided_type) for e in voids] == [(5, "EnrolledInAlumni"), (4, "Discharged")]
    assert (journey.status, journey.level, journey.level_since) == (Status.IN_TREATMENT, Level.WM_INPATIENT_MONITORED, day(0))
    assert (journey.discharged_at, journey.episodes, journey.detox_completed) == (None, 1, True)

    # the stay as it really went: stepped down to IOP on day 4 (recorded late), discharged day 80
    journey.step_down(
        to=Level.IOP, reason="detox done", track=Track.DAY, planned_hours_per_week=9, at=day(4), ctx=ctx(),
    )
    discharge(journey, at=day(80))
    journey.enrol_in_alumni(program="alumni", at=day(81), ctx=ctx())
    assert pending(journey) == ["SteppedDown", "Discharged", "EnrolledInAlumni"]
    assert (journey.status, journey.episodes, journey.discharged_at) == (Status.ALUMNI, 1, day(80))
    assert journey.placement(until=day(30)).level is Level.IOP
    assert journey.placement(until=day(2)).level is Level.WM_INPATIENT_MONITORED
    assert [v for v, entry in journey.entries.items() if entry.voided] == [4, 5]


def test_voiding_an_admission_with_sessions_is_blocked_by_them():
    journey = admitted()
    attend(journey, "s-1", at=days_ago(10))  # version 3
    miss(journey, "s-2", at=days_ago(9))  # version 4
    error = refuses(journey, errors.VoidBlocked, lambda: void(journey, 2))
    assert error.values == {"entry": "AdmittedToLevel #2", "later": "SessionAttended #3, SessionMissed #4"}
    assert (journey.status, journey.sessions) == (Status.IN_TREATMENT, {"s-1", "s-2"})


def test_voiding_an_admission_with_its_sessions_returns_the_client_to_registered():
    journey = admitted()
    attend(journey, "s-1", at=days_ago(10))  # version 3
    miss(journey, "s-2", at=days_ago(9))  # version 4
    journey.collect_events()
    void(journey, 2, 3, 4)
    assert [e.voided_version for e in journey.collect_events()] == [4, 3, 2]
    assert (journey.status, journey.level, journey.episodes, journey.admitted_at) == (Status.REGISTERED, None, 0, None)
    assert journey.sessions == set()

    admit(journey, Level.PHP, track=Track.EVENING, hours=20, at=days_ago(20))
    assert pending(journey) == ["AdmittedToLevel"]
    assert (journey.status, journey.level, journey.episodes, journey.admitted_at) == (
        Status.IN_TREATMENT, Level.PHP, 1, days_ago(20),
    )


def test_voiding_a_collection_with_a_result_is_blocked_by_the_result():
    journey = admitted()
    collect(journey, "sp-1", at=days_ago(10))  # version 3
    result(journey, "sp-1", at=days_ago(8))  # version 4
    error = refuses(journey, errors.VoidBlocked, lambda: void(journey, 3))
    assert error.values == {"entry": "DrugTestCollected #3", "later": "DrugTestResulted #4"}
    assert (journey.specimens, journey.results) == ({"sp-1": 3}, {"sp-1": 4})


def test_voiding_a_collection_with_its_result_frees_the_specimen_id():
    journey = admitted()
    collect(journey, "sp-1", at=days_ago(10))  # version 3
    result(journey, "sp-1", at=days_ago(8))  # version 4
    journey.collect_events()
    void(journey, 3, 4)
    assert [e.voided_version for e in journey.collect_events()] == [4, 3]
    assert (journey.specimens, journey.results) == ({}, {})

    collect(journey, "sp-1", at=days_ago(7))
    assert pending(journey) == ["DrugTestCollected"]
    assert journey.specimens == {"sp-1": 7}


def test_registration_cannot_be_voided():
    journey = admitted()
    error = refuses(journey, errors.NotVoidable, lambda: void(journey, 1))
    assert error.detail == "a registration cannot be voided: correct its facts instead"


def test_a_correction_or_a_void_cannot_be_voided():
    journey = admitted()
    attend(journey, "s-1", minutes=60)  # version 3
    correct(journey, 3, "minutes", 90)  # version 4
    attend(journey, "s-2", at=days_ago(9))  # version 5
    void(journey, 5)  # version 6
    for version in (4, 6):
        error = refuses(journey, errors.NotCorrectable, lambda version=version: void(journey, version))
        assert error.detail == f"#{version} is a correction or a void: void the entry it refers to instead"


def test_voiding_twice_is_refused():
    journey = admitted()
    attend(journey, "s-1")  # version 3
    void(journey, 3)
    error = refuses(journey, errors.AlreadyVoided, lambda: void(journey, 3, reason="again"))
    assert error.values == {"entry": "SessionAttended #3"}


def test_voiding_an_unknown_version_is_refused():
    journey = admitted()
    error = refuses(journey, errors.UnknownEntry, lambda: void(journey, 99))
    assert (error.detail, error.values) == ("no entry #99 in this journey", {"version": "99"})


def test_a_void_needs_a_reason():
    journey = admitted()
    attend(journey, "s-1")  # version 3
    error = refuses(journey, errors.InvalidValue, lambda: void(journey, 3, reason=""))
    assert (error.detail, error.values) == ("a void needs a reason", {})
    refuses(journey, errors.InvalidValue, lambda: void(journey, 3, reason="   "))
    assert (journey.entries[3].voided, journey.sessions) == (False, {"s-1"})


def test_a_refused_void_records_none_of_its_versions():
    journey = admitted()
    attend(journey, "s-1")  # version 3
    journey.collect_events()
    with_registration = refuses(journey, errors.NotVoidable, lambda: void(journey, 3, 1))
    assert with_registration.client_ref == "C-1"
    assert (journey.version, journey.collect_events(), journey.entries[3].voided, journey.sessions) == (3, [], False, {"s-1"})


def test_repeated_void_command_id_records_nothing():
    journey = admitted()
    attend(journey, "s-1", at=days_ago(10))  # version 3
    attend(journey, "s-2", at=days_ago(9))  # version 4
    journey.collect_events()
    void(journey, 3, command_id="void-7")
    assert (pending(journey), journey.version) == (["EntryVoided"], 5)
    void(journey, 3, command_id="void-7")  # the same command again
    void(journey, 4, command_id="void-7")  # even for another entry
    assert (pending(journey), journey.version, journey.sessions) == ([], 5, {"s-2"})


def test_a_voided_entry_cannot_be_corrected():
    journey = admitted()
    attend(journey, "s-1", minutes=60)  # version 3
    void(journey, 3)
    error = refuses(journey, errors.EntryIsVoided, lambda: correct(journey, 3, "minutes", 90))
    assert error.values == {"entry": "SessionAttended #3"}
    assert journey.entries[3].fields["minutes"] == 60.0


def test_voiding_a_step_up_returns_the_client_to_the_level_before():
    journey = registered()
    admit(journey, Level.IOP, track=Track.EVENING, hours=12, at=days_ago(30))  # version 2
    step_up(journey, Level.RESIDENTIAL_HIGH, at=days_ago(10))  # version 3
    assert (journey.level, journey.track, journey.planned_hours_per_week) == (Level.RESIDENTIAL_HIGH, Track.RESIDENTIAL, 0.0)
    journey.collect_events()

    void(journey, 3)
    assert pending(journey) == ["EntryVoided"]
    assert (journey.status, journey.level, journey.site, journey.track) == (Status.IN_TREATMENT, Level.IOP, "north", Track.EVENING)
    assert (journey.planned_hours_per_week, journey.level_since, journey.moved_at) == (12.0, days_ago(30), days_ago(30))


def test_voiding_a_death_discharge_makes_the_client_alive_and_admitted():
    journey = admitted()
    discharge(journey, DischargeReason.DIED, at=days_ago(5))  # version 3
    assert journey.status is Status.DECEASED
    journey.collect_events()

    void(journey, 3, reason="wrong client")
    assert pending(journey) == ["EntryVoided"]
    assert (journey.status, journey.level, journey.discharged_at, journey.episodes) == (Status.IN_TREATMENT, Level.IOP, None, 1)
    attend(journey, "s-1", at=days_ago(2))
    assert pending(journey) == ["SessionAttended"]


# -- change of track ----------------------------------------------------------------------


def test_change_of_track_keeps_the_level_and_its_start():
    journey = admitted(Level.IOP, track=Track.DAY)
    change_track(journey, Track.EVENING, at=days_ago(10))
    changed = only_event(journey)
    assert names([changed]) == ["TrackChanged"]
    assert (changed.level, changed.from_track, changed.track, changed.planned_hours_per_week) == (
        Level.IOP, Track.DAY, Track.EVENING, 9.0,
    )
    assert (changed.site, changed.reason, changed.flags) == ("north", "works days", [])
    assert (journey.level, journey.track, journey.level_since, journey.moved_at) == (
        Level.IOP, Track.EVENING, days_ago(30), days_ago(10),
    )


def test_change_of_track_to_the_same_track_and_hours_is_refused():
    journey = admitted(Level.IOP, track=Track.DAY)
    error = refuses(journey, errors.NothingToChange, lambda: change_track(journey, Track.DAY, hours=9))
    assert error.values == {"track": "day", "planned_hours_per_week": "9.0"}
    assert journey.track is Track.DAY


def test_step_to_the_same_level_is_refused_pointing_at_change_track():
    journey = admitted(Level.IOP, track=Track.DAY)
    error = refuses(
        journey, errors.StepDirectionError, lambda: step_down(journey, Level.IOP, track=Track.EVENING),
    )
    assert "change_track" in error.detail
    assert error.values == {"level": "2.1"}


def test_change_of_track_before_the_last_change_of_level_is_refused():
    journey = admitted(Level.IOP, track=Track.DAY)
    step_down(journey, Level.OUTPATIENT, at=days_ago(10))
    error = refuses(journey, errors.OutOfOrder, lambda: change_track(journey, Track.EVENING, at=days_ago(12)))
    assert error.values == {"level": "1", "level_since": days_ago(10).isoformat(), "occurred_at": days_ago(12).isoformat()}
    assert journey.track is Track.DAY


def test_residential_client_cannot_change_to_day_track():
    journey = admitted(Level.RESIDENTIAL_HIGH, track=None)
    error = refuses(journey, errors.InvalidValue, lambda: change_track(journey, Track.DAY))
    assert error.values == {"level": "3.5", "track": "day"}
    assert journey.track is Track.RESIDENTIAL


# -- medication ---------------------------------------------------------------------------


def test_withdrawal_management_records_its_medication():
    journey = detox_on_buprenorphine()
    started = journey.collect_events()[-1]
    assert (names([started]), started.medication) == (["WithdrawalManagementStarted"], Medication.BUPRENORPHINE)
    assert journey.medication is Medication.BUPRENORPHINE


def test_medication_changes_during_detox():
    journey = detox_on_buprenorphine()
    journey.collect_events()
    change_medication(journey, Medication.METHADONE, at=days_ago(25))
    changed = only_event(journey)
    assert (names([changed]), changed.medication, changed.reason) == (["MedicationChanged"], Medication.METHADONE, "cravings")
    assert (journey.medication, journey.level, journey.moved_at) == (Medication.METHADONE, Level.WM_INPATIENT_MONITORED, days_ago(30))


def test_medication_carries_through_a_step_and_changes_at_the_new_level():
    journey = detox_on_buprenorphine()
    journey.complete_detox(completed=True, at=days_ago(27), ctx=ctx())
    step_down(journey, Level.IOP, track=Track.DAY, at=days_ago(26))
    assert journey.medication is Medication.BUPRENORPHINE
    journey.collect_events()
    change_medication(journey, Medication.NALTREXONE, at=days_ago(20))
    assert pending(journey) == ["MedicationChanged"]
    assert (journey.medication, journey.level) == (Medication.NALTREXONE, Level.IOP)


def test_change_to_the_same_medication_is_refused():
    journey = detox_on_buprenorphine()
    error = refuses(journey, errors.NothingToChange, lambda: change_medication(journey, Medication.BUPRENORPHINE))
    assert error.values == {"medication": "buprenorphine"}


def test_voiding_a_change_of_medication_restores_the_earlier_one():
    journey = detox_on_buprenorphine()  # version 2
    change_medication(journey, Medication.METHADONE, at=days_ago(25))  # version 3
    journey.collect_events()
    void(journey, 3)
    assert pending(journey) == ["EntryVoided"]
    assert journey.medication is Medication.BUPRENORPHINE


def test_change_of_medication_needs_an_admission():
    journey = registered()
    error = refuses(journey, errors.NotAdmitted, lambda: change_medication(journey, Medication.METHADONE))
    assert error.detail == "cannot change medication: client is not admitted to a level of care"
    assert journey.medication is Medication.NONE


# -- rules: times, results, corrections, deaths -------------------------------------------


def test_no_command_may_be_dated_before_the_registration():
    before = days_ago(41)  # registered 40 days ago
    fresh = registered()
    journey = admitted()
    expected = {"registered_at": days_ago(40).isoformat(), "occurred_at": before.isoformat()}
    for target, command in (
        (fresh, lambda: fresh.refer(source=ReferralSource.SELF, referred_level=None, at=before, ctx=ctx())),
        (fresh, lambda: fresh.assess(ratings=[1] * 6, recommended=Level.IOP, clinician="dr-k", at=before, ctx=ctx())),
        (fresh, lambda: admit(fresh, at=before)),
        (
            fresh,
            lambda: fresh.start_withdrawal_management(
                level=Level.WM_RESIDENTIAL, site="north", substances=[], at=before, ctx=ctx(),
            ),
        ),
        (journey, lambda: attend(journey, at=before)),
        (journey, lambda: collect(journey, at=before)),
        (journey, lambda: step_up(journey, Level.PHP, at=before)),
        (journey, lambda: change_track(journey, Track.EVENING, at=before)),
        (journey, lambda: change_medication(journey, Medication.METHADONE, at=before)),
        (journey, lambda: discharge(journey, at=before)),
    ):
        error = refuses(target, errors.BeforeRegistration, command)
        assert error.values == expected
    assert (fresh.status, journey.level, journey.sessions) == (Status.REGISTERED, Level.IOP, set())


def test_discharge_dated_before_an_entry_of_its_stay_is_refused():
    journey = admitted(at=days_ago(30))
    attend(journey, "s-1", at=days_ago(10))  # version 3
    error = refuses(journey, errors.DischargeBeforeEntries, lambda: discharge(journey, at=days_ago(11)))
    assert error.values == {
        "entry": "SessionAttended #3",
        "entry_at": days_ago(10).isoformat(),
        "discharge_at": days_ago(11).isoformat(),
    }
    assert journey.status is Status.IN_TREATMENT


def test_negative_result_with_a_positive_analyte_is_refused():
    journey = admitted()
    collect(journey, "sp-1", at=days_ago(10))
    error = refuses(
        journey,
        errors.ContradictoryResult,
        lambda: negative_result(journey, {"opioids": "positive", "cocaine": "positive", "alcohol": "negative"}, []),
    )
    assert error.values == {"specimen_id": "sp-1", "positive": "cocaine, opioids"}
    assert journey.results == {}


def test_negative_result_with_an_expected_medication_positive_is_accepted():
    journey = admitted()
    collect(journey, "sp-1", at=days_ago(10))
    journey.collect_events()
    negative_result(journey, {"buprenorphine": "positive", "opioids": "negative"}, ["buprenorphine"])
    resulted = only_event(journey)
    assert (resulted.result, resulted.expected_medications) == (TestResult.NEGATIVE, ["buprenorphine"])
    assert journey.results == {"sp-1": 4}


def test_correction_cannot_move_a_session_before_its_admission():
    journey = admitted(at=days_ago(30))
    attend(journey, "s-1", at=days_ago(10))  # version 3
    error = refuses(journey, errors.BeforeAdmission, lambda: correct(journey, 3, "occurred_at", days_ago(31).isoformat()))
    assert error.values == {"admitted_at": days_ago(30).isoformat(), "corrected": days_ago(31).isoformat()}
    assert journey.entries[3].at == days_ago(10)


def test_correction_cannot_move_a_session_after_the_discharge_of_its_stay():
    journey = admitted(at=days_ago(30))
    attend(journey, "s-1", at=days_ago(10))  # version 3
    discharge(journey, at=days_ago(5))  # version 4
    error = refuses(journey, errors.OutOfOrder, lambda: correct(journey, 3, "occurred_at", days_ago(3).isoformat()))
    assert error.values == {"discharged_at": days_ago(5).isoformat(), "corrected": days_ago(3).isoformat()}
    assert error.detail == "a corrected time cannot move an entry after its discharge"


def test_correction_cannot_move_an_admission_after_its_first_session():
    journey = admitted(at=days_ago(30))
    attend(journey, "s-1", at=days_ago(10))  # version 3
    error = refuses(journey, errors.OutOfOrder, lambda: correct(journey, 2, "occurred_at", days_ago(9).isoformat()))
    assert error.values == {
        "first": "SessionAttended #3", "first_at": days_ago(10).isoformat(), "corrected": days_ago(9).isoformat(),
    }
    assert journey.admitted_at == days_ago(30)


def test_correction_cannot_move_a_collection_after_its_result():
    journey = admitted()
    collect(journey, "sp-1", at=days_ago(10))  # version 3
    result(journey, "sp-1", at=days_ago(8))  # version 4
    error = refuses(journey, errors.ResultBeforeCollection, lambda: correct(journey, 3, "occurred_at", days_ago(7).isoformat()))
    assert error.values == {"specimen_id": "sp-1", "resulted_at": days_ago(8).isoformat(), "corrected": days_ago(7).isoformat()}


def test_correction_cannot_move_a_result_before_its_collection():
    journey = admitted()
    collect(journey, "sp-1", at=days_ago(10))  # version 3
    result(journey, "sp-1", at=days_ago(8))  # version 4
    error = refuses(journey, errors.ResultBeforeCollection, lambda: correct(journey, 4, "occurred_at", days_ago(11).isoformat()))
    assert error.values == {"specimen_id": "sp-1", "collected_at": days_ago(10).isoformat(), "corrected": days_ago(11).isoformat()}


def test_correction_cannot_move_a_discharge_before_a_session_of_its_stay():
    journey = admitted(at=days_ago(30))
    attend(journey, "s-1", at=days_ago(10))  # version 3
    discharge(journey, at=days_ago(5))  # version 4
    error = refuses(journey, errors.DischargeBeforeEntries, lambda: correct(journey, 4, "occurred_at", days_ago(11).isoformat()))
    assert error.values == {
        "entry": "SessionAttended #3", "entry_at": days_ago(10).isoformat(), "corrected": days_ago(11).isoformat(),
    }
    assert journey.discharged_at == days_ago(5)


def test_late_result_time_can_be_corrected_to_after_the_discharge():
    journey = admitted()
    collect(journey, "sp-1", at=days_ago(7))  # version 3
    discharge(journey, at=days_ago(6))  # version 4
    result(journey, "sp-1", at=days_ago(3))  # version 5
    journey.collect_events()
    correct(journey, 5, "occurred_at", days_ago(2).isoformat())
    assert pending(journey) == ["EntryCorrected"]
    assert (journey.entries[5].at, journey.status, journey.discharged_at) == (days_ago(2), Status.DISCHARGED, days_ago(6))


def test_death_cannot_be_corrected_in_before_a_later_alumni_enrolment():
    journey = admitted()
    discharge(journey, at=days_ago(10))  # version 3
    journey.enrol_in_alumni(program="alumni", at=days_ago(9), ctx=ctx())  # version 4
    error = refuses(journey, errors.Deceased, lambda: correct(journey, 3, "reason", "died"))
    assert error.values == {"later": "EnrolledInAlumni #4"}
    assert (journey.status, journey.entries[3].fields["reason"]) == (Status.ALUMNI, "completed")


def test_death_corrected_in_makes_the_client_deceased():
    journey = admitted()
    discharge(journey, at=days_ago(10))  # version 3
    journey.collect_events()
    correct(journey, 3, "reason", "died")
    assert pending(journey) == ["EntryCorrected"]
    assert journey.status is Status.DECEASED
    error = refuses(journey, errors.Deceased, lambda: admit(journey, Level.PHP, at=days_ago(5)))
    assert str(error) == "client C-1: client died: only a correction may follow"


def test_death_corrected_back_to_completed_reopens_the_record():
    journey = admitted()
    discharge(journey, DischargeReason.DIED, at=days_ago(10))  # version 3
    journey.collect_events()
    correct(journey, 3, "reason", "completed")
    assert pending(journey) == ["EntryCorrected"]
    assert (journey.status, journey.discharged_at) == (Status.DISCHARGED, days_ago(10))
    journey.enrol_in_alumni(program="alumni", at=days_ago(9), ctx=ctx())
    assert pending(journey) == ["EnrolledInAlumni"]
    assert journey.status is Status.ALUMNI


# -- flags --------------------------------------------------------------------------------


def test_iop_admission_with_40_hours_is_flagged():
    admission = admit_with(registered(), Level.IOP, 40)
    assert (admission.planned_hours_per_week, admission.flags) == (40.0, [flags.HOURS_ADULT])
    assert admission.flags == ["hours_outside_adult_band"]


def test_iop_admission_with_no_hours_is_flagged():
    assert admit_with(registered(), Level.IOP, 0).flags == ["hours_outside_adult_band"]


def test_php_admission_with_2_hours_is_flagged():
    assert admit_with(registered(), Level.PHP, 2).flags == ["hours_outside_adult_band"]


def test_iop_admission_within_9_to_19_hours_is_not_flagged():
    assert admit_with(registered(), Level.IOP, 9).flags == []
    assert admit_with(registered(), Level.IOP, 19).flags == []


def test_outpatient_admission_without_hours_gets_the_typical_3_hours_unflagged():
    journey = registered()
    admission = admit_with(journey, Level.OUTPATIENT, None)
    assert (admission.planned_hours_per_week, admission.flags) == (3.0, [])
    assert journey.planned_hours_per_week == 3.0


def test_adolescent_in_iop_with_6_hours_is_not_flagged():
    assert admit_with(adolescent(), Level.IOP, 6).flags == []


def test_adolescent_in_outpatient_with_7_hours_is_flagged_for_adolescents():
    assert admit_with(adolescent(), Level.OUTPATIENT, 7).flags == ["hours_outside_adolescent_band"]
    assert admit_with(registered(), Level.OUTPATIENT, 7).flags == []  # within the adult band


def test_iop_admission_after_a_withdrawal_need_is_flagged():
    by_rating = admit_with(assessed(dimension_1=3, recommended=Level.IOP), Level.IOP, 9)
    assert by_rating.flags == ["withdrawal_need_at_ambulatory_admission"]
    by_recommendation = admit_with(assessed(dimension_1=0, recommended=Level.WM_INPATIENT_MONITORED), Level.IOP, 9)
    assert by_recommendation.flags == ["withdrawal_need_at_ambulatory_admission"]


def test_residential_admission_after_a_withdrawal_need_is_not_flagged():
    admission = admit_with(assessed(dimension_1=3, recommended=Level.WM_INPATIENT_MONITORED), Level.RESIDENTIAL_HIGH, None)
    assert admission.flags == []


def test_step_down_to_iop_with_40_hours_is_flagged():
    journey = admitted(Level.PHP, track=Track.DAY)
    journey.step_down(to=Level.IOP, reason="progress", track=None, planned_hours_per_week=40, at=days_ago(10), ctx=ctx())
    stepped = only_event(journey)
    assert (names([stepped]), stepped.planned_hours_per_week, stepped.flags) == (["SteppedDown"], 40.0, ["hours_outside_adult_band"])


def test_correcting_hours_into_the_band_clears_the_flag():
    journey = registered()
    admit(journey, Level.IOP, hours=40)  # version 2
    journey.collect_events()
    correct(journey, 2, "planned_hours_per_week", 9)
    corrected = only_event(journey)
    assert (names([corrected]), corrected.previous_value, corrected.corrected_value, corrected.flags) == (
        ["EntryCorrected"], 40.0, 9.0, [],
    )
    assert (journey.entries[2].notes, journey.planned_hours_per_week) == ((), 9.0)


def test_correcting_hours_out_of_the_band_sets_the_flag():
    journey = admitted(Level.IOP)  # 9 hours, version 2
    correct(journey, 2, "planned_hours_per_week", 40)
    corrected = only_event(journey)
    assert corrected.flags == ["hours_outside_adult_band"]
    assert journey.entries[2].notes == ("hours_outside_adult_band",)


def test_correcting_session_minutes_carries_no_flags():
    journey = admitted()
    attend(journey, "s-1", minutes=60)  # version 3
    journey.collect_events()
    correct(journey, 3, "minutes", 90)
    assert only_event(journey).flags is None


def test_hours_flag_reads_as_the_band_it_misses():
    text = flags.describe(flags.HOURS_ADULT, Level.IOP, 40.0)
    assert text == "planned 40 h/week is outside the 2.1 band for adults (9-19 h)"


# -- one state model: replays fold the journey's own events ------------------------------


def history_with_void_correction_and_track_change() -> tuple[ClientJourney, list, list[tuple[int, datetime, tuple]]]:
    """Every command dated in order; after each, (events so far, its date, the live journey's placement)."""
    events: list = []
    checkpoints: list[tuple[int, datetime, tuple]] = []
    journey = registered()  # version 1, day -40

    def keep(at: datetime) -> None:
        events.extend(journey.collect_events())
        checkpoints.append((len(events), at, placed(journey)))

    keep(days_ago(40))
    admit(journey, Level.IOP, track=Track.DAY, hours=9, at=days_ago(30))  # version 2
    keep(days_ago(30))
    attend(journey, "s-1", at=days_ago(25))  # version 3
    keep(days_ago(25))
    change_track(journey, Track.EVENING, at=days_ago(22))  # version 4
    keep(days_ago(22))
    journey.step_up(to=Level.PHP, reason="use", track=None, planned_hours_per_week=20, at=days_ago(20), ctx=ctx())  # version 5
    keep(days_ago(20))
    journey.void(versions=[5], reason=ERROR, at=days_ago(19), ctx=ctx())  # version 6
    keep(days_ago(19))
    journey.correct(  # version 7: the admission was two days later than recorded
        version=2, field="occurred_at", value=days_ago(28).isoformat(), reason="typo", at=days_ago(18), ctx=ctx(),
    )
    keep(days_ago(18))
    discharge(journey, at=days_ago(10))  # version 8
    keep(days_ago(10))
    admit(journey, Level.PHP, track=Track.DAY, hours=20, at=days_ago(5))  # version 9
    keep(days_ago(5))
    return journey, events, checkpoints


def test_replay_of_each_prefix_equals_the_live_journey_then():
    _, events, checkpoints = history_with_void_correction_and_track_change()
    assert names(events)[5:7] == ["EntryVoided", "EntryCorrected"]
    for count, at, live in checkpoints:
        prefix = events[:count]
        folded = fold(prefix)
        assert folded is not None
        assert placed(folded) == live
        assert shown(replay(prefix, as_of=at).state) == live


def test_replay_as_of_a_time_after_the_amendments_equals_the_fold_up_to_it():
    _, events, checkpoints = history_with_void_correction_and_track_change()
    later = [(count, at, live) for count, at, live in checkpoints if at >= days_ago(18)]
    assert len(later) == 3
    for count, at, live in later:
        folded = fold(events[:count])
        assert folded is not None
        assert shown(replay(events, as_of=at).state) == placed(folded) == live


def test_replay_as_of_reads_the_history_as_now_known():
    journey, events, _ = history_with_void_correction_and_track_change()
    expected = {
        days_ago(29): ("registered", None, None, None, 0),  # the admission was corrected to day -28
        days_ago(24): ("in_treatment", "2.1", "north", "day", 1),
        days_ago(21): ("in_treatment", "2.1", "north", "evening", 1),
        days_ago(15): ("in_treatment", "2.1", "north", "evening", 1),  # the step up to 2.5 was voided
        days_ago(7): ("discharged", None, None, None, 1),
        NOW: ("in_treatment", "2.5", "north", "day", 2),
    }
    for at, state in expected.items():
        assert shown(replay(events, as_of=at).state) == state
        assert shown(state_of(journey, at)) == state
        now = journey.placement(until=at)
        assert (now.status.value, now.level and now.level.code, now.episodes) == (state[0], state[1], state[4])
    assert shown(replay(events).state) == placed(journey) == expected[NOW]


def test_replay_entries_show_the_voided_entry_beside_the_others():
    _, events, _ = history_with_void_correction_and_track_change()
    entries = {entry.version: entry for entry in replay(events).entries}
    assert sorted(entries) == [1, 2, 3, 4, 5, 8, 9]  # corrections and voids are shown on their entries
    stepped = entries[5]
    assert (stepped.type, stepped.occurred_at, stepped.voided is not None) == ("SteppedUp", days_ago(20), True)
    assert (stepped.voided.version, stepped.voided.reason) == (6, ERROR)
    assert [version for version, entry in entries.items() if entry.voided is not None] == [5]
    admission = entries[2]
    assert (admission.occurred_at, [(c.version, c.field) for c in admission.corrections]) == (days_ago(28), [(7, "occurred_at")])
    assert entries[4].type == "TrackChanged"

    as_of = {entry.version: entry for entry in replay(events, as_of=days_ago(15)).entries}
    assert sorted(as_of) == [1, 2, 3, 4, 5]
    assert as_of[5].voided is not None


def test_no_amendment_may_be_dated_before_the_registration():
    journey = admitted()
    attend(journey, "s-1", minutes=60)  # version 3
    before = days_ago(41)  # registered 40 days ago
    expected = {"registered_at": days_ago(40).isoformat(), "occurred_at": before.isoformat()}
    error = refuses(
        journey,
        errors.BeforeRegistration,
        lambda: journey.correct(version=3, field="minutes", value=90, reason="typo", at=before, ctx=ctx()),
    )
    assert error.values == expected
    error = refuses(journey, errors.BeforeRegistration, lambda: journey.void(versions=[3], reason=ERROR, at=before, ctx=ctx()))
    assert error.values == expected
