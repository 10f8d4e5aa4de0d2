"""What an `EntryCorrected` may change, and how a corrected value is checked.

Identifiers (client, specimen and session ids) and the level of a transition are not correctable:
a wrong level is put right clinically, by a step, so the census never rewrites which level a client
was in. Everything listed here is a recorded fact that can be mistyped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from enum import Enum

from domain.levels import DischargeReason, ReferralSource, SessionKind, TestResult, Track
from domain.values import BIRTH_YEARS

Scalar = str | float | bool | None


def _text(value: Scalar) -> Scalar:
    if not isinstance(value, str) or not value.strip():
        msg = "expected non-empty text"
        raise ValueError(msg)
    return value.strip()


def _optional_text(value: Scalar) -> Scalar:
    return None if value is None else _text(value)


def _positive(value: Scalar) -> Scalar:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        msg = "expected a positive number"
        raise ValueError(msg)
    return float(value)


def _flag(value: Scalar) -> Scalar:
    if not isinstance(value, bool):
        msg = "expected true or false"
        raise ValueError(msg)  # noqa: TRY004 - the callers report every bad value as a ValueError
    return value


def _year(value: Scalar) -> Scalar:
    earliest, latest = BIRTH_YEARS
    if isinstance(value, bool) or not isinstance(value, int | float) or not earliest <= value <= latest:
        msg = f"expected a birth year between {earliest} and {latest}"
        raise ValueError(msg)
    return float(int(value))


def _day(value: Scalar) -> Scalar:
    return date.fromisoformat(str(value)).isoformat()


def _moment(value: Scalar) -> Scalar:
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        msg = "expected an ISO 8601 time with a timezone"
        raise ValueError(msg)
    return moment.isoformat()


def _choice(vocabulary: type[Enum]) -> Callable[[Scalar], Scalar]:
    def parse(value: Scalar) -> Scalar:
        return str(vocabulary(value).value)

    return parse


_WHEN = {"occurred_at": _moment}
_PLACEMENT = {"site": _text, "track": _choice(Track), "planned_hours_per_week": _positive}

CORRECTABLE: dict[str, dict[str, Callable[[Scalar], Scalar]]] = {
    "ClientRegistered": {"site": _text, "birth_year": _year, "sex": _optional_text},
    "ReferralReceived": {**_WHEN, "source": _choice(ReferralSource)},
    "AssessmentCompleted": {**_WHEN, "clinician": _text},
    "WithdrawalManagementStarted": {**_WHEN, "site": _text},
    "DetoxCompleted": {**_WHEN, "completed": _flag},
    "AdmittedToLevel": {**_WHEN, **_PLACEMENT, "expected_end": _day},
    "TreatmentPlanRecorded": {**_WHEN},
    "SessionAttended": {**_WHEN, "minutes": _positive, "kind": _choice(SessionKind), "telehealth": _flag},
    "SessionMissed": {**_WHEN, "minutes": _positive, "excused": _flag},
    "DrugTestCollected": {**_WHEN, "observed": _flag, "random": _flag},
    "DrugTestResulted": {**_WHEN, "result": _choice(TestResult)},
    "SteppedUp": {**_WHEN, **_PLACEMENT, "reason": _text},
    "SteppedDown": {**_WHEN, **_PLACEMENT, "reason": _text},
    "Discharged": {**_WHEN, "reason": _choice(DischargeReason), "referral_onward": _optional_text},
    "EnrolledInAlumni": {**_WHEN, "program": _text},
    "AlumniActivityAttended": {**_WHEN, "activity": _text},
    "TrackChanged": {**_WHEN, "track": _choice(Track), "planned_hours_per_week": _positive, "reason": _text},
    "MedicationChanged": {**_WHEN, "reason": _optional_text},
}

def as_scalar(value: object) -> Scalar:
    """The recorded value of a field in the form corrections compare and carry."""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    return str(value)
