"""Operating commands: keep projections current, rebuild them, print schemas, make a key."""

from __future__ import annotations

import base64
import json
import os
from typing import TYPE_CHECKING, Annotated

import typer

from services.cli.base import DatabaseOption, UsageError, command, console, continuum, errors, following, stop_on_signals

if TYPE_CHECKING:
    from projections.runner import ProjectionStatus


@command("project")
def project(
    follow: Annotated[bool, typer.Option("--follow", help="Keep running and project new events as they arrive")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Bring every projection up to the head of the event log (and keep it there with --follow)."""
    with continuum(database_url) as wired:
        done = wired.runner.catch_up()
        console.print(f"projected {done} events; {_lags(wired.runner.status())}")
        if not follow:
            return
        stop = stop_on_signals()
        errors.print(f"following {wired.database.display} ({following(wired)}); Ctrl-C stops")
        wired.runner.follow(wired.wait_for_events, stop, wired.settings.poll_interval)
        console.print(f"stopped; {_lags(wired.runner.status())}")


def _lags(statuses: list[ProjectionStatus]) -> str:
    return ", ".join(f"{s.name} at {s.position} (lag {s.lag})" for s in statuses)


@command("rebuild")
def rebuild(
    name: Annotated[str | None, typer.Argument(help="A projection: census, step_history, audit_trail, flags, outcomes, ...")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Rebuild every projection")] = False,
    workers: Annotated[int, typer.Option(
        "--workers", help="Processes filling the projections at once, each a share of them (with --all; each reads the events"
                          " its share takes)",
    )] = 1,
    database_url: DatabaseOption = None,
) -> None:
    """Build a projection's tables again from the first event, beside the ones in use, and swap them in when built."""
    from projections.catalogue import all_projections

    known = [projection.name for projection in all_projections()]
    if all_ == (name is not None):
        msg = f"name one projection ({', '.join(known)}) or give --all"
        raise UsageError(msg)
    names = known if all_ else [str(name)]
    if names[0] not in known:
        msg = f"no projection named {name!r} (known: {', '.join(known)})"
        raise UsageError(msg)
    with continuum(database_url) as wired:
        done = wired.rebuild(names, workers=workers)
        console.print(f"rebuilt {', '.join(names)} from {done} events; {_lags(wired.runner.status())}")
        left = wired.views.scratch_files()
        if left:
            many = len(left) > 1
            errors.print(
                f"{len(left)} scratch file{'s' if many else ''} of an interrupted rebuild beside the store"
                f" ({sum(size for _, size in left) / 2**20:.0f} MB): {', '.join(str(path) for path, _ in left)};"
                f" delete {'them' if many else 'it'} unless a rebuild is running now",
            )


schema_app = typer.Typer(help="Print JSON Schemas of what crosses the boundary.", no_args_is_help=True)


@schema_app.command("commands")
def schema_commands() -> None:
    """The JSON Schema of a command line (`continuum import`, the API's request bodies)."""
    from services.commands import commands_json_schema

    print(json.dumps(commands_json_schema(), indent=2))  # noqa: T201


@command("keygen")
def keygen() -> None:
    """Print a new AES-256 key for CONTINUUM_CIPHER_KEY (encryption of events at rest)."""
    print(base64.b64encode(os.urandom(32)).decode())  # noqa: T201


def _register() -> None:
    from services.cli.base import app

    app.add_typer(schema_app, name="schema")


_register()
