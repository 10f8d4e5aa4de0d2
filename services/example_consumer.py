"""An example consumer of the journey topic, for teams downstream of care-continuum.

It counts admissions per level of care into its own SQLite file, and shows the four things every
consumer of `care.journey.v2` should do:

1. **Join a consumer group and commit by hand**, after your own transaction. Several copies of this
   process with the same `--group` share the topic's partitions. Keep the short group timeouts
   (below) unless your broker is tuned otherwise.
2. **Drop duplicates by `ce_id`.** Publication is at least once: after a crash the relay sends the
   last batch again. Record the ids you applied in the same transaction as your rows.
3. **Rely on order per journey only.** The key is the journey's pseudonym, so one journey's events arrive in
   `ce_sequence` order on one partition; there is no order across journeys.
4. **Read the version in `ce_type`** (`org.carecontinuum.journey.<Event>.v2`) and skip or park
   types you do not know: new event types may appear; a breaking change comes as `.v2`.

Payloads are JSON, closed models described by `schemas/events/<Event>.v2.json` and
`schemas/asyncapi.json`. There are no names or free text: the key is a pseudonym keyed with a secret
this consumer never needs, sites are codes (`site-3f9a1c2b`), substances and analytes closed
vocabularies.

    python -m services.example_consumer --bootstrap-servers localhost:9092 --group admissions-report --db admissions.db
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import threading
from collections.abc import Iterable
from typing import Protocol

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event
from kafka import KafkaConsumer

TOPIC = "care.journey.v2"
ADMISSION = "org.carecontinuum.journey.AdmittedToLevel.v2"
IDLE_POLLS = 3


class Record(Protocol):
    """What this consumer reads of a kafka-python ConsumerRecord (the library has no type hints); every
    record of the topic has a value."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes: ...
    @property
    def headers(self) -> list[tuple[str, bytes]]: ...


def open_store(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE IF NOT EXISTS applied_events (ce_id TEXT PRIMARY KEY)")
    db.execute("CREATE TABLE IF NOT EXISTS admissions (level TEXT PRIMARY KEY, admissions INTEGER NOT NULL)")
    return db


def apply(db: sqlite3.Connection, records: Iterable[Record]) -> int:
    """Apply a batch of records in one transaction; returns how many were new."""
    applied = 0
    db.execute("BEGIN")
    try:
        for record in records:
            event = from_binary_event(KafkaMessage(dict(record.headers), record.key, record.value))
            if db.execute("INSERT OR IGNORE INTO applied_events VALUES (?)", (event.get_id(),)).rowcount == 0:
                continue  # a copy of an event already applied
            applied += 1
            if event.get_type() == ADMISSION:
                level = json.loads(record.value)["level"]
                db.execute(
                    "INSERT INTO admissions VALUES (?, 1) ON CONFLICT (level) DO UPDATE SET admissions = admissions + 1",
                    (level,),
                )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return applied


def run(bootstrap_servers: str, group: str, db_path: str, *, topic: str = TOPIC, stop: threading.Event | None = None,
        until_idle: bool = False) -> int:
    """Consume until `stop` is set (or, with `until_idle`, until a poll finds nothing once assigned)."""
    stop = stop or threading.Event()
    db = open_store(db_path)
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", max_poll_interval_ms=3000, session_timeout_ms=6000, heartbeat_interval_ms=1000,
    )
    applied = idle = 0
    try:
        while not stop.is_set():
            batches = consumer.poll(timeout_ms=1000)
            for records in batches.values():
                applied += apply(db, records)
            if batches:
                consumer.commit()  # after the transaction: a crash in between only replays what ce_id drops
            idle = 0 if batches or not consumer.assignment() else idle + 1
            if until_idle and idle >= IDLE_POLLS:
                break
    finally:
        consumer.close(autocommit=False)
        db.close()
    return applied


def main() -> None:
    parser = argparse.ArgumentParser(description="Count admissions per level of care from the journey topic.")
    parser.add_argument("--bootstrap-servers", default="localhost:9092")
    parser.add_argument("--group", default="admissions-report")
    parser.add_argument("--db", default="admissions.db")
    parser.add_argument("--topic", default=TOPIC)
    args = parser.parse_args()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run(args.bootstrap_servers, args.group, args.db, topic=args.topic, stop=stop)


if __name__ == "__main__":
    main()
