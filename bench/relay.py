"""Relay: events published per second by our Kafka relay (`infra/kafka/relay.py`) against a bare
kafka-python producer sending the same messages to the same broker, configured like the relay's.

`measure_relay` times the relay alone over an existing store; `time_bare_producer` the baseline (the
relay's messages built beforehand, each sent by the library's plain `send`). The stage runs the two in
turn `rounds` times, alternating which goes first (the machine's other load moves both alike), and
reports the round with the median ratio; each side's CPU time (the whole process: the sending thread and
kafka-python's network thread) is reported beside its wall time. With no broker reachable the stage is
reported as skipped with the reason. By hand, over a fresh demo store or an existing one:

    python -m bench.relay [--events 30000] [--rounds 5] [--encoder thread|process] [--database-url URL]

`python -m bench.kafka` adds the end-to-end latency.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloudevents.core.bindings.kafka import KafkaMessage

from bench.broker import kafka_broker
from bench.stats import middle
from infra.config import Settings
from infra.kafka.clients import KafkaSettings, producer
from infra.kafka.envelope import Pseudonyms, encode, kafka_headers
from services.bootstrap import Continuum, bootstrap

RELAY_TARGET = 0.8
ROUNDS = 3
MEASURING_KEY = os.urandom(32)  # a measurement publishes to throwaway topics: any pseudonym key will do


def measure_relay(wired: Continuum, bootstrap_servers: str, topic: str, limit: int | None = None,
                  partitions: int = 6, encoder: str | None = None) -> dict[str, float]:
    """The relay's throughput over an existing store into a new `topic` (its position row is kept under
    that topic's name), from the first event (or the first `limit`); `encoder` as `Continuum.relay` takes it."""
    relay = wired.relay(KafkaSettings(bootstrap_servers, topic, f"{topic}.DLT", partitions=partitions),
                        pseudonym_key=MEASURING_KEY, encoder=encoder)
    relay._connected()  # noqa: SLF001 - connect and create the topic before the clock starts
    started, cpu = time.perf_counter(), time.process_time()
    events = relay.publish_pending(limit=limit)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    relay.close()
    return _rates(events, seconds, cpu)


def relay_messages(wired: Continuum, limit: int | None = None) -> list[KafkaMessage]:
    """The relay's messages for the first events (every one, or `limit`), as the bare producer sends them."""
    notifications = wired.app.recorder.select_notifications(start=0, limit=limit or 10**9, inclusive_of_start=False)
    pseudonyms = Pseudonyms(MEASURING_KEY)
    return [encode(wired.app.mapper.to_domain_event(n), n.id, None, pseudonyms) for n in notifications]


def time_bare_producer(wired: Continuum, settings: KafkaSettings, limit: int | None = None,
                       messages: list[KafkaMessage] | None = None) -> tuple[int, float]:
    """The relay's messages (`relay_messages`, unless given) sent by a producer configured like the relay's:
    (messages, seconds from the first send to the last acknowledgement)."""
    measured = bare_producer(wired, settings, messages if messages is not None else relay_messages(wired, limit))
    return int(measured["events"]), measured["seconds"]


def bare_producer(wired: Continuum, settings: KafkaSettings, messages: list[KafkaMessage]) -> dict[str, float]:
    """`messages` sent by a producer configured like the relay's, each by the library's plain `send` (its own
    partitioner): events, seconds from the first send to the last acknowledgement, their rate and CPU time."""
    relay = wired.relay(settings, pseudonym_key=MEASURING_KEY)
    relay._connected()  # noqa: SLF001 - the same topic creation as the relay's
    relay.close()
    bare = producer(settings, client_id="bare-producer")
    started, cpu = time.perf_counter(), time.process_time()
    futures = [bare.send(settings.topic, key=m.key, value=m.value, headers=kafka_headers(m)) for m in messages]
    bare.flush()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if not all(future.succeeded() for future in futures):  # a measurement of failed sends is no measurement
        msg = f"the bare producer's sends to {settings.topic} were not all acknowledged"
        raise RuntimeError(msg)
    bare.close()
    return _rates(len(messages), seconds, cpu)


def _rates(events: int, seconds: float, cpu: float) -> dict[str, float]:
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds if seconds else 0.0,
            "cpu_seconds": cpu, "cpu_us_per_event": cpu / events * 1e6 if events else 0.0}


def relay_rounds(wired: Continuum, servers: str, limit: int | None, rounds: int = ROUNDS,
                 encoder: str | None = None) -> list[dict[str, Any]]:
    """The relay and the bare producer in turn, each to fresh topics, `rounds` times (who goes first alternates)."""
    messages = relay_messages(wired, limit)
    measured = []
    for number in range(rounds):
        topic = f"bench-relay-{uuid.uuid4().hex[:8]}"
        bare_settings = KafkaSettings(servers, f"{topic}-bare", f"{topic}-bare.DLT")
        sides: dict[str, dict[str, float]] = {}
        for side in ("relay", "baseline") if number % 2 == 0 else ("baseline", "relay"):
            sides[side] = (measure_relay(wired, servers, topic, limit, encoder=encoder) if side == "relay"
                           else bare_producer(wired, bare_settings, messages))
        ratio = sides["relay"]["events_per_s"] / sides["baseline"]["events_per_s"]
        cpu_ratio = sides["baseline"]["cpu_us_per_event"] / sides["relay"]["cpu_us_per_event"]
        measured.append({**sides, "ratio": ratio, "cpu_ratio": cpu_ratio})
    return measured


def relay_stage(wired: Continuum, limit: int, rounds: int = ROUNDS) -> dict[str, Any]:
    with kafka_broker() as (servers, problem):
        if servers is None:
            return {"status": "skipped", "reason": problem}
        measured = relay_rounds(wired, servers, limit, rounds)
    median = middle(measured, key=lambda one: one["ratio"])
    bare = {"what": "the relay's messages (CloudEvents envelope, headers) from a bare producer configured like the relay's",
            **median["baseline"]}
    return {"status": "ok", "relay": median["relay"], "baseline": bare, "ratio": median["ratio"],
            "cpu_ratio": median["cpu_ratio"], "rounds": [_round_figures(one) for one in measured],
            "target": f">= {RELAY_TARGET:.0%} of a bare producer", "met": median["ratio"] >= RELAY_TARGET}


def _round_figures(one: dict[str, Any]) -> dict[str, float]:
    return {"relay_per_s": round(one["relay"]["events_per_s"]), "bare_per_s": round(one["baseline"]["events_per_s"]),
            "ratio": round(one["ratio"], 3), "relay_cpu_us": round(one["relay"]["cpu_us_per_event"], 1),
            "bare_cpu_us": round(one["baseline"]["cpu_us_per_event"], 1), "cpu_ratio": round(one["cpu_ratio"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=30_000, help="events published per round (a fresh store records as many)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--encoder", choices=("thread", "process"), help="the relay's encoder (default: the settings')")
    parser.add_argument("--database-url", help="an existing store to publish from (default: a fresh demo store)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="continuum-relay-") as folder, kafka_broker() as (servers, problem):
        if servers is None:
            raise SystemExit(f"no broker: {problem}")
        wired = bootstrap(Settings(database_url=args.database_url or f"sqlite:///{Path(folder) / 'store.db'}"))
        try:
            if args.database_url is None:  # a fresh store: the demo cohort recorded first
                from bench.ingest import ACTOR, cohort_lines
                from services.importer import import_lines

                end = datetime.now(tz=UTC).replace(microsecond=0)
                import_lines(wired.service, cohort_lines(args.events, 7, end), ACTOR, chunk_size=2000)
            elif not wired.app.recorder.max_notification_id():
                raise SystemExit(f"no events to publish: the store at {args.database_url} is empty")
            measured = [_round_figures(one) for one in relay_rounds(wired, servers, args.events, args.rounds, args.encoder)]
        finally:
            wired.close()
    for one in measured:
        print(json.dumps(one))  # noqa: T201
    summary = {key: statistics.median(one[key] for one in measured) for key in measured[0]}
    print(json.dumps({"median": summary}))  # noqa: T201


if __name__ == "__main__":
    main()
