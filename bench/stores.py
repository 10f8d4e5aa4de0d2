"""Fresh stores for a benchmark run: new SQLite files in one folder, or new PostgreSQL schemas.

Nothing the user already has is touched: a SQLite URL only says which folder the bench files go in,
a PostgreSQL URL which database the `bench_*` schemas are created in; all are removed afterwards.
"""

from __future__ import annotations

import contextlib
import gc
import shutil
import sqlite3
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from infra.config import Settings, parse_database_url
from services.bootstrap import Continuum, bootstrap

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Target:
    """Where one backend's bench stores are made: `label` names it in the report."""

    label: str
    kind: str  # "sqlite" | "postgres"
    base: str  # sqlite: a folder; postgres: a URL without a schema
    owns_folder: bool = False
    made: list[str] = field(default_factory=list)

    @classmethod
    def sqlite(cls, url: str | None = None) -> Target:
        if url is None:
            return cls("sqlite", "sqlite", tempfile.mkdtemp(prefix="continuum-bench-"), owns_folder=True)
        database = parse_database_url(url)
        folder = Path(database.path).parent if database.path != ":memory:" else Path(tempfile.gettempdir())
        return cls("sqlite", "sqlite", str(folder))

    @classmethod
    def postgres(cls, url: str) -> Target:
        database = parse_database_url(url)
        base = url.split("?", maxsplit=1)[0]
        return cls(f"postgres {database.host}:{database.port}/{database.name}", "postgres", base)

    def fresh(self, tag: str) -> str:
        """The URL of a new, empty store."""
        name = f"bench_{uuid.uuid4().hex[:8]}_{tag}"
        self.made.append(name)
        if self.kind == "sqlite":
            return f"sqlite:///{Path(self.base) / name}.db"
        return f"{self.base}?schema={name}"

    def reachable(self) -> str | None:
        """None when the backend can be used, else why not."""
        if self.kind == "sqlite":
            return None
        try:
            with psycopg.connect(self.base, connect_timeout=3):
                return None
        except psycopg.Error as error:
            text = str(error).strip()
            return text.splitlines()[-1] if text else type(error).__name__

    def drop(self, url: str) -> None:
        database = parse_database_url(url)
        if database.kind == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(database.path + suffix).unlink(missing_ok=True)
            return
        with psycopg.connect(self.base, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{database.schema}" CASCADE')

    def release(self, url: str) -> None:
        """Drop one store made by `fresh` now (growth points free their disk as they go)."""
        self.drop(url)
        name = Path(parse_database_url(url).path).stem if self.kind == "sqlite" else parse_database_url(url).schema
        if name in self.made:
            self.made.remove(name)

    def cleanup(self) -> None:
        for name in self.made:
            self.drop(self.fresh_url(name))
        self.made.clear()
        if self.owns_folder:
            shutil.rmtree(self.base, ignore_errors=True)

    def fresh_url(self, name: str) -> str:
        return f"sqlite:///{Path(self.base) / name}.db" if self.kind == "sqlite" else f"{self.base}?schema={name}"


def open_continuum(url: str, *, recorder_topic: str | None = None, batch_size: int = 1000) -> Continuum:
    """`services.bootstrap.bootstrap`, with the application recorder swappable (timed or polling)."""
    overrides = {"APPLICATION_RECORDER_TOPIC": recorder_topic} if recorder_topic else None
    return bootstrap(Settings(database_url=url, projection_batch_size=batch_size), store_overrides=overrides)


def settled(wired: Continuum) -> None:
    """A timed run's start, charged for nothing that ran before it: the garbage left by earlier runs collected
    (`gc.collect()`: else whichever run next reaches the collector's threshold pays for a full collection over
    everything the process holds, 0.14 s at 10^5 events after an ingest and the stock runs); and on SQLite the WAL
    written into the database file and emptied (`PRAGMA wal_checkpoint(TRUNCATE)`: the WAL holds up to
    `SQLITE_CHECKPOINT_PAGES` pages between checkpoints). PostgreSQL checkpoints in its own processes."""
    gc.collect()
    if wired.database.kind != "sqlite" or wired.database.memory:
        return
    with contextlib.closing(sqlite3.connect(wired.database.path, timeout=30)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
