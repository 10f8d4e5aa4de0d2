"""Flags: what a clinician should look at again, recorded on the entry, never a refusal.

ASAM (3rd edition) hour bands per week: outpatient under 9 hours for adults (under 6 for
adolescents), intensive outpatient 9-19 hours for adults (6 or more for adolescents), partial
hospitalization 20 or more, clinically managed low-intensity residential at least 5 clinical hours.
A supervised-withdrawal need (dimension 1 rated 3 or more, or withdrawal management recommended)
means withdrawal management comes before IOP; an admission to IOP or lower against the latest such
assessment is flagged. Programs plan outside the bands for good reasons, so these are flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.levels import Level

ADULT_AGE = 18
HOURS_ADULT = "hours_outside_adult_band"
HOURS_ADOLESCENT = "hours_outside_adolescent_band"
WITHDRAWAL_NEED = "withdrawal_need_at_ambulatory_admission"
WITHDRAWAL_DIMENSION_RATING = 3


@dataclass(frozen=True)
class HoursBand:
    low: float  # inclusive; 0 means "more than none"
    high: float | None  # exclusive

    def holds(self, hours: float) -> bool:
        above = hours > 0 if self.low == 0 else hours >= self.low
        return above and (self.high is None or hours < self.high)

    def __str__(self) -> str:
        if self.high is None:
            return f"{self.low:g} h or more"
        if self.low == 0:
            return f"more than 0 and under {self.high:g} h"
        return f"{self.low:g}-{self.high - 1:g} h"


ADULT_BANDS = {
    Level.OUTPATIENT: HoursBand(0, 9), Level.IOP: HoursBand(9, 20), Level.PHP: HoursBand(20, None),
    Level.RESIDENTIAL_LOW: HoursBand(5, None),
}
ADOLESCENT_BANDS = ADULT_BANDS | {Level.OUTPATIENT: HoursBand(0, 6), Level.IOP: HoursBand(6, 20)}


def is_adolescent(birth_year: int | None, at: datetime) -> bool:
    return birth_year is not None and at.year - birth_year < ADULT_AGE


def hours_flags(level: Level, hours: float, *, adolescent: bool) -> list[str]:
    band = (ADOLESCENT_BANDS if adolescent else ADULT_BANDS).get(level)
    if band is None or band.holds(hours):
        return []
    return [HOURS_ADOLESCENT if adolescent else HOURS_ADULT]


def withdrawal_flags(level: Level, dimension_1: int | None, recommended: Level | None) -> list[str]:
    if level.rank > Level.IOP.rank or level.is_withdrawal_management:
        return []
    needs = (dimension_1 is not None and dimension_1 >= WITHDRAWAL_DIMENSION_RATING) or (
        recommended is not None and recommended.is_withdrawal_management
    )
    return [WITHDRAWAL_NEED] if needs else []


def describe(flag: str, level: Level, hours: float) -> str:
    """The flag as a clinician reads it."""
    if flag in (HOURS_ADULT, HOURS_ADOLESCENT):
        adolescent = flag == HOURS_ADOLESCENT
        band = (ADOLESCENT_BANDS if adolescent else ADULT_BANDS)[level]
        who = "adolescents" if adolescent else "adults"
        return f"planned {hours:g} h/week is outside the {level.code} band for {who} ({band})"
    if flag == WITHDRAWAL_NEED:
        return (
            f"admitted to {level.code} although the latest assessment shows a withdrawal need"
            " (dimension 1 rated 3 or more, or withdrawal management recommended)"
        )
    return flag
