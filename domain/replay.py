"""Bitemporal replay: a journey as it stood at a clinical time, as it was recorded at a time.

`as_recorded` keeps only what had been recorded by then (a surveyor's question about a past
decision); `as_of` keeps what had happened clinically by then, as we know it now (late results,
corrections and voids included). The state comes from the journey itself: the recorded events are
folded through `ClientJourney` (the same code that takes commands), and its entries are read up to
the clinical time by `domain.record.placement`. Corrections and voids are shown beside the entry
they change; the entry itself is never altered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import takewhile
from typing import Any

from domain import events as ev
from domain.journey import ClientJourney
from domain.levels import ALUMNI
from domain.record import Status


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
class VoidRecord:
    version: int
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
    voided: VoidRecord | None = None  # entered in error: shown, and left out of the state


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
    medication: str | None = None
    sessions_attended: int = 0  # in the current (or last) episode
    sessions_missed: int = 0
    minutes_attended: int = 0
    pending_specimens: list[str] = field(default_factory=list)
    results: dict[str, str] = field(default_factory=dict)
    goals: list[str] = field(default_factory=list)


@dataclass
class Replay:
    state: JourneyState
    entries: list[ReplayedEntry]


def fold(history: Sequence[Any]) -> ClientJourney | None:
    """The journey after these events (a prefix of its history), through the aggregate's own code."""
    journey: ClientJourney | None = None
    for event in history:
        journey = event.mutate(journey)
    return journey


def replay(history: Sequence[Any], *, as_of: datetime | None = None, as_recorded: datetime | None = None) -> Replay:
    known = list(history) if as_recorded is None else list(takewhile(lambda e: e.timestamp <= as_recorded, history))
    journey = fold(known)
    if journey is None:
        return Replay(JourneyState(), [])
    corrections: dict[int, list[Correction]] = {}
    voids: dict[int, VoidRecord] = {}
    for event in known:
        if isinstance(event, ev.EntryCorrected):
            corrections.setdefault(event.corrects_version, []).append(Correction(
                event.originator_version, event.field, event.previous_value, event.corrected_value, event.reason,
                ev.payload(event)["recorded_by"], event.timestamp,
            ))
        elif isinstance(event, ev.EntryVoided):
            voids[event.voided_version] = VoidRecord(
                event.originator_version, event.reason, ev.payload(event)["recorded_by"], event.timestamp,
            )
    entries = []
    for event in known:
        if isinstance(event, ev.EntryCorrected | ev.EntryVoided):
            continue
        version = event.originator_version
        details = ev.payload(event)
        fixes = corrections.get(version, [])
        for fix in fixes:
            details[fix.field] = fix.corrected_value
        details.pop("occurred_at")
        actor = details.pop("recorded_by")
        details.pop("command_id")
        occurred = journey.entries[version].at
        if as_of is None or occurred <= as_of:
            entries.append(ReplayedEntry(
                version, ev.event_name(event), occurred, event.timestamp, actor, details, fixes, voids.get(version),
            ))
    entries.sort(key=lambda entry: (entry.occurred_at, entry.version))
    return Replay(state_of(journey, as_of), entries)


def state_of(journey: ClientJourney, until: datetime | None = None) -> JourneyState:
    """What the journey says of the client at clinical time `until` (now when None)."""
    if until is not None and until < journey.registered_at:
        return JourneyState()
    now = journey.placement(until)
    live = [
        (version, entry) for version, entry in journey.entries.items()
        if not entry.voided and (until is None or entry.at <= until)
    ]
    episode = [entry for _, entry in live if now.episode is not None and entry.episode == now.episode]
    results = {str(entry.key): str(entry.fields["result"]) for _, entry in live if entry.type == "DrugTestResulted"}
    plans = [entry for _, entry in live if entry.type == "TreatmentPlanRecorded"]
    state = JourneyState(
        client_ref=journey.client_ref, home_site=journey.home_site,
        status=now.status.value, level=now.level and now.level.code, site=now.site, track=now.track and now.track.value,
        level_since=now.level_since, admitted_at=now.admitted_at, episodes=now.episodes, last_discharge=now.last_discharge,
        medication=now.medication.value if now.status is Status.IN_TREATMENT else None,
        sessions_attended=sum(1 for entry in episode if entry.type == "SessionAttended"),
        sessions_missed=sum(1 for entry in episode if entry.type == "SessionMissed"),
        minutes_attended=int(sum(float(entry.fields["minutes"] or 0) for entry in episode if entry.type == "SessionAttended")),
        pending_specimens=[
            str(entry.key) for _, entry in live if entry.type == "DrugTestCollected" and entry.key not in results
        ],
        results=results,
        goals=list(max(plans, key=lambda entry: entry.at).notes) if plans else [],
    )
    if now.status is Status.ALUMNI:  # counted at the home site, as the census projection counts alumni
        state.level, state.site, state.track, state.level_since = ALUMNI, state.home_site, ALUMNI, now.alumni_since
    return state
