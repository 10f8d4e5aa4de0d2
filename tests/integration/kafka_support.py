"""What the Kafka tests share: a recorded demo cohort, reading a topic to its end, and the projection
tables as comparable dumps (with the fields the topic withholds masked on both sides)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kafka import TopicPartition

from domain.values import Actor
from infra.config import Settings
from infra.kafka.clients import KafkaSettings, reader
from infra.kafka.contract import PSEUDONYMISED, WITHHELD
from infra.views import ViewStore
from services.bootstrap import bootstrap
from services.demo import cohort_lines
from services.importer import import_lines
from tests.support.clock import fixed_clock

DEMO_ACTOR = Actor("demo", "system")


def record_demo(database_url: str, clients: int, seed: int = 7, ref_prefix: str = "C") -> int:
    """Record a synthetic cohort of 2025 through the importer (client refs `<ref_prefix>-00001`...); returns the head."""
    year = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)
    lines = (line.replace('"C-', f'"{ref_prefix}-') for line in cohort_lines(clients, seed, start=year[0], end=year[1]))
    wired = bootstrap(Settings(database_url=database_url), clock=fixed_clock)
    try:
        import_lines(wired.service, lines, DEMO_ACTOR)
        return wired.app.recorder.max_notification_id() or 0
    finally:
        wired.close()


def read_topic(settings: KafkaSettings, topic: str | None = None, timeout: float = 60.0) -> list[Any]:
    """Every record of the topic, from the beginning to the end offsets as they are now."""
    topic = topic or settings.topic
    consumer = reader(settings)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"could not read {topic} to its end in {timeout} s"
            for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def header(record: Any, name: str) -> str | None:
    return next((value.decode() for key, value in record.headers if key == name), None)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting until {what}"
        time.sleep(0.1)


TABLES = {
    "census_clients": ("journey_id, client_ref, site", "journey_id"),
    "census_intervals": ("journey_id, opened_by, closed_by, level, level_rank, site, track, started_at, ended_at", "journey_id, opened_by"),
    "step_transitions": ("journey_id, version, kind, from_level, to_level, occurred_at, reason", "journey_id, version"),
    "audit_entries": (
        "journey_id, version, position, event_type, occurred_at, recorded_at, actor_id, actor_role, command_id, details, corrects_version",
        "journey_id, version",
    ),
}


def projection_dump(views: ViewStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table's rows in key order, with what the topic withholds masked."""
    dump = {}
    with views.transaction() as cursor:
        for table, (columns, key) in TABLES.items():
            cursor.execute(f"SELECT {columns} FROM {table} ORDER BY {key}")
            names = [name.strip() for name in columns.split(",")]
            dump[table] = [_masked(table, dict(zip(names, row, strict=True))) for row in cursor.fetchall()]
    return dump


def _masked(table: str, row: dict[str, Any]) -> tuple[Any, ...]:
    if table == "census_clients":
        row["client_ref"] = "*"
    elif table == "step_transitions" and row["kind"] in ("step_up", "step_down", "track_change"):
        row["reason"] = "*"
    elif table == "audit_entries":
        row["actor_id"] = row["command_id"] = "*"
        row["details"] = json.dumps(_masked_details(row["event_type"], json.loads(row["details"])), sort_keys=True)
    return tuple(row.values())


def _masked_details(event_type: str, details: dict[str, Any]) -> dict[str, Any]:
    hidden = set(WITHHELD.get(event_type, ()))
    if event_type in PSEUDONYMISED:
        hidden.add(f"{PSEUDONYMISED[event_type]}_id")
    if event_type == "EntryCorrected" and details["field"] in WITHHELD.get(details["corrects_type"], ()):
        hidden |= {"previous_value", "corrected_value"}
    return {key: value for key, value in details.items() if key not in hidden}
