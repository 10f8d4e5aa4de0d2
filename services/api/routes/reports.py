"""Measures for program directors and payers (`continuum report NAME` over HTTP): every role reads them;
a dashboard token sees counts under 11 suppressed (the public-health small-cell rule)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from services.api.deps import ApiDep, CensusLevels, CensusSite, CurrentPrincipal, moment
from services.api.freshness import mark
from services.api.problems import responses
from services.api.schemas import Moment

router = APIRouter(tags=["reports"])

ReportName = Literal["end-reasons", "completion", "length-of-stay", "retention", "continuity", "initiation", "readmission",
                     "attendance", "negative-tests", "census-trend", "time-to-step", "fidelity"]
SOURCES = ("outcomes", "attendance", "drug_tests", "census")


class ReportPublic(BaseModel):
    report: str
    title: str
    since: Moment | None
    until: Moment
    site: str | None
    levels: list[str] | None
    position: int = Field(description="The position the read models reflect")
    suppressed: bool = Field(description="True when counts under 11 (and what is built on them) are left out")
    note: str
    rows: list[dict[str, Any]] = Field(description="One object per row; a suppressed cell is null")


@router.get(
    "/reports/{name}", response_model=ReportPublic, summary="A measure over a period (every role; dashboards: small cells suppressed)",
    responses=responses(401, 422),
)
def report(
    principal: CurrentPrincipal,
    api: ApiDep,
    response: Response,
    name: Annotated[ReportName, Path(description="The measure, as the README's Reports section defines it")],
    levels: CensusLevels,
    site: CensusSite,
    since: Annotated[str | None, Query(description="Period from (date or ISO time); default: all")] = None,
    until: Annotated[str | None, Query(description="Period before (date or ISO time); default: now")] = None,
) -> ReportPublic:
    """The rows of one measure; the README defines its numerator, denominator and source."""
    from services.reports import Reports, Scope

    start = moment(api, since, "since", end_of_day=False)
    end = moment(api, until, "until", end_of_day=False) or api.wired.service.clock()
    positions = api.wired.runner.positions()
    position = min(positions.get(source, 0) for source in SOURCES)
    scope = Scope(end, start, site, levels.codes if levels else None)
    small = "suppress" if principal.role.value == "dashboard" else "show"
    result = Reports(api.wired.views, small_cells=small).run(name, scope)
    mark(response, position)
    return ReportPublic(
        report=result.name, title=result.title, since=start, until=end, site=site,
        levels=list(scope.levels) if scope.levels else None, position=position, suppressed=result.suppressed,
        note=result.note, rows=[_plain(asdict(row)) for row in result.rows],
    )


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in row.items()}
