"""Keeps the projections current inside the serving process (`continuum serve`, unless
`--no-follow` leaves it to `continuum project --follow`).

A thread catches up, then waits: for a NOTIFY on PostgreSQL, for the poll interval on SQLite, and
in both cases no longer than it takes a command of this process to nudge it, so a client that
sends a command and then reads with `min_position` rarely waits more than one page of events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from projections.runner import ProjectionRunner

log = structlog.get_logger("continuum.api.follower")
SLICE = 0.05  # seconds


class ProjectionFollower:
    def __init__(self, runner: ProjectionRunner, wait_for_events: Callable[[float], None] | None, poll: float) -> None:
        self.runner = runner
        self.wait_for_events = wait_for_events  # LISTEN/NOTIFY on PostgreSQL; None on SQLite
        self.poll = poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="projection-follower", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def nudge(self) -> None:
        """New events were recorded here, or a reader waits for a position: catch up now."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.runner.catch_up()
            except Exception as problem:  # noqa: BLE001 - a database hiccup must not end following; /readyz shows the lag
                self.failures += 1
                log.warning("projection catch-up failed", error_type=type(problem).__name__, failures=self.failures)
                self._stop.wait(min(self.poll * 2**min(self.failures, 5), 10.0))
                continue
            self.failures = 0
            if self._wake.is_set():
                continue
            if self.wait_for_events is not None:
                self._wait_notified()
            else:
                self._wake.wait(self.poll)

    def _wait_notified(self) -> None:
        """Wait for a NOTIFY in short slices, so a nudge or a stop is seen within one slice.

        `wait_for_events` returns early when notified; an early return means there is work.
        """
        assert self.wait_for_events is not None  # noqa: S101 - checked by the caller
        for _ in range(max(int(self.poll / SLICE), 1)):
            if self._wake.is_set() or self._stop.is_set():
                return
            started = time.monotonic()
            try:
                self.wait_for_events(SLICE)
            except Exception:  # noqa: BLE001 - a lost LISTEN connection: poll this round instead
                self._wake.wait(self.poll)
                return
            if time.monotonic() - started < SLICE * 0.8:
                return
