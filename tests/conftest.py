"""Fixtures shared by every test folder: the store on SQLite and on PostgreSQL.

PostgreSQL is resolved in this order: CONTINUUM_TEST_POSTGRES_URL, testcontainers when a Docker
daemon answers, the local server on 127.0.0.1:5432, then a throwaway local cluster (initdb).
With CONTINUUM_REQUIRE_SERVICES set (`.ci/run` sets it), a service that cannot be had fails the
run instead of skipping.

Histories are dated before the fixed `NOW` of tests/support/clock.py and the journey service reads
that clock (`wired` injects it; `service_clock` makes it the default of every in-process command), so
no test depends on the day it runs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime

import psycopg
import pytest

from infra.config import Settings, parse_database_url
from services.bootstrap import Continuum, bootstrap
from tests.support.clock import NOW, fixed_clock
from tests.support.services import postgres_server


def require_or_skip(reason: str) -> None:
    if os.environ.get("CONTINUUM_REQUIRE_SERVICES"):
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as (url, problem):
        if url is None:
            require_or_skip(f"no PostgreSQL: {problem}")
        yield str(url)


def _schema_url(base: str) -> tuple[str, str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    return f"{base}{'&' if '?' in base else '?'}schema={schema}", schema


def _drop_schema(url: str, schema: str) -> None:
    db = parse_database_url(url)
    with psycopg.connect(host=db.host, port=db.port, user=db.user, password=db.password or None, dbname=db.name,
                         autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """A fresh, empty store: a new SQLite file, or a new schema in PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/continuum.db"
        return
    base = request.getfixturevalue("postgres_url")
    url, schema = _schema_url(base)
    yield url
    _drop_schema(url, schema)


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/continuum.db"


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    url, schema = _schema_url(postgres_url)
    yield url
    _drop_schema(url, schema)


@pytest.fixture
def wired(database_url: str) -> Iterator[Continuum]:
    continuum = bootstrap(Settings(database_url=database_url), clock=fixed_clock)
    yield continuum
    continuum.close()


@pytest.fixture
def service_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Commands run in process (the CLI through CliRunner, the API through TestClient) read the fixed
    clock: the composition root's default `clock=` becomes `fixed_clock` for the test. Returns `NOW`."""
    monkeypatch.setitem(bootstrap.__kwdefaults__, "clock", fixed_clock)
    return NOW


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that run on PostgreSQL carry the `postgres` marker, so `-m "not postgres"` is a quick loop."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if (callspec and callspec.params.get("database_url") == "postgres") or "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
