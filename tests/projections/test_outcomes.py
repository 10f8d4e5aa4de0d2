"""Outcomes: treatment episodes and service stays (end reasons in TEDS terms, what came next), by hand.

Days are whole calendar days in UTC. Histories (versions in brackets) are listed in each test.
"""

from __future__ import annotations

from projections.outcomes import episodes_query, stays_query
from tests.projections.builders import (
    admit,
    correct,
    discharge,
    dump,
    jid,
    line,
    register,
    send,
    step,
    t,
)


def stays(wired, ref):
    with wired.views.transaction() as cursor:
        rows = [s for s in stays_query(cursor) if s.journey_id == str(jid(ref))]
    return [(s.episode, s.level, s.started_at, s.ended_at, s.end_reason, s.length_of_stay, s.next_level, s.days_to_next)
            for s in rows]


def episodes(wired, ref):
    with wired.views.transaction() as cursor:
        rows = [e for e in episodes_query(cursor) if e.journey_id == str(jid(ref))]
    return [(e.episode, e.episode_id, e.level, e.end_reason, e.length_of_stay, e.next_level, e.days_to_next) for e in rows]


def detox_to_iop_then_readmitted(wired) -> None:
    """R-1: detox 3.7-WM 03-01 [v2], completed [v3], step down to IOP 03-05 [v4], step up to PHP 04-10 [v5], discharged
    completed 05-20 [v6]; readmitted to IOP 06-19 [v7] (30 days later), still open."""
    register(wired, "R-1", "2026-02-20T10:00:00Z", "north")
    send(wired, line("R-1:wm", "start_detox", "R-1", "2026-03-01T08:00:00Z", level="3.7-WM", site="north",
                     substances=["alcohol"]))
    send(wired, line("R-1:wm-done", "complete_detox", "R-1", "2026-03-05T08:00:00Z"))  # v3
    step(wired, "R-1", "2026-03-05T12:00:00Z", "step_down", "2.1", "detox done", track="evening")
    step(wired, "R-1", "2026-04-10T12:00:00Z", "step_up", "2.5", "relapse", track="day")
    discharge(wired, "R-1", "2026-05-20T10:00:00Z", "completed")
    admit(wired, "R-1", "2026-06-19T09:00:00Z", "2.1", "north", "day")


def test_stays_end_completed_on_a_step_down_transferred_on_a_step_up_and_the_discharges_reason(wired):
    detox_to_iop_then_readmitted(wired)
    wired.runner.catch_up()
    assert stays(wired, "R-1") == [
        # 03-01 -> 03-05: 4 days, stepped down to IOP the same moment (0 days)
        (1, "3.7-WM", t("2026-03-01T08:00:00Z"), t("2026-03-05T12:00:00Z"), "completed", 4, "2.1", 0),
        # 03-05 -> 04-10: 26 + 10 = 36 days, stepped up: transferred
        (1, "2.1", t("2026-03-05T12:00:00Z"), t("2026-04-10T12:00:00Z"), "transferred", 36, "2.5", 0),
        # 04-10 -> 05-20: 20 + 20 = 40 days, discharged completed; readmitted to IOP 05-20 -> 06-19: 30 days
        (1, "2.5", t("2026-04-10T12:00:00Z"), t("2026-05-20T10:00:00Z"), "completed", 40, "2.1", 30),
        (2, "2.1", t("2026-06-19T09:00:00Z"), None, None, None, None, None),
    ]
    journey = str(jid("R-1"))
    # episode 1: 03-01 -> 05-20 = 30 + 30 + 19 = 80 days; episode 2 open
    assert episodes(wired, "R-1") == [
        (1, f"{journey}:2", "3.7-WM", "completed", 80, "2.1", 30),
        (2, f"{journey}:7", "2.1", None, None, None, None),
    ]


def test_a_change_of_track_does_not_end_a_stay(wired):
    register(wired, "T-1", "2026-03-01T10:00:00Z", "north")
    admit(wired, "T-1", "2026-03-02T09:00:00Z", "2.1", "north", "day")  # v2
    send(wired, line("T-1:track", "change_track", "T-1", "2026-03-20T09:00:00Z", track="evening", reason="work"))  # v3
    discharge(wired, "T-1", "2026-04-01T09:00:00Z", "left_against_advice")  # v4
    wired.runner.catch_up()
    # one stay 03-02 -> 04-01: 30 days
    assert stays(wired, "T-1") == [
        (1, "2.1", t("2026-03-02T09:00:00Z"), t("2026-04-01T09:00:00Z"), "left_against_advice", 30, None, None),
    ]


def test_voids_and_corrections_put_the_stays_right(wired):
    detox_to_iop_then_readmitted(wired)
    wired.runner.catch_up()
    # the readmission [v7] was made in error: voided [v8]; the previous episode has no next any more
    send(wired, line("R-1:void7", "void", "R-1", "2026-11-20T10:00:00Z", versions=[7], reason="wrong client"))
    wired.runner.catch_up()
    assert [row[:2] for row in stays(wired, "R-1")] == [(1, "3.7-WM"), (1, "2.1"), (1, "2.5")]
    assert episodes(wired, "R-1")[-1][3:] == ("completed", 80, None, None)
    # the discharge [v6] voided [v9]: the PHP stay and the episode are open again
    send(wired, line("R-1:void6", "void", "R-1", "2026-11-20T10:05:00Z", versions=[6], reason="not discharged"))
    wired.runner.catch_up()
    assert stays(wired, "R-1")[-1][3:] == (None, None, None, None, None)
    assert episodes(wired, "R-1") == [(1, f"{jid('R-1')}:2", "3.7-WM", None, None, None, None)]
    # discharged after all, late, on 05-25 [v10], left against advice; then the reason is corrected to transferred [v11]
    discharge(wired, "R-1", "2026-05-25T10:00:00Z", "left_against_advice")
    correct(wired, "R-1", 10, "reason", "transferred", "2026-11-21T10:00:00Z")
    # and the step down's time corrected from 03-05 to 03-07 [v12]
    correct(wired, "R-1", 4, "occurred_at", "2026-03-07T12:00:00+00:00", "2026-11-21T10:05:00Z")
    wired.runner.catch_up()
    assert stays(wired, "R-1") == [
        (1, "3.7-WM", t("2026-03-01T08:00:00Z"), t("2026-03-07T12:00:00Z"), "completed", 6, "2.1", 0),
        (1, "2.1", t("2026-03-07T12:00:00Z"), t("2026-04-10T12:00:00Z"), "transferred", 34, "2.5", 0),
        (1, "2.5", t("2026-04-10T12:00:00Z"), t("2026-05-25T10:00:00Z"), "transferred", 45, None, None),
    ]
    assert episodes(wired, "R-1")[0][3:5] == ("transferred", 85)  # 03-01 -> 05-25
    live = dump(wired, ["outcomes"])
    wired.runner.rebuild(["outcomes"])
    assert dump(wired, ["outcomes"]) == live
