"""The relay's encoder process: the same messages as encoding in the relay's thread, on both databases, and a mapper
built without a database that reads an encrypted store's rows."""

from __future__ import annotations

import base64
import os
from dataclasses import replace

import pytest

from infra.config import Settings
from services.bootstrap import bootstrap, store_mapper
from services.commands import parse_command
from services.journeys import CareContinuum, JourneyService
from tests.integration.kafka_support import PSEUDONYM_KEY, read_topic, record_demo
from tests.support.clock import fixed_clock
from tests.unit.test_kafka_contract import ACTOR, HISTORY  # the hand-written history of every event type

pytestmark = pytest.mark.kafka


def _published(kafka, topic):
    return sorted((r.key, r.value, tuple(r.headers)) for r in read_topic(kafka, topic))


def test_a_relay_encoding_in_its_own_process_publishes_what_one_encoding_in_its_thread_does(kafka, database_url):
    head = record_demo(database_url, clients=20)
    wired = bootstrap(Settings(database_url=database_url))
    try:
        counts = {}
        for encoder in ("process", "thread"):
            settings = replace(kafka, topic=f"{kafka.topic}.{encoder}", dead_letter_topic=f"{kafka.topic}.{encoder}.DLT")
            relay = wired.relay(settings, pseudonym_key=PSEUDONYM_KEY, encoder=encoder)
            assert (relay.encoder is not None) is (encoder == "process")
            relay.batch_size = 97  # several batches in flight one after another
            try:
                counts[encoder] = relay.publish_pending()
            finally:
                relay.close()
    finally:
        wired.close()
    assert counts == {"process": head, "thread": head}
    in_process, in_thread = (_published(kafka, f"{kafka.topic}.{e}") for e in ("process", "thread"))
    assert len(in_process) == head
    assert in_process == in_thread


def test_the_encoders_mapper_reads_rows_the_store_encrypted():
    key = base64.b64encode(os.urandom(32)).decode()
    store = CareContinuum(env={"PERSISTENCE_MODULE": "eventsourcing.popo", "CIPHER_TOPIC": "eventsourcing.cipher:AESCipher",
                               "CIPHER_KEY": key})
    service = JourneyService(store, clock=fixed_clock)
    for number, (_, data) in enumerate(HISTORY, start=1):
        assert service.execute(parse_command({"id": f"enc-{number}", **data}), ACTOR).ok
    rows = store.recorder.select_notifications(start=0, limit=1000)
    assert b'"K-1"' not in b"".join(row.state for row in rows)  # encrypted at rest (quoted: a bare "K-1" can occur by chance)
    decoded = [store_mapper(key).to_domain_event(row) for row in rows]
    assert decoded == [store.mapper.to_domain_event(row) for row in rows]
    with pytest.raises(Exception):  # noqa: B017 - the library's cipher error, whichever it raises
        store_mapper(None).to_domain_event(rows[0])
