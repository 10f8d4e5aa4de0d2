"""Relay: events published per second by our Kafka relay against a bare kafka-python producer
sending the same messages to the same broker.

The relay is another piece of work (issue 4: `infra/kafka/`, `services/cli/streaming.py`); it is
expected to expose `measure_relay(...)`. Until it does, or when no broker is reachable, the stage is
reported as skipped with the reason.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from services.bench.ingest import stored_rows
from services.bootstrap import Continuum

RELAY_MODULES = ("infra.kafka", "infra.kafka.relay", "infra.kafka.bench", "services.cli.streaming")
RELAY_TARGET = 0.8


def find_measure_relay() -> Callable[..., Any] | None:
    for name in RELAY_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        found: Callable[..., Any] | None = getattr(module, "measure_relay", None)
        if callable(found):
            return found
    return None


@contextlib.contextmanager
def broker() -> Iterator[tuple[str | None, str]]:
    """(bootstrap servers, "") or (None, why not): KAFKA_BOOTSTRAP_SERVERS, else the tests' Tansu helper."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        host, _, port = configured.split(",")[0].rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port or 9092)), timeout=3).close()
        except (OSError, ValueError) as error:
            yield None, f"KAFKA_BOOTSTRAP_SERVERS={configured} unreachable: {error}"
            return
        yield configured, ""
        return
    root = str(Path(__file__).resolve().parents[2])  # the repository, where tests/support lives
    if root not in sys.path:
        sys.path.append(root)
    try:
        support = importlib.import_module("tests.support.kafka")
    except ImportError:
        yield None, "no KAFKA_BOOTSTRAP_SERVERS and no tests/support/kafka.py to start a local broker"
        return
    starter = next((getattr(support, n) for n in ("kafka_server", "kafka_broker", "broker") if hasattr(support, n)), None)
    if starter is None:
        yield None, "tests/support/kafka.py has no kafka_server()/kafka_broker() to start a broker"
        return
    with starter() as started:
        found, problem = started if isinstance(started, tuple) else (started, "")
        servers = getattr(found, "bootstrap_servers", found)
        yield (str(servers), "") if servers else (None, f"local broker: {problem}")


def relay_stage(wired: Continuum, limit: int) -> dict[str, Any]:
    measure = find_measure_relay()
    if measure is None:
        return {"status": "skipped", "reason": f"no measure_relay() in {', '.join(RELAY_MODULES)} yet (the relay is issue 4)"}
    with broker() as (servers, problem):
        if servers is None:
            return {"status": "skipped", "reason": problem}
        topic = f"bench-relay-{uuid.uuid4().hex[:8]}"
        ours = _call(measure, wired=wired, servers=servers, topic=topic, limit=limit)
        bare = bare_producer(wired, servers, f"{topic}-bare", limit)
    ratio = ours["events_per_s"] / bare["events_per_s"]
    return {"status": "ok", "relay": ours, "baseline": bare, "ratio": ratio,
            "target": f">= {RELAY_TARGET:.0%} of a bare producer", "met": ratio >= RELAY_TARGET}


def _call(measure: Callable[..., Any], *, wired: Continuum, servers: str, topic: str, limit: int) -> dict[str, Any]:
    """Call measure_relay with what its signature asks for; read back events and seconds."""
    offered = {"wired": wired, "continuum": wired, "app": wired.app, "views": wired.views, "settings": wired.settings,
               "bootstrap_servers": servers, "servers": servers, "brokers": servers, "topic": topic,
               "limit": limit, "events": limit, "count": limit}
    parameters = inspect.signature(measure).parameters
    result = measure(**{name: value for name, value in offered.items() if name in parameters})
    if isinstance(result, int | float):
        return {"events_per_s": float(result), "raw": result}
    data = dict(result) if isinstance(result, dict) else vars(result)
    rate = data.get("events_per_s") or data.get("rate")
    if rate is None and data.get("seconds"):
        rate = (data.get("events") or data.get("published") or 0) / data["seconds"]
    return {"events_per_s": float(rate or 0.0), "raw": {k: v for k, v in data.items() if isinstance(v, int | float | str)}}


def bare_producer(wired: Continuum, servers: str, topic: str, limit: int) -> dict[str, Any]:
    """The relay's own messages sent by a bare producer configured like the relay's (issue 4's
    `services.kafka_measure`), else kafka-python's KafkaProducer with the stored rows keyed by journey."""
    try:
        from infra.kafka.clients import KafkaSettings
        from services.kafka_measure import _time_bare_producer
    except ImportError:
        return _plain_producer(wired, servers, topic, limit)
    head = wired.app.recorder.max_notification_id() or 0
    seconds = _time_bare_producer(wired, KafkaSettings(servers, topic, f"{topic}.DLT"))
    return {"what": "the relay's messages (CloudEvents envelope, headers) from a bare producer configured like the relay's",
            "events": head, "seconds": seconds, "events_per_s": head / seconds}


def _plain_producer(wired: Continuum, servers: str, topic: str, limit: int) -> dict[str, Any]:
    from kafka import KafkaProducer

    messages = [(str(row[0]).encode(), bytes(row[3])) for page in stored_rows(wired, 1000) for row in page][:limit]
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=5)
    try:
        started = time.perf_counter()
        for key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush()
        seconds = time.perf_counter() - started
    finally:
        producer.close()
    return {"what": "bare kafka-python KafkaProducer (acks=all, linger 5 ms), same rows keyed by journey",
            "events": len(messages), "seconds": seconds, "events_per_s": len(messages) / seconds}
