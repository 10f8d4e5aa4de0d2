"""The projections this deployment runs, by name."""

from __future__ import annotations

from projections.attendance import Attendance
from projections.audit_trail import AuditTrail
from projections.base import Projection
from projections.census import Census
from projections.drug_tests import DrugTests
from projections.flags import Flags
from projections.outcomes import Outcomes
from projections.step_history import StepHistory


def all_projections() -> list[Projection]:
    return [Census(), StepHistory(), AuditTrail(), Flags(), Outcomes(), Attendance(), DrugTests()]
