"""Where the Kafka relay stands, read defensively: the relay is built apart from the API, so its
table may not exist yet, and its columns are looked for rather than assumed (infra/kafka/positions.py
keeps `relay_positions (name, position, ...)`). Nothing of the relay is imported: a scrape must not
load Kafka's client."""

from __future__ import annotations

from collections.abc import Iterable

from infra.views import Cursor, ViewStore

CANDIDATE_TABLES = ("relay_positions", "kafka_relay_positions", "relay_position", "kafka_relay", "relay_state", "publisher_positions")
LABEL_COLUMNS = ("name", "relay", "topic", "publisher", "consumer", "id")
POSITION_COLUMNS = ("position", "notification_id", "last_position", "published_position", "last_notification_id")


def _columns(cursor: Cursor, dialect: str, table: str) -> list[str]:
    if dialect == "sqlite":
        cursor.execute(f"PRAGMA table_info({table})")
        return [str(row[1]) for row in cursor.fetchall()]
    cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?", (table,),
    )
    return [str(row[0]) for row in cursor.fetchall()]


def _first(wanted: Iterable[str], present: list[str]) -> str | None:
    return next((name for name in wanted if name in present), None)


def relay_positions(views: ViewStore, known_projections: Iterable[str]) -> dict[str, int]:
    """Positions by relay name; empty when no relay has recorded one."""
    found: dict[str, int] = {}
    with views.transaction() as cursor:
        for table in CANDIDATE_TABLES:
            columns = _columns(cursor, views.dialect, table)
            position = _first(POSITION_COLUMNS, columns)
            if position is None:
                continue
            label = _first(LABEL_COLUMNS, columns)
            if label is None:
                cursor.execute(f"SELECT MAX({position}) FROM {table}")  # noqa: S608 - names found in the catalogue
                found[table] = int(cursor.fetchone()[0] or 0)
                continue
            cursor.execute(f"SELECT {label}, MAX({position}) FROM {table} GROUP BY {label}")  # noqa: S608 - names found in the catalogue
            found |= {str(name): int(value or 0) for name, value in cursor.fetchall()}
        known = set(known_projections)
        if "projection_positions" in _tables(cursor, views.dialect):
            cursor.execute("SELECT name, position FROM projection_positions")
            found |= {str(name): int(value) for name, value in cursor.fetchall() if name not in known}
    return found


def _tables(cursor: Cursor, dialect: str) -> list[str]:
    if dialect == "sqlite":
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
    return [str(row[0]) for row in cursor.fetchall()]
