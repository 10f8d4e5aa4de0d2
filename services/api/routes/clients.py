"""One client's record: step history (clinicians of the client's site, auditors), and for auditors
the audit trail, a replay and the audit package. Every read is recorded in the access log first."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from domain.journey import ClientJourney
from services.api.deps import (
    ApiDep,
    Auditor,
    CurrentPrincipal,
    HistoryPosition,
    IfNoneMatch,
    Purpose,
    ReadableClient,
    TrailPosition,
    moment,
    reader,
)
from services.api.freshness import etag, mark, matches, not_modified
from services.api.problems import responses
from services.api.schemas import AuditEntryPublic, AuditTrailPublic, HistoryPublic, ReplayPublic, TransitionPublic

router = APIRouter(prefix="/clients/{client}", tags=["clients"])
CONDITIONAL: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified since the ETag given in If-None-Match (the read is still recorded)"},
}


@router.get(
    "/history", response_model=HistoryPublic, summary="A client's step history",
    responses={**CONDITIONAL, **responses(401, 403, 404, 422, 503)},
)
def history(
    position: HistoryPosition,
    client: ReadableClient,
    principal: CurrentPrincipal,
    api: ApiDep,
    response: Response,
    purpose: Purpose = None,
    if_none_match: IfNoneMatch = None,
) -> HistoryPublic | Response:
    """Admissions, steps up and down, discharges and alumni enrolment, in clinical order."""
    transitions = api.reads.history(client, reader(principal, purpose))
    tag = etag("history", position, client, principal.role.value)
    if matches(if_none_match, tag):
        return not_modified(position, tag)
    mark(response, position, tag)
    return HistoryPublic(client=client, position=position, transitions=[
        TransitionPublic(version=t.version, kind=t.kind, from_level=t.from_level, to_level=t.to_level,
                         occurred_at=t.occurred_at, reason=t.reason)
        for t in transitions
    ])


@router.get(
    "/audit-trail", response_model=AuditTrailPublic, summary="A client's audit trail (auditors; keyset pages)",
    responses={**CONDITIONAL, **responses(401, 403, 404, 422, 503)},
)
def audit_trail(
    position: TrailPosition,
    client: ReadableClient,
    principal: Auditor,
    api: ApiDep,
    response: Response,
    after: Annotated[int, Query(ge=0, description="Entries after this version (the previous page's next_after)")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    purpose: Purpose = None,
    if_none_match: IfNoneMatch = None,
) -> AuditTrailPublic | Response:
    """Every event of the client: who recorded it, clinical and recorded time, corrections beside the entry."""
    entries = api.reads.audit(client, reader(principal, purpose), after=after, limit=limit)
    tag = etag("audit-trail", position, client, after, limit)
    if matches(if_none_match, tag):
        return not_modified(position, tag)
    mark(response, position, tag)
    return AuditTrailPublic(
        client=client, journey_id=ClientJourney.create_id(client), position=position,
        entries=[AuditEntryPublic.model_validate(entry.as_json()) for entry in entries],
        next_after=entries[-1].version if len(entries) == limit else None,
    )


@router.get("/replay", response_model=ReplayPublic, summary="A client as at a time (auditors)", responses=responses(401, 403, 404, 422))
def replay(
    client: ReadableClient,
    principal: Auditor,
    api: ApiDep,
    response: Response,
    as_of: Annotated[str | None, Query(description="Clinical time: what had happened by then, as known now")] = None,
    as_recorded: Annotated[str | None, Query(description="Recorded time: what the record said then")] = None,
    purpose: Purpose = None,
) -> ReplayPublic:
    """The client's state and events replayed from the store (not a projection), bitemporally."""
    of = moment(api, as_of, "as_of", up_to_now=True)
    recorded = moment(api, as_recorded, "as_recorded", up_to_now=True, recorded=True)
    position = api.wired.runner.head()
    result = api.wired.audit.replay(client, reader(principal, purpose), as_of=of, as_recorded=recorded)
    mark(response, position)
    return ReplayPublic(
        client=client, as_of=of, as_recorded=recorded, position=position, state=asdict(result.state),
        entries=[asdict(entry) for entry in result.entries],
    )


@router.get("/audit-package", summary="A client's self-contained audit package (auditors)", responses=responses(401, 403, 404, 422))
def audit_package(client: ReadableClient, principal: Auditor, api: ApiDep, response: Response, purpose: Purpose = None) -> dict[str, Any]:
    """Events with both times, stored bytes, hash links and access records: `continuum verify --file` checks it offline."""
    position = api.wired.runner.head()
    package = api.wired.audit.export(client, reader(principal, purpose))
    mark(response, position)
    return package
