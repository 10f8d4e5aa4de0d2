"""The topic's privacy claims, attacked without a broker (`tests/integration/test_kafka_privacy.py` does it
through one):

- no client reference, and nothing an attacker can compute from one without the pseudonym key (its
  `uuid5` journey id, the ids version 1 derived from that), is in any message key, header or value;
- no name, phone number or address typed into any free-text field reaches the topic: sites are keyed
  codes, substances, analytes and roles closed vocabularies, the rest withheld;
- the relay's key is a secret of its own: required, never echoed.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import pytest
from typer.testing import CliRunner

from domain import corrections
from domain.consent import ALL, RECORD_KINDS
from domain.events import EVENT_TYPES, event_id, event_name
from domain.journey import ClientJourney
from infra.config import ConfigurationError, Settings, load_settings
from infra.kafka.contract import (
    ANALYTES,
    CODED,
    MODELS,
    PSEUDONYMISED,
    SUBSTANCES,
    WITHHELD,
    RecordKindCode,
    analyte_code,
    analyte_results,
    correction_published,
    substance_code,
    substance_codes,
)
from infra.kafka.envelope import Pseudonyms, configured_pseudonyms, decode, encode, kafka_headers
from services.bootstrap import bootstrap
from services.cli import app
from services.journeys import CareContinuum, JourneyService
from tests.integration.kafka_support import CLIENTS, PII, PII_HISTORY, PSEUDONYMS, record_pii_history
from tests.support.clock import fixed_clock


@pytest.fixture(scope="module")
def pii_events() -> list[tuple[int, Any]]:
    """PII_HISTORY recorded in memory: every event type, free text full of names, phone numbers and addresses."""
    app = CareContinuum(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    record_pii_history(JourneyService(app, clock=fixed_clock))
    events = [(n.id, app.mapper.to_domain_event(n)) for n in app.recorder.select_notifications(start=0, limit=1000)]
    assert {event_name(event) for _, event in events} == {event_type.__name__ for event_type in EVENT_TYPES}
    return events


def linkable_ids(client_ref: str, versions: int, clinic_ids: list[str]) -> set[str]:
    """What anyone can compute from a client reference without a key: version 1's journey id (the key), its ce_ids,
    its session and specimen pseudonyms, as text and as hex."""
    journey = ClientJourney.create_id(client_ref)
    assert journey == uuid5(NAMESPACE_URL, f"/care-continuum/clients/{client_ref}")
    ids = [journey, *(event_id(journey, v) for v in range(1, versions + 1))]
    ids += [uuid5(journey, f"{kind}:{clinic_id}") for kind in ("session", "specimen") for clinic_id in clinic_ids]
    return {text for uuid in ids for text in (str(uuid), uuid.hex)}


def message_text(message: Any) -> str:
    return " ".join([(message.key or b"").decode(), *(f"{k}={v.decode()}" for k, v in message.headers.items()),
                     message.value.decode()])


def test_no_name_phone_number_address_client_reference_or_computable_id_reaches_the_topic(pii_events):
    clinic_ids = [str(getattr(event, f"{PSEUDONYMISED[event_name(event)]}_id")) for _, event in pii_events
                  if event_name(event) in PSEUDONYMISED]
    versions = max(event.originator_version for _, event in pii_events)
    forbidden = {*PII, *CLIENTS, *(i for client in CLIENTS for i in linkable_ids(client, versions, clinic_ids))}

    leaks = {}
    for position, event in pii_events:
        text = message_text(encode(event, position, "ab" * 32, PSEUDONYMS))
        found = sorted(secret for secret in forbidden if secret in text)
        if found:
            leaks[f"{event_name(event)} v{event.originator_version}"] = found

    assert not leaks


def test_what_the_topic_says_instead(pii_events):
    """Sites as keyed codes, substances and analytes as classes, the role coded, the alumni programme and activity
    withheld, a correction of a withheld field without its values, a correction of a site with codes."""
    published = {}
    for position, event in pii_events:
        message = encode(event, position, None, PSEUDONYMS)
        published[(event_name(event), event.originator_version, message.key)] = decode(kafka_headers(message), message.key,
                                                                                       message.value)[1]
    by_type: dict[str, list[Any]] = {}
    for (name, _, _), event in published.items():
        by_type.setdefault(name, []).append(event)

    home, flat = PSEUDONYMS.site(PII_HISTORY[0][1]["site"]), PSEUDONYMS.site(PII_HISTORY[17][1]["site"])
    assert [e.site for e in by_type["ClientRegistered"]] == [home, flat]
    assert re.fullmatch(r"site-[0-9a-f]{8}", home)
    assert home != flat
    assert by_type["WithdrawalManagementStarted"][0].substances == ["other", "opioids"]
    [result] = by_type["DrugTestResulted"]
    assert (result.substances, result.expected_medications) == ({"other": "positive", "fentanyl": "positive"}, ["other"])
    assert {e.recorded_by.role for events in by_type.values() for e in events} == {"other"}
    assert by_type["EnrolledInAlumni"][0].program == by_type["AlumniActivityAttended"][0].activity == "(not published)"
    activity, reason, site, sex = by_type["EntryCorrected"]
    assert (activity.previous_value, activity.corrected_value) == (reason.previous_value, reason.corrected_value) == (None, None)
    assert (site.previous_value, site.corrected_value) == (flat, home)
    assert (sex.previous_value, sex.corrected_value) == ("male", "other")


def test_the_pseudonyms_are_keyed_uuids_that_nothing_else_gives():
    journey = ClientJourney.create_id("C-00042")
    other = Pseudonyms(b"another deployment's key".ljust(32, b"."))
    pseudonym = PSEUDONYMS.journey(journey)

    assert pseudonym == PSEUDONYMS.journey(journey)  # stable: every relay with the key publishes the same
    assert pseudonym != other.journey(journey)
    assert (pseudonym.version, pseudonym.variant) == (8, "specified in RFC 4122")
    assert pseudonym not in (journey, uuid5(NAMESPACE_URL, "C-00042"), uuid5(journey, "journey"))
    assert PSEUDONYMS.of(pseudonym, "specimen", "C-00042-U001") != other.of(pseudonym, "specimen", "C-00042-U001")
    assert PSEUDONYMS.of(pseudonym, "specimen", "x") != PSEUDONYMS.of(pseudonym, "session", "x")
    assert PSEUDONYMS.site("north") == PSEUDONYMS.site("north") != other.site("north")
    assert repr(PSEUDONYMS) == "Pseudonyms(key=<hidden>)"
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Pseudonyms(b"short")


def test_free_text_maps_to_closed_vocabularies():
    assert [substance_code(t) for t in ("Heroin", " crack  cocaine ", "ALCOHOL", "fentanyl", "weed from Jane", "")] == [
        "opioids", "stimulants", "alcohol", "fentanyl", "other", "other"]
    assert substance_codes(["heroin", "oxycodone", "Jane Doe, 555-0142"]) == ["opioids", "other"]
    assert [analyte_code(a) for a in ("ETG", "6-MAM", "kratom", "buprenorphine", "John's pills")] == [
        "etg", "6-mam", "mitragynine", "buprenorphine", "other"]
    assert analyte_results({"a": "negative", "b": "positive", "c": "negative", "thc": "negative"}) == {
        "other": "positive", "thc": "negative"}
    assert set(SUBSTANCES) >= {"opioids", "fentanyl", "alcohol", "stimulants", "cannabis", "benzodiazepines", "other"}
    assert "other" in ANALYTES
    assert set(RecordKindCode.__args__) == {ALL, *RECORD_KINDS}


def test_every_free_text_field_is_withheld_coded_or_a_keyed_id():
    """A text field of the domain is published as typed only when the contract closes it (a vocabulary, a name of the
    catalogue); the command id is withheld from every event, the actor's role coded, a correction's values checked below."""
    elsewhere = {"originator_topic", "command_id", "previous_value", "corrected_value"}
    for event_class in EVENT_TYPES:
        name = event_class.__name__
        for field in dataclasses.fields(event_class):
            if "str" not in str(field.type) or field.name in elsewhere:
                continue
            handled = (*WITHHELD.get(name, ()), *CODED.get(name, ()), f"{PSEUDONYMISED.get(name)}_id")
            assert field.name in handled or _closed(name, field.name), f"{name}.{field.name} is text published as typed"


def _closed(name: str, field: str) -> bool:
    """A field the contract publishes from a closed vocabulary (an enum, a constant or a pattern of a name)."""
    schema = MODELS[name].model_json_schema()["properties"].get(field, {})
    options = [schema, *schema.get("anyOf", [])]
    return any(("enum" in o.get("items", o) or "pattern" in o.get("items", o)) for o in options)


def test_a_correction_of_free_text_never_publishes_its_values():
    for event_type, fields in corrections.CORRECTABLE.items():
        for field, parse in fields.items():
            if parse in (corrections._text, corrections._optional_text):
                assert not correction_published(event_type, field) or field in ("site", "sex"), f"{event_type}.{field}"


def test_without_the_key_nothing_is_encoded_and_the_relay_refuses_to_start(monkeypatch, tmp_path, pii_events):
    monkeypatch.delenv("CONTINUUM_PSEUDONYM_KEY", raising=False)
    position, event = pii_events[0]
    with pytest.raises(ConfigurationError, match="CONTINUUM_PSEUDONYM_KEY is not set") as refused:
        encode(event, position, None)
    assert "continuum keygen" in str(refused.value)
    assert "\n" not in str(refused.value)

    url = f"sqlite:///{tmp_path}/store.db"
    bootstrap(Settings(database_url=url)).close()  # a store, empty
    result = CliRunner().invoke(app, ["relay", "--database-url", url, "--bootstrap-servers", "127.0.0.1:1"])

    assert result.exit_code == 2, result.output
    assert "CONTINUUM_PSEUDONYM_KEY is not set" in result.output
    assert "same value for every relay" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("value", ["not base64, Jane Doe 555-0142", base64.b64encode(b"sixteen byte key").decode()])
def test_a_bad_key_is_refused_without_echoing_it(monkeypatch, value):
    monkeypatch.setenv("CONTINUUM_PSEUDONYM_KEY", value)
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    assert "CONTINUUM_PSEUDONYM_KEY" in str(refused.value)
    assert value not in str(refused.value)
    assert "continuum keygen" in str(refused.value)


def test_the_configured_key_is_the_one_used(monkeypatch):
    key = bytes(range(32))
    monkeypatch.setenv("CONTINUUM_PSEUDONYM_KEY", base64.b64encode(key).decode())
    journey = UUID(int=42)
    assert configured_pseudonyms().journey(journey) == Pseudonyms(key).journey(journey)


def test_the_relay_refuses_a_topic_named_for_another_contract_version():
    from infra.kafka.clients import KafkaSettings
    from infra.kafka.relay import Relay

    with pytest.raises(ConfigurationError, match=r"topic care.journey.v1 is named for contract version 1.*care.journey.v2"):
        Relay(None, None, KafkaSettings("127.0.0.1:1", "care.journey.v1", "care.journey.v1.DLT"), pseudonym_key=b"k" * 32)  # type: ignore[arg-type]
