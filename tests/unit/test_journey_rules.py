"""The care rules `ClientJourney` enforces, one behaviour per test.

Every journey here is built at a fixed clock reading (`NOW`, UTC) with a fresh command id per
command; a refused command must leave the journey exactly as it was (same version, nothing pending).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from domain import errors
from domain.journey import CLOCK_SKEW, ClientJourney, Status
from domain.levels import (
    DischargeReason,
    GroupType,
    Level,
    Medication,
    Modality,
    ReferralSource,
    SessionKind,
    SpecimenKind,
    TestResult,
    Track,
)
from domain.values import BIRTH_YEARS, Actor, Context

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
CLINICIAN = Actor("u-7", "clinician")
_command_ids = itertools.count(1)


# -- helpers ------------------------------------------------------------------------------


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def ctx(command_id: str | None = None, *, by: Actor = CLINICIAN, now: datetime = NOW) -> Context:
    return Context(by=by, now=now, command_id=command_id or f"cmd-{next(_command_ids)}")


def names(events: list) -> list[str]:
    return [type(e).__name__ for e in events]


def pending(journey: ClientJourney) -> list[str]:
    return names(journey.collect_events())


def registered(client_ref: str = "C-1", *, at: datetime | None = None) -> ClientJourney:
    return ClientJourney.register(
        client_ref,
        site="north",
        birth_year=1990,
        sex="female",
        at=at or days_ago(40),
        ctx=ctx(),
    )


def admit(
    journey: ClientJourney,
    level: Level = Level.IOP,
    *,
    track: Track | None = Track.DAY,
    hours: float = 9.0,
    at: datetime | None = None,
    command_id: str | None = None,
) -> None:
    journey.admit(
        level=level,
        site="north",
        track=track,
        planned_hours_per_week=hours,
        expected_end=date(2024, 6, 1),
        medication=Medication.NONE,
        at=at or days_ago(30),
        ctx=ctx(command_id),
    )


def admitted(level: Level = Level.IOP, *, track: Track | None = Track.DAY, at: datetime | None = None) -> ClientJourney:
    """Registered 40 days ago (version 1), admitted 30 days ago (version 2), nothing pending."""
    journey = registered()
    admit(journey, level, track=track, at=at)
    journey.collect_events()
    return journey


def in_detox(level: Level = Level.WM_INPATIENT_MONITORED, *, at: datetime | None = None) -> ClientJourney:
    journey = registered()
    journey.start_withdrawal_management(
        level=level,
        site="north",
        substances=["opioids"],
        at=at or days_ago(30),
        ctx=ctx(),
    )
    journey.collect_events()
    return journey


def attend(
    journey: ClientJourney,
    session_id: str = "s-1",
    *,
    at: datetime | None = None,
    minutes: int = 60,
    command_id: str | None = None,
) -> None:
    journey.attend_session(
        session_id=session_id,
        minutes=minutes,
        kind=SessionKind.GROUP,
        group_type=GroupType.RELAPSE_PREVENTION,
        modality=Modality.CBT,
        telehealth=False,
        at=at or days_ago(10),
        ctx=ctx(command_id),
    )


def miss(journey: ClientJourney, session_id: str = "s-9", *, at: datetime | None = None) -> None:
    journey.miss_session(
        session_id=session_id,
        minutes=180,
        kind=SessionKind.GROUP,
        excused=False,
        at=at or days_ago(10),
        ctx=ctx(),
    )


def collect(journey: ClientJourney, specimen_id: str = "sp-1", *, at: datetime | None = None) -> None:
    journey.collect_specimen(
        specimen_id=specimen_id,
        specimen=SpecimenKind.URINE,
        observed=True,
        random=True,
        at=at or days_ago(10),
        ctx=ctx(),
    )


def result(journey: ClientJourney, specimen_id: str = "sp-1", *, at: datetime | None = None) -> None:
    journey.record_result(
        specimen_id=specimen_id,
        result=TestResult.NEGATIVE,
        substances={"opioids": "negative"},
        expected_medications=[],
        at=at or days_ago(8),
        ctx=ctx(),
    )


def step_up(journey: ClientJourney, to: Level, *, track: Track | None = None, at: datetime | None = None) -> None:
    journey.step_up(to=to, reason="relapse", track=track, planned_hours_per_week=None, at=at or days_ago(10), ctx=ctx())


def step_down(journey: ClientJourney, to: Level, *, track: Track | None = None, at: datetime | None = None) -> None:
    journey.step_down(to=to, reason="progress", track=track, planned_hours_per_week=None, at=at or days_ago(10), ctx=ctx())


def plan(journey: ClientJourney, *, at: datetime | None = None) -> None:
    journey.record_plan(goals=["abstinence"], review_on=None, at=at or days_ago(10), ctx=ctx())


def discharge(journey: ClientJourney, reason: DischargeReason = DischargeReason.COMPLETED, *, at: datetime | None = None) -> None:
    journey.discharge(reason=reason, referral_onward=None, at=at or days_ago(5), ctx=ctx())


def correct(journey: ClientJourney, version: int, field: str, value: object, *, command_id: str | None = None) -> None:
    journey.correct(version=version, field=field, value=value, reason="typo", at=NOW, ctx=ctx(command_id))


def refuses(
    journey: ClientJourney, error: type[errors.CareRuleViolation], command: Callable[[], object]
) -> errors.CareRuleViolation:
    """Run a command that must be refused; nothing may be recorded and the error names the client."""
    journey.collect_events()
    version = journey.version
    with pytest.raises(error) as caught:
        command()
    assert type(caught.value) is error
    assert caught.value.client_ref == journey.client_ref
    assert journey.version == version
    assert journey.collect_events() == []
    return caught.value


# -- admission ----------------------------------------------------------------------------


def test_register_records_the_client():
    journey = registered()
    assert journey.id == ClientJourney.create_id("C-1")
    assert (journey.status, journey.level, journey.version, journey.home_site) == (Status.REGISTERED, None, 1, "north")
    assert pending(journey) == ["ClientRegistered"]


def test_a_birth_year_outside_the_recordable_years_is_refused():
    earliest, latest = BIRTH_YEARS
    for year in (earliest - 1, NOW.year + 1):
        with pytest.raises(errors.InvalidValue) as caught:
            ClientJourney.register("C-1", site="north", birth_year=year, sex=None, at=days_ago(1), ctx=ctx())
        assert str(caught.value).startswith("client C-1: birth year out of range"), str(caught.value)
    assert ClientJourney.register("C-1", site="north", birth_year=earliest, sex=None, at=days_ago(1), ctx=ctx()).version == 1
    journey = registered()
    error = refuses(journey, errors.InvalidValue, lambda: correct(journey, 1, "birth_year", latest + 1))
    assert error.detail == f"birth_year: expected a birth year between {earliest} and {latest}"
    refuses(journey, errors.InvalidValue, lambda: correct(journey, 1, "birth_year", earliest - 1))


def test_session_before_admission_is_refused():
    journey = registered()
    error = refuses(journey, errors.NotAdmitted, lambda: attend(journey))
    assert str(error) == "client C-1: cannot record a session: client is not admitted to a level of care"
    assert error.values == {}
    refuses(journey, errors.NotAdmitted, lambda: miss(journey))
    refuses(journey, errors.NotAdmitted, lambda: collect(journey))
    refuses(journey, errors.NotAdmitted, lambda: plan(journey))
    refuses(journey, errors.NotAdmitted, lambda: step_up(journey, Level.PHP, track=Track.DAY))
    refuses(journey, errors.NotAdmitted, lambda: step_down(journey, Level.OUTPATIENT, track=Track.DAY))
    refuses(journey, errors.NotAdmitted, lambda: discharge(journey))
    assert journey.status is Status.REGISTERED


def test_admission_records_level_site_and_track():
    journey = registered()
    journey.collect_events()
    admit(journey, Level.IOP, track=Track.EVENING, hours=9, at=days_ago(30))
    assert pending(journey) == ["AdmittedToLevel"]
    assert (journey.status, journey.level, journey.site, journey.track) == (
        Status.IN_TREATMENT,
        Level.IOP,
        "north",
        Track.EVENING,
    )
    assert (journey.version, journey.episodes, journey.admitted_at, journey.level_since) == (2, 1, days_ago(30), days_ago(30))


def test_admission_while_admitted_is_refused():
    journey = admitted(Level.IOP)
    error = refuses(journey, errors.AlreadyAdmitted, lambda: admit(journey, Level.PHP, at=days_ago(5)))
    assert error.values == {"level": "2.1"}
    refuses(
        journey,
        errors.AlreadyAdmitted,
        lambda: journey.start_withdrawal_management(
            level=Level.WM_RESIDENTIAL, site="north", substances=[], at=days_ago(5), ctx=ctx()
        ),
    )
    assert (journey.level, journey.episodes) == (Level.IOP, 1)


def test_admit_refuses_wm_level():
    journey = registered()
    error = refuses(journey, errors.WrongLevelKind, lambda: admit(journey, Level.WM_RESIDENTIAL, track=None))
    assert error.values == {"level": "3.2-WM"}
    assert error.detail == "start withdrawal management instead of admitting"
    assert journey.level is None


def test_start_detox_refuses_non_wm_level():
    journey = registered()
    error = refuses(
        journey,
        errors.WrongLevelKind,
        lambda: journey.start_withdrawal_management(
            level=Level.RESIDENTIAL_HIGH, site="north", substances=["alcohol"], at=days_ago(5), ctx=ctx()
        ),
    )
    assert error.values == {"level": "3.5"}
    assert journey.level is None


def test_start_detox_admits_to_the_wm_level():
    journey = registered()
    journey.collect_events()
    journey.start_withdrawal_management(
        level=Level.WM_AMBULATORY,
        site="north",
        substances=["alcohol"],
        at=days_ago(20),
        ctx=ctx(),
    )
    assert pending(journey) == ["WithdrawalManagementStarted"]
    assert (journey.status, journey.level, journey.track, journey.detox_completed) == (
        Status.IN_TREATMENT,
        Level.WM_AMBULATORY,
        Track.DAY,
        None,
    )


def test_ambulatory_level_needs_day_or_evening_track():
    journey = registered()
    error = refuses(journey, errors.InvalidValue, lambda: admit(journey, Level.IOP, track=None))
    assert error.values == {"level": "2.1", "track": "None"}
    error = refuses(journey, errors.InvalidValue, lambda: admit(journey, Level.PHP, track=Track.RESIDENTIAL))
    assert error.values == {"level": "2.5", "track": "residential"}
    refuses(journey, errors.InvalidValue, lambda: admit(journey, Level.RESIDENTIAL_HIGH, track=Track.DAY))

    admit(journey, Level.RESIDENTIAL_HIGH, track=None)  # 24-hour levels default to the residential track
    assert journey.track is Track.RESIDENTIAL
    # leaving the 24-hour setting for an ambulatory level must name the new track
    refuses(journey, errors.InvalidValue, lambda: step_down(journey, Level.PHP, track=None))
    step_down(journey, Level.PHP, track=Track.EVENING)
    assert (journey.level, journey.track) == (Level.PHP, Track.EVENING)


def test_step_within_the_same_setting_keeps_the_track():
    journey = admitted(Level.IOP, track=Track.EVENING)
    step_down(journey, Level.OUTPATIENT, at=days_ago(10))
    assert (journey.level, journey.track, journey.planned_hours_per_week) == (Level.OUTPATIENT, Track.EVENING, 9.0)


def test_negative_planned_hours_are_refused():
    journey = registered()
    error = refuses(journey, errors.InvalidValue, lambda: admit(journey, hours=-1))
    assert error.values == {"hours": "-1"}


def test_birth_year_out_of_range_is_refused():
    with pytest.raises(errors.InvalidValue) as caught:
        ClientJourney.register("C-9", site="north", birth_year=1850, sex=None, at=days_ago(1), ctx=ctx())
    assert (caught.value.client_ref, caught.value.values) == ("C-9", {"birth_year": "1850"})


# -- steps --------------------------------------------------------------------------------


def test_step_down_must_lower_intensity():
    journey = admitted(Level.IOP)
    error = refuses(journey, errors.StepDirectionError, lambda: step_down(journey, Level.PHP))
    assert error.values == {"from": "2.1", "to": "2.5"}
    refuses(journey, errors.StepDirectionError, lambda: step_down(journey, Level.IOP))  # same level is no step

    step_down(journey, Level.OUTPATIENT, at=days_ago(10))
    assert pending(journey) == ["SteppedDown"]
    assert (journey.level, journey.level_since, journey.version) == (Level.OUTPATIENT, days_ago(10), 3)


def test_step_up_must_raise_intensity():
    journey = admitted(Level.PHP)
    error = refuses(journey, errors.StepDirectionError, lambda: step_up(journey, Level.IOP))
    assert error.values == {"from": "2.5", "to": "2.1"}
    assert error.detail == "step up must raise intensity"
    refuses(journey, errors.StepDirectionError, lambda: step_up(journey, Level.PHP))

    step_up(journey, Level.RESIDENTIAL_HIGH, at=days_ago(10))
    assert pending(journey) == ["SteppedUp"]
    assert (journey.level, journey.track, journey.version) == (Level.RESIDENTIAL_HIGH, Track.RESIDENTIAL, 3)


def test_withdrawal_management_ranks_above_every_other_level():
    journey = admitted(Level.INPATIENT_MANAGED, track=None)
    step_up(journey, Level.WM_AMBULATORY, track=Track.DAY, at=days_ago(10))  # 4 -> 1-WM is a step up
    assert journey.level is Level.WM_AMBULATORY
    refuses(journey, errors.StepDirectionError, lambda: step_up(journey, Level.INPATIENT_MANAGED, at=days_ago(9)))


def test_step_cannot_precede_the_current_level():
    journey = admitted(Level.IOP)
    step_up(journey, Level.PHP, at=days_ago(10))
    error = refuses(journey, errors.OutOfOrder, lambda: step_up(journey, Level.RESIDENTIAL_HIGH, at=days_ago(12)))
    assert error.values == {"level": "2.5", "level_since": days_ago(10).isoformat(), "occurred_at": days_ago(12).isoformat()}
    refuses(journey, errors.OutOfOrder, lambda: discharge(journey, at=days_ago(11)))
    assert journey.level is Level.PHP


def test_step_out_of_withdrawal_management_needs_completed_detox():
    journey = in_detox(Level.WM_INPATIENT_MONITORED)
    error = refuses(journey, errors.DetoxNotCompleted, lambda: step_down(journey, Level.IOP, track=Track.DAY))
    assert error.values == {"level": "3.7-WM", "to": "2.1"}

    step_down(journey, Level.WM_RESIDENTIAL, at=days_ago(25))  # between WM levels needs no completion
    journey.complete_detox(completed=False, at=days_ago(24), ctx=ctx())  # left early is not completed
    assert journey.detox_completed is False
    refuses(journey, errors.DetoxNotCompleted, lambda: step_down(journey, Level.IOP, track=Track.DAY, at=days_ago(20)))


def test_completed_detox_allows_the_step_down():
    journey = in_detox(Level.WM_INPATIENT_MONITORED)
    journey.complete_detox(completed=True, at=days_ago(25), ctx=ctx())
    step_down(journey, Level.RESIDENTIAL_HIGH, at=days_ago(24))
    assert pending(journey) == ["DetoxCompleted", "SteppedDown"]
    assert (journey.level, journey.track, journey.episodes) == (Level.RESIDENTIAL_HIGH, Track.RESIDENTIAL, 1)


def test_second_withdrawal_management_in_an_episode_needs_its_own_completion():
    journey = in_detox(Level.WM_INPATIENT_MONITORED)
    journey.complete_detox(completed=True, at=days_ago(28), ctx=ctx())
    step_down(journey, Level.IOP, track=Track.DAY, at=days_ago(27))
    step_up(journey, Level.WM_INPATIENT_MONITORED, at=days_ago(20))
    refuses(journey, errors.DetoxNotCompleted, lambda: step_down(journey, Level.IOP, track=Track.DAY, at=days_ago(15)))


def test_detox_completion_outside_wm_is_refused():
    journey = admitted(Level.IOP)
    error = refuses(
        journey, errors.NotInWithdrawalManagement, lambda: journey.complete_detox(completed=True, at=days_ago(5), ctx=ctx())
    )
    assert error.values == {"level": "2.1", "detox_recorded": "None"}

    detox = in_detox()
    detox.complete_detox(completed=True, at=days_ago(25), ctx=ctx())
    error = refuses(
        detox, errors.NotInWithdrawalManagement, lambda: detox.complete_detox(completed=True, at=days_ago(24), ctx=ctx())
    )
    assert error.values == {"level": "3.7-WM", "detox_recorded": "True"}


# -- time ---------------------------------------------------------------------------------


def test_occurred_at_in_future_is_refused():
    journey = admitted()
    later = NOW + CLOCK_SKEW + timedelta(seconds=1)
    error = refuses(journey, errors.OccurredInFuture, lambda: attend(journey, at=later))
    assert error.values == {"occurred_at": later.isoformat(), "now": NOW.isoformat()}
    with pytest.raises(errors.OccurredInFuture):
        ClientJourney.register("C-2", site="north", birth_year=None, sex=None, at=NOW + timedelta(days=1), ctx=ctx())

    attend(journey, "s-skew", at=NOW + CLOCK_SKEW)  # a caller's clock may run a little ahead
    assert pending(journey) == ["SessionAttended"]


def test_naive_occurred_at_is_refused():
    journey = admitted()
    naive = datetime(2024, 2, 20, 9, 0)  # noqa: DTZ001 - the point of the test
    error = refuses(journey, errors.NaiveTimestamp, lambda: attend(journey, at=naive))
    assert error.values == {"occurred_at": "2024-02-20T09:00:00"}
    with pytest.raises(errors.NaiveTimestamp):
        ClientJourney.register("C-2", site="north", birth_year=None, sex=None, at=naive, ctx=ctx())


def test_late_occurred_at_is_accepted():
    journey = registered(at=days_ago(400))
    admit(journey, at=days_ago(300))
    journey.collect_events()
    attend(journey, "s-old", at=days_ago(200))  # recorded 200 days late
    collect(journey, "sp-1", at=days_ago(20))
    result(journey, "sp-1", at=days_ago(13))  # the lab result came a week after collection
    assert pending(journey) == ["SessionAttended", "DrugTestCollected", "DrugTestResulted"]
    assert journey.entries[journey.results["sp-1"]].at == days_ago(13)


def test_event_before_admission_time_is_refused():
    journey = admitted(at=days_ago(30))
    error = refuses(journey, errors.BeforeAdmission, lambda: attend(journey, at=days_ago(31)))
    assert error.values == {"admitted_at": days_ago(30).isoformat(), "occurred_at": days_ago(31).isoformat()}
    assert error.detail == "cannot record a session before the admission"
    refuses(journey, errors.BeforeAdmission, lambda: collect(journey, at=days_ago(31)))
    refuses(journey, errors.BeforeAdmission, lambda: step_up(journey, Level.PHP, at=days_ago(31)))
    refuses(journey, errors.BeforeAdmission, lambda: discharge(journey, at=days_ago(31)))


# -- discharge, alumni, death -------------------------------------------------------------


def test_discharge_closes_the_episode():
    journey = admitted()
    discharge(journey, at=days_ago(5))
    assert pending(journey) == ["Discharged"]
    assert (journey.status, journey.level, journey.site, journey.track) == (Status.DISCHARGED, None, None, None)
    assert journey.discharged_at == days_ago(5)


def test_nothing_clinical_after_discharge():
    journey = admitted()
    discharge(journey, at=days_ago(5))
    error = refuses(journey, errors.JourneyClosed, lambda: attend(journey, at=days_ago(2)))
    assert error.values == {"status": "discharged"}
    assert str(error) == "client C-1: cannot record a session: client is discharged (status discharged)"
    for command in (
        lambda: miss(journey, at=days_ago(2)),
        lambda: collect(journey, at=days_ago(2)),
        lambda: plan(journey, at=days_ago(2)),
        lambda: step_up(journey, Level.PHP, track=Track.DAY, at=days_ago(2)),
        lambda: step_down(journey, Level.OUTPATIENT, track=Track.DAY, at=days_ago(2)),
        lambda: journey.complete_detox(completed=True, at=days_ago(2), ctx=ctx()),
        lambda: discharge(journey, at=days_ago(2)),
    ):
        refuses(journey, errors.JourneyClosed, command)

    journey.enrol_in_alumni(program="alumni", at=days_ago(4), ctx=ctx())
    error = refuses(journey, errors.JourneyClosed, lambda: attend(journey, at=days_ago(2)))
    assert error.values == {"status": "alumni"}


def test_alumni_and_readmission_allowed_after_discharge():
    journey = admitted()
    discharge(journey, at=days_ago(10))
    journey.enrol_in_alumni(program="alumni", at=days_ago(9), ctx=ctx())
    journey.attend_alumni_activity(activity="monthly dinner", at=days_ago(8), ctx=ctx())
    assert journey.status is Status.ALUMNI
    admit(journey, Level.PHP, track=Track.DAY, at=days_ago(3))
    assert pending(journey) == ["Discharged", "EnrolledInAlumni", "AlumniActivityAttended", "AdmittedToLevel"]
    assert (journey.status, journey.level, journey.episodes, journey.admitted_at) == (
        Status.IN_TREATMENT,
        Level.PHP,
        2,
        days_ago(3),
    )
    attend(journey, "s-2", at=days_ago(2))  # the new episode takes sessions again
    assert pending(journey) == ["SessionAttended"]


def test_readmission_cannot_precede_the_last_discharge():
    journey = admitted()
    discharge(journey, at=days_ago(10))
    error = refuses(journey, errors.OutOfOrder, lambda: admit(journey, at=days_ago(11)))
    assert error.values == {"discharged_at": days_ago(10).isoformat(), "occurred_at": days_ago(11).isoformat()}


def test_alumni_rules():
    journey = admitted()
    error = refuses(journey, errors.NotDischarged, lambda: journey.enrol_in_alumni(program="alumni", at=days_ago(2), ctx=ctx()))
    assert error.values == {"status": "in_treatment"}
    refuses(journey, errors.NotAlumni, lambda: journey.attend_alumni_activity(activity="walk", at=days_ago(2), ctx=ctx()))
    discharge(journey, at=days_ago(10))
    refuses(journey, errors.OutOfOrder, lambda: journey.enrol_in_alumni(program="alumni", at=days_ago(11), ctx=ctx()))
    journey.enrol_in_alumni(program="alumni", at=days_ago(9), ctx=ctx())
    refuses(journey, errors.AlreadyAlumni, lambda: journey.enrol_in_alumni(program="again", at=days_ago(8), ctx=ctx()))


def test_nothing_but_corrections_after_death():
    journey = admitted()
    collect(journey, "sp-1", at=days_ago(7))
    discharge(journey, DischargeReason.DIED, at=days_ago(5))
    assert (journey.status, journey.level) == (Status.DECEASED, None)
    error = refuses(journey, errors.Deceased, lambda: attend(journey, at=days_ago(2)))
    assert str(error) == "client C-1: client died: only a correction may follow"
    for command in (
        lambda: journey.refer(source=ReferralSource.HOSPITAL, referred_level=None, at=days_ago(2), ctx=ctx()),
        lambda: journey.assess(ratings=[1] * 6, recommended=Level.IOP, clinician="dr", at=days_ago(2), ctx=ctx()),
        lambda: admit(journey, at=days_ago(2)),
        lambda: journey.start_withdrawal_management(
            level=Level.WM_RESIDENTIAL, site="north", substances=[], at=days_ago(2), ctx=ctx()
        ),
        lambda: collect(journey, "sp-2", at=days_ago(2)),
        lambda: result(journey, "sp-1", at=days_ago(2)),
        lambda: discharge(journey, at=days_ago(2)),
    ):
        refuses(journey, errors.Deceased, command)

    correct(journey, 4, "referral_onward", "hospice")  # the Discharged entry
    assert pending(journey) == ["EntryCorrected"]
    assert journey.status is Status.DECEASED


def test_alumni_after_death_is_refused_as_deceased():
    journey = admitted()
    discharge(journey, DischargeReason.DIED, at=days_ago(5))
    refuses(journey, errors.Deceased, lambda: journey.enrol_in_alumni(program="alumni", at=days_ago(2), ctx=ctx()))
    refuses(journey, errors.Deceased, lambda: journey.attend_alumni_activity(activity="walk", at=days_ago(2), ctx=ctx()))


# -- drug tests and sessions --------------------------------------------------------------


def test_duplicate_specimen_is_refused():
    journey = admitted()
    collect(journey, "sp-1")
    error = refuses(journey, errors.DuplicateSpecimen, lambda: collect(journey, "sp-1", at=days_ago(9)))
    assert error.values == {"specimen_id": "sp-1"}


def test_result_for_unknown_specimen_is_refused():
    journey = admitted()
    error = refuses(journey, errors.UnknownSpecimen, lambda: result(journey, "sp-404"))
    assert error.values == {"specimen_id": "sp-404"}


def test_second_result_for_specimen_is_refused():
    journey = admitted()
    collect(journey, "sp-1", at=days_ago(10))
    result(journey, "sp-1", at=days_ago(8))
    error = refuses(journey, errors.SpecimenAlreadyResulted, lambda: result(journey, "sp-1", at=days_ago(7)))
    assert error.values == {"specimen_id": "sp-1"}


def test_result_before_collection_is_refused():
    journey = admitted()
    collect(journey, "sp-1", at=days_ago(10))
    error = refuses(journey, errors.ResultBeforeCollection, lambda: result(journey, "sp-1", at=days_ago(11)))
    assert error.values == {
        "specimen_id": "sp-1",
        "collected_at": days_ago(10).isoformat(),
        "occurred_at": days_ago(11).isoformat(),
    }
    assert (journey.entries[journey.specimens["sp-1"]].at, "sp-1" in journey.results) == (days_ago(10), False)


def test_result_after_discharge_for_episode_specimen_is_accepted():
    journey = admitted()
    collect(journey, "sp-1", at=days_ago(7))
    discharge(journey, at=days_ago(6))
    journey.collect_events()
    result(journey, "sp-1", at=days_ago(3))
    assert pending(journey) == ["DrugTestResulted"]
    assert journey.status is Status.DISCHARGED
    assert (journey.entries[journey.specimens["sp-1"]].at, "sp-1" in journey.results) == (days_ago(7), True)


def test_duplicate_session_id_is_refused():
    journey = admitted()
    attend(journey, "s-1", at=days_ago(10))
    error = refuses(journey, errors.DuplicateSession, lambda: attend(journey, "s-1", at=days_ago(9)))
    assert error.values == {"session_id": "s-1"}
    refuses(journey, errors.DuplicateSession, lambda: miss(journey, "s-1", at=days_ago(9)))


def test_session_minutes_must_be_positive():
    journey = admitted()
    error = refuses(journey, errors.InvalidValue, lambda: attend(journey, minutes=0))
    assert error.values == {"minutes": "0"}


def test_repeated_command_id_records_nothing():
    journey = admitted()
    attend(journey, "s-1", at=days_ago(10), command_id="import-line-7")
    assert (pending(journey), journey.version) == (["SessionAttended"], 3)
    attend(journey, "s-1", at=days_ago(10), command_id="import-line-7")  # the import ran again
    attend(journey, "s-2", at=days_ago(9), command_id="import-line-7")  # even different content
    admit(journey, Level.PHP, command_id="import-line-7")  # even a command that would be refused
    assert (pending(journey), journey.version, journey.sessions) == ([], 3, {"s-1"})


def test_refused_command_id_can_be_retried():
    journey = admitted()
    with pytest.raises(errors.InvalidValue):
        attend(journey, "s-1", minutes=0, command_id="retry-1")
    attend(journey, "s-1", minutes=60, command_id="retry-1")
    assert pending(journey) == ["SessionAttended"]


def test_asam_ratings_must_be_six_values_0_to_4():
    journey = registered()
    journey.collect_events()

    def assess(ratings: list[int]) -> None:
        journey.assess(ratings=ratings, recommended=Level.IOP, clinician="dr-k", at=days_ago(35), ctx=ctx())

    error = refuses(journey, errors.InvalidValue, lambda: assess([1, 2, 3, 4, 0]))
    assert error.values == {"ratings": "[1, 2, 3, 4, 0]"}
    refuses(journey, errors.InvalidValue, lambda: assess([1, 2, 3, 4, 0, 5]))
    refuses(journey, errors.InvalidValue, lambda: assess([1, 2, 3, 4, 0, -1]))
    refuses(journey, errors.InvalidValue, lambda: assess([1] * 7))
    assess([0, 1, 2, 3, 4, 4])
    assert pending(journey) == ["AssessmentCompleted"]


# -- corrections --------------------------------------------------------------------------


def test_correction_points_at_the_entry_and_keeps_original():
    journey = admitted()
    attend(journey, "s-1", minutes=60, at=days_ago(10))
    correct(journey, 3, "minutes", 90)
    session, corrected = journey.collect_events()
    assert (type(session).__name__, session.minutes, session.originator_version) == ("SessionAttended", 60, 3)
    assert type(corrected).__name__ == "EntryCorrected"
    assert (corrected.corrects_version, corrected.corrects_type, corrected.field) == (3, "SessionAttended", "minutes")
    assert (corrected.previous_value, corrected.corrected_value, corrected.reason) == (60.0, 90.0, "typo")
    assert (corrected.recorded_by, corrected.occurred_at, journey.version) == (CLINICIAN, NOW, 4)
    entry = journey.entries[3]
    assert (entry.type, entry.at, entry.key) == ("SessionAttended", days_ago(10), "s-1")
    assert entry.fields == {"minutes": 90.0, "kind": "group", "telehealth": False, "occurred_at": days_ago(10).isoformat()}
    # the next correction starts from the corrected value
    refuses(journey, errors.NothingToCorrect, lambda: correct(journey, 3, "minutes", 90))


def test_correction_of_unknown_entry_is_refused():
    journey = admitted()
    attend(journey, "s-1")
    correct(journey, 3, "minutes", 90)
    error = refuses(journey, errors.UnknownEntry, lambda: correct(journey, 99, "minutes", 90))
    assert error.values == {"version": "99"}
    error = refuses(journey, errors.NotCorrectable, lambda: correct(journey, 4, "field", "x"))  # a correction is not an entry
    assert error.detail == "#4 is a correction or a void: correct the entry it refers to instead"


def test_correction_of_uncorrectable_field_is_refused():
    journey = admitted()
    error = refuses(journey, errors.NotCorrectable, lambda: correct(journey, 2, "level", "2.5"))
    assert error.values == {
        "entry": "AdmittedToLevel #2",
        "field": "level",
        "correctable": "occurred_at, site, track, planned_hours_per_week, expected_end",
    }
    attend(journey, "s-1")
    refuses(journey, errors.NotCorrectable, lambda: correct(journey, 3, "session_id", "s-2"))


def test_correction_with_invalid_value_is_refused():
    journey = admitted()
    attend(journey, "s-1")
    error = refuses(journey, errors.InvalidValue, lambda: correct(journey, 3, "minutes", -5))
    assert (error.detail, error.values) == ("minutes: expected a positive number", {"value": "-5"})
    refuses(journey, errors.InvalidValue, lambda: correct(journey, 3, "occurred_at", "2024-02-20T09:00:00"))
    refuses(journey, errors.OccurredInFuture, lambda: correct(journey, 3, "occurred_at", (NOW + timedelta(days=1)).isoformat()))


def test_correction_with_same_value_is_refused():
    journey = admitted(Level.IOP, track=Track.DAY)
    error = refuses(journey, errors.NothingToCorrect, lambda: correct(journey, 2, "track", "day"))
    assert error.values == {"entry": "AdmittedToLevel #2", "field": "track", "value": "day"}
    refuses(journey, errors.NothingToCorrect, lambda: correct(journey, 2, "planned_hours_per_week", 9))
    refuses(journey, errors.NothingToCorrect, lambda: correct(journey, 1, "birth_year", 1990))


def test_corrected_transition_time_must_stay_in_order():
    journey = admitted(Level.IOP, at=days_ago(30))  # version 2
    step_up(journey, Level.PHP, at=days_ago(20))  # version 3
    discharge(journey, at=days_ago(10))  # version 4
    error = refuses(journey, errors.OutOfOrder, lambda: correct(journey, 3, "occurred_at", days_ago(31).isoformat()))
    assert error.values == {
        "earlier": days_ago(30).isoformat(),
        "later": days_ago(10).isoformat(),
        "corrected": days_ago(31).isoformat(),
    }
    refuses(journey, errors.OutOfOrder, lambda: correct(journey, 3, "occurred_at", days_ago(9).isoformat()))
    refuses(journey, errors.OutOfOrder, lambda: correct(journey, 2, "occurred_at", days_ago(19).isoformat()))

    correct(journey, 3, "occurred_at", days_ago(15).isoformat())
    assert pending(journey) == ["EntryCorrected"]
    assert journey.entries[3].fields["occurred_at"] == days_ago(15).isoformat()
    # later corrections check against the corrected times
    refuses(journey, errors.OutOfOrder, lambda: correct(journey, 4, "occurred_at", days_ago(16).isoformat()))


def test_correcting_current_track_changes_state():
    journey = admitted(Level.IOP, track=Track.DAY)
    correct(journey, 2, "track", "evening")
    correct(journey, 2, "site", "south")
    correct(journey, 2, "planned_hours_per_week", 12)
    correct(journey, 2, "occurred_at", days_ago(29).isoformat())
    assert pending(journey) == ["EntryCorrected"] * 4
    assert (journey.level, journey.track, journey.site) == (Level.IOP, Track.EVENING, "south")
    assert (journey.planned_hours_per_week, journey.level_since) == (12.0, days_ago(29))


def test_correcting_an_earlier_placement_leaves_current_state():
    journey = admitted(Level.IOP, track=Track.DAY)
    step_down(journey, Level.OUTPATIENT, at=days_ago(10))  # keeps the day track
    correct(journey, 2, "track", "evening")
    assert (journey.level, journey.track) == (Level.OUTPATIENT, Track.DAY)
    assert journey.entries[2].fields["track"] == "evening"


def test_corrected_track_must_suit_the_level():
    journey = admitted(Level.IOP, track=Track.DAY)
    refuses(journey, errors.InvalidValue, lambda: correct(journey, 2, "track", "residential"))


def test_corrected_admission_time_moves_the_admission():
    journey = admitted(at=days_ago(30))
    correct(journey, 2, "occurred_at", days_ago(25).isoformat())
    # a session between the recorded and the corrected admission time is before the admission
    refuses(journey, errors.BeforeAdmission, lambda: attend(journey, at=days_ago(27)))
    assert journey.admitted_at == days_ago(25)


def test_corrected_discharge_time_moves_the_discharge():
    journey = admitted()
    discharge(journey, at=days_ago(10))  # version 3
    correct(journey, 3, "occurred_at", days_ago(5).isoformat())
    # enrolment between the recorded and the corrected discharge time precedes the discharge
    refuses(journey, errors.OutOfOrder, lambda: journey.enrol_in_alumni(program="alumni", at=days_ago(7), ctx=ctx()))
    assert journey.discharged_at == days_ago(5)


# -- messages, identity, recorded facts ---------------------------------------------------


def test_error_message_names_client_rule_and_values():
    journey = admitted(Level.IOP)
    error = refuses(journey, errors.StepDirectionError, lambda: step_down(journey, Level.PHP))
    assert str(error) == "client C-1: step down must lower intensity (from 2.1, to 2.5)"
    collect(journey, "sp-1")
    error = refuses(journey, errors.DuplicateSpecimen, lambda: collect(journey, "sp-1"))
    assert str(error) == "client C-1: specimen id was already collected (specimen_id sp-1)"
    assert errors.AlreadyRegistered("C-1").args == ("client C-1: client is already registered",)


def test_same_client_ref_gives_same_journey_id():
    assert ClientJourney.create_id("C-1") == ClientJourney.create_id("C-1")
    assert ClientJourney.create_id("C-1") != ClientJourney.create_id("C-2")
    assert registered("C-1").id == registered("C-1").id == ClientJourney.create_id("C-1")


def test_every_event_records_when_who_and_which_command():
    nurse = Actor("u-9", "nurse")
    journey = ClientJourney.register("C-1", site="north", birth_year=None, sex=None, at=days_ago(40), ctx=ctx("c-01", by=nurse))
    journey.refer(source=ReferralSource.COURT, referred_level=Level.WM_RESIDENTIAL, at=days_ago(39), ctx=ctx("c-02"))
    journey.assess(
        ratings=[3, 2, 1, 2, 3, 4], recommended=Level.WM_RESIDENTIAL, clinician="dr-k", at=days_ago(38), ctx=ctx("c-03")
    )
    journey.start_withdrawal_management(
        level=Level.WM_RESIDENTIAL, site="north", substances=["opioids"], at=days_ago(37), ctx=ctx("c-04")
    )
    journey.complete_detox(completed=True, at=days_ago(33), ctx=ctx("c-05"))
    journey.step_down(
        to=Level.RESIDENTIAL_HIGH, reason="detox done", track=None, planned_hours_per_week=30, at=days_ago(32), ctx=ctx("c-06")
    )
    journey.record_plan(goals=["abstinence"], review_on=date(2024, 4, 1), at=days_ago(31), ctx=ctx("c-07"))
    journey.attend_session(
        session_id="s-1",
        minutes=90,
        kind=SessionKind.INDIVIDUAL,
        group_type=None,
        modality=Modality.MI,
        telehealth=True,
        at=days_ago(30),
        ctx=ctx("c-08"),
    )
    journey.miss_session(session_id="s-2", minutes=180, kind=SessionKind.GROUP, excused=True, at=days_ago(29), ctx=ctx("c-09"))
    journey.collect_specimen(
        specimen_id="sp-1", specimen=SpecimenKind.ORAL_FLUID, observed=False, random=False, at=days_ago(28), ctx=ctx("c-10")
    )
    journey.record_result(
        specimen_id="sp-1",
        result=TestResult.POSITIVE,
        substances={"fentanyl": "positive"},
        expected_medications=[],
        at=days_ago(27),
        ctx=ctx("c-11"),
    )
    journey.step_up(
        to=Level.INPATIENT_MONITORED, reason="use", track=None, planned_hours_per_week=None, at=days_ago(26), ctx=ctx("c-12")
    )
    journey.discharge(reason=DischargeReason.COMPLETED, referral_onward="IOP", at=days_ago(10), ctx=ctx("c-13"))
    journey.enrol_in_alumni(program="alumni", at=days_ago(9), ctx=ctx("c-14"))
    journey.attend_alumni_activity(activity="dinner", at=days_ago(8), ctx=ctx("c-15"))
    journey.correct(version=8, field="telehealth", value=False, reason="was in person", at=days_ago(1), ctx=ctx("c-16"))

    events = journey.collect_events()
    assert names(events) == [
        "ClientRegistered",
        "ReferralReceived",
        "AssessmentCompleted",
        "WithdrawalManagementStarted",
        "DetoxCompleted",
        "SteppedDown",
        "TreatmentPlanRecorded",
        "SessionAttended",
        "SessionMissed",
        "DrugTestCollected",
        "DrugTestResulted",
        "SteppedUp",
        "Discharged",
        "EnrolledInAlumni",
        "AlumniActivityAttended",
        "EntryCorrected",
    ]
    assert [e.command_id for e in events] == [f"c-{n:02}" for n in range(1, 17)]
    assert [e.originator_version for e in events] == list(range(1, 17))
    assert events[0].recorded_by == nurse
    assert all(e.recorded_by == CLINICIAN for e in events[1:])
    assert all(e.occurred_at.utcoffset() == timedelta(0) for e in events)
    assert [e.occurred_at for e in events[:-1]] == [
        days_ago(d) for d in (40, 39, 38, 37, 33, 32, 31, 30, 29, 28, 27, 26, 10, 9, 8)
    ]
    assert events[-1].occurred_at == days_ago(1)
    assert (events[5].from_level, events[5].to_level, events[5].planned_hours_per_week) == (
        Level.WM_RESIDENTIAL,
        Level.RESIDENTIAL_HIGH,
        30.0,
    )
    assert (journey.status, journey.version, journey.commands) == (Status.ALUMNI, 16, {f"c-{n:02}" for n in range(1, 17)})


def test_rebuilt_journey_has_the_same_state():
    journey = registered()
    admit(journey, Level.IOP, track=Track.DAY)
    attend(journey, "s-1")
    correct(journey, 2, "track", "evening")
    step_up(journey, Level.PHP, at=days_ago(5))
    rebuilt = None
    for event in journey.collect_events():
        rebuilt = event.mutate(rebuilt)
    assert isinstance(rebuilt, ClientJourney)
    state = ("level", "track", "site", "status", "version", "sessions", "entries", "transitions", "level_since", "commands")
    assert {name: getattr(rebuilt, name) for name in state} == {name: getattr(journey, name) for name in state}
