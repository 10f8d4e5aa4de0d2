"""The stored event rows read straight from the table, without the library's decoding: what
`verify` hashes and the benchmarks' raw baselines read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID


def events_table(kind: str) -> str:
    return "stored_events" if kind == "sqlite" else "carecontinuum_events"


def stream_events(source: Any, kind: str, *, journey: UUID | None = None) -> Iterator[tuple[int, UUID, int, str, bytes]]:  # noqa: ANN401
    """Stored rows in notification order, straight from the table (no library decoding)."""
    position = "rowid" if kind == "sqlite" else "notification_id"
    sql = f"SELECT {position}, originator_id, originator_version, topic, state FROM {events_table(kind)}"  # noqa: S608
    params: tuple[Any, ...] = ()
    if journey is not None:
        sql += " WHERE originator_id = ?"
        params = (journey.hex if kind == "sqlite" else str(journey),)
    for nid, originator, version, topic, state in source.stream(sql + f" ORDER BY {position}", params):
        yield int(nid), UUID(str(originator)), int(version), str(topic), stored_bytes(state)


def stored_bytes(state: Any) -> bytes:  # noqa: ANN401
    """SQLite gives back text where a hand-written UPDATE stored text in the state column."""
    return state.encode() if isinstance(state, str) else bytes(state)


