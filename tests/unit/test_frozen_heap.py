"""The importer freezes the heap after each unit of work, yet cyclic garbage is still collected once
the frozen heap has doubled, and an import gives every object back to the collector when it ends."""

from __future__ import annotations

import gc
import sys
import weakref

from domain.values import Actor
from infra.heap import FrozenHeap
from services.importer import import_lines
from services.journeys import CareContinuum, JourneyService
from tests.support.clock import fixed_clock


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_cyclic_garbage_made_while_frozen_is_collected_once_the_frozen_heap_doubles():
    heap = FrozenHeap()
    try:
        heap.after_unit()
        first = sys.getallocatedblocks()
        garbage = weakref.ref(Node())
        heap.after_unit()  # frozen with the rest: not collected yet
        assert garbage() is not None
        keep = [[] for _ in range(first * FrozenHeap.GROWTH)]  # the heap doubles
        heap.after_unit()
        assert garbage() is None
        assert gc.get_freeze_count() >= len(keep)
    finally:
        heap.close()
    assert gc.get_freeze_count() == 0


def test_an_import_leaves_nothing_frozen():
    service = JourneyService(CareContinuum(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}), clock=fixed_clock)
    lines = ['{"command": "register", "client": "F-1", "occurred_at": "2026-11-01T09:00:00Z", "site": "north"}']
    report = import_lines(service, lines, Actor("dr-ames", "clinician"), chunk_size=1)
    assert report.applied == 1, report.problems()
    assert gc.get_freeze_count() == 0
