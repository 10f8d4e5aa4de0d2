"""What the API answers, named by purpose. Requests are the core's command models themselves
(services/commands.py); these are the read side's shapes, built from the projections' rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from domain.replay import JourneyState, ReplayedEntry
from infra.access_log import AccessRecord


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


class CensusLinePublic(BaseModel):
    level: str
    site: str
    track: str
    clients: int


class CensusClientPublic(BaseModel):
    client: str
    level: str
    site: str
    track: str
    since: datetime
    days_in_level: int


class CensusPublic(BaseModel):
    at: datetime
    as_recorded: datetime | None = None
    position: int = Field(description="The store position this census reflects")
    total: int
    counts: list[CensusLinePublic]
    clients: list[CensusClientPublic] | None = Field(default=None, description="With clients=true (clinicians: their site)")


class StepCount(BaseModel):
    from_level: str
    to_level: str
    count: int


class MatrixPublic(BaseModel):
    since: datetime | None
    until: datetime | None
    position: int
    steps: list[StepCount]


class TransitionPublic(BaseModel):
    version: int
    kind: str = Field(description="admission, step_up, step_down, discharge or alumni")
    from_level: str | None
    to_level: str | None
    occurred_at: datetime
    reason: str


class HistoryPublic(BaseModel):
    client: str
    position: int
    transitions: list[TransitionPublic]


class AuditEntryPublic(BaseModel):
    version: int
    position: int
    type: str
    occurred_at: datetime
    recorded_at: datetime
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
    as_of: datetime | None
    as_recorded: datetime | None
    position: int
    state: JourneyState
    entries: list[ReplayedEntry]


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
    total: int
    counts: list[CensusLinePublic]
