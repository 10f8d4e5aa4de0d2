"""A client's journey through the continuum of care: one aggregate per client.

Public methods check the care rules and raise a `CareRuleViolation` naming the client, the rule
and the values; only then do they call the `@event` method, whose body changes state and reruns
whenever the journey is rebuilt. A command whose id the journey has seen is a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain import errors
from domain import events as ev
from domain.corrections import CORRECTABLE, TRANSITIONS, Scalar, as_scalar
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
from domain.values import Actor, Context

LEVEL_KEY = "_level"  # the level a transition entered, kept beside its correctable fields

CLOCK_SKEW = timedelta(minutes=2)
"""How far ahead of our clock a caller's `occurred_at` may be before it is refused as future."""

ASAM_DIMENSIONS = 6
MAX_RATING = 4


class Status(Enum):
    REGISTERED = "registered"
    IN_TREATMENT = "in_treatment"
    DISCHARGED = "discharged"
    ALUMNI = "alumni"
    DECEASED = "deceased"


class ClientJourney(Aggregate):
    # The catalogue lives in domain.events; the library subclasses each event on the aggregate.
    ClientRegistered = ev.ClientRegistered
    ReferralReceived = ev.ReferralReceived
    AssessmentCompleted = ev.AssessmentCompleted
    WithdrawalManagementStarted = ev.WithdrawalManagementStarted
    DetoxCompleted = ev.DetoxCompleted
    AdmittedToLevel = ev.AdmittedToLevel
    TreatmentPlanRecorded = ev.TreatmentPlanRecorded
    SessionAttended = ev.SessionAttended
    SessionMissed = ev.SessionMissed
    DrugTestCollected = ev.DrugTestCollected
    DrugTestResulted = ev.DrugTestResulted
    SteppedUp = ev.SteppedUp
    SteppedDown = ev.SteppedDown
    Discharged = ev.Discharged
    EnrolledInAlumni = ev.EnrolledInAlumni
    AlumniActivityAttended = ev.AlumniActivityAttended
    EntryCorrected = ev.EntryCorrected

    @staticmethod
    def create_id(client_ref: str) -> UUID:
        """The same client reference always names the same journey."""
        return uuid5(NAMESPACE_URL, f"/care-continuum/clients/{client_ref}")

    @event(ev.ClientRegistered)
    def __init__(
        self,
        client_ref: str,
        site: str,
        birth_year: int | None,
        sex: str | None,
        occurred_at: datetime,
        recorded_by: Actor,
        command_id: str,
    ) -> None:
        self.client_ref = client_ref
        self.home_site = site
        self.status = Status.REGISTERED
        self.level: Level | None = None
        self.level_since: datetime | None = None
        self.site: str | None = None
        self.track: Track | None = None
        self.planned_hours_per_week = 0.0
        self.admitted_at: datetime | None = None
        self.discharged_at: datetime | None = None
        self.episodes = 0
        self.detox_completed: bool | None = None
        self.specimens: dict[str, tuple[datetime, bool]] = {}
        self.sessions: set[str] = set()
        self.commands = {command_id}
        self.entries: dict[int, tuple[str, dict[str, Scalar]]] = {}
        self.transitions: list[int] = []
        self.episode_opened_by: int | None = None  # version of the admission that opened the episode
        self.discharged_by: int | None = None  # version of the last discharge
        self._remember(1, "ClientRegistered", {"site": site, "birth_year": birth_year, "sex": sex}, occurred_at)

    @classmethod
    def register(
        cls, client_ref: str, *, site: str, birth_year: int | None, sex: str | None, at: datetime, ctx: Context,
    ) -> ClientJourney:
        _check_time(client_ref, at, ctx.now)
        if birth_year is not None and not 1900 <= birth_year <= ctx.now.year:  # noqa: PLR2004
            raise errors.InvalidValue(client_ref, "birth year out of range", birth_year=birth_year)
        return cls(client_ref, site, birth_year, sex, at, ctx.by, ctx.command_id)

    # -- commands -------------------------------------------------------------------------

    def refer(self, *, source: ReferralSource, referred_level: Level | None, at: datetime, ctx: Context) -> None:
        if self._seen(ctx):
            return
        self._require_alive(at, ctx)
        self._referral_received(source=source, referred_level=referred_level, **self._facts(at, ctx))

    def assess(self, *, ratings: list[int], recommended: Level, clinician: str, at: datetime, ctx: Context) -> None:
        if self._seen(ctx):
            return
        self._require_alive(at, ctx)
        if len(ratings) != ASAM_DIMENSIONS or any(not 0 <= r <= MAX_RATING for r in ratings):
            raise errors.InvalidValue(self.client_ref, "ASAM ratings must be six values from 0 to 4", ratings=ratings)
        self._assessment_completed(
            ratings=list(ratings), recommended_level=recommended, clinician=clinician, **self._facts(at, ctx),
        )

    def start_withdrawal_management(
        self, *, level: Level, site: str, substances: list[str], at: datetime, ctx: Context,
    ) -> None:
        if self._seen(ctx):
            return
        self._require_admittable(at, ctx)
        if not level.is_withdrawal_management:
            raise errors.WrongLevelKind(self.client_ref, "withdrawal management needs a WM level", level=level)
        self._withdrawal_management_started(level=level, site=site, substances=list(substances), **self._facts(at, ctx))

    def complete_detox(self, *, completed: bool, at: datetime, ctx: Context) -> None:
        if self._seen(ctx):
            return
        level = self._require_admitted("complete withdrawal management", at, ctx)
        if not level.is_withdrawal_management or self.detox_completed is not None:
            raise errors.NotInWithdrawalManagement(self.client_ref, level=level, detox_recorded=self.detox_completed)
        self._detox_completed(level=level, completed=completed, **self._facts(at, ctx))

    def admit(
        self,
        *,
        level: Level,
        site: str,
        track: Track | None,
        planned_hours_per_week: float,
        expected_end: date | None,
        medication: Medication,
        at: datetime,
        ctx: Context,
    ) -> None:
        if self._seen(ctx):
            return
        self._require_admittable(at, ctx)
        if level.is_withdrawal_management:
            raise errors.WrongLevelKind(self.client_ref, "start withdrawal management instead of admitting", level=level)
        self._admitted_to_level(
            level=level,
            site=site,
            track=self._check_track(level, track),
            planned_hours_per_week=self._check_hours(planned_hours_per_week),
            expected_end=expected_end,
            medication=medication,
            **self._facts(at, ctx),
        )

    def record_plan(self, *, goals: list[str], review_on: date | None, at: datetime, ctx: Context) -> None:
        if self._seen(ctx):
            return
        self._require_admitted("record a treatment plan", at, ctx)
        self._treatment_plan_recorded(goals=list(goals), review_on=review_on, **self._facts(at, ctx))

    def attend_session(
        self,
        *,
        session_id: str,
        minutes: int,
        kind: SessionKind,
        group_type: GroupType | None,
        modality: Modality | None,
        telehealth: bool,
        at: datetime,
        ctx: Context,
    ) -> None:
        if self._seen(ctx):
            return
        self._check_session(session_id, minutes, at, ctx)
        self._session_attended(
            session_id=session_id,
            minutes=minutes,
            kind=kind,
            group_type=group_type,
            modality=modality,
            telehealth=telehealth,
            **self._facts(at, ctx),
        )

    def miss_session(
        self, *, session_id: str, minutes: int, kind: SessionKind, excused: bool, at: datetime, ctx: Context,
    ) -> None:
        if self._seen(ctx):
            return
        self._check_session(session_id, minutes, at, ctx)
        self._session_missed(session_id=session_id, minutes=minutes, kind=kind, excused=excused, **self._facts(at, ctx))

    def collect_specimen(
        self, *, specimen_id: str, specimen: SpecimenKind, observed: bool, random: bool, at: datetime, ctx: Context,
    ) -> None:
        if self._seen(ctx):
            return
        self._require_admitted("collect a drug test", at, ctx)
        if specimen_id in self.specimens:
            raise errors.DuplicateSpecimen(self.client_ref, specimen_id=specimen_id)
        self._drug_test_collected(
            specimen_id=specimen_id, specimen=specimen, observed=observed, random=random, **self._facts(at, ctx),
        )

    def record_result(
        self,
        *,
        specimen_id: str,
        result: TestResult,
        substances: Mapping[str, str],
        expected_medications: list[str],
        at: datetime,
        ctx: Context,
    ) -> None:
        """A result may arrive after discharge: it is a late fact about a specimen of the episode."""
        if self._seen(ctx):
            return
        self._require_alive(at, ctx)
        if specimen_id not in self.specimens:
            raise errors.UnknownSpecimen(self.client_ref, specimen_id=specimen_id)
        collected_at, resulted = self.specimens[specimen_id]
        if resulted:
            raise errors.SpecimenAlreadyResulted(self.client_ref, specimen_id=specimen_id)
        if at < collected_at:
            raise errors.ResultBeforeCollection(
                self.client_ref, specimen_id=specimen_id, collected_at=collected_at.isoformat(), occurred_at=at.isoformat(),
            )
        self._drug_test_resulted(
            specimen_id=specimen_id,
            result=result,
            substances=dict(substances),
            expected_medications=list(expected_medications),
            **self._facts(at, ctx),
        )

    def step_up(
        self, *, to: Level, reason: str, track: Track | None, planned_hours_per_week: float | None, at: datetime, ctx: Context,
    ) -> None:
        self._step(ev.SteppedUp, to, reason, track, planned_hours_per_week, at, ctx)

    def step_down(
        self, *, to: Level, reason: str, track: Track | None, planned_hours_per_week: float | None, at: datetime, ctx: Context,
    ) -> None:
        self._step(ev.SteppedDown, to, reason, track, planned_hours_per_week, at, ctx)

    def discharge(self, *, reason: DischargeReason, referral_onward: str | None, at: datetime, ctx: Context) -> None:
        if self._seen(ctx):
            return
        level = self._require_admitted("discharge", at, ctx)
        self._require_after_level_start(at)
        self._discharged(level=level, reason=reason, referral_onward=referral_onward, **self._facts(at, ctx))

    def enrol_in_alumni(self, *, program: str, at: datetime, ctx: Context) -> None:
        if self._seen(ctx):
            return
        self._require_alive(at, ctx)
        if self.status is Status.ALUMNI:
            raise errors.AlreadyAlumni(self.client_ref)
        if self.status is not Status.DISCHARGED or self.discharged_at is None:
            raise errors.NotDischarged(self.client_ref, status=self.status)
        if at < self.discharged_at:
            raise errors.OutOfOrder(self.client_ref, discharged_at=self.discharged_at.isoformat(), occurred_at=at.isoformat())
        self._enrolled_in_alumni(program=program, **self._facts(at, ctx))

    def attend_alumni_activity(self, *, activity: str, at: datetime, ctx: Context) -> None:
        if self._seen(ctx):
            return
        self._require_alive(at, ctx)
        if self.status is not Status.ALUMNI:
            raise errors.NotAlumni(self.client_ref, status=self.status)
        self._alumni_activity_attended(activity=activity, **self._facts(at, ctx))

    def correct(self, *, version: int, field: str, value: Scalar, reason: str, at: datetime, ctx: Context) -> None:
        """Put a recorded value right; the original entry stays as it was recorded."""
        if self._seen(ctx):
            return
        _check_time(self.client_ref, at, ctx.now)
        if version not in self.entries:
            raise errors.UnknownEntry(self.client_ref, version=version)
        kind, recorded = self.entries[version]
        parse = CORRECTABLE.get(kind, {}).get(field)
        if parse is None:
            allowed = ", ".join(CORRECTABLE.get(kind, {})) or "nothing"
            raise errors.NotCorrectable(self.client_ref, entry=f"{kind} #{version}", field=field, correctable=allowed)
        try:
            corrected = parse(value)
        except ValueError as problem:
            raise errors.InvalidValue(self.client_ref, f"{field}: {problem}", value=value) from None
        if corrected == recorded.get(field):
            raise errors.NothingToCorrect(self.client_ref, entry=f"{kind} #{version}", field=field, value=corrected)
        if field == "occurred_at":
            self._check_corrected_time(version, kind, datetime.fromisoformat(str(corrected)), ctx)
        if field == "track" and LEVEL_KEY in recorded:
            self._check_track(Level(recorded[LEVEL_KEY]), Track(corrected))
        self._entry_corrected(
            corrects_version=version,
            corrects_type=kind,
            field=field,
            previous_value=recorded.get(field),
            corrected_value=corrected,
            reason=reason,
            **self._facts(at, ctx),
        )

    # -- guards ---------------------------------------------------------------------------

    def _seen(self, ctx: Context) -> bool:
        return ctx.command_id in self.commands

    def _facts(self, at: datetime, ctx: Context) -> dict[str, Any]:
        return {"occurred_at": at, "recorded_by": ctx.by, "command_id": ctx.command_id}

    def _require_alive(self, at: datetime, ctx: Context) -> None:
        _check_time(self.client_ref, at, ctx.now)
        if self.status is Status.DECEASED:
            raise errors.Deceased(self.client_ref)

    def _require_admitted(self, action: str, at: datetime, ctx: Context) -> Level:
        self._require_alive(at, ctx)
        if self.status is Status.DISCHARGED or self.status is Status.ALUMNI:
            raise errors.JourneyClosed(self.client_ref, f"cannot {action}: client is discharged", status=self.status)
        if self.level is None or self.admitted_at is None:
            raise errors.NotAdmitted(self.client_ref, f"cannot {action}: client is not admitted to a level of care")
        if at < self.admitted_at:
            raise errors.BeforeAdmission(
                self.client_ref, f"cannot {action} before the admission",
                admitted_at=self.admitted_at.isoformat(), occurred_at=at.isoformat(),
            )
        return self.level

    def _require_admittable(self, at: datetime, ctx: Context) -> None:
        self._require_alive(at, ctx)
        if self.level is not None:
            raise errors.AlreadyAdmitted(self.client_ref, level=self.level)
        if self.discharged_at is not None and at < self.discharged_at:
            raise errors.OutOfOrder(
                self.client_ref, "readmission cannot precede the last discharge",
                discharged_at=self.discharged_at.isoformat(), occurred_at=at.isoformat(),
            )

    def _require_after_level_start(self, at: datetime) -> None:
        if self.level_since is not None and at < self.level_since:
            raise errors.OutOfOrder(
                self.client_ref, level=self.level, level_since=self.level_since.isoformat(), occurred_at=at.isoformat(),
            )

    def _check_session(self, session_id: str, minutes: int, at: datetime, ctx: Context) -> None:
        self._require_admitted("record a session", at, ctx)
        if session_id in self.sessions:
            raise errors.DuplicateSession(self.client_ref, session_id=session_id)
        if minutes <= 0:
            raise errors.InvalidValue(self.client_ref, "session minutes must be positive", minutes=minutes)

    def _check_track(self, level: Level, track: Track | None) -> Track:
        chosen = track or level.default_track
        if chosen is None or (chosen is Track.RESIDENTIAL) != level.is_24_hour:
            raise errors.InvalidValue(
                self.client_ref,
                "24-hour levels use the residential track, ambulatory levels day or evening",
                level=level,
                track=chosen,
            )
        return chosen

    def _check_hours(self, hours: float) -> float:
        if hours < 0:
            raise errors.InvalidValue(self.client_ref, "planned hours per week cannot be negative", hours=hours)
        return float(hours)

    def _step(
        self,
        kind: type[ev.LevelChange],
        to: Level,
        reason: str,
        track: Track | None,
        hours: float | None,
        at: datetime,
        ctx: Context,
    ) -> None:
        if self._seen(ctx):
            return
        up = kind is ev.SteppedUp
        current = self._require_admitted("step up" if up else "step down", at, ctx)
        if (to.rank > current.rank) != up or to is current:
            rule = "step up must raise intensity" if up else "step down must lower intensity"
            raise errors.StepDirectionError(self.client_ref, rule, **{"from": current, "to": to})
        if current.is_withdrawal_management and not to.is_withdrawal_management and not self.detox_completed:
            raise errors.DetoxNotCompleted(self.client_ref, level=current, to=to)
        self._require_after_level_start(at)
        same_setting = track is None and (to.is_24_hour == current.is_24_hour) and self.track is not None
        change = {
            "from_level": current,
            "to_level": to,
            "reason": reason,
            "site": self.site,
            "track": self.track if same_setting else self._check_track(to, track),
            "planned_hours_per_week": self._check_hours(
                hours if hours is not None else self.planned_hours_per_week if same_setting else to.typical_hours_per_week,
            ),
            **self._facts(at, ctx),
        }
        if up:
            self._stepped_up(**change)
        else:
            self._stepped_down(**change)

    def _check_corrected_time(self, version: int, kind: str, moment: datetime, ctx: Context) -> None:
        _check_time(self.client_ref, moment, ctx.now)
        if kind not in TRANSITIONS:
            return
        position = self.transitions.index(version)
        times = [self._time_of(v) for v in self.transitions]
        earlier = times[position - 1] if position > 0 else None
        later = times[position + 1] if position + 1 < len(times) else None
        if (earlier and moment < earlier) or (later and moment > later):
            raise errors.OutOfOrder(
                self.client_ref, "a corrected time must stay between the changes of level around it",
                earlier=earlier and earlier.isoformat(), later=later and later.isoformat(), corrected=moment.isoformat(),
            )

    def _time_of(self, version: int) -> datetime:
        return datetime.fromisoformat(str(self.entries[version][1]["occurred_at"]))

    # -- state changes (rerun on every rebuild) --------------------------------------------

    def _remember(self, version: int, entry_type: str, fields: dict[str, object], occurred_at: datetime) -> None:
        correctable = CORRECTABLE.get(entry_type, {})
        recorded = {name: as_scalar(value) for name, value in fields.items() if name in correctable}
        recorded["occurred_at"] = occurred_at.isoformat()
        if isinstance(fields.get("level"), Level):
            recorded[LEVEL_KEY] = as_scalar(fields["level"])
        self.entries[version] = (entry_type, recorded)
        if entry_type in TRANSITIONS:
            self.transitions.append(version)

    def _note(self, entry_type: str, occurred_at: datetime, command_id: str, /, **fields: object) -> None:
        self.commands.add(command_id)
        self._remember(self.version + 1, entry_type, fields, occurred_at)  # the body runs before the version moves on

    def _open_episode(self, at: datetime) -> None:
        self.status, self.admitted_at, self.episodes, self.detox_completed = Status.IN_TREATMENT, at, self.episodes + 1, None
        self.episode_opened_by = self.version + 1

    def _enter(self, level: Level, site: str, track: Track, hours: float, at: datetime) -> None:
        self.level, self.site, self.track, self.planned_hours_per_week, self.level_since = level, site, track, hours, at

    @event(ev.ReferralReceived)
    def _referral_received(self, source: ReferralSource, referred_level: Level | None, occurred_at: datetime, recorded_by: Actor, command_id: str) -> None:
        self._note("ReferralReceived", occurred_at, command_id, source=source)

    @event(ev.AssessmentCompleted)
    def _assessment_completed(self, ratings: list[int], recommended_level: Level, clinician: str, occurred_at: datetime, recorded_by: Actor, command_id: str) -> None:
        self._note("AssessmentCompleted", occurred_at, command_id, clinician=clinician)

    @event(ev.WithdrawalManagementStarted)
    def _withdrawal_management_started(self, level: Level, site: str, substances: list[str], occurred_at: datetime, recorded_by: Actor, command_id: str) -> None:
        self._note("WithdrawalManagementStarted", occurred_at, command_id, site=site, level=level)
        track = Track.RESIDENTIAL if level.is_24_hour else Track.DAY
        self._enter(level, site, track, 0.0, occurred_at)
        self._open_episode(occurred_at)

    @event(ev.DetoxCompleted)
    def _detox_completed(self, level: Level, completed: bool, occurred_at: datetime, recorded_by: Actor, command_id: str) -> None:
        self._note("DetoxCompleted", occurred_at, command_id, completed=completed)
        self.detox_completed = completed

    @event(ev.AdmittedToLevel)
    def _admitted_to_level(self, level: Level, site: str, track: Track, planned_hours_per_week: float, expected_end: date | None, medication: Medication, occurred_at: datetime, recorded_by: Actor, command_id: str) -> None:
        self._note("AdmittedToLevel", occurred_at, command_id, site=site, track=track,
                   planned_hours_per_week=planned_hours_per_week, expected_end=expected_end, level=level)
        self._enter(level, site, track, planned_hours_per_week, occurred_at)
        self._open_episode(occurred_at)

    @event(ev.TreatmentPlanRecorded)
    def _treatment_plan_recorded(self, goals: list[str], review_on: date | None, occurred_at: datetime, recorded_by: Actor, command_id: str) -> None:
        self._note("TreatmentPlanRecorded", occurred_at, command_id)

    @event(ev.SessionAttended)
    def _session_attended(self, session_id: str, minutes: int, kind: SessionKind, group_type: GroupType | None, modality: Modality | None, telehealth: bool, occurred_at: datetime, recorded_by: Actor, command_id: str) -> None:
        self._note("SessionAttended", occurred_at, command_id, minutes=minutes, kind=kind, telehealth=telehealth)
        self.sessions.add(session_id)

    @event(ev.SessionMissed)
    def _session_missed(self, session_id: str, minutes: int, kind: SessionKind, excused: bool, occurred_at: datetime, recorded_by: Actor, command_id: str) -> None:
        self._note("SessionMissed", occurred_at, command_id, minutes=minutes, excused=excused)
        self.sessions.add(session_id)

    @event(ev.DrugTestCollected)
    def _drug_test_collected(self, specimen_id: str, specimen: SpecimenKind, observed: bool, random: bool, occurred_at: datetime, recorded_by: Actor, command_id: str) -> None:
        self._note("DrugTestCollected", occurred_at, command_id, observed=observed, random=random)
        self.specimens[specimen_id] = (occurred_at, False)

    @event(ev.DrugTestResulted)
    def _drug_test_resulted(self, specimen_id: str, result: TestResult, substances: dict[str, str], expected_medications: list[str], occurred_at: datetime, recorded_by: Actor, command_id: str) -> None:
        self._note("DrugTestResulted", occurred_at, command_id, result=result)
        self.specimens[specimen_id] = (self.specimens[specimen_id][0], True)

    @event(ev.SteppedUp)
    def _stepped_up(self, from_level: Level, to_level: Level, reason: str, site: str, track: Track, planned_hours_per_week: float, occurred_at: datetime, recorded_by: Actor, command_id: str) -> None:
        self._changed_level("SteppedUp", to_level, reason, site, track, planned_hours_per_week, occurred_at, command_id)

    @event(ev.SteppedDown)
    def _stepped_down(self, from_level: Level, to_level: Level, reason: str, site: str, track: Track, planned_hours_per_week: float, occurred_at: datetime, recorded_by: Actor, command_id: str) -> None:
        self._changed_level("SteppedDown", to_level, reason, site, track, planned_hours_per_week, occurred_at, command_id)

    def _changed_level(self, kind: str, to: Level, reason: str, site: str, track: Track, hours: float, at: datetime, command_id: str) -> None:
        self._note(kind, at, command_id, site=site, track=track, planned_hours_per_week=hours, reason=reason, level=to)
        self._enter(to, site, track, hours, at)
        if to.is_withdrawal_management:
            self.detox_completed = None  # each stay in withdrawal management needs its own completion

    @event(ev.Discharged)
    def _discharged(self, level: Level, reason: DischargeReason, referral_onward: str | None, occurred_at: datetime, recorded_by: Actor, command_id: str) -> None:
        self._note("Discharged", occurred_at, command_id, reason=reason, referral_onward=referral_onward)
        self.level, self.level_since, self.site, self.track, self.admitted_at = None, None, None, None, None
        self.discharged_at, self.discharged_by = occurred_at, self.version + 1
        self.status = Status.DECEASED if reason is DischargeReason.DIED else Status.DISCHARGED

    @event(ev.EnrolledInAlumni)
    def _enrolled_in_alumni(self, program: str, occurred_at: datetime, recorded_by: Actor, command_id: str) -> None:
        self._note("EnrolledInAlumni", occurred_at, command_id, program=program)
        self.status = Status.ALUMNI

    @event(ev.AlumniActivityAttended)
    def _alumni_activity_attended(self, activity: str, occurred_at: datetime, recorded_by: Actor, command_id: str) -> None:
        self._note("AlumniActivityAttended", occurred_at, command_id, activity=activity)

    @event(ev.EntryCorrected)
    def _entry_corrected(self, corrects_version: int, corrects_type: str, field: str, previous_value: Scalar, corrected_value: Scalar, reason: str, occurred_at: datetime, recorded_by: Actor, command_id: str) -> None:
        self.commands.add(command_id)
        self.entries[corrects_version][1][field] = corrected_value
        if field == "occurred_at":
            moment = datetime.fromisoformat(str(corrected_value))
            if corrects_version == self.episode_opened_by:
                self.admitted_at = moment if self.level is not None else self.admitted_at
            if corrects_version == self.discharged_by:
                self.discharged_at = moment
        if self.level is not None and corrects_version == self._current_level_version():
            if field == "site":
                self.site = str(corrected_value)
            elif field == "track":
                self.track = Track(corrected_value)
            elif field == "planned_hours_per_week" and isinstance(corrected_value, float):
                self.planned_hours_per_week = corrected_value
            elif field == "occurred_at":
                self.level_since = datetime.fromisoformat(str(corrected_value))

    def _current_level_version(self) -> int | None:
        return self.transitions[-1] if self.transitions else None


def _check_time(client_ref: str, at: datetime, now: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise errors.NaiveTimestamp(client_ref, occurred_at=at.isoformat())
    if at > now + CLOCK_SKEW:
        raise errors.OccurredInFuture(client_ref, occurred_at=at.isoformat(), now=now.isoformat())
