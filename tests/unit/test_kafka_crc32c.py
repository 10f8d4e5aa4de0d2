"""kafka-python computes the CRC32C of every record batch it produces: with the `crc32c` package it
does so in C; without it, in pure Python (most of the relay's producer time)."""

from __future__ import annotations

import crc32c
from kafka.record import util
from kafka.record._crc32c import crc as pure_python_crc32c


def test_kafka_python_uses_the_c_crc32c() -> None:
    assert util._crc32c is crc32c.crc32c  # the function kafka-python picked at import


def test_the_c_crc32c_gives_kafka_pythons_checksums() -> None:
    data = memoryview(b"care.journey record batch \x00\x01\xff" * 37)
    assert util.calc_crc32c(data) == pure_python_crc32c(bytes(data)) == crc32c.crc32c(data)
    assert util.calc_crc32c(memoryview(b"123456789")) == 0xE3069283  # the CRC-32C check value (RFC 3720)
