"""What the API answers, named by purpose. Requests are the core's command models themselves
(services/commands.py); these are the read side's shapes, built from the projections' rows.

Every time in an answer is a `Moment`: ISO 8601 in UTC with the offset written `+00:00`, the shape
of every `--json` output of the CLI too (`services.moments.json_moment`).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import types
from datetime import datetime
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints
from uuid import UUID

from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema, create_model

from domain.replay import JourneyState, ReplayedEntry
from infra.access_log import AccessRecord
from services.moments import json_moment

MOMENT_SCHEMA = {
    "type": "string", "format": "date-time",
    "description": "ISO 8601 in UTC, offset +00:00 (e.g. 2026-03-10T14:00:00+00:00; a fraction of a second only when there is one)",
}
Moment = Annotated[
    datetime, PlainSerializer(json_moment, return_type=str, when_used="json"), WithJsonSchema(MOMENT_SCHEMA, mode="serialization"),
]


def _public(annotation: Any) -> Any:  # noqa: ANN401 - a type annotation
    """`annotation` with every datetime a Moment and every dataclass its public model."""
    if annotation is datetime:
        return Moment
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return public_model(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        return functools.reduce(operator.or_, [_public(arg) for arg in args])
    if origin in (list, dict, tuple) and args:
        return origin[tuple(_public(arg) for arg in args)]
    return annotation


@functools.cache
def public_model(cls: type) -> type[BaseModel]:
    """The API's model of a domain dataclass (same name and fields), whose times are Moments: the domain's
    shapes are answered as they are, in the one JSON shape of times, and cannot drift from it."""
    hints = get_type_hints(cls)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            default: Any = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=field.default_factory)
        else:
            default = ...
        fields[field.name] = (_public(hints[field.name]), default)
    return create_model(cls.__name__, __module__=__name__, **fields)


JourneyStatePublic = public_model(JourneyState)
ReplayedEntryPublic = public_model(ReplayedEntry)


class RecordedEventPublic(BaseModel):
    id: UUID = Field(description="The event's stable id (the same wherever it is published)")
    type: str
    version: int = Field(description="The event's place in the client's journey")
    position: int = Field(description="The event's place in the store's log")


class CommandAccepted(BaseModel):
    command: str
    command_id: str = Field(description="The Idempotency-Key, the body's id, or an id derived from the content")
    journey_id: UUID
    events: list[RecordedEventPublic]
    position: int = Field(description="Pass as min_position to read your own write")
    replayed: bool = Field(description="True when this command id had been applied before: the first result, nothing new recorded")


SMALL_CELL_NOTE = "Counts under 11 are suppressed for the dashboard role (shown as null), and days are whole days."


class CensusLinePublic(BaseModel):
    level: str
    site: str
    track: str
    clients: int | None = Field(description="null when suppressed: under 11, for the dashboard role")


class CensusClientPublic(BaseModel):
    client: str
    level: str
    site: str
    track: str
    since: Moment
    days_in_level: int


class CensusPublic(BaseModel):
    at: Moment = Field(description="The moment counted: the end of the day asked for, or now (today, or no date)")
    as_recorded: Moment | None = None
    position: int = Field(description="The store position this census reflects")
    total: int | None = Field(description="null when it would give away a suppressed count")
    counts: list[CensusLinePublic]
    suppressed: bool = Field(default=False, description="Some counts are under 11 and not shown (the dashboard role)")
    note: str | None = None
    clients: list[CensusClientPublic] | None = Field(default=None, description="With clients=true (clinicians: their site)")


class StepCount(BaseModel):
    from_level: str
    to_level: str
    count: int | None = Field(description="null when suppressed: under 11, for the dashboard role")


class MatrixPublic(BaseModel):
    since: Moment | None
    until: Moment | None
    position: int
    steps: list[StepCount]
    suppressed: bool = False
    note: str | None = None


class TransitionPublic(BaseModel):
    version: int
    kind: str = Field(description="admission, step_up, step_down, discharge or alumni")
    from_level: str | None
    to_level: str | None
    occurred_at: Moment
    reason: str


class HistoryPublic(BaseModel):
    client: str
    position: int
    transitions: list[TransitionPublic]


class AuditEntryPublic(BaseModel):
    version: int
    position: int
    type: str
    occurred_at: Moment
    recorded_at: Moment
    recorded_by: dict[str, str]
    command_id: str
    details: dict[str, Any]
    corrects_version: int | None
    corrections: list[AuditEntryPublic]


class AuditTrailPublic(BaseModel):
    client: str
    journey_id: UUID
    position: int
    entries: list[AuditEntryPublic]
    next_after: int | None = Field(description="Pass as `after` for the next page; null on the last page")


class ReplayPublic(BaseModel):
    client: str
    as_of: Moment | None
    as_recorded: Moment | None
    position: int
    # built at import by public_model: classes at run time, variables to mypy
    state: JourneyStatePublic  # type: ignore[valid-type]
    entries: list[ReplayedEntryPublic]  # type: ignore[valid-type]


class AccessLogPublic(BaseModel):
    position: int
    records: list[AccessRecord]


class ChainHeadPublic(BaseModel):
    position: int = Field(description="The last event chained")
    chain_head: str = Field(description="The global hash-chain link of that event: keep it outside the system")
    access_records: int
    access_head: str


class VerificationPublic(BaseModel):
    ok: bool
    events_checked: int
    journeys: int
    chain_head: str
    access_records_checked: int
    access_head: str
    broken: str | None


class ProjectionPublic(BaseModel):
    name: str
    position: int
    lag: int


class StatusPublic(BaseModel):
    head: int
    projections: list[ProjectionPublic]
    follower: bool = Field(description="True when this process keeps the projections current")


class Health(BaseModel):
    status: str
    head: int | None = None
    max_lag: int | None = None
    detail: str | None = None


class CensusChange(BaseModel):
    """One event of the live census: the counts after a change, at a position."""

    position: int
    total: int | None
    counts: list[CensusLinePublic]
    suppressed: bool = False
