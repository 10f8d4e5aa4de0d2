"""For auditors: who read what, and the heads of the hash chains to keep outside the system."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from infra.access_log import AccessRecord
from services.api.deps import ApiDep, Auditor, moment
from services.api.freshness import mark
from services.api.problems import responses
from services.api.schemas import AccessLogPublic, ChainHeadPublic, VerificationPublic

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("/access-log", response_model=AccessLogPublic, summary="Who read which record (auditors)", responses=responses(401, 403, 422))
def access_log(
    _: Auditor,
    api: ApiDep,
    response: Response,
    client: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=64, description="Only reads by this token name")] = None,
    since: Annotated[str | None, Query(description="Only reads at or after this date or time")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> AccessLogPublic:
    """Every recorded read of a client's record: who, with which role, what, when and why."""
    start = moment(api, since, "since", end_of_day=False)
    position = api.wired.runner.head()
    records: list[AccessRecord] = api.wired.audit.access_log(client_ref=client, actor_id=actor, since=start, limit=limit)
    mark(response, position)
    return AccessLogPublic(position=position, records=records)


@router.get("/chain-head", response_model=ChainHeadPublic, summary="The hash-chain heads (auditors)", responses=responses(401, 403))
def chain_head(_: Auditor, api: ApiDep, response: Response) -> ChainHeadPublic:
    """The last links of the event chain and the access-log chain, as written; `/audit/verify` recomputes them."""
    position, head, access_records, access_head = api.wired.audit.heads()
    mark(response, position)
    return ChainHeadPublic(position=position, chain_head=head, access_records=access_records, access_head=access_head)


@router.get("/verify", response_model=VerificationPublic, summary="Recompute every hash chain (auditors)", responses=responses(401, 403))
def verify(_: Auditor, api: ApiDep, response: Response) -> VerificationPublic:
    """As `continuum verify`: streams every stored event and access record and reports the first broken link."""
    wired = api.wired
    position = wired.runner.head()
    report = wired.audit.verify()
    events, access, broken = report.events, report.access, report.broken
    mark(response, position)
    return VerificationPublic(
        ok=broken is None, events_checked=events.checked, journeys=events.journeys, chain_head=events.head,
        access_records_checked=access.checked, access_head=access.head, broken=str(broken) if broken else None,
    )
