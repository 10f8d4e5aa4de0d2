"""Putting a record right: the checks behind a correction and a void.

A correction may not move an entry out of order (a session before its admission, an admission
after the first entry of its stay, a discharge before one, a result before its collection), nor
record a death that later care contradicts. A void may not leave an entry that depends on the voided
one: a later change of level, the entries of a voided admission's stay, the result of a voided
collection. These checks only read the journey; `ClientJourney` records the events.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from domain import errors
from domain import flags as flagging
from domain.corrections import CORRECTABLE, Scalar
from domain.levels import Level, Track
from domain.record import OPENERS, TRANSITIONS, Entry

if TYPE_CHECKING:
    from domain.values import Context

CLOCK_SKEW = timedelta(minutes=2)
"""How far ahead of our clock a caller's `occurred_at` may be before it is refused as future."""

UNBOUND = frozenset({"ReferralReceived", "AssessmentCompleted", "EnrolledInAlumni", "AlumniActivityAttended"})
"""Entries that belong to no stay: they may come before an admission or after a discharge."""


def check_time(client_ref: str, at: datetime, now: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise errors.NaiveTimestamp(client_ref, occurred_at=at.isoformat())
    if at > now + CLOCK_SKEW:
        raise errors.OccurredInFuture(client_ref, occurred_at=at.isoformat(), now=now.isoformat())


class Amendments:
    client_ref: str
    version: int
    registered_at: datetime
    entries: dict[int, Entry]
    transitions: list[int]
    results: dict[str, int]
    specimens: dict[str, int]

    @property
    def birth_year(self) -> int | None:
        year = self.entries[1].fields["birth_year"]
        return None if year is None else int(year)

    def _name(self, version: int) -> str:
        return f"{self.entries[version].type} #{version}"

    def _entry(self, version: int, action: str) -> Entry:
        if version not in self.entries:
            if 1 <= version <= self.version:
                raise errors.NotCorrectable(
                    self.client_ref, f"#{version} is a correction or a void: {action} the entry it refers to instead",
                )
            raise errors.UnknownEntry(self.client_ref, f"no entry #{version} in this journey", version=version)
        return self.entries[version]

    def _check_track(self, level: Level, track: Track | None) -> Track:
        raise NotImplementedError

    # -- corrections ------------------------------------------------------------------------

    def _check_correction(self, version: int, field: str, value: Scalar, ctx: Context) -> tuple[Entry, Scalar]:
        entry = self._entry(version, "correct")
        if entry.voided:
            raise errors.EntryIsVoided(self.client_ref, entry=self._name(version))
        parse = CORRECTABLE.get(entry.type, {}).get(field)
        if parse is None:
            allowed = ", ".join(CORRECTABLE.get(entry.type, {})) or "nothing"
            raise errors.NotCorrectable(self.client_ref, entry=self._name(version), field=field, correctable=allowed)
        try:
            corrected = parse(value)
        except ValueError as problem:
            raise errors.InvalidValue(self.client_ref, f"{field}: {problem}", value=value) from None
        if corrected == entry.fields.get(field):
            raise errors.NothingToCorrect(self.client_ref, entry=self._name(version), field=field, value=corrected)
        if field == "occurred_at":
            self._check_corrected_time(version, entry, datetime.fromisoformat(str(corrected)), ctx)
        if field == "track" and "_level" in entry.fields:
            self._check_track(Level(str(entry.fields["_level"])), Track(corrected))
        if entry.type == "Discharged" and field == "reason" and corrected == "died":
            self._check_death(version)
        return entry, corrected

    def _check_corrected_time(self, version: int, entry: Entry, moment: datetime, ctx: Context) -> None:  # noqa: C901 - one rule per kind of entry
        check_time(self.client_ref, moment, ctx.now)
        if entry.type in TRANSITIONS:
            self._check_between_neighbours(version, moment)
        if moment < self.registered_at:
            raise errors.BeforeRegistration(self.client_ref, registered_at=self.registered_at.isoformat(), corrected=moment.isoformat())
        if entry.type in OPENERS:
            first = self._earliest_in_episode(version)
            if first is not None and moment > self.entries[first].at:
                raise errors.OutOfOrder(
                    self.client_ref, "an admission cannot move after the first entry of its stay",
                    first=self._name(first), first_at=self.entries[first].at.isoformat(), corrected=moment.isoformat(),
                )
        elif entry.type == "Discharged":
            latest = self._latest_in_episode(entry.episode, excluding=version)
            if latest is not None and moment < self.entries[latest].at:
                raise errors.DischargeBeforeEntries(
                    self.client_ref, entry=self._name(latest), entry_at=self.entries[latest].at.isoformat(),
                    corrected=moment.isoformat(),
                )
        elif entry.episode is not None and entry.type not in TRANSITIONS:
            self._check_inside_stay(entry, moment)
        if entry.type == "DrugTestResulted":
            collected = self.entries[self.specimens[str(entry.key)]].at
            if moment < collected:
                raise errors.ResultBeforeCollection(
                    self.client_ref, specimen_id=entry.key, collected_at=collected.isoformat(), corrected=moment.isoformat(),
                )
        if entry.type == "DrugTestCollected" and entry.key in self.results:
            resulted = self.entries[self.results[str(entry.key)]].at
            if moment > resulted:
                raise errors.ResultBeforeCollection(
                    self.client_ref, specimen_id=entry.key, resulted_at=resulted.isoformat(), corrected=moment.isoformat(),
                )

    def _check_between_neighbours(self, version: int, moment: datetime) -> None:
        position = self.transitions.index(version)
        earlier = self.entries[self.transitions[position - 1]].at if position > 0 else None
        later = self.entries[self.transitions[position + 1]].at if position + 1 < len(self.transitions) else None
        if (earlier and moment < earlier) or (later and moment > later):
            raise errors.OutOfOrder(
                self.client_ref, "a corrected time must stay between the changes of level around it",
                earlier=earlier and earlier.isoformat(), later=later and later.isoformat(), corrected=moment.isoformat(),
            )

    def _check_inside_stay(self, entry: Entry, moment: datetime) -> None:
        opener = self.entries[entry.episode] if entry.episode is not None else None
        if opener is not None and moment < opener.at:
            raise errors.BeforeAdmission(
                self.client_ref, "a corrected time cannot move an entry before its admission",
                admitted_at=opener.at.isoformat(), corrected=moment.isoformat(),
            )
        discharge = next(
            (v for v in self.transitions if self.entries[v].type == "Discharged" and self.entries[v].episode == entry.episode), None,
        )
        if discharge is not None and entry.type != "DrugTestResulted" and moment > self.entries[discharge].at:
            raise errors.OutOfOrder(
                self.client_ref, "a corrected time cannot move an entry after its discharge",
                discharged_at=self.entries[discharge].at.isoformat(), corrected=moment.isoformat(),
            )

    def _check_death(self, version: int) -> None:
        later = [v for v in self.transitions if v > version]
        if later:
            raise errors.Deceased(
                self.client_ref, "a death cannot be recorded before later care: void the later entries first",
                later=", ".join(map(self._name, later)),
            )

    def _episode_entries(self, opener: int | None, excluding: int | None = None) -> list[int]:
        """Live entries of the stay `opener` began (results aside: they may follow the discharge)."""
        if opener is None:
            return []
        return [
            v for v in range(opener + 1, self.version + 1)
            if v in self.entries and v != excluding and not self.entries[v].voided and self.entries[v].episode == opener
            and self.entries[v].type != "DrugTestResulted"
        ]

    def _earliest_in_episode(self, opener: int) -> int | None:
        return min(self._episode_entries(opener), key=lambda v: self.entries[v].at, default=None)

    def _latest_in_episode(self, opener: int | None, excluding: int | None = None) -> int | None:
        return max(self._episode_entries(opener, excluding), key=lambda v: self.entries[v].at, default=None)

    def _flags_after_correction(self, entry: Entry, field: str, corrected: Scalar) -> list[str] | None:
        """The hours flags of an admission or step whose planned hours were corrected, when they change."""
        if field != "planned_hours_per_week" or "_level" not in entry.fields or not isinstance(corrected, float):
            return None
        level = Level(str(entry.fields["_level"]))
        kept = [flag for flag in entry.notes if flag not in (flagging.HOURS_ADULT, flagging.HOURS_ADOLESCENT)]
        flags = kept + flagging.hours_flags(level, corrected, adolescent=flagging.is_adolescent(self.birth_year, entry.at))
        return flags if flags != list(entry.notes) else None

    # -- voids --------------------------------------------------------------------------------

    def _check_voidable(self, version: int, voiding: set[int]) -> None:
        entry = self._entry(version, "void")
        if entry.voided:
            raise errors.AlreadyVoided(self.client_ref, entry=self._name(version))
        if entry.type == "ClientRegistered":
            raise errors.NotVoidable(self.client_ref, "a registration cannot be voided: correct its facts instead")

        def live(other: int) -> bool:
            return other not in voiding and not self.entries[other].voided

        dependants: list[int] = []
        if entry.type in TRANSITIONS or entry.type == "DetoxCompleted":
            dependants += [v for v in self.transitions if v > version and live(v)]
        if entry.type in OPENERS:
            dependants += [
                v for v, other in self.entries.items()
                if v > version and other.episode == version and live(v) and v not in dependants
            ]
        if entry.type == "DrugTestCollected" and entry.key in self.results and live(self.results[str(entry.key)]):
            dependants.append(self.results[str(entry.key)])
        if dependants:
            raise errors.VoidBlocked(
                self.client_ref, entry=self._name(version), later=", ".join(map(self._name, sorted(dependants))),
            )
