"""Levels of care and the other closed vocabularies of the continuum.

Intensity order follows the design: withdrawal management (1-WM .. 4-WM) is the most
intensive group, then medically managed inpatient (4), residential (3.7, 3.5, 3.1), partial
hospitalization (2.5), intensive outpatient (2.1) and outpatient (1). So leaving detox for any
other level is a step down, as programs say it ("clients step down into IOP from detox").
"""

from __future__ import annotations

from enum import Enum


class Level(Enum):
    """An ASAM (3rd edition) level of care; the value is its ASAM code."""

    OUTPATIENT = "1"
    IOP = "2.1"
    PHP = "2.5"
    RESIDENTIAL_LOW = "3.1"
    RESIDENTIAL_HIGH = "3.5"
    INPATIENT_MONITORED = "3.7"
    INPATIENT_MANAGED = "4"
    WM_AMBULATORY = "1-WM"
    WM_AMBULATORY_EXTENDED = "2-WM"
    WM_RESIDENTIAL = "3.2-WM"
    WM_INPATIENT_MONITORED = "3.7-WM"
    WM_INPATIENT_MANAGED = "4-WM"

    @property
    def code(self) -> str:
        return self.value

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def label(self) -> str:
        return _LABEL[self]

    @property
    def is_withdrawal_management(self) -> bool:
        return self.value.endswith("-WM")

    @property
    def is_24_hour(self) -> bool:
        """Residential, inpatient and non-ambulatory withdrawal management: no day/evening track."""
        return self not in _AMBULATORY

    @property
    def typical_hours_per_week(self) -> float:
        """Planned clinical hours when a step does not say: ASAM bands (OP < 9, IOP 9-19, PHP >= 20)."""
        return {Level.OUTPATIENT: 3.0, Level.IOP: 9.0, Level.PHP: 20.0}.get(self, 0.0)

    @property
    def default_track(self) -> Track | None:
        return Track.RESIDENTIAL if self.is_24_hour else None

    @classmethod
    def from_code(cls, code: str) -> Level:
        for level in cls:
            if code in (level.value, level.name, level.name.lower()):
                return level
        known = ", ".join(level.value for level in cls)
        msg = f"unknown level of care {code!r} (known: {known})"
        raise ValueError(msg)

    def __str__(self) -> str:
        return self.value


_RANK = {level: rank for rank, level in enumerate(Level)}
_LABEL = {
    Level.OUTPATIENT: "outpatient",
    Level.IOP: "intensive outpatient",
    Level.PHP: "partial hospitalization",
    Level.RESIDENTIAL_LOW: "clinically managed low-intensity residential",
    Level.RESIDENTIAL_HIGH: "clinically managed high-intensity residential",
    Level.INPATIENT_MONITORED: "medically monitored intensive inpatient",
    Level.INPATIENT_MANAGED: "medically managed intensive inpatient",
    Level.WM_AMBULATORY: "ambulatory withdrawal management",
    Level.WM_AMBULATORY_EXTENDED: "ambulatory withdrawal management with extended monitoring",
    Level.WM_RESIDENTIAL: "clinically managed residential withdrawal management",
    Level.WM_INPATIENT_MONITORED: "medically monitored inpatient withdrawal management",
    Level.WM_INPATIENT_MANAGED: "medically managed inpatient withdrawal management",
}

_AMBULATORY = frozenset(
    {Level.OUTPATIENT, Level.IOP, Level.PHP, Level.WM_AMBULATORY, Level.WM_AMBULATORY_EXTENDED},
)

ALUMNI = "alumni"
"""Alumni/continuing care is a status, not an ASAM level; the census counts it under this name."""


def census_level(value: str) -> str:
    """A census level filter: an ASAM code or name, or `alumni`; ValueError names the known codes."""
    return value if value == ALUMNI else Level.from_code(value).code


class Track(Enum):
    DAY = "day"  # 09:00-12:00
    EVENING = "evening"  # 18:00-21:00
    RESIDENTIAL = "residential"  # 24-hour settings have no day/evening track


class DischargeReason(Enum):
    """TEDS-D `REASON` codes (the TEDS discharge codebook)."""

    COMPLETED = "completed"
    LEFT_AGAINST_ADVICE = "left_against_advice"
    TERMINATED_BY_FACILITY = "terminated_by_facility"
    TRANSFERRED = "transferred"
    INCARCERATED = "incarcerated"
    DIED = "died"
    OTHER = "other"

    @property
    def teds_code(self) -> int:
        return list(DischargeReason).index(self) + 1


class ReferralSource(Enum):
    SELF = "self"
    FAMILY = "family"
    COURT = "court"
    HOSPITAL = "hospital"
    DETOX = "detox"
    RESIDENTIAL = "residential"
    OUTPATIENT = "outpatient"
    EMPLOYER = "employer"
    OTHER = "other"


class SessionKind(Enum):
    GROUP = "group"
    INDIVIDUAL = "individual"
    FAMILY = "family"


class GroupType(Enum):
    RELAPSE_PREVENTION = "relapse_prevention"
    SKILL_BUILDING = "skill_building"
    CODEPENDENCY = "codependency"
    FAMILY = "family"
    EDUCATION = "education"
    PROCESS = "process"


class Modality(Enum):
    CBT = "cbt"
    MI = "mi"
    MATRIX = "matrix"
    TWELVE_STEP_FACILITATION = "twelve_step_facilitation"


class SpecimenKind(Enum):
    URINE = "urine"
    ORAL_FLUID = "oral_fluid"


class TestResult(Enum):
    """Overall result of a drug test; everything but NEGATIVE counts as non-negative."""

    __test__ = False  # not a pytest test class

    NEGATIVE = "negative"
    POSITIVE = "positive"
    DILUTE = "dilute"
    ADULTERATED = "adulterated"
    SUBSTITUTED = "substituted"
    INVALID = "invalid"
    REFUSED = "refused"


class Medication(Enum):
    """Medication for addiction treatment (MAT); its analytes are expected positives."""

    NONE = "none"
    BUPRENORPHINE = "buprenorphine"
    METHADONE = "methadone"
    NALTREXONE = "naltrexone"


VOCABULARIES: tuple[type[Enum], ...] = (
    Level,
    Track,
    DischargeReason,
    ReferralSource,
    SessionKind,
    GroupType,
    Modality,
    SpecimenKind,
    TestResult,
    Medication,
)
"""Every enum an event may carry; the store registers a transcoding for each."""
