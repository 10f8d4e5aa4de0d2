"""The contract as documents: one JSON Schema per event type and version, and an AsyncAPI 3.0 document
for the topic. `continuum schema events --out schemas` writes them: `events/<Event>.v2.json` (what the
relay publishes), `events/<Event>.v1.json` (the record of version 1, `infra/kafka/contract_v1.py`) and
`asyncapi.json` (the version 2 topic); the committed copies under `schemas/` are compared with the code
by a test, so a change of shape cannot be published unversioned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from infra.kafka import contract_v1
from infra.kafka.contract import MODELS, SOURCE, TYPE_PREFIX, VERSION, ce_type
from infra.kafka.envelope import CONTENT_TYPE, SEQUENCE_WIDTH

KAFKA_BINDING = "0.5.0"
UUID_TEXT = {"type": "string", "format": "uuid"}
VERSIONS: dict[int, dict[str, type[BaseModel]]] = {contract_v1.VERSION: dict(contract_v1.MODELS), VERSION: dict(MODELS)}
"""The models of every contract version whose schemas are written: the published one and the record of the earlier."""
MINOR = 1
"""The contract's minor version: 2.1 added the optional `ce_episode` and `ce_stay` headers (nothing else changed, so
consumers of 2.0 read 2.1 unchanged and the topic and ce_types stay `.v2`)."""
KEY = "The journey's pseudonym: HMAC-SHA256 of the journey id under the deployment's key, as a UUID of version 8"


def message_name(event: str, version: int = VERSION) -> str:
    return f"{event}.v{version}"


def event_schemas(version: int | None = None) -> dict[str, dict[str, Any]]:
    """Standalone JSON Schemas (draft 2020-12), by file name: of one contract version, or of every one written."""
    schemas = {}
    for each in [version] if version is not None else sorted(VERSIONS):
        for event, model in VERSIONS[each].items():
            schema = model.model_json_schema()
            schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"urn:carecontinuum:{ce_type(event, each)}",
                      **schema}
            schema["title"] = message_name(event, each)
            schemas[f"{message_name(event, each)}.json"] = schema
    return schemas


def _headers(event: str) -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "type": "object",
        "required": ["ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time", "ce_subject", "ce_sequence", "content-type"],
        "properties": {
            "ce_id": {**UUID_TEXT, "description": "Stable event id, uuid5(journey pseudonym, version): the dedupe key"},
            "ce_type": {"const": ce_type(event)},
            "ce_source": {"const": SOURCE},
            "ce_specversion": {"const": "1.0"},
            "ce_time": {**text, "format": "date-time", "description": "When the store recorded the event"},
            "ce_subject": {**UUID_TEXT, "description": f"{KEY}; also the key"},
            "ce_sequence": {**text, "pattern": f"^[0-9]{{{SEQUENCE_WIDTH}}}$",
                            "description": "The journey's version of this event, zero-padded: orders as text and as a number"},
            "ce_position": {**text, "pattern": "^[0-9]+$", "description": "Position in the store's notification log"},
            "ce_chainhead": {**text, "pattern": "^[0-9a-f]{64}$",
                             "description": "Global hash-chain link after this event (compare with `continuum verify`)"},
            "ce_episode": {**text, "pattern": f"^[0-9]{{{SEQUENCE_WIDTH}}}$", "description": (
                "Since 2.1.0, on events inside a treatment episode: the ce_sequence of the event that opened the episode"
                " (an admission or the start of withdrawal management); absent outside one and on events stored before"
            )},
            "ce_stay": {**text, "pattern": f"^[0-9]{{{SEQUENCE_WIDTH}}}$", "description": (
                "Since 2.1.0, with ce_episode: the ce_sequence of the admission or step that opened the service stay (one"
                " level of care) the event belongs to"
            )},
            "content-type": {"const": CONTENT_TYPE},
        },
    }


def asyncapi_document(topic: str, dead_letter_topic: str, partitions: int) -> dict[str, Any]:
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for event, model in MODELS.items():
        name = message_name(event)
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = {**schema, "title": name}
        messages[name] = {
            "name": event, "title": name, "contentType": CONTENT_TYPE,
            "headers": _headers(event), "payload": {"$ref": f"#/components/schemas/{name}"},
            "bindings": {"kafka": {"key": {**UUID_TEXT, "description": KEY}, "bindingVersion": KAFKA_BINDING}},
        }
    refs = {name: {"$ref": f"#/components/messages/{name}"} for name in messages}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "care-continuum journey events",
            "version": f"{VERSION}.{MINOR}.0",
            "description": (
                "Every recorded event of every client journey, in order per journey, CloudEvents 1.0 binary mode."
                " Key and ce_subject: the journey's pseudonym, keyed with the deployment's secret (no client reference,"
                " names or free text on the topic; sites, substances, analytes and roles are codes)."
                " Deduplicate by ce_id; order per journey by ce_sequence. Types: " + TYPE_PREFIX + "<Event>.v<N>."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": {
            "journeyEvents": {
                "address": topic, "messages": refs,
                "bindings": {"kafka": {"topic": topic, "partitions": partitions, "bindingVersion": KAFKA_BINDING}},
            },
            "journeyEventsDeadLetters": {
                "address": dead_letter_topic,
                "description": "Messages a projection worker could not apply: the original record plus dlt_* headers",
                "messages": refs,
            },
        },
        "operations": {
            "publishJourneyEvents": {"action": "send", "channel": {"$ref": "#/channels/journeyEvents"},
                                     "summary": "The relay publishes each event once its batch is acknowledged"},
            "consumeJourneyEvents": {"action": "receive", "channel": {"$ref": "#/channels/journeyEvents"},
                                     "summary": "Projection workers and downstream services"},
        },
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


def write_schemas(out: Path, topic: str, dead_letter_topic: str, partitions: int) -> list[Path]:
    """Write `events/<Event>.v<N>.json` of every version and `asyncapi.json` (the published version) under `out`;
    returns the paths."""
    (out / "events").mkdir(parents=True, exist_ok=True)
    written = []
    for filename, schema in event_schemas().items():
        written.append(_write(out / "events" / filename, schema))
    written.append(_write(out / "asyncapi.json", asyncapi_document(topic, dead_letter_topic, partitions)))
    return written


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
