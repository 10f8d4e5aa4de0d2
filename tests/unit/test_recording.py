"""`@recorded` (domain/recording.py) records, by its lean live call, exactly what the library's `@event` records.

The same commands, covering every event type (the contract's HISTORY), are applied to journeys twice at the same
recorded-time clock: once as the journey runs, once with the library's decorated call put back. The events are the
same class with the same attributes in the same order and the same stored bytes, the journeys end in the same state,
and replay (the library's `apply`, untouched) folds the stored events, old versions upcast, into the same journeys.
"""

from __future__ import annotations

import functools
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.domain import Aggregate, BoundCommandMethodDecorator, CanCreateTimestamp, CommandMethodDecorator
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import resolve_topic

from domain.events import EVENT_TYPES
from domain.journey import ClientJourney
from domain.recording import RecordedMethod, recorded
from domain.values import Actor, Context
from services.commands import parse_command
from services.journeys import CareContinuum
from tests.unit.test_kafka_contract import HISTORY

ACTOR = Actor("dr-ames", "clinician")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
RECORDED_FROM = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)


class TickingClock:
    """The recorded time of each event: a millisecond after the one before, so a timestamp out of place shows."""

    def __init__(self) -> None:
        self.ticks = itertools.count()

    def __call__(self) -> datetime:
        return RECORDED_FROM + timedelta(milliseconds=next(self.ticks))


def journeys_after_history(monkeypatch: pytest.MonkeyPatch, *, library: bool) -> dict[str, ClientJourney]:
    """HISTORY's commands applied to in-memory journeys; with `library`, through the library's decorated call."""
    with monkeypatch.context() as patch:
        patch.setattr(CanCreateTimestamp, "create_timestamp", staticmethod(TickingClock()))
        if library:
            patch.setattr(RecordedMethod, "__get__", CommandMethodDecorator.__get__)
        else:
            patch.setattr(BoundCommandMethodDecorator, "trigger", _not_the_lean_call)
        journeys: dict[str, ClientJourney] = {}
        for number, (_, data) in enumerate(HISTORY, start=1):
            command = parse_command({"id": f"recording-{number}", **data})
            ctx = Context(ACTOR, NOW, command.command_id())
            if command.client in journeys:
                command.apply(journeys[command.client], ctx)
            else:
                journeys[command.client] = command.create(ctx)
        return journeys


def _not_the_lean_call(*_: Any, **__: Any) -> None:
    raise AssertionError("the library's decorated call ran where the lean call should have")


@pytest.fixture(scope="module")
def mapper() -> Any:
    return CareContinuum(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper


@pytest.fixture
def both_ways(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, ClientJourney], dict[str, ClientJourney]]:
    return journeys_after_history(monkeypatch, library=False), journeys_after_history(monkeypatch, library=True)


def test_the_history_records_every_event_type(both_ways):
    lean, _ = both_ways
    recorded_types = {type(event).__name__ for journey in lean.values() for event in journey.pending_events}
    assert recorded_types == {event_type.__name__ for event_type in EVENT_TYPES}


def test_the_lean_call_makes_the_librarys_events_attribute_by_attribute(both_ways):
    lean, library = both_ways
    assert lean.keys() == library.keys()
    for client in lean:
        made, expected = lean[client].pending_events, library[client].pending_events
        assert [type(event) for event in made] == [type(event) for event in expected]
        for event, reference in zip(made, expected, strict=True):
            assert list(vars(event)) == list(vars(reference)), type(event).__name__  # the same fields, in the same order
            for name, value in vars(reference).items():
                assert type(getattr(event, name)) is type(value), f"{type(event).__name__}.{name}"
                assert getattr(event, name) == value, f"{type(event).__name__}.{name}"
            assert event == reference


def test_the_lean_call_makes_the_librarys_stored_bytes(both_ways, mapper):
    lean, library = both_ways
    for client in lean:
        made = [mapper.to_stored_event(event) for event in lean[client].pending_events]
        assert made == [mapper.to_stored_event(event) for event in library[client].pending_events]


def test_the_lean_call_leaves_the_journey_as_the_library_does(both_ways):
    lean, library = both_ways
    for client in lean:
        assert list(vars(lean[client])) == list(vars(library[client]))
        assert vars(lean[client]) == vars(library[client])
        assert (lean[client].version, lean[client].modified_on) == (library[client].version, library[client].modified_on)


def test_replay_folds_the_stored_events_into_the_live_journey(both_ways, mapper):
    lean, _ = both_ways
    for journey in lean.values():
        stored = [mapper.to_stored_event(event) for event in journey.collect_events()]
        assert vars(_replayed(stored, mapper)) == vars(journey)


def test_replay_folds_old_versions_upcast_into_the_live_journey(both_ways, mapper):
    """Stored as version 1 of each class wrote them (before medication, flags and episode ids were stored), the events
    are upcast on reading and folded by the same bodies. HISTORY records no flags and no medication at detox, what the
    upcasts default, so the old history folds into the journey as it is live."""
    lean, library = both_ways
    for client, journey in lean.items():
        old = [_as_first_version(mapper.to_stored_event(event)) for event in journey.collect_events()]
        assert old == [_as_first_version(mapper.to_stored_event(event)) for event in library[client].collect_events()]
        assert all(b'"episode"' not in event.state for event in old)
        assert vars(_replayed(old, mapper)) == vars(journey)


def test_an_event_method_must_take_exactly_its_events_fields():
    class Lopsided(Aggregate):
        class Walked(Aggregate.Event):
            activity: str
            minutes: int

        @recorded(Walked)
        def _walked(self, activity: str) -> None:
            self.activity = activity

    journey = Lopsided()
    with pytest.raises(TypeError, match="exactly the event's fields"):
        journey._walked(activity="walk", minutes=20)
    assert journey.version == 1
    assert len(journey.pending_events) == 1


def _replayed(stored: list[StoredEvent], mapper: Any) -> ClientJourney:
    journey = functools.reduce(lambda aggregate, event: event.mutate(aggregate), map(mapper.to_domain_event, stored), None)
    assert isinstance(journey, ClientJourney)
    return journey


def _as_first_version(stored: StoredEvent) -> StoredEvent:
    """The stored event as version 1 of its class wrote it: without `class_version` and what the upcasts add."""
    state = json.loads(stored.state)
    version = state.pop("class_version", 1)
    added: dict[str, Any] = {}
    cls = resolve_topic(stored.topic)
    for step in range(1, version):
        getattr(cls, f"upcast_v{step}_v{step + 1}")(added)
    for name in added:
        del state[name]
    return StoredEvent(stored.originator_id, stored.originator_version, stored.topic, json.dumps(state, separators=(",", ":")).encode())
