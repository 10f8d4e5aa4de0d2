"""What every command shares: the app, the database option, one-line errors, output helpers."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeGuard, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from services import moments
from services.moments import json_moment

if TYPE_CHECKING:  # the web stack, the store and the drivers load when a command runs, not at start
    from pydantic import ValidationError

    from infra.config import Settings
    from services.bootstrap import Continuum
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


_creates_store: ContextVar[bool] = ContextVar("creates_store", default=False)


def one_line_errors(func: Callable[P, R], *, creates_store: bool = False) -> Callable[P, R]:
    """A user's mistake or an unreachable database is one line on stderr and an exit code, never a traceback.

    `creates_store`: the command may create a SQLite store that does not exist yet (it records
    something); any other command refuses a missing file instead of creating an empty store.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        allowed = _creates_store.set(creates_store)
        try:
            return func(*args, **kwargs)
        except Exception as problem:
            explained = explain(problem)
            if explained is None:
                raise
            code, text = explained
            label = "refused" if code == EXIT_REFUSED else "error"
            errors.print(f"[red]{label}:[/red] {escape(text)}", highlight=False, soft_wrap=True)
            raise typer.Exit(code) from None
        finally:
            _creates_store.reset(allowed)

    return wrapper


def _loaded(module: str, name: str) -> type[BaseException] | tuple[()]:
    """An exception class of a module that is already imported; an exception of a module that is not
    imported cannot have been raised, so the module is never imported just to classify an error."""
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else ()


def _invalid(problem: BaseException) -> TypeGuard[ValidationError]:
    """A pydantic ValidationError (pydantic is not imported for the test)."""
    return isinstance(problem, _loaded("pydantic", "ValidationError"))


def explain(problem: BaseException) -> tuple[int, str] | None:
    """The exit code and the one line for an error a user can act on; None for a bug (a traceback)."""
    if isinstance(problem, _loaded("domain.errors", "CareRuleViolation")):
        return EXIT_REFUSED, str(problem)
    usage = (
        UsageError, FileNotFoundError, IsADirectoryError, _loaded("infra.config", "ConfigurationError"),
        _loaded("infra.views", "DatabaseUnavailable"), _loaded("services.parallel_rebuild", "RebuildHelperFailed"),
    )
    if isinstance(problem, usage):
        return EXIT_USAGE, str(problem)
    if _invalid(problem):
        if problem.title == "Settings":
            from infra.config import describe

            return EXIT_USAGE, describe(problem)
        return EXIT_USAGE, f"invalid value: {problem.errors()[0]['msg']}"
    database = (
        _loaded("eventsourcing.persistence", "PersistenceError"), _loaded("psycopg", "Error"), _loaded("sqlite3", "Error"),
    )
    if isinstance(problem, database):
        reason = str(problem).strip().splitlines()[0] if str(problem).strip() else type(problem).__name__
        return EXIT_USAGE, f"database: {reason}"
    return None


def command(*args: Any, creates_store: bool = False, **kwargs: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:  # noqa: ANN401 - typer.Typer.command's
    """Register a command of `continuum`: `@command("name")` on a function of any module of this package.

    `creates_store=True` for a command that records (import, demo): it may create a new SQLite
    store. A command that reads refuses a SQLite file that does not exist (see `open_store`).
    """

    def register(func: Callable[P, R]) -> Callable[P, R]:
        app.command(*args, **kwargs)(one_line_errors(func, creates_store=creates_store))
        return func

    return register


def settings_for(database_url: str | None, **overrides: object) -> Settings:
    """The settings: the environment, with the options that were given on top; invalid ones refused in one line."""
    from infra.config import load_settings

    values = {key: value for key, value in overrides.items() if value is not None}
    if database_url:
        values["database_url"] = database_url
    return load_settings(**values)


def require_store(settings: Settings) -> None:
    """A read never creates a store: a SQLite file that does not exist is said, not made empty."""
    from infra.config import parse_database_url

    database = parse_database_url(settings.database_url)
    if database.kind == "sqlite" and not database.memory and not Path(database.path).exists():
        msg = (
            f"no store at {database.display} (file {database.path} does not exist): give the --database-url"
            " (or CONTINUUM_DATABASE_URL) of an existing store; `continuum import` or `continuum demo` creates one"
        )
        raise UsageError(msg)


@contextmanager
def open_store(settings: Settings, *, decode_check: bool = True) -> Iterator[Continuum]:
    """The wired store of `settings`; unless the running command may create one, the store must exist."""
    from services.bootstrap import bootstrap

    if not _creates_store.get():
        require_store(settings)
    wired = bootstrap(settings, decode_check=decode_check)
    try:
        yield wired
    finally:
        wired.close()


@contextmanager
def continuum(database_url: str | None, *, decode_check: bool = True, **overrides: object) -> Iterator[Continuum]:
    with open_store(settings_for(database_url, **overrides), decode_check=decode_check) as wired:
        yield wired


def writable(path: Path, option: str) -> None:
    """A file can be written at `path`, checked before any work: else a one-line UsageError."""
    if path.is_dir():
        msg = f"{option} {path} is a folder: give a file name"
        raise UsageError(msg)
    if not path.parent.is_dir():
        msg = f"{option} {path}: folder {path.parent} does not exist"
        raise UsageError(msg)
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        msg = f"{option} {path}: cannot write there (permission denied)"
        raise UsageError(msg)


def reader(wired: Continuum, purpose: str | None) -> Reader:
    from services.reads import Reader

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


def print_json(data: object) -> None:
    """JSON on stdout; every time in it in the one JSON shape (ISO 8601 in UTC, `+00:00`)."""
    sys.stdout.write(json.dumps(data, indent=2, default=_json_value) + "\n")


def _json_value(value: object) -> object:
    """What json cannot write itself."""
    if isinstance(value, datetime):
        return json_moment(value)
    if isinstance(value, date):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return str(value)


def parse_moment(
    text: str, zone_name: str, *, end_of_day: bool = True, now: datetime | None = None, name: str = "time",
) -> datetime:
    """`services.moments.parse_moment` (the API reads moments with it too); a mistake is a one-line UsageError."""
    try:
        return moments.parse_moment(text, zone_name, end_of_day=end_of_day, now=now, name=name)
    except moments.MomentError as problem:
        raise UsageError(str(problem)) from None


def now(wired: Continuum) -> datetime:
    """The clock's reading: the journey service's clock, which tests replace."""
    return wired.service.clock()


def shown(moment: datetime | str, settings: Settings, *, seconds: bool = False, label: bool = True) -> str:
    """A time for a person, in the configured zone (see `services.moments.shown`)."""
    return moments.shown(moment, settings.timezone, seconds=seconds, label=label)


def heading(title: str, settings: Settings) -> str:
    """A table column of times in the configured zone: `occurred (America/New_York)`."""
    return moments.heading(title, settings.timezone)
