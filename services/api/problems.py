"""Every error the API answers, mapped once: a problem body that names what went wrong and never a
stack trace, SQL, or another client's data."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

import psycopg
from eventsourcing.persistence import OperationalError as StoreOperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic_core import ErrorDetails
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import CareRuleViolation, OtherSite, UnknownClient
from infra.config import ConfigurationError
from infra.views import DatabaseUnavailable
from services.journeys import ConcurrencyConflict

CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 409: "care_rule_violation", 413: "too_large", 415: "unsupported_media_type",
    422: "invalid_request", 500: "internal_error", 503: "unavailable",
}


class FieldProblem(BaseModel):
    field: str = Field(description="The parameter or body field, e.g. `level` or `Idempotency-Key`")
    location: list[str | int] = Field(description="Where it is: body, query, path or header, then the path within")
    message: str


class Problem(BaseModel):
    error: str = Field(description="A stable code: unauthenticated, forbidden, not_found, care_rule_violation, ...")
    detail: str = Field(description="What went wrong, in one line")
    rule: str | None = Field(default=None, description="The care rule the command broke")
    client: str | None = Field(default=None, description="The client reference the request named")
    values: dict[str, str] | None = Field(default=None, description="The values that broke the rule")
    fields: list[FieldProblem] | None = Field(default=None, description="Each invalid field (422)")
    position: int | None = Field(default=None, description="The position the projection has reached (503)")


class NotCaughtUp(Exception):  # noqa: N818 - reads as what the caller is told
    """A projection did not reach the position the caller asked for within the bound."""

    def __init__(self, wanted: int, reached: int) -> None:
        super().__init__(f"the projections reflect position {reached}, not yet {wanted}: retry shortly")
        self.wanted, self.reached = wanted, reached


class InvalidParameter(Exception):  # noqa: N818 - reads as what the caller is told
    """A parameter that passed its type but not its meaning (a position beyond the head, a bad date)."""

    def __init__(self, location: str, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.location, self.name, self.message = location, name, message


def problem(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:  # noqa: ANN401 - fields of Problem, checked by it
    body = Problem(error=extra.pop("error", CODES.get(status, "error")), detail=detail, **extra)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def field_problems(errors: Iterable[ErrorDetails]) -> list[FieldProblem]:
    """`("body", "ratings", 2)` is field `ratings.2`; `("query", "min_position")` is `min_position`."""
    fields = []
    for error in errors:
        location = list(error.get("loc", ())) or ["request"]
        name = ".".join(str(part) for part in location[1:]) or str(location[0])
        fields.append(FieldProblem(field=name, location=location, message=str(error.get("msg", "invalid"))))
    return fields


def install(app: FastAPI, retry_after: int) -> None:
    """One mapping per kind of failure, for every route."""
    unavailable = {"Retry-After": str(retry_after)}

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        fields = field_problems(error.errors())
        return problem(422, "; ".join(f"{f.field}: {f.message}" for f in fields), fields=fields)

    @app.exception_handler(InvalidParameter)
    async def invalid_parameter(_: Request, error: InvalidParameter) -> JSONResponse:
        fields = [FieldProblem(field=error.name, location=[error.location, error.name], message=error.message)]
        return problem(422, str(error), fields=fields)

    @app.exception_handler(UnknownClient)
    async def unknown_client(_: Request, error: UnknownClient) -> JSONResponse:
        return problem(404, str(error), rule=error.rule, client=error.client_ref)

    @app.exception_handler(ConcurrencyConflict)
    async def conflict(_: Request, error: ConcurrencyConflict) -> JSONResponse:
        return problem(503, str(error), headers=unavailable, rule=error.rule, client=error.client_ref)

    @app.exception_handler(CareRuleViolation)
    async def refused(_: Request, error: CareRuleViolation) -> JSONResponse:
        status = 403 if isinstance(error, OtherSite) else 409  # a clinician acting outside its own site
        return problem(status, str(error), rule=error.detail, client=error.client_ref, values=error.values)

    @app.exception_handler(NotCaughtUp)
    async def lagging(_: Request, error: NotCaughtUp) -> JSONResponse:
        return problem(503, str(error), headers={**unavailable, "X-Position": str(error.reached)}, error="not_caught_up",
                       position=error.reached)

    async def store_down(_: Request, __: Exception) -> JSONResponse:
        return problem(503, "the event store cannot be reached: retry shortly", headers=unavailable)

    for kind in (DatabaseUnavailable, StoreOperationalError, psycopg.OperationalError, sqlite3.OperationalError):
        app.add_exception_handler(kind, store_down)
    app.add_exception_handler(ConfigurationError, misconfigured)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return problem(error.status_code, _plain_detail(error), headers=dict(error.headers or {}))


async def misconfigured(_: Request, error: Exception) -> JSONResponse:
    """The server lacks a setting this answer needs (a keyed chain's key, say): said, never a bare 500."""
    return problem(500, f"the server is not configured for this: {error}")


def _plain_detail(error: StarletteHTTPException) -> str:
    """FastAPI's own words, put in the user's terms where they would not understand them."""
    if str(error.detail) == "There was an error parsing the body":
        return "the body is not JSON in UTF-8: send the command as UTF-8 encoded JSON"
    return str(error.detail)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem answers a route can give."""
    described = {
        400: "The body is not JSON in UTF-8",
        401: "No valid token (Authorization: Bearer TOKEN or X-API-Key: TOKEN)",
        403: "The token's role or site does not allow this",
        404: "No such client",
        409: "A care rule refused the command: the rule and the values",
        422: "Invalid input: each field named",
        503: "Projection not caught up with min_position, or the store unavailable: see Retry-After",
    }
    return {status: {"model": Problem, "description": described.get(status, "Problem")} for status in statuses}
