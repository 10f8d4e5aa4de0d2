"""Find or start the infrastructure tests need: an address from the environment, then
testcontainers where a Docker daemon answers, then a local process."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:  # noqa: BLE001 - any failure means "no Docker here"
        return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _reachable(url: str) -> str | None:
    """None when a connection succeeds, else why not."""
    try:
        with psycopg.connect(url.split("?", maxsplit=1)[0], connect_timeout=3):
            return None
    except psycopg.Error as error:
        return str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__


def _postgres_binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return candidates[0].parent if candidates else None


@contextlib.contextmanager
def _throwaway_cluster(bin_dir: Path) -> Iterator[str]:
    data = Path(tempfile.mkdtemp(prefix="continuum-pg-"))
    port = free_port()
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(data, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],  # noqa: S603
                   check=True, capture_output=True)
    subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", f"-p {port} -k {data}",  # noqa: S603
                    "-l", str(data / "log"), "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],  # noqa: S603
                       check=False, capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[tuple[str | None, str]]:
    """Yields (url, "") or (None, why not)."""
    configured = os.environ.get("CONTINUUM_TEST_POSTGRES_URL")
    if configured:
        problem = _reachable(configured)
        yield (configured, "") if problem is None else (None, f"CONTINUUM_TEST_POSTGRES_URL={configured}: {problem}")
        return
    if docker_answers():
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url(), ""
        return
    problem = _reachable(LOCAL_POSTGRES)
    if problem is None:
        yield LOCAL_POSTGRES, ""
        return
    bin_dir = _postgres_binaries()
    if bin_dir is None:
        yield None, f"local server: {problem}; no initdb to start one"
        return
    with _throwaway_cluster(bin_dir) as url:
        yield url, ""
