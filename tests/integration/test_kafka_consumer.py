"""Projection workers against a real broker: a consumer group splits the partitions, and a poison
message goes to the dead-letter topic while the worker carries on."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import uuid
from collections import Counter

import pytest

from infra.config import Settings, parse_database_url
from infra.kafka.clients import producer
from infra.kafka.envelope import encode, kafka_headers
from infra.kafka.relay import Relay
from infra.views import open_views
from projections.catalogue import all_projections
from services import example_consumer
from services.bootstrap import bootstrap
from services.projection_worker import ProjectionWorker
from tests.integration.kafka_support import (
    PSEUDONYM_KEY,
    PSEUDONYMS,
    header,
    projection_dump,
    read_topic,
    record_demo,
    wait_until,
)

pytestmark = pytest.mark.kafka


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    record_demo(url, clients=80)
    wired = bootstrap(Settings(database_url=url))
    wired.runner.catch_up()
    yield wired
    wired.close()


def test_two_workers_in_one_group_split_the_partitions_and_build_the_same_tables(store, kafka, tmp_path):
    url = f"sqlite:///{tmp_path}/read.db"
    workers = [
        ProjectionWorker(open_views(parse_database_url(url)), all_projections(), kafka, group="split", name=f"worker-{n}")
        for n in (1, 2)
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=worker.run, args=(stop,)) for worker in workers]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: all(w.assignment() for w in workers) and not set.intersection(*(w.assignment() for w in workers)),
                   60, "both workers hold partitions")
        relay = Relay(store.app, store.views, kafka, pseudonym_key=PSEUDONYM_KEY)
        head = relay.publish_pending()
        relay.close()
        wait_until(lambda: sum(w.counts.applied for w in workers) >= head, 60, "the workers have applied every event")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    assert sorted(workers[0].counts.partitions | workers[1].counts.partitions) == [0, 1, 2, 3]
    assert not workers[0].counts.partitions & workers[1].counts.partitions
    assert all(worker.counts.applied > 0 for worker in workers)
    assert sum(worker.counts.applied for worker in workers) == head
    assert projection_dump(workers[0].views) == projection_dump(store.views, as_published=True)


def test_a_poison_message_goes_to_the_dead_letter_topic_and_the_worker_carries_on(store, kafka, tmp_path):
    relay = Relay(store.app, store.views, kafka, pseudonym_key=PSEUDONYM_KEY)
    head = relay.publish_pending()
    relay.close()
    registered = store.app.mapper.to_domain_event(store.app.recorder.select_notifications(start=0, limit=1)[0])
    good = encode(registered, 1, None, PSEUDONYMS)
    journey = good.key
    last = store.app.recorder.select_events(registered.originator_id, desc=True, limit=1)[0].originator_version
    twice = encode(dataclasses.replace(registered, originator_version=last + 1), 1, None, PSEUDONYMS)  # a second registration, next in sequence
    poisons = [
        ([("ce_specversion", b"1.0")], journey, b"{}"),  # no ce_id, ce_type or ce_source
        (kafka_headers(good), journey, b'{"occurred_at": "not a time"}'),
        ([(k, b"org.carecontinuum.journey.ClientDischargedToMars.v2" if k == "ce_type" else v) for k, v in kafka_headers(good)],
         journey, good.value),
        (kafka_headers(good), str(uuid.uuid4()).encode(), good.value),  # a ce_id that is not this journey's
        (kafka_headers(twice), twice.key, twice.value),  # decodes, but the census refuses it
    ]
    send = producer(kafka, client_id="poisoner")
    for headers, key, value in poisons:
        send.send(kafka.topic, key=key, value=value, headers=headers).get(timeout=10)
    send.close()

    target = open_views(parse_database_url(f"sqlite:///{tmp_path}/read.db"))
    worker = ProjectionWorker(target, all_projections(), kafka, group="poison", name="worker-1")
    counts = worker.run(threading.Event(), until_caught_up=True)
    dead = read_topic(kafka, kafka.dead_letter_topic)

    assert counts.dead_lettered == len(poisons) == len(dead)
    assert counts.applied == head
    reasons = sorted(header(record, "dlt_reason") for record in dead)
    assert any("not a CloudEvents binary-mode message" in reason for reason in reasons)
    assert any("does not fit org.carecontinuum.journey.ClientRegistered.v2: occurred_at" in reason for reason in reasons)
    assert any("unknown event type 'org.carecontinuum.journey.ClientDischargedToMars.v2'" in reason for reason in reasons)
    assert any("is not the id of journey" in reason for reason in reasons)
    assert any("a projection refused it: IntegrityError" in reason for reason in reasons)
    for record in dead:
        assert header(record, "dlt_original_topic") == kafka.topic
        assert header(record, "dlt_consumer_group") == "poison"
        assert int(header(record, "dlt_original_offset")) >= 0
        assert header(record, "dlt_original_partition") == str(record.partition)
    assert projection_dump(target) == projection_dump(store.views, as_published=True)
    target.close()


def test_the_example_consumer_counts_each_admission_once(store, kafka, tmp_path):
    relay = Relay(store.app, store.views, kafka, pseudonym_key=PSEUDONYM_KEY)
    relay.publish_pending()
    relay.close()
    database = str(tmp_path / "admissions.db")

    first = example_consumer.run(kafka.bootstrap_servers, "example", database, topic=kafka.topic, until_idle=True)
    again = example_consumer.run(kafka.bootstrap_servers, "example-again", database, topic=kafka.topic, until_idle=True)

    with store.views.transaction() as cursor:
        cursor.execute("SELECT details FROM audit_entries WHERE event_type = 'AdmittedToLevel'")
        expected = Counter(json.loads(details)["level"] for (details,) in cursor.fetchall())
    with sqlite3.connect(database) as db:
        counted = dict(db.execute("SELECT level, admissions FROM admissions").fetchall())
    assert first == len(read_topic(kafka))
    assert again == 0  # a second group reads everything again; every ce_id is already applied
    assert counted == dict(expected)


def test_relay_and_worker_on_postgresql_build_the_same_tables(pg_url, kafka):
    record_demo(pg_url, clients=30)
    wired = bootstrap(Settings(database_url=pg_url))
    read_url = pg_url.replace("?schema=", "?schema=read_")
    target = open_views(parse_database_url(read_url))
    try:
        wired.runner.catch_up()
        relay = Relay(wired.app, wired.views, kafka, pseudonym_key=PSEUDONYM_KEY)
        head = relay.publish_pending()
        relay.close()
        counts = ProjectionWorker(target, all_projections(), kafka, group="pg", name="worker-1").run(threading.Event(), until_caught_up=True)

        assert counts.applied == head
        assert projection_dump(target) == projection_dump(wired.views, as_published=True)
    finally:
        with target.transaction() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{target.database.schema}" CASCADE')
        target.close()
        wired.close()
