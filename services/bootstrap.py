"""The composition root: settings in, a wired care-continuum out. Nothing connects at import."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from eventsourcing.persistence import MapperDeserialisationError, PersistenceError

from infra.config import ConfigurationError, Database, Settings, parse_database_url
from infra.store import store_environment
from infra.views import DatabaseUnavailable, PostgresViews, SQLiteViews, open_views
from projections.catalogue import all_projections
from projections.runner import ProjectionRunner
from services.journeys import CareContinuum, JourneyService


@dataclass
class Continuum:
    settings: Settings
    database: Database
    app: CareContinuum
    service: JourneyService
    views: SQLiteViews | PostgresViews
    runner: ProjectionRunner
    _listener: Any = None

    def wait_for_events(self, timeout: float) -> None:
        """Return when new events may have been recorded: LISTEN/NOTIFY on PostgreSQL, a poll on SQLite."""
        if not isinstance(self.views, PostgresViews):
            time.sleep(timeout)
            return
        if self._listener is None:
            self._listener = self.views.connect()
            self._listener.autocommit = True
            channel = self.app.recorder.channel_name  # type: ignore[attr-defined]
            self._listener.execute(f'LISTEN "{channel}"')
        for _ in self._listener.notifies(timeout=timeout, stop_after=1):
            break

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self.views.close()
        self.app.close()


def bootstrap(
    settings: Settings | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    decode_check: bool = True,
    store_overrides: dict[str, str] | None = None,
) -> Continuum:
    """`store_overrides` replaces entries of the library's environment (the benchmark swaps in timed recorders)."""
    settings = settings or Settings()
    database = parse_database_url(settings.database_url)
    views = open_views(database, settings.connect_timeout)  # reaches the database first: one clear error if not
    cipher_key = settings.cipher_key.get_secret_value() if settings.cipher_key else None
    env = store_environment(
        database, cipher_key=cipher_key, connect_timeout=settings.connect_timeout, cache_size=settings.journey_cache_size,
    ) | (store_overrides or {})
    try:
        app = CareContinuum(env=env)
    except (PersistenceError, psycopg.Error) as error:
        views.close()
        msg = f"cannot open the event store in {database.display}: {error}"
        raise DatabaseUnavailable(msg) from None
    if decode_check:
        _check_readable(app, encrypted=cipher_key is not None, views=views)
    runner = ProjectionRunner(app, views, all_projections(), settings.projection_batch_size)
    return Continuum(settings, database, app, JourneyService(app, clock), views, runner)


def _check_readable(app: CareContinuum, *, encrypted: bool, views: SQLiteViews | PostgresViews) -> None:
    """A store written with another key (or none) fails here in one line, not in the middle of a read."""
    first = app.recorder.select_notifications(start=None, limit=1)
    if not first:
        return
    try:
        app.mapper.to_domain_event(first[0])
    except (MapperDeserialisationError, ValueError):
        app.close()
        views.close()
        hint = (
            "CONTINUUM_CIPHER_KEY does not open them (wrong key, or the store is not encrypted)"
            if encrypted
            else "they are encrypted: set CONTINUUM_CIPHER_KEY to the key they were written with"
        )
        msg = f"cannot read the stored events: {hint}"
        raise ConfigurationError(msg) from None


__all__ = ["ConfigurationError", "Continuum", "DatabaseUnavailable", "bootstrap"]
