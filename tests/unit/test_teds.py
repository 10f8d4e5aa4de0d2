"""The TEDS-D codings: LOS bands, the SERVICES_D crosswalk (version 1), age groups."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.levels import Level
from services.teds import CROSSWALK_VERSION, age_code, los_code, services_code


@pytest.mark.parametrize(("days", "code"), [
    (0, 1), (1, 1), (30, 30), (31, 31), (45, 31), (46, 32), (60, 32), (61, 33), (90, 33), (91, 34), (120, 34),
    (121, 35), (180, 35), (181, 36), (365, 36), (366, 37), (2000, 37),
])
def test_los_is_coded_1_to_37(days, code):
    assert los_code(days) == code


def test_the_crosswalk_version_1():
    assert CROSSWALK_VERSION == 1
    assert {level: services_code(level, 10) for level in Level} == {
        Level.WM_INPATIENT_MANAGED: 1, Level.WM_INPATIENT_MONITORED: 2, Level.WM_RESIDENTIAL: 2, Level.INPATIENT_MANAGED: 3,
        Level.RESIDENTIAL_LOW: 4, Level.RESIDENTIAL_HIGH: 4, Level.INPATIENT_MONITORED: 4, Level.PHP: 6, Level.IOP: 6,
        Level.OUTPATIENT: 7, Level.WM_AMBULATORY: 8, Level.WM_AMBULATORY_EXTENDED: 8,
    }
    assert services_code(Level.RESIDENTIAL_HIGH, 30) == 4
    assert services_code(Level.RESIDENTIAL_HIGH, 31) == 5


def test_age_groups():
    at = datetime(2025, 6, 1, tzinfo=UTC)
    assert [age_code(2025 - age, at) for age in (11, 12, 17, 18, 24, 29, 54, 55, 64, 65, 90)] == [
        -9, 1, 2, 3, 4, 5, 10, 11, 11, 12, 12]
    assert age_code(None, at) == -9
