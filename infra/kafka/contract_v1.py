"""Contract version 1, the record: what `care.journey.v1` carried, kept so that its committed schemas
(`schemas/events/*.v1.json`) stay written and checked. Nothing publishes it any more: the relay
publishes version 2 (`infra/kafka/contract.py`) on `care.journey.v2`.

Version 1 keyed each message by the journey id, `uuid5` of the client reference under a public
namespace, and published sites, substances, analyte names, alumni programmes and activities as
typed: anyone who could read the topic could recompute the journey id of every client reference
and read free text word for word. Do not build on it.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

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

VERSION = 1

WITHHELD: dict[str, tuple[str, ...]] = {
    "ClientRegistered": ("client_ref",),
    "AssessmentCompleted": ("clinician",),
    "TreatmentPlanRecorded": ("goals",),
    "SteppedUp": ("reason",),
    "SteppedDown": ("reason",),
    "Discharged": ("referral_onward",),
    "EntryCorrected": ("reason",),
    "TrackChanged": ("reason",),
    "MedicationChanged": ("reason",),
    "EntryVoided": ("reason",),
}
"""Domain fields never published, by event type (besides `command_id` and `recorded_by.id`)."""

PSEUDONYMISED: dict[str, str] = {
    "SessionAttended": "session",
    "SessionMissed": "session",
    "DrugTestCollected": "specimen",
    "DrugTestResulted": "specimen",
}
"""Events whose `session_id` or `specimen_id` is published as a per-journey uuid5 pseudonym."""

Pseudonym = Annotated[UUID, Field(description="uuid5(journey id, kind + ':' + the clinic's id): pairs events, names nothing")]
Rating = Annotated[int, Field(ge=0, le=4)]
Hours = Annotated[float, Field(ge=0, le=168)]
Minutes = Annotated[int, Field(gt=0, le=720)]
Scalar = str | float | bool | None
FlagCode = Literal["hours_outside_adult_band", "hours_outside_adolescent_band", "withdrawal_need_at_ambulatory_admission"]
Flags = Annotated[list[FlagCode], Field(description="What a clinician should look at again (recorded, never refused)")]


class EventPayload(BaseModel):
    """What every event carries besides its own facts; the rest of the envelope is in ce_* headers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    occurred_at: AwareDatetime = Field(description="Clinical time (may be late); ce_time is the recorded time")
    recorded_role: str = Field(description="Role of whoever recorded the event (the actor id is not published)")


class ClientRegistered(EventPayload):
    site: str
    birth_year: int | None = Field(ge=1900, le=2100)
    sex: Literal["female", "male", "other", "unknown"] | None


class ReferralReceived(EventPayload):
    source: ReferralSource
    referred_level: Level | None


class AssessmentCompleted(EventPayload):
    ratings: list[Rating] = Field(min_length=6, max_length=6, description="ASAM dimensions 1..6, each 0-4")
    recommended_level: Level


class WithdrawalManagementStarted(EventPayload):
    level: Level
    site: str
    substances: list[str]
    medication: Medication = Medication.NONE


class DetoxCompleted(EventPayload):
    level: Level
    completed: bool = Field(description="false: left withdrawal management early")


class AdmittedToLevel(EventPayload):
    level: Level
    site: str
    track: Track
    planned_hours_per_week: Hours
    expected_end: date | None
    medication: Medication
    flags: Flags = []


class TreatmentPlanRecorded(EventPayload):
    review_on: date | None


class SessionAttended(EventPayload):
    session_id: Pseudonym
    minutes: Minutes
    kind: SessionKind
    group_type: GroupType | None
    modality: Modality | None
    telehealth: bool


class SessionMissed(EventPayload):
    session_id: Pseudonym
    minutes: Minutes = Field(description="scheduled length")
    kind: SessionKind
    excused: bool


class DrugTestCollected(EventPayload):
    specimen_id: Pseudonym
    specimen: SpecimenKind
    observed: bool
    random: bool


class DrugTestResulted(EventPayload):
    specimen_id: Pseudonym
    result: TestResult
    substances: dict[str, Literal["positive", "negative"]] = Field(description="result per analyte")
    expected_medications: list[str] = Field(description="MAT analytes whose positives are expected")


class LevelChange(EventPayload):
    from_level: Level
    to_level: Level
    site: str
    track: Track
    planned_hours_per_week: Hours
    flags: Flags = []


class SteppedUp(LevelChange):
    pass


class SteppedDown(LevelChange):
    pass


class Discharged(EventPayload):
    level: Level
    reason: DischargeReason = Field(description="TEDS-D discharge reason")


class EnrolledInAlumni(EventPayload):
    program: str


class AlumniActivityAttended(EventPayload):
    activity: str


class EntryCorrected(EventPayload):
    corrects_version: int = Field(ge=1, description="ce_sequence of the corrected event of the same journey")
    corrects_type: str = Field(description="Event type name of the corrected event, e.g. SteppedDown")
    field: str
    previous_value: Scalar = Field(description="null when values_withheld")
    corrected_value: Scalar = Field(description="null when values_withheld")
    values_withheld: bool = Field(description="true when the corrected field is one the topic does not publish")
    flags: Flags | None = Field(default=None, description="The corrected entry's flags, when the correction changes them")


class TrackChanged(EventPayload):
    """A change of track or planned hours within one level: not a step."""

    level: Level
    site: str
    from_track: Track
    track: Track
    planned_hours_per_week: Hours
    flags: Flags = []


class MedicationChanged(EventPayload):
    medication: Medication


class EntryVoided(EventPayload):
    """An entry made in error: consumers drop its effect (it stays on the topic and in the store)."""

    voided_version: int = Field(ge=1, description="ce_sequence of the voided event of the same journey")
    voided_type: str = Field(description="Event type name of the voided event, e.g. Discharged")


MODELS: dict[str, type[EventPayload]] = {
    model.__name__: model
    for model in (
        ClientRegistered, ReferralReceived, AssessmentCompleted, WithdrawalManagementStarted, DetoxCompleted,
        AdmittedToLevel, TreatmentPlanRecorded, SessionAttended, SessionMissed, DrugTestCollected, DrugTestResulted,
        SteppedUp, SteppedDown, Discharged, EnrolledInAlumni, AlumniActivityAttended, TrackChanged, MedicationChanged,
        EntryCorrected, EntryVoided,
    )
}

