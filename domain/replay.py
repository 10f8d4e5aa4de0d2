"""Bitemporal replay: a journey as it stood at a clinical time, as it was recorded at a time.

`as_recorded` keeps only what had been recorded by then (a surveyor's question about a past
decision); `as_of` keeps what had happened clinically by then, as we know it now (late results
and corrections included). Corrections change the values they correct for the replay and are
shown beside the entry; the entry itself is never altered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain import events as ev
from domain.levels import ALUMNI


@dataclass
class Correction:
    version: int
    field: str
    previous_value: Any
    corrected_value: Any
    reason: str
    recorded_by: dict[str, str]
    recorded_at: datetime


@dataclass
class ReplayedEntry:
    version: int
    type: str
    occurred_at: datetime
    recorded_at: datetime
    recorded_by: dict[str, str]
    details: dict[str, Any]  # as corrected
    corrections: list[Correction] = field(default_factory=list)


@dataclass
class JourneyState:
    client_ref: str | None = None
    home_site: str | None = None
    status: str = "not registered"
    level: str | None = None
    site: str | None = None
    track: str | None = None
    level_since: datetime | None = None
    admitted_at: datetime | None = None
    episodes: int = 0
    last_discharge: str | None = None
    sessions_attended: int = 0
    sessions_missed: int = 0
    minutes_attended: int = 0
    pending_specimens: list[str] = field(default_factory=list)
    results: dict[str, str] = field(default_factory=dict)
    goals: list[str] = field(default_factory=list)


@dataclass
class Replay:
    state: JourneyState
    entries: list[ReplayedEntry]


def replay(history: Sequence[Any], *, as_of: datetime | None = None, as_recorded: datetime | None = None) -> Replay:
    known = [e for e in history if as_recorded is None or e.timestamp <= as_recorded]
    corrections: dict[int, list[Correction]] = {}
    for event in known:
        if isinstance(event, ev.EntryCorrected):
            facts = ev.payload(event)
            corrections.setdefault(event.corrects_version, []).append(Correction(
                event.originator_version, event.field, event.previous_value, event.corrected_value, event.reason,
                facts["recorded_by"], event.timestamp,
            ))
    entries = []
    for event in known:
        if isinstance(event, ev.EntryCorrected):
            continue
        details = ev.payload(event)
        fixes = corrections.get(event.originator_version, [])
        for fix in fixes:
            details[fix.field] = fix.corrected_value
        occurred = datetime.fromisoformat(str(details.pop("occurred_at")))
        actor = details.pop("recorded_by")
        details.pop("command_id")
        if as_of is None or occurred <= as_of:
            entries.append(ReplayedEntry(event.originator_version, ev.event_name(event), occurred, event.timestamp, actor, details, fixes))
    entries.sort(key=lambda entry: (entry.occurred_at, entry.version))
    state = JourneyState()
    for entry in entries:
        _fold(state, entry)
    return Replay(state, entries)


def _fold(state: JourneyState, entry: ReplayedEntry) -> None:  # noqa: C901 - one branch per event type reads best
    d, kind = entry.details, entry.type
    if kind == "ClientRegistered":
        state.client_ref, state.status, state.home_site = d["client_ref"], "registered", d["site"]
    elif kind in ("WithdrawalManagementStarted", "AdmittedToLevel"):
        state.status, state.episodes, state.admitted_at = "in_treatment", state.episodes + 1, entry.occurred_at
        state.sessions_attended = state.sessions_missed = state.minutes_attended = 0
        _enter(state, d["level"], d["site"], d.get("track") or "residential", entry.occurred_at)
    elif kind in ("SteppedUp", "SteppedDown"):
        _enter(state, d["to_level"], d["site"], d["track"], entry.occurred_at)
    elif kind == "Discharged":
        state.status = "deceased" if d["reason"] == "died" else "discharged"
        state.last_discharge = d["reason"]
        state.level = state.site = state.track = state.level_since = None
    elif kind == "EnrolledInAlumni":  # counted at the home site, as the census projection counts alumni
        state.status = ALUMNI
        _enter(state, ALUMNI, state.home_site or "", ALUMNI, entry.occurred_at)
    elif kind == "SessionAttended":
        state.sessions_attended += 1
        state.minutes_attended += int(d["minutes"])
    elif kind == "SessionMissed":
        state.sessions_missed += 1
    elif kind == "DrugTestCollected":
        state.pending_specimens.append(d["specimen_id"])
    elif kind == "DrugTestResulted":
        if d["specimen_id"] in state.pending_specimens:
            state.pending_specimens.remove(d["specimen_id"])
        state.results[d["specimen_id"]] = d["result"]
    elif kind == "TreatmentPlanRecorded":
        state.goals = list(d["goals"])


def _enter(state: JourneyState, level: str, site: str, track: str, at: datetime) -> None:
    state.level, state.site, state.track, state.level_since = level, site, track, at
