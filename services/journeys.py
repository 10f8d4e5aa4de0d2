"""The application service: loads journeys, applies commands, saves the new events.

Many commands are applied per transaction (a unit of work over a chunk of import lines or
requests); each command is still checked on its own, so one refused command fails alone. If the
chunk's save meets a concurrent writer, the chunk is replayed one command at a time, each with
fresh journeys and a bounded retry, so no event is lost or doubled.
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
    command: Command
    command_id: str
    journey_id: UUID
    error: errors.CareRuleViolation | None = None
    events: list[RecordedEvent] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def duplicate(self) -> bool:
        """An accepted command that recorded nothing: its id had been applied before."""
        return self.ok and not self.events


class JourneyService:
    def __init__(self, app: CareContinuum, clock: Callable[[], datetime] | None = None) -> None:
        self.app = app
        self.clock = clock or (lambda: datetime.now(tz=UTC))

    def execute(self, command: Command, actor: Actor) -> Outcome:
        return self.execute_many([command], actor)[0]

    def execute_many(self, commands: Sequence[Command], actor: Actor) -> list[Outcome]:
        now = self.clock()
        journeys: dict[UUID, ClientJourney] = {}
        loaded: dict[UUID, ClientJourney] = {}
        stored = self._load_many(list(dict.fromkeys(journey_id_of(command.client) for command in commands)))
        outcomes = [
            self._apply(command, Context(actor, now, command.command_id()), journeys, loaded, stored) for command in commands
        ]
        try:
            recordings = self.app.save(*journeys.values())
        except IntegrityError:
            return [self._execute_alone(command, actor) for command in commands]
        self._check_in(journeys, loaded)
        self._attach(outcomes, recordings)
        return outcomes

    def _apply(
        self,
        command: Command,
        ctx: Context,
        journeys: dict[UUID, ClientJourney],
        loaded: dict[UUID, ClientJourney],
        stored: dict[UUID, ClientJourney | None] | None = None,
    ) -> Outcome:
        journey_id = journey_id_of(command.client)
        outcome = Outcome(command, ctx.command_id, journey_id)
        try:
            journey = journeys.get(journey_id) or self._reuse(loaded.get(journey_id))
            if journey is None:
                journey = stored.pop(journey_id) if stored is not None and journey_id in stored else self._load(journey_id)
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

    def _load(self, journey_id: UUID) -> ClientJourney | None:
        """The journey as stored, for this unit of work alone.

        A journey this service saved before is taken out of the library's aggregate cache (so no
        other call can use it until it is saved again) and fast-forwarded with whatever other
        writers stored since; otherwise it is rebuilt from its stored events. Either way no copy
        is made: a journey goes back into the cache only after its events are saved, so a failed
        unit of work leaves nothing half-applied behind.
        """
        cache = self.app.repository.cache
        cached: ClientJourney | None = None
        if cache is not None:
            try:
                cached = cast("ClientJourney", cache.get(journey_id, evict=True))
            except KeyError:
                cached = None
        since = cached.version if cached is not None else None
        journey: ClientJourney | None = project_aggregate(cached, self.app.events.get(journey_id, gt=since))
        return journey

    def _load_many(self, journey_ids: list[UUID]) -> dict[UUID, ClientJourney | None]:
        """`_load` for every journey of a unit of work, with one read of the store for all of them."""
        select_after = getattr(self.app.recorder, "select_events_after", None)
        if select_after is None:  # a recorder without the batched read (the in-memory one in unit tests)
            return {journey_id: self._load(journey_id) for journey_id in journey_ids}
        cache = self.app.repository.cache
        cached: dict[UUID, ClientJourney] = {}
        if cache is not None:
            for journey_id in journey_ids:
                try:
                    cached[journey_id] = cast("ClientJourney", cache.get(journey_id, evict=True))
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
