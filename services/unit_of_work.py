"""The unit of work of the journey service: the journeys one call works on, read once, changed in
memory, and saved together or not at all.

Journeys the service saved before live in the library's aggregate cache. A unit of work takes each
one it needs out of the cache (so no other call can use it meanwhile), fast-forwards it with what
other writers stored since, and puts it back only after its events are saved (`commit`): a failed
unit of work leaves nothing half-applied behind, and no journey is copied. The events other writers
stored are read for all journeys of the unit of work in one statement where the recorder can
(`select_events_after`). A dry run's unit of work (`cached=False`) neither reads nor changes the
cache, and is never committed.

"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, cast
from uuid import UUID

from eventsourcing.application import project_aggregate
from eventsourcing.domain import DomainEventProtocol

from domain.journey import ClientJourney

if TYPE_CHECKING:
    from eventsourcing.persistence import Recording

    from services.journeys import CareContinuum


class UnitOfWork:
    def __init__(self, app: CareContinuum, *, cached: bool = True) -> None:
        self.app = app
        self.cached = cached
        self.changed: dict[UUID, ClientJourney] = {}  # journeys with new events, to be saved together
        self.loaded: dict[UUID, ClientJourney] = {}  # every journey read, changed or not
        self._read: dict[UUID, ClientJourney | None] = {}  # read ahead, not yet handed out

    def read_ahead(self, journey_ids: Iterable[UUID]) -> None:
        """Read the journeys a batch of commands will need, with one read of the store for all."""
        wanted = [j for j in dict.fromkeys(journey_ids) if j not in self.changed and j not in self.loaded and j not in self._read]
        select_after = getattr(self.app.recorder, "select_events_after", None)
        if select_after is None:  # a recorder without the batched read (the in-memory one)
            self._read.update({journey_id: self._load(journey_id) for journey_id in wanted})
            return
        taken = {journey_id: journey for journey_id in wanted if (journey := self._take(journey_id)) is not None}
        newer: dict[UUID, list[DomainEventProtocol[UUID]]] = {}
        for stored_event in select_after([(j, taken[j].version if j in taken else 0) for j in wanted]):
            newer.setdefault(stored_event.originator_id, []).append(self.app.mapper.to_domain_event(stored_event))
        for journey_id in wanted:
            self._read[journey_id] = project_aggregate(taken.get(journey_id), newer.get(journey_id, []))

    def journey(self, journey_id: UUID) -> ClientJourney | None:
        """The journey to apply the next command to: as changed in this unit of work, else as stored.

        A journey whose last command was refused is unchanged (the guards run before any event) and is
        handed out again; one left half-changed never is.
        """
        if journey_id in self.changed:
            return self.changed[journey_id]
        journey = self.loaded.get(journey_id)
        if journey is not None and not journey.pending_events:
            return journey
        journey = self._read.pop(journey_id) if journey_id in self._read else self._load(journey_id)
        if journey is not None:
            self.loaded[journey_id] = journey
        return journey

    def changes(self, journey_id: UUID, journey: ClientJourney) -> None:
        """`journey` took a command: its events are saved with the others at `commit`."""
        self.changed[journey_id] = journey
        self.loaded[journey_id] = journey

    def commit(self) -> list[Recording[UUID]]:
        """Save every changed journey in one transaction; then the journeys are exactly as stored and
        go back into the cache. Raises the store's IntegrityError when another writer came first."""
        recordings = self.app.save(*self.changed.values())
        cache = self.app.repository.cache
        if cache is not None and self.cached:
            for journey_id, journey in self.loaded.items():
                if not journey.pending_events:
                    cache.put(journey_id, journey)
        return recordings

    def _take(self, journey_id: UUID) -> ClientJourney | None:
        cache = self.app.repository.cache if self.cached else None
        if cache is None:
            return None
        try:
            # the library's cache holds Any; this application caches its journeys alone
            return cast("ClientJourney", cache.get(journey_id, evict=True))
        except KeyError:
            return None

    def _load(self, journey_id: UUID) -> ClientJourney | None:
        cached = self._take(journey_id)
        since = cached.version if cached is not None else None
        journey: ClientJourney | None = project_aggregate(cached, self.app.events.get(journey_id, gt=since))
        return journey
