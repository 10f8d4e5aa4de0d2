"""The relay's encoding, in a process of its own.

The relay's own work per event (reading the stored event, encoding the message: `infra/kafka/wire.py`) holds
the GIL that kafka-python's sending needs too. With an `EncoderProcess`, the relay's process only selects
rows (`infra.chain.published_rows`: each with its global link, read by one statement into plain tuples) and sends;
a spawned process turns each batch of rows into messages (the same bytes: the same `WireEncoder`) while the relay
sends the batch before. The child builds its own mapper from a picklable factory (the composition root's: the same
transcodings and cipher as the store's) and its own pseudonyms from the key; rows cross as the driver gave them,
messages come back as kafka-python takes them.
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
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification

from infra.chain import PublishedRow
from infra.kafka.envelope import Pseudonyms
from infra.kafka.wire import Wire, WireEncoder
from infra.raw import stored_bytes

_CHILD: WireEncoder | None = None


def _start(mapper_factory: Callable[[], Mapper[Any]], pseudonym_key: bytes) -> None:
    global _CHILD  # noqa: PLW0603 - the child process's one encoder
    _CHILD = WireEncoder(mapper_factory(), Pseudonyms(pseudonym_key))
    threading.Thread(target=_end_with, args=(os.getppid(),), name="encoder-watchdog", daemon=True).start()


def _end_with(parent: int, every: float = 1.0) -> None:
    """End this process when the relay's is gone (killed: it never shut the pool down, and the pool's pipes,
    whose write ends this process holds too, would never tell)."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(0)


def encode_rows(encoder: WireEncoder, rows: Sequence[PublishedRow]) -> list[Wire]:
    """Each stored row as its message (raises ContractViolation, like `encode`)."""
    messages = []
    for position, journey, version, topic, state, link in rows:
        stored = Notification(id=position, originator_id=UUID(journey), originator_version=version, topic=topic,
                              state=stored_bytes(state))
        messages.append(encoder.encode(stored, position, link))
    return messages


def _encode_in_child(rows: list[PublishedRow]) -> list[Wire]:
    if _CHILD is None:  # not reached: the pool's initializer ran
        msg = "the encoder process was not started"
        raise RuntimeError(msg)
    return encode_rows(_CHILD, rows)


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

    def submit(self, rows: list[PublishedRow]) -> Callable[[], list[Wire]]:
        """Start encoding a batch of rows; the returned call waits for its messages."""
        future: Future[list[Wire]] = self.start().submit(_encode_in_child, rows)

        def result() -> list[Wire]:
            try:
                return future.result()
            except BrokenProcessPool:
                self.close()  # a new process on the next batch; this one is encoded here
                return encode_rows(WireEncoder(self._factory(), Pseudonyms(self._key)), rows)

        return result

    def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=True, cancel_futures=True)
