"""Step history: each client's transitions (kind, from, to, when, why) in clinical order, and the
from -> to matrix counting only steps whose clinical time is in [since, until)."""

from __future__ import annotations

import pytest

from projections.step_history import history_query, matrix_query
from tests.projections.builders import (
    admit,
    alumni,
    correct,
    discharge,
    jid,
    line,
    register,
    send,
    step,
    t,
)


def build_steps(wired):
    """H-1 (north): detox 3.7-WM [v2] 02-01 08:00Z; detox completed [v3] 02-05 08:00Z;
         step down -> 3.5 "detox complete" [v4] 02-05 12:00Z; step down -> 2.1 evening "residential goals met"
         [v5] 03-15 12:00Z; step up -> 2.5 "relapse" [v6] 04-10 12:00Z; step down -> 2.1 "stabilised" [v7]
         05-20 12:00Z; discharge completed [v8] 07-01 12:00Z; alumni "alumni-north" [v9] 07-02 12:00Z.
    H-2 (south): admit 2.1 day [v2] 03-01 09:00Z; step up -> 3.5 "unsafe at home" [v3] 04-10 12:00Z;
         step down -> 2.1 day "stable" [v4] 06-01 12:00Z.
    H-3 (south): admit 1 day [v2] 03-20 09:00Z; step up -> 2.1 "more support" [v3] 05-20 12:00Z.
    """
    register(wired, "H-1", "2026-01-10T10:00:00Z", "north")
    register(wired, "H-2", "2026-01-10T10:00:00Z", "south")
    register(wired, "H-3", "2026-01-10T10:00:00Z", "south")
    send(wired, line("H-1:detox", "start_detox", "H-1", "2026-02-01T08:00:00Z", level="3.7-WM", site="north"))
    send(wired, line("H-1:detox-done", "complete_detox", "H-1", "2026-02-05T08:00:00Z"))
    step(wired, "H-1", "2026-02-05T12:00:00Z", "step_down", "3.5", "detox complete")
    admit(wired, "H-2", "2026-03-01T09:00:00Z", "2.1", "south", "day")
    step(wired, "H-1", "2026-03-15T12:00:00Z", "step_down", "2.1", "residential goals met", track="evening")
    admit(wired, "H-3", "2026-03-20T09:00:00Z", "1", "south", "day")
    step(wired, "H-1", "2026-04-10T12:00:00Z", "step_up", "2.5", "relapse")
    step(wired, "H-2", "2026-04-10T12:00:00Z", "step_up", "3.5", "unsafe at home")
    step(wired, "H-1", "2026-05-20T12:00:00Z", "step_down", "2.1", "stabilised")
    step(wired, "H-3", "2026-05-20T12:00:00Z", "step_up", "2.1", "more support")
    step(wired, "H-2", "2026-06-01T12:00:00Z", "step_down", "2.1", "stable", track="day")
    discharge(wired, "H-1", "2026-07-01T12:00:00Z")
    alumni(wired, "H-1", "2026-07-02T12:00:00Z", program="alumni-north")
    wired.runner.catch_up()


def history(wired, ref):
    with wired.views.transaction() as cursor:
        return [(x.version, x.kind, x.from_level, x.to_level, x.occurred_at, x.reason)
                for x in history_query(cursor, jid(ref))]


def matrix(wired, since, until):
    with wired.views.transaction() as cursor:
        return matrix_query(cursor, since and t(since), until and t(until))


def test_history_rows_carry_kind_levels_time_and_reason_in_clinical_order(wired):
    build_steps(wired)
    # Detox completion (v3) is not a change of level: no row.
    assert history(wired, "H-1") == [
        (2, "admission", None, "3.7-WM", t("2026-02-01T08:00:00Z"), "withdrawal management"),
        (4, "step_down", "3.7-WM", "3.5", t("2026-02-05T12:00:00Z"), "detox complete"),
        (5, "step_down", "3.5", "2.1", t("2026-03-15T12:00:00Z"), "residential goals met"),
        (6, "step_up", "2.1", "2.5", t("2026-04-10T12:00:00Z"), "relapse"),
        (7, "step_down", "2.5", "2.1", t("2026-05-20T12:00:00Z"), "stabilised"),
        (8, "discharge", "2.1", None, t("2026-07-01T12:00:00Z"), "completed"),
        (9, "alumni", None, "alumni", t("2026-07-02T12:00:00Z"), "alumni-north"),
    ]
    assert history(wired, "H-2") == [
        (2, "admission", None, "2.1", t("2026-03-01T09:00:00Z"), "admission"),
        (3, "step_up", "2.1", "3.5", t("2026-04-10T12:00:00Z"), "unsafe at home"),
        (4, "step_down", "3.5", "2.1", t("2026-06-01T12:00:00Z"), "stable"),
    ]
    assert history(wired, "H-9") == []


def test_matrix_counts_all_steps_when_unbounded(wired):
    build_steps(wired)
    # Steps only (admissions, discharges and alumni are not steps):
    #   3.7-WM->3.5 (H-1 v4); 3.5->2.1 (H-1 v5, H-2 v4) = 2; 2.1->2.5 (H-1 v6); 2.5->2.1 (H-1 v7);
    #   2.1->3.5 (H-2 v3); 1->2.1 (H-3 v3).
    assert matrix(wired, None, None) == {
        ("3.7-WM", "3.5"): 1, ("3.5", "2.1"): 2, ("2.1", "2.5"): 1, ("2.5", "2.1"): 1, ("2.1", "3.5"): 1, ("1", "2.1"): 1,
    }


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        # since inclusive (H-1 v6 and H-2 v3 at 04-10 12:00Z), until exclusive (H-1 v7, H-3 v3 at 05-20 12:00Z)
        ("2026-04-10T12:00:00Z", "2026-05-20T12:00:00Z", {("2.1", "2.5"): 1, ("2.1", "3.5"): 1}),
        # the same instants in +02:00
        ("2026-04-10T14:00:00+02:00", "2026-05-20T14:00:00+02:00", {("2.1", "2.5"): 1, ("2.1", "3.5"): 1}),
        # one second later on both ends: the 04-10 steps drop out, the 05-20 ones come in
        ("2026-04-10T12:00:01Z", "2026-05-20T12:00:01Z", {("2.5", "2.1"): 1, ("1", "2.1"): 1}),
        ("2026-05-20T12:00:00Z", "2026-06-01T12:00:00Z", {("2.5", "2.1"): 1, ("1", "2.1"): 1}),
        ("2026-06-01T12:00:00Z", None, {("3.5", "2.1"): 1}),
        (None, "2026-02-05T12:00:00Z", {}),  # the first step is exactly at `until`
        (None, "2026-03-15T12:00:01Z", {("3.7-WM", "3.5"): 1, ("3.5", "2.1"): 1}),
        ("2026-06-01T12:00:01Z", None, {}),  # only a discharge and an alumni enrolment after
    ],
)
def test_matrix_counts_only_steps_within_the_half_open_period(wired, since, until, expected):
    build_steps(wired)
    assert matrix(wired, since, until) == expected


def test_corrections_of_a_steps_reason_and_time_show_in_history_and_matrix(wired):
    build_steps(wired)
    correct(wired, "H-2", 3, "reason", "risk of relapse at home", "2026-11-20T09:00:00Z")  # H-2 v5
    # H-3's step up really happened a day earlier, on 05-19 12:00Z (after its admission on 03-20).
    correct(wired, "H-3", 3, "occurred_at", "2026-05-19T12:00:00+00:00", "2026-11-20T09:05:00Z")  # H-3 v4
    # H-1's discharge reason was mistyped.
    correct(wired, "H-1", 8, "reason", "transferred", "2026-11-20T09:10:00Z")  # H-1 v10
    wired.runner.catch_up()

    assert history(wired, "H-2")[1] == (3, "step_up", "2.1", "3.5", t("2026-04-10T12:00:00Z"), "risk of relapse at home")
    assert history(wired, "H-3") == [
        (2, "admission", None, "1", t("2026-03-20T09:00:00Z"), "admission"),
        (3, "step_up", "1", "2.1", t("2026-05-19T12:00:00Z"), "more support"),
    ]
    assert history(wired, "H-1")[5] == (8, "discharge", "2.1", None, t("2026-07-01T12:00:00Z"), "transferred")
    # [04-10 12:00, 05-20 12:00) now also holds H-3's step (05-19).
    assert matrix(wired, "2026-04-10T12:00:00Z", "2026-05-20T12:00:00Z") == {
        ("2.1", "2.5"): 1, ("2.1", "3.5"): 1, ("1", "2.1"): 1,
    }
    assert matrix(wired, "2026-05-20T12:00:00Z", "2026-06-01T12:00:00Z") == {("2.5", "2.1"): 1}


def test_correcting_an_admission_time_moves_its_row(wired):
    register(wired, "H-4", "2026-01-10T10:00:00Z", "north")
    admit(wired, "H-4", "2026-03-01T09:00:00Z", "2.1", "north", "day")  # v2
    step(wired, "H-4", "2026-04-01T09:00:00Z", "step_up", "2.5", "relapse")  # v3
    correct(wired, "H-4", 2, "occurred_at", "2026-02-27T09:00:00+00:00", "2026-11-20T09:00:00Z")  # v4
    wired.runner.catch_up()
    assert history(wired, "H-4") == [
        (2, "admission", None, "2.1", t("2026-02-27T09:00:00Z"), "admission"),
        (3, "step_up", "2.1", "2.5", t("2026-04-01T09:00:00Z"), "relapse"),
    ]


def test_correcting_the_alumni_program_shows_in_history(wired):
    register(wired, "H-5", "2026-01-10T10:00:00Z", "north")
    admit(wired, "H-5", "2026-03-01T09:00:00Z", "2.1", "north", "day")
    discharge(wired, "H-5", "2026-05-01T09:00:00Z")
    alumni(wired, "H-5", "2026-05-02T09:00:00Z", program="alumni-nroth")  # v4
    correct(wired, "H-5", 4, "program", "alumni-north", "2026-05-03T09:00:00Z")
    wired.runner.catch_up()
    assert history(wired, "H-5")[-1] == (4, "alumni", None, "alumni", t("2026-05-02T09:00:00Z"), "alumni-north")
