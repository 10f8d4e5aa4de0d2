"""The composition root: settings in, one wired application out, which the CLI, the API and the
benchmarks use alike (they parse, call it and render). Nothing connects at import.

`Continuum` holds the store, the journey service (commands), the projection runner, the reads of
the projections, the auditors' service and the API tokens, and makes the Kafka relay and projection
worker on demand. `read_side` wires a projection worker's database alone (it needs no event store).
"""

from __future__ import annotations

import base64
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING
from uuid import UUID

import psycopg
from eventsourcing.persistence import Mapper, MapperDeserialisationError, PersistenceError

from infra.config import ConfigurationError, Database, Settings, parse_database_url
from infra.sealing import FieldSeal
from infra.store import chained, cipher_environment, store_environment
from infra.views import DatabaseUnavailable, PostgresViews, SQLiteViews, open_views
from projections.catalogue import all_projections
from projections.runner import Progress, ProjectionRunner
from services.journeys import CareContinuum, JourneyService

if TYPE_CHECKING:
    from psycopg.rows import TupleRow

    from infra.kafka.clients import KafkaSettings
    from infra.kafka.feeds import Feed
    from infra.kafka.relay import Relay
    from services.audit import Audit
    from services.projection_worker import ProjectionWorker
    from services.reads import Reads
    from services.tokens import TokenStore


@dataclass
class Continuum:
    settings: Settings
    database: Database
    app: CareContinuum
    service: JourneyService
    views: SQLiteViews | PostgresViews
    runner: ProjectionRunner
    _listener: psycopg.Connection[TupleRow] | None = field(default=None, repr=False)

    @property
    def seal(self) -> FieldSeal:
        """The cipher of the free text some read models keep (the events' key, when set)."""
        return _seal(self.settings)

    @property
    def journeys(self) -> JourneyService:
        """Commands in: loads journeys, applies commands in a unit of work, saves (with a clinician's site check)."""
        return self.service

    @cached_property
    def reads(self) -> Reads:
        from services.reads import Reads

        return Reads(self)

    @cached_property
    def audit(self) -> Audit:
        from services.audit import Audit

        return Audit(self, self.reads)

    @cached_property
    def tokens(self) -> TokenStore:
        from services.tokens import TokenStore

        return TokenStore(self.views)

    def relay(
        self, kafka: KafkaSettings | None = None, *, pseudonym_key: bytes | None = None, encoder: str | None = None,
    ) -> Relay:
        """The Kafka relay of this store, configured by the settings (`CONTINUUM_KAFKA_*`, `CONTINUUM_PSEUDONYM_KEY`,
        `CONTINUUM_KAFKA_RELAY_ENCODER`) unless `kafka`, `pseudonym_key` or `encoder` ("process" or "thread") is given;
        without a pseudonym key it refuses to start (ConfigurationError)."""
        from infra.kafka.clients import kafka_settings
        from infra.kafka.encoder import EncoderProcess
        from infra.kafka.relay import Relay

        configured = self.settings.pseudonym_key
        key = pseudonym_key or (base64.b64decode(configured.get_secret_value()) if configured else None)
        cipher = self.settings.cipher_key.get_secret_value() if self.settings.cipher_key else None
        in_process = (encoder or self.settings.kafka_relay_encoder) == "process"
        return Relay(
            self.app, self.views, kafka or kafka_settings(self.settings), batch_size=self.settings.kafka_relay_batch_size,
            pseudonym_key=key, encoder=EncoderProcess(functools.partial(store_mapper, cipher), key) if in_process and key else None,
        )

    def feed(self, recipient: str, kafka: KafkaSettings | None = None, *, pseudonym_key: bytes | None = None) -> Feed:
        """`recipient`'s consent-aware feed (`<journey topic>.to.<slug>`, infra/kafka/feeds.py), configured like the relay;
        each batch's disclosures entered in the accounting of disclosures (by the settings' actor and role), every message
        with the §2.32 notice. ConfigurationError for a recipient that names no topic, or without a pseudonym key."""
        from infra.kafka.clients import kafka_settings
        from infra.kafka.feeds import Disclosed, Feed
        from services.disclosures import NOTICE, Disclosures, Permitted

        accounting = Disclosures(self.views)

        def account(to: str, disclosed: Sequence[Disclosed]) -> None:
            accounting.record_each([(Permitted(d.client_ref, d.consent), d.what) for d in disclosed], recipient=to,
                                   actor_id=self.settings.actor, role=self.settings.role)

        configured = self.settings.pseudonym_key
        key = pseudonym_key or (base64.b64decode(configured.get_secret_value()) if configured else None)
        return Feed(
            self.app, self.views, kafka or kafka_settings(self.settings), recipient, notice=NOTICE, account=account,
            batch_size=self.settings.kafka_relay_batch_size, pseudonym_key=key,
        )

    def rebuild(self, names: Sequence[str], *, workers: int = 1, progress: Progress | None = None) -> int:
        """The projections `names` built again from the first event and swapped in (`ProjectionRunner.rebuild`); with
        `workers` above 1, their shares filled by that many processes at once (services/parallel_rebuild.py). Returns
        how many events were read."""
        from services.parallel_rebuild import rebuild_helpers  # multiprocessing: imported by the rebuilds that use it
        from services.worker_processes import check_workers

        check_workers(workers)
        helpers = rebuild_helpers(self.settings) if workers > 1 else None
        return self.runner.rebuild(names, progress, workers=workers, helpers=helpers)

    def wait_for_events(self, timeout: float) -> None:
        """Return when new events may have been recorded: LISTEN/NOTIFY on PostgreSQL, a poll on SQLite."""
        if not isinstance(self.views, PostgresViews):
            time.sleep(timeout)
            return
        if self._listener is None:
            self._listener = self.views.connect()
            self._listener.autocommit = True
            # the views are PostgreSQL's, so the recorder is too: typed as the library's base, which has no channel
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
    try:
        env = store_environment(
            database, cipher_key=cipher_key, connect_timeout=settings.connect_timeout, cache_size=settings.journey_cache_size,
        ) | (store_overrides or {})
    except ConfigurationError:
        views.close()
        raise
    try:
        with views.creating():  # the store creates its tables on a first start: one process at a time
            app = CareContinuum(env=env)
    except (PersistenceError, psycopg.Error) as error:
        views.close()
        msg = f"cannot open the event store in {database.display}: {error}"
        raise DatabaseUnavailable(msg) from None
    try:  # the recorder must be ours, chaining every row it stores, with the configured chain key
        chained(app.recorder, settings.chain_key.get_secret_value() if settings.chain_key else None)
    except ConfigurationError:
        app.close()
        views.close()
        raise
    if decode_check:
        _check_readable(app, encrypted=cipher_key is not None, views=views)
    runner = ProjectionRunner(app, views, all_projections(_seal(settings)), settings.projection_batch_size, settings.journey_cache_size)
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




@dataclass
class ReadSide:
    """A projection worker's database: the projection tables built from the topic, no event store."""

    settings: Settings
    views: SQLiteViews | PostgresViews

    @property
    def seal(self) -> FieldSeal:
        return _seal(self.settings)

    def worker(self, names: Sequence[str] | None = None, *, name: str) -> ProjectionWorker:
        """A worker building the named projections (all by default); an unknown name is a ValueError naming the known."""
        from infra.kafka.clients import kafka_settings
        from services.projection_worker import ProjectionWorker

        known = {projection.name: projection for projection in all_projections(self.seal)}
        unknown = [n for n in names or [] if n not in known]
        if unknown:
            msg = f"no projection named {', '.join(unknown)} (known: {', '.join(known)})"
            raise ValueError(msg)
        return ProjectionWorker(
            self.views, [known[n] for n in names or known], kafka_settings(self.settings),
            group=self.settings.kafka_consumer_group, name=name,
        )

    def close(self) -> None:
        self.views.close()


def store_mapper(cipher_key: str | None) -> Mapper[UUID]:
    """A mapper like the store's (its transcodings, its cipher) without a database: what the relay's encoder process
    decodes stored rows with."""
    return CareContinuum(env={"PERSISTENCE_MODULE": "eventsourcing.popo", **cipher_environment(cipher_key)}).mapper


def _seal(settings: Settings) -> FieldSeal:
    return FieldSeal(settings.cipher_key.get_secret_value() if settings.cipher_key else None)


def read_side(settings: Settings) -> ReadSide:
    return ReadSide(settings, open_views(parse_database_url(settings.database_url), settings.connect_timeout))


__all__ = ["ConfigurationError", "Continuum", "DatabaseUnavailable", "ReadSide", "bootstrap", "read_side"]
