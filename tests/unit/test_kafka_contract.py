"""The published contract without a broker: envelope, privacy, schemas (and their committed copies)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from domain.events import EVENT_TYPES, event_id, event_name
from domain.values import Actor
from infra.kafka.contract import MODELS, PSEUDONYMISED, WITHHELD
from infra.kafka.envelope import NOT_PUBLISHED, PoisonMessage, decode, encode, encode_with_sdk, kafka_headers
from infra.kafka.schemas import asyncapi_document, event_schemas, write_schemas
from services.demo import cohort_lines
from services.importer import import_lines
from services.journeys import CareContinuum, JourneyService

COMMITTED = Path(__file__).resolve().parents[2] / "schemas"
ACTOR = Actor("dr-ames", "clinician")


@pytest.fixture(scope="module")
def events() -> list[tuple[int, Any]]:
    """(position, event) for a small demo cohort recorded in memory: every event type appears."""
    app = CareContinuum(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    end = datetime.now(tz=UTC) - timedelta(days=1)
    lines = list(cohort_lines(25, 7, start=end - timedelta(days=365), end=end))
    at = (end - timedelta(days=30)).isoformat()
    lines += [json.dumps({"client": "Z-1", "occurred_at": at, **line}) for line in (
        {"command": "register", "site": "north"},
        {"command": "admit", "level": "2.5", "site": "north", "track": "day"},
        {"command": "step_down", "to_level": "2.1", "reason": "goals met, says Dr Ames", "track": "evening"},
        {"command": "correct", "corrects_version": 3, "field": "reason", "value": "goals met", "reason": "typo"},
        {"command": "correct", "corrects_version": 2, "field": "site", "value": "south", "reason": "wrong site"},
    )]
    report = import_lines(JourneyService(app), lines, ACTOR)
    assert not [e for e in report.errors if e.line > len(lines) - 5], report.errors
    return [(n.id, app.mapper.to_domain_event(n)) for n in app.recorder.select_notifications(start=0, limit=100_000)]


def test_committed_schemas_match_the_code(tmp_path):
    written = write_schemas(tmp_path, "care.journey.v1", "care.journey.v1.DLT", 6)
    stale = [
        str(path.relative_to(tmp_path)) for path in written
        if not (COMMITTED / path.relative_to(tmp_path)).exists()
        or (COMMITTED / path.relative_to(tmp_path)).read_text(encoding="utf-8") != path.read_text(encoding="utf-8")
    ]
    extra = {p.relative_to(COMMITTED) for p in COMMITTED.rglob("*.json")} - {p.relative_to(tmp_path) for p in written}
    advice = "a changed event shape needs a new contract version; then run `continuum schema events --out schemas` and commit"
    assert not stale, f"schemas/ differs from the code in {stale}: {advice}"
    assert not extra, f"schemas/ has files the code does not write: {sorted(map(str, extra))}"


def test_every_domain_field_is_published_withheld_or_pseudonymised():
    envelope_fields = {"originator_id", "originator_version", "timestamp", "originator_topic", "command_id", "recorded_by"}
    for event_class in EVENT_TYPES:
        name = event_class.__name__
        domain = {f.name for f in dataclasses.fields(event_class)} - envelope_fields
        published = set(MODELS[name].model_fields) - {"recorded_role", "values_withheld"}
        assert domain - published == set(WITHHELD.get(name, ())), name
        assert published - domain == set(), name
    assert set(PSEUDONYMISED) <= set(MODELS)


def test_no_client_reference_actor_command_id_or_free_text_reaches_the_topic(events):
    for position, event in events:
        message = encode(event, position, None)
        text = message.value.decode() + json.dumps({k: v.decode() for k, v in message.headers.items()})
        secrets = [event.command_id, ACTOR.id, *(str(getattr(event, f)) for f in WITHHELD.get(event_name(event), ()) if getattr(event, f))]
        if event_name(event) == "ClientRegistered":
            secrets.append(event.client_ref)
        if event_name(event) == "EntryCorrected" and event.field in WITHHELD.get(event.corrects_type, ()):
            secrets += [str(event.previous_value), str(event.corrected_value)]
        if event_name(event) in PSEUDONYMISED:
            secrets.append(getattr(event, f"{PSEUDONYMISED[event_name(event)]}_id"))
        leaked = [secret for secret in secrets if secret and secret not in ("[]", "None") and f'"{secret}"' in text]
        assert not leaked, (event_name(event), leaked)


def test_each_message_is_a_cloudevent_keyed_by_journey_with_a_stable_id(events):
    position, event = next((p, e) for p, e in events if event_name(e) == "AdmittedToLevel")
    message = encode(event, position, "ab" * 32)
    headers = {key: value.decode() for key, value in message.headers.items()}

    assert message.key == str(event.originator_id).encode()
    assert headers["ce_id"] == str(event_id(event.originator_id, event.originator_version))
    assert headers["ce_type"] == "org.carecontinuum.journey.AdmittedToLevel.v1"
    assert headers["ce_source"] == "/care-continuum/journeys"
    assert headers["ce_specversion"] == "1.0"
    assert headers["content-type"] == "application/json"
    assert headers["ce_sequence"] == f"{event.originator_version:010d}"
    assert headers["ce_position"] == str(position)
    assert headers["ce_chainhead"] == "ab" * 32
    assert encode(event, position, "ab" * 32) == message  # the same event, the same message


def test_every_value_fits_its_committed_json_schema(events):
    schemas = {
        name: jsonschema.Draft202012Validator(json.loads((COMMITTED / "events" / f"{name}.v1.json").read_text()))
        for name in MODELS
    }
    seen = set()
    for position, event in events:
        name = event_name(event)
        schemas[name].validate(json.loads(encode(event, position, None).value))
        seen.add(name)
    assert seen == set(MODELS)


def test_decoding_gives_back_the_event_with_withheld_fields_as_placeholders(events):
    for position, event in events:
        message = encode(event, position, None)
        envelope, decoded = decode(kafka_headers(message), message.key, message.value)
        name = event_name(event)
        assert type(decoded) is type(event)
        assert (envelope.position, envelope.version, decoded.timestamp) == (position, event.originator_version, event.timestamp)
        assert decoded.recorded_by == Actor(NOT_PUBLISHED, ACTOR.role)
        same = set(MODELS[name].model_fields) - {"recorded_role", "values_withheld", "session_id", "specimen_id"}
        if name == "EntryCorrected" and event.field in WITHHELD.get(event.corrects_type, ()):
            same -= {"previous_value", "corrected_value"}
        assert {f: getattr(decoded, f) for f in same} == {f: getattr(event, f) for f in same}, name


def test_a_message_of_an_unknown_version_is_poison(events):
    position, event = events[0]
    message = encode(event, position, None)
    headers = [(k, v.replace(b".v1", b".v2") if k == "ce_type" else v) for k, v in kafka_headers(message)]

    with pytest.raises(PoisonMessage, match="unsupported version v2 of ClientRegistered"):
        decode(headers, message.key, message.value)


def test_the_asyncapi_document_references_a_message_and_schema_per_event_type():
    document = asyncapi_document("care.journey.v1", "care.journey.v1.DLT", 6)
    messages = document["components"]["messages"]

    assert document["asyncapi"] == "3.0.0"
    assert document["channels"]["journeyEvents"]["address"] == "care.journey.v1"
    assert set(messages) == {f"{name}.v1" for name in MODELS} == set(document["channels"]["journeyEvents"]["messages"])
    for name, message in messages.items():
        assert message["payload"]["$ref"] == f"#/components/schemas/{name}"
        assert message["headers"]["properties"]["ce_type"]["const"] == f"org.carecontinuum.journey.{name}"
    refs = {ref for ref in _refs(document) if ref.startswith("#/components/schemas/")}
    assert {ref.rsplit("/", 1)[1] for ref in refs} <= set(document["components"]["schemas"])
    assert set(event_schemas()) == {f"{name}.v1.json" for name in MODELS}


def _refs(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node))
    return set()


def test_the_relays_encoder_writes_what_the_cloudevents_sdk_writes(events):
    """`encode` skips the SDK for speed; for every event type its message must be the SDK's, byte for byte."""
    seen = set()
    for position, event in events:
        for head in ("ab" * 32, None):
            assert encode(event, position, head) == encode_with_sdk(event, position, head)
        seen.add(type(event).__name__)
    assert len(seen) == len(EVENT_TYPES)
