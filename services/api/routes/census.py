"""Aggregates for dashboards: the census now, on a date or as recorded, the step matrix, the live
census, and where the projections stand."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from projections.census import CensusClient
from services.api.deps import (
    Api,
    ApiDep,
    CensusLevels,
    CensusPosition,
    CensusSite,
    CurrentPrincipal,
    IfNoneMatch,
    StepsPosition,
    moment,
    reader,
)
from services.api.freshness import etag, mark, matches, not_modified
from services.api.problems import InvalidParameter, responses
from services.api.schemas import (
    SMALL_CELL_NOTE,
    CensusChange,
    CensusClientPublic,
    CensusLinePublic,
    CensusPublic,
    MatrixPublic,
    ProjectionPublic,
    StatusPublic,
    StepCount,
)
from services.census_filters import Levels
from services.moments import json_moment
from services.reads import Census
from services.reports import SMALL_CELL
from services.tokens import Principal, Role

router = APIRouter(tags=["census"])

Track = Annotated[Literal["day", "evening", "residential", "alumni"] | None, Query()]
On = Annotated[str | None, Query(
    description="A date (YYYY-MM-DD: the end of that day in the configured zone; today: so far) or ISO 8601 time,"
                " not in the future; default now",
)]
AsRecorded = Annotated[str | None, Query(
    alias="as_recorded", description="Auditors: the census as the record stood at this time (replays the store; counts only)",
)]
Clients = Annotated[bool, Query(
    description="List the clients too (clinicians: those registered at their site; not dashboards); each listed client's"
                " access log records the read",
)]
Purpose = Annotated[str | None, Query(max_length=200, description="Why the clients are listed; kept in the access log")]
CONDITIONAL: dict[int | str, dict[str, Any]] = {304: {"description": "Not modified since the ETag given in If-None-Match"}}


def _may_list(principal: Principal, *, clients: bool) -> None:
    """Counts are for every role; a list of clients is for auditors, and for clinicians (their site's clients)."""
    if clients and principal.role is Role.DASHBOARD:
        raise HTTPException(403, "a dashboard token reads aggregate counts only: leave out clients=true")


def _visible(api: Api, principal: Principal, listed: list[CensusClient]) -> list[CensusClient]:
    """A clinician sees the clients registered at its site, wherever they are treated now."""
    if principal.role is not Role.CLINICIAN or not listed:
        return listed
    own = api.reads.clients_at(principal.site or "")
    return [client for client in listed if client.client_ref in own]


def _lines(census: Census) -> list[CensusLinePublic]:
    return [CensusLinePublic(level=x.level, site=x.site, track=x.track, clients=x.clients) for x in census.lines]


def _small_cells(principal: Principal, lines: list[CensusLinePublic]) -> tuple[list[CensusLinePublic], int | None, bool]:
    """What a reader may see of counts: the dashboard role sees none under 11 (the public-health
    small-cell rule), nor a total that would give one away by subtraction."""
    total = sum(line.clients or 0 for line in lines)
    if principal.role is not Role.DASHBOARD:
        return lines, total, False
    small = [line for line in lines if line.clients is not None and line.clients < SMALL_CELL]
    shown = [line.model_copy(update={"clients": None}) if line in small else line for line in lines]
    return shown, None if len(small) == 1 or (small and total < SMALL_CELL) else total, bool(small)


def _whole_day(principal: Principal, on: str | None) -> str | None:
    """The dashboard role counts whole days: a time of day is read as the end of that day."""
    if principal.role is Role.DASHBOARD and on is not None and len(on) > len("YYYY-MM-DD") and on[4:5] == "-":
        return on[:10]
    return on


@router.get(
    "/census", response_model=CensusPublic, summary="Census now, on a date, or as recorded",
    responses={**CONDITIONAL, **responses(401, 403, 422, 503)},
)
def census(  # noqa: PLR0913 - the census's filters are its query parameters
    principal: CurrentPrincipal,
    api: ApiDep,
    position: CensusPosition,
    response: Response,
    level: CensusLevels,
    site: CensusSite,
    on: On = None,
    as_recorded: AsRecorded = None,
    track: Track = None,
    clients: Clients = False,
    purpose: Purpose = None,
    if_none_match: IfNoneMatch = None,
) -> CensusPublic | Response:
    """Counts by level of care, site and track; with `clients=true` the clients and their days in level."""
    _may_list(principal, clients=clients)
    if as_recorded is not None and principal.role is not Role.AUDITOR:
        raise HTTPException(403, "the census as recorded replays every record: auditors only")
    at = moment(api, _whole_day(principal, on), "on", up_to_now=True)
    recorded = moment(api, as_recorded, "as_recorded", up_to_now=True, recorded=True)
    single = level.single if level else None
    if recorded is not None:
        if clients or track:
            raise InvalidParameter("query", "as_recorded", "gives counts by level and site: leave out clients and track")
        position = api.wired.runner.head()
        result = api.reads.census_as_recorded(at or api.wired.service.clock(), recorded, level=single, site=site)
    else:
        result = api.reads.census(at, level=single, site=site, track=track, with_clients=clients)
    result = level.keep(result) if level else result
    listed = _visible(api, principal, result.clients) if clients else []
    if listed:  # recorded before the answer is sent, even when it is a 304
        what = "GET /census clients" + (" now" if at is None else f" at {json_moment(result.at)}") + "".join(
            f" {name} {value}" for name, value in (("level", level.asked if level else None), ("site", site), ("track", track))
            if value
        )
        api.reads.record_listing(reader(principal, purpose), [c.client_ref for c in listed], what)
    today = api.wired.service.clock().date() if at is None else None  # days in level move with the clock
    tag = etag("census", position, principal.role.value, principal.site, today)
    if matches(if_none_match, tag):
        return not_modified(position, tag)
    mark(response, position, tag)
    counts, total, suppressed = _small_cells(principal, _lines(result))
    return CensusPublic(
        at=result.at, as_recorded=recorded, position=position, total=total, counts=counts, suppressed=suppressed,
        note=SMALL_CELL_NOTE if principal.role is Role.DASHBOARD else None,
        clients=[
            CensusClientPublic(client=c.client_ref, level=c.level, site=c.site, track=c.track, since=c.since,
                               days_in_level=c.days_in_level)
            for c in listed
        ] if clients else None,
    )


@router.get(
    "/steps/matrix", response_model=MatrixPublic, summary="Step matrix over a period",
    responses={**CONDITIONAL, **responses(401, 422, 503)},
)
def matrix(
    principal: CurrentPrincipal,
    api: ApiDep,
    position: StepsPosition,
    response: Response,
    since: Annotated[str | None, Query(description="Start date (inclusive) or time")] = None,
    until: Annotated[str | None, Query(description="End date (inclusive) or time")] = None,
    if_none_match: IfNoneMatch = None,
) -> MatrixPublic | Response:
    """How many steps went from each level to each other level, by clinical time."""
    start, end = moment(api, since, "since", end_of_day=False), moment(api, until, "until")
    tag = etag("matrix", position, principal.role.value)
    if matches(if_none_match, tag):
        return not_modified(position, tag)
    counts = api.reads.matrix(start, end)
    mark(response, position, tag)
    dashboard = principal.role is Role.DASHBOARD
    steps = [
        StepCount(from_level=f, to_level=t, count=None if dashboard and n < SMALL_CELL else n) for (f, t), n in sorted(counts.items())
    ]
    return MatrixPublic(
        since=start, until=end, position=position, steps=steps, suppressed=any(s.count is None for s in steps),
        note=SMALL_CELL_NOTE if dashboard else None,
    )


@router.get("/projections", response_model=StatusPublic, summary="Projection positions and lags", responses=responses(401))
def projections(_: CurrentPrincipal, api: ApiDep, response: Response) -> StatusPublic:
    """Each projection's position in the event log and how far it is behind the head."""
    statuses = api.wired.runner.status()
    mark(response, min((s.position for s in statuses), default=0))
    return StatusPublic(
        head=max((s.head for s in statuses), default=0),
        projections=[ProjectionPublic(name=s.name, position=s.position, lag=s.lag) for s in statuses],
        follower=api.follower is not None and api.follower.running,
    )


def resume_after(
    api: ApiDep,
    last_event_id: Annotated[int | None, Header(alias="Last-Event-ID", ge=0, description="Resume after this position")] = None,
) -> int | None:
    """A position the stream can resume after: one beyond the head names nothing recorded (and would
    hold the connection open with nothing to send), so it is refused."""
    if last_event_id is not None and last_event_id > (head := api.wired.runner.head()):
        raise InvalidParameter("header", "Last-Event-ID", f"{last_event_id} is beyond the last recorded position {head}")
    return last_event_id


ResumeAfter = Annotated[int | None, Depends(resume_after)]


@router.get(
    "/census/stream", response_class=EventSourceResponse, summary="Live census (Server-Sent Events)",
    responses={200: {"description": "`census` events: id = position, data = CensusChange", "content": {
        "text/event-stream": {"schema": {"type": "string"}},
    }}, **responses(401, 422)},
)
async def census_stream(
    principal: CurrentPrincipal,
    api: ApiDep,
    level: CensusLevels,
    site: CensusSite,
    last_event_id: ResumeAfter,
    track: Track = None,
    max_events: Annotated[int | None, Query(ge=1, le=10_000, description="Close after this many events")] = None,
) -> AsyncIterator[ServerSentEvent]:
    """The census counts each time they change; an event's id is the position it reflects.

    Reconnecting with `Last-Event-ID` sends the census at once if anything was recorded after
    that position, then every later change. Aggregates only, so every role may follow it.
    """
    seen, last_counts, sent = last_event_id, None, 0
    deadline = time.monotonic() + api.settings.api_stream_max_seconds
    while time.monotonic() < deadline:
        position, counts = await anyio.to_thread.run_sync(_snapshot, api, level, site, track)
        if (seen is None or position > seen) and counts != last_counts:
            shown, total, suppressed = _small_cells(principal, counts)
            change = CensusChange(position=position, total=total, counts=shown, suppressed=suppressed)
            yield ServerSentEvent(id=str(position), event="census", data=change, retry=int(api.settings.api_retry_after * 1000))
            last_counts, sent = counts, sent + 1
            if max_events is not None and sent >= max_events:
                return
        seen = position if seen is None else max(seen, position)
        await anyio.sleep(api.settings.api_stream_poll)


def _snapshot(api: Api, level: Levels | None, site: str | None, track: str | None) -> tuple[int, list[CensusLinePublic]]:
    position = api.freshness.position(["census"])  # read first: the counts are at least this new
    census = api.reads.census(level=level.single if level else None, site=site, track=track)
    return position, _lines(level.keep(census) if level else census)
