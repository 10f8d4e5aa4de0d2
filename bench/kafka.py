"""How fast the relay publishes, beside a bare kafka-python producer sending the same messages in
the same run, and how long an event takes from its command being recorded to being consumed.

The benchmark harness calls `bench.relay.measure_relay` (the relay alone); this adds the baseline
and the latency. By hand:

    python -m bench.kafka --bootstrap-servers 127.0.0.1:9092 [--clients 1000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from kafka import TopicPartition

from bench.ingest import all_recorded
from bench.relay import MEASURING_KEY, measure_relay, time_bare_producer
from bench.stats import percentile
from domain.events import event_id
from domain.journey import ClientJourney
from domain.values import Actor
from infra.config import Settings
from infra.kafka.clients import KafkaSettings, kafka_settings, reader
from infra.kafka.envelope import Pseudonyms
from services.bootstrap import Continuum, bootstrap
from services.commands import parse_command
from services.demo import cohort_lines
from services.importer import import_lines

ACTOR = Actor("bench", "system")


@dataclass(frozen=True)
class RelayMeasurement:
    events: int
    relay_seconds: float
    relay_events_per_s: float
    bare_seconds: float
    bare_events_per_s: float
    latency_samples: int
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    poll_interval: float
    database: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def measure_kafka(
    bootstrap_servers: str, *, database_url: str | None = None, clients: int = 1000, latency_samples: int = 200,
    partitions: int = 6, poll_interval: float = 0.05,
) -> RelayMeasurement:
    """Record a `clients`-strong demo cohort into `database_url` (a temporary SQLite file by default, or
    an empty store), then time the relay and a bare producer over the same events, each to a fresh topic,
    then the latency of `latency_samples` single commands through a following relay."""
    with tempfile.TemporaryDirectory(prefix="continuum-measure-") as folder:
        url = database_url or f"sqlite:///{Path(folder) / 'store.db'}"
        settings = Settings(database_url=url, kafka_bootstrap_servers=bootstrap_servers, kafka_partitions=partitions,
                            poll_interval=poll_interval)
        wired = bootstrap(settings)
        try:
            end = wired.service.clock().replace(microsecond=0) - timedelta(days=1)  # the service's clock: a test fixes it
            all_recorded(import_lines(wired.service, cohort_lines(clients, 7, start=end - timedelta(days=365), end=end), ACTOR))
            relayed = measure_relay(wired, bootstrap_servers, _fresh(settings).topic, partitions=partitions)
            events, relay_seconds = int(relayed["events"]), relayed["seconds"]
            bare_events, bare_seconds = time_bare_producer(wired, _fresh(settings))
            latencies = _latencies(wired, _fresh(settings), latency_samples)
        finally:
            wired.close()
    return RelayMeasurement(
        events=events, relay_seconds=round(relay_seconds, 3), relay_events_per_s=round(events / relay_seconds),
        bare_seconds=round(bare_seconds, 3), bare_events_per_s=round(bare_events / bare_seconds),
        latency_samples=len(latencies), latency_p50_ms=round(percentile(latencies, 0.5), 1),
        latency_p99_ms=round(percentile(latencies, 0.99), 1), latency_max_ms=round(max(latencies), 1),
        poll_interval=poll_interval, database=wired.database.display,
    )


def _fresh(settings: Settings) -> KafkaSettings:
    topic = f"care.journey.measure-{uuid.uuid4().hex[:8]}"
    return kafka_settings(settings.model_copy(update={"kafka_topic": topic}))


def _latencies(wired: Continuum, settings: KafkaSettings, samples: int) -> list[float]:
    """Milliseconds from a command's save returning to a plain consumer receiving its message."""
    relay = wired.relay(settings, pseudonym_key=MEASURING_KEY)
    relay.publish_pending()  # the backlog: the topic now holds the demo; only new events are timed
    stop = threading.Event()
    relaying = threading.Thread(target=relay.run, args=(stop, wired.wait_for_events, wired.settings.poll_interval), daemon=True)
    relaying.start()
    consumer = reader(settings, fetch_max_wait_ms=10)  # a consumer tuned for latency: the broker answers fetches at once
    partitions = [TopicPartition(settings.topic, p) for p in sorted(consumer.partitions_for_topic(settings.topic) or ())]
    consumer.assign(partitions)
    while consumer.poll(timeout_ms=1000):  # read the backlog first (seeking to the end misbehaves on some brokers)
        pass
    received: dict[str, float] = {}
    recorded: dict[str, float] = {}

    def consume() -> None:
        while len(received) < samples and not stop.is_set():
            for records in consumer.poll(timeout_ms=100).values():
                now = time.time()
                for record in records:
                    received.setdefault(dict(record.headers)["ce_id"].decode(), now)

    consuming = threading.Thread(target=consume, daemon=True)
    consuming.start()
    run, pseudonyms = uuid.uuid4().hex[:6], Pseudonyms(MEASURING_KEY)
    for number in range(samples):
        ref = f"L-{run}-{number:05d}"
        data = {"command": "register", "client": ref, "site": "north", "occurred_at": wired.service.clock().isoformat()}
        outcome = wired.service.execute(parse_command(data), ACTOR)
        if outcome.error is not None:
            raise RuntimeError(f"a timed command was refused: {outcome.error}")
        recorded[str(event_id(pseudonyms.journey(ClientJourney.create_id(ref)), 1))] = time.time()  # the message's ce_id
        time.sleep(0.01)
    consuming.join(timeout=30)
    stop.set()
    relaying.join(timeout=30)
    consumer.close()
    latencies = [(received[ce_id] - at) * 1000 for ce_id, at in recorded.items() if ce_id in received]
    if not latencies:
        msg = f"none of the {samples} commands' messages reached the consumer of {settings.topic} within 30 s"
        raise RuntimeError(msg)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--database-url")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--poll-interval", type=float, default=0.05)
    args = parser.parse_args()
    measured = measure_kafka(
        args.bootstrap_servers, database_url=args.database_url, clients=args.clients,
        latency_samples=args.latency_samples, poll_interval=args.poll_interval,
    )
    print(json.dumps(measured.as_json(), indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
