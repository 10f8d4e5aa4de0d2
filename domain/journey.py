"""A client's journey through the continuum of care: one aggregate per client.

Public methods check the care rules and raise a `CareRuleViolation` naming the client, the rule
and the values; only then do they call the event method (`@recorded`: the library's `@event` with a
lean live call, `domain.recording`), whose body changes state and reruns whenever the journey is
rebuilt. A command whose id the journey has seen is a no-op.

Each event method's body remembers its entry (`domain.record.Entry`); where the client stands is then
derived from the entries by `domain.record.placement`, the one fold the replays use too. A
correction changes an entry's facts and a void marks it, and the placement is derived again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain import consent as part2
from domain import errors
from domain import events as ev
from domain import flags as flagging
from domain.amendments import CLOCK_SKEW, UNBOUND, Amendments, check_time
from domain.corrections import Scalar, as_scalar
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
from domain.record import CONSENT_ENTRIES, MILESTONES, OPENERS, STEPS, TRANSITIONS, Entry, Placement, Status, placement
from domain.recording import recorded
from domain.values import BIRTH_YEARS, Actor, Context

LEVEL_KEY = "_level"  # the level a transition entered, kept beside its correctable fields
MEDICATION_KEY = "_medication"

ASAM_DIMENSIONS = 6
MAX_RATING = 4

__all__ = ["CLOCK_SKEW", "ClientJourney", "Status"]


class ClientJourney(Amendments, Aggregate):
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
    TrackChanged = ev.TrackChanged
    MedicationChanged = ev.MedicationChanged
    EntryCorrected = ev.EntryCorrected
    EntryVoided = ev.EntryVoided
    ConsentGranted = ev.ConsentGranted
    ConsentRevoked = ev.ConsentRevoked

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
        self.registered_at = occurred_at
        self.commands = {command_id}
        self.entries: dict[int, Entry] = {}
        self.milestones: list[int] = []  # versions of the entries `placement` folds, voided ones left out
        self.transitions: list[int] = []  # the milestones that change level, track or status
        self.assessments: list[int] = []
        self.sessions: set[str] = set()
        self.specimens: dict[str, int] = {}  # specimen id -> version of its collection
        self.results: dict[str, int] = {}  # specimen id -> version of its result
        self.consent_grants: dict[str, int] = {}  # consent id -> version of its grant
        self.consent_revocations: dict[str, int] = {}  # consent id -> version of its revocation
        self._remember(1, "ClientRegistered", occurred_at, {"site": site, "birth_year": birth_year, "sex": sex})
        self._settle()

    @classmethod
    def register(
        cls, client_ref: str, *, site: str, birth_year: int | None, sex: str | None, at: datetime, ctx: Context,
    ) -> ClientJourney:
        check_time(client_ref, at, ctx.now)
        if birth_year is not None and not BIRTH_YEARS[0] <= birth_year <= ctx.now.year:
            raise errors.InvalidValue(client_ref, "birth year out of range", birth_year=birth_year)
        return cls(client_ref, site, birth_year, sex, at, ctx.by, ctx.command_id)

    # -- where the client stands (derived; see domain.record) --------------------------------

    def _settle(self) -> None:
        now = self.placement()
        self.status, self.level, self.site, self.track = now.status, now.level, now.site, now.track
        self.planned_hours_per_week, self.level_since, self.moved_at = now.hours, now.level_since, now.moved_at
        self.admitted_at, self.discharged_at, self.episodes = now.admitted_at, now.discharged_at, now.episodes
        self.episode_opened_by, self.stay_opened_by, self.discharged_by = now.episode, now.stay, now.discharged_by
        self.detox_completed, self.medication = now.detox_completed, now.medication
        self.home_site = str(self.entries[1].fields["site"])

    def placement(self, until: datetime | None = None) -> Placement:
        return placement(self.entries, self.milestones, until)

    # -- commands -------------------------------------------------------------------------

    def refer(self, *, source: ReferralSource, referred_level: Level | None, at: datetime, ctx: Context) -> None:
        if self._seen(ctx):
            return
        self._require_alive(at, ctx)
        self._referral_received(source=source, referred_level=referred_level, **self._facts(at, ctx, "ReferralReceived"))

    def assess(self, *, ratings: list[int], recommended: Level, clinician: str, at: datetime, ctx: Context) -> None:
        if self._seen(ctx):
            return
        self._require_alive(at, ctx)
        if len(ratings) != ASAM_DIMENSIONS or any(not 0 <= r <= MAX_RATING for r in ratings):
            raise errors.InvalidValue(self.client_ref, "ASAM ratings must be six values from 0 to 4", ratings=ratings)
        self._assessment_completed(
            ratings=list(ratings), recommended_level=recommended, clinician=clinician, **self._facts(at, ctx, "AssessmentCompleted"),
        )

    def start_withdrawal_management(
        self, *, level: Level, site: str, substances: list[str], at: datetime, ctx: Context,
        medication: Medication = Medication.NONE,
    ) -> None:
        if self._seen(ctx):
            return
        self._require_admittable(at, ctx)
        if not level.is_withdrawal_management:
            raise errors.WrongLevelKind(self.client_ref, "withdrawal management needs a WM level", level=level)
        self._withdrawal_management_started(
            level=level, site=site, substances=list(substances), medication=medication, **self._facts(at, ctx, "WithdrawalManagementStarted"),
        )

    def complete_detox(self, *, completed: bool, at: datetime, ctx: Context) -> None:
        if self._seen(ctx):
            return
        level = self._require_admitted("complete withdrawal management", at, ctx)
        if not level.is_withdrawal_management or self.detox_completed is not None:
            raise errors.NotInWithdrawalManagement(self.client_ref, level=level, detox_recorded=self.detox_completed)
        self._detox_completed(level=level, completed=completed, **self._facts(at, ctx, "DetoxCompleted"))

    def admit(
        self,
        *,
        level: Level,
        site: str,
        track: Track | None,
        planned_hours_per_week: float | None,
        expected_end: date | None,
        medication: Medication,
        at: datetime,
        ctx: Context,
    ) -> None:
        """Hours not given are the level's typical plan; hours outside the level's band are flagged, not refused."""
        if self._seen(ctx):
            return
        self._require_admittable(at, ctx)
        if level.is_withdrawal_management:
            raise errors.WrongLevelKind(self.client_ref, "start withdrawal management instead of admitting", level=level)
        hours = self._check_hours(level.typical_hours_per_week if planned_hours_per_week is None else planned_hours_per_week)
        latest = self.entries[self.assessments[-1]].fields if self.assessments else {}
        dimension_1, recommended = latest.get("_dimension_1"), latest.get("_recommended")
        self._admitted_to_level(
            level=level,
            site=site,
            track=self._check_track(level, track),
            planned_hours_per_week=hours,
            expected_end=expected_end,
            medication=medication,
            flags=self._hours_flags(level, hours, at) + flagging.withdrawal_flags(
                level, None if dimension_1 is None else int(dimension_1), None if recommended is None else Level(recommended),
            ),
            **self._facts(at, ctx, "AdmittedToLevel"),
        )

    def record_plan(self, *, goals: list[str], review_on: date | None, at: datetime, ctx: Context) -> None:
        if self._seen(ctx):
            return
        self._require_admitted("record a treatment plan", at, ctx)
        self._treatment_plan_recorded(goals=list(goals), review_on=review_on, **self._facts(at, ctx, "TreatmentPlanRecorded"))

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
            **self._facts(at, ctx, "SessionAttended"),
        )

    def miss_session(
        self, *, session_id: str, minutes: int, kind: SessionKind, excused: bool, at: datetime, ctx: Context,
    ) -> None:
        if self._seen(ctx):
            return
        self._check_session(session_id, minutes, at, ctx)
        self._session_missed(session_id=session_id, minutes=minutes, kind=kind, excused=excused, **self._facts(at, ctx, "SessionMissed"))

    def collect_specimen(
        self, *, specimen_id: str, specimen: SpecimenKind, observed: bool, random: bool, at: datetime, ctx: Context,
    ) -> None:
        if self._seen(ctx):
            return
        self._require_admitted("collect a drug test", at, ctx)
        if specimen_id in self.specimens:
            raise errors.DuplicateSpecimen(self.client_ref, specimen_id=specimen_id)
        self._drug_test_collected(
            specimen_id=specimen_id, specimen=specimen, observed=observed, random=random, **self._facts(at, ctx, "DrugTestCollected"),
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
        if specimen_id in self.results:
            raise errors.SpecimenAlreadyResulted(self.client_ref, specimen_id=specimen_id)
        collected_at = self.entries[self.specimens[specimen_id]].at
        if at < collected_at:
            raise errors.ResultBeforeCollection(
                self.client_ref, specimen_id=specimen_id, collected_at=collected_at.isoformat(), occurred_at=at.isoformat(),
            )
        unexpected = sorted(a for a, v in substances.items() if v == "positive" and a not in expected_medications)
        if result is TestResult.NEGATIVE and unexpected:
            raise errors.ContradictoryResult(self.client_ref, specimen_id=specimen_id, positive=", ".join(unexpected))
        self._drug_test_resulted(
            specimen_id=specimen_id,
            result=result,
            substances=dict(substances),
            expected_medications=list(expected_medications),
            **self._facts(at, ctx, "DrugTestResulted", of=self.specimens[specimen_id]),
        )

    def step_up(
        self, *, to: Level, reason: str, track: Track | None, planned_hours_per_week: float | None, at: datetime, ctx: Context,
    ) -> None:
        self._step(ev.SteppedUp, to, reason, track, planned_hours_per_week, at, ctx)

    def step_down(
        self, *, to: Level, reason: str, track: Track | None, planned_hours_per_week: float | None, at: datetime, ctx: Context,
    ) -> None:
        self._step(ev.SteppedDown, to, reason, track, planned_hours_per_week, at, ctx)

    def change_track(
        self, *, track: Track | None, planned_hours_per_week: float | None, reason: str, at: datetime, ctx: Context,
    ) -> None:
        """Day to evening, or new planned hours, within the same level: a change of schedule, not a step."""
        if self._seen(ctx):
            return
        level = self._require_admitted("change track", at, ctx)
        self._require_after_last_move(at)
        chosen = self._check_track(level, track or self.track)
        hours = self._check_hours(self.planned_hours_per_week if planned_hours_per_week is None else planned_hours_per_week)
        if chosen is self.track and hours == self.planned_hours_per_week:
            raise errors.NothingToChange(self.client_ref, track=chosen, planned_hours_per_week=hours)
        self._track_changed(
            level=level, site=self.site or "", from_track=self.track or chosen, track=chosen, planned_hours_per_week=hours, reason=reason,
            flags=self._hours_flags(level, hours, at), **self._facts(at, ctx, "TrackChanged"),
        )

    def change_medication(self, *, medication: Medication, reason: str | None, at: datetime, ctx: Context) -> None:
        """Medication for addiction treatment may start, change or stop at any level, detox included."""
        if self._seen(ctx):
            return
        self._require_admitted("change medication", at, ctx)
        if medication is self.medication:
            raise errors.NothingToChange(self.client_ref, medication=medication)
        self._medication_changed(medication=medication, reason=reason, **self._facts(at, ctx, "MedicationChanged"))

    def discharge(self, *, reason: DischargeReason, referral_onward: str | None, at: datetime, ctx: Context) -> None:
        if self._seen(ctx):
            return
        level = self._require_admitted("discharge", at, ctx)
        self._require_after_last_move(at)
        latest = self._latest_in_episode(self.episode_opened_by)
        if latest is not None and at < self.entries[latest].at:
            raise errors.DischargeBeforeEntries(
                self.client_ref, entry=self._name(latest), entry_at=self.entries[latest].at.isoformat(),
                discharge_at=at.isoformat(),
            )
        self._discharged(level=level, reason=reason, referral_onward=referral_onward, **self._facts(at, ctx, "Discharged"))

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
        self._enrolled_in_alumni(program=program, **self._facts(at, ctx, "EnrolledInAlumni"))

    def attend_alumni_activity(self, *, activity: str, at: datetime, ctx: Context) -> None:
        if self._seen(ctx):
            return
        self._require_alive(at, ctx)
        if self.status is not Status.ALUMNI:
            raise errors.NotAlumni(self.client_ref, status=self.status)
        self._alumni_activity_attended(activity=activity, **self._facts(at, ctx, "AlumniActivityAttended"))

    def grant_consent(
        self, *, consent_id: str, recipient: str, purpose: part2.ConsentPurpose, purpose_text: str | None,
        scope: Sequence[str], expires_on: date | None, at: datetime, ctx: Context,
    ) -> None:
        """A Part 2 consent to disclose (§2.31); it does not change where the client stands. A deceased
        client's record may be disclosed with the consent of a personal representative (§2.15(b))."""
        if self._seen(ctx):
            return
        check_time(self.client_ref, at, ctx.now)
        self._require_after_registration(at)
        if consent_id in self.consent_grants:
            raise part2.ConsentAlreadyRecorded(self.client_ref, consent_id=consent_id)
        kinds = part2.check_grant(
            self.client_ref, recipient=recipient, purpose=purpose, purpose_text=purpose_text, scope=scope,
            expires_on=expires_on, at=at,
        )
        self._consent_granted(
            consent_id=consent_id, recipient=recipient, purpose=purpose.value, purpose_text=purpose_text, scope=kinds,
            expires_on=expires_on, **self._facts(at, ctx, "ConsentGranted"),
        )

    def revoke_consent(self, *, consent_id: str, at: datetime, ctx: Context) -> None:
        """The client revokes a consent: nothing more is disclosed under it from `at` on (§2.31(a)(6))."""
        if self._seen(ctx):
            return
        check_time(self.client_ref, at, ctx.now)
        self._require_after_registration(at)
        granted = self.consent_grants.get(consent_id)
        if granted is None or self.entries[granted].voided:
            raise part2.UnknownConsent(self.client_ref, consent_id=consent_id)
        if consent_id in self.consent_revocations and not self.entries[self.consent_revocations[consent_id]].voided:
            raise part2.ConsentNotInForce(self.client_ref, "the consent is already revoked", consent_id=consent_id)
        if at < self.entries[granted].at:
            raise errors.OutOfOrder(
                self.client_ref, "a revocation cannot precede its grant",
                granted_at=self.entries[granted].at.isoformat(), occurred_at=at.isoformat(),
            )
        self._consent_revoked(consent_id=consent_id, granted_version=granted, **self._facts(at, ctx, "ConsentRevoked"))

    def consents(self) -> list[part2.Consent]:
        """Every consent recorded (voided ones marked), in the order granted."""
        found = []
        for consent_id, version in self.consent_grants.items():
            entry = self.entries[version]
            revoked = self.consent_revocations.get(consent_id)
            revoked_at = None if revoked is None or self.entries[revoked].voided else self.entries[revoked].at
            expires = entry.fields["expires_on"]
            found.append(part2.Consent(
                consent_id=consent_id, recipient=str(entry.fields["recipient"]),
                purpose=part2.ConsentPurpose(entry.fields["purpose"]),
                purpose_text=None if entry.fields["purpose_text"] is None else str(entry.fields["purpose_text"]),
                scope=entry.notes, granted_at=entry.at, expires_on=None if expires is None else date.fromisoformat(str(expires)),
                revoked_at=revoked_at, voided=entry.voided,
            ))
        return found

    def correct(self, *, version: int, field: str, value: Scalar, reason: str, at: datetime, ctx: Context) -> None:
        """Put a recorded value right; the original entry stays as it was recorded."""
        if self._seen(ctx):
            return
        check_time(self.client_ref, at, ctx.now)
        self._require_after_registration(at)
        entry, corrected = self._check_correction(version, field, value, ctx)
        self._entry_corrected(
            corrects_version=version,
            corrects_type=entry.type,
            field=field,
            previous_value=entry.fields.get(field),
            corrected_value=corrected,
            reason=reason,
            flags=self._flags_after_correction(entry, field, corrected),
            **self._facts(at, ctx, "EntryCorrected", of=version),
        )

    def void(self, *, versions: Sequence[int], reason: str, at: datetime, ctx: Context) -> None:
        """Entered in error: each entry stays recorded and shown beside its void, and stops counting.

        Later entries that depend on one (a later change of level, the sessions of a voided admission,
        the result of a voided collection) must be voided first or in the same command, which voids
        the latest first.
        """
        if self._seen(ctx):
            return
        check_time(self.client_ref, at, ctx.now)
        self._require_after_registration(at)
        if not reason.strip():
            raise errors.InvalidValue(self.client_ref, "a void needs a reason")
        plan = sorted(set(versions), reverse=True)
        for number, version in enumerate(plan):
            self._check_voidable(version, set(plan[:number]))
        for version in plan:
            self._entry_voided(
                voided_version=version, voided_type=self.entries[version].type, reason=reason, **self._facts(at, ctx, "EntryVoided", of=version),
            )

    # -- guards ---------------------------------------------------------------------------

    def _seen(self, ctx: Context) -> bool:
        return ctx.command_id in self.commands

    def _facts(self, at: datetime, ctx: Context, entry_type: str, of: int | None = None) -> dict[str, Any]:
        episode, stay = self._belonging(entry_type, of)
        return {"occurred_at": at, "recorded_by": ctx.by, "command_id": ctx.command_id, "episode": episode, "stay": stay}

    def _belonging(self, entry_type: str, of: int | None = None) -> tuple[int | None, int | None]:
        """(episode, stay) of the next entry of this type: the versions of the entries that opened the treatment
        episode and the service stay it belongs to, or None outside one. An entry about another one (`of`: a result's
        collection, a correction's or a void's entry) belongs where that one does. Computed the same way when the
        entry is recorded (stored on its event) and when it is folded again (`Entry.episode`, `Entry.stay`)."""
        if of is not None:
            entry = self.entries[of]
            return entry.episode, entry.stay
        version = self.version + 1
        if entry_type in OPENERS:
            return version, version
        if entry_type in UNBOUND or entry_type in CONSENT_ENTRIES or self.level is None:
            return None, None
        return self.episode_opened_by, version if entry_type in STEPS else self.stay_opened_by

    def _require_alive(self, at: datetime, ctx: Context) -> None:
        check_time(self.client_ref, at, ctx.now)
        if self.status is Status.DECEASED:
            raise errors.Deceased(self.client_ref)
        self._require_after_registration(at)

    def _require_after_registration(self, at: datetime) -> None:
        if at < self.registered_at:
            raise errors.BeforeRegistration(
                self.client_ref, registered_at=self.registered_at.isoformat(), occurred_at=at.isoformat(),
            )

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

    def _require_after_last_move(self, at: datetime) -> None:
        if self.moved_at is not None and at < self.moved_at:
            raise errors.OutOfOrder(
                self.client_ref, level=self.level, level_since=self.moved_at.isoformat(), occurred_at=at.isoformat(),
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

    def _hours_flags(self, level: Level, hours: float, at: datetime) -> list[str]:
        return flagging.hours_flags(level, hours, adolescent=flagging.is_adolescent(self.birth_year, at))

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
        if to is current:
            raise errors.StepDirectionError(
                self.client_ref, "already at this level: a change of track or hours within a level is change_track",
                level=current,
            )
        if (to.rank > current.rank) != up:
            rule = "step up must raise intensity" if up else "step down must lower intensity"
            raise errors.StepDirectionError(self.client_ref, rule, **{"from": current, "to": to})
        if current.is_withdrawal_management and not to.is_withdrawal_management and not self.detox_completed:
            raise errors.DetoxNotCompleted(self.client_ref, level=current, to=to)
        self._require_after_last_move(at)
        same_setting = track is None and (to.is_24_hour == current.is_24_hour) and self.track is not None
        planned = self._check_hours(
            hours if hours is not None else self.planned_hours_per_week if same_setting else to.typical_hours_per_week,
        )
        change = {
            "from_level": current,
            "to_level": to,
            "reason": reason,
            "site": self.site,
            "track": self.track if same_setting else self._check_track(to, track),
            "planned_hours_per_week": planned,
            "flags": self._hours_flags(to, planned, at),
            **self._facts(at, ctx, kind.__name__),
        }
        if up:
            self._stepped_up(**change)
        else:
            self._stepped_down(**change)

    # -- state changes (rerun on every rebuild) --------------------------------------------

    def _remember(
        self, version: int, entry_type: str, occurred_at: datetime, fields: dict[str, object], *,
        key: str | None = None, notes: tuple[str, ...] = (), episode: int | None = None, stay: int | None = None,
    ) -> Entry:
        recorded = {name: as_scalar(value) for name, value in fields.items()}
        recorded["occurred_at"] = occurred_at.isoformat()
        entry = self.entries[version] = Entry(entry_type, occurred_at, recorded, episode, key, notes, stay=stay)
        if entry_type in MILESTONES:
            self.milestones.append(version)
            if entry_type in TRANSITIONS:
                self.transitions.append(version)
        return entry

    def _note(
        self, entry_type: str, occurred_at: datetime, command_id: str, /, *,
        key: str | None = None, notes: tuple[str, ...] = (), **fields: object,
    ) -> None:
        self.commands.add(command_id)
        episode, stay = self._belonging(entry_type)  # the body runs before the version moves on
        self._remember(self.version + 1, entry_type, occurred_at, fields, key=key, notes=notes, episode=episode, stay=stay)
        if entry_type in MILESTONES:
            self._settle()

    @recorded(ev.ReferralReceived)
    def _referral_received(self, source: ReferralSource, referred_level: Level | None, occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self._note("ReferralReceived", occurred_at, command_id, source=source)

    @recorded(ev.AssessmentCompleted)
    def _assessment_completed(self, ratings: list[int], recommended_level: Level, clinician: str, occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self._note("AssessmentCompleted", occurred_at, command_id, clinician=clinician, _dimension_1=ratings[0], _recommended=recommended_level)
        self.assessments.append(self.version + 1)

    @recorded(ev.WithdrawalManagementStarted)
    def _withdrawal_management_started(self, level: Level, site: str, substances: list[str], medication: Medication, occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        track = Track.RESIDENTIAL if level.is_24_hour else Track.DAY
        self._note("WithdrawalManagementStarted", occurred_at, command_id, site=site, track=track, planned_hours_per_week=0.0,
                   _level=level, _medication=medication)

    @recorded(ev.DetoxCompleted)
    def _detox_completed(self, level: Level, completed: bool, occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self._note("DetoxCompleted", occurred_at, command_id, completed=completed)

    @recorded(ev.AdmittedToLevel)
    def _admitted_to_level(self, level: Level, site: str, track: Track, planned_hours_per_week: float, expected_end: date | None, medication: Medication, flags: list[str], occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self._note("AdmittedToLevel", occurred_at, command_id, notes=tuple(flags), site=site, track=track,
                   planned_hours_per_week=planned_hours_per_week, expected_end=expected_end, _level=level, _medication=medication)

    @recorded(ev.TreatmentPlanRecorded)
    def _treatment_plan_recorded(self, goals: list[str], review_on: date | None, occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self._note("TreatmentPlanRecorded", occurred_at, command_id, notes=tuple(goals))

    @recorded(ev.SessionAttended)
    def _session_attended(self, session_id: str, minutes: int, kind: SessionKind, group_type: GroupType | None, modality: Modality | None, telehealth: bool, occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self._note("SessionAttended", occurred_at, command_id, key=session_id, minutes=minutes, kind=kind, telehealth=telehealth)
        self.sessions.add(session_id)

    @recorded(ev.SessionMissed)
    def _session_missed(self, session_id: str, minutes: int, kind: SessionKind, excused: bool, occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self._note("SessionMissed", occurred_at, command_id, key=session_id, minutes=minutes, excused=excused)
        self.sessions.add(session_id)

    @recorded(ev.DrugTestCollected)
    def _drug_test_collected(self, specimen_id: str, specimen: SpecimenKind, observed: bool, random: bool, occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self._note("DrugTestCollected", occurred_at, command_id, key=specimen_id, observed=observed, random=random)
        self.specimens[specimen_id] = self.version + 1

    @recorded(ev.DrugTestResulted)
    def _drug_test_resulted(self, specimen_id: str, result: TestResult, substances: dict[str, str], expected_medications: list[str], occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self.commands.add(command_id)
        episode, stay = self._belonging("DrugTestResulted", self.specimens[specimen_id])
        self._remember(self.version + 1, "DrugTestResulted", occurred_at, {"result": result}, key=specimen_id, episode=episode, stay=stay)
        self.results[specimen_id] = self.version + 1

    @recorded(ev.SteppedUp)
    def _stepped_up(self, from_level: Level, to_level: Level, reason: str, site: str, track: Track, planned_hours_per_week: float, flags: list[str], occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self._note("SteppedUp", occurred_at, command_id, notes=tuple(flags), site=site, track=track,
                   planned_hours_per_week=planned_hours_per_week, reason=reason, _level=to_level)

    @recorded(ev.SteppedDown)
    def _stepped_down(self, from_level: Level, to_level: Level, reason: str, site: str, track: Track, planned_hours_per_week: float, flags: list[str], occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self._note("SteppedDown", occurred_at, command_id, notes=tuple(flags), site=site, track=track,
                   planned_hours_per_week=planned_hours_per_week, reason=reason, _level=to_level)

    @recorded(ev.TrackChanged)
    def _track_changed(self, level: Level, site: str, from_track: Track, track: Track, planned_hours_per_week: float, reason: str, flags: list[str], occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self._note("TrackChanged", occurred_at, command_id, notes=tuple(flags), site=site, track=track,
                   planned_hours_per_week=planned_hours_per_week, reason=reason, _level=level)

    @recorded(ev.MedicationChanged)
    def _medication_changed(self, medication: Medication, reason: str | None, occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self._note("MedicationChanged", occurred_at, command_id, reason=reason, _medication=medication)

    @recorded(ev.Discharged)
    def _discharged(self, level: Level, reason: DischargeReason, referral_onward: str | None, occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self._note("Discharged", occurred_at, command_id, reason=reason, referral_onward=referral_onward, _level=level)

    @recorded(ev.EnrolledInAlumni)
    def _enrolled_in_alumni(self, program: str, occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self._note("EnrolledInAlumni", occurred_at, command_id, program=program)

    @recorded(ev.AlumniActivityAttended)
    def _alumni_activity_attended(self, activity: str, occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self._note("AlumniActivityAttended", occurred_at, command_id, activity=activity)

    @recorded(ev.ConsentGranted)
    def _consent_granted(self, consent_id: str, recipient: str, purpose: str, purpose_text: str | None, scope: list[str], expires_on: date | None, occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self.commands.add(command_id)
        self._remember(self.version + 1, "ConsentGranted", occurred_at, {
            "recipient": recipient, "purpose": purpose, "purpose_text": purpose_text, "expires_on": expires_on,
        }, key=consent_id, notes=tuple(scope))  # belongs to no stay: a discharge is never held by it
        self.consent_grants[consent_id] = self.version + 1

    @recorded(ev.ConsentRevoked)
    def _consent_revoked(self, consent_id: str, granted_version: int, occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self.commands.add(command_id)
        self._remember(self.version + 1, "ConsentRevoked", occurred_at, {}, key=consent_id)
        self.consent_revocations[consent_id] = self.version + 1

    @recorded(ev.EntryCorrected)
    def _entry_corrected(self, corrects_version: int, corrects_type: str, field: str, previous_value: Scalar, corrected_value: Scalar, reason: str, flags: list[str] | None, occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self.commands.add(command_id)
        entry = self.entries[corrects_version]
        entry.fields[field] = corrected_value
        if field == "occurred_at":
            entry.at = datetime.fromisoformat(str(corrected_value))
        if flags is not None:
            entry.notes = tuple(flags)
        if corrects_type in MILESTONES or corrects_version == 1:
            self._settle()

    @recorded(ev.EntryVoided)
    def _entry_voided(self, voided_version: int, voided_type: str, reason: str, occurred_at: datetime, recorded_by: Actor, command_id: str, episode: int | None, stay: int | None) -> None:
        self.commands.add(command_id)
        entry = self.entries[voided_version]
        entry.voided = True
        if voided_type in MILESTONES:
            self.milestones.remove(voided_version)
            if voided_type in TRANSITIONS:
                self.transitions.remove(voided_version)
            self._settle()
        if voided_type in ("SessionAttended", "SessionMissed"):
            self.sessions.discard(str(entry.key))
        elif voided_type == "DrugTestCollected":
            self.specimens.pop(str(entry.key), None)
        elif voided_type == "DrugTestResulted":
            self.results.pop(str(entry.key), None)
        elif voided_type == "AssessmentCompleted":
            self.assessments.remove(voided_version)
