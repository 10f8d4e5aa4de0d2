"""The TEDS-D discharge extract: one record per service-stay end, in the codebook's codes.

A pure mapping from a journey (its entries as corrected, voided ones left out: the one state model
of `domain.record`) to records; `continuum export teds` writes them as CSV. Fields the system does
not record are coded -9 (`NOT_RECORDED`).

`SERVICES_D` comes from the ASAM level through a versioned crosswalk (`CROSSWALK_VERSION`), an
assumption of ours, not SAMHSA's: version 1 maps 4-WM to 1 (detox, 24-hour, hospital inpatient),
3.7-WM and 3.2-WM to 2 (detox, 24-hour, free-standing residential), 4 to 3 (hospital inpatient),
3.1, 3.5 and 3.7 to 4 (short-term residential) for a stay of 30 days or less and 5 (long-term
residential) beyond, 2.5 and 2.1 to 6 (ambulatory intensive outpatient), 1 to 7 (ambulatory
non-intensive outpatient), 1-WM and 2-WM to 8 (ambulatory detox).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from domain.journey import ClientJourney
from domain.levels import DischargeReason, Level, Medication, ReferralSource
from domain.record import OPENERS, STEPS, Entry

CROSSWALK_VERSION = 1
MISSING = -9

_SERVICES: dict[Level, int] = {
    Level.WM_INPATIENT_MANAGED: 1,
    Level.WM_INPATIENT_MONITORED: 2,
    Level.WM_RESIDENTIAL: 2,
    Level.INPATIENT_MANAGED: 3,
    Level.PHP: 6,
    Level.IOP: 6,
    Level.OUTPATIENT: 7,
    Level.WM_AMBULATORY: 8,
    Level.WM_AMBULATORY_EXTENDED: 8,
}
_RESIDENTIAL = frozenset({Level.RESIDENTIAL_LOW, Level.RESIDENTIAL_HIGH, Level.INPATIENT_MONITORED})
SHORT_TERM_DAYS = 30

_PSOURCE: dict[ReferralSource, int] = {
    ReferralSource.SELF: 1, ReferralSource.FAMILY: 1,  # 1: individual (includes self-referral)
    ReferralSource.DETOX: 2, ReferralSource.RESIDENTIAL: 2, ReferralSource.OUTPATIENT: 2,  # 2: alcohol/drug use care provider
    ReferralSource.HOSPITAL: 3,  # 3: other health care provider
    ReferralSource.EMPLOYER: 5,  # 5: employer/EAP
    ReferralSource.OTHER: 6,  # 6: other community referral
    ReferralSource.COURT: 7,  # 7: court/criminal justice referral
}
SAME_PROVIDER = 2
"""PSOURCE of a stay entered by a step within an episode: referred by this alcohol/drug care provider."""

_AGE_GROUPS = ((12, 14, 1), (15, 17, 2), (18, 20, 3), (21, 24, 4), (25, 29, 5), (30, 34, 6), (35, 39, 7),
               (40, 44, 8), (45, 49, 9), (50, 54, 10), (55, 64, 11), (65, 200, 12))
_LOS_BANDS = ((45, 31), (60, 32), (90, 33), (120, 34), (180, 35), (365, 36))
_CONTACTS = frozenset({"SessionAttended", "DrugTestCollected", "AssessmentCompleted", "TreatmentPlanRecorded",
                       "DetoxCompleted", "MedicationChanged", "TrackChanged"})

KNOWN = ("CASEID", "DISYR", "ADMDATE", "DISDATE", "LASTCONTACT", "SERVICES_D", "REASON", "LOS", "PSOURCE", "AGE",
         "GENDER", "METHUSE", "NOPRIOR")
NOT_RECORDED = ("STFIPS", "EDUC", "EMPLOY", "DETNLF", "RACE", "ETHNIC", "MARSTAT", "LIVARAG", "ARRESTS", "DAYWAIT",
                "SUB1", "ROUTE1", "FREQ1", "FRSTUSE1", "SUB2", "SUB3", "DSMCRIT", "PSYPROB", "PREG", "VET", "PRIMINC",
                "HLTHINS", "PRIMPAY", "FREQ_ATND_SELF_HELP")
"""Codebook fields this system does not record: always -9 in the extract."""
COLUMNS = KNOWN + NOT_RECORDED


@dataclass(frozen=True, slots=True)
class TedsStay:
    """One service stay that ended, with what TEDS-D asks of it."""

    client_ref: str
    level: Level
    started_at: datetime
    ended_at: datetime
    last_contact: datetime
    reason: int
    days: int
    psource: int
    age: int
    gender: int
    methuse: int
    noprior: int

    @property
    def services(self) -> int:
        return services_code(self.level, self.days)

    def row(self, caseid: int) -> dict[str, int | str]:
        known: dict[str, int | str] = {
            "CASEID": caseid, "DISYR": self.ended_at.year, "ADMDATE": self.started_at.strftime("%Y%m%d"),
            "DISDATE": self.ended_at.strftime("%Y%m%d"), "LASTCONTACT": self.last_contact.strftime("%Y%m%d"),
            "SERVICES_D": self.services, "REASON": self.reason, "LOS": los_code(self.days), "PSOURCE": self.psource,
            "AGE": self.age, "GENDER": self.gender, "METHUSE": self.methuse, "NOPRIOR": self.noprior,
        }
        return known | dict.fromkeys(NOT_RECORDED, MISSING)


def services_code(level: Level, days: int) -> int:
    """SERVICES_D by crosswalk version 1 (see the module's docstring)."""
    if level in _RESIDENTIAL:
        return 4 if days <= SHORT_TERM_DAYS else 5
    return _SERVICES[level]


def los_code(days: int) -> int:
    """LOS in the codebook's 1-37 coding: 1-30 are days, then bands (31: 31-45 days ... 37: more than 365)."""
    days = max(days, 1)
    if days <= SHORT_TERM_DAYS:
        return days
    return next((code for limit, code in _LOS_BANDS if days <= limit), 37)


def age_code(birth_year: int | None, at: datetime) -> int:
    """AGE group at admission; the age is the admission's year less the year of birth (no birthday is recorded)."""
    if birth_year is None:
        return MISSING
    age = at.year - birth_year
    return next((code for low, high, code in _AGE_GROUPS if low <= age <= high), MISSING)


def days_between(start: datetime, end: datetime) -> int:
    """Whole calendar days in UTC, at least 1 (TEDS counts a same-day stay as 1)."""
    return max((end.astimezone(UTC).date() - start.astimezone(UTC).date()).days, 1)


def stays(journey: ClientJourney) -> Iterator[TedsStay]:
    """Every service stay of the journey that has ended, in order (voided entries left out, corrections applied)."""
    entries = journey.entries
    live = [v for v in sorted(entries) if not entries[v].voided]
    sex = entries[1].fields.get("sex")
    gender = {"male": 1, "female": 2}.get(str(sex), MISSING)
    opened: tuple[Entry, int, int] | None = None  # the entry that opened the stay, the episode's opener, PSOURCE
    episodes_before = 0
    for version in journey.transitions:
        entry = entries[version]
        if entry.type in OPENERS:
            opened = (entry, version, _referral(entries, live, entry.at))
            continue
        if opened is None or entry.type not in STEPS | {"Discharged"}:
            continue
        start, episode, psource = opened
        if entry.type == "Discharged":
            reason = DischargeReason(str(entry.fields["reason"])).teds_code
        else:
            reason = (DischargeReason.COMPLETED if entry.type == "SteppedDown" else DischargeReason.TRANSFERRED).teds_code
        contacts = [entries[v].at for v in live
                    if entries[v].type in _CONTACTS and entries[v].episode == episode and start.at <= entries[v].at <= entry.at]
        last = min(max(contacts, default=entry.at), entry.at)
        level = Level(str(start.fields["_level"]))
        yield TedsStay(
            client_ref=journey.client_ref, level=level, started_at=start.at, ended_at=entry.at, last_contact=last,
            reason=reason, days=days_between(start.at, last), psource=psource, age=age_code(journey.birth_year, start.at),
            gender=gender, methuse=_methuse(journey, entries, live, start.at, entry.at), noprior=min(episodes_before, 5),
        )
        if entry.type == "Discharged":
            episodes_before += 1
            opened = None
        else:
            opened = (entry, episode, SAME_PROVIDER)


def _referral(entries: dict[int, Entry], live: list[int], at: datetime) -> int:
    """PSOURCE: the latest referral recorded before the episode began, else -9."""
    before = [entries[v] for v in live if entries[v].type == "ReferralReceived" and entries[v].at <= at]
    if not before:
        return MISSING
    return _PSOURCE[ReferralSource(str(before[-1].fields["source"]))]


def _methuse(journey: ClientJourney, entries: dict[int, Entry], live: list[int], start: datetime, end: datetime) -> int:
    """METHUSE: 1 when medication for opioid use disorder (methadone, buprenorphine, naltrexone) was in force
    at any time of the stay, else 2."""
    if journey.placement(until=start).medication is not Medication.NONE:
        return 1
    changed = [entries[v] for v in live if entries[v].type == "MedicationChanged" and start < entries[v].at <= end]
    return 1 if any(e.fields.get("_medication") != Medication.NONE.value for e in changed) else 2


def ended_between(journeys: Iterable[ClientJourney], since: datetime | None, until: datetime | None) -> Iterator[TedsStay]:
    for journey in journeys:
        for stay in stays(journey):
            if (since is None or stay.ended_at >= since) and (until is None or stay.ended_at < until):
                yield stay


def write_csv(records: Iterable[TedsStay], out: IO[str]) -> int:
    """The extract as CSV with the codebook's column names; returns the number of records."""
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    count = 0
    for count, record in enumerate(records, start=1):
        writer.writerow(record.row(count))
    return count
