"""`continuum rebuild --all --workers N`: a rebuild's projections dealt into N shares of about as many events each
(`ProjectionRunner.shares`), the first filled by the rebuilding process and each other by a helper process of its own,
all at once; then the rebuilding process swaps them all in together, as a rebuild in one process does.

Each helper bootstraps its own store from the settings and reads and decodes the events its share takes (decoding is
not shared across processes: the events a share takes are decoded once in it): on SQLite it fills a scratch file the
rebuilding process made for it, beside the store, and writes nothing to the store; on PostgreSQL it fills its share's
shadow tables in the store, under their own position rows (`ProjectionRunner.fill`). A helper that fails or dies fails
the rebuild with what it said, the others are stopped, and nothing is swapped in: the old tables keep serving, as after
any rebuild stopped part way. The helpers are forked from a server process that has already imported the application
(as the importer's workers are: `services.worker_processes`), so a helper is ready once it has opened its store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from infra.views import open_scratch
from services.worker_processes import describe_failure, end_all, fork_server, start

if TYPE_CHECKING:
    from infra.config import Settings
    from projections.runner import Helpers, Share

WORKER_MODULES = ("services.bootstrap", "services.parallel_rebuild")


class RebuildHelperFailed(Exception):  # noqa: N818 - reads as what the user is told
    """A helper process of a rebuild stopped before its share was filled."""


def rebuild_helpers(settings: Settings) -> Helpers:
    """`ProjectionRunner.rebuild`'s helpers: a process a share, each bootstrapping its store from `settings`."""

    @contextmanager
    def helpers(shares: list[Share], head: int) -> Iterator[Callable[[], list[int]]]:
        context = fork_server(WORKER_MODULES)
        running: list[_Helper] = []
        try:
            for index, (names, scratch) in enumerate(shares, start=1):
                process, receiver = start(context, _fill, (settings, names, head, scratch), f"continuum-rebuild-{index}")
                running.append(_Helper(names, process, receiver))
            yield lambda: [helper.join() for helper in running]
        finally:
            end_all(running)

    return helpers


@dataclass
class _Helper:
    names: list[str]
    process: Any  # a forkserver context's Process
    receiver: Connection

    def join(self) -> int:
        """How many events the helper read, once it has filled its share; RebuildHelperFailed if it could not."""
        try:
            kind, body = self.receiver.recv()
        except EOFError:  # it ended without a word: killed, or dead before it could say
            self.process.join()
            kind, body = "failed", f"the process ended with exit code {self.process.exitcode}"
        if kind != "done":
            msg = f"the rebuild's helper filling {', '.join(self.names)} failed: {body}; nothing was swapped in"
            raise RebuildHelperFailed(msg)
        return int(body)


def _fill(settings: Settings, names: list[str], head: int, scratch: str | None, sender: Connection) -> None:
    """One helper process: its own store, its share filled up to `head`, and one last word, `done` or `failed`."""
    from services.bootstrap import bootstrap

    try:
        wired = bootstrap(settings, decode_check=False)
        try:
            done = wired.runner.fill(names, head, None if scratch is None else open_scratch(scratch))
        finally:
            wired.close()
        sender.send(("done", done))
    except Exception as error:  # noqa: BLE001 - told to the rebuilding process, which fails with it
        sender.send(("failed", describe_failure(error)))
    finally:
        sender.close()
