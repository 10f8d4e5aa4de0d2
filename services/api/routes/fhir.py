"""42 CFR Part 2 and FHIR for the API: the accounting of disclosures (`GET /disclosures`: auditors every
disclosure, clinicians those of their site's clients) and a client's record as a FHIR Bundle
(`GET /fhir/Patient/{client}/$everything`: clinicians of the site, auditors; an access record each)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from services.api.deps import ApiDep, CensusPosition, Purpose, ReadableClient, RecordReader, moment, reader
from services.api.freshness import mark
from services.api.problems import responses
from services.tokens import Role

router = APIRouter(tags=["disclosures"])


class DisclosurePublic(BaseModel):
    seq: int
    at: str = Field(description="When it was disclosed (ISO 8601, UTC)")
    actor_id: str
    role: str
    recipient: str
    purpose: str = Field(description="The consent's purpose, or its text for a named purpose")
    client_ref: str
    consent_id: str
    what: str = Field(description="What was disclosed")
    prev_hash: str
    hash: str


class DisclosuresPublic(BaseModel):
    position: int
    disclosures: list[DisclosurePublic]


@router.get(
    "/disclosures", response_model=DisclosuresPublic, summary="The accounting of disclosures (auditors; clinicians: their site)",
    responses=responses(401, 403, 422),
)
def disclosures(
    principal: RecordReader,
    api: ApiDep,
    response: Response,
    client: Annotated[str | None, Query(max_length=64)] = None,
    recipient: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[str | None, Query(description="Disclosed at or after this date or time")] = None,
) -> DisclosuresPublic:
    """Every disclosure of a client's record under a Part 2 consent (42 CFR 2.24, 2.25): to whom, when, what, under which consent."""
    from services.disclosures import Disclosures

    start = moment(api, since, "since", end_of_day=False)
    position = api.wired.runner.head()
    site_clients = api.reads.clients_at(principal.site or "") if principal.role is Role.CLINICIAN else None
    rows = Disclosures(api.wired.views).query(client_ref=client, recipient=recipient, since=start, clients=site_clients)
    mark(response, position)
    return DisclosuresPublic(position=position, disclosures=[DisclosurePublic(**row.as_json()) for row in rows])


@router.get(
    "/fhir/Patient/{client}/$everything", summary="The client's record as a FHIR R4 Bundle (clinicians of the site, auditors)",
    responses=responses(401, 403, 404, 422, 503), response_class=Response,
)
def everything(
    _: CensusPosition, client: ReadableClient, principal: RecordReader, api: ApiDep, purpose: Purpose = None,
) -> Response:
    """Patient, EpisodeOfCare (with statusHistory), Encounter per stay and session, Observation per analyte and
    ASAM dimension, CarePlan and Goal, Consent; every resource labelled R, 42CFRPart2, ETH, NORDSCLCD. The read
    is recorded in the access log."""
    import json

    from services.exports import fhir_bundle

    position = api.wired.runner.head()
    document = fhir_bundle(api.wired, client, reader(principal, purpose))
    response = Response(json.dumps(document), media_type="application/fhir+json")
    mark(response, position)
    return response
