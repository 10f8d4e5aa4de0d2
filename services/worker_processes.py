"""What the importer's workers (services/parallel_import.py) and a rebuild's helpers (services/parallel_rebuild.py)
share: `--workers` checked, processes forked from a server that has the application imported, each with a pipe to
tell its parent how it went, a failure told in one line, and all of them ended, the server with them."""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from infra.config import ConfigurationError


def check_workers(workers: int) -> None:
    """`--workers N` (an import's, a rebuild's) with N below 1: one line saying so."""
    if workers < 1:
        msg = f"--workers must be 1 or more (given {workers})"
        raise ConfigurationError(msg)


def fork_server(modules: Sequence[str]) -> Any:  # noqa: ANN401 - the library's forkserver context
    """The forkserver context, its server importing `modules` once (0.4 s a process) for every process forked from it."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(modules))
    return context


def start(context: Any, target: Callable[..., None], args: tuple[Any, ...], name: str) -> tuple[Any, Connection]:  # noqa: ANN401
    """A process forked from `context`'s server running `target(*args, sender)`, and the receiving end of its pipe (the
    parent keeps no copy of the sending end, so the pipe ends when the process does)."""
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=target, args=(*args, sender), name=name, daemon=True)
    process.start()
    sender.close()
    return process, receiver


def describe_failure(error: Exception) -> str:
    """A worker's failure in one line for its parent: the exception's class, its first line, and where it was raised."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    last = traceback.extract_tb(error.__traceback__)[-1]
    return f"{type(error).__name__}: {reason} (at {last.filename.rsplit('/', 1)[-1]}:{last.lineno})"


def end_all(running: Sequence[Any]) -> None:
    """Each worker (its `process` and the `receiver` of its pipe) stopped if still running and waited for, its pipe
    closed; then the fork server stopped (`stop_fork_server`)."""
    for worker in running:
        if worker.process.is_alive():
            worker.process.terminate()
        worker.process.join()
        worker.receiver.close()
    stop_fork_server()


def stop_fork_server() -> None:
    """The fork server ends with the import or the rebuild, waited for, so it leaves no process behind and the CPU its
    workers used is counted as this process's children's (`os.times`), as a spawned worker's was. The library stops it
    only at exit, through this method of its server object (there since Python 3.4). The server is the process's one:
    a process runs one import or rebuild at a time (the CLI's `import`, `rebuild`)."""
    stop = getattr(getattr(multiprocessing.forkserver, "_forkserver", None), "_stop", None)
    if callable(stop):
        stop()
