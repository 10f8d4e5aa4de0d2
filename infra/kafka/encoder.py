"""The relay's decoding and encoding, in a process of its own.

The relay's own work per event (decoding the stored event, encoding the message: ~30 µs) holds the
GIL that kafka-python's sending needs too, so a relay doing both in one process reaches about two
thirds of a bare producer. With an `EncoderProcess`, the relay's process only selects notification
rows and sends; a spawned process turns each batch of rows into messages (the same bytes: the same
`encode`), while the previous batch is on the wire. The child builds its own mapper from a picklable
factory (the composition root's: the same transcodings and cipher as the store's) and its own
pseudonyms from the key; nothing else crosses.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from eventsourcing.persistence import Mapper, Notification

from infra.kafka.envelope import Pseudonyms, encode, kafka_headers

Wire = tuple[Any, bytes, list[tuple[str, bytes]]]
"""A message as it crosses back: key, value, headers."""

_CHILD: tuple[Mapper[Any], Pseudonyms] | None = None


def _start(mapper_factory: Callable[[], Mapper[Any]], pseudonym_key: bytes) -> None:
    global _CHILD  # noqa: PLW0603 - the child process's one encoder
    _CHILD = (mapper_factory(), Pseudonyms(pseudonym_key))
    threading.Thread(target=_end_with, args=(os.getppid(),), name="encoder-watchdog", daemon=True).start()


def _end_with(parent: int, every: float = 1.0) -> None:
    """End this process when the relay's is gone (killed: it never shut the pool down, and the pool's pipes,
    whose write ends this process holds too, would never tell)."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(0)


def encode_rows(
    mapper: Mapper[Any], pseudonyms: Pseudonyms, notifications: Sequence[Notification], heads: dict[int, str],
) -> list[Wire]:
    """Each stored row as its message (raises ContractViolation, like `encode`)."""
    wire = []
    for notification in notifications:
        message = encode(mapper.to_domain_event(notification), notification.id, heads.get(notification.id), pseudonyms)
        wire.append((message.key, message.value, kafka_headers(message)))
    return wire


def _encode_in_child(notifications: Sequence[Notification], heads: dict[int, str]) -> list[Wire]:
    if _CHILD is None:  # not reached: the pool's initializer ran
        msg = "the encoder process was not started"
        raise RuntimeError(msg)
    return encode_rows(*_CHILD, notifications, heads)


class EncoderProcess:
    """One spawned process encoding batches in order; started on first use, restarted if it dies."""

    def __init__(self, mapper_factory: Callable[[], Mapper[Any]], pseudonym_key: bytes) -> None:
        self._factory = mapper_factory
        self._key = pseudonym_key
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> ProcessPoolExecutor:
        """The process, started (and its mapper built) if it was not: a second or so of imports, paid once."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                initargs=(self._factory, self._key),
            )
            self._pool.submit(int).result()  # runs the initializer now, not in the first batch's time
        return self._pool

    def submit(self, notifications: Sequence[Notification], heads: dict[int, str]) -> Callable[[], list[Wire]]:
        """Start encoding a batch; the returned call waits for its messages."""
        future: Future[list[Wire]] = self.start().submit(_encode_in_child, list(notifications), heads)

        def result() -> list[Wire]:
            try:
                return future.result()
            except BrokenProcessPool:
                self.close()  # a new process on the next batch; this one is encoded here
                mapper = self._factory()
                return encode_rows(mapper, Pseudonyms(self._key), notifications, heads)

        return result

    def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=True, cancel_futures=True)
