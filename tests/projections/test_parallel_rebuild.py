"""A rebuild in shares (`continuum rebuild --all --workers N`): the projections dealt by their events into shares, each
other than the first filled by a helper process of its own, then all swapped in together by the rebuilding process.
The tables are those a rebuild in one process gives; a helper that fails fails the rebuild and nothing is swapped in."""

from __future__ import annotations

import pytest

from infra.config import Settings
from projections.runner import Shadow
from services.bootstrap import bootstrap
from services.parallel_rebuild import RebuildHelperFailed, rebuild_helpers
from tests.projections.builders import build_mixed_history, dump
from tests.projections.test_shadow_rebuild import NAMES, schema, scratch_files, shadow_rows, stale_audit_row
from tests.support.clock import fixed_clock


@pytest.mark.parametrize("workers", [2, 3])
def test_a_rebuild_in_shares_gives_the_tables_a_live_runner_gave(wired, workers):
    build_mixed_history(wired, catch_up_between=True)
    live, head, indexes = dump(wired), wired.runner.head(), schema(wired)
    stale_audit_row(wired)
    assert dump(wired) != live
    wired.runner.batch_size = 4

    assert wired.rebuild(NAMES, workers=workers) == head  # the share with the audit trail read every event

    assert dump(wired) == live
    assert wired.runner.positions() == dict.fromkeys(NAMES, head)
    assert shadow_rows(wired) == []
    assert scratch_files(wired) == []
    assert schema(wired) == indexes
    assert wired.runner.catch_up() == 0


def test_shares_deal_the_projections_by_the_events_they_take(wired):
    build_mixed_history(wired)
    runner = wired.runner
    shadows = [Shadow(runner.projections[name], wired.views.dialect) for name in NAMES]
    counts = wired.app.recorder.topic_counts(runner.head())
    assert sum(counts.values()) == runner.head()
    weight = {shadow.row: sum(counts.get(topic, 0) for topic in shadow.target.topics) for shadow in shadows}

    for workers in (2, 3, len(NAMES), len(NAMES) + 2):
        shares = runner.shares(shadows, workers)
        assert len(shares) == min(workers, len(NAMES))
        dealt = [shadow.row for share in shares for shadow in share]
        assert sorted(dealt) == sorted(shadow.row for shadow in shadows)  # each projection in one share
        loads = [sum(weight[shadow.row] for shadow in share) for share in shares]
        assert max(loads) - min(loads) <= max(weight.values())  # none heavier than the lightest by more than one projection
    assert runner.shares(shadows, 1) == [shadows]


def test_a_helper_that_fails_fails_the_rebuild_and_the_old_tables_keep_serving(wired, tmp_path):
    build_mixed_history(wired, catch_up_between=True)
    head = wired.runner.head()
    stale_audit_row(wired)
    old = dump(wired)
    unreachable = Settings(database_url=f"sqlite:///{tmp_path}/no/such/folder/continuum.db")  # a helper cannot open it

    with pytest.raises(RebuildHelperFailed, match=r"helper filling .* failed: .*; nothing was swapped in"):
        wired.runner.rebuild(NAMES, workers=2, helpers=rebuild_helpers(unreachable))

    assert dump(wired) == old
    assert wired.runner.positions() == dict.fromkeys(NAMES, head)
    assert scratch_files(wired) == []
    if wired.views.dialect == "sqlite":
        assert shadow_rows(wired) == []
    assert wired.rebuild(NAMES, workers=2) == head  # and the next rebuild starts again from zero
    assert "stale" not in {row[0] for row in dump(wired)["audit_entries"]}


def test_an_in_memory_store_is_rebuilt_in_one_process_whatever_the_workers(monkeypatch):
    """No other process can open it: no helper is started, and the tables are those of a rebuild in one process."""
    wired = bootstrap(Settings(database_url="sqlite:///:memory:"), clock=fixed_clock)
    try:
        build_mixed_history(wired, catch_up_between=True)
        live, head = dump(wired), wired.runner.head()
        stale_audit_row(wired)
        started: list[object] = []
        monkeypatch.setattr("services.worker_processes.multiprocessing.get_context", lambda *args: started.append(args))
        assert wired.rebuild(NAMES, workers=2) == head
        assert started == []
        assert dump(wired) == live
    finally:
        wired.close()
