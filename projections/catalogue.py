"""The projections this deployment runs, by name."""

from __future__ import annotations

from infra.sealing import PLAIN, FieldSeal
from projections.attendance import Attendance
from projections.audit_trail import AuditTrail
from projections.base import Projection
from projections.census import Census
from projections.drug_tests import DrugTests
from projections.flags import Flags
from projections.outcomes import Outcomes
from projections.step_history import StepHistory


def all_projections(seal: FieldSeal = PLAIN) -> list[Projection]:
    """`seal`: the store's cipher, for the free text some read models keep (see infra/sealing.py)."""
    return [Census(), StepHistory(seal), AuditTrail(seal), Flags(), Outcomes(), Attendance(), DrugTests()]
