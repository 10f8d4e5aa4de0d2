"""The projections this deployment runs, by name."""

from __future__ import annotations

from projections.audit_trail import AuditTrail
from projections.base import Projection
from projections.census import Census
from projections.flags import Flags
from projections.step_history import StepHistory


def all_projections() -> list[Projection]:
    return [Census(), StepHistory(), AuditTrail(), Flags()]
