"""The application service: loads journeys, applies commands, saves the new events.

Many commands are applied per transaction (a unit of work over a chunk of import lines or
requests); each command is still checked on its own, so one refused command fails alone. If the
chunk's save meets a concurrent writer, the chunk is replayed one command at a time, each with
fresh journeys and a bounded retry, so no event is lost or doubled.

With `hold=True` (the importer), a refused command holds its client's later commands of the same
call: they are not applied, in the unit of work and in the one-at-a-time replay alike.
`check_many` is the dry run: the same checks in a unit of work (`DryRun`) that reads the store
without the aggregate cache and is never committed. See `services/unit_of_work.py`.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Recording

from domain import errors
from domain.events import event_id, event_name
from domain.journey import ClientJourney
from domain.values import Actor, Context
from infra.transcoding import FastJSONTranscoder, register_transcodings
from services.commands import Command
from services.unit_of_work import UnitOfWork

MAX_ATTEMPTS = 8

journey_id_of = functools.lru_cache(maxsize=100_000)(ClientJourney.create_id)  # a uuid5 per command, memoised


class CareContinuum(Application[UUID]):
    """The event store of journeys (its name fixes the PostgreSQL table names)."""

    name = "CareContinuum"

    def construct_transcoder(self) -> JSONTranscoder:
        """The library's JSON, byte for byte, written and read with orjson (`infra.transcoding`)."""
        transcoder = FastJSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:  # noqa: ANN401 - the library's signature
        """The library's `save`; for journeys alone the same steps without its runtime Protocol checks on each
        object (`isinstance` against a runtime-checkable Protocol: tens of µs a journey)."""
        if not all(type(obj) is ClientJourney for obj in objs):
            return super().save(*objs, **kwargs)
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        for journey in objs:
            processing.events.extend(journey.collect_events())
            processing.aggregates[journey.id] = journey
        processing.saved_kwargs.update(kwargs)
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        self.notify(processing.events)
        return recordings

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_transcodings(transcoder)


class ConcurrencyConflict(errors.CareRuleViolation):
    rule = "the journey kept changing under concurrent writers; nothing was recorded, try again"


@dataclass(frozen=True)
class RecordedEvent:
    journey_id: UUID
    type: str
    version: int
    position: int

    @property
    def id(self) -> UUID:
        """The event's id (a uuid5 of journey and version), made only when asked for: an import never asks."""
        return event_id(self.journey_id, self.version)


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
    repeated: bool = False
    """Its id had been applied before: nothing new was recorded, and `events` are the first result."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.held_by is None

    @property
    def duplicate(self) -> bool:
        """An accepted command that recorded nothing: its id had been applied before."""
        return self.ok and (self.repeated or not self.events)


class DryRun(UnitOfWork):
    """The unit of work of a dry run, kept from one `check_many` call to the next (so a later command
    sees an earlier one's effect); it reads the store without the cache and is never committed."""

    def __init__(self, app: CareContinuum) -> None:
        super().__init__(app, cached=False)


class JourneyService:
    def __init__(self, app: CareContinuum, clock: Callable[[], datetime] | None = None) -> None:
        self.app = app
        self.clock = clock or (lambda: datetime.now(tz=UTC))

    def execute(self, command: Command, actor: Actor, *, site: str | None = None) -> Outcome:
        """One command; with `site`, only for a client registered there (a clinician's own site).

        A repeated command id records nothing and comes back with the events it recorded the first time.
        """
        outcome = self.execute_many([command], actor, site=site)[0]
        if outcome.duplicate:
            outcome.events, outcome.repeated = self.first_result(outcome.journey_id, outcome.command_id), True
        return outcome

    def execute_many(
        self, commands: Sequence[Command], actor: Actor, *, hold: bool = False, site: str | None = None,
    ) -> list[Outcome]:
        """Apply `commands` in one unit of work; with `hold`, a refused command holds its client's later ones."""
        now = self.clock()
        work = UnitOfWork(self.app)
        work.read_ahead(journey_id_of(command.client) for command in commands)
        outcomes = self._in_order(
            commands, lambda command: self._apply(command, Context(actor, now, command.command_id()), work, site), hold=hold,
        )
        try:
            recordings = work.commit()
        except IntegrityError:
            return self._in_order(commands, lambda command: self._execute_alone(command, actor, site), hold=hold)
        self._attach(outcomes, recordings)
        return outcomes

    def new_dry_run(self) -> DryRun:
        return DryRun(self.app)

    def check_many(self, commands: Sequence[Command], actor: Actor, dry_run: DryRun, *, hold: bool = False) -> list[Outcome]:
        """What `execute_many` would do, recording nothing: the commands are applied in `dry_run`'s unit
        of work, which is never committed."""
        now = self.clock()
        dry_run.read_ahead(journey_id_of(command.client) for command in commands)

        def check(command: Command) -> Outcome:
            journey_id = journey_id_of(command.client)
            before = dry_run.changed.get(journey_id)
            seen = len(before.pending_events) if before is not None else 0
            outcome = self._apply(command, Context(actor, now, command.command_id()), dry_run)
            if outcome.ok:
                outcome.events = [
                    RecordedEvent(e.originator_id, event_name(e), e.originator_version, 0)
                    for e in dry_run.changed[journey_id].pending_events[seen:]
                ]
            return outcome

        return self._in_order(commands, check, hold=hold)

    def first_result(self, journey_id: UUID, command_id: str) -> list[RecordedEvent]:
        """The events a command id recorded, read from the store, with their log positions."""
        found = [e for e in self.app.events.get(journey_id) if getattr(e, "command_id", None) == command_id]
        select_positions = getattr(self.app.recorder, "select_positions", None)
        positions = select_positions(journey_id, [e.originator_version for e in found]) if found and select_positions else {}
        return [
            RecordedEvent(journey_id, event_name(e), e.originator_version, positions.get(e.originator_version, 0))
            for e in found
        ]

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

    @staticmethod
    def _apply(command: Command, ctx: Context, work: UnitOfWork, site: str | None = None) -> Outcome:
        journey_id = journey_id_of(command.client)
        outcome = Outcome(command, ctx.command_id, journey_id)
        try:
            journey = work.journey(journey_id)
            _check_site(command, journey, site)
            if journey is None:
                if not command.creates:
                    raise errors.UnknownClient(command.client)
                journey = command.create(ctx)
            elif command.creates:
                if ctx.command_id not in journey.commands:
                    raise errors.AlreadyRegistered(command.client, registered_site=journey.home_site)
            else:
                command.apply(journey, ctx)
            work.changes(journey_id, journey)
        except errors.CareRuleViolation as violation:
            outcome.error = violation
        return outcome

    def _execute_alone(self, command: Command, actor: Actor, site: str | None) -> Outcome:
        for attempt in range(MAX_ATTEMPTS):
            work = UnitOfWork(self.app)
            outcome = self._apply(command, Context(actor, self.clock(), command.command_id()), work, site)
            if not outcome.ok:
                return outcome
            try:
                self._attach([outcome], work.commit())
            except IntegrityError:
                time.sleep(random.uniform(0, 0.005 * 2**attempt))  # noqa: S311 - jitter, not security
                continue
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
                RecordedEvent(event.originator_id, event_name(event), event.originator_version, recording.notification.id),
            )
        for outcome in outcomes:
            if outcome.ok:
                outcome.events = by_command.pop((outcome.journey_id, outcome.command_id), [])


def _check_site(command: Command, journey: ClientJourney | None, site: str | None) -> None:
    """A clinician of a site registers clients there and acts on the clients registered there."""
    if site is None:
        return
    if command.creates:
        if getattr(command, "site", None) != site:
            raise errors.OtherSite(command.client, f"a clinician of site {site} registers clients at {site} only")
    elif journey is not None and journey.home_site != site:
        raise errors.UnknownClient(command.client)  # as if unknown: a site's token learns nothing of other sites' clients
