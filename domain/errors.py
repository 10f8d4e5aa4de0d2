"""Every care rule the journey enforces has one error class here.

Each error names the client, the rule and the offending values, and its message reads alone:
``client C-1042: step down must lower intensity (from 2.1, to 2.5)``.
"""

from __future__ import annotations

from typing import ClassVar


class CareRuleViolation(Exception):  # noqa: N818 - a violation is what the domain calls it
    """A command the continuum of care cannot accept; nothing was recorded."""

    rule: ClassVar[str] = "care rule"

    def __init__(self, client_ref: str, detail: str | None = None, **values: object) -> None:
        self.client_ref = client_ref
        self.detail = detail or self.rule
        self.values = {key: _show(value) for key, value in values.items()}
        shown = ", ".join(f"{key} {value}" for key, value in self.values.items())
        message = f"client {client_ref}: {self.detail}"
        super().__init__(f"{message} ({shown})" if shown else message)


def _show(value: object) -> str:
    code = getattr(value, "value", None)
    return str(code if isinstance(code, str) else value)


class UnknownClient(CareRuleViolation):
    rule = "no such client: register the client first"


class AlreadyRegistered(CareRuleViolation):
    rule = "client is already registered"


class NotAdmitted(CareRuleViolation):
    rule = "client is not admitted to a level of care"


class AlreadyAdmitted(CareRuleViolation):
    rule = "client is already admitted: a change of level is a step up or down"


class JourneyClosed(CareRuleViolation):
    rule = "client is discharged: only alumni, readmission or a correction may follow"


class Deceased(CareRuleViolation):
    rule = "client died: only a correction may follow"


class StepDirectionError(CareRuleViolation):
    rule = "a step must change intensity in its direction"


class WrongLevelKind(CareRuleViolation):
    rule = "level is of the wrong kind for this command"


class DetoxNotCompleted(CareRuleViolation):
    rule = "withdrawal management must be completed before stepping to another level"


class NotInWithdrawalManagement(CareRuleViolation):
    rule = "client is not in withdrawal management"


class OccurredInFuture(CareRuleViolation):
    rule = "occurred_at is in the future"


class NaiveTimestamp(CareRuleViolation):
    rule = "occurred_at must carry a timezone"


class BeforeAdmission(CareRuleViolation):
    rule = "occurred_at is before the current admission or level began"


class OutOfOrder(CareRuleViolation):
    rule = "a change of level cannot precede the one before it"


class DuplicateSpecimen(CareRuleViolation):
    rule = "specimen id was already collected"


class UnknownSpecimen(CareRuleViolation):
    rule = "no such specimen was collected"


class SpecimenAlreadyResulted(CareRuleViolation):
    rule = "specimen already has a result: correct it instead"


class ResultBeforeCollection(CareRuleViolation):
    rule = "a result cannot precede its collection"


class DuplicateSession(CareRuleViolation):
    rule = "session id is already recorded"


class NotDischarged(CareRuleViolation):
    rule = "alumni enrolment needs a discharge first"


class AlreadyAlumni(CareRuleViolation):
    rule = "client is already enrolled in alumni"


class NotAlumni(CareRuleViolation):
    rule = "client is not enrolled in alumni"


class InvalidValue(CareRuleViolation):
    rule = "value out of range"


class UnknownEntry(CareRuleViolation):
    rule = "no such entry in this journey to correct"


class NotCorrectable(CareRuleViolation):
    rule = "field cannot be corrected on this entry"


class NothingToCorrect(CareRuleViolation):
    rule = "corrected value equals the recorded value"


class BeforeRegistration(CareRuleViolation):
    rule = "no care can be dated before the client's registration"


class DischargeBeforeEntries(CareRuleViolation):
    rule = "a discharge cannot precede entries already recorded in that stay"


class ContradictoryResult(CareRuleViolation):
    rule = "an overall negative result cannot have a positive analyte that is not an expected medication"


class NotVoidable(CareRuleViolation):
    rule = "this entry cannot be voided"


class AlreadyVoided(CareRuleViolation):
    rule = "entry was already voided"


class VoidBlocked(CareRuleViolation):
    rule = "later entries depend on this one: void them first, or in the same command"


class EntryIsVoided(CareRuleViolation):
    rule = "entry was voided: it cannot be corrected"


class NothingToChange(CareRuleViolation):
    rule = "the change gives what is already recorded"


class OtherSite(CareRuleViolation):
    rule = "client is registered at another site"
