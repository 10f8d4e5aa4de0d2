"""The command line answers at once: starting it (and `--help`) loads typer and rich, not the web
stack, the store, the drivers or the Kafka client. Each command imports what it needs when it runs.

Checked by what a fresh interpreter has imported, never by a timing (which would depend on the machine).
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys

import services.cli

# Top-level packages (and our own modules) that a command loads when it runs, never at start.
# (pydantic is not among them: typer itself uses it to convert some option values.)
HEAVY = (
    "fastapi", "starlette", "uvicorn", "kafka", "cloudevents", "schemathesis", "structlog", "prometheus_client",
    "psycopg", "eventsourcing", "pydantic_settings", "cryptography",
    "services.api.app", "bench", "services.bootstrap", "services.journeys", "services.importer",
    "services.reads", "projections", "infra.views", "infra.kafka", "infra.config", "domain.journey",
)


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_importing_the_cli_loads_no_web_stack_store_driver_or_kafka_client():
    modules = loaded_after("import services.cli")

    assert "typer" in modules
    assert heavy(modules) == []


def test_help_lists_every_command_without_loading_what_the_commands_use():
    code = (
        "from typer.testing import CliRunner\nfrom services.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\nassert result.exit_code == 0, result.output\n"
        "assert 'census' in result.output and 'serve' in result.output and 'token' in result.output\n"
    )
    assert heavy(loaded_after(code)) == []


def test_a_commands_own_help_loads_nothing_heavy_either():
    code = (
        "from typer.testing import CliRunner\nfrom services.cli import app\n"
        "for args in (['census', '--help'], ['serve', '--help'], ['token', 'add', '--help'], ['relay', '--help']):\n"
        "    result = CliRunner().invoke(app, args)\n    assert result.exit_code == 0, result.output\n"
    )
    assert heavy(loaded_after(code)) == []


def test_every_module_of_the_cli_package_is_imported_so_its_commands_are_registered():
    """A new module of commands (say services/cli/records.py) must be imported in services/cli/__init__.py."""
    modules = loaded_after("import services.cli")
    package = [f"services.cli.{info.name}" for info in pkgutil.iter_modules(services.cli.__path__)]

    assert package
    assert [name for name in package if name not in modules] == []


def test_a_command_loads_what_it_needs_when_it_runs():
    code = (
        "from typer.testing import CliRunner\nfrom services.cli import app\n"
        "result = CliRunner().invoke(app, ['schema', 'openapi'])\nassert result.exit_code == 0, result.output\n"
    )
    assert "fastapi" in loaded_after(code)
