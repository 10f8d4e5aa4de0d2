"""How far the relay has published, per topic: a row in `relay_positions` beside the events.

The position is the last notification id whose message the broker has acknowledged. It is only
moved forward after the acknowledgements, so a crash can publish a batch twice (consumers drop
the copies by ce_id) but never skip one. It is kept per topic, so publishing a new topic version
starts from the first event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from infra.lag import Lag
from infra.views import Cursor, ViewStore

DDL = "CREATE TABLE IF NOT EXISTS relay_positions (name TEXT PRIMARY KEY, position BIGINT NOT NULL, updated_at TEXT NOT NULL)"


@dataclass(frozen=True)
class RelayStatus(Lag):
    """The relay's position on its topic (`name` is the topic)."""

    @property
    def topic(self) -> str:
        return self.name

    def as_json(self) -> dict[str, object]:
        return {"topic": self.name, "position": self.position, "head": self.head, "lag": self.lag}


class RelayPositions:
    def __init__(self, views: ViewStore) -> None:
        self.views = views
        self._created = False

    def setup(self) -> None:
        if not self._created:
            with self.views.transaction() as cursor:
                cursor.execute(DDL)
            self._created = True

    def get(self, topic: str) -> int:
        self.setup()
        with self.views.transaction() as cursor:
            cursor.execute("SELECT position FROM relay_positions WHERE name = ?", (topic,))
            row = cursor.fetchone()
        return int(row[0]) if row else 0

    def advance(self, topic: str, position: int) -> None:
        """Only forward: a second relay that published an older batch cannot move the position back."""
        with self.views.transaction() as cursor:
            self.advance_in(cursor, topic, position)

    def advance_in(self, cursor: Cursor, topic: str, position: int) -> None:
        """`advance` inside the caller's transaction (a recipient's feed saves its consent state in the same one)."""
        cursor.execute(
            "INSERT INTO relay_positions (name, position, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at"
            " WHERE relay_positions.position < excluded.position",
            (topic, position, datetime.now(tz=UTC).isoformat()),
        )

    def all(self) -> dict[str, int]:
        """Every topic's position: what the API's metrics report as relay lag."""
        self.setup()
        with self.views.transaction() as cursor:
            cursor.execute("SELECT name, position FROM relay_positions")
            return {str(name): int(position) for name, position in cursor.fetchall()}

    def status(self, topic: str, head: int) -> RelayStatus:
        return RelayStatus(topic, self.get(topic), head)
