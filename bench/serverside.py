"""Where a PostgreSQL growth point's time goes outside the Python client: the CPU of the server
backends that served it (/proc/<pid>/stat, the server on this machine), what they waited on
(pg_stat_activity sampled), and the WAL and checkpoints the cluster did meanwhile (pg_stat_wal,
pg_stat_bgwriter: cluster-wide, so other work on the same server counts too)."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

TICKS = os.sysconf("SC_CLK_TCK")
INTERVAL = 0.05  # seconds between samples of pg_stat_activity


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process on this machine, or None (gone, or another machine's)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


class ServerProbe:
    """Samples the backends whose application_name is `app_name` (set through PGAPPNAME in the client)
    on a connection of its own, in a thread, between `start()` and `stop()`."""

    def __init__(self, conninfo: str, app_name: str) -> None:
        self.app_name = app_name
        self._connection = psycopg.connect(conninfo, autocommit=True, application_name="growth-probe")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu: dict[int, float] = {}
        self._cpu_at_start: dict[int, float] = {}
        self.waits: Counter[str] = Counter()
        self.samples = 0
        self._cluster_at_start: dict[str, Any] = {}

    def _cluster(self) -> dict[str, Any]:
        row = self._connection.execute(
            "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn, w.wal_fpi, w.wal_records, w.wal_write, w.wal_sync,"
            " b.checkpoints_timed + b.checkpoints_req, b.buffers_checkpoint, b.buffers_backend, b.buffers_clean"
            " FROM pg_stat_wal w, pg_stat_bgwriter b",
        ).fetchone()
        assert row is not None  # noqa: S101 - one row
        keys = ("wal_bytes", "wal_fpi", "wal_records", "wal_write", "wal_sync", "checkpoints", "buffers_checkpoint",
                "buffers_backend", "buffers_clean")
        return {key: int(value) for key, value in zip(keys, row, strict=True)}

    def _sample(self) -> None:
        rows = self._connection.execute(
            "SELECT pid, state, wait_event_type, wait_event FROM pg_stat_activity WHERE application_name = %s",
            (self.app_name,),
        ).fetchall()
        self.samples += 1
        for pid, state, kind, event in rows:
            cpu = process_cpu(pid)
            if cpu is not None:
                self._cpu[pid] = cpu
                self._cpu_at_start.setdefault(pid, cpu if self._thread is None or not self._thread.is_alive() else 0.0)
            if state == "active":
                self.waits[f"{kind}:{event}" if kind else "active:cpu"] += 1
            elif state == "idle in transaction":
                self.waits["idle in transaction (client)"] += 1

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            self._sample()

    def start(self) -> None:
        self._stop = threading.Event()
        self._cpu, self._cpu_at_start = {}, {}
        self._sample()  # the backends open now: their CPU so far is not this stage's
        self.waits.clear()
        self.samples = 0
        self._cluster_at_start = self._cluster()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        cluster = self._cluster()
        active = sum(v for k, v in self.waits.items() if not k.startswith("idle"))
        return {
            "backend_cpu_seconds": sum(self._cpu[pid] - self._cpu_at_start.get(pid, 0.0) for pid in self._cpu),
            "backends": len(self._cpu),
            "samples": self.samples,
            "active_share": active / self.samples if self.samples else None,
            "waits": dict(self.waits.most_common()),
            **{key: cluster[key] - self._cluster_at_start[key] for key in cluster},
        }

    def close(self) -> None:
        self._connection.close()

