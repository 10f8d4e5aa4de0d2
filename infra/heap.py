"""Python's cyclic garbage collector kept off what a long-running job holds.

A long ingest caches journeys (millions of objects); a rebuild that follows it in the same process, or a
runner beside it, would have every full collection scan them all again, so the cost per event grew with
what the process had cached (a rebuild after an ingest of 3x10^5 events in one process: 30 us of
collection per event, 5 with the heap frozen).
"""

from __future__ import annotations

import gc
import sys


class FrozenHeap:
    """Cyclic GC for a long job: after each unit of work (an ingest's, a page of a projection runner's, a batch
    the relay has published) everything alive is frozen (`gc.freeze()`), so collections scan only what the
    next unit makes, not every cached journey again (full collections over a growing cache made ingest
    cost grow with the log).

    A frozen object is never collected by the cyclic collector (reference counting still frees it), so
    memory stays bounded by a full collection whenever the heap (the interpreter's allocated blocks: a
    cheap count, unlike the frozen objects') has doubled since the last one: amortised constant cost per
    event, and none once the bounded journey cache is full. `close` gives every object back to the collector."""

    GROWTH = 2

    def __init__(self) -> None:
        self._collected_at: int | None = None  # allocated blocks right after the last full collection

    def after_unit(self) -> None:
        gc.freeze()
        blocks = sys.getallocatedblocks()
        if self._collected_at is None:
            self._collected_at = blocks
        elif blocks > self.GROWTH * self._collected_at:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._collected_at = sys.getallocatedblocks()

    def close(self) -> None:
        gc.unfreeze()
