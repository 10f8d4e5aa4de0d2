"""A stored event's message straight from its stored JSON: the relay's hot path.

`encode(mapper.to_domain_event(stored), ...)` first makes the domain event (each enum, date, time and actor decoded
into its object, the event object built), only for `encode` to read it back field by field. `WireEncoder` reads the
stored JSON with orjson into plain values (a transcoded value as its `_data_`: an enum as its value, a date or a time
as its ISO text, an actor as `{id, role}`), upcasts it as the mapper does, and builds the same published facts
(`envelope.published_facts`), which the contract's pydantic model validates and writes: the model reads an enum's
value and an ISO date or time as it reads the object, and writes what it read the same way. The headers are
`encode`'s (`envelope.message_headers`), as the list kafka-python takes. A test holds every message equal, byte for
byte, to `encode`'s, over every event type and stored events of every class version (tests/unit/test_kafka_wire.py).

Whatever the plain reading cannot vouch for goes through the mapper and `encode` instead: a transcoder that is not
the library's JSON, a compressed store (this project's is not), a value of a transcoding other than those four, a
number orjson reads otherwise than `json` (an integer beyond 64 bits), a state that does not fit its model (where
`encode` raises its ContractViolation), a row the mapper cannot read (where it raises its error).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Mapper, StoredEvent
from eventsourcing.utils import resolve_topic

from infra.kafka.contract import MODELS
from infra.kafka.envelope import (
    Headers,
    Pseudonyms,
    encode,
    kafka_headers,
    message_headers,
    published_facts,
    subject_header,
    type_header,
)
from infra.transcoding import ActorAsDict, DateAsISO, EnumAsValue

Wire = tuple[bytes, bytes, Headers]
"""A message as kafka-python's `send` takes it: key, value, headers."""

MAX_JOURNEYS = 100_000
"""Journey pseudonyms a `WireEncoder` keeps computed (a journey's events come in runs; a longer list starts again)."""

_PLAIN = (DatetimeAsISO, DateAsISO, EnumAsValue, ActorAsDict)
"""The transcodings whose `_data_` the contract's models read as they read the decoded object."""
_BEYOND_64_BITS = float(2**63)  # orjson reads a larger integer as a float, where `json` reads an int


class _Unsure(Exception):  # noqa: N818 - a signal: the plain reading cannot vouch for this state
    pass


@dataclass(frozen=True)
class _Kind:
    """What encoding needs of one stored topic, found once."""

    name: str
    type_header: tuple[str, bytes]
    upcasts: tuple[Callable[[dict[str, Any]], None], ...]  # upcast_v1_v2, upcast_v2_v3...: the class's, in order
    validate: Callable[[Any], Any]
    to_json: Callable[[Any], bytes]


class WireEncoder:
    """Stored events as messages (key, value, headers): `encode(mapper.to_domain_event(stored), ...)`'s bytes."""

    def __init__(self, mapper: Mapper[Any], pseudonyms: Pseudonyms) -> None:
        self.mapper = mapper
        self.pseudonyms = pseudonyms
        transcoder = mapper.transcoder
        self._json = isinstance(transcoder, JSONTranscoder) and not mapper.compressor  # the format read plainly
        self._plain_types = frozenset(
            name for name, transcoding in getattr(transcoder, "names", {}).items() if isinstance(transcoding, _PLAIN)
        )
        self._kinds: dict[str, _Kind] = {}
        self._journeys: dict[UUID, tuple[UUID, bytes, tuple[str, bytes]]] = {}
        self.indirect = 0
        """Events encoded through the mapper and `encode` (none, with this project's store: a test holds it)."""

    def encode(self, stored: StoredEvent, position: int, chain_head: str | None) -> Wire:
        """The message of `stored` at notification `position`; raises ContractViolation as `encode` does."""
        if self._json:
            try:
                return self._direct(stored, position, chain_head)
            except (_Unsure, ValueError, KeyError, TypeError, AttributeError):  # ValueError: orjson's, pydantic's
                pass  # the mapper and `encode` decide: the same message, or their error
        self.indirect += 1
        message = encode(self.mapper.to_domain_event(stored), position, chain_head, self.pseudonyms)
        return cast("bytes", message.key), message.value, kafka_headers(message)

    def _direct(self, stored: StoredEvent, position: int, chain_head: str | None) -> Wire:
        kind = self._kinds.get(stored.topic) or self._kind(stored.topic)
        state = self._state(stored, kind)
        subject, key, subject_header = self._journey(cast("UUID", stored.originator_id))  # a str: read by the mapper
        facts = published_facts(state, kind.name, state["recorded_by"]["role"], self.pseudonyms, subject)
        value = kind.to_json(kind.validate(facts))
        stamp = datetime.fromisoformat(state["timestamp"]).isoformat()  # as the mapper's decoding would write it
        headers = message_headers(
            subject, subject_header, kind.type_header, stored.originator_version, stamp, position, chain_head,
            state.get("episode"), state.get("stay"),
        )
        return key, value, headers

    def _state(self, stored: StoredEvent, kind: _Kind) -> dict[str, Any]:
        """The stored state read plainly and upcast to the class's version, as `Mapper.to_domain_event` reads it."""
        data = stored.state
        if self.mapper.cipher:
            data = self.mapper.cipher.decrypt(data)
        state = orjson.loads(data)
        if type(state) is not dict:
            raise _Unsure
        for name, value in state.items():
            if type(value) in _NOT_PLAIN:
                state[name] = self._plain(value)
        state["originator_id"] = stored.originator_id
        state["originator_version"] = stored.originator_version
        from_version = state.pop("class_version", 1)
        if type(from_version) is not int or from_version < 1:
            raise _Unsure
        for upcast in kind.upcasts[from_version - 1:]:
            upcast(state)
        return state

    def _plain(self, value: Any) -> Any:  # noqa: ANN401 - JSON of any shape
        kind = type(value)
        if kind is dict:
            if len(value) == 2 and "_type_" in value and "_data_" in value:  # noqa: PLR2004 - a transcoded value
                if value["_type_"] not in self._plain_types:
                    raise _Unsure
                data = value["_data_"]
                return self._plain(data) if type(data) in _NOT_PLAIN else data
            for name, item in value.items():
                if type(item) in _NOT_PLAIN:
                    value[name] = self._plain(item)
            return value
        if kind is list:
            return [self._plain(item) if type(item) in _NOT_PLAIN else item for item in value]
        if value.is_integer() and abs(value) >= _BEYOND_64_BITS:  # a float
            raise _Unsure
        return value

    def _kind(self, topic: str) -> _Kind:
        cls = resolve_topic(topic)
        model = MODELS[cls.__name__]
        kind = self._kinds[topic] = _Kind(
            cls.__name__, type_header(cls.__name__),
            tuple(getattr(cls, f"upcast_v{v}_v{v + 1}") for v in range(1, getattr(cls, "class_version", 1))),
            model.__pydantic_validator__.validate_python, model.__pydantic_serializer__.to_json,
        )
        return kind

    def _journey(self, journey_id: UUID) -> tuple[UUID, bytes, tuple[str, bytes]]:
        """The journey's pseudonym, its text (the message key) and its `ce_subject` header: the same objects for every
        event of the journey (a batch pickled for the relay carries each once)."""
        known = self._journeys.get(journey_id)
        if known is None:
            if len(self._journeys) >= MAX_JOURNEYS:
                self._journeys.clear()
            subject = self.pseudonyms.journey(journey_id)
            key = str(subject).encode()
            known = self._journeys[journey_id] = (subject, key, subject_header(key))
        return known


_NOT_PLAIN = frozenset((dict, list, float))
"""Types `_plain` looks into (a float: to see whether orjson read it from an integer beyond 64 bits)."""
