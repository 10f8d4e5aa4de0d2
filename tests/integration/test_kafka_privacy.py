"""The topic's privacy claims against a real broker, by the attacks of the review ("Nothing lost, nothing
forged", point 8): a dictionary over every client reference of the clinic's format finds no key, and free
text full of names, phone numbers and addresses never reaches the topic."""

from __future__ import annotations

import time
from typing import Any
from uuid import NAMESPACE_URL, uuid5

import pytest

from domain.events import event_id
from infra.config import Settings
from infra.kafka.relay import Relay
from services.bootstrap import bootstrap
from tests.integration.kafka_support import (
    CLIENTS,
    PII,
    PII_HISTORY,
    PSEUDONYM_KEY,
    header,
    read_topic,
    record_demo,
    record_pii_history,
)
from tests.support.clock import fixed_clock

pytestmark = pytest.mark.kafka

REFERENCES = [f"C-{number:05d}" for number in range(100_000)]  # the clinic's format, every one of them


def publish(url: str, kafka: Any) -> int:
    wired = bootstrap(Settings(database_url=url))
    relay = Relay(wired.app, wired.views, kafka, pseudonym_key=PSEUDONYM_KEY)
    try:
        return relay.publish_pending()
    finally:
        relay.close()
        wired.close()


def dictionary_attack(records: list[Any]) -> tuple[dict[str, str], float]:
    """Version 1's journey id of every reference (uuid5 under the public namespace, as the domain makes it) and its
    first event's ce_id, looked up among the keys, `ce_subject`s and `ce_id`s read: (what was found, seconds)."""
    seen = {record.key.decode() for record in records} | {header(record, "ce_subject") for record in records}
    ids = {header(record, "ce_id") for record in records}
    started = time.perf_counter()
    found = {}
    for reference in REFERENCES:
        journey = uuid5(NAMESPACE_URL, f"/care-continuum/clients/{reference}")
        if str(journey) in seen or str(event_id(journey, 1)) in ids:
            found[reference] = str(journey)
    return found, time.perf_counter() - started


def test_a_dictionary_over_every_client_reference_finds_no_key(kafka, tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    head = record_demo(url, clients=300)
    wired = bootstrap(Settings(database_url=url))
    try:
        journeys = {str(n.originator_id) for n in wired.app.recorder.select_notifications(start=0, limit=head)}
    finally:
        wired.close()
    assert publish(url, kafka) == head
    records = read_topic(kafka)

    found, seconds = dictionary_attack(records)

    assert len(records) == head
    assert len({record.key for record in records}) == len(journeys) == 300
    candidates = {str(uuid5(NAMESPACE_URL, f"/care-continuum/clients/{reference}")) for reference in REFERENCES}
    assert journeys <= candidates  # the attack covers every client: version 1's keys were all among its guesses
    assert found == {}, f"{len(found)} client references recovered from the topic in {seconds:.2f} s"


def test_names_phone_numbers_and_addresses_typed_anywhere_never_reach_the_topic(kafka, tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    wired = bootstrap(Settings(database_url=url), clock=fixed_clock)
    try:
        record_pii_history(wired.service)
    finally:
        wired.close()
    assert publish(url, kafka) == len(PII_HISTORY)
    records = read_topic(kafka)
    journeys = [uuid5(NAMESPACE_URL, f"/care-continuum/clients/{client}") for client in CLIENTS]
    forbidden = {*PII, *CLIENTS, *(str(journey) for journey in journeys), *(journey.hex for journey in journeys),
                 *(str(event_id(journey, version)) for journey in journeys for version in range(1, len(PII_HISTORY) + 1))}

    leaks = {}
    for record in records:
        text = " ".join([record.key.decode(), *(f"{name}={value.decode()}" for name, value in record.headers),
                         record.value.decode()])
        found = sorted(secret for secret in forbidden if secret in text)
        if found:
            leaks[f"{header(record, 'ce_type')} {header(record, 'ce_sequence')}"] = found

    assert len(records) == len(PII_HISTORY)
    assert not leaks
