"""Episode and stay ids on every clinical event: stored with the event when it is recorded, folded the same way
when the journey is loaded again, and published as the `ce_episode` and `ce_stay` extension attributes."""

from __future__ import annotations

from typing import Any

import pytest

from domain.events import event_name
from infra.kafka.envelope import PoisonMessage, decode, encode, encode_with_sdk, kafka_headers
from services.journeys import ClientJourney
from tests.integration.kafka_support import PSEUDONYMS
from tests.unit.test_kafka_contract import HISTORY, events  # noqa: F401 - the module's fixture, reused

# Worked out by hand from HISTORY: (client, version) -> (episode, stay); anything not listed belongs to none.
K1 = {4: (4, 4), 5: (4, 4), 6: (4, 6), 7: (4, 6), 8: (4, 8), 9: (4, 8), 10: (4, 8), 11: (4, 8), 12: (4, 8), 13: (4, 13),
      14: (4, 13)}
Z1 = {2: (2, 2), 3: (2, 3), 4: (2, 3), 5: (2, 2), 6: (2, 3), 7: (2, 3), 8: (2, 3)}
EXPECTED = {"K-1": K1, "Z-1": Z1}


def _ids(event: Any) -> tuple[int | None, int | None]:
    """A registration opens no episode and has no such fields."""
    return getattr(event, "episode", None), getattr(event, "stay", None)


def _hand_written(recorded: list[tuple[int, Any]]) -> list[tuple[str, Any]]:
    ids = {ClientJourney.create_id(client): client for client in EXPECTED}
    return [(ids[e.originator_id], e) for _, e in recorded[:len(HISTORY)]]


def test_each_event_of_the_hand_written_history_belongs_to_its_episode_and_stay(events):  # noqa: F811
    for client, event in _hand_written(events):
        expected = EXPECTED[client].get(event.originator_version, (None, None))
        assert _ids(event) == expected, (client, event.originator_version, event_name(event))


def test_the_stored_ids_are_what_the_journey_folds_again(events):  # noqa: F811
    """Recorded and replayed the same way: for every entry of every journey (cohort included), the event's stored
    ids equal those the loaded journey derives."""
    by_journey: dict[Any, list[Any]] = {}
    for _, event in events:
        by_journey.setdefault(event.originator_id, []).append(event)
    checked = 0
    for history in by_journey.values():
        journey = None
        for event in history:
            journey = event.mutate(journey)
        assert journey is not None
        for event in history:
            entry = journey.entries.get(event.originator_version)
            if entry is not None:
                assert (entry.episode, entry.stay) == _ids(event), event_name(event)
                checked += 1
    assert checked > len(HISTORY)


def test_the_ids_travel_as_extension_attributes_and_come_back(events):  # noqa: F811
    for position, event in events[:len(HISTORY)]:
        message = encode(event, position, None, PSEUDONYMS)
        assert message.headers == encode_with_sdk(event, position, None, PSEUDONYMS).headers
        episode, stay = _ids(event)
        if episode is None:
            assert "ce_episode" not in message.headers
            assert "ce_stay" not in message.headers
        else:
            assert message.headers["ce_episode"] == f"{episode:010d}".encode()
            assert message.headers["ce_stay"] == f"{stay:010d}".encode()
        envelope, decoded = decode(kafka_headers(message), message.key, message.value)
        assert (envelope.episode, envelope.stay) == _ids(decoded) == (episode, stay)


@pytest.mark.parametrize("value", [b"0000000000", b"9999999999", b"-3", b"four"])
def test_an_episode_that_is_no_earlier_sequence_is_poison(events, value):  # noqa: F811
    position, event = next((p, e) for p, e in events if _ids(e)[0] is not None)
    message = encode(event, position, None, PSEUDONYMS)
    headers = [(k, value if k == "ce_episode" else v) for k, v in kafka_headers(message)]
    with pytest.raises(PoisonMessage, match="ce_episode"):
        decode(headers, message.key, message.value)


def test_the_hand_made_event_id_is_uuid5():
    """The relay's ce_id without UUID objects is the library's uuid5, for versions of every width."""
    from uuid import uuid4

    from domain.events import event_id
    from infra.kafka.envelope import _event_id_text

    for journey in (uuid4() for _ in range(200)):
        for version in (1, 9, 10, 99, 12345, 2**40):
            assert _event_id_text(journey, version) == str(event_id(journey, version)).encode()
