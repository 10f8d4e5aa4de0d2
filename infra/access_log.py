"""Every read of a client's record is itself recorded: an append-only, hash-chained table kept
apart from the journey events (HIPAA 164.312(b) audit controls; 42 CFR Part 2 accounting).

Each record's hash covers its sequence number, its fields and the previous record's hash, so an
edited, deleted, inserted or reordered record breaks the chain `continuum verify` recomputes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from infra.chain import GENESIS
from infra.views import Cursor, Snapshot, ViewStore

DDL = (
    "CREATE TABLE IF NOT EXISTS access_log (seq BIGINT PRIMARY KEY, at TEXT NOT NULL, actor_id TEXT NOT NULL,"
    " role TEXT NOT NULL, client_ref TEXT NOT NULL, what TEXT NOT NULL, purpose TEXT, prev_hash TEXT NOT NULL,"
    " hash TEXT NOT NULL)"
)
INDEX = "CREATE INDEX IF NOT EXISTS access_log_client ON access_log (client_ref, seq)"
COLUMNS = "seq, at, actor_id, role, client_ref, what, purpose, prev_hash, hash"


@dataclass(frozen=True)
class AccessRecord:
    seq: int
    at: str  # ISO 8601 UTC
    actor_id: str
    role: str
    client_ref: str
    what: str  # "history", "audit", "replay as-of ...", "export-audit", "GET /clients/.../history", ...
    purpose: str | None
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        return record_hash(self.seq, self.at, self.actor_id, self.role, self.client_ref, self.what, self.purpose, self.prev_hash)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def record_hash(
    seq: int, at: str, actor_id: str, role: str, client_ref: str, what: str, purpose: str | None, prev_hash: str,
) -> str:
    fields = [seq, at, actor_id, role, client_ref, what, purpose]
    return hashlib.sha256((prev_hash + json.dumps(fields, separators=(",", ":"))).encode()).hexdigest()


class AccessLog:
    def __init__(self, views: ViewStore) -> None:
        self.views = views
        self._ready = False

    def setup(self, cursor: Cursor) -> None:
        if not self._ready:
            self.views.lock_for_ddl(cursor)
            cursor.execute(DDL)
            cursor.execute(INDEX)
            self._ready = True

    def record(
        self, *, actor_id: str, role: str, client_ref: str, what: str, purpose: str | None, at: datetime,
    ) -> AccessRecord:
        return self.record_many(actor_id=actor_id, role=role, client_refs=[client_ref], what=what, purpose=purpose, at=at)[0]

    def record_many(
        self, *, actor_id: str, role: str, client_refs: list[str], what: str, purpose: str | None, at: datetime,
    ) -> list[AccessRecord]:
        """One record per client (a list of clients was shown), chained in one transaction."""
        records: list[AccessRecord] = []
        if not client_refs:
            return records
        with self.views.transaction() as cursor:
            self.setup(cursor)
            if self.views.dialect == "postgres":
                cursor.execute("LOCK TABLE access_log IN EXCLUSIVE MODE")  # one writer at a time keeps the chain linear
            seq, prev = self.head(cursor)
            stamp = at.isoformat()
            for client_ref in client_refs:
                seq += 1
                fields = (seq, stamp, actor_id, role, client_ref, what, purpose)
                records.append(AccessRecord(*fields, prev, record_hash(*fields, prev)))
                prev = records[-1].hash
            cursor.executemany(
                f"INSERT INTO access_log ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                [(r.seq, r.at, r.actor_id, r.role, r.client_ref, r.what, r.purpose, r.prev_hash, r.hash) for r in records],
            )
        return records

    @staticmethod
    def head(cursor: Cursor) -> tuple[int, str]:
        """The last record's sequence number and hash, or (0, GENESIS) for an empty log."""
        cursor.execute("SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1")
        last = cursor.fetchone()
        return (int(last[0]), str(last[1])) if last else (0, GENESIS)

    def query(
        self, *, client_ref: str | None = None, actor_id: str | None = None, since: datetime | None = None,
        limit: int | None = None,
    ) -> list[AccessRecord]:
        where, params = [], []
        for column, value in (("client_ref", client_ref), ("actor_id", actor_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("at >= ?")
            params.append(since.isoformat())
        sql = f"SELECT {COLUMNS} FROM access_log"  # noqa: S608
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.views.transaction() as cursor:
            self.setup(cursor)
            cursor.execute(sql, params)
            return [AccessRecord(*row) for row in cursor.fetchall()]

    def ensure(self) -> None:
        with self.views.transaction() as cursor:
            self.setup(cursor)

    def stream(self, snapshot: Snapshot | None = None) -> Iterator[AccessRecord]:
        """Every record in order; within `snapshot` when given (see `ensure`), else in a snapshot of its own."""
        if snapshot is None:
            self.ensure()
        source = snapshot or self.views
        for row in source.stream(f"SELECT {COLUMNS} FROM access_log ORDER BY seq"):  # noqa: S608
            yield AccessRecord(int(row[0]), *row[1:])
