"""The projection worker under attack, against a real broker, on SQLite and PostgreSQL read sides:

- a poison message (nested 5,000 deep, an unknown CloudEvents version, a sequence too large for a column,
  an event a projection fails on) goes to the dead-letter topic once, and the worker carries on;
  a lost database stops the worker, and its restart dead-letters nothing twice;
- a forged message with a far `ce_sequence` (and the matching `ce_id`) is dead-lettered as a sequence
  gap, and the journey's real events are all applied;
- stored offsets that no longer fit the topic (fewer partitions, offsets beyond the end, a topic
  recreated with other records) stop the worker with a clear error; `consume --rebuild` starts over.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from typer.testing import CliRunner

from domain.events import event_id
from infra.config import Settings, parse_database_url
from infra.kafka.clients import KafkaSettings, producer
from infra.kafka.envelope import encode, kafka_headers
from infra.kafka.relay import Relay
from infra.views import Cursor, open_views
from projections.base import Projection
from projections.catalogue import all_projections
from services.bootstrap import Continuum, bootstrap
from services.cli import app
from services.projection_worker import ProjectionWorker
from tests.integration.kafka_support import PSEUDONYM_KEY, PSEUDONYMS, header, projection_dump, read_topic, record_demo

pytestmark = pytest.mark.kafka

Message = tuple[list[tuple[str, Any]], bytes, bytes]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Continuum]:
    """A 60-client demo store with its own projections (what the read side must equal); each test
    publishes it to a topic of its own."""
    url = f"sqlite:///{tmp_path_factory.mktemp('faults')}/store.db"
    record_demo(url, clients=60)
    wired = bootstrap(Settings(database_url=url))
    wired.runner.catch_up()
    yield wired
    wired.close()


@pytest.fixture(params=["sqlite", "postgres"])
def read_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/read.db"
    return str(request.getfixturevalue("pg_url"))


@dataclasses.dataclass
class Journey:
    """The demo's longest journey: its events in order and the notification id of each."""

    events: list[Any]
    positions: list[int]

    @property
    def pseudonym(self) -> Any:
        return PSEUDONYMS.journey(self.events[0].originator_id)

    @property
    def key(self) -> bytes:
        return str(self.pseudonym).encode()


@pytest.fixture(scope="module")
def journey(store: Continuum) -> Journey:
    head = store.app.recorder.max_notification_id() or 0
    journeys: dict[Any, Journey] = {}
    for notification in store.app.recorder.select_notifications(start=1, limit=head):
        event = store.app.mapper.to_domain_event(notification)
        journeys.setdefault(event.originator_id, Journey([], [])).events.append(event)
        journeys[event.originator_id].positions.append(notification.id)
    longest = max(journeys.values(), key=lambda j: len(j.events))
    assert len(longest.events) >= 30
    return longest


def publish(store: Continuum, kafka: KafkaSettings, limit: int | None = None) -> int:
    relay = Relay(store.app, store.views, kafka, pseudonym_key=PSEUDONYM_KEY)
    try:
        return relay.publish_pending(limit=limit)
    finally:
        relay.close()


def send(kafka: KafkaSettings, messages: list[Message]) -> None:
    """In order, in one produce batch where they share a partition."""
    sender = producer(kafka, client_id="attacker")
    try:
        futures = [sender.send(kafka.topic, key=key, value=value, headers=headers) for headers, key, value in messages]
        sender.flush(timeout=10)
        for future in futures:
            future.get(timeout=10)
    finally:
        sender.close()


def worker(read_url: str, kafka: KafkaSettings, group: str, projections: list[Projection] | None = None) -> ProjectionWorker:
    views = open_views(parse_database_url(read_url))
    return ProjectionWorker(views, projections or all_projections(), kafka, group=group, name="worker-1")


def run(read_url: str, kafka: KafkaSettings, group: str, projections: list[Projection] | None = None) -> Any:
    consumer = worker(read_url, kafka, group, projections)
    try:
        return consumer.run(threading.Event(), until_caught_up=True)
    finally:
        consumer.views.close()


def read_side_dump(read_url: str) -> dict[str, list[tuple[Any, ...]]]:
    views = open_views(parse_database_url(read_url))
    try:
        return masked(projection_dump(views))
    finally:
        views.close()


def store_dump(store: Continuum) -> dict[str, list[tuple[Any, ...]]]:
    return masked(projection_dump(store.views, as_published=True))


def masked(dump: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """The reason of a change of track is withheld from the topic too (`projection_dump` masks steps' only)."""
    dump["step_transitions"] = [(*row[:-1], "*") if row[2] == "track_change" else row for row in dump["step_transitions"]]
    return dump


def replaced(headers: list[tuple[str, Any]], **values: Any) -> list[tuple[str, Any]]:
    return [(name, values.get(name, value)) for name, value in headers]


class Fragile(Projection):
    """A projection with a bug: it raises RuntimeError on one event (a journey's version)."""

    name = "fragile"
    handles = ()
    tables = ()
    fails_on: ClassVar[tuple[Any, int] | None] = None

    def __init__(self) -> None:
        self.topics = frozenset(topic for projection in all_projections() for topic in projection.topics)

    def ddl(self, dialect: str) -> list[str]:
        return []

    def process(self, event: Any, cursor: Cursor, position: int) -> None:
        if (event.originator_id, event.originator_version) == self.fails_on:
            msg = "a bug in a projection"
            raise RuntimeError(msg)


class Unplugged(Fragile):
    """The read-side database goes away while one event is applied (once)."""

    name = "unplugged"
    dialect = "sqlite"

    def process(self, event: Any, cursor: Cursor, position: int) -> None:
        if (event.originator_id, event.originator_version) == self.fails_on:
            type(self).fails_on = None
            if self.dialect == "postgres":
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            raise sqlite3.OperationalError("disk I/O error")


# -- 2. a poison message kills the worker ------------------------------------------------------------


def test_poison_messages_go_to_the_dead_letter_topic_once_and_the_worker_carries_on(store, journey, kafka, read_url):
    first, last = journey.events[0], journey.events[-1]
    good = encode(first, journey.positions[0], None, PSEUDONYMS)
    huge = 10**30
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000  # 25 KB, nested 5,000 deep
    before = [
        (kafka_headers(good), journey.key, deep),
        (replaced(kafka_headers(good), ce_specversion=b"2.0"), journey.key, good.value),  # no such CloudEvents version
        (replaced(kafka_headers(good), ce_type=b"\xff\xfe"), journey.key, good.value),  # not UTF-8
        (replaced(kafka_headers(good), ce_sequence=str(huge).encode(), ce_id=str(event_id(journey.pseudonym, huge)).encode()),
         journey.key, good.value),  # a version no column holds
    ]
    send(kafka, before)
    head = publish(store, kafka)
    next_one = dataclasses.replace(last, originator_version=last.originator_version + 1)
    Fragile.fails_on = (journey.pseudonym, next_one.originator_version)  # the worker knows the journey by its pseudonym
    after = encode(next_one, head + 1, None, PSEUDONYMS)
    send(kafka, [(kafka_headers(after), after.key, after.value)])

    counts = run(read_url, kafka, "poison", [Fragile(), *all_projections()])
    dead = read_topic(kafka, kafka.dead_letter_topic)

    assert counts.dead_lettered == 5 == len(dead)
    assert counts.applied == head
    reasons = sorted(header(record, "dlt_reason") or "" for record in dead)
    assert any("nested deeper than" in reason for reason in reasons), reasons
    assert any("a projection refused it: RuntimeError: a bug in a projection" in reason for reason in reasons), reasons
    assert read_side_dump(read_url) == store_dump(store)

    # a restart: nothing is dead-lettered again, a new poison is dead-lettered once
    send(kafka, [(kafka_headers(good), journey.key, deep)])
    again = run(read_url, kafka, "poison", [Fragile(), *all_projections()])

    assert (again.applied, again.dead_lettered) == (0, 1)
    assert len(read_topic(kafka, kafka.dead_letter_topic)) == 6


def test_a_lost_database_stops_the_worker_and_its_restart_dead_letters_nothing_twice(store, journey, kafka, read_url):
    first = journey.events[0]
    good = encode(first, journey.positions[0], None, PSEUDONYMS)
    poisons = [
        ([("ce_specversion", b"1.0")], journey.key, b"{}"),
        (kafka_headers(good), journey.key, b'{"occurred_at": "not a time"}'),
        (replaced(kafka_headers(good), ce_id=str(uuid.uuid4()).encode()), journey.key, good.value),
    ]
    send(kafka, [*poisons, (kafka_headers(good), good.key, good.value)])  # in one batch with the journey's first event
    publish(store, kafka)
    Unplugged.dialect = "sqlite" if parse_database_url(read_url).kind == "sqlite" else "postgres"
    Unplugged.fails_on = (journey.pseudonym, first.originator_version)

    with pytest.raises((sqlite3.OperationalError, psycopg.OperationalError)):
        run(read_url, kafka, "unplugged", [*all_projections(), Unplugged()])
    counts = run(read_url, kafka, "unplugged")
    dead = read_topic(kafka, kafka.dead_letter_topic)

    assert len(dead) == len(poisons)
    assert sorted(int(header(record, "dlt_original_offset") or -1) for record in dead) == list(range(len(poisons)))
    assert counts.dead_lettered == len(poisons)  # the batch that stopped was not committed, nor its dead letters sent
    assert counts.duplicates == 1  # the journey's first event, published again by the relay
    assert read_side_dump(read_url) == store_dump(store)


# -- 3. a forged message drops real ones -------------------------------------------------------------


def test_a_forged_sequence_is_dead_lettered_and_the_journeys_real_events_are_applied(store, journey, kafka, read_url):
    cut = 10  # the forgery comes after the journey's 10th event, claiming the version of its last
    publish(store, kafka, limit=journey.positions[cut - 1])
    claimed = journey.events[-1].originator_version
    forged = encode(dataclasses.replace(journey.events[cut], originator_version=claimed), journey.positions[cut], None, PSEUDONYMS)
    send(kafka, [(kafka_headers(forged), forged.key, forged.value)])
    publish(store, kafka)
    copy = encode(journey.events[4], journey.positions[4], None, PSEUDONYMS)  # an exact repeat stays a duplicate
    send(kafka, [(kafka_headers(copy), copy.key, copy.value)])
    head = store.app.recorder.max_notification_id() or 0

    counts = run(read_url, kafka, "forgery")
    dead = read_topic(kafka, kafka.dead_letter_topic)

    assert counts.applied == head
    assert counts.duplicates == 1
    assert counts.dead_lettered == 1 == len(dead)
    assert counts.out_of_sequence == 1
    assert header(dead[0], "dlt_reason") == f"sequence gap: expected {cut + 1}, got {claimed}"
    assert header(dead[0], "ce_id") == str(event_id(journey.pseudonym, claimed))
    assert read_side_dump(read_url) == store_dump(store)


# -- 4. offsets that no longer fit -------------------------------------------------------------------


def recreate(kafka: KafkaSettings, partitions: int) -> None:
    """Delete the topic and create it again, empty, with `partitions` partitions."""
    admin = KafkaAdminClient(bootstrap_servers=kafka.servers, client_id="operator")
    try:
        admin.delete_topics([kafka.topic])
        deadline = time.monotonic() + 30
        while True:
            try:
                if kafka.topic not in admin.list_topics():
                    admin.create_topics([NewTopic(kafka.topic, partitions, 1)])
                    break
            except TopicAlreadyExistsError:  # still being deleted
                pass
            assert time.monotonic() < deadline, f"could not recreate {kafka.topic}"
            time.sleep(0.2)
    finally:
        admin.close()


def forget_relay_position(store: Continuum, kafka: KafkaSettings) -> None:
    with store.views.transaction() as cursor:
        cursor.execute("DELETE FROM relay_positions WHERE name = ?", (kafka.topic,))


def consume(read_url: str, kafka: KafkaSettings, group: str, *options: str) -> Any:
    return CliRunner().invoke(app, [
        "consume", "--database-url", read_url, "--bootstrap-servers", kafka.bootstrap_servers, "--topic", kafka.topic,
        "--group", group, *options,
    ])


def test_a_topic_back_with_fewer_partitions_stops_the_worker_and_rebuild_starts_over(store, kafka, read_url):
    head = publish(store, kafka)
    assert consume(read_url, kafka, "shrunk").exit_code == 0
    recreate(kafka, partitions=2)  # the broker came back with fewer partitions, and everything again
    forget_relay_position(store, kafka)
    assert publish(store, kafka) == head

    stopped = consume(read_url, kafka, "shrunk")

    assert stopped.exit_code == 2, stopped.output
    assert "Traceback" not in stopped.output
    [line] = [line for line in stopped.stderr.splitlines() if line.startswith("error:")]
    assert kafka.topic in line
    assert "2 partitions" in line
    assert "4" in line
    assert "--rebuild" in line

    rebuilt = consume(read_url, kafka, "shrunk", "--rebuild")

    assert rebuilt.exit_code == 0, rebuilt.output
    assert f"applied {head} events" in rebuilt.stdout
    assert read_side_dump(read_url) == store_dump(store)


def test_stored_offsets_beyond_the_end_of_the_topic_stop_the_worker(store, kafka, read_url):
    head = publish(store, kafka)
    assert run(read_url, kafka, "beyond").applied == head
    recreate(kafka, partitions=4)  # same partitions, but only the first tenth of the events came back
    forget_relay_position(store, kafka)
    publish(store, kafka, limit=head // 10)

    with pytest.raises(Exception, match="beyond") as stopped:
        run(read_url, kafka, "beyond")

    assert type(stopped.value).__name__ == "OffsetsMisfit"
    assert kafka.topic in str(stopped.value)


def test_a_recreated_topic_with_other_records_stops_the_worker(store, kafka, read_url):
    head = store.app.recorder.max_notification_id() or 0
    publish(store, kafka, limit=head // 5)
    assert run(read_url, kafka, "recreated").applied == head // 5
    recreate(kafka, partitions=4)  # a memory-only broker forgot the topic; the relay went on from its position
    publish(store, kafka)

    with pytest.raises(Exception, match="recreated") as stopped:
        run(read_url, kafka, "recreated")

    assert type(stopped.value).__name__ == "OffsetsMisfit"
    assert kafka.topic in str(stopped.value)
