"""The relay against a real broker: order per journey across partitions, outages, the CLI."""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import threading
import time
from collections import defaultdict
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.chain import global_links
from infra.config import Settings
from infra.kafka.clients import KafkaSettings, ensure_topics, producer
from infra.kafka.envelope import encode, kafka_headers
from infra.kafka.relay import Relay
from services.bootstrap import bootstrap
from services.cli import app
from tests.integration.kafka_support import (
    PSEUDONYM_KEY,
    PSEUDONYM_KEY_TEXT,
    PSEUDONYMS,
    header,
    read_topic,
    record_demo,
    wait_until,
)

pytestmark = pytest.mark.kafka


def test_events_of_each_journey_arrive_in_order_on_one_partition(kafka, tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    head = record_demo(url, clients=60)
    wired = bootstrap(Settings(database_url=url))
    relay = Relay(wired.app, wired.views, kafka, batch_size=250, pseudonym_key=PSEUDONYM_KEY)
    try:
        assert relay.publish_pending() == head
    finally:
        relay.close()
        wired.close()

    records = read_topic(kafka)
    sequences: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for record in records:  # in offset order within each partition
        journey = record.key.decode()
        sequences[journey].append(int(header(record, "ce_sequence")))
        partitions[journey].add(record.partition)
    assert len(records) == head
    assert {record.partition for record in records} == {0, 1, 2, 3}
    assert all(len(found) == 1 for found in partitions.values())
    assert all(versions == list(range(1, len(versions) + 1)) for versions in sequences.values())


class _Watched(Relay):
    """Notes, as each batch's position is recorded, how many objects the collector has been told to leave alone."""

    frozen: list[int]

    def _acknowledged(self, last: int) -> None:
        self.frozen.append(gc.get_freeze_count())
        super()._acknowledged(last)


def test_the_relay_keeps_its_collections_to_a_batch_and_gives_the_heap_back(kafka, tmp_path):
    """Between batches the relay freezes what is alive (`infra.heap.FrozenHeap`, as the importer and the projection
    runner do), so the collector scans the next batch's messages, not the process's heap again; when it returns,
    every object is the collector's again."""
    url = f"sqlite:///{tmp_path}/store.db"
    head = record_demo(url, clients=20)
    wired = bootstrap(Settings(database_url=url))
    relay = _Watched(wired.app, wired.views, kafka, batch_size=100, pseudonym_key=PSEUDONYM_KEY)
    relay.frozen = []
    gc.unfreeze()  # whatever an earlier test in this process left frozen
    try:
        assert relay.publish_pending() == head
        assert gc.get_freeze_count() == 0
    finally:
        relay.close()
        wired.close()
    assert len(relay.frozen) == -(-head // 100) >= 3
    assert relay.frozen[0] == 0  # the first batch is settled before anything is frozen
    assert all(count > 0 for count in relay.frozen[1:])
    assert len(read_topic(kafka)) == head


def test_the_relay_publishes_what_a_plain_producer_sends_of_encodes_messages_on_the_same_partitions(kafka, tmp_path):
    """The relay's hot path (messages read plainly from the stored JSON, each key's partition worked out once) against
    kafka-python's plain `send` of `encode`'s messages, partitioned by the library: the same records, byte for byte, in
    the same order on each partition."""
    url = f"sqlite:///{tmp_path}/store.db"
    head = record_demo(url, clients=30)
    wired = bootstrap(Settings(database_url=url))
    plain = dataclasses.replace(kafka, topic=f"{kafka.topic}.plain", dead_letter_topic=f"{kafka.topic}.plain.DLT")
    relay = Relay(wired.app, wired.views, kafka, batch_size=97, pseudonym_key=PSEUDONYM_KEY)
    try:
        assert relay.publish_pending() == head
        assert relay.wire.indirect == 0
        rows = wired.app.recorder.select_notifications(start=0, limit=head)
        with wired.views.transaction() as cursor:
            heads = global_links(cursor, 1, head)
        ensure_topics(plain, plain.topic)
        sender = producer(plain, client_id="plain")
        for row in rows:
            message = encode(wired.app.mapper.to_domain_event(row), row.id, heads.get(row.id), PSEUDONYMS)
            sender.send(plain.topic, key=message.key, value=message.value, headers=kafka_headers(message))
        sender.flush()
        sender.close()
    finally:
        relay.close()
        wired.close()

    def by_partition(records: list[Any]) -> dict[int, list[tuple[Any, ...]]]:
        found: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
        for record in sorted(records, key=lambda record: (record.partition, record.offset)):
            found[record.partition].append((record.key, record.value, tuple(record.headers)))
        return dict(found)

    relayed, sent = by_partition(read_topic(kafka)), by_partition(read_topic(plain))
    assert sum(map(len, relayed.values())) == head
    assert relayed == sent


def test_broker_down_while_events_are_recorded_then_up_loses_nothing(broker, kafka, tmp_path, caplog):
    if not broker.restartable:
        pytest.skip(f"a {broker.kind} broker is not stopped by the tests")
    caplog.set_level(logging.INFO, logger="continuum.relay")
    url = f"sqlite:///{tmp_path}/store.db"
    before = record_demo(url, clients=15, seed=1)
    settings = KafkaSettings(kafka.bootstrap_servers, kafka.topic, kafka.dead_letter_topic, partitions=4, send_timeout=3.0)
    wired = bootstrap(Settings(database_url=url))
    relay = Relay(wired.app, wired.views, settings, batch_size=200, retry_max=1.0, pseudonym_key=PSEUDONYM_KEY)
    stop = threading.Event()
    running = threading.Thread(target=relay.run, args=(stop, lambda timeout: time.sleep(min(timeout, 0.1)), 0.1))
    running.start()
    try:
        wait_until(lambda: relay.status().lag == 0, 30, "the first cohort is published")
        broker.stop()
        head = record_demo(url, clients=15, seed=2, ref_prefix="D")  # commands are accepted while the broker is away
        assert head > before
        wait_until(lambda: "unavailable" in caplog.text, 30, "the relay says the broker is unavailable")
        assert relay.status().position == before
        broker.start()
        wait_until(lambda: relay.status().lag == 0, 60, "the relay publishes what was recorded during the outage")
    finally:
        stop.set()
        running.join(timeout=30)
        wired.close()

    assert "publishing resumed" in caplog.text
    published = {int(header(record, "ce_position")) for record in read_topic(settings)}
    first = 1 if broker.keeps_log else before + 1  # a memory-only broker comes back empty
    assert set(range(first, head + 1)) <= published


def test_relay_command_publishes_and_status_shows_no_lag(kafka, tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    head = record_demo(url, clients=5)
    runner = CliRunner(env={"CONTINUUM_PSEUDONYM_KEY": PSEUDONYM_KEY_TEXT})
    options = ["--database-url", url, "--bootstrap-servers", kafka.bootstrap_servers, "--topic", kafka.topic]

    published = runner.invoke(app, ["relay", *options])
    again = runner.invoke(app, ["relay", *options])
    status = runner.invoke(app, ["status", "--json", "--database-url", url], env={"CONTINUUM_KAFKA_TOPIC": kafka.topic})

    assert published.exit_code == 0, published.output
    assert f"published {head} events to {kafka.topic}" in published.output
    assert "published 0 events" in again.output
    assert json.loads(status.stdout)["relay"] == {"topic": kafka.topic, "position": head, "head": head, "lag": 0}
    assert len(read_topic(kafka)) == head


def test_relay_command_with_no_broker_says_so_in_one_line(tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    record_demo(url, clients=1)

    result = CliRunner(env={"CONTINUUM_PSEUDONYM_KEY": PSEUDONYM_KEY_TEXT}).invoke(
        app, ["relay", "--database-url", url, "--bootstrap-servers", "127.0.0.1:1"],
    )

    assert result.exit_code == 2
    assert "Kafka at 127.0.0.1:1" in result.output
    assert "Traceback" not in result.output
