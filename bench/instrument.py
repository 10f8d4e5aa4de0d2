"""Recorders that time themselves: the whole event insert (transaction and commit) and, inside it,
the hash chain (`infra/chain.py`), so the ingest stage can say what share the chain costs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import StoredEvent

from infra.recorders import ChainedPostgresRecorder, ChainedSQLiteRecorder


@dataclass
class StoreTimer:
    insert_seconds: float = 0.0  # every insert_events call: the library's insert, the chain, the commit
    chain_seconds: float = 0.0  # the chain part alone
    transactions: int = 0

    def reset(self) -> None:
        self.insert_seconds = self.chain_seconds = 0.0
        self.transactions = 0


TIMER = StoreTimer()


class _Timed:
    """Times the store insert (transaction and commit) and the chain's share of it, for either recorder."""

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:  # noqa: ANN401
        started = time.perf_counter()
        try:
            positions: Sequence[int] | None = super().insert_events(stored_events, **kwargs)  # type: ignore[misc]
            return positions
        finally:
            TIMER.insert_seconds += time.perf_counter() - started
            TIMER.transactions += 1

    def _append_chain(self, cursor: Any, positions: Sequence[int], stored_events: Sequence[StoredEvent]) -> None:  # noqa: ANN401
        started = time.perf_counter()
        try:
            super()._append_chain(cursor, positions, stored_events)  # type: ignore[misc]
        finally:
            TIMER.chain_seconds += time.perf_counter() - started


class TimedChainedSQLiteRecorder(_Timed, ChainedSQLiteRecorder):
    pass


class TimedChainedPostgresRecorder(_Timed, ChainedPostgresRecorder):
    pass


def timed_recorder_topic(kind: str) -> str:
    name = "TimedChainedSQLiteRecorder" if kind == "sqlite" else "TimedChainedPostgresRecorder"
    return f"bench.instrument:{name}"
