"""The command contract: one pydantic model per command, shared by the importer, the API and
`continuum schema commands`. Each model validates its fields at the boundary and knows which
journey method carries it out; the journey then enforces the care rules.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

from domain.consent import ConsentPurpose
from domain.journey import ClientJourney
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
from domain.values import BIRTH_YEARS, Context


def _level(value: object) -> object:
    """Levels by ASAM code ("2.1") or by name ("IOP", "iop"); anything else fails as an unknown code."""
    return _BY_NAME.get(value.lower(), value) if isinstance(value, str) else value


_BY_NAME = {level.name.lower(): level.value for level in Level}
LevelOfCare = Annotated[Level, BeforeValidator(_level)]

ClientRef = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
Text = Annotated[str, Field(min_length=1, max_length=200)]
Rating = Annotated[int, Field(ge=0, le=4)]


class Command(BaseModel):
    """Fields every command line carries."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)
    creates: ClassVar[bool] = False

    id: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        default=None, description="Command id; when absent it is derived from the command's content.",
    )
    client: ClientRef = Field(description="The provider's client reference (pseudonymous, no names).")
    occurred_at: AwareDatetime = Field(description="Clinical time, with a timezone; may be late, never future.")

    def command_id(self) -> str:
        if self.id is not None:
            return self.id
        content = json.dumps(self.model_dump(mode="json", exclude={"id"}), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(content.encode()).hexdigest()[:32]

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        raise NotImplementedError

    def create(self, ctx: Context) -> ClientJourney:
        """The new journey, for a command that `creates` one."""
        raise NotImplementedError


class Register(Command):
    command: Literal["register"] = "register"
    creates: ClassVar[bool] = True
    site: Text
    birth_year: Annotated[int, Field(ge=BIRTH_YEARS[0], le=BIRTH_YEARS[1])] | None = None
    sex: Literal["female", "male", "other", "unknown"] | None = None

    def create(self, ctx: Context) -> ClientJourney:
        return ClientJourney.register(
            self.client, site=self.site, birth_year=self.birth_year, sex=self.sex, at=self.occurred_at, ctx=ctx,
        )


class Refer(Command):
    command: Literal["refer"] = "refer"
    source: ReferralSource
    referred_level: LevelOfCare | None = None

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.refer(source=self.source, referred_level=self.referred_level, at=self.occurred_at, ctx=ctx)


class Assess(Command):
    command: Literal["assess"] = "assess"
    ratings: Annotated[list[Rating], Field(min_length=6, max_length=6, description="ASAM dimensions 1-6, 0-4")]
    recommended_level: LevelOfCare
    clinician: Text

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.assess(
            ratings=self.ratings, recommended=self.recommended_level, clinician=self.clinician,
            at=self.occurred_at, ctx=ctx,
        )


class StartDetox(Command):
    command: Literal["start_detox"] = "start_detox"
    level: LevelOfCare = Field(description="A withdrawal management level (1-WM .. 4-WM)")
    site: Text
    substances: list[Text] = []
    medication: Medication = Field(default=Medication.NONE, description="Medication for addiction treatment from the start")

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.start_withdrawal_management(
            level=self.level, site=self.site, substances=self.substances, medication=self.medication,
            at=self.occurred_at, ctx=ctx,
        )


class CompleteDetox(Command):
    command: Literal["complete_detox"] = "complete_detox"
    completed: bool = Field(default=True, description="false: left withdrawal management early")

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.complete_detox(completed=self.completed, at=self.occurred_at, ctx=ctx)


class Admit(Command):
    command: Literal["admit"] = "admit"
    level: LevelOfCare
    site: Text
    track: Track | None = Field(default=None, description="day or evening for ambulatory levels")
    planned_hours_per_week: Annotated[float, Field(ge=0, le=168)] | None = Field(
        default=None, description="Planned clinical hours a week; when absent, the level's typical plan (outpatient 3, IOP 9, PHP 20)",
    )
    expected_end: date | None = None
    medication: Medication = Medication.NONE

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.admit(
            level=self.level, site=self.site, track=self.track, planned_hours_per_week=self.planned_hours_per_week,
            expected_end=self.expected_end, medication=self.medication, at=self.occurred_at, ctx=ctx,
        )


class Plan(Command):
    command: Literal["plan"] = "plan"
    goals: Annotated[list[Text], Field(min_length=1)]
    review_on: date | None = None

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.record_plan(goals=self.goals, review_on=self.review_on, at=self.occurred_at, ctx=ctx)


class AttendSession(Command):
    command: Literal["attend_session"] = "attend_session"
    session_id: Text
    minutes: Annotated[int, Field(gt=0, le=720)] = 180
    kind: SessionKind = SessionKind.GROUP
    group_type: GroupType | None = None
    modality: Modality | None = None
    telehealth: bool = False

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.attend_session(
            session_id=self.session_id, minutes=self.minutes, kind=self.kind, group_type=self.group_type,
            modality=self.modality, telehealth=self.telehealth, at=self.occurred_at, ctx=ctx,
        )


class MissSession(Command):
    command: Literal["miss_session"] = "miss_session"
    session_id: Text
    minutes: Annotated[int, Field(gt=0, le=720)] = 180
    kind: SessionKind = SessionKind.GROUP
    excused: bool = False

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.miss_session(
            session_id=self.session_id, minutes=self.minutes, kind=self.kind, excused=self.excused,
            at=self.occurred_at, ctx=ctx,
        )


class CollectDrugTest(Command):
    command: Literal["collect_drug_test"] = "collect_drug_test"
    specimen_id: Text
    specimen: SpecimenKind = SpecimenKind.URINE
    observed: bool = False
    random: bool = True

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.collect_specimen(
            specimen_id=self.specimen_id, specimen=self.specimen, observed=self.observed, random=self.random,
            at=self.occurred_at, ctx=ctx,
        )


class ResultDrugTest(Command):
    command: Literal["result_drug_test"] = "result_drug_test"
    specimen_id: Text
    result: TestResult
    substances: dict[Text, Literal["positive", "negative"]] = Field(default={}, description="result per analyte")
    expected_medications: list[Text] = []

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.record_result(
            specimen_id=self.specimen_id, result=self.result, substances=self.substances,
            expected_medications=self.expected_medications, at=self.occurred_at, ctx=ctx,
        )


class _Step(Command):
    to_level: LevelOfCare
    reason: Text
    track: Track | None = None
    planned_hours_per_week: Annotated[float, Field(ge=0, le=168)] | None = None


class StepUp(_Step):
    command: Literal["step_up"] = "step_up"

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.step_up(
            to=self.to_level, reason=self.reason, track=self.track,
            planned_hours_per_week=self.planned_hours_per_week, at=self.occurred_at, ctx=ctx,
        )


class StepDown(_Step):
    command: Literal["step_down"] = "step_down"

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.step_down(
            to=self.to_level, reason=self.reason, track=self.track,
            planned_hours_per_week=self.planned_hours_per_week, at=self.occurred_at, ctx=ctx,
        )


class ChangeTrack(Command):
    command: Literal["change_track"] = "change_track"
    track: Track | None = Field(default=None, description="The new track (day or evening for ambulatory levels)")
    planned_hours_per_week: Annotated[float, Field(ge=0, le=168)] | None = None
    reason: Text

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.change_track(
            track=self.track, planned_hours_per_week=self.planned_hours_per_week, reason=self.reason,
            at=self.occurred_at, ctx=ctx,
        )


class ChangeMedication(Command):
    command: Literal["change_medication"] = "change_medication"
    medication: Medication
    reason: Text | None = None

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.change_medication(medication=self.medication, reason=self.reason, at=self.occurred_at, ctx=ctx)


class Discharge(Command):
    command: Literal["discharge"] = "discharge"
    reason: DischargeReason
    referral_onward: Text | None = None

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.discharge(reason=self.reason, referral_onward=self.referral_onward, at=self.occurred_at, ctx=ctx)


class EnrolAlumni(Command):
    command: Literal["enrol_alumni"] = "enrol_alumni"
    program: Text = "alumni"

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.enrol_in_alumni(program=self.program, at=self.occurred_at, ctx=ctx)


class AttendAlumniActivity(Command):
    command: Literal["attend_alumni_activity"] = "attend_alumni_activity"
    activity: Text

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.attend_alumni_activity(activity=self.activity, at=self.occurred_at, ctx=ctx)


class Correct(Command):
    command: Literal["correct"] = "correct"
    corrects_version: Annotated[int, Field(ge=1, description="Version (sequence number) of the entry corrected")]
    field: Text
    value: str | float | bool | None = Field(description="The corrected value")
    reason: Text

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.correct(
            version=self.corrects_version, field=self.field, value=self.value, reason=self.reason,
            at=self.occurred_at, ctx=ctx,
        )


class Void(Command):
    """Entered in error: the entries stay recorded and shown, and stop counting (latest first)."""

    command: Literal["void"] = "void"
    versions: Annotated[
        list[Annotated[int, Field(ge=1)]],
        Field(min_length=1, max_length=100, description="Versions of the entries made in error; later dependants may be voided with them"),
    ]
    reason: Text

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.void(versions=self.versions, reason=self.reason, at=self.occurred_at, ctx=ctx)


RecordKind = Literal[
    "all", "demographics", "episodes", "stays", "sessions", "assessments", "plans", "drug_tests", "medication", "discharges",
]
"""The record kinds of `domain.consent` (`ALL`, `RECORD_KINDS`), as the schema lists them (a unit test holds them equal)."""


class GrantConsent(Command):
    """A 42 CFR Part 2 consent to disclose (§2.31): recipient, purpose, scope and expiry."""

    command: Literal["grant_consent"] = "grant_consent"
    consent_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")] = Field(
        description="The consent form's reference (named again by a revocation)",
    )
    recipient: Text = Field(description="Who may receive the record (an organisation or a named person)")
    purpose: ConsentPurpose = Field(description="treatment, payment, health_care_operations, or named (see purpose_text)")
    purpose_text: Text | None = Field(default=None, description="The purpose in the consent's words (required for named)")
    scope: Annotated[list[RecordKind], Field(min_length=1)] = Field(
        default=["all"], description="What may be disclosed: all, or record kinds",
    )
    expires_on: date | None = Field(default=None, description="The last day the consent is in force (none: until revoked)")

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.grant_consent(
            consent_id=self.consent_id, recipient=self.recipient, purpose=self.purpose, purpose_text=self.purpose_text,
            scope=self.scope, expires_on=self.expires_on, at=self.occurred_at, ctx=ctx,
        )


class RevokeConsent(Command):
    command: Literal["revoke_consent"] = "revoke_consent"
    consent_id: Annotated[str, Field(min_length=1, max_length=64)]

    def apply(self, journey: ClientJourney, ctx: Context) -> None:
        journey.revoke_consent(consent_id=self.consent_id, at=self.occurred_at, ctx=ctx)


COMMANDS: tuple[type[Command], ...] = (
    Register, Refer, Assess, StartDetox, CompleteDetox, Admit, Plan, AttendSession, MissSession,
    CollectDrugTest, ResultDrugTest, StepUp, StepDown, ChangeTrack, ChangeMedication, Discharge, EnrolAlumni,
    AttendAlumniActivity, Correct, Void, GrantConsent, RevokeConsent,
)

AnyCommand = Annotated[
    Register | Refer | Assess | StartDetox | CompleteDetox | Admit | Plan | AttendSession | MissSession
    | CollectDrugTest | ResultDrugTest | StepUp | StepDown | ChangeTrack | ChangeMedication | Discharge | EnrolAlumni
    | AttendAlumniActivity | Correct | Void | GrantConsent | RevokeConsent,
    Field(discriminator="command"),
]
command_adapter: TypeAdapter[Command] = TypeAdapter(AnyCommand)


def parse_command(data: object) -> Command:  # JSON of any shape comes in here
    return command_adapter.validate_python(data)


def commands_json_schema() -> dict[str, Any]:
    schema = command_adapter.json_schema()
    for definition in schema.get("$defs", {}).values():
        if "command" in definition.get("properties", {}):  # has a default in Python, but a line must name it
            definition["required"] = ["command", *definition.get("required", [])]
    schema["title"] = "care-continuum command line"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
