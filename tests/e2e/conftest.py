"""Fixtures of the end-to-end tests: the HTTP API over each store (see api_support.py), and the tests'
fixed clock for every command run in process."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.e2e.api_support import ApiUnderTest, api_under_test


@pytest.fixture(autouse=True)
def _fixed_service_clock(service_clock: datetime) -> None:
    """Every command run in process here (CLI, API, a bootstrapped service) reads the tests' fixed clock."""


@pytest.fixture
def api(database_url: str) -> Iterator[ApiUnderTest]:
    """The API with projections kept current in process, as `continuum serve` runs it."""
    with api_under_test(database_url) as under_test:
        yield under_test


@pytest.fixture
def lagging_api(database_url: str) -> Iterator[ApiUnderTest]:
    """The API with nobody projecting and a short wait: a projection that does not catch up."""
    with api_under_test(database_url, follow=False, api_consistency_timeout=0.3) as under_test:
        yield under_test
