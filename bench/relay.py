"""Relay: events published per second by our Kafka relay (`infra/kafka/relay.py`) against a bare
kafka-python producer sending the same messages to the same broker, configured like the relay's.

`measure_relay` times the relay alone over an existing store; `time_bare_producer` the baseline.
`python -m bench.kafka` adds the end-to-end latency. With no broker reachable the stage is reported
as skipped with the reason.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from bench.broker import kafka_broker
from infra.kafka.clients import KafkaSettings, producer
from infra.kafka.envelope import Pseudonyms, encode, kafka_headers
from services.bootstrap import Continuum

RELAY_TARGET = 0.8
MEASURING_KEY = os.urandom(32)  # a measurement publishes to throwaway topics: any pseudonym key will do


def measure_relay(wired: Continuum, bootstrap_servers: str, topic: str, limit: int | None = None,
                  partitions: int = 6) -> dict[str, float]:
    """The relay's throughput over an existing store into a new `topic` (its position row is kept under
    that topic's name), from the first event (or the first `limit`)."""
    relay = wired.relay(KafkaSettings(bootstrap_servers, topic, f"{topic}.DLT", partitions=partitions), pseudonym_key=MEASURING_KEY)
    relay._connected()  # noqa: SLF001 - connect and create the topic before the clock starts
    started = time.perf_counter()
    events = relay.publish_pending(limit=limit)
    seconds = time.perf_counter() - started
    relay.close()
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds if seconds else 0.0}


def time_bare_producer(wired: Continuum, settings: KafkaSettings, limit: int | None = None) -> tuple[int, float]:
    """The relay's messages for the first events (every one, or `limit`), built beforehand, sent by a
    producer configured like the relay's: (messages, seconds from the first send to the last acknowledgement)."""
    notifications = wired.app.recorder.select_notifications(start=0, limit=limit or 10**9, inclusive_of_start=False)
    pseudonyms = Pseudonyms(MEASURING_KEY)
    messages = [encode(wired.app.mapper.to_domain_event(n), n.id, None, pseudonyms) for n in notifications]
    relay = wired.relay(settings, pseudonym_key=MEASURING_KEY)
    relay._connected()  # noqa: SLF001 - the same topic creation as the relay's
    relay.close()
    bare = producer(settings, client_id="bare-producer")
    started = time.perf_counter()
    futures = [bare.send(settings.topic, key=m.key, value=m.value, headers=kafka_headers(m)) for m in messages]
    bare.flush()
    elapsed = time.perf_counter() - started
    if not all(future.succeeded() for future in futures):  # a measurement of failed sends is no measurement
        msg = f"the bare producer's sends to {settings.topic} were not all acknowledged"
        raise RuntimeError(msg)
    bare.close()
    return len(messages), elapsed


def relay_stage(wired: Continuum, limit: int) -> dict[str, Any]:
    with kafka_broker() as (servers, problem):
        if servers is None:
            return {"status": "skipped", "reason": problem}
        topic = f"bench-relay-{uuid.uuid4().hex[:8]}"
        ours = measure_relay(wired, servers, topic, limit)
        bare_topic = f"{topic}-bare"
        events, seconds = time_bare_producer(wired, KafkaSettings(servers, bare_topic, f"{bare_topic}.DLT"), limit)
    bare_rate = events / seconds
    bare = {"what": "the relay's messages (CloudEvents envelope, headers) from a bare producer configured like the relay's",
            "events": events, "seconds": seconds, "events_per_s": bare_rate}
    ratio = ours["events_per_s"] / bare_rate
    return {"status": "ok", "relay": ours, "baseline": bare, "ratio": ratio,
            "target": f">= {RELAY_TARGET:.0%} of a bare producer", "met": ratio >= RELAY_TARGET}
