"""What the Kafka tests share: the tests' pseudonym key, a recorded demo cohort, reading a topic to its
end, and the projection tables as comparable dumps (with the fields the topic withholds masked on
both sides, and the store's side keyed and coded as the topic publishes it)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from kafka import TopicPartition

from domain.values import Actor
from infra.config import Settings
from infra.kafka.clients import KafkaSettings, reader
from infra.kafka.contract import (
    PSEUDONYMISED,
    WITHHELD,
    analyte_codes,
    analyte_results,
    correction_published,
    role_code,
    sex_code,
    substance_codes,
)
from infra.kafka.envelope import Pseudonyms
from infra.views import ViewStore
from services.bootstrap import bootstrap
from services.demo import cohort_lines
from services.importer import import_lines
from tests.support.clock import fixed_clock

DEMO_ACTOR = Actor("demo", "system")
PSEUDONYM_KEY = hashlib.sha256(b"care-continuum tests: the topic's pseudonym key").digest()
"""The tests' `CONTINUUM_PSEUDONYM_KEY` (a deployment's is random: `continuum keygen`)."""
PSEUDONYM_KEY_TEXT = base64.b64encode(PSEUDONYM_KEY).decode()
PSEUDONYMS = Pseudonyms(PSEUDONYM_KEY)


def record_demo(database_url: str, clients: int, seed: int = 7, ref_prefix: str = "C") -> int:
    """Record a synthetic cohort of 2025 through the importer (client refs `<ref_prefix>-00001`...); returns the head."""
    year = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)
    lines = (line.replace('"C-', f'"{ref_prefix}-') for line in cohort_lines(clients, seed, start=year[0], end=year[1]))
    wired = bootstrap(Settings(database_url=database_url), clock=fixed_clock)
    try:
        import_lines(wired.service, lines, DEMO_ACTOR)
        return wired.app.recorder.max_notification_id() or 0
    finally:
        wired.close()


def read_topic(settings: KafkaSettings, topic: str | None = None, timeout: float = 60.0) -> list[Any]:
    """Every record of the topic, from the beginning to the end offsets as they are now."""
    topic = topic or settings.topic
    consumer = reader(settings)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"could not read {topic} to its end in {timeout} s"
            for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def header(record: Any, name: str) -> str | None:
    return next((value.decode() for key, value in record.headers if key == name), None)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting until {what}"
        time.sleep(0.1)


TABLES = {
    "census_clients": ("journey_id, client_ref, site", "journey_id"),
    "census_intervals": ("journey_id, opened_by, closed_by, level, level_rank, site, track, started_at, ended_at", "journey_id, opened_by"),
    "step_transitions": ("journey_id, version, kind, from_level, to_level, occurred_at, reason", "journey_id, version"),
    "audit_entries": (
        "journey_id, version, position, event_type, occurred_at, recorded_at, actor_id, actor_role, command_id, details, corrects_version",
        "journey_id, version",
    ),
}


def projection_dump(views: ViewStore, *, as_published: bool = False) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table's rows in key order, with what the topic withholds masked. `as_published` for a
    store-side read model: its journey ids, sites, substances, analytes and roles as the topic publishes them
    (under the tests' key), so that it compares with a read side built from the topic."""
    dump = {}
    with views.transaction() as cursor:
        for table, (columns, _key) in TABLES.items():
            cursor.execute(f"SELECT {columns} FROM {table}")
            names = [name.strip() for name in columns.split(",")]
            rows = [_masked(table, dict(zip(names, row, strict=True)), as_published=as_published) for row in cursor.fetchall()]
            dump[table] = sorted(rows, key=lambda row: tuple(str(value) for value in row))  # journey ids may be pseudonyms
    return dump


def _masked(table: str, row: dict[str, Any], *, as_published: bool) -> tuple[Any, ...]:
    if as_published:
        row["journey_id"] = str(PSEUDONYMS.journey(UUID(row["journey_id"])))
        if "site" in row:
            row["site"] = PSEUDONYMS.site(row["site"])
    if table == "census_clients":
        row["client_ref"] = "*"
    elif table == "step_transitions" and row["kind"] in ("step_up", "step_down", "track_change", "alumni"):
        row["reason"] = "*"  # free text (an alumni row's is the programme's name)
    elif table == "audit_entries":
        row["actor_id"] = row["command_id"] = "*"
        if as_published:
            row["actor_role"] = role_code(row["actor_role"])
        details = _masked_details(row["event_type"], json.loads(row["details"]))
        row["details"] = json.dumps(_coded_details(row["event_type"], details) if as_published else details, sort_keys=True)
    return tuple(row.values())


def _masked_details(event_type: str, details: dict[str, Any]) -> dict[str, Any]:
    hidden = set(WITHHELD.get(event_type, ()))
    if event_type in PSEUDONYMISED:
        hidden.add(f"{PSEUDONYMISED[event_type]}_id")
    if event_type == "EntryCorrected" and not correction_published(details["corrects_type"], details["field"]):
        hidden |= {"previous_value", "corrected_value"}
    return {key: value for key, value in details.items() if key not in hidden}


def _coded_details(event_type: str, details: dict[str, Any]) -> dict[str, Any]:
    """An audit entry's details as the topic publishes them (the store's side of a comparison)."""
    if "site" in details:
        details["site"] = PSEUDONYMS.site(details["site"])
    if event_type == "WithdrawalManagementStarted":
        details["substances"] = substance_codes(details["substances"])
    elif event_type == "DrugTestResulted":
        details["substances"] = analyte_results(details["substances"])
        details["expected_medications"] = analyte_codes(details["expected_medications"])
    elif event_type == "EntryCorrected" and details["field"] in ("site", "sex"):
        for value in ("previous_value", "corrected_value"):
            if details.get(value) is not None:
                details[value] = PSEUDONYMS.site(details[value]) if details["field"] == "site" else sex_code(details[value])
    return details


# -- free text an attacker hopes to read on the topic -------------------------------------------------

NAMES = ("Jane", "Doe", "John", "Smith")
PHONES = ("555-0142", "555-0199")
ADDRESSES = ("Baker Street", "Elm Road")
PII = (*NAMES, *PHONES, *ADDRESSES)
"""What must never be on the topic, in any key, header or value (each fragment as typed)."""
CLIENTS = ("JaneDoe-555-0142", "JohnSmith-555-0199")
HOME = "Jane Doe's house, 12 Baker Street, 555-0142"
FLAT = "John Smith's flat, 4 Elm Road, 555-0199"
PII_ACTOR = Actor("Dr Jane Doe", "Jane Doe, 555-0142")


def _pii(number: int, command: str, client: int, occurred_at: str, **fields: Any) -> dict[str, Any]:
    return {"id": f"Jane Doe 555-0142 line {number}", "command": command, "client": CLIENTS[client], "occurred_at": occurred_at,
            **fields}


PII_HISTORY: list[tuple[str, dict[str, Any]]] = [
    (event, _pii(number, *line[0], **line[1])) for number, (event, line) in enumerate([
        ("ClientRegistered", (("register", 0, "2026-03-02T09:00:00Z"), {"site": HOME, "birth_year": 1988, "sex": "female"})),
        ("ReferralReceived", (("refer", 0, "2026-03-02T09:30:00Z"), {"source": "court", "referred_level": "3.7-WM"})),
        ("AssessmentCompleted", (("assess", 0, "2026-03-02T11:00:00Z"), {
            "ratings": [4, 2, 1, 3, 3, 3], "recommended_level": "3.7-WM", "clinician": "Dr John Smith, 555-0199"})),
        ("WithdrawalManagementStarted", (("start_detox", 0, "2026-03-02T14:00:00Z"), {
            "level": "3.7-WM", "site": HOME, "substances": ["pills from John Smith at 4 Elm Road", "Heroin"]})),
        ("DetoxCompleted", (("complete_detox", 0, "2026-03-07T10:00:00Z"), {"completed": True})),
        ("SteppedDown", (("step_down", 0, "2026-03-07T12:00:00Z"), {"to_level": "3.5", "reason": "Jane Doe asked, 555-0142"})),
        ("TreatmentPlanRecorded", (("plan", 0, "2026-03-08T10:00:00Z"), {
            "goals": ["move out of 12 Baker Street", "call John Smith at 555-0199"], "review_on": "2026-04-07"})),
        ("SteppedDown", (("step_down", 0, "2026-04-01T12:00:00Z"), {
            "to_level": "2.1", "reason": "back home to Baker Street", "track": "evening"})),
        ("SessionAttended", (("attend_session", 0, "2026-04-03T18:00:00Z"), {
            "session_id": "Jane Doe group 555-0142", "minutes": 180, "kind": "group"})),
        ("SessionMissed", (("miss_session", 0, "2026-04-06T18:00:00Z"), {
            "session_id": "Jane Doe group 555-0199", "minutes": 180, "excused": False})),
        ("DrugTestCollected", (("collect_drug_test", 0, "2026-04-08T10:00:00Z"), {"specimen_id": "JaneDoe-555-0142-U1"})),
        ("DrugTestResulted", (("result_drug_test", 0, "2026-04-10T08:00:00Z"), {
            "specimen_id": "JaneDoe-555-0142-U1", "result": "positive",
            "substances": {"John Smith's pills": "positive", "Fentanyl": "positive", "Jane Doe's methadone": "negative"},
            "expected_medications": ["Jane Doe's methadone"]})),
        ("SteppedUp", (("step_up", 0, "2026-04-15T12:00:00Z"), {"to_level": "2.5", "reason": "John Smith, 4 Elm Road", "track": "day"})),
        ("Discharged", (("discharge", 0, "2026-06-01T12:00:00Z"), {
            "reason": "completed", "referral_onward": "Dr John Smith, 4 Elm Road, 555-0199"})),
        ("EnrolledInAlumni", (("enrol_alumni", 0, "2026-06-05T12:00:00Z"), {"program": "Jane Doe's circle at 12 Baker Street"})),
        ("AlumniActivityAttended", (("attend_alumni_activity", 0, "2026-07-01T18:00:00Z"), {
            "activity": "dinner with John Smith, 4 Elm Road, call 555-0199"})),
        ("EntryCorrected", (("correct", 0, "2026-07-02T09:00:00Z"), {
            "corrects_version": 16, "field": "activity", "value": "walk with Jane Doe, 555-0142", "reason": "Jane Doe said so"})),
        ("ClientRegistered", (("register", 1, "2026-10-25T09:00:00Z"), {"site": FLAT, "sex": "male"})),
        ("AdmittedToLevel", (("admit", 1, "2026-10-25T10:00:00Z"), {"level": "2.5", "site": FLAT, "track": "day"})),
        ("SteppedDown", (("step_down", 1, "2026-11-10T12:00:00Z"), {
            "to_level": "2.1", "reason": "goals met, says Jane Doe", "track": "evening"})),
        ("EntryCorrected", (("correct", 1, "2026-11-12T09:00:00Z"), {
            "corrects_version": 3, "field": "reason", "value": "John Smith, 555-0199", "reason": "typo"})),
        ("EntryCorrected", (("correct", 1, "2026-11-12T09:05:00Z"), {
            "corrects_version": 2, "field": "site", "value": HOME, "reason": "wrong site, Jane Doe"})),
        ("EntryCorrected", (("correct", 1, "2026-11-12T09:10:00Z"), {
            "corrects_version": 1, "field": "sex", "value": "Jane Doe", "reason": "asked by John Smith"})),
        ("TrackChanged", (("change_track", 1, "2026-11-13T09:00:00Z"), {
            "track": "day", "planned_hours_per_week": 12, "reason": "lost the job at 4 Elm Road"})),
        ("MedicationChanged", (("change_medication", 1, "2026-11-14T09:00:00Z"), {
            "medication": "naltrexone", "reason": "asked by Dr Jane Doe, 555-0142"})),
        ("EntryVoided", (("void", 1, "2026-11-15T09:00:00Z"), {"versions": [8], "reason": "meant for Jane Doe"})),
        ("ConsentGranted", (("grant_consent", 1, "2026-11-16T09:00:00Z"), {
            "consent_id": "JohnSmith-555-0199-CF1", "recipient": "Dr Jane Doe, 12 Baker Street", "purpose": "named",
            "purpose_text": "care coordination with John Smith, 555-0199", "scope": ["episodes", "drug_tests"],
            "expires_on": "2027-11-16"})),
        ("ConsentRevoked", (("revoke_consent", 1, "2026-11-20T09:00:00Z"), {"consent_id": "JohnSmith-555-0199-CF1"})),
    ], start=1)
]
"""Every event type, each with names, phone numbers or addresses in every free-text field (and the client references,
command ids, actor id and role): recorded through the commands, as a clinic could type them."""


def record_pii_history(service: Any) -> None:
    from services.commands import parse_command

    for number, (expected, line) in enumerate(PII_HISTORY, start=1):
        outcome = service.execute(parse_command(line), PII_ACTOR)
        assert outcome.ok, f"PII_HISTORY line {number} ({line['command']}): {outcome.error}"
        assert [event.type for event in outcome.events] == [expected], f"PII_HISTORY line {number} records {outcome.events}"
