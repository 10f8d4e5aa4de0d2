"""The relay: tails the notification log (the store is the outbox) and publishes every event.

A batch of notifications is encoded, sent, flushed, and every send's acknowledgement checked;
only then is the batch's last notification id recorded as the position. A crash between the
acknowledgements and the position update publishes that batch again on restart: consumers drop
the copies by ce_id. Commands never wait for the relay: while the broker is away, events are
recorded as usual and the relay retries with backoff, then publishes everything it missed.

The relay keys every message with the deployment's pseudonym key (`CONTINUUM_PSEUDONYM_KEY`, or
`pseudonym_key`) and refuses to start without it, or on a topic named for another contract version
(`care.journey.v1`): it publishes version 2.

The hot path: each stored event is encoded straight from its stored JSON (`infra/kafka/wire.py`, the bytes
`envelope.encode` writes from the domain event) and sent to the partition kafka-python's partitioner gives its key,
worked out once per journey (`KeyPartitions`) instead of once per message. After each batch is acknowledged, what
is alive is frozen for the cyclic collector (`infra.heap.FrozenHeap`), so its collections scan the next batches'
messages and the producer's records of them, not every in-flight batch and the rest of the process again (100,000
events in a process of their own, PostgreSQL: 46-61 us of the relay's CPU an event instead of 53-68).
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from threading import Event
from typing import Any, cast

from eventsourcing.application import Application
from eventsourcing.persistence import Notification
from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from infra.chain import ChainedRecorder, global_links, published_rows
from infra.config import ConfigurationError
from infra.heap import FrozenHeap
from infra.kafka.clients import KafkaSettings, KeyPartitions, ensure_topics, producer
from infra.kafka.contract import VERSION
from infra.kafka.encoder import EncoderProcess
from infra.kafka.envelope import Pseudonyms, configured_pseudonyms
from infra.kafka.positions import RelayPositions, RelayStatus
from infra.kafka.wire import Wire, WireEncoder
from infra.views import ViewStore

LOG = logging.getLogger("continuum.relay")
ENCODER_AHEAD = 2
"""Pages an encoder process has to encode while the relay sends one."""


class Relay:
    def __init__(
        self, app: Application[Any], views: ViewStore, settings: KafkaSettings, *, batch_size: int = 1000,
        retry_max: float = 10.0, connect: Callable[[], KafkaProducer] | None = None, pseudonym_key: bytes | None = None,
        encoder: EncoderProcess | None = None,
    ) -> None:
        """Raises ConfigurationError without a pseudonym key (`pseudonym_key`, else `CONTINUUM_PSEUDONYM_KEY`). With an
        `encoder`, batches are decoded and encoded in its process (`infra/kafka/encoder.py`); else in this thread."""
        _check_topic(settings.topic)
        self.pseudonyms = Pseudonyms(pseudonym_key) if pseudonym_key is not None else configured_pseudonyms()
        self.encoder = encoder
        self.wire = WireEncoder(app.mapper, self.pseudonyms)
        self.partitions = KeyPartitions()
        self.app = app
        self.views = views
        self.settings = settings
        self.batch_size = batch_size
        self.retry_max = retry_max
        self.positions = RelayPositions(views)
        self._connect = connect or (lambda: producer(settings))
        self._producer: KafkaProducer | None = None

    @property
    def topic(self) -> str:
        return self.settings.topic

    def status(self) -> RelayStatus:
        return self.positions.status(self.topic, self.app.recorder.max_notification_id() or 0)

    def publish_pending(self, stop: Event | None = None, limit: int | None = None) -> int:
        """Publish every event after the recorded position (or the next `limit`), batch by batch; returns
        how many. Raises KafkaError when the broker does not acknowledge a batch (its position stays put).

        Batches overlap: while one is sent, the next is being encoded (with an encoder process, the next two: its
        work per batch varies with what else runs on the machine) and the one before waits for its acknowledgements,
        after which its position is saved."""
        published = 0
        in_flight: tuple[int, list[Any]] | None = None  # the batch the broker is acknowledging meanwhile
        ahead: deque[tuple[int, int, Callable[[], list[Wire]]]] = deque()  # pages selected, their encoding started
        after, selected = self.positions.get(self.topic), 0

        def select() -> None:
            nonlocal after, selected
            while len(ahead) < (1 if self.encoder is None else ENCODER_AHEAD) and (limit is None or selected < limit):
                page = self._next_batch(after, limit, selected)
                if page is None:
                    return
                ahead.append(page)
                after, selected = page[0], selected + page[1]

        heap = FrozenHeap()  # collections scan the batches in flight once, not again with all else the process holds
        try:
            select()
            while ahead and (stop is None or not stop.is_set()):
                last, count, messages = ahead.popleft()
                ready = messages()
                published += count
                select()  # the next pages are encoded while this one goes out
                sent = (last, self._send(ready))  # queued behind the batch before: the producer never idles
                if in_flight is not None:
                    self._settle(*in_flight, flush=False)  # its acknowledgements, while this batch goes out
                    heap.after_unit()
                in_flight = sent
            if in_flight is not None:
                self._settle(*in_flight, flush=True)
        except KafkaError:
            self.close()
            raise
        finally:
            heap.close()
        return published

    def _next_batch(self, after: int, limit: int | None, published: int = 0) -> tuple[int, int, Callable[[], list[Wire]]] | None:
        """The next page after notification `after`, its encoding started: (its last id, its size, its messages)."""
        size = self.batch_size if limit is None else min(self.batch_size, limit - published)
        if self.encoder is not None:  # rows for the encoder's process, read with their links in one statement
            with self.views.transaction() as cursor:
                rows = published_rows(cursor, cast("ChainedRecorder", self.app.recorder).chain_events, after, size)
            return (rows[-1][0], len(rows), self.encoder.submit(rows)) if rows else None
        notifications = self.app.recorder.select_notifications(start=after, limit=size, inclusive_of_start=False)
        if not notifications:
            return None
        messages = self._encode(notifications)
        return notifications[-1].id, len(notifications), lambda: messages

    def run(self, stop: Event, wait: Callable[[float], None], poll: float = 0.5) -> None:
        """Publish until `stop` is set; `wait` returns early when new events may have been recorded."""
        delay = 0.0
        while not stop.is_set():
            try:
                count = self.publish_pending(stop)
            except KafkaError as error:
                self.close()
                delay = min(max(2 * delay, 0.5), self.retry_max)
                LOG.warning(
                    "broker %s unavailable (%s); %d events wait to be published; retrying in %.1f s",
                    self.settings.bootstrap_servers, _reason(error), self.status().lag, delay,
                )
                stop.wait(delay)
                continue
            if delay:
                LOG.info("broker %s reachable again; publishing resumed", self.settings.bootstrap_servers)
                delay = 0.0
            if count:
                LOG.info("published %d events to %s; position %d", count, self.topic, self.positions.get(self.topic))
            else:
                wait(poll)
        self.close()

    def close(self) -> None:
        if self.encoder is not None:
            self.encoder.close()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                producer.close(timeout=2)
            except KafkaError as error:  # closing after a failure: nothing left to save
                LOG.debug("closing the producer: %s", error)

    def _connected(self) -> KafkaProducer:
        if self._producer is None:
            ensure_topics(self.settings, self.topic)  # again after every outage: a memory-only broker forgets it
            self._producer = self._connect()
            if self.encoder is not None:
                self.encoder.start()
        return self._producer

    def _encode(self, notifications: Sequence[Notification]) -> list[Wire]:
        heads = self._chain_heads(notifications[0].id, notifications[-1].id)
        encode = self.wire.encode
        return [encode(n, n.id, heads.get(n.id)) for n in notifications]

    def _send(self, messages: list[Wire]) -> list[Any]:
        """Each message sent to the partition the producer's partitioner would give its key (`KeyPartitions`: the
        library's choice, worked out once per journey instead of once per message)."""
        producer = self._connected()
        partition, send, topic = self.partitions.of(producer, self.topic), producer.send, self.topic
        return [send(topic, value=value, key=key, headers=headers, partition=partition(key)) for key, value, headers in messages]

    def _settle(self, last: int, futures: list[Any], *, flush: bool) -> None:
        """Every send of a batch acknowledged, then (and only then) its last position recorded. With `flush`, the
        producer sends what it holds at once (the last batch); else the batch waits for the producer's linger, while
        the next one is already queued behind it."""
        if flush:
            self._connected().flush(timeout=self.settings.send_timeout)
        deadline = time.monotonic() + self.settings.send_timeout
        for future in futures:  # each waits what is left of the batch's time; a failed send raises its error
            if future.succeeded():  # acknowledged already: nothing to wait for
                continue
            try:
                future.get(timeout=max(0.0, deadline - time.monotonic()))
            except KafkaTimeoutError:
                raise KafkaTimeoutError(f"no acknowledgement within {self.settings.send_timeout} s") from None
        self._acknowledged(last)

    def _acknowledged(self, last: int) -> None:
        """Hook: every message up to notification `last` is acknowledged; record the position. A recipient's feed
        (infra/kafka/feeds.py) also saves its consent state here, in the same transaction."""
        self.positions.advance(self.topic, last)

    def _chain_heads(self, first: int, last: int) -> dict[int, str]:
        """The global hash-chain link of each event: published so that auditors can hold it outside."""
        with self.views.transaction() as cursor:
            return global_links(cursor, first, last)


def _check_topic(topic: str) -> None:
    """A topic named for another contract version (`care.journey.v1`) is not one this relay may publish to."""
    named = re.search(r"\.v(\d+)$", topic)
    if named and int(named[1]) != VERSION:
        msg = (f"topic {topic} is named for contract version {named[1]}; this relay publishes version {VERSION}:"
               f" set CONTINUUM_KAFKA_TOPIC (or --topic) to care.journey.v{VERSION} (see the README's migration note)")
        raise ConfigurationError(msg)


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    return text if text.startswith(type(error).__name__) else f"{type(error).__name__}: {text}"

