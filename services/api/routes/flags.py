"""Flags: admissions, steps and changes of track a clinician should look at again (recorded, never refused).
Clinicians see their own site's, auditors every site's; each client listed leaves an access record."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from services.api.deps import ApiDep, Purpose, RecordReader, moment, reader
from services.api.freshness import mark
from services.api.problems import responses
from services.api.schemas import Moment

router = APIRouter(tags=["clients"])


class FlagPublic(BaseModel):
    client: str
    version: int = Field(description="The flagged entry's version (ce_sequence)")
    entry: str = Field(description="AdmittedToLevel, SteppedUp, SteppedDown or TrackChanged")
    flag: str = Field(description="hours_outside_adult_band, hours_outside_adolescent_band or withdrawal_need_at_ambulatory_admission")
    level: str
    site: str
    planned_hours_per_week: float
    occurred_at: Moment
    text: str = Field(description="The flag as a clinician reads it")


class FlagsPublic(BaseModel):
    position: int
    flags: list[FlagPublic]


@router.get(
    "/flags", response_model=FlagsPublic, summary="Entries to look at again (clinicians, auditors)",
    responses=responses(401, 403, 404, 422),
)
def flags(
    principal: RecordReader,
    api: ApiDep,
    response: Response,
    client: Annotated[str | None, Query(max_length=64)] = None,
    site: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[str | None, Query(description="Clinical time from (date or ISO time)")] = None,
    until: Annotated[str | None, Query(description="Clinical time before (date or ISO time)")] = None,
    purpose: Purpose = None,
) -> FlagsPublic:
    """Planned hours outside the level's band and ambulatory admissions against a withdrawal need."""
    start, end = moment(api, since, "since", end_of_day=False), moment(api, until, "until", end_of_day=False)
    position = api.wired.runner.positions()["flags"]
    rows = api.reads.flags(reader(principal, purpose), client_ref=client, site=principal.site or site, since=start, until=end)
    mark(response, position)
    return FlagsPublic(position=position, flags=[
        FlagPublic(client=r.client_ref, version=r.version, entry=r.event_type, flag=r.flag, level=r.level, site=r.site,
                   planned_hours_per_week=r.hours, occurred_at=r.occurred_at, text=r.text)
        for r in rows
    ])
