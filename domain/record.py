"""What a journey remembers of each entry, and the one derivation of where a client stands.

The aggregate keeps one `Entry` per recorded event (its correctable facts as corrected, its clinical
time, the episode it belongs to, whether it was voided). Where the client stands (status, level,
site, track, episode, medication) is never changed field by field: `placement` folds the entries
that move a client (the milestones) in order. The live journey calls it after every milestone,
correction and void; a replay calls it with a clinical cut-off. One fold, so the journey, its
replays and the census as recorded cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from domain.corrections import Scalar
from domain.levels import Level, Medication, Track


class Status(Enum):
    REGISTERED = "registered"
    IN_TREATMENT = "in_treatment"
    DISCHARGED = "discharged"
    ALUMNI = "alumni"
    DECEASED = "deceased"


OPENERS = frozenset({"WithdrawalManagementStarted", "AdmittedToLevel"})
STEPS = frozenset({"SteppedUp", "SteppedDown"})
CONSENT_ENTRIES = frozenset({"ConsentGranted", "ConsentRevoked"})
"""Entries about disclosure, not care: they belong to no episode or stay."""
TRANSITIONS = OPENERS | STEPS | {"TrackChanged", "Discharged", "EnrolledInAlumni"}
"""Entries that open or close a census interval: they stay in clinical order, and only the latest may be voided."""
MILESTONES = TRANSITIONS | {"DetoxCompleted", "MedicationChanged"}
"""Entries that change where a client stands; `placement` folds exactly these."""


@dataclass(slots=True)
class Entry:
    type: str
    at: datetime  # clinical time, as corrected
    fields: dict[str, Scalar]  # correctable facts as corrected (ISO text for times), plus the private `_` facts
    episode: int | None = None  # version of the admission that opened the episode it belongs to
    key: str | None = None  # specimen or session id
    notes: tuple[str, ...] = ()  # plan goals; flags of an admission or step
    voided: bool = False
    stay: int | None = None  # version of the admission or step that opened the service stay it belongs to


@dataclass(frozen=True, slots=True)
class Placement:
    status: Status = Status.REGISTERED
    level: Level | None = None
    site: str | None = None
    track: Track | None = None
    hours: float = 0.0
    level_since: datetime | None = None  # entered the current level (a change of track keeps it)
    moved_at: datetime | None = None  # the latest change of level, track, discharge or enrolment
    admitted_at: datetime | None = None
    discharged_at: datetime | None = None
    alumni_since: datetime | None = None
    episodes: int = 0
    episode: int | None = None  # version that opened the current (or last) episode
    stay: int | None = None  # version that opened the current (or last) service stay: an admission or a step
    discharged_by: int | None = None
    last_discharge: str | None = None  # its reason
    detox_completed: bool | None = None
    medication: Medication = Medication.NONE


def placement(entries: Mapping[int, Entry], milestones: Iterable[int], until: datetime | None = None) -> Placement:  # noqa: C901 - one branch per kind of milestone reads best
    """Where the client stands after the milestones (versions, in order) up to clinical time `until`."""
    now: dict[str, object] = {}
    episodes = 0
    for version in milestones:
        entry = entries[version]
        if entry.voided or (until is not None and entry.at > until):
            continue
        kind, facts = entry.type, entry.fields
        if kind in OPENERS:
            episodes += 1
            now = {
                "status": Status.IN_TREATMENT, "admitted_at": entry.at, "episode": version, "stay": version, "detox_completed": None,
                "medication": Medication(facts["_medication"]),
                "discharged_at": now.get("discharged_at"), "discharged_by": now.get("discharged_by"),
                "last_discharge": now.get("last_discharge"),
            }
            _enter(now, entry, level_changed=True)
        elif kind in STEPS:
            _enter(now, entry, level_changed=True)
            now["stay"] = version
            if Level(str(facts["_level"])).is_withdrawal_management:
                now["detox_completed"] = None  # each stay in withdrawal management needs its own completion
        elif kind == "TrackChanged":
            _enter(now, entry, level_changed=False)
        elif kind == "Discharged":
            for name in ("level", "site", "track", "level_since", "admitted_at"):
                now[name] = None
            now["hours"] = 0.0
            now["status"] = Status.DECEASED if facts["reason"] == "died" else Status.DISCHARGED
            now["discharged_at"], now["discharged_by"], now["last_discharge"] = entry.at, version, facts["reason"]
            now["moved_at"] = entry.at
        elif kind == "EnrolledInAlumni":
            now["status"], now["alumni_since"], now["moved_at"] = Status.ALUMNI, entry.at, entry.at
        elif kind == "DetoxCompleted":
            now["detox_completed"] = bool(facts["completed"])
        elif kind == "MedicationChanged":
            now["medication"] = Medication(facts["_medication"])
    return Placement(episodes=episodes, **now)  # type: ignore[arg-type]


def _enter(now: dict[str, object], entry: Entry, *, level_changed: bool) -> None:
    facts = entry.fields
    if level_changed:
        now["level"], now["level_since"] = Level(str(facts["_level"])), entry.at
    now["site"], now["track"] = str(facts["site"]), Track(facts["track"])
    now["hours"] = float(facts["planned_hours_per_week"] or 0.0)
    now["moved_at"] = entry.at
