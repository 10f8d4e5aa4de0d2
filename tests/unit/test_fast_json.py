"""`FastJSONTranscoder` writes the library `JSONTranscoder`'s bytes and reads them back the same, also for
what orjson would write otherwise (it falls back to the library there)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import JSONTranscoder, Transcoding

from domain.levels import Level
from domain.values import Actor
from infra.transcoding import FastJSONTranscoder
from services.journeys import CareContinuum


class Colour(StrEnum):
    RED = "red"


class Size(IntEnum):
    SMALL = 1


def both() -> tuple[JSONTranscoder, JSONTranscoder]:
    app = CareContinuum(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    reference = JSONTranscoder()
    app.register_transcodings(reference)
    return reference, app.mapper.transcoder  # type: ignore[return-value]


VALUES: list[Any] = [
    {"level": Level("3.5"), "on": date(2026, 3, 1), "at": datetime(2026, 3, 1, 9, tzinfo=UTC), "by": Actor("dr-ames", "clinician")},
    {"id": UUID(int=7), "amount": Decimal("1.50"), "tuple": (1, "two", None), "nested": [{"a": [True, False]}]},
    {"hours": 12.5, "tiny": 1e-7, "huge": 1e22, "exact": 1e15, "negative_zero": -0.0},  # exponent forms: the library writes them
    {"inf": float("inf"), "nan": float("nan")},  # the library writes Infinity and NaN; orjson cannot
    {"big": 2**64, "edge": 2**63 - 1, "low": -(2**63)},
    {"minutes": 180.0, "hours": [9.0, 2.25], "below": 9.2e18, "at": 9.223372036854775808e18, "above": 1e19},  # read by orjson below 2**63
    {"lower": -(2**63) - 1, "top": 2**64 - 1, "beyond": 2**64 + 1, "far": -(10**30)},  # integers orjson reads as floats, or not at all
    {1: "int key", None: "none key"},  # json writes these keys as strings
    {"subclasses": [Colour.RED, Size.SMALL]},  # json writes a str or int subclass as its value, never through a transcoding
    {"text": 'é中😀 \u2028 \x00\x1f\t\n"\\/'},
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_the_same_bytes_and_the_same_value_back(value):
    reference, fast = both()
    assert isinstance(fast, FastJSONTranscoder)
    written = reference.encode(value)
    assert fast.encode(value) == written
    assert repr(fast.decode(written)) == repr(reference.decode(written))  # repr: nan != nan


def test_plain_floats_are_read_by_orjson_and_only_wide_numbers_by_the_library(monkeypatch):
    reference, fast = both()
    asked: list[bytes] = []
    library = JSONTranscoder.decode

    def counted(self, data):
        asked.append(data)
        return library(self, data)

    monkeypatch.setattr(JSONTranscoder, "decode", counted)
    session = reference.encode({"minutes": 180.0, "hours": [9.0, 2.25], "at": datetime(2026, 3, 1, 9, tzinfo=UTC)})
    wide = reference.encode({"beyond": 2**64 + 1})
    asked.clear()
    assert fast.decode(session) == {"minutes": 180.0, "hours": [9.0, 2.25], "at": datetime(2026, 3, 1, 9, tzinfo=UTC)}
    assert asked == []
    assert fast.decode(wide) == {"beyond": 2**64 + 1}
    assert asked == [wide]


STORED: list[bytes] = [  # typed values as other writers may have stored them: read as the library's hook reads them
    b'{"id":{"_type_":"uuid_hex","_data_":"0123456789ABCDEFabcdef0123456789"}}',
    b'{"id":{"_type_":"uuid_hex","_data_":"0x23456789abcdefabcdef0123456789"}}',  # int(text, 16) takes 0x, as UUID does
    b'{"id":{"_type_":"uuid_hex","_data_":"{12345678-1234-5678-1234-567812345678}"}}',
    b'{"id":{"_type_":"uuid_hex","_data_":"urn:uuid:12345678-1234-5678-1234-567812345678"}}',
    b'{"at":{"_type_":"datetime_iso","_data_":"2026-03-01T09:00:00.250+01:00"},"on":{"_type_":"date_iso","_data_":"2026-03-01"}}',
    b'{"level":{"_type_":"Level","_data_":"3.5"},"deep":[{"level":{"_type_":"Level","_data_":"2.1"}}]}',
    b'{"other":{"a":"b","c":{"_type_":"Level","_data_":"1"}},"half":{"_type_":"Level","x":1}}',
    b'{"by":{"_type_":"actor","_data_":{"id":"dr-ames","role":"clinician"}}}',
]
REFUSED: list[bytes] = [  # the library's hook refuses these: so does the fast reader, with the same error
    b'{"id":{"_type_":"uuid_hex","_data_":"0123456789abcdefg123456789abcdef"}}',
    b'{"id":{"_type_":"uuid_hex","_data_":"0123"}}',
    b'{"level":{"_type_":"Level","_data_":"9.9"}}',
    b'{"at":{"_type_":"datetime_iso","_data_":"yesterday"}}',
    b'{"what":{"_type_":"nobody_registered","_data_":"x"}}',
    b'{"what":{"_type_":["a"],"_data_":"x"}}',
    b'{"what":{"_type_":7,"_data_":"x"}}',
    b'{"id":{"_type_":"uuid_hex","_data_":7}}',
]


@pytest.mark.parametrize("stored", STORED, ids=range(len(STORED)))
def test_typed_values_read_in_line_are_the_library_hooks_values(stored):
    reference, fast = both()
    read, expected = fast.decode(stored), reference.decode(stored)
    assert read == expected
    assert repr(read) == repr(expected)
    assert [type(value) for value in read.values()] == [type(value) for value in expected.values()]


@pytest.mark.parametrize("stored", REFUSED, ids=range(len(REFUSED)))
def test_typed_values_the_library_refuses_are_refused_alike(stored):
    reference, fast = both()
    with pytest.raises(Exception) as library:  # whatever the library raises
        reference.decode(stored)
    with pytest.raises(type(library.value)) as ours:
        fast.decode(stored)
    assert str(ours.value) == str(library.value)


def test_a_transcoding_registered_later_is_read_by_its_own_decode():
    _, fast = both()

    class Shouting(Transcoding):
        type = bytes
        name = "shouting"

        def encode(self, obj: bytes) -> str:
            return obj.decode().upper()

        def decode(self, data: str) -> bytes:
            return data.lower().encode()

    fast.register(Shouting())
    assert fast.decode(fast.encode({"said": b"hello"})) == {"said": b"hello"}
