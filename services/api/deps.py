"""What routes depend on, as named types (`Wired`, `Clinician`, `CensusPosition`, ...), all taken
from what `create_app` was given: nothing here connects or reads settings at import."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Path, Query, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from domain.errors import UnknownClient
from infra.config import Settings
from services.api.follower import ProjectionFollower
from services.api.freshness import Freshness
from services.api.observability import Metrics
from services.api.problems import InvalidParameter
from services.api.sessions import session_principal
from services.bootstrap import Continuum
from services.census_filters import Levels, census_levels, census_site
from services.moments import MomentError, parse_moment, recording_clock
from services.reads import Reader, Reads
from services.tokens import Principal, Role, TokenStore

CLIENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"  # as services.commands.ClientRef


@dataclass
class Api:
    """Everything the routes use, built once by `create_app`."""

    wired: Continuum
    reads: Reads
    tokens: TokenStore
    freshness: Freshness
    follower: ProjectionFollower | None
    metrics: Metrics

    @property
    def settings(self) -> Settings:
        return self.wired.settings


def get_api(request: Request) -> Api:
    api: Api = request.app.state.api
    return api


ApiDep = Annotated[Api, Depends(get_api)]

_bearer = HTTPBearer(auto_error=False, description="A token from `continuum token add`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same token, for clients that cannot send Bearer")


def authenticate(
    api: ApiDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    key: Annotated[str | None, Depends(_api_key)],
    request: Request,
) -> Principal:
    token = bearer.credentials if bearer is not None else key
    principal = api.tokens.find(token) if token else None
    if principal is None and not token:  # the dashboard page's own reads: a signed-in session's cookie, GET only
        principal = session_principal(request, api.tokens)
    if principal is None:
        raise HTTPException(401, "a valid token is required: Authorization: Bearer TOKEN", headers={"WWW-Authenticate": "Bearer"})
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def allow(*roles: Role) -> Callable[[Principal], Principal]:
    def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            allowed = " or ".join(role.value for role in roles)
            raise HTTPException(403, f"a {principal.role.value} token may not do this (needs {allowed})")
        return principal

    return check


Clinician = Annotated[Principal, Depends(allow(Role.CLINICIAN))]
Auditor = Annotated[Principal, Depends(allow(Role.AUDITOR))]
RecordReader = Annotated[Principal, Depends(allow(Role.CLINICIAN, Role.AUDITOR))]

MinPosition = Annotated[int | None, Query(
    ge=0, description="A position a command returned: wait (about 2 s at most) until the answer reflects it, else 503",
)]
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", description="An ETag from an earlier answer: 304 if unchanged")]
Purpose = Annotated[str | None, Query(max_length=200, description="Why the record is read; kept in the access log")]
ClientPath = Annotated[str, Path(min_length=1, max_length=64, pattern=CLIENT_PATTERN, description="The client reference")]


def at_least(*names: str) -> Callable[..., int]:
    """A dependency: the position the named projections reflect, once `min_position` is reached."""

    def wait(_: CurrentPrincipal, api: ApiDep, min_position: MinPosition = None) -> int:  # authenticated before it waits
        return api.freshness.at_least(names, min_position)

    return wait


CensusPosition = Annotated[int, Depends(at_least("census"))]
StepsPosition = Annotated[int, Depends(at_least("step_history"))]
HistoryPosition = Annotated[int, Depends(at_least("census", "step_history"))]
TrailPosition = Annotated[int, Depends(at_least("census", "audit_trail"))]


def readable_client(client: ClientPath, principal: RecordReader, api: ApiDep, request: Request) -> str:
    """A clinician reads the clients registered at its site; an auditor reads any client.

    To a clinician, a client of another site and a client that does not exist look the same (404),
    so a token cannot learn who is in treatment elsewhere; the refused read is recorded all the same.
    """
    if principal.role is Role.CLINICIAN and api.reads.home_site(client) != principal.site:
        api.reads.record_read(Reader(principal.name, principal.role.value, None), client, f"refused: {request.url.path}")
        raise UnknownClient(client)
    return client


ReadableClient = Annotated[str, Depends(readable_client)]


def reader(principal: Principal, purpose: str | None) -> Reader:
    return Reader(principal.name, principal.role.value, purpose)


def level_query(
    level: Annotated[str | None, Query(
        description="ASAM code (2.1), level name (iop, php, outpatient), group (detox, residential, op) or `alumni`",
        max_length=32,
    )] = None,
) -> Levels | None:
    try:
        return None if level is None else census_levels(level)
    except ValueError as problem:
        raise InvalidParameter("query", "level", str(problem)) from None


CensusLevels = Annotated[Levels | None, Depends(level_query)]  # checked before a stream starts, so a bad level is a 422


def site_query(
    api: ApiDep,
    site: Annotated[str | None, Query(max_length=200, description="A site clients are registered or treated at")] = None,
) -> str | None:
    if site is None:
        return None
    with api.wired.views.transaction() as cursor:
        try:
            return census_site(cursor, site)
        except ValueError as problem:
            raise InvalidParameter("query", "site", str(problem)) from None


CensusSite = Annotated[str | None, Depends(site_query)]  # an unknown site is a 422, never a count of 0


def moment(
    api: Api, text: str | None, name: str, *, end_of_day: bool = True, up_to_now: bool = False, recorded: bool = False,
) -> datetime | None:
    """A query parameter's moment, read by the same parser as the CLI's options (`services.moments`): a date
    means the end of that day in the configured zone. `up_to_now`: a moment after the clock's reading is
    refused (422) and today's date means now, as `continuum census --on` and `replay --as-of` do; the clock
    is the journey service's for a clinical time, the store's for a `recorded` time."""
    if text is None:
        return None
    clock = (recording_clock() if recorded else api.wired.service.clock()) if up_to_now else None
    try:
        return parse_moment(text, api.settings.timezone, end_of_day=end_of_day, now=clock, name=name)
    except MomentError as problem:
        raise InvalidParameter("query", name, str(problem)) from None
