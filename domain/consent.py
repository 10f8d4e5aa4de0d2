"""42 CFR Part 2 consents: who may receive a client's record, for what, how much of it, until when.

A consent is granted (recipient, purpose, scope, expiry; §2.31) and may be revoked; both are
journey events. A consent never changes where the client stands. `Consent.covers` is the one test
of whether a disclosure of some kinds of record to a recipient is allowed at a moment: the grant is
in force (granted, not voided, not revoked, not expired) and its purpose and scope cover it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum

from domain.errors import CareRuleViolation


class ConsentPurpose(Enum):
    """Why the recipient may have the record (§2.31(a)(4)); `named` is a purpose written out in `purpose_text`."""

    TREATMENT = "treatment"
    PAYMENT = "payment"
    HEALTH_CARE_OPERATIONS = "health_care_operations"
    NAMED = "named"


ALL = "all"
RECORD_KINDS = (
    "demographics", "episodes", "stays", "sessions", "assessments", "plans", "drug_tests", "medication", "discharges",
)
"""What a consent's scope may name; `all` is every kind."""


class ConsentRuleViolation(CareRuleViolation):
    rule = "consent rule"


class UnknownConsent(ConsentRuleViolation):
    rule = "no such consent"


class ConsentAlreadyRecorded(ConsentRuleViolation):
    rule = "a consent with this id is already recorded"


class ConsentNotInForce(ConsentRuleViolation):
    rule = "the consent is not in force"


def check_grant(
    client_ref: str, *, recipient: str, purpose: ConsentPurpose, purpose_text: str | None, scope: Iterable[str],
    expires_on: date | None, at: datetime,
) -> list[str]:
    """The grant's scope, in order without repeats; a grant that cannot be a valid consent is refused."""
    if not recipient.strip():
        raise ConsentRuleViolation(client_ref, "a consent names its recipient")
    if purpose is ConsentPurpose.NAMED and not (purpose_text or "").strip():
        raise ConsentRuleViolation(client_ref, "a named purpose needs its text (purpose_text)")
    kinds = list(dict.fromkeys(scope))
    if not kinds:
        raise ConsentRuleViolation(client_ref, "a consent's scope names what may be disclosed ('all' or record kinds)")
    unknown = [kind for kind in kinds if kind != ALL and kind not in RECORD_KINDS]
    if unknown:
        raise ConsentRuleViolation(
            client_ref, "unknown record kind in the scope", unknown=", ".join(unknown), known=", ".join((ALL, *RECORD_KINDS)),
        )
    if expires_on is not None and expires_on < at.date():
        raise ConsentRuleViolation(client_ref, "a consent cannot expire before it is granted",
                                   expires_on=expires_on.isoformat(), granted=at.date().isoformat())
    return [ALL] if ALL in kinds else kinds


@dataclass(frozen=True, slots=True)
class Consent:
    consent_id: str
    recipient: str
    purpose: ConsentPurpose
    purpose_text: str | None
    scope: tuple[str, ...]
    granted_at: datetime
    expires_on: date | None
    revoked_at: datetime | None = None
    voided: bool = False

    def in_force(self, at: datetime) -> bool:
        """Granted by `at`, not voided, not revoked by `at`, and `at` no later than its expiry day."""
        if self.voided or at < self.granted_at:
            return False
        if self.revoked_at is not None and self.revoked_at <= at:
            return False
        return self.expires_on is None or at.date() <= self.expires_on

    def covers(
        self, recipient: str, at: datetime, kinds: Iterable[str] = (ALL,), purpose: ConsentPurpose | None = None,
    ) -> bool:
        """May `kinds` of the record be disclosed to `recipient` (for `purpose`, when given) at `at`?"""
        if self.recipient != recipient or not self.in_force(at):
            return False
        if purpose is not None and purpose is not self.purpose:
            return False
        wanted = tuple(kinds)
        return ALL in self.scope or (ALL not in wanted and all(kind in self.scope for kind in wanted))

    def as_json(self) -> dict[str, object]:
        return {
            "consent_id": self.consent_id, "recipient": self.recipient, "purpose": self.purpose.value,
            "purpose_text": self.purpose_text, "scope": list(self.scope), "granted_at": self.granted_at.isoformat(),
            "expires_on": self.expires_on.isoformat() if self.expires_on else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None, "voided": self.voided,
        }


def covering(consents: Iterable[Consent], recipient: str, at: datetime, kinds: Iterable[str] = (ALL,),
             purpose: ConsentPurpose | None = None) -> Consent | None:
    """The first consent in force at `at` that covers the disclosure, or None."""
    wanted = tuple(kinds)
    return next((c for c in consents if c.covers(recipient, at, wanted, purpose)), None)
