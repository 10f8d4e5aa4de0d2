"""The app factory: a wired care-continuum in, a FastAPI app out. Nothing connects at import;
`continuum serve` and the tests call `create_app(bootstrap(settings))`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from infra.kafka.positions import RelayPositions
from services.api import problems
from services.api.deps import Api
from services.api.follower import ProjectionFollower
from services.api.freshness import Freshness
from services.api.observability import Metrics, Observe, StoreCollector
from services.api.routes import audit, census, clients, commands, dashboard, fhir, flags, operations, reports
from services.bootstrap import Continuum

TITLE = "care-continuum"
DESCRIPTION = """Journeys through the continuum of substance-use-disorder care, event-sourced.

Commands in (one endpoint per command; the bodies are the same models as `continuum import`
lines), projections and histories out, to those allowed: every request carries a token made by
the operator with `continuum token add` (`Authorization: Bearer TOKEN` or `X-API-Key: TOKEN`).
Roles: `clinician` sends commands and reads the clients registered at its site; `auditor` reads
full histories, audit trails, replays, the access log and the chain heads; `dashboard` reads
aggregate census counts and step matrices only.

A command answers with its events and the store `position`; pass it as `min_position` to a
query to read your own write (503 with Retry-After if the projections do not reach it within
about 2 s). Every read says the position it reflects in `X-Position`, and has an ETag.
"""


def _assemble(lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None) -> FastAPI:
    # /docs is served from the package (routes/dashboard.py), not from a CDN; /redoc is off
    app = FastAPI(title=TITLE, description=DESCRIPTION, version="1", lifespan=lifespan, docs_url=None, redoc_url=None)
    for router in (commands.router, census.router, clients.router, flags.router, audit.router, operations.router, reports.router,
                   dashboard.router, fhir.router):
        app.include_router(router)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = as_openapi_31(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def as_openapi_31(document: dict[str, Any]) -> dict[str, Any]:
    """Keep the document valid OpenAPI 3.1, as it declares: FastAPI describes a Server-Sent Events
    stream with 3.2's `itemSchema`, and a streaming route's problems as the stream's content type."""
    for methods in document.get("paths", {}).values():
        for operation in methods.values():
            for status, answer in operation.get("responses", {}).items():
                content = answer.get("content", {})
                stream = content.get("text/event-stream")
                if stream is None:
                    continue
                if not status.startswith("2"):  # problems are sent as JSON, whatever the route streams
                    answer["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
                elif "itemSchema" in stream:
                    stream.pop("itemSchema")
                    stream["schema"] = {"type": "string", "description": "Server-Sent Events; each event's data is the JSON named above"}
    return document


def create_app(wired: Continuum, *, follow: bool | None = None) -> FastAPI:
    """`follow` (default: the `api_follow` setting) keeps the projections current in this process."""
    settings = wired.settings
    wired.runner.setup()
    wired.tokens.setup()
    following = settings.api_follow if follow is None else follow
    waiter = wired.wait_for_events if wired.database.kind == "postgres" else None
    follower = ProjectionFollower(wired.runner, waiter, settings.poll_interval) if following else None

    relays = RelayPositions(wired.views)

    def store_positions() -> tuple[int, dict[str, int], dict[str, int]]:
        return wired.runner.head(), wired.runner.positions(), relays.all()

    metrics = Metrics(StoreCollector(store_positions))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if follower is not None:
            follower.start()
        try:
            yield
        finally:
            if follower is not None:
                follower.stop()

    app = _assemble(lifespan)
    app.state.api = Api(wired, wired.reads, wired.tokens, Freshness(wired.runner, follower, settings.api_consistency_timeout), follower,
                        metrics)
    problems.install(app, settings.api_retry_after)
    app.add_middleware(Observe, metrics=metrics)
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, without a database: the routes do not depend on what is wired."""
    return _assemble().openapi()
