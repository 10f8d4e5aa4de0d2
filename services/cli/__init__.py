"""The `continuum` command line (typer + rich). Each module adds its commands to `app`."""

from __future__ import annotations

from services.cli import admin, auditing, benchmarking, reads, serving, streaming, writes  # noqa: F401 - registers the commands
from services.cli.base import app


def main() -> None:
    app(prog_name="continuum")


__all__ = ["app", "main"]
