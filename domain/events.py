"""The event catalogue: every fact about a client's journey, in the past tense.

Each event records when it happened clinically (`occurred_at`, timezone-aware, may be late, never
in the future), who recorded it (`recorded_by`) and the command that caused it (`command_id`);
the library's `timestamp` is the recorded time, set when the store side records it. Events are
never updated or deleted: a mistake is put right by `EntryCorrected`, which points at the entry.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

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
from domain.values import Actor


class JourneyEvent(Aggregate.Event):
    occurred_at: datetime
    recorded_by: Actor
    command_id: str
    episode: int | None  # version of the event that opened the treatment episode this one belongs to (None: none)
    stay: int | None  # version of the admission or step that opened the service stay this one belongs to


class ClientRegistered(Aggregate.Created):
    client_ref: str
    site: str
    birth_year: int | None
    sex: str | None
    occurred_at: datetime
    recorded_by: Actor
    command_id: str


class ReferralReceived(JourneyEvent):
    source: ReferralSource
    referred_level: Level | None


class AssessmentCompleted(JourneyEvent):
    ratings: list[int]  # ASAM dimensions 1..6, each 0-4
    recommended_level: Level
    clinician: str


class WithdrawalManagementStarted(JourneyEvent):
    level: Level
    site: str
    substances: list[str]
    medication: Medication

    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Medication was first recorded from the first admission on; a detox before that had none recorded."""
        state["medication"] = Medication.NONE


class DetoxCompleted(JourneyEvent):
    level: Level
    completed: bool  # False: left withdrawal management early


class AdmittedToLevel(JourneyEvent):
    level: Level
    site: str
    track: Track
    planned_hours_per_week: float
    expected_end: date | None
    medication: Medication
    flags: list[str]  # codes of `domain.flags`: recorded, never refused

    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["flags"] = []


class TreatmentPlanRecorded(JourneyEvent):
    goals: list[str]
    review_on: date | None


class SessionAttended(JourneyEvent):
    session_id: str
    minutes: int
    kind: SessionKind
    group_type: GroupType | None
    modality: Modality | None
    telehealth: bool


class SessionMissed(JourneyEvent):
    session_id: str
    minutes: int  # scheduled length
    kind: SessionKind
    excused: bool


class DrugTestCollected(JourneyEvent):
    specimen_id: str
    specimen: SpecimenKind
    observed: bool
    random: bool


class DrugTestResulted(JourneyEvent):
    specimen_id: str
    result: TestResult
    substances: dict[str, str]  # analyte -> "positive" | "negative"
    expected_medications: list[str]  # MAT analytes whose positives are expected


class LevelChange(JourneyEvent):
    from_level: Level
    to_level: Level
    reason: str
    site: str
    track: Track
    planned_hours_per_week: float
    flags: list[str]

    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["flags"] = []


class SteppedUp(LevelChange):
    pass


class SteppedDown(LevelChange):
    pass


class Discharged(JourneyEvent):
    level: Level
    reason: DischargeReason
    referral_onward: str | None


class EnrolledInAlumni(JourneyEvent):
    program: str


class AlumniActivityAttended(JourneyEvent):
    activity: str


class TrackChanged(JourneyEvent):
    """A change of program track or planned hours within one level (IOP day to evening): not a step."""

    level: Level
    site: str
    from_track: Track
    track: Track
    planned_hours_per_week: float
    reason: str
    flags: list[str]


class MedicationChanged(JourneyEvent):
    """Medication for addiction treatment started, changed or stopped during a stay."""

    medication: Medication
    reason: str | None


class EntryCorrected(JourneyEvent):
    corrects_version: int
    corrects_type: str
    field: str
    previous_value: str | float | bool | None
    corrected_value: str | float | bool | None
    reason: str
    flags: list[str] | None  # the corrected entry's flags again, when the correction changes them

    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["flags"] = None


class EntryVoided(JourneyEvent):
    """An entry made in error: it stays recorded and shown, and no longer counts anywhere."""

    voided_version: int
    voided_type: str
    reason: str


class ConsentGranted(JourneyEvent):
    """A 42 CFR Part 2 consent (§2.31): who may receive the record, why, how much of it, until when.
    `purpose` is a `domain.consent.ConsentPurpose` value; a consent does not move the client."""

    consent_id: str
    recipient: str
    purpose: str
    purpose_text: str | None
    scope: list[str]
    expires_on: date | None


class ConsentRevoked(JourneyEvent):
    """The client revoked a consent: nothing more is disclosed under it from `occurred_at` on."""

    consent_id: str
    granted_version: int  # the version of the grant revoked (pairs them where the consent id is withheld)


EVENT_TYPES: tuple[type[Aggregate.Event], ...] = (
    ClientRegistered,
    ReferralReceived,
    AssessmentCompleted,
    WithdrawalManagementStarted,
    DetoxCompleted,
    AdmittedToLevel,
    TreatmentPlanRecorded,
    SessionAttended,
    SessionMissed,
    DrugTestCollected,
    DrugTestResulted,
    SteppedUp,
    SteppedDown,
    Discharged,
    EnrolledInAlumni,
    AlumniActivityAttended,
    TrackChanged,
    MedicationChanged,
    EntryCorrected,
    EntryVoided,
    ConsentGranted,
    ConsentRevoked,
)


def _recorded_before_episode_ids(state: dict[str, Any]) -> None:
    """Events stored before episode and stay ids were stored with each event carry none (the journey still derives
    them when it folds its history: `Entry.episode`, `Entry.stay`)."""
    state["episode"] = None
    state["stay"] = None


def _store_episode_ids(event_class: type[Aggregate.Event]) -> None:
    """One more class version, whose upcast from the last gives an older stored event no episode or stay."""
    version = getattr(event_class, "class_version", 1)
    setattr(event_class, f"upcast_v{version}_v{version + 1}", staticmethod(_recorded_before_episode_ids))
    event_class.class_version = version + 1  # type: ignore[attr-defined]


for _event_class in EVENT_TYPES[1:]:  # every journey event but the registration, which opens no episode
    _store_episode_ids(_event_class)


def event_id(journey_id: UUID, version: int) -> UUID:
    """The stable id of one event: the same event has the same id wherever it is published."""
    return uuid5(journey_id, str(version))


def event_name(event: object) -> str:
    """The catalogue name of an event (the library subclasses each on the aggregate)."""
    return type(event).__name__


COMMON_FIELDS = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic", "episode", "stay"})
"""Where an event sits (journey, version, recorded time, its episode and stay), not what it says."""


def payload(event: Any) -> dict[str, Any]:  # noqa: ANN401 - any event of the catalogue
    """An event's own facts as JSON-ready values, without the envelope fields."""
    return {
        field.name: _plain(getattr(event, field.name))
        for field in fields(event)
        if field.name not in COMMON_FIELDS
    }


def _plain(value: object) -> Any:  # noqa: ANN401 - JSON of any shape
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Actor):
        return {"id": value.id, "role": value.role}
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
