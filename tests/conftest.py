"""Fixtures shared by every test folder: the store on SQLite and on PostgreSQL.

PostgreSQL is resolved in this order: CONTINUUM_TEST_POSTGRES_URL, testcontainers when a Docker
daemon answers, the local server on 127.0.0.1:5432, then a throwaway local cluster (initdb).
With CONTINUUM_REQUIRE_SERVICES set (`.ci/run` sets it), a service that cannot be had fails the
run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from infra.config import Settings, parse_database_url
from services.bootstrap import Continuum, bootstrap
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
    continuum = bootstrap(Settings(database_url=database_url))
    yield continuum
    continuum.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that run on PostgreSQL carry the `postgres` marker, so `-m "not postgres"` is a quick loop."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if (callspec and callspec.params.get("database_url") == "postgres") or "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
