"""kafka-python clients configured the one way this project uses them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import TopicAlreadyExistsError
from kafka.partitioner.default import DefaultPartitioner, murmur2

from infra.config import Settings

BOOTSTRAP_TIMEOUT_MS = 5000  # the library's 30 s default makes an absent broker look like a hang


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    topic: str
    dead_letter_topic: str
    partitions: int = 6
    replication_factor: int = 1
    send_timeout: float = 30.0  # seconds to wait for a batch's acknowledgements

    @property
    def servers(self) -> list[str]:
        return [server.strip() for server in self.bootstrap_servers.split(",") if server.strip()]


def producer(settings: KafkaSettings, client_id: str = "continuum-relay") -> KafkaProducer:
    """Idempotent, acks from every in-sync replica: a retried send is never written twice, and
    order per partition survives retries (at most 5 requests in flight)."""
    timeout_ms = int(settings.send_timeout * 1000)
    return KafkaProducer(
        bootstrap_servers=settings.servers, client_id=client_id, enable_idempotence=True, acks="all",
        max_in_flight_requests_per_connection=5, linger_ms=5, batch_size=256 * 1024,
        max_block_ms=timeout_ms, request_timeout_ms=min(timeout_ms, 30000),
        delivery_timeout_ms=max(timeout_ms, 5000) + 5000, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
    )


class KeyPartitions:
    """The partition kafka-python's default partitioner gives each key, computed once per key and set of partitions.

    The library hashes the key (murmur2, in pure Python) on every send; a relay's keys, the journeys' pseudonyms, come
    back again and again. `of(producer, topic)` gives the function to pass as `send(..., partition=...)`: the
    partitioner's own choice for a key (`murmur2(key) & 0x7fffffff` modulo the number of partitions, among them sorted),
    or None (the library chooses) when the producer has another partitioner. The set of partitions is read from the
    producer's metadata on each call (once a batch), so a topic given more partitions is followed."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._partitions: tuple[int, ...] = ()
        self._by_key: dict[bytes, int] = {}

    def of(self, producer: KafkaProducer, topic: str) -> Callable[[bytes], int | None]:
        if type(producer.config["partitioner"]) is not DefaultPartitioner:
            return lambda _: None
        partitions = tuple(sorted(producer.partitions_for(topic)))
        if partitions != self._partitions:
            self._partitions, self._by_key = partitions, {}
        by_key, count = self._by_key, len(partitions)
        if len(by_key) >= self.limit:
            by_key.clear()

        def partition(key: bytes) -> int:
            found = by_key.get(key)
            if found is None:
                found = by_key[key] = partitions[(murmur2(key) & 0x7FFFFFFF) % count]
            return found

        return partition


def group_consumer(settings: KafkaSettings, group: str, client_id: str, **overrides: Any) -> KafkaConsumer:  # noqa: ANN401
    """A consumer-group member that commits by hand. The short timeouts matter: a broker waits out the
    rebalance timeout on the first join (minutes with the defaults on some brokers)."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.servers, "group_id": group, "client_id": client_id,
        "enable_auto_commit": False, "auto_offset_reset": "earliest", "max_poll_records": 500,
        "max_poll_interval_ms": 3000, "session_timeout_ms": 6000, "heartbeat_interval_ms": 1000,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
    }
    return KafkaConsumer(**(config | overrides))


def reader(settings: KafkaSettings, **overrides: Any) -> KafkaConsumer:  # noqa: ANN401
    """A consumer outside any group, for reading a topic from the start (tests, tools)."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.servers, "enable_auto_commit": False, "auto_offset_reset": "earliest",
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
    }
    return KafkaConsumer(**(config | overrides))


def ensure_topics(settings: KafkaSettings, *topics: str) -> None:
    """Create the topics that do not exist yet, each with `settings.partitions` partitions."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.servers, client_id="continuum-admin", bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
        request_timeout_ms=int(settings.send_timeout * 1000),
    )
    try:
        existing = set(admin.list_topics())
        missing = {topic: {"num_partitions": settings.partitions, "replication_factor": settings.replication_factor}
                   for topic in topics if topic not in existing}
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process created it meanwhile
                admin.create_topics(missing, wait_for_metadata=True)
    finally:
        admin.close()


def kafka_settings(settings: Settings) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topic=settings.kafka_topic,
        dead_letter_topic=settings.kafka_dead_letter_topic or f"{settings.kafka_topic}.DLT",
        partitions=settings.kafka_partitions,
        replication_factor=settings.kafka_replication_factor,
        send_timeout=settings.kafka_send_timeout,
    )
