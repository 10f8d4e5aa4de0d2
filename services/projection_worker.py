"""The projection worker: builds the projection tables from the topic, in a consumer group.

Each polled batch of a partition is applied in one transaction of the target database, together
with the partition's next offset (`consumer_offsets`) and each journey's last applied version
(`consumer_journeys`). The database, not Kafka, is the record of progress: on assignment the
worker seeks to the offsets it stored, and commits to Kafka only afterwards (for lag tools).

Duplicates are dropped by ce_id: ce_id is uuid5(journey id, version), checked on every message,
and a journey's events arrive in order on one partition, so an event whose version is not above
the journey's last applied version is a copy (the relay republishes a batch after a crash).

A message that cannot be decoded, or that a projection refuses, goes to the dead-letter topic
with its headers plus `dlt_*` headers saying why and where it came from; the worker carries on.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from threading import Event
from typing import Protocol
from uuid import UUID

import psycopg
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.utils import get_topic
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from infra.kafka.clients import KafkaSettings, ensure_topics, group_consumer, producer
from infra.kafka.envelope import Envelope, Headers, PoisonMessage, decode
from infra.views import Cursor, ViewStore
from projections.base import Projection

LOG = logging.getLogger("continuum.consume")

DDL = (
    (
        "CREATE TABLE IF NOT EXISTS consumer_offsets (group_id TEXT NOT NULL, topic TEXT NOT NULL, partition_id INTEGER NOT NULL,"
        " next_offset BIGINT NOT NULL, worker TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (group_id, topic, partition_id))"
    ),
    (
        "CREATE TABLE IF NOT EXISTS consumer_journeys (group_id TEXT NOT NULL, journey_id TEXT NOT NULL, version BIGINT NOT NULL,"
        " PRIMARY KEY (group_id, journey_id))"
    ),
)
REFUSALS = (sqlite3.IntegrityError, psycopg.IntegrityError, ValueError, KeyError, TypeError)
"""What a projection raises for an event it cannot apply: the message is dead-lettered, not retried."""


class ConsumedRecord(Protocol):
    """What the worker reads of a kafka-python ConsumerRecord (the library has no type hints)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Headers | None: ...


Decoded = tuple[ConsumedRecord, Envelope | None, DomainEventProtocol[UUID] | None]
"""A record, and its envelope and event; neither when it was dead-lettered."""


@dataclass
class WorkerCounts:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    partitions: set[int] = field(default_factory=set)


class ProjectionWorker:
    def __init__(
        self, views: ViewStore, projections: Sequence[Projection], settings: KafkaSettings, *, group: str, name: str,
    ) -> None:
        self.views = views
        self.projections = list(projections)
        self.settings = settings
        self.group = group
        self.name = name
        self.counts = WorkerCounts()
        self._consumer: KafkaConsumer | None = None
        self._dead_letters: KafkaProducer | None = None

    def setup(self) -> None:
        with self.views.transaction() as cursor:
            for projection in self.projections:
                for statement in projection.ddl(self.views.dialect):
                    cursor.execute(statement)
            for statement in DDL:
                cursor.execute(statement)

    def run(self, stop: Event, *, until_caught_up: bool = False) -> WorkerCounts:
        """Consume until `stop` is set (or, with `until_caught_up`, until every assigned partition is read to its end)."""
        self.setup()
        ensure_topics(self.settings, self.settings.topic, self.settings.dead_letter_topic)
        consumer = self._consumer = group_consumer(self.settings, self.group, self.name)
        consumer.subscribe([self.settings.topic], listener=_SeekToStored(self))
        try:
            while not stop.is_set():
                batches = consumer.poll(timeout_ms=500)
                for partition, records in batches.items():
                    self.handle(partition, records)
                if not batches and until_caught_up and self._caught_up(consumer):
                    break
        finally:
            consumer.close(autocommit=False)
            if self._dead_letters is not None:
                self._dead_letters.close(timeout=5)
        return self.counts

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self._consumer.assignment()} if self._consumer else set()

    def handle(self, partition: TopicPartition, records: Sequence[ConsumedRecord]) -> None:
        decoded: list[Decoded] = []
        for record in records:
            try:
                envelope, event = decode(record.headers or [], record.key, record.value)
            except PoisonMessage as poison:
                self._dead_letter(record, str(poison))
                decoded.append((record, None, None))
                continue
            decoded.append((record, envelope, event))
        try:
            self._apply(partition, decoded)
        except REFUSALS:
            for one in decoded:  # find the one the projections refuse; the others are applied alone
                try:
                    self._apply(partition, [one])
                except REFUSALS as refusal:
                    self._dead_letter(one[0], f"a projection refused it: {type(refusal).__name__}: {refusal}")
                    self._apply(partition, [(one[0], None, None)])
        self.counts.partitions.add(partition.partition)
        if self._consumer is not None:
            try:
                self._consumer.commit({partition: OffsetAndMetadata(records[-1].offset + 1, "", -1)})
            except (CommitFailedError, KafkaError) as error:  # the database holds the truth; Kafka's copy is for lag tools
                LOG.info("offset commit to Kafka skipped (%s); the database has it", error)

    def _apply(self, partition: TopicPartition, decoded: Sequence[Decoded]) -> None:
        applied = duplicates = 0
        with self.views.transaction() as cursor:
            next_offset = self.stored_offset(cursor, partition, lock=True)
            versions: dict[str, int] = {}
            for record, envelope, event in decoded:
                if record.offset < next_offset or envelope is None or event is None:
                    continue
                journey = str(envelope.journey_id)
                if journey not in versions:
                    versions[journey] = self._last_version(cursor, journey)
                if envelope.version <= versions[journey]:
                    duplicates += 1
                    continue
                if envelope.version != versions[journey] + 1:
                    LOG.warning("journey %s: version %d follows %d (a gap)", journey, envelope.version, versions[journey])
                topic = get_topic(type(event))
                for projection in self.projections:
                    if topic in projection.topics:
                        projection.process(event, cursor, envelope.position)
                versions[journey] = envelope.version
                applied += 1
            cursor.executemany(
                "INSERT INTO consumer_journeys (group_id, journey_id, version) VALUES (?, ?, ?)"
                " ON CONFLICT (group_id, journey_id) DO UPDATE SET version = excluded.version",
                [(self.group, journey, version) for journey, version in versions.items()],
            )
            cursor.execute(
                "UPDATE consumer_offsets SET next_offset = ?, worker = ?, updated_at = ?"
                " WHERE group_id = ? AND topic = ? AND partition_id = ? AND next_offset < ?",
                (decoded[-1][0].offset + 1, self.name, _now(), self.group, partition.topic, partition.partition,
                 decoded[-1][0].offset + 1),
            )
        self.counts.applied += applied
        self.counts.duplicates += duplicates

    def stored_offset(self, cursor: Cursor, partition: TopicPartition, *, lock: bool = False) -> int:
        cursor.execute(
            "INSERT INTO consumer_offsets (group_id, topic, partition_id, next_offset, worker, updated_at)"
            " VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (group_id, topic, partition_id) DO NOTHING",
            (self.group, partition.topic, partition.partition, self.name, _now()),
        )
        suffix = " FOR UPDATE" if lock and self.views.dialect == "postgres" else ""
        cursor.execute(
            f"SELECT next_offset FROM consumer_offsets WHERE group_id = ? AND topic = ? AND partition_id = ?{suffix}",  # noqa: S608
            (self.group, partition.topic, partition.partition),
        )
        return int(cursor.fetchone()[0])

    def _last_version(self, cursor: Cursor, journey: str) -> int:
        cursor.execute("SELECT version FROM consumer_journeys WHERE group_id = ? AND journey_id = ?", (self.group, journey))
        row = cursor.fetchone()
        return int(row[0]) if row else 0

    def _dead_letter(self, record: ConsumedRecord, reason: str) -> None:
        """Publish the original record, with why and from where, and wait for the acknowledgement."""
        if self._dead_letters is None:
            self._dead_letters = producer(self.settings, client_id=f"{self.name}-dlt")
        headers = [
            *(record.headers or []),
            ("dlt_reason", reason.encode()),
            ("dlt_original_topic", record.topic.encode()),
            ("dlt_original_partition", str(record.partition).encode()),
            ("dlt_original_offset", str(record.offset).encode()),
            ("dlt_consumer_group", self.group.encode()),
            ("dlt_failed_at", _now().encode()),
        ]
        future = self._dead_letters.send(self.settings.dead_letter_topic, key=record.key, value=record.value, headers=headers)
        future.get(timeout=self.settings.send_timeout)
        self.counts.dead_lettered += 1
        LOG.warning("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)

    def _caught_up(self, consumer: KafkaConsumer) -> bool:
        assigned = list(consumer.assignment())
        if not assigned:
            return False
        ends = consumer.end_offsets(assigned)
        return all(consumer.position(tp) >= ends[tp] for tp in assigned)


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python has no type hints
    """On assignment, start each partition where this database says it stopped (or at the beginning)."""

    def __init__(self, worker: ProjectionWorker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        if revoked:
            LOG.info("%s: partitions revoked: %s", self.worker.name, sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        consumer = self.worker._consumer  # noqa: SLF001 - the listener is the worker's own
        if consumer is None:
            return
        with self.worker.views.transaction() as cursor:
            offsets = {tp: self.worker.stored_offset(cursor, tp) for tp in assigned}
        for tp, offset in offsets.items():
            consumer.seek(tp, offset)
        LOG.info("%s: assigned partitions %s", self.worker.name, sorted(tp.partition for tp in assigned))


def _now() -> str:
    return datetime.now(tz=UTC).isoformat()
