"""One stored event <-> one Kafka message in CloudEvents 1.0 binary mode (contract version 2).

key = the journey's pseudonym (UUID text), so every event of a journey lands on one partition, in
order. value = the event's payload in the published contract (JSON). Headers: `ce_id` (stable:
uuid5(pseudonym, version), the dedupe key), `ce_type` (versioned), `ce_source`, `ce_specversion`,
`ce_time` (recorded time), `ce_subject` (the pseudonym), `content-type`, and three extensions:
`ce_sequence` (the journey's version, zero-padded so it also orders as text, as the CloudEvents
sequence extension asks), `ce_position` (the notification id in the store's log) and
`ce_chainhead` (the global hash-chain link after this event: an auditor can compare it with
`continuum verify`). Since contract 2.1, two more on every event recorded inside a treatment episode:
`ce_episode` (the `ce_sequence` of the event that opened the episode: an admission or the start of
withdrawal management) and `ce_stay` (the `ce_sequence` of the admission or step that opened the
service stay at one level); both absent outside an episode and on events stored before 2.1.

Pseudonyms (`Pseudonyms`) are keyed with the deployment's secret `CONTINUUM_PSEUDONYM_KEY`, never
published and kept apart from the database: the journey's pseudonym is HMAC-SHA256(key, "journey:" +
the journey id's 16 bytes), its first 16 bytes written as a UUID of version 8 (RFC 9562: the version
and variant bits set, 122 bits of the digest kept). Session and specimen ids are HMAC-SHA256(key,
"session:" or "specimen:" + the journey pseudonym's 16 bytes + the clinic's id), as a UUID the same
way; a site is "site-" and the first 8 hex digits of HMAC-SHA256(key, "site:" + its name). Without the
key none of them can be recomputed from a client reference, a clinic's id or a site's name. The same
key gives the same pseudonyms, so every relay of a deployment must have the same key; consumers need
none (they decode without it).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event, to_binary_event
from cloudevents.core.v1.event import CloudEvent
from eventsourcing.utils import get_topic
from pydantic import ValidationError

from domain.events import event_id, event_name
from domain.journey import ClientJourney
from domain.values import Actor
from infra.config import ConfigurationError, load_settings
from infra.kafka.contract import (
    MODELS,
    PSEUDONYMISED,
    SOURCE,
    VERSION,
    WITHHELD,
    analyte_codes,
    analyte_results,
    ce_type,
    correction_published,
    parse_ce_type,
    role_code,
    sex_code,
    substance_codes,
)

CONTENT_TYPE = "application/json"
SEQUENCE_WIDTH = 10
NOT_PUBLISHED = "(not published)"
"""What a consumer's rebuilt event holds in place of a withheld text field."""

MAX_NESTING = 32
"""How deep arrays and objects may nest in a value (ours nest 2 deep); a deeper value is refused before it is
parsed, since the JSON parser recurses and 5,000 levels overflow Python's stack."""
LARGEST = 2**63 - 1
"""The largest version or position a read side's BIGINT column holds."""
MAX_SITES = 4096
"""Site codes a `Pseudonyms` keeps computed (all of them, in any clinic; a longer list starts again)."""

Headers = list[tuple[str, bytes]]


class ContractViolation(Exception):  # noqa: N818 - reads as what happened
    """A stored event that does not fit its published model: a change that needs a new contract version."""


class PoisonMessage(Exception):  # noqa: N818 - reads as what the message is
    """A message a consumer cannot turn back into an event; the reason goes to the dead-letter headers."""


KEY_MISSING = (
    "CONTINUUM_PSEUDONYM_KEY is not set: the relay publishes every journey under a pseudonym keyed with it. Create one"
    " with `continuum keygen` and set it to the same value for every relay of this deployment, kept apart from the database"
)


class Pseudonyms:
    """The topic's keyed pseudonyms and site codes under one deployment's key (HMAC-SHA256, see the module's doc)."""

    __slots__ = ("_key", "_sites")

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:  # noqa: PLR2004 - HMAC-SHA256 wants a key as long as its output
            msg = f"a pseudonym key needs at least 32 bytes, not {len(key)}"
            raise ValueError(msg)
        self._key = bytes(key)
        self._sites: dict[str, str] = {}  # a clinic has a few sites: each code is computed once

    def __repr__(self) -> str:
        return "Pseudonyms(key=<hidden>)"

    def journey(self, journey_id: UUID) -> UUID:
        """The journey's pseudonym: the message key and `ce_subject`."""
        return _uuid8(hmac.digest(self._key, b"journey:" + journey_id.bytes, "sha256"))

    def of(self, journey: UUID, kind: str, value: str) -> UUID:
        """A session's or specimen's pseudonym (`kind` "session" or "specimen"), given the journey's pseudonym."""
        return UUID(self.of_text(journey, kind, value))

    def of_text(self, journey: UUID, kind: str, value: str) -> str:
        """`of` as the text the contract publishes, without making a UUID object (the relay's hot path)."""
        return _uuid_text(hmac.digest(self._key, kind.encode() + b":" + journey.bytes + value.encode(), "sha256"), 8)

    def site(self, name: str) -> str:
        """`site-3f9a1c2b`: the same name, the same code, for this key."""
        code = self._sites.get(name)
        if code is None:
            if len(self._sites) >= MAX_SITES:
                self._sites.clear()
            code = self._sites[name] = "site-" + hmac.digest(self._key, b"site:" + name.encode(), "sha256").hex()[:8]
        return code


def _uuid8(digest: bytes) -> UUID:
    return UUID(_uuid_text(digest, 8))  # version 8: custom (RFC 9562)


def _uuid_text(digest: bytes, version: int) -> str:
    """The first 16 bytes of a digest as a UUID's text, with its `version` and the RFC variant set (RFC 9562)."""
    raw = bytearray(digest[:16])
    raw[6] = (raw[6] & 0x0F) | (version << 4)
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def configured_pseudonyms() -> Pseudonyms:
    """The pseudonyms under `CONTINUUM_PSEUDONYM_KEY`; ConfigurationError (one line, the key never shown) when it is unset
    or not a key."""
    return _pseudonyms_of(os.environ.get("CONTINUUM_PSEUDONYM_KEY"))


@functools.lru_cache(maxsize=4)
def _pseudonyms_of(_raw: str | None) -> Pseudonyms:  # cached by the variable's value: the relay's hot path calls it
    key = load_settings().pseudonym_key
    if key is None:
        raise ConfigurationError(KEY_MISSING)
    return Pseudonyms(base64.b64decode(key.get_secret_value()))


@dataclass(frozen=True)
class Envelope:
    """A decoded message's envelope; `journey_id` is what the key names: the journey's pseudonym."""

    ce_id: str
    ce_type: str
    journey_id: UUID
    version: int
    position: int
    recorded_at: datetime
    chain_head: str | None
    episode: int | None = None
    stay: int | None = None


def published_facts(state: Mapping[str, Any], name: str, role: str, pseudonyms: Pseudonyms, subject: UUID) -> dict[str, Any]:
    """An event's facts as the contract publishes them: withheld fields left out, ids keyed, the rest coded. `state` is
    the event's fields by name (a domain event's `vars`, or its stored state read plainly: `infra/kafka/wire.py`), `role`
    the role of whoever recorded it."""
    facts = {field: state[field] for field in _FIELDS[name] if field in state}
    facts["recorded_role"] = role_code(role)
    if name in PSEUDONYMISED:
        kind = PSEUDONYMISED[name]
        facts[f"{kind}_id"] = pseudonyms.of_text(subject, kind, facts[f"{kind}_id"])
    if "site" in facts:
        facts["site"] = pseudonyms.site(facts["site"])
    if name == "WithdrawalManagementStarted":
        facts["substances"] = substance_codes(facts["substances"])
    elif name == "DrugTestResulted":
        facts["substances"] = analyte_results(facts["substances"])
        facts["expected_medications"] = analyte_codes(facts["expected_medications"])
    elif name == "EntryCorrected":
        published = correction_published(state["corrects_type"], state["field"])
        facts["values_withheld"] = not published
        for value in ("previous_value", "corrected_value"):
            facts[value] = _corrected(state["field"], facts[value], pseudonyms) if published else None
    return facts


_FIELDS = {name: tuple(model.model_fields) for name, model in MODELS.items()}
"""Each model's field names, in order (a model class's `model_fields` is a property that costs a microsecond)."""


def _corrected(field: str, value: Any, pseudonyms: Pseudonyms) -> Any:  # noqa: ANN401 - a correction's scalar
    """A corrected value coded like the field it corrects."""
    if field == "site" and isinstance(value, str):
        return pseudonyms.site(value)
    if field == "sex":
        return sex_code(value if isinstance(value, str) else None)
    return value


def encode(event: Any, position: int, chain_head: str | None, pseudonyms: Pseudonyms | None = None) -> KafkaMessage:  # noqa: ANN401
    """The message for a stored event at notification `position`; raises ContractViolation. Keyed with `pseudonyms`,
    by default those of `CONTINUUM_PSEUDONYM_KEY` (ConfigurationError when it is not set).

    The same bytes as `encode_with_sdk` (a test holds them equal for every event type), written straight into the
    binding's `KafkaMessage`: the SDK's per-attribute validation cost more than half the relay's own work per event.
    The relay itself encodes stored events without making the domain event (`infra/kafka/wire.py`, held to these bytes).
    """
    pseudonyms = pseudonyms or configured_pseudonyms()
    name = event_name(event)
    subject = pseudonyms.journey(event.originator_id)
    data = _payload(event, name, position, pseudonyms, subject)
    journey = str(subject).encode()
    headers = message_headers(
        subject, subject_header(journey), type_header(name), event.originator_version, event.timestamp.isoformat(),
        position, chain_head, getattr(event, "episode", None), getattr(event, "stay", None),
    )
    return KafkaMessage(headers=dict(headers), key=journey, value=data.model_dump_json().encode())


def message_headers(
    journey: UUID, subject: tuple[str, bytes], type_: tuple[str, bytes], version: int, stamp: str, position: int,
    chain_head: str | None, episode: int | None, stay: int | None,
) -> Headers:
    """A message's headers, in order, as kafka-python sends them: `journey` the journey's pseudonym, `subject` and
    `type_` the `ce_subject` and `ce_type` headers (`subject_header`, `type_header`), `version` the event's, `stamp` its
    recorded time in ISO form; `episode` and `stay` when it has them (see the module's doc)."""
    headers = [
        ("ce_id", _event_id_text(journey, version)),
        _SOURCE_HEADER,
        type_,
        _SPECVERSION_HEADER,
        ("ce_time", (stamp[:-6] + "Z" if stamp.endswith("+00:00") else stamp).encode()),
        subject,
        _CONTENT_TYPE_HEADER,
        ("ce_sequence", _SEQUENCE % version),
        ("ce_position", b"%d" % position),
    ]
    if chain_head:
        headers.append(("ce_chainhead", chain_head.encode()))
    if episode is not None:
        headers.append(("ce_episode", _SEQUENCE % episode))
    if stay is not None:
        headers.append(("ce_stay", _SEQUENCE % stay))
    return headers


def subject_header(key: bytes) -> tuple[str, bytes]:
    return ("ce_subject", key)


def type_header(name: str) -> tuple[str, bytes]:
    """The `ce_type` header of an event type (one tuple per type: a batch pickled for the relay carries it once)."""
    header = _TYPE_HEADERS.get(name)
    if header is None:
        header = _TYPE_HEADERS[name] = ("ce_type", ce_type(name).encode())
    return header


def _event_id_text(journey: UUID, version: int) -> bytes:
    """`str(event_id(journey, version))`, encoded, without building UUID objects: uuid5 by hand (RFC 9562: SHA-1 of the
    namespace's bytes and the name, version 5 and the variant set); `encode_with_sdk` keeps the library call, and the
    test that holds the two equal holds these bytes."""
    return _uuid_text(hashlib.sha1(journey.bytes + b"%d" % version, usedforsecurity=False).digest(), 5).encode()


_SEQUENCE = b"%%0%dd" % SEQUENCE_WIDTH  # b"%010d"
_SOURCE_HEADER = ("ce_source", SOURCE.encode())
_SPECVERSION_HEADER = ("ce_specversion", b"1.0")
_CONTENT_TYPE_HEADER = ("content-type", CONTENT_TYPE.encode())
_TYPE_HEADERS: dict[str, tuple[str, bytes]] = {}


def _payload(event: Any, name: str, position: int, pseudonyms: Pseudonyms, subject: UUID) -> Any:  # noqa: ANN401
    try:
        return MODELS[name].model_validate(published_facts(vars(event), name, event.recorded_by.role, pseudonyms, subject))
    except (KeyError, ValidationError) as error:
        where = f"event #{position} ({name}, journey {event.originator_id} version {event.originator_version})"
        msg = f"{where} does not fit {ce_type(name)}: {error}"
        raise ContractViolation(msg) from None


def encode_with_sdk(event: Any, position: int, chain_head: str | None, pseudonyms: Pseudonyms) -> KafkaMessage:  # noqa: ANN401
    """The reference encoding through the CloudEvents SDK: what `encode` must equal, byte for byte."""
    name = event_name(event)
    subject = pseudonyms.journey(event.originator_id)
    data = _payload(event, name, position, pseudonyms, subject)
    attributes: dict[str, Any] = {
        "id": str(event_id(subject, event.originator_version)),
        "source": SOURCE,
        "type": ce_type(name),
        "specversion": "1.0",
        "time": event.timestamp,
        "subject": str(subject),
        "datacontenttype": CONTENT_TYPE,
        "sequence": f"{event.originator_version:0{SEQUENCE_WIDTH}d}",
        "position": str(position),
    }
    if chain_head:
        attributes["chainhead"] = chain_head
    for attribute, value in _belonging(event):
        attributes[attribute] = f"{value:0{SEQUENCE_WIDTH}d}"
    cloud = CloudEvent(attributes, data.model_dump_json().encode())
    return to_binary_event(cloud, key_mapper=lambda _: str(subject).encode())


def _belonging(event: Any) -> list[tuple[str, int]]:  # noqa: ANN401 - an event of the catalogue
    """The episode and stay extension attributes an event carries: those it has."""
    return [(name, value) for name in ("episode", "stay") if (value := getattr(event, name, None)) is not None]


def kafka_headers(message: KafkaMessage) -> Headers:
    return list(message.headers.items())


def decode(headers: Headers, key: bytes | None, value: bytes | None) -> tuple[Envelope, Any]:
    """The envelope and the domain event a message stands for, with withheld fields filled by
    placeholders (`NOT_PUBLISHED`, empty goals, the journey's pseudonym as its id and client_ref) and
    coded fields as their codes; raises PoisonMessage, whatever is wrong with the message. Reads
    version 2 only: a message of another version is poison."""
    if value and _nested_too_deep(value):
        raise PoisonMessage(f"value nested deeper than {MAX_NESTING} levels")
    try:
        cloud = from_binary_event(KafkaMessage(dict(headers), key, value or b""))
    except Exception as error:  # noqa: BLE001 - the SDK's own errors, a header that is not UTF-8 or has no value...
        raise PoisonMessage(f"not a CloudEvents binary-mode message: {_said(error)}") from None
    envelope = _envelope(cloud, key)
    name = event_name_of(envelope.ce_type)
    data = cloud.get_data()
    if not isinstance(data, dict):
        raise PoisonMessage(f"value of {envelope.ce_type} is not a JSON object")
    try:
        published = MODELS[name].model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, p['loc'])) or 'value'}: {p['msg']}" for p in error.errors()[:5])
        raise PoisonMessage(f"value does not fit {envelope.ce_type}: {problems}") from None
    try:
        return envelope, _domain_event(name, envelope, published.model_dump())
    except Exception as error:  # noqa: BLE001 - a value the contract takes but the domain event does not
        raise PoisonMessage(f"value of {envelope.ce_type} makes no event: {_said(error)}") from None


def _said(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]


def _nested_too_deep(value: bytes) -> bool:
    """Arrays and objects nested deeper than MAX_NESTING, counted outside strings; without looking further
    when there are not that many brackets at all (every message of ours)."""
    if value.count(b"[") + value.count(b"{") <= MAX_NESTING:
        return False
    depth = 0
    for bracket in _STRING.sub(b"", value).translate(None, _NOT_BRACKETS):
        depth += 1 if bracket in _OPENING else -1
        if depth > MAX_NESTING:
            return True
    return False


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_OPENING = b"[{"


def event_name_of(type_: str) -> str:
    parsed = parse_ce_type(type_)
    if parsed is None or parsed[0] not in MODELS:
        raise PoisonMessage(f"unknown event type {type_!r}")
    if parsed[1] != VERSION:
        raise PoisonMessage(f"unsupported version v{parsed[1]} of {parsed[0]} (this consumer reads v{VERSION})")
    return parsed[0]


def _envelope(cloud: Any, key: bytes | None) -> Envelope:  # noqa: ANN401 - a CloudEvent of any spec version
    try:
        journey_id = UUID((key or b"").decode())
        version = int(cloud.get_extension("sequence"))
        position = int(cloud.get_extension("position"))
        episode, stay = (_sequence_or_none(cloud.get_extension(name)) for name in ("episode", "stay"))
    except (ValueError, TypeError, UnicodeDecodeError) as error:
        raise PoisonMessage(f"bad key, ce_sequence, ce_position, ce_episode or ce_stay: {error}") from None
    if not (1 <= version <= LARGEST and 0 <= position <= LARGEST):
        raise PoisonMessage(f"ce_sequence {version} or ce_position {position} out of range")
    if any(value is not None and not 1 <= value <= version for value in (episode, stay)):
        raise PoisonMessage(f"ce_episode {episode} or ce_stay {stay} is not a ce_sequence up to {version}")
    if cloud.get_id() != str(event_id(journey_id, version)):
        raise PoisonMessage(f"ce_id {cloud.get_id()} is not the id of journey {journey_id} version {version}")
    recorded_at = cloud.get_time()
    if recorded_at is None:
        raise PoisonMessage("no ce_time")
    return Envelope(
        cloud.get_id(), cloud.get_type(), journey_id, version, position, recorded_at, cloud.get_extension("chainhead"),
        episode, stay,
    )


def _sequence_or_none(value: object) -> int | None:
    return None if value is None else int(str(value))


_PLACEHOLDERS: dict[str, Any] = {
    "clinician": NOT_PUBLISHED, "goals": [], "reason": NOT_PUBLISHED, "referral_onward": None, "program": NOT_PUBLISHED,
    "activity": NOT_PUBLISHED, "recipient": NOT_PUBLISHED,
}


def _domain_event(name: str, envelope: Envelope, facts: dict[str, Any]) -> Any:  # noqa: ANN401 - an event of the catalogue
    role = facts.pop("recorded_role")
    facts.pop("values_withheld", None)
    for kind in ("session", "specimen"):
        if f"{kind}_id" in facts:
            facts[f"{kind}_id"] = str(facts[f"{kind}_id"])
    event_class = getattr(ClientJourney, name)
    known = {
        "originator_id": envelope.journey_id, "originator_version": envelope.version, "timestamp": envelope.recorded_at,
        "originator_topic": get_topic(ClientJourney), "recorded_by": Actor(NOT_PUBLISHED, role),
        "command_id": envelope.ce_id, "client_ref": str(envelope.journey_id),
        "episode": envelope.episode, "stay": envelope.stay,
    }
    withheld = dict(_PLACEHOLDERS)
    if name in ("ConsentGranted", "ConsentRevoked"):  # a grant and its revocations pair by the grant's version
        withheld["consent_id"] = f"consent-{facts.get('granted_version', envelope.version)}"
        withheld["purpose_text"] = NOT_PUBLISHED if facts.get("purpose") == "named" else None
    values = {}
    for field in dataclasses.fields(event_class):
        if field.name in facts:
            values[field.name] = facts[field.name]
        elif field.name in WITHHELD.get(name, ()):
            values[field.name] = withheld.get(field.name, known.get(field.name))
        else:
            values[field.name] = known[field.name]
    return event_class(**values)
