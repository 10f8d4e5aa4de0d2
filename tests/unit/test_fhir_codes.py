"""The LOINC codes the FHIR export writes are well formed: each one's check digit is LOINC's mod-10 digit (a code
copied with a wrong last digit names nothing, or something else)."""

from __future__ import annotations

import pytest

from services.fhir import ANALYTE_LOINC


def loinc_check_digit(number: str) -> int:
    """LOINC's mod-10 check digit of the part before the hyphen (the LOINC Users' Guide, appendix on check digits)."""
    digits = number[::-1]
    odd, even = digits[0::2][::-1], digits[1::2][::-1]
    total = sum(int(d) for d in str(int(odd) * 2) + even)
    return (10 - total % 10) % 10


@pytest.mark.parametrize(("code", "valid"), [("2345-7", True), ("718-7", True), ("59284-0", True), ("19295-1", False)])
def test_the_check_digit_is_loincs_own(code, valid):
    number, digit = code.split("-")
    assert (loinc_check_digit(number) == int(digit)) is valid


@pytest.mark.parametrize("analyte", sorted(ANALYTE_LOINC))
def test_every_analyte_code_has_its_check_digit(analyte):
    code, display = ANALYTE_LOINC[analyte]
    number, digit = code.split("-")
    assert loinc_check_digit(number) == int(digit), (analyte, code)
    assert display.endswith("[Presence] in Urine by Screen method")
