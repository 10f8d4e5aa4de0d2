"""What every command shares: the app, the database option, one-line errors, output helpers."""

from __future__ import annotations

import functools
import json
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
import typer
from eventsourcing.persistence import PersistenceError
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from domain.errors import CareRuleViolation
from infra.config import ConfigurationError, Settings
from infra.views import DatabaseUnavailable
from services.bootstrap import Continuum, bootstrap
from services.reads import Reader

app = typer.Typer(
    name="continuum",
    help="care-continuum: journeys through the continuum of substance-use-disorder care, event-sourced.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(soft_wrap=True)  # long lines stay whole for grep and scripts; tables still fit the width
errors = Console(stderr=True, soft_wrap=True)

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database-url", envvar="CONTINUUM_DATABASE_URL", help="sqlite:///FILE or postgresql://user:pass@host:port/db"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
ActorOption = Annotated[str | None, typer.Option("--actor", envvar="CONTINUUM_ACTOR", help="Who records or reads (actor id)")]
RoleOption = Annotated[str | None, typer.Option("--role", envvar="CONTINUUM_ROLE", help="The actor's role")]
PurposeOption = Annotated[str | None, typer.Option("--purpose", help="Why this record is read (kept in the access log)")]

EXIT_REFUSED = 1
EXIT_USAGE = 2

P = ParamSpec("P")
R = TypeVar("R")


class UsageError(Exception):
    """A mistake in what the user asked for, said in one line."""


def one_line_errors(func: Callable[P, R]) -> Callable[P, R]:
    """A user's mistake or an unreachable database is one line on stderr and an exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except CareRuleViolation as violation:
            errors.print(f"[red]refused:[/red] {escape(str(violation))}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_REFUSED) from None
        except (ConfigurationError, DatabaseUnavailable, UsageError, FileNotFoundError, IsADirectoryError) as problem:
            errors.print(f"[red]error:[/red] {escape(str(problem))}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_USAGE) from None
        except ValidationError as problem:
            errors.print(f"[red]error:[/red] invalid setting: {escape(str(problem.errors()[0]['msg']))}", highlight=False)
            raise typer.Exit(EXIT_USAGE) from None
        except (PersistenceError, psycopg.Error, sqlite3.Error) as problem:
            reason = str(problem).strip().splitlines()[0] if str(problem).strip() else type(problem).__name__
            errors.print(f"[red]error:[/red] database: {escape(reason)}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_USAGE) from None

    return wrapper


def command(*args: Any, **kwargs: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:  # noqa: ANN401
    def register(func: Callable[P, R]) -> Callable[P, R]:
        app.command(*args, **kwargs)(one_line_errors(func))
        return func

    return register


def settings_for(database_url: str | None, **overrides: Any) -> Settings:  # noqa: ANN401
    values = {key: value for key, value in overrides.items() if value is not None}
    if database_url:
        values["database_url"] = database_url
    return Settings(**values)


@contextmanager
def continuum(database_url: str | None, *, decode_check: bool = True, **overrides: Any) -> Iterator[Continuum]:  # noqa: ANN401
    wired = bootstrap(settings_for(database_url, **overrides), decode_check=decode_check)
    try:
        yield wired
    finally:
        wired.close()


def reader(wired: Continuum, purpose: str | None) -> Reader:
    return Reader(wired.settings.actor, wired.settings.role, purpose)


def stop_on_signals() -> threading.Event:
    """Set on SIGINT or SIGTERM, so a following command finishes its batch and exits cleanly."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def following(wired: Continuum) -> str:
    """How a `--follow` command learns of new events on this database."""
    return "LISTEN/NOTIFY" if wired.database.kind == "postgres" else f"polling every {wired.settings.poll_interval} s"


def print_json(data: Any) -> None:  # noqa: ANN401
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def parse_moment(text: str, zone_name: str, *, end_of_day: bool = True) -> datetime:
    """A date means the end of that day (a midnight census) in the configured timezone."""
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"unknown timezone {zone_name!r} in CONTINUUM_TIMEZONE"
        raise UsageError(msg) from None
    try:
        if len(text) == len("2026-01-31"):
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.max if end_of_day else time.min, tzinfo=zone)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
    except ValueError:
        msg = f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time"
        raise UsageError(msg) from None
    return moment.astimezone(UTC)


def day_after(moment: datetime) -> datetime:
    return moment + timedelta(microseconds=1)
