"""The relay's hot path (`infra/kafka/wire.py`, `KeyPartitions`) against the reference: every stored event's message,
read plainly from its stored JSON, is `encode`'s after the mapper's decoding, byte for byte, for every event type, for
stored events of every older class version (upcast), and in an encrypted store; each key's partition is the one
kafka-python's default partitioner gives it."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from eventsourcing.persistence import MapperDeserialisationError, Notification
from eventsourcing.utils import resolve_topic
from kafka.partitioner.default import DefaultPartitioner
from kafka.partitioner.sticky import StickyPartitioner

from domain.events import EVENT_TYPES
from infra.kafka.clients import KeyPartitions
from infra.kafka.envelope import ContractViolation, encode, kafka_headers
from infra.kafka.wire import WireEncoder
from services.commands import parse_command
from services.demo import cohort_lines
from services.importer import import_lines
from services.journeys import CareContinuum, JourneyService
from tests.integration.kafka_support import PSEUDONYMS
from tests.support.clock import fixed_clock
from tests.unit.test_kafka_contract import ACTOR, HISTORY  # the hand-written history of every event type

HEADS = ("ab" * 32, None)


def _store(env: dict[str, str] | None = None) -> CareContinuum:
    """The contract test's HISTORY (every event type) and a small demo cohort, recorded in memory."""
    app = CareContinuum(env={"PERSISTENCE_MODULE": "eventsourcing.popo", **(env or {})})
    service = JourneyService(app, clock=fixed_clock)
    for number, (_, data) in enumerate(HISTORY, start=1):
        assert service.execute(parse_command({"id": f"wire-{number}", **data}), ACTOR).ok
    year = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert import_lines(service, cohort_lines(25, 7, start=year[0], end=year[1]), ACTOR).ok
    return app


@pytest.fixture(scope="module")
def store() -> tuple[CareContinuum, list[Notification]]:
    app = _store()
    return app, list(app.recorder.select_notifications(start=0, limit=100_000))


def _reference(app: CareContinuum, row: Notification, head: str | None) -> tuple[Any, bytes, list[tuple[str, bytes]]]:
    message = encode(app.mapper.to_domain_event(row), row.id, head, PSEUDONYMS)
    return message.key, message.value, kafka_headers(message)


def test_every_stored_event_is_encoded_plainly_into_the_bytes_of_encode(store):
    app, rows = store
    wire = WireEncoder(app.mapper, PSEUDONYMS)
    for row in rows:
        for head in HEADS:
            assert wire.encode(row, row.id, head) == _reference(app, row, head), (row.topic, row.originator_version)
    assert wire.indirect == 0  # every one read plainly: none went through the mapper
    assert {resolve_topic(row.topic).__name__ for row in rows} == {event_type.__name__ for event_type in EVENT_TYPES}


def _as_version(row: Notification, version: int) -> Notification:
    """The row as a store written by an older class version held it: without the fields the later upcasts add."""
    cls = resolve_topic(row.topic)
    later: dict[str, Any] = {}
    for step in range(version, cls.class_version):
        getattr(cls, f"upcast_v{step}_v{step + 1}")(later)  # the fields each later version added
    state = orjson.loads(row.state)
    for field in later:
        state.pop(field)
    state.pop("class_version")
    if version > 1:
        state["class_version"] = version
    return dataclasses.replace(row, state=orjson.dumps(state))


def test_events_stored_by_every_older_class_version_are_upcast_as_the_mapper_upcasts_them(store):
    app, rows = store
    wire = WireEncoder(app.mapper, PSEUDONYMS)
    upcast = set()
    for row in rows:
        cls = resolve_topic(row.topic)
        for version in range(1, getattr(cls, "class_version", 1)):
            old = _as_version(row, version)
            for head in HEADS:
                assert wire.encode(old, old.id, head) == _reference(app, old, head), (cls.__name__, version)
            upcast.add((cls.__name__, version))
    assert wire.indirect == 0
    versioned = {event_type.__name__ for event_type in EVENT_TYPES if getattr(event_type, "class_version", 1) > 1}
    assert {name for name, _ in upcast} == versioned
    assert {name for name, version in upcast if version == 1} == versioned  # the oldest, through every upcast
    assert any(version == 2 for _, version in upcast)  # and one of the middle versions: through the last upcast only


def test_an_encrypted_stores_rows_are_encoded_plainly_too():
    key = base64.b64encode(os.urandom(32)).decode()
    app = _store({"CIPHER_TOPIC": "eventsourcing.cipher:AESCipher", "CIPHER_KEY": key})
    rows = app.recorder.select_notifications(start=0, limit=100_000)
    # encrypted at rest: the client's reference, as the plain store's JSON holds it once, is in no row; the quoted
    # five bytes (a bare "K-1" turns up by chance in ~850 KB of ciphertext about one run in twenty)
    assert b'"K-1"' not in b"".join(row.state for row in rows)
    wire = WireEncoder(app.mapper, PSEUDONYMS)
    assert [wire.encode(row, row.id, None) for row in rows] == [_reference(app, row, None) for row in rows]
    assert wire.indirect == 0


def _with_state(row: Notification, **changes: Any) -> Notification:
    state = orjson.loads(row.state)
    state.update(changes)
    return dataclasses.replace(row, state=json.dumps(state, separators=(",", ":")).encode())  # any int, as json writes it


def _first(rows: list[Notification], name: str, **where: Any) -> Notification:
    return next(row for row in rows if row.topic.endswith(f".{name}")
                and all(orjson.loads(row.state).get(field) == value for field, value in where.items()))


def test_what_the_plain_reading_cannot_vouch_for_goes_through_the_mapper_and_encode(store):
    app, rows = store
    corrected = _first(rows, "EntryCorrected", field="site")
    unsure = [
        _with_state(corrected, corrected_value=2**70),  # orjson reads it as a float, json as an int
        _with_state(corrected, corrected_value=-(2**64)),
        _with_state(corrected, corrected_value={"_type_": "decimal_str", "_data_": "1.5"}),  # plainly a str, decoded 1.5
    ]
    wire = WireEncoder(app.mapper, PSEUDONYMS)
    for row in unsure:
        assert wire.encode(row, row.id, None) == _reference(app, row, None)
    assert wire.indirect == len(unsure)


def test_a_value_of_a_transcoding_the_store_does_not_know_raises_the_mappers_error(store):
    app, rows = store
    row = _with_state(_first(rows, "ClientRegistered"), sex={"_type_": "no_such_transcoding", "_data_": "x"})
    with pytest.raises(MapperDeserialisationError) as reference:
        _reference(app, row, None)
    with pytest.raises(MapperDeserialisationError) as plain:
        WireEncoder(app.mapper, PSEUDONYMS).encode(row, row.id, None)
    assert str(plain.value) == str(reference.value)


def test_a_state_that_does_not_fit_its_model_raises_encodes_contract_violation(store):
    app, rows = store
    row = _with_state(_first(rows, "ClientRegistered"), birth_year=1200)  # the contract takes 1900 to 2100
    with pytest.raises(ContractViolation) as reference:
        _reference(app, row, None)
    wire = WireEncoder(app.mapper, PSEUDONYMS)
    with pytest.raises(ContractViolation) as plain:
        wire.encode(row, row.id, None)
    assert str(plain.value) == str(reference.value)


class _Cluster:
    """What kafka-python's default partitioner reads of the cluster's metadata."""

    def __init__(self, topic: str, partitions: set[int]) -> None:
        self.topic, self.partitions = topic, partitions

    def topics(self) -> set[str]:
        return {self.topic}

    def partitions_for_topic(self, _: str) -> set[int]:
        return self.partitions

    def available_partitions_for_topic(self, _: str) -> set[int]:
        return self.partitions


def _producer(partitions: set[int], partitioner: object | None = None) -> Any:
    return SimpleNamespace(config={"partitioner": partitioner or DefaultPartitioner()}, partitions_for=lambda _: partitions)


def test_each_keys_partition_is_the_one_kafka_pythons_default_partitioner_gives_it(store):
    _, rows = store
    keys = [str(PSEUDONYMS.journey(row.originator_id)).encode() for row in rows] + [os.urandom(n) for n in range(40)]
    partitioner = DefaultPartitioner()
    cached = KeyPartitions()
    for partitions in ({0}, {0, 1, 2, 3}, set(range(6)), set(range(12)), {0, 2, 5, 7}):
        of = cached.of(_producer(partitions), "care.journey.v2")
        cluster = _Cluster("care.journey.v2", partitions)
        for key in keys * 2:  # the second time from the cache
            assert of(key) == partitioner.partition("care.journey.v2", key, key, None, None, cluster), (partitions, key)


def test_a_producer_with_another_partitioner_chooses_for_itself():
    of = KeyPartitions().of(_producer({0, 1, 2}, StickyPartitioner()), "care.journey.v2")  # even the default's subclass
    assert of(b"any key") is None


def test_the_cache_starts_again_when_the_topic_gets_more_partitions():
    cached = KeyPartitions()
    keys = [os.urandom(16) for _ in range(200)]
    before = [cached.of(_producer(set(range(4))), "t")(key) for key in keys]
    after = [cached.of(_producer(set(range(8))), "t")(key) for key in keys]
    assert max(before) < 4 <= max(after)
    cluster = _Cluster("t", set(range(8)))
    assert after == [DefaultPartitioner().partition("t", key, key, None, None, cluster) for key in keys]
