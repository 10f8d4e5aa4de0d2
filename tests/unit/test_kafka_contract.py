"""The published contract without a broker: envelope, privacy, schemas (and their committed copies of
both versions: v2, published, and v1, the record). `tests/unit/test_kafka_privacy_claims.py` attacks it."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from domain.events import EVENT_TYPES, event_id, event_name
from domain.values import Actor
from infra.kafka import contract_v1
from infra.kafka.contract import CODED, MODELS, PSEUDONYMISED, WITHHELD, role_code
from infra.kafka.envelope import NOT_PUBLISHED, PoisonMessage, decode, encode, encode_with_sdk, kafka_headers
from infra.kafka.schemas import asyncapi_document, event_schemas, write_schemas
from services.commands import parse_command
from services.demo import cohort_lines
from services.importer import import_lines
from services.journeys import CareContinuum, JourneyService
from tests.integration.kafka_support import PSEUDONYMS
from tests.support.clock import fixed_clock

COMMITTED = Path(__file__).resolve().parents[2] / "schemas"
ACTOR = Actor("dr-ames", "clinician")


def _line(event_type: str, command: str, client: str, occurred_at: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    return event_type, {"command": command, "client": client, "occurred_at": occurred_at, **fields}


# Every event type of `domain.events.EVENT_TYPES`, each named beside a command line that records it: two
# hand-written journeys in 2026 (K-1 through detox, residential, IOP, a step up, discharge and alumni;
# Z-1 with corrections of a withheld free text and of a published field). A new event type needs a
# line here: the `events` fixture fails naming every type without one.
HISTORY: list[tuple[str, dict[str, Any]]] = [
    _line("ClientRegistered", "register", "K-1", "2026-03-02T09:00:00Z", site="north", birth_year=1988, sex="female"),
    _line("ReferralReceived", "refer", "K-1", "2026-03-02T09:30:00Z", source="court", referred_level="3.7-WM"),
    _line("AssessmentCompleted", "assess", "K-1", "2026-03-02T11:00:00Z", ratings=[4, 2, 1, 3, 3, 3],
          recommended_level="3.7-WM", clinician="dr-ames"),
    _line("WithdrawalManagementStarted", "start_detox", "K-1", "2026-03-02T14:00:00Z", level="3.7-WM", site="north",
          substances=["fentanyl"]),
    _line("DetoxCompleted", "complete_detox", "K-1", "2026-03-07T10:00:00Z", completed=True),
    _line("SteppedDown", "step_down", "K-1", "2026-03-07T12:00:00Z", to_level="3.5", reason="withdrawal managed"),
    _line("TreatmentPlanRecorded", "plan", "K-1", "2026-03-08T10:00:00Z", goals=["abstinence", "housing"],
          review_on="2026-04-07"),
    _line("SteppedDown", "step_down", "K-1", "2026-04-01T12:00:00Z", to_level="2.1", reason="residential goals met",
          track="evening"),
    _line("SessionAttended", "attend_session", "K-1", "2026-04-03T18:00:00Z", session_id="S-1", minutes=180,
          kind="group", group_type="relapse_prevention", modality="cbt"),
    _line("SessionMissed", "miss_session", "K-1", "2026-04-06T18:00:00Z", session_id="S-2", minutes=180, excused=False),
    _line("DrugTestCollected", "collect_drug_test", "K-1", "2026-04-08T10:00:00Z", specimen_id="K-1-U1", observed=True),
    _line("DrugTestResulted", "result_drug_test", "K-1", "2026-04-10T08:00:00Z", specimen_id="K-1-U1",
          result="positive", substances={"fentanyl": "positive"}),
    _line("SteppedUp", "step_up", "K-1", "2026-04-15T12:00:00Z", to_level="2.5", reason="positive test", track="day"),
    _line("Discharged", "discharge", "K-1", "2026-06-01T12:00:00Z", reason="completed",
          referral_onward="mutual-help group"),
    _line("EnrolledInAlumni", "enrol_alumni", "K-1", "2026-06-05T12:00:00Z", program="alumni"),
    _line("AlumniActivityAttended", "attend_alumni_activity", "K-1", "2026-07-01T18:00:00Z", activity="sober social"),
    _line("ClientRegistered", "register", "Z-1", "2026-10-25T09:00:00Z", site="north"),
    _line("AdmittedToLevel", "admit", "Z-1", "2026-10-25T10:00:00Z", level="2.5", site="north", track="day"),
    _line("SteppedDown", "step_down", "Z-1", "2026-11-10T12:00:00Z", to_level="2.1", reason="goals met, says Dr Ames",
          track="evening"),
    _line("EntryCorrected", "correct", "Z-1", "2026-11-12T09:00:00Z", corrects_version=3, field="reason",
          value="goals met", reason="typo"),
    _line("EntryCorrected", "correct", "Z-1", "2026-11-12T09:05:00Z", corrects_version=2, field="site", value="south",
          reason="wrong site"),
    _line("TrackChanged", "change_track", "Z-1", "2026-11-13T09:00:00Z", track="day", planned_hours_per_week=12,
          reason="lost the job at Acme on Main Street"),
    _line("MedicationChanged", "change_medication", "Z-1", "2026-11-14T09:00:00Z", medication="naltrexone",
          reason="asked by Dr Ames"),
    _line("EntryVoided", "void", "Z-1", "2026-11-15T09:00:00Z", versions=[7], reason="meant for Jane Roe"),
    _line("ConsentGranted", "grant_consent", "Z-1", "2026-11-16T09:00:00Z", consent_id="Z-1-CF1",
          recipient="Dr Jane Roe, Main Street Clinic", purpose="named", purpose_text="care coordination with Jane Roe",
          scope=["episodes", "drug_tests"], expires_on="2027-11-16"),
    _line("ConsentRevoked", "revoke_consent", "Z-1", "2026-11-20T09:00:00Z", consent_id="Z-1-CF1"),
]


@pytest.fixture(scope="module")
def events() -> list[tuple[int, Any]]:
    """(position, event) for the hand-written HISTORY, then a small demo cohort of 2025 for variety,
    recorded in memory at the tests' fixed clock: every event type appears, by construction."""
    app = CareContinuum(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    service = JourneyService(app, clock=fixed_clock)
    recorded = []
    for number, (expected, data) in enumerate(HISTORY, start=1):
        outcome = service.execute(parse_command({"id": f"contract-{number}", **data}), ACTOR)
        assert outcome.ok, f"HISTORY line {number} ({data['command']} {data['client']}): {outcome.error}"
        assert [e.type for e in outcome.events] == [expected], f"HISTORY line {number} records {outcome.events}"
        recorded.append(expected)
    missing = sorted({event_type.__name__ for event_type in EVENT_TYPES} - set(recorded))
    if missing:
        pytest.fail(f"no line of HISTORY in tests/unit/test_kafka_contract.py records {', '.join(missing)}:"
                    " add a command line for each (the contract is checked on every event type)")
    lines = list(cohort_lines(25, 7, start=datetime(2025, 1, 1, tzinfo=UTC), end=datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)))
    report = import_lines(service, lines, ACTOR)
    assert report.ok, report.errors[:3]
    return [(n.id, app.mapper.to_domain_event(n)) for n in app.recorder.select_notifications(start=0, limit=100_000)]


def test_the_fixture_holds_every_event_type(events):
    assert {type(event).__name__ for _, event in events} == {event_type.__name__ for event_type in EVENT_TYPES}
    assert [type(event).__name__ for _, event in events[:len(HISTORY)]] == [expected for expected, _ in HISTORY]


def test_committed_schemas_match_the_code(tmp_path):
    written = write_schemas(tmp_path, "care.journey.v2", "care.journey.v2.DLT", 6)
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
    envelope_fields = {
        "originator_id", "originator_version", "timestamp", "originator_topic", "command_id", "recorded_by", "episode", "stay",
    }
    for event_class in EVENT_TYPES:
        name = event_class.__name__
        domain = {f.name for f in dataclasses.fields(event_class)} - envelope_fields
        published = set(MODELS[name].model_fields) - {"recorded_role", "values_withheld"}
        assert domain - published == set(WITHHELD.get(name, ())), name
        assert published - domain == set(), name
        assert set(CODED.get(name, ())) <= published, name
    assert set(PSEUDONYMISED) <= set(MODELS)
    assert set(CODED) <= set(MODELS)


def test_the_record_of_version_1_is_kept():
    assert contract_v1.VERSION == 1
    assert set(MODELS) - set(contract_v1.MODELS) == {"ConsentGranted", "ConsentRevoked"}  # new in version 2
    assert contract_v1.MODELS["AlumniActivityAttended"].model_fields.keys() >= {"activity"}
    assert all((COMMITTED / "events" / f"{name}.v1.json").exists() for name in contract_v1.MODELS)


def test_no_client_reference_actor_command_id_or_free_text_reaches_the_topic(events):
    for position, event in events:
        message = encode(event, position, None, PSEUDONYMS)
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
    message = encode(event, position, "ab" * 32, PSEUDONYMS)
    headers = {key: value.decode() for key, value in message.headers.items()}
    pseudonym = PSEUDONYMS.journey(event.originator_id)

    assert message.key == str(pseudonym).encode()
    assert headers["ce_subject"] == str(pseudonym)
    assert headers["ce_id"] == str(event_id(pseudonym, event.originator_version))
    assert headers["ce_type"] == "org.carecontinuum.journey.AdmittedToLevel.v2"
    assert headers["ce_source"] == "/care-continuum/journeys"
    assert headers["ce_specversion"] == "1.0"
    assert headers["content-type"] == "application/json"
    assert headers["ce_sequence"] == f"{event.originator_version:010d}"
    assert headers["ce_position"] == str(position)
    assert headers["ce_chainhead"] == "ab" * 32
    assert encode(event, position, "ab" * 32, PSEUDONYMS) == message  # the same event, the same message


def test_every_value_fits_its_committed_json_schema(events):
    schemas = {
        name: jsonschema.Draft202012Validator(json.loads((COMMITTED / "events" / f"{name}.v2.json").read_text()))
        for name in MODELS
    }
    seen = set()
    for position, event in events:
        name = event_name(event)
        schemas[name].validate(json.loads(encode(event, position, None, PSEUDONYMS).value))
        seen.add(name)
    assert seen == set(MODELS)


def test_decoding_gives_back_the_event_with_withheld_fields_as_placeholders_and_codes(events):
    for position, event in events:
        message = encode(event, position, None, PSEUDONYMS)
        envelope, decoded = decode(kafka_headers(message), message.key, message.value)
        name = event_name(event)
        assert type(decoded) is type(event)
        assert decoded.originator_id == envelope.journey_id == PSEUDONYMS.journey(event.originator_id)
        assert (envelope.position, envelope.version, decoded.timestamp) == (position, event.originator_version, event.timestamp)
        assert decoded.recorded_by == Actor(NOT_PUBLISHED, role_code(event.recorded_by.role))
        coded = set(CODED.get(name, ()))
        same = set(MODELS[name].model_fields) - {"recorded_role", "values_withheld", "session_id", "specimen_id"} - coded
        if name == "EntryCorrected" and event.field in (*WITHHELD.get(event.corrects_type, ()), "site"):
            same -= {"previous_value", "corrected_value"}
        assert {f: getattr(decoded, f) for f in same} == {f: getattr(event, f) for f in same}, name
        if "site" in coded:
            assert decoded.site == PSEUDONYMS.site(event.site)
        for withheld in WITHHELD.get(name, ()):
            placeholders = (NOT_PUBLISHED, [], None, str(decoded.originator_id), f"consent-{getattr(decoded, 'granted_version', 0)}",
                            f"consent-{decoded.originator_version}")  # a consent's grant and revocations pair by its version
            assert getattr(decoded, withheld) in placeholders, (name, withheld)


def test_a_message_of_an_unknown_version_is_poison(events):
    position, event = events[0]
    message = encode(event, position, None, PSEUDONYMS)
    headers = [(k, v.replace(b".v2", b".v1") if k == "ce_type" else v) for k, v in kafka_headers(message)]

    with pytest.raises(PoisonMessage, match=r"unsupported version v1 of ClientRegistered \(this consumer reads v2\)"):
        decode(headers, message.key, message.value)


def test_the_asyncapi_document_references_a_message_and_schema_per_event_type():
    document = asyncapi_document("care.journey.v2", "care.journey.v2.DLT", 6)
    messages = document["components"]["messages"]

    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["version"] == "2.1.0"  # 2.1: the optional ce_episode and ce_stay headers
    assert document["channels"]["journeyEvents"]["address"] == "care.journey.v2"
    assert set(messages) == {f"{name}.v2" for name in MODELS} == set(document["channels"]["journeyEvents"]["messages"])
    for name, message in messages.items():
        assert message["payload"]["$ref"] == f"#/components/schemas/{name}"
        assert message["headers"]["properties"]["ce_type"]["const"] == f"org.carecontinuum.journey.{name}"
    refs = {ref for ref in _refs(document) if ref.startswith("#/components/schemas/")}
    assert {ref.rsplit("/", 1)[1] for ref in refs} <= set(document["components"]["schemas"])
    assert set(event_schemas()) == {f"{name}.v1.json" for name in contract_v1.MODELS} | {f"{name}.v2.json" for name in MODELS}
    assert set(event_schemas(2)) == {f"{name}.v2.json" for name in MODELS}


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
            assert encode(event, position, head, PSEUDONYMS) == encode_with_sdk(event, position, head, PSEUDONYMS)
        seen.add(type(event).__name__)
    assert len(seen) == len(EVENT_TYPES)
