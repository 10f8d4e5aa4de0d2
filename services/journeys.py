"""The application service: loads journeys, applies commands, saves the new events.

Many commands are applied per transaction (a unit of work over a chunk of import lines or
requests); each command is still checked on its own, so one refused command fails alone. If the
chunk's save meets a concurrent writer, the chunk is replayed one command at a time, each with
fresh journeys and a bounded retry, so no event is lost or doubled.

With `hold=True` (the importer), a refused command holds its client's later commands of the same
call: they are not applied, in the unit of work and in the one-at-a-time replay alike.
`check_many` is the dry run: the same checks against journeys read from the store, kept in memory
(`DryRun`) and never saved or put in the library's aggregate cache.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast
from uuid import UUID

from eventsourcing.application import Application, project_aggregate
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Recording

from domain import errors
from domain.events import event_id, event_name
from domain.journey import ClientJourney
from domain.values import Actor, Context
from infra.transcoding import register_transcodings
from services.commands import Command

MAX_ATTEMPTS = 8

journey_id_of = functools.lru_cache(maxsize=100_000)(ClientJourney.create_id)  # a uuid5 per command, memoised


class CareContinuum(Application[UUID]):
    """The event store of journeys (its name fixes the PostgreSQL table names)."""

    name = "CareContinuum"

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_transcodings(transcoder)


class ConcurrencyConflict(errors.CareRuleViolation):
    rule = "the journey kept changing under concurrent writers; nothing was recorded, try again"


@dataclass(frozen=True)
class RecordedEvent:
    id: UUID
    type: str
    version: int
    position: int


@dataclass
class Outcome:
    """What became of a command. `events` are the events it recorded; in a dry run (`check_many`)
    the events it would record, with position 0 (nothing was recorded)."""

    command: Command
    command_id: str
    journey_id: UUID
    error: errors.CareRuleViolation | None = None
    events: list[RecordedEvent] = field(default_factory=list)
    held_by: int | None = None
    """Not applied: the command at this index of the same call, for the same client, was refused."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.held_by is None

    @property
    def duplicate(self) -> bool:
        """An accepted command that recorded nothing: its id had been applied before."""
        return self.ok and not self.events


@dataclass
class DryRun:
    """The journeys of a dry run, kept in memory from one `check_many` call to the next (so a later
    command sees an earlier one's effect); never saved and never put in the aggregate cache."""

    journeys: dict[UUID, ClientJourney] = field(default_factory=dict)
    loaded: dict[UUID, ClientJourney] = field(default_factory=dict)


class JourneyService:
    def __init__(self, app: CareContinuum, clock: Callable[[], datetime] | None = None) -> None:
        self.app = app
        self.clock = clock or (lambda: datetime.now(tz=UTC))

    def execute(self, command: Command, actor: Actor) -> Outcome:
        return self.execute_many([command], actor)[0]

    def execute_many(self, commands: Sequence[Command], actor: Actor, *, hold: bool = False) -> list[Outcome]:
        """Apply `commands` in one unit of work; with `hold`, a refused command holds its client's later ones."""
        now = self.clock()
        journeys: dict[UUID, ClientJourney] = {}
        loaded: dict[UUID, ClientJourney] = {}
        stored = self._load_many(list(dict.fromkeys(journey_id_of(command.client) for command in commands)))
        outcomes = self._in_order(
            commands, lambda command: self._apply(command, Context(actor, now, command.command_id()), journeys, loaded, stored),
            hold=hold,
        )
        try:
            recordings = self.app.save(*journeys.values())
        except IntegrityError:
            return self._in_order(commands, lambda command: self._execute_alone(command, actor), hold=hold)
        self._check_in(journeys, loaded)
        self._attach(outcomes, recordings)
        return outcomes

    def check_many(self, commands: Sequence[Command], actor: Actor, dry_run: DryRun, *, hold: bool = False) -> list[Outcome]:
        """What `execute_many` would do, recording nothing: the commands are applied to journeys read
        from the store (not taken from the cache) and kept in `dry_run`; nothing is saved or cached."""
        now = self.clock()
        wanted = dict.fromkeys(journey_id_of(command.client) for command in commands)
        stored = self._load_many([j for j in wanted if j not in dry_run.journeys and j not in dry_run.loaded], cache=False)

        def check(command: Command) -> Outcome:
            journey_id = journey_id_of(command.client)
            before = dry_run.journeys.get(journey_id)
            seen = len(before.pending_events) if before is not None else 0
            ctx = Context(actor, now, command.command_id())
            outcome = self._apply(command, ctx, dry_run.journeys, dry_run.loaded, stored, cache=False)
            if outcome.ok:
                outcome.events = [
                    RecordedEvent(event_id(e.originator_id, e.originator_version), event_name(e), e.originator_version, 0)
                    for e in dry_run.journeys[journey_id].pending_events[seen:]
                ]
            return outcome

        return self._in_order(commands, check, hold=hold)

    @staticmethod
    def _in_order(commands: Sequence[Command], run: Callable[[Command], Outcome], *, hold: bool) -> list[Outcome]:
        """`run` each command in turn; with `hold`, once a client's command is refused, that client's
        later commands are not run but come back held by it (`held_by`, its index in `commands`)."""
        refused: dict[UUID, int] = {}
        outcomes: list[Outcome] = []
        for index, command in enumerate(commands):
            journey_id = journey_id_of(command.client)
            if journey_id in refused:
                outcomes.append(Outcome(command, command.command_id(), journey_id, held_by=refused[journey_id]))
                continue
            outcome = run(command)
            if hold and not outcome.ok:
                refused[journey_id] = index
            outcomes.append(outcome)
        return outcomes

    def _apply(
        self,
        command: Command,
        ctx: Context,
        journeys: dict[UUID, ClientJourney],
        loaded: dict[UUID, ClientJourney],
        stored: dict[UUID, ClientJourney | None] | None = None,
        *,
        cache: bool = True,
    ) -> Outcome:
        journey_id = journey_id_of(command.client)
        outcome = Outcome(command, ctx.command_id, journey_id)
        try:
            journey = journeys.get(journey_id) or self._reuse(loaded.get(journey_id))
            if journey is None:
                journey = (
                    stored.pop(journey_id) if stored is not None and journey_id in stored else self._load(journey_id, cache=cache)
                )
            if journey is not None:
                loaded[journey_id] = journey
            if journey is None:
                if not command.creates:
                    raise errors.UnknownClient(command.client)
                journey = command.create(ctx)  # type: ignore[attr-defined]
            elif command.creates:
                if ctx.command_id not in journey.commands:
                    raise errors.AlreadyRegistered(command.client, registered_site=journey.home_site)
            else:
                command.apply(journey, ctx)
            journeys[journey_id] = journey
        except errors.CareRuleViolation as violation:
            outcome.error = violation
        return outcome

    def _load(self, journey_id: UUID, *, cache: bool = True) -> ClientJourney | None:
        """The journey as stored, for this unit of work alone.

        A journey this service saved before is taken out of the library's aggregate cache (so no
        other call can use it until it is saved again) and fast-forwarded with whatever other
        writers stored since; otherwise it is rebuilt from its stored events. Either way no copy
        is made: a journey goes back into the cache only after its events are saved, so a failed
        unit of work leaves nothing half-applied behind. With `cache=False` (a dry run) the cache is
        neither read nor changed: the journey is rebuilt from the store.
        """
        aggregates = self.app.repository.cache if cache else None
        cached: ClientJourney | None = None
        if aggregates is not None:
            try:
                cached = cast("ClientJourney", aggregates.get(journey_id, evict=True))
            except KeyError:
                cached = None
        since = cached.version if cached is not None else None
        journey: ClientJourney | None = project_aggregate(cached, self.app.events.get(journey_id, gt=since))
        return journey

    def _load_many(self, journey_ids: list[UUID], *, cache: bool = True) -> dict[UUID, ClientJourney | None]:
        """`_load` for every journey of a unit of work, with one read of the store for all of them."""
        select_after = getattr(self.app.recorder, "select_events_after", None)
        if select_after is None:  # a recorder without the batched read (the in-memory one in unit tests)
            return {journey_id: self._load(journey_id, cache=cache) for journey_id in journey_ids}
        aggregates = self.app.repository.cache if cache else None
        cached: dict[UUID, ClientJourney] = {}
        if aggregates is not None:
            for journey_id in journey_ids:
                try:
                    cached[journey_id] = cast("ClientJourney", aggregates.get(journey_id, evict=True))
                except KeyError:
                    continue
        newer: dict[UUID, list[object]] = {}
        for stored_event in select_after([(j, cached[j].version if j in cached else 0) for j in journey_ids]):
            newer.setdefault(stored_event.originator_id, []).append(self.app.mapper.to_domain_event(stored_event))
        return {
            journey_id: project_aggregate(cached.get(journey_id), newer.get(journey_id, []))  # type: ignore[arg-type]
            for journey_id in journey_ids
        }

    @staticmethod
    def _reuse(journey: ClientJourney | None) -> ClientJourney | None:
        """A journey loaded earlier in this unit of work whose command was refused: unchanged (the
        guards run before any event), so the next command may use it; never one left half-changed."""
        return journey if journey is not None and not journey.pending_events else None

    def _check_in(self, saved: dict[UUID, ClientJourney], loaded: dict[UUID, ClientJourney]) -> None:
        """After a successful save: the journeys are now exactly as stored, so they may be reused."""
        cache = self.app.repository.cache
        if cache is None:
            return
        for journey_id, journey in (loaded | saved).items():
            if not journey.pending_events:
                cache.put(journey_id, journey)

    def _execute_alone(self, command: Command, actor: Actor) -> Outcome:
        for attempt in range(MAX_ATTEMPTS):
            journeys: dict[UUID, ClientJourney] = {}
            loaded: dict[UUID, ClientJourney] = {}
            outcome = self._apply(command, Context(actor, self.clock(), command.command_id()), journeys, loaded)
            if not outcome.ok:
                return outcome
            try:
                self._attach([outcome], self.app.save(*journeys.values()))
            except IntegrityError:
                time.sleep(random.uniform(0, 0.005 * 2**attempt))  # noqa: S311 - jitter, not security
                continue
            self._check_in(journeys, loaded)
            return outcome
        return Outcome(
            command, command.command_id(), ClientJourney.create_id(command.client),
            error=ConcurrencyConflict(command.client, attempts=MAX_ATTEMPTS),
        )

    @staticmethod
    def _attach(outcomes: list[Outcome], recordings: list[Recording[UUID]]) -> None:
        by_command: dict[tuple[UUID, str], list[RecordedEvent]] = {}
        for recording in recordings:
            event = recording.domain_event
            command_id = getattr(event, "command_id", "")
            by_command.setdefault((event.originator_id, command_id), []).append(
                RecordedEvent(
                    event_id(event.originator_id, event.originator_version),
                    event_name(event),
                    event.originator_version,
                    recording.notification.id,
                ),
            )
        for outcome in outcomes:
            if outcome.ok:
                outcome.events = by_command.pop((outcome.journey_id, outcome.command_id), [])
