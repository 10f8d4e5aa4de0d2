"""How domain values become JSON in the store: every enum by its value, dates, actors.

`FastJSONTranscoder` writes and reads the very bytes of the library's `JSONTranscoder` with orjson: the
value is first walked in Python the way the standard `json` encoder walks it (its own types by
`isinstance`, in its order; everything else through the registered transcodings, as the library's
`default` hook does), then orjson writes the plain result. Whatever orjson could write otherwise (a
float in exponent form or not finite, a dict key that is not a string, an int beyond 64 bits) goes to
the library's encoder instead; whatever orjson cannot read or would read otherwise (19 digits or more in
a row), to the library's decoder.
"""

from __future__ import annotations

import re
from datetime import date
from enum import Enum
from typing import Any

import orjson
from eventsourcing.persistence import JSONTranscoder, Transcoding

from domain.levels import VOCABULARIES
from domain.values import Actor


class EnumAsValue(Transcoding):
    def __init__(self, vocabulary: type[Enum]) -> None:
        self.type = vocabulary
        self.name = vocabulary.__name__

    def encode(self, obj: Enum) -> str:
        return str(obj.value)

    def decode(self, data: str) -> Enum:
        decoded: Enum = self.type(data)
        return decoded


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class ActorAsDict(Transcoding):
    type = Actor
    name = "actor"

    def encode(self, obj: Actor) -> dict[str, str]:
        return {"id": obj.id, "role": obj.role}

    def decode(self, data: dict[str, Any]) -> Actor:
        return Actor(id=data["id"], role=data["role"])


def register_transcodings(transcoder: JSONTranscoder) -> None:
    for vocabulary in VOCABULARIES:
        transcoder.register(EnumAsValue(vocabulary))
    transcoder.register(DateAsISO())
    transcoder.register(ActorAsDict())


class _Unlike(Exception):  # noqa: N818 - a signal, not an error: orjson would not write what json writes
    pass


INT64 = 2**63
LONG_NUMBER = re.compile(rb"\d{19}")  # 19 digits or more (in a string too: then the library's slower reader)


class FastJSONTranscoder(JSONTranscoder):
    """The library's JSON transcoder, byte for byte, encoding and decoding with orjson (see the module)."""

    def encode(self, obj: Any) -> bytes:  # noqa: ANN401 - any event state
        try:
            return orjson.dumps(self._plain(obj))
        except (_Unlike, orjson.JSONEncodeError):
            return super().encode(obj)

    def decode(self, data: bytes) -> Any:  # noqa: ANN401
        if LONG_NUMBER.search(data):  # orjson reads an integer beyond 64 bits as a float
            return super().decode(data)
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            return super().decode(data)
        return self._hooked(parsed)

    def _plain(self, o: Any) -> Any:  # noqa: ANN401, C901, PLR0911 - the json encoder's order of checks
        kind = type(o)
        if kind is str or o is None or o is True or o is False:
            return o
        if kind is dict:
            return {self._key(key): self._plain(value) for key, value in o.items()}
        if kind is int:
            if -INT64 <= o < INT64:
                return o
            raise _Unlike
        if kind is list or kind is tuple:
            return [self._plain(value) for value in o]
        if isinstance(o, str):
            return str.__str__(o)
        if isinstance(o, int):
            return self._plain(int(int.__repr__(o)))
        if isinstance(o, float):
            text = float.__repr__(o)
            if "e" in text or "n" in text:  # exponent form, inf, nan: orjson writes these otherwise
                raise _Unlike
            return float(o)
        if isinstance(o, list | tuple):
            return [self._plain(value) for value in o]
        if isinstance(o, dict):
            return {self._key(key): self._plain(value) for key, value in o.items()}
        return self._plain(self._encode_obj(o))

    @staticmethod
    def _key(key: Any) -> str:  # noqa: ANN401
        if type(key) is str:
            return key
        raise _Unlike

    def _hooked(self, o: Any) -> Any:  # noqa: ANN401
        """The library decoder's object hook on every object, innermost first."""
        kind = type(o)
        if kind is dict:
            return self._decode_obj({key: self._hooked(value) for key, value in o.items()})
        if kind is list:
            return [self._hooked(value) for value in o]
        return o
