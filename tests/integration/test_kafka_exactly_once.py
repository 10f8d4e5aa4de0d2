"""A 1,000-client demo through the relay, killed with SIGKILL midway and restarted: every event is on
the topic (copies allowed, dropped by ce_id), and the projections built from the topic equal the
ones built from the store."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from domain.events import event_id
from infra.config import Settings, parse_database_url
from infra.kafka.clients import KafkaSettings
from infra.views import open_views
from projections.catalogue import all_projections
from services.bootstrap import bootstrap
from services.projection_worker import ProjectionWorker
from tests.integration.kafka_support import PSEUDONYM_KEY_TEXT, PSEUDONYMS, header, projection_dump, read_topic, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def continuum_command() -> list[str]:
    script = Path(sys.executable).with_name("continuum")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from services.cli import main; main()"]


def relay_position(path: Path, topic: str) -> int:
    with sqlite3.connect(path, timeout=30) as connection:
        try:
            row = connection.execute("SELECT position FROM relay_positions WHERE name = ?", (topic,)).fetchone()
        except sqlite3.OperationalError:  # the relay has not created its table yet
            return 0
    return int(row[0]) if row else 0


@pytest.fixture(scope="module")
def published(broker, demo_store, tmp_path_factory) -> dict[str, Any]:
    source, head = demo_store
    folder = tmp_path_factory.mktemp("killed")
    store = folder / "store.db"
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{store}{suffix}")
    topic = f"care.journey.test-{uuid.uuid4().hex[:10]}"
    settings = KafkaSettings(broker.bootstrap_servers, topic, f"{topic}.DLT", partitions=4, send_timeout=10.0)
    env = {
        **os.environ, "CONTINUUM_DATABASE_URL": f"sqlite:///{store}", "CONTINUUM_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "CONTINUUM_KAFKA_TOPIC": topic, "CONTINUUM_KAFKA_PARTITIONS": "4", "CONTINUUM_KAFKA_RELAY_BATCH_SIZE": "500",
        "CONTINUUM_PSEUDONYM_KEY": PSEUDONYM_KEY_TEXT,
    }
    with (folder / "relay.log").open("wb") as log:
        relay = subprocess.Popen([*continuum_command(), "relay", "--follow"], env=env, stdout=log, stderr=log)  # noqa: S603
        try:
            wait_until(lambda: relay_position(store, topic) >= head // 3, 120, "the relay has published a third")
        finally:
            relay.send_signal(signal.SIGKILL)
            relay.wait(timeout=30)
    killed_at = relay_position(store, topic)
    restarted = subprocess.run([*continuum_command(), "relay"], env=env, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
    assert restarted.returncode == 0, restarted.stderr
    return {"store": store, "head": head, "killed_at": killed_at, "settings": settings, "records": read_topic(settings)}


def test_relay_was_killed_midway(published):
    assert 0 < published["killed_at"] < published["head"]
    assert relay_position(published["store"], published["settings"].topic) == published["head"]


def test_every_event_arrives_exactly_once_in_effect(published):
    wired = bootstrap(Settings(database_url=f"sqlite:///{published['store']}"))
    try:
        stored = {
            str(event_id(PSEUDONYMS.journey(n.originator_id), n.originator_version))
            for n in wired.app.recorder.select_notifications(start=0, limit=published["head"], inclusive_of_start=False)
        }
    finally:
        wired.close()
    ids = [header(record, "ce_id") for record in published["records"]]

    assert len(stored) == published["head"]
    assert set(ids) == stored
    assert len(ids) >= len(stored)  # copies of the batch in flight at the kill are allowed


def test_projections_built_from_the_topic_equal_those_built_from_the_store(published, tmp_path):
    wired = bootstrap(Settings(database_url=f"sqlite:///{published['store']}"))
    target = open_views(parse_database_url(f"sqlite:///{tmp_path}/read.db"))
    try:
        wired.runner.catch_up()
        worker = ProjectionWorker(target, all_projections(), published["settings"], group="equality", name="worker-1")
        counts = worker.run(threading.Event(), until_caught_up=True)

        assert counts.applied == published["head"]
        assert counts.duplicates == len(published["records"]) - published["head"]
        assert counts.dead_lettered == 0
        assert projection_dump(target) == projection_dump(wired.views, as_published=True)
    finally:
        target.close()
        wired.close()
