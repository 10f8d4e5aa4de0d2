"""The projection worker: builds the projection tables from the topic, in a consumer group.

Each polled batch of a partition is applied in one transaction of the target database, together
with the partition's next offset and a digest of its last record (`consumer_offsets`) and each
journey's last applied version (`consumer_journeys`). The database, not Kafka, is the record of
progress: on assignment the worker seeks to the offsets it stored, and commits to Kafka only
afterwards (for lag tools).

It reads contract version 2 (`care.journey.v2`): a journey is known by its pseudonym (the message
key), which the read side's `journey_id` columns hold, and sites, substances and analytes by their
codes. A message of another version is poison; a read side built from `care.journey.v1` is rebuilt
from the v2 topic (`continuum consume --rebuild`), not continued.

A journey's event is applied only when its version is the journey's last applied version + 1.
Below that it is a copy (the relay republishes a batch after a crash; ce_id is uuid5(journey
pseudonym, version), checked on every message) and is dropped. Beyond that it does not follow: it goes to the
dead-letter topic ("sequence gap: expected N, got M") and is counted in `out_of_sequence`, so a
forged far version cannot make the journey's real events look like copies.

A message that cannot be decoded (whatever the decoder raises), that does not follow, or that a
projection fails on (whatever it raises, in a savepoint of its own) goes to the dead-letter topic
with its headers plus `dlt_*` headers saying why and where it came from. The dead letters of a batch
are acknowledged before the batch's transaction commits, so a restart after a stop neither sends
them again nor stops on them. Only a database that is gone (or SQL that is wrong for every message)
and a broker that does not take the dead letters stop the worker.

On assignment the stored offsets are checked against the topic before anything is read: the
partition count recorded with the offsets (`consumer_topics`), stored partitions the topic lacks,
offsets beyond a partition's end or below its start, and the record before each stored offset
(its digest must match). A misfit stops the worker with `OffsetsMisfit`; `rebuild()` drops the
projection tables and the group's progress to start over.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from threading import Event
from typing import NamedTuple, Protocol
from uuid import UUID

import psycopg
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.utils import get_topic
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CommitFailedError, KafkaError, MessageSizeTooLargeError, OffsetOutOfRangeError
from kafka.structs import OffsetAndMetadata

from infra.kafka.clients import KafkaSettings, ensure_topics, group_consumer, producer, reader
from infra.kafka.envelope import Envelope, Headers, PoisonMessage, decode
from infra.views import Cursor, DatabaseUnavailable, ViewStore
from projections.base import Projection

LOG = logging.getLogger("continuum.consume")

DDL = (
    (
        "CREATE TABLE IF NOT EXISTS consumer_offsets (group_id TEXT NOT NULL, topic TEXT NOT NULL, partition_id INTEGER NOT NULL,"
        " next_offset BIGINT NOT NULL, worker TEXT NOT NULL, updated_at TEXT NOT NULL, last_record TEXT,"
        " PRIMARY KEY (group_id, topic, partition_id))"
    ),
    (
        "CREATE TABLE IF NOT EXISTS consumer_journeys (group_id TEXT NOT NULL, journey_id TEXT NOT NULL, version BIGINT NOT NULL,"
        " PRIMARY KEY (group_id, journey_id))"
    ),
    (
        "CREATE TABLE IF NOT EXISTS consumer_topics (group_id TEXT NOT NULL, topic TEXT NOT NULL, partitions INTEGER NOT NULL,"
        " worker TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (group_id, topic))"
    ),
)
STOPS = (
    sqlite3.OperationalError, sqlite3.InterfaceError, psycopg.OperationalError, psycopg.InterfaceError, psycopg.ProgrammingError,
    DatabaseUnavailable, KafkaError,
)
"""What stops the worker instead of dead-lettering a message: the database is gone or locked, the SQL is
wrong (the same for every message), or the broker does not take the dead letters. Anything else raised
while one message is decoded or applied is that message's fault."""
REASON_LENGTH = 1000
CHECK_WAIT = 2.0
"""Seconds to wait for the record before a stored offset when checking an assignment."""


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


class Decoded(NamedTuple):
    """A record and its envelope and event, or why it has none (it goes to the dead-letter topic)."""

    record: ConsumedRecord
    envelope: Envelope | None
    event: DomainEventProtocol[UUID] | None
    problem: str = ""


@dataclass
class WorkerCounts:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    out_of_sequence: int = 0
    """Dead-lettered because the version was not the journey's next (counted in `dead_lettered` too)."""
    partitions: set[int] = field(default_factory=set)

    def add(self, other: WorkerCounts) -> None:
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.dead_lettered += other.dead_lettered
        self.out_of_sequence += other.out_of_sequence
        self.partitions |= other.partitions

    def summary(self) -> str:
        return (f"applied {self.applied} events, dropped {self.duplicates} duplicates, dead-lettered {self.dead_lettered}"
                f" ({self.out_of_sequence} out of sequence); partitions {sorted(self.partitions)}")


class OffsetsMisfit(Exception):  # noqa: N818 - reads as what was found
    """The offsets a read side stored do not fit the topic any more: reading on would skip events."""


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
        self._unchecked: set[TopicPartition] = set()  # assigned, paused until checked against the topic
        self._lock = threading.Lock()

    def setup(self) -> None:
        with self.views.transaction() as cursor:
            self.views.lock_for_ddl(cursor)
            for projection in self.projections:
                for statement in projection.ddl(self.views.dialect):
                    cursor.execute(statement)
            for statement in DDL:
                cursor.execute(statement)
            self._add_last_record_column(cursor)

    def _add_last_record_column(self, cursor: Cursor) -> None:
        """Read sides made before `last_record` existed get the column (their rows stay NULL: not checked)."""
        if self.views.dialect == "postgres":
            cursor.execute("ALTER TABLE consumer_offsets ADD COLUMN IF NOT EXISTS last_record TEXT")
            return
        cursor.execute("PRAGMA table_info(consumer_offsets)")
        if "last_record" not in {row[1] for row in cursor.fetchall()}:
            cursor.execute("ALTER TABLE consumer_offsets ADD COLUMN last_record TEXT")

    def rebuild(self) -> None:
        """Drop the projections' tables and this group's progress on the topic: the next run starts from the beginning."""
        self.setup()
        with self.views.transaction() as cursor:
            self.views.lock_for_ddl(cursor)
            for projection in self.projections:
                for table in projection.tables:
                    cursor.execute(f"DROP TABLE IF EXISTS {table}")
            for table in ("consumer_offsets", "consumer_topics"):
                cursor.execute(f"DELETE FROM {table} WHERE group_id = ? AND topic = ?", (self.group, self.settings.topic))  # noqa: S608
            cursor.execute("DELETE FROM consumer_journeys WHERE group_id = ?", (self.group,))
        self.setup()
        LOG.info("%s: dropped the tables of %s and group %s's progress on %s", self.name,
                 ", ".join(p.name for p in self.projections), self.group, self.settings.topic)

    def run(self, stop: Event, *, until_caught_up: bool = False) -> WorkerCounts:
        """Consume until `stop` is set (or, with `until_caught_up`, until every assigned partition is read to its end).

        Raises OffsetsMisfit when the stored offsets do not fit the topic."""
        self.setup()
        ensure_topics(self.settings, self.settings.topic, self.settings.dead_letter_topic)
        # no automatic reset: a position off the end of a partition is a misfit, not a reason to start elsewhere
        consumer = self._consumer = group_consumer(self.settings, self.group, self.name, auto_offset_reset="none")
        consumer.subscribe([self.settings.topic], listener=_SeekToStored(self))
        try:
            while not stop.is_set():
                try:
                    batches = consumer.poll(timeout_ms=500)
                except OffsetOutOfRangeError as error:  # a partition emptied or cut under a running worker
                    raise OffsetsMisfit(self._misfit([f"a stored position is out of the partition's range ({error})"])) from None
                if self._unchecked:
                    self._check(consumer)
                for partition, records in batches.items():
                    self.handle(partition, records)
                if not batches and until_caught_up and not self._unchecked and self._caught_up(consumer):
                    break
        finally:
            consumer.close(autocommit=False)
            self._consumer = None
            if self._dead_letters is not None:
                self._dead_letters.close(timeout=5)
                self._dead_letters = None
        return self.counts

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self._consumer.assignment()} if self._consumer else set()

    def handle(self, partition: TopicPartition, records: Sequence[ConsumedRecord]) -> None:
        decoded = [_decode(record) for record in records]
        try:
            counts = self._apply(partition, decoded, isolate=False)
        except STOPS:
            raise
        except Exception:  # noqa: BLE001 - one message failed in a projection: again, each message in a savepoint of its own
            counts = self._apply(partition, decoded, isolate=True)
        counts.partitions.add(partition.partition)
        self.counts.add(counts)
        if self._consumer is not None:
            try:
                self._consumer.commit({partition: OffsetAndMetadata(records[-1].offset + 1, "", -1)})
            except (CommitFailedError, KafkaError) as error:  # the database holds the truth; Kafka's copy is for lag tools
                LOG.info("offset commit to Kafka skipped (%s); the database has it", error)

    def _apply(self, partition: TopicPartition, decoded: Sequence[Decoded], *, isolate: bool) -> WorkerCounts:
        counts = WorkerCounts()
        dead: list[tuple[ConsumedRecord, str]] = []
        with self.views.transaction() as cursor:
            next_offset = self.stored_offset(cursor, partition, lock=True)
            versions: dict[str, int] = {}
            last_applied: dict[str, int] = {}
            for record, envelope, event, problem in decoded:
                if record.offset < next_offset:
                    continue
                if envelope is None or event is None:
                    dead.append((record, problem))
                    continue
                journey = str(envelope.journey_id)
                if journey not in last_applied:
                    last_applied[journey] = self._last_version(cursor, journey)
                expected = last_applied[journey] + 1
                if envelope.version < expected:
                    counts.duplicates += 1
                    continue
                if envelope.version > expected:
                    counts.out_of_sequence += 1
                    dead.append((record, f"sequence gap: expected {expected}, got {envelope.version}"))
                    continue
                refusal = self._project(cursor, envelope, event, isolate=isolate)
                if refusal:
                    dead.append((record, refusal))
                    continue
                last_applied[journey] = versions[journey] = envelope.version
                counts.applied += 1
            cursor.executemany(
                "INSERT INTO consumer_journeys (group_id, journey_id, version) VALUES (?, ?, ?)"
                " ON CONFLICT (group_id, journey_id) DO UPDATE SET version = excluded.version",
                [(self.group, journey, version) for journey, version in versions.items()],
            )
            last = decoded[-1].record
            cursor.execute(
                "UPDATE consumer_offsets SET next_offset = ?, last_record = ?, worker = ?, updated_at = ?"
                " WHERE group_id = ? AND topic = ? AND partition_id = ? AND next_offset < ?",
                (last.offset + 1, fingerprint(last), self.name, _now(), self.group, partition.topic, partition.partition,
                 last.offset + 1),
            )
            self._dead_letter(dead)  # acknowledged before the commit: a restart does not send them again
        counts.dead_lettered = len(dead)
        return counts

    def _project(self, cursor: Cursor, envelope: Envelope, event: DomainEventProtocol[UUID], *, isolate: bool) -> str:
        """Apply one event to every projection that handles it; with `isolate`, in a savepoint, and say why it failed."""
        topic = get_topic(type(event))
        chosen = [projection for projection in self.projections if topic in projection.topics]
        if not isolate:
            for projection in chosen:
                projection.process(event, cursor, envelope.position)
            return ""
        cursor.execute("SAVEPOINT one_message")
        try:
            for projection in chosen:
                projection.process(event, cursor, envelope.position)
        except STOPS:
            raise
        except Exception as error:  # noqa: BLE001 - whatever a projection raises for one message is that message's fault
            cursor.execute("ROLLBACK TO SAVEPOINT one_message")
            return _said("a projection refused it", error)
        cursor.execute("RELEASE SAVEPOINT one_message")
        return ""

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

    def _dead_letter(self, dead: Sequence[tuple[ConsumedRecord, str]]) -> None:
        """Publish each original record, with why and from where, and wait for every acknowledgement."""
        if not dead:
            return
        if self._dead_letters is None:
            self._dead_letters = producer(self.settings, client_id=f"{self.name}-dlt")
        futures = []
        for record, reason in dead:
            headers = [
                *(record.headers or []),
                ("dlt_reason", reason.encode()),
                ("dlt_original_topic", record.topic.encode()),
                ("dlt_original_partition", str(record.partition).encode()),
                ("dlt_original_offset", str(record.offset).encode()),
                ("dlt_consumer_group", self.group.encode()),
                ("dlt_failed_at", _now().encode()),
            ]
            topic = self.settings.dead_letter_topic
            try:
                futures.append(self._dead_letters.send(topic, key=record.key, value=record.value, headers=headers))
            except MessageSizeTooLargeError:  # the headers made it too large: the value stays on the topic, at its offset
                size = str(len(record.value or b"")).encode()
                futures.append(self._dead_letters.send(topic, key=record.key, value=None, headers=[*headers, ("dlt_value_omitted", size)]))
            LOG.warning("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)
        for future in futures:
            future.get(timeout=self.settings.send_timeout)

    def _caught_up(self, consumer: KafkaConsumer) -> bool:
        assigned = list(consumer.assignment())
        if not assigned:
            return False
        ends = consumer.end_offsets(assigned)
        return all(consumer.position(tp) >= ends[tp] for tp in assigned)

    # -- do the stored offsets fit the topic? --------------------------------------------------------

    def _assigned(self, consumer: KafkaConsumer, assigned: Collection[TopicPartition]) -> None:
        """Seek to the stored offsets and hold the partitions until `_check` has seen that they fit."""
        with self.views.transaction() as cursor:
            offsets = {tp: self.stored_offset(cursor, tp) for tp in assigned}
        for tp, offset in offsets.items():
            consumer.seek(tp, offset)
        if assigned:
            consumer.pause(*assigned)
        with self._lock:
            self._unchecked |= set(assigned)

    def _revoked(self, revoked: Collection[TopicPartition]) -> None:
        with self._lock:
            self._unchecked -= set(revoked)

    def _check(self, consumer: KafkaConsumer) -> None:
        with self._lock:
            unchecked, self._unchecked = self._unchecked & set(consumer.assignment()), set()
        if not unchecked:
            return
        problems = self._misfits(consumer, unchecked)
        if problems:
            raise OffsetsMisfit(self._misfit(problems))
        consumer.resume(*unchecked)

    def _misfits(self, consumer: KafkaConsumer, unchecked: set[TopicPartition]) -> list[str]:
        """What does not fit: the partition count, stored partitions the topic lacks, then each partition's offset."""
        topic = self.settings.topic
        count = len(consumer.partitions_for_topic(topic))
        with self.views.transaction() as cursor:
            cursor.execute("SELECT partitions FROM consumer_topics WHERE group_id = ? AND topic = ?", (self.group, topic))
            row = cursor.fetchone()
            recorded = int(row[0]) if row else None
            cursor.execute(
                "SELECT partition_id, next_offset, last_record FROM consumer_offsets WHERE group_id = ? AND topic = ?", (self.group, topic),
            )
            stored: dict[int, tuple[int, str | None]] = {int(p): (int(offset), last) for p, offset, last in cursor.fetchall()}
        problems = []
        if recorded is not None and recorded != count:
            problems.append(f"it has {count} partitions where this read side recorded {recorded}")
        lacking = sorted(p for p, (offset, _) in stored.items() if p >= count and offset > 0)
        if lacking:
            problems.append(f"offsets are stored for partitions {', '.join(map(str, lacking))}, which it does not have")
        if problems:
            return problems
        if recorded is None:
            with self.views.transaction() as cursor:
                cursor.execute(
                    "INSERT INTO consumer_topics (group_id, topic, partitions, worker, updated_at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (group_id, topic) DO NOTHING",
                    (self.group, topic, count, self.name, _now()),
                )
        return self._offset_misfits(consumer, unchecked, stored)

    def _offset_misfits(
        self, consumer: KafkaConsumer, unchecked: set[TopicPartition], stored: dict[int, tuple[int, str | None]],
    ) -> list[str]:
        partitions = sorted(unchecked, key=lambda tp: tp.partition)
        starts, ends = consumer.beginning_offsets(partitions), consumer.end_offsets(partitions)
        problems = []
        previous: dict[TopicPartition, tuple[int, str | None]] = {}
        for tp in partitions:
            offset, last = stored.get(tp.partition, (0, None))
            if starts[tp] > offset:
                problems.append(f"partition {tp.partition} starts at offset {starts[tp]}, but this read side has read it only up to"
                                f" offset {offset}: records were deleted before they were read")
            elif starts[tp] < offset and (last is not None or offset > ends[tp]):
                previous[tp] = (offset, last)
        found = self._records_at({tp: offset - 1 for tp, (offset, _) in previous.items()})
        for tp, (offset, last) in previous.items():
            record = found.get(tp)
            if record is None:
                problems.append(f"partition {tp.partition} ends at offset {ends[tp]}, but this read side stored offset {offset},"
                                " beyond its end")
            elif record.offset != offset - 1 or (last is not None and fingerprint(record) != last):
                problems.append(f"the record at offset {offset - 1} of partition {tp.partition} is not the one this read side"
                                " handled there: the topic was recreated or rewritten")
        return problems

    def _records_at(self, wanted: dict[TopicPartition, int]) -> dict[TopicPartition, ConsumedRecord]:
        """The first record at or after each wanted offset, read with a consumer of its own for up to CHECK_WAIT seconds
        (a broker may report a partition's end below its last record, so the end offset alone does not say)."""
        if not wanted:
            return {}
        check = reader(self.settings, client_id=f"{self.name}-check", auto_offset_reset="none", fetch_max_wait_ms=100)
        found: dict[TopicPartition, ConsumedRecord] = {}
        try:
            check.assign(list(wanted))
            for tp, offset in wanted.items():
                check.seek(tp, offset)
            deadline = time.monotonic() + CHECK_WAIT
            while len(found) < len(wanted) and time.monotonic() < deadline:
                try:
                    batches = check.poll(timeout_ms=100)
                except OffsetOutOfRangeError as error:  # nothing there: the partition ends before it
                    out = error.args[0] if error.args and isinstance(error.args[0], dict) else wanted
                    check.pause(*out)
                    continue
                for tp, records in batches.items():
                    if records and tp not in found:
                        found[tp] = records[0]
                        check.pause(tp)
        finally:
            check.close()
        return found

    def _misfit(self, problems: Sequence[str]) -> str:
        return (f"topic {self.settings.topic} does not fit the offsets group {self.group} stored in"
                f" {self.views.database.display}: {'; '.join(problems)}. Reading on would skip events: stop this group's"
                " workers and run `continuum consume --rebuild` to drop the read side's tables and build them again from the"
                " beginning of the topic")


class _SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python has no type hints
    """On assignment, start each partition where this database says it stopped (or at the beginning), once checked."""

    def __init__(self, worker: ProjectionWorker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        self.worker._revoked(revoked)  # noqa: SLF001 - the listener is the worker's own
        if revoked:
            LOG.info("%s: partitions revoked: %s", self.worker.name, sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        consumer = self.worker._consumer  # noqa: SLF001 - the listener is the worker's own
        if consumer is None:
            return
        self.worker._assigned(consumer, assigned)  # noqa: SLF001
        LOG.info("%s: assigned partitions %s", self.worker.name, sorted(tp.partition for tp in assigned))


def _decode(record: ConsumedRecord) -> Decoded:
    try:
        envelope, event = decode(record.headers or [], record.key, record.value)
    except PoisonMessage as poison:
        return Decoded(record, None, None, str(poison)[:REASON_LENGTH])
    except Exception as error:  # noqa: BLE001 - whatever decoding one message raises is that message's fault
        return Decoded(record, None, None, _said("cannot decode it", error))
    return Decoded(record, envelope, event)


def _said(what: str, error: BaseException) -> str:
    return f"{what}: {type(error).__name__}: {error}"[:REASON_LENGTH]


def fingerprint(record: ConsumedRecord) -> str:
    """A digest of a record's key, value and headers: the same record read again has the same one."""
    digest = hashlib.sha256()
    parts: list[bytes | None] = [record.key, record.value]
    for name, value in record.headers or []:
        parts += [name.encode(), value]
    for part in parts:
        digest.update(b"-" if part is None else len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:32]


def _now() -> str:
    return datetime.now(tz=UTC).isoformat()
