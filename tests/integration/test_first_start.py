"""First start on an empty PostgreSQL schema: processes starting together all come up.

Creating tables races on PostgreSQL's catalog ("tuple concurrently updated"); the store's tables,
the projections' and the API's are created under one advisory lock, one creator at a time.
"""

from __future__ import annotations

import pytest

from infra.config import Settings
from services.bootstrap import bootstrap
from tests.conftest import _drop_schema, _schema_url
from tests.integration.test_concurrent_commands import run_together


@pytest.mark.postgres
def test_processes_starting_together_on_an_empty_schema_all_come_up(postgres_url):
    for _ in range(5):
        url, schema = _schema_url(postgres_url)
        try:
            def start(url: str = url) -> int:
                wired = bootstrap(Settings(database_url=url))
                try:
                    wired.runner.setup()
                    wired.tokens.setup()
                    wired.audit.access.ensure()
                    return wired.runner.head()
                finally:
                    wired.close()

            assert run_together([start, start, start]) == [0, 0, 0]
        finally:
            _drop_schema(url, schema)
