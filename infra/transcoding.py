"""How domain values become JSON in the store: every enum by its value, dates, actors.

`FastJSONTranscoder` writes and reads the very bytes of the library's `JSONTranscoder` with orjson: the
value is first walked in Python the way the standard `json` encoder walks it (its own types by
`isinstance`, in its order; everything else through the registered transcodings, as the library's
`default` hook does), then orjson writes the plain result. Whatever orjson could write otherwise (a
float in exponent form or not finite, a dict key that is not a string, an int beyond 64 bits) goes to
the library's encoder instead; whatever orjson cannot read, or holds a number orjson may read otherwise
(a float of 2**63 or more: orjson reads an integer beyond 64 bits as one), to the library's decoder.
"""

from __future__ import annotations

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


class _Unlike(Exception):  # noqa: N818 - a signal, not an error: orjson would not do what json does
    pass


_AS_IS = frozenset((str, int, bool, type(None)))  # written alike by json and orjson (an int beyond 64 bits: orjson refuses)
_WIDEST = float(2**63)  # orjson reads every integer from -2**63 to 2**64 - 1 as an int: a float below this was written as one
_BASE = object()  # a subclass of one of json's own types: written as json writes its base type


class FastJSONTranscoder(JSONTranscoder):
    """The library's JSON transcoder, byte for byte, encoding and decoding with orjson (see the module)."""

    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[type, Any] = {}  # a type that is not _AS_IS -> (its transcoding's name, encode), or _BASE

    def encode(self, obj: Any) -> bytes:  # noqa: ANN401 - any event state
        try:
            return orjson.dumps(self._plain(obj))
        except (_Unlike, orjson.JSONEncodeError):
            return super().encode(obj)

    def decode(self, data: bytes) -> Any:  # noqa: ANN401
        try:
            return self._hooked(orjson.loads(data))
        except (_Unlike, orjson.JSONDecodeError):
            return super().decode(data)

    # writing: the value as json would see it, walked in Python only where it is not plain

    def _plain(self, o: Any) -> Any:  # noqa: ANN401
        kind = type(o)
        if kind in _AS_IS:
            return o
        if kind is dict:
            return self._plain_dict(o)
        if kind is list:
            return [value if type(value) in _AS_IS else self._plain(value) for value in o]
        return self._other(o, kind)

    def _plain_dict(self, d: dict[Any, Any]) -> dict[str, Any]:
        plain = {}
        for key, value in d.items():
            if type(key) is not str:
                raise _Unlike  # json writes other keys as strings, orjson refuses them
            plain[key] = value if type(value) in _AS_IS else self._plain(value)
        return plain

    def _other(self, o: Any, kind: type) -> Any:  # noqa: ANN401
        """json's own types by isinstance, in its order, else the registered transcoding, as the library's
        `default` hook writes it (the route of each type found once)."""
        route: Any = self._routes.get(kind)
        if route is None:
            route = _BASE if issubclass(kind, str | int | float | list | tuple | dict) else self._transcoding(kind)
            if route is None:
                return self._encode_obj(o)  # raises what the library raises for a type without a transcoding
            self._routes[kind] = route
        if route is _BASE:
            return self._base(o)
        name, encode = route
        data = encode(o)
        return {"_type_": name, "_data_": data if type(data) in _AS_IS else self._plain(data)}

    def _transcoding(self, kind: type) -> tuple[str, Any] | None:
        transcoding = self.types.get(kind)
        return None if transcoding is None else (transcoding.name, transcoding.encode)

    def _base(self, o: Any) -> Any:  # noqa: ANN401
        """A subclass of one of json's own types, written as json writes its base type (a float only in plain
        decimal form: orjson writes exponents, inf and nan otherwise)."""
        if isinstance(o, str):
            return str.__str__(o)
        if isinstance(o, int):
            return int(int.__repr__(o))
        if isinstance(o, float):
            text = float.__repr__(o)
            if "e" in text or "n" in text:
                raise _Unlike
            return float(o)
        if isinstance(o, list | tuple):
            return [self._plain(value) for value in o]
        return self._plain_dict(o)

    # reading: the library decoder's object hook on every object, innermost first

    def _hooked(self, value: Any) -> Any:  # noqa: ANN401
        kind = type(value)
        if kind is dict:
            return self._hooked_dict(value)
        if kind is list:
            for index, item in enumerate(value):
                if type(item) not in _AS_IS:
                    value[index] = self._hooked(item)
            return value
        if kind is float and not -_WIDEST < value < _WIDEST:
            raise _Unlike  # orjson reads an integer beyond 64 bits as a float (so at least 2**63): the library's reader decides
        return value

    def _hooked_dict(self, d: dict[str, Any]) -> Any:  # noqa: ANN401
        if len(d) == 2 and "_type_" in d and "_data_" in d:  # noqa: PLR2004 - what the hook changes
            data = d["_data_"] = self._hooked(d["_data_"])
            transcoding = self.names.get(d["_type_"]) if type(d["_type_"]) is str else None
            return self._decode_obj(d) if transcoding is None else transcoding.decode(data)
        for key, value in d.items():
            if type(value) not in _AS_IS:
                d[key] = self._hooked(value)
        return d
