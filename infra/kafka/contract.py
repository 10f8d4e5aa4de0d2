"""The published contract, version 2: one pydantic model per event type for the values of
`care.journey.v2`.

The models are written out, not derived from the domain events, so that a change to the domain
cannot change what other teams receive without a new committed schema (and a new `.vN` type when
it is not backward compatible). They are closed (`additionalProperties: false`). Version 1, the
record of what `care.journey.v1` carried, is `infra/kafka/contract_v1.py`.

Nothing on the topic names a person, carries free text, or can be linked back to a client
reference without the deployment's pseudonym key (`CONTINUUM_PSEUDONYM_KEY`):

- the key and `ce_subject` are the journey's pseudonym, HMAC-SHA256 of the journey id under the key,
  written as a UUID (version 8); `ce_id` is uuid5(pseudonym, version); session and specimen ids are
  HMAC-SHA256 of the journey's pseudonym and the clinic's id under the key (see `infra/kafka/envelope.py`);
- coded: a site is `site-` and 8 hex digits of HMAC-SHA256 of its name under the key (stable for a
  key, unreadable without it); substances, drug-test analytes and the recording role are closed
  vocabularies (`SUBSTANCES`, `ANALYTES`, `ROLES`), anything else is `other`;
- withheld: the actor id (the role is published, coded), the command id (it embeds import line
  content), and per event the fields in `WITHHELD` (every clinician's free text, the client
  reference, the alumni programme and activity).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Annotated, Literal, get_args
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
from domain.values import BIRTH_YEARS

VERSION = 2
TYPE_PREFIX = "org.carecontinuum.journey."
SOURCE = "/care-continuum/journeys"

WITHHELD: dict[str, tuple[str, ...]] = {
    "ClientRegistered": ("client_ref",),
    "AssessmentCompleted": ("clinician",),
    "TreatmentPlanRecorded": ("goals",),
    "SteppedUp": ("reason",),
    "SteppedDown": ("reason",),
    "Discharged": ("referral_onward",),
    "EnrolledInAlumni": ("program",),
    "AlumniActivityAttended": ("activity",),
    "EntryCorrected": ("reason",),
    "TrackChanged": ("reason",),
    "MedicationChanged": ("reason",),
    "EntryVoided": ("reason",),
    "ConsentGranted": ("consent_id", "recipient", "purpose_text"),
    "ConsentRevoked": ("consent_id",),
}
"""Domain fields never published, by event type (besides `command_id` and `recorded_by.id`)."""

PSEUDONYMISED: dict[str, str] = {
    "SessionAttended": "session",
    "SessionMissed": "session",
    "DrugTestCollected": "specimen",
    "DrugTestResulted": "specimen",
}
"""Events whose `session_id` or `specimen_id` is published as a keyed pseudonym."""

CODED: dict[str, tuple[str, ...]] = {
    "ClientRegistered": ("site",),
    "WithdrawalManagementStarted": ("site", "substances"),
    "AdmittedToLevel": ("site",),
    "DrugTestResulted": ("substances", "expected_medications"),
    "SteppedUp": ("site",),
    "SteppedDown": ("site",),
    "TrackChanged": ("site",),
}
"""Domain fields published as codes, by event type (besides `recorded_by.role`, coded on every event)."""

SubstanceCode = Literal[
    "alcohol", "opioids", "fentanyl", "stimulants", "cannabis", "benzodiazepines", "sedatives", "hallucinogens",
    "inhalants", "nicotine", "other",
]
AnalyteCode = Literal[
    "amphetamines", "methamphetamine", "mdma", "benzoylecgonine", "cocaine", "thc", "synthetic_cannabinoids", "etg",
    "ets", "ethanol", "fentanyl", "norfentanyl", "opiates", "morphine", "codeine", "6-mam", "oxycodone", "oxymorphone",
    "hydrocodone", "hydromorphone", "tramadol", "tapentadol", "methadone", "eddp", "buprenorphine", "norbuprenorphine",
    "naltrexone", "benzodiazepines", "barbiturates", "zolpidem", "carisoprodol", "gabapentin", "xylazine", "pcp",
    "ketamine", "mitragynine", "cotinine", "other",
]
RoleCode = Literal["clinician", "auditor", "dashboard", "system", "other"]
SexCode = Literal["female", "male", "other", "unknown"]
EventName = Literal[
    "ClientRegistered", "ReferralReceived", "AssessmentCompleted", "WithdrawalManagementStarted", "DetoxCompleted",
    "AdmittedToLevel", "TreatmentPlanRecorded", "SessionAttended", "SessionMissed", "DrugTestCollected", "DrugTestResulted",
    "SteppedUp", "SteppedDown", "Discharged", "EnrolledInAlumni", "AlumniActivityAttended", "TrackChanged", "MedicationChanged",
    "EntryCorrected", "EntryVoided", "ConsentGranted", "ConsentRevoked",
]
ConsentPurposeCode = Literal["treatment", "payment", "health_care_operations", "named"]
RecordKindCode = Literal[
    "all", "demographics", "episodes", "stays", "sessions", "assessments", "plans", "drug_tests", "medication", "discharges",
]

SUBSTANCES: tuple[str, ...] = get_args(SubstanceCode)
ANALYTES: tuple[str, ...] = get_args(AnalyteCode)
ROLES: tuple[str, ...] = get_args(RoleCode)
SEXES: tuple[str, ...] = get_args(SexCode)
OTHER = "other"

_SUBSTANCE_TERMS: dict[str, tuple[str, ...]] = {
    "alcohol": ("alcohol", "ethanol", "etoh", "beer", "wine", "liquor", "spirits"),
    "opioids": (
        "opioids", "opioid", "opiates", "opiate", "heroin", "morphine", "codeine", "oxycodone", "oxycontin", "hydrocodone",
        "hydromorphone", "oxymorphone", "methadone", "buprenorphine", "tramadol", "tapentadol", "opium", "kratom",
        "prescription opioids",
    ),
    "fentanyl": ("fentanyl", "carfentanil", "fentanyl analogues", "nitazenes"),
    "stimulants": (
        "stimulants", "stimulant", "cocaine", "crack", "crack cocaine", "methamphetamine", "meth", "amphetamine",
        "amphetamines", "mdma", "ecstasy", "methylphenidate", "cathinones",
    ),
    "cannabis": ("cannabis", "marijuana", "thc", "hashish", "synthetic cannabinoids", "k2", "spice"),
    "benzodiazepines": (
        "benzodiazepines", "benzodiazepine", "benzos", "alprazolam", "diazepam", "clonazepam", "lorazepam",
    ),
    "sedatives": ("sedatives", "sedative", "barbiturates", "zolpidem", "ghb", "tranquilizers", "xylazine"),
    "hallucinogens": ("hallucinogens", "lsd", "psilocybin", "pcp", "ketamine", "mescaline", "dmt"),
    "inhalants": ("inhalants", "nitrous oxide", "solvents"),
    "nicotine": ("nicotine", "tobacco"),
}
SUBSTANCE_TERMS: dict[str, str] = {term: code for code, terms in _SUBSTANCE_TERMS.items() for term in terms}
"""The substance terms a clinic may type, normalised (lower case, single spaces), and the code each is published as."""
ANALYTE_TERMS: dict[str, str] = {
    **{code: code for code in ANALYTES}, "6-monoacetylmorphine": "6-mam", "kratom": "mitragynine", "etoh": "ethanol",
}
"""The analyte names a laboratory may report, normalised, and the code each is published as."""

_SPACES = re.compile(r"\s+")


def _normal(term: str) -> str:
    return _SPACES.sub(" ", term.strip().lower())


def substance_code(term: str) -> str:
    """`Heroin` -> `opioids`; a term the vocabulary does not know (or any free text) -> `other`."""
    return SUBSTANCE_TERMS.get(_normal(term), OTHER)


def substance_codes(terms: Iterable[str]) -> list[str]:
    """Each term's code, once, in the order first met."""
    return list(dict.fromkeys(substance_code(term) for term in terms))


def analyte_code(name: str) -> str:
    """A known analyte code (`fentanyl`, `etg`, `6-mam`...) as itself, in any case; anything else -> `other`."""
    return ANALYTE_TERMS.get(_normal(name), OTHER)


def analyte_codes(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(analyte_code(name) for name in names))


def analyte_results(results: Mapping[str, str]) -> dict[str, str]:
    """Result per analyte code; when several analytes share a code (`other`), a positive among them wins."""
    coded: dict[str, str] = {}
    for name, outcome in results.items():
        code = analyte_code(name)
        coded[code] = "positive" if "positive" in (outcome, coded.get(code)) else outcome
    return coded


def role_code(role: str) -> str:
    return role if role in ROLES else OTHER


def sex_code(value: str | None) -> str | None:
    return None if value is None else value if value in SEXES else OTHER


NOT_CORRECTED_AS_PUBLISHED = frozenset({"recorded_role", "session_id", "specimen_id", "substances", "expected_medications"})


def correction_published(corrects_type: str, field: str) -> bool:
    """Whether an `EntryCorrected` of this field publishes its old and new values: only when the corrected event
    publishes the field itself (then coded like it: a site as its code, a sex in the vocabulary)."""
    model = MODELS.get(corrects_type)
    return model is not None and field in model.model_fields and field not in NOT_CORRECTED_AS_PUBLISHED


Pseudonym = Annotated[UUID, Field(
    description="HMAC-SHA256 under the deployment's pseudonym key of the journey's pseudonym and the clinic's id, as a"
                " UUID (version 8): pairs events of one journey, names nothing",
)]
SiteCode = Annotated[str, Field(
    pattern=r"^site-[0-9a-f]{8}$",
    description="The site's code: 'site-' and 8 hex digits of HMAC-SHA256 of its name under the deployment's pseudonym"
                " key; the same site has the same code on every event",
)]
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
    recorded_role: RoleCode = Field(
        description="Role of whoever recorded the event ('other' for a role outside the vocabulary); the actor id is not published",
    )


class ClientRegistered(EventPayload):
    site: SiteCode
    birth_year: int | None = Field(ge=BIRTH_YEARS[0], le=BIRTH_YEARS[1])
    sex: SexCode | None


class ReferralReceived(EventPayload):
    source: ReferralSource
    referred_level: Level | None


class AssessmentCompleted(EventPayload):
    ratings: list[Rating] = Field(min_length=6, max_length=6, description="ASAM dimensions 1..6, each 0-4")
    recommended_level: Level


class WithdrawalManagementStarted(EventPayload):
    level: Level
    site: SiteCode
    substances: list[SubstanceCode] = Field(description="Substance classes, each once; a term outside the vocabulary is 'other'")
    medication: Medication = Medication.NONE


class DetoxCompleted(EventPayload):
    level: Level
    completed: bool = Field(description="false: left withdrawal management early")


class AdmittedToLevel(EventPayload):
    level: Level
    site: SiteCode
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
    substances: dict[AnalyteCode, Literal["positive", "negative"]] = Field(
        description="Result per analyte code; analytes outside the vocabulary are 'other' (positive when any of them is)",
    )
    expected_medications: list[AnalyteCode] = Field(description="MAT analytes whose positives are expected, as analyte codes")


class LevelChange(EventPayload):
    from_level: Level
    to_level: Level
    site: SiteCode
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
    """Enrolled in the alumni programme (which one is not published)."""


class AlumniActivityAttended(EventPayload):
    """Came to an alumni activity (which one is not published: clinics describe it in free text)."""


class EntryCorrected(EventPayload):
    corrects_version: int = Field(ge=1, description="ce_sequence of the corrected event of the same journey")
    corrects_type: EventName = Field(description="Event type name of the corrected event, e.g. SteppedDown")
    field: str = Field(pattern=r"^[a-z][a-z_]*$")
    previous_value: Scalar = Field(description="null when values_withheld; a site as its code, a sex in the vocabulary")
    corrected_value: Scalar = Field(description="null when values_withheld; a site as its code, a sex in the vocabulary")
    values_withheld: bool = Field(description="true when the corrected event does not publish the corrected field")
    flags: Flags | None = Field(default=None, description="The corrected entry's flags, when the correction changes them")


class TrackChanged(EventPayload):
    """A change of track or planned hours within one level: not a step."""

    level: Level
    site: SiteCode
    from_track: Track
    track: Track
    planned_hours_per_week: Hours
    flags: Flags = []


class MedicationChanged(EventPayload):
    medication: Medication


class EntryVoided(EventPayload):
    """An entry made in error: consumers drop its effect (it stays on the topic and in the store)."""

    voided_version: int = Field(ge=1, description="ce_sequence of the voided event of the same journey")
    voided_type: EventName = Field(description="Event type name of the voided event, e.g. Discharged")


class ConsentGranted(EventPayload):
    """A 42 CFR Part 2 consent to disclose was granted (the consent's reference, its recipient and a named purpose's
    words are not published: the grant is known by its ce_sequence, which a revocation names)."""

    purpose: ConsentPurposeCode = Field(description="Why the recipient may have the record; 'named': a purpose written out")
    scope: list[RecordKindCode] = Field(description="What may be disclosed: 'all' or record kinds")
    expires_on: date | None = Field(description="The last day the consent is in force (null: until revoked)")


class ConsentRevoked(EventPayload):
    granted_version: int = Field(ge=1, description="ce_sequence of the revoked grant (a ConsentGranted of the same journey)")


MODELS: dict[str, type[EventPayload]] = {
    model.__name__: model
    for model in (
        ClientRegistered, ReferralReceived, AssessmentCompleted, WithdrawalManagementStarted, DetoxCompleted,
        AdmittedToLevel, TreatmentPlanRecorded, SessionAttended, SessionMissed, DrugTestCollected, DrugTestResulted,
        SteppedUp, SteppedDown, Discharged, EnrolledInAlumni, AlumniActivityAttended, TrackChanged, MedicationChanged,
        EntryCorrected, EntryVoided, ConsentGranted, ConsentRevoked,
    )
}


def ce_type(name: str, version: int = VERSION) -> str:
    """`org.carecontinuum.journey.AdmittedToLevel.v2`."""
    return f"{TYPE_PREFIX}{name}.v{version}"


def parse_ce_type(value: str) -> tuple[str, int] | None:
    """(event name, version), or None when the type is not one of ours."""
    if not value.startswith(TYPE_PREFIX):
        return None
    name, _, version = value.removeprefix(TYPE_PREFIX).rpartition(".v")
    if not name or not version.isdigit():
        return None
    return name, int(version)
