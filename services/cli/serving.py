"""`continuum serve` (the HTTP API), `continuum token ...` (the operator's API tokens) and
`continuum schema openapi` (the API's document, as committed in openapi.json)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from services.cli.admin import schema_app
from services.cli.base import (
    DatabaseOption,
    JsonOption,
    UsageError,
    command,
    console,
    continuum,
    errors,
    heading,
    print_json,
    require_store,
    settings_for,
    shown,
)
from services.tokens import Role, TokenProblem  # light: the web stack is not imported

MAX_PORT = 65535


@command("serve")
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on (CONTINUUM_API_HOST; default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port, 1 to 65535 (CONTINUUM_API_PORT; default 8000)")] = None,
    follow: Annotated[bool | None, typer.Option(
        "--follow/--no-follow", help="Keep projections current in this process (default), or leave it to `continuum project --follow`",
    )] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs and /openapi.json); tokens come from `continuum token add`."""
    import structlog
    import uvicorn

    from services.api import create_app
    from services.api.observability import configure_logging
    from services.bootstrap import bootstrap

    if port is not None and not 1 <= port <= MAX_PORT:
        msg = f"--port {port} is not a TCP port: give a number from 1 to {MAX_PORT}"
        raise UsageError(msg)
    settings = settings_for(database_url)
    require_store(settings)  # tokens live in the store: a new, empty one would answer every request with 401
    configure_logging(settings.log_level)
    wired = bootstrap(settings)
    try:
        app = create_app(wired, follow=follow)
        if not wired.tokens.list():
            structlog.get_logger("continuum.api").warning("no API tokens: every request gets 401 until `continuum token add`")
        uvicorn.run(
            app, host=host or settings.api_host, port=port or settings.api_port, access_log=False, log_config=None,
            proxy_headers=False, server_header=False,
        )
    finally:
        wired.close()


token_app = typer.Typer(help="API tokens: made and revoked by the operator, stored only as hashes.", no_args_is_help=True)


def token_add(
    name: Annotated[str, typer.Argument(help="Who uses it; recorded as the actor of their commands and reads")],
    role: Annotated[Role, typer.Option("--role", help="clinician, auditor or dashboard")],
    site: Annotated[str | None, typer.Option("--site", help="The clinician's site (clinicians only)")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Make a token and print it once: only its hash is kept."""
    with continuum(database_url) as wired:
        try:
            token = wired.tokens.add(name, role, site)
        except TokenProblem as problem:
            raise UsageError(str(problem)) from None
    errors.print(f"token for {name} ({role.value}{', site ' + site if site else ''}); shown once, keep it secret:")
    print(token)  # noqa: T201 - stdout holds the token alone, for TOKEN=$(continuum token add ...)


def token_list(
    all_: Annotated[bool, typer.Option("--all", help="Include revoked tokens")] = False,
    as_json: JsonOption = False,
    database_url: DatabaseOption = None,
) -> None:
    """Names, roles and sites of the tokens (never the tokens)."""
    with continuum(database_url) as wired:
        infos = wired.tokens.list(include_revoked=all_)
    if as_json:
        print_json({"tokens": [vars(info) for info in infos]})
        return
    settings = wired.settings
    table = Table("name", "role", "site", heading("created", settings), heading("revoked", settings), title="API tokens")
    for info in infos:
        revoked = shown(info.revoked_at, settings, label=False) if info.revoked_at else ""
        table.add_row(info.name, info.role, info.site or "", shown(info.created_at, settings, label=False), revoked)
    console.print(table)


def token_revoke(name: Annotated[str, typer.Argument()], database_url: DatabaseOption = None) -> None:
    """Revoke a name's active token; its next request gets 401."""
    with continuum(database_url) as wired:
        try:
            wired.tokens.revoke(name)
        except TokenProblem as problem:
            raise UsageError(str(problem)) from None
    console.print(f"revoked the token of {name}")


@schema_app.command("openapi")
def schema_openapi() -> None:
    """The OpenAPI document of the HTTP API (committed as openapi.json)."""
    from services.api import openapi_document

    print(json.dumps(openapi_document(), indent=2, sort_keys=False))  # noqa: T201


def _register() -> None:
    from services.cli.base import app, one_line_errors

    for name, func, creates_store in (("add", token_add, True), ("list", token_list, False), ("revoke", token_revoke, False)):
        token_app.command(name)(one_line_errors(func, creates_store=creates_store))  # the first token may come first
    app.add_typer(token_app, name="token")


_register()
