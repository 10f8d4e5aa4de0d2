"""`bench.rebuild.raw_read_decode_write`, the rebuild's baseline, is charged for the same collector as the runner:
the heap frozen after each page (`FrozenHeap`), so that full collections do not scan what the process held before
it (after the benchmark's ingest of 10^5 events, 200,000 tracked objects: 57,000 events/s against 101,000 frozen)."""

from __future__ import annotations

import gc

import pytest

from bench.rebuild import raw_read_decode_write
from infra.config import Settings
from services.bootstrap import bootstrap
from tests.projections.builders import build_mixed_history
from tests.support.clock import fixed_clock


def test_the_raw_baseline_decodes_each_page_after_the_first_with_the_heap_frozen(sqlite_url: str,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    wired = bootstrap(Settings(database_url=sqlite_url), clock=fixed_clock)
    try:
        build_mixed_history(wired)
        head = wired.runner.head()
        frozen_while_decoding: list[int] = []
        decode = wired.app.mapper.to_domain_event

        def watched(stored):
            frozen_while_decoding.append(gc.get_freeze_count())
            return decode(stored)

        monkeypatch.setattr(wired.app.mapper, "to_domain_event", watched)
        assert gc.get_freeze_count() == 0
        result = raw_read_decode_write(wired, 3)
        assert result["events"] == head > 6
        assert len(frozen_while_decoding) == head
        assert all(count > 0 for count in frozen_while_decoding[3:])  # the pages before, and all the process held, frozen
        assert gc.get_freeze_count() == 0  # and given back to the collector when it is done
    finally:
        wired.close()
