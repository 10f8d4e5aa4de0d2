"""The `continuum` command line (typer + rich). Each module adds its commands to `app` with
`@command(...)` from `services.cli.base`, and is imported here so that its commands exist.

Starting the CLI (and `--help`) imports these modules, so they import typer, rich and small
modules only; a command imports the store, the web stack or the Kafka client inside its body,
when it runs (`tests/unit/test_cli_startup.py` holds every module of this package to that).
"""

from __future__ import annotations

from services.cli import admin, auditing, benchmarking, checkpoints, exports, reads, records, reports, serving, streaming, writes  # noqa: F401 - registers the commands
from services.cli.base import app


def main() -> None:
    app(prog_name="continuum")


__all__ = ["app", "main"]
