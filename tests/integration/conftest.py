"""Fixtures of the integration tests: a Kafka broker for the session (see tests/support/kafka.py),
a fresh topic per test, and a 1,000-client demo store recorded once per session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from infra.kafka.clients import KafkaSettings
from tests.conftest import require_or_skip
from tests.integration.kafka_support import record_demo
from tests.support.kafka import Broker, kafka_broker

DEMO_CLIENTS = 1000


@pytest.fixture(autouse=True)
def _fixed_service_clock(service_clock: datetime) -> None:
    """Every command run in process here (CLI, API, a bootstrapped service) reads the tests' fixed clock."""


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    with kafka_broker() as (found, problem):
        if found is None:
            require_or_skip(f"no Kafka broker: {problem}")
        yield found


@pytest.fixture
def kafka(broker: Broker) -> KafkaSettings:
    """A topic of our own (4 partitions, created on first use) and its dead-letter topic."""
    topic = f"care.journey.test-{uuid.uuid4().hex[:10]}"
    return KafkaSettings(broker.bootstrap_servers, topic, f"{topic}.DLT", partitions=4, send_timeout=10.0)


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A SQLite store with a 1,000-client demo year (about 50,000 events) and its head; copy before writing."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    head = record_demo(f"sqlite:///{path}", DEMO_CLIENTS)
    return path, head
