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

from datetime import date, datetime
from enum import Enum
from typing import Any, cast
from uuid import UUID, SafeUUID

import orjson
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Transcoding, UUIDAsHex

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
        self._readers: dict[str, Any] = {}  # a transcoding's name -> what reads its text data (see `_reader`)
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

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        self._readers[transcoding.name] = _reader(transcoding)

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
            return self._typed(d)
        readers = self._readers
        for key, value in d.items():  # the typed values (every event's times, ids, vocabularies) read here, in line
            kind = type(value)
            if kind is dict:
                if len(value) == 2 and "_type_" in value and "_data_" in value:  # noqa: PLR2004 - a typed value
                    name, data = value["_type_"], value["_data_"]
                    read = readers.get(name) if type(name) is str and type(data) is str else None
                    d[key] = read(data) if read is not None else self._typed(value)
                else:
                    d[key] = self._hooked_dict(value)
            elif kind not in _AS_IS:
                d[key] = self._hooked(value)
        return d

    def _typed(self, d: dict[str, Any]) -> Any:  # noqa: ANN401
        """What the library's hook makes of `{"_type_": name, "_data_": data}`: the named transcoding's value, else
        what `_decode_obj` does (raises for a name nobody registered)."""
        data = d["_data_"] = self._hooked(d["_data_"])
        transcoding = self.names.get(d["_type_"]) if type(d["_type_"]) is str else None
        return self._decode_obj(d) if transcoding is None else transcoding.decode(data)


def _reader(transcoding: Transcoding) -> Any:  # noqa: ANN401
    """What reads a transcoding's text data the way its `decode` does, without its per-call Python where that is
    plain: a vocabulary's member by value from the enum's own map (what calling the enum looks up first), a
    datetime by `fromisoformat` (the library's decode after its type assert), a 32-digit hex UUID built from its
    integer (the text `UUID(data)` takes as the same value). Anything else goes to `decode` itself."""
    decode = transcoding.decode
    if type(transcoding) is EnumAsValue:
        vocabulary = cast("type[Enum]", transcoding.type)
        members = vocabulary._value2member_map_

        def member(data: str) -> Any:  # noqa: ANN401
            found = members.get(data)
            return found if found is not None else vocabulary(data)

        return member
    if type(transcoding) is DatetimeAsISO:
        return datetime.fromisoformat
    if type(transcoding) is UUIDAsHex:
        return _uuid_from_hex
    return decode


_new, _set = object.__new__, object.__setattr__


def _uuid_from_hex(data: str) -> UUID:
    """`UUID(data)` for text of 32 letters and digits (what `UUID.hex` writes), without its parsing: UUID drops
    "urn:", "uuid:", braces and hyphens, which such text cannot hold, then makes `int(text, 16)` its `int` (raising
    what int raises) with `is_safe` unknown, as here. Any other text goes to `UUID` itself."""
    if len(data) != 32 or not data.isalnum():  # noqa: PLR2004 - UUID.hex's length
        return UUID(data)
    made = _new(UUID)
    _set(made, "int", int(data, 16))
    _set(made, "is_safe", SafeUUID.unknown)
    return made
