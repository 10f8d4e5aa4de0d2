"""The measures, with figures worked out by hand on small histories: stays open when the period
ends, a late discharge, a voided entry, readmissions on day 30 and day 31, windows not yet closed,
small cells suppressed; rebuilt read models give the same figures as live ones.

Days are whole calendar days in UTC; a period is [since, until).
"""

from __future__ import annotations

from datetime import date

from services.reports import Reports, Scope
from tests.projections.builders import admit, discharge, dump, line, register, send, step, t

NAMES = ["outcomes", "attendance", "drug_tests"]


def run(wired, name, until, since=None, small_cells="show", **scope):
    wired.runner.catch_up()
    return Reports(wired.views, small_cells=small_cells).run(name, Scope(t(until), t(since) if since else None, **scope))


def rows(wired, name, until, since=None, **scope):
    return run(wired, name, until, since, **scope).rows


def pathway(wired) -> None:
    """R-1 (north): detox 3.7-WM 03-01 [v2], completed [v3], step down to IOP 03-05 [v4] (4 days in WM), step up
    to PHP 04-10 [v5] (36 days in IOP), discharged completed 05-20 [v6] (40 days in PHP); readmitted to IOP 06-19.
    T-1 (north): IOP 03-02 to 04-01, left against advice (30 days)."""
    register(wired, "R-1", "2026-02-20T10:00:00Z", "north")
    send(wired, line("R-1:wm", "start_detox", "R-1", "2026-03-01T08:00:00Z", level="3.7-WM", site="north", substances=["alcohol"]))
    send(wired, line("R-1:wm-done", "complete_detox", "R-1", "2026-03-05T08:00:00Z"))
    step(wired, "R-1", "2026-03-05T12:00:00Z", "step_down", "2.1", "detox done", track="evening")
    step(wired, "R-1", "2026-04-10T12:00:00Z", "step_up", "2.5", "relapse", track="day")
    discharge(wired, "R-1", "2026-05-20T10:00:00Z", "completed")
    admit(wired, "R-1", "2026-06-19T09:00:00Z", "2.1", "north", "day")
    register(wired, "T-1", "2026-03-01T10:00:00Z", "north")
    admit(wired, "T-1", "2026-03-02T09:00:00Z", "2.1", "north", "day")
    discharge(wired, "T-1", "2026-04-01T09:00:00Z", "left_against_advice")


def test_end_reasons_completion_and_length_of_stay(wired):
    pathway(wired)
    mix = {r.group: r for r in rows(wired, "end-reasons", "2026-07-01T00:00:00Z")}
    # IOP: T-1 left against advice, R-1's first IOP stay transferred (step up); R-1's readmission open
    iop = mix["intensive outpatient"]
    assert (iop.ended, iop.open, iop.completed, iop.transferred, iop.left_against_advice) == (2, 1, 0, 1, 1)
    assert (iop.transferred_pct, iop.left_against_advice_pct, iop.completed_pct) == (50.0, 50.0, 0.0)
    assert (mix["withdrawal management"].ended, mix["withdrawal management"].completed_pct) == (1, 100.0)
    completion = {r.group: r for r in rows(wired, "completion", "2026-07-01T00:00:00Z")}
    assert completion["intensive outpatient"].completion_rate == 0.0
    assert completion["intensive outpatient"].completion_or_transfer_rate == 0.5
    assert completion["partial hospitalization"].completion_rate == 1.0
    # length of stay, IOP: 30 and 36 days: median 33, mean 33, quartiles (inclusive) 31.5 and 34.5
    los = {(r.group, r.end_reason): r for r in rows(wired, "length-of-stay", "2026-07-01T00:00:00Z")}
    whole = los[("intensive outpatient", "all")]
    assert (whole.stays, whole.median_days, whole.mean_days, whole.q1_days, whole.q3_days) == (2, 33.0, 33.0, 31.5, 34.5)
    assert los[("intensive outpatient", "left_against_advice")].median_days == 30.0
    assert los[("withdrawal management", "completed")].median_days == 4.0
    steps = {(r.group, r.end_reason): r.median_days for r in rows(wired, "time-to-step", "2026-07-01T00:00:00Z")}
    assert steps == {("withdrawal management", "step down"): 4.0, ("intensive outpatient", "step up"): 36.0}


def test_a_stay_open_when_the_period_ends_is_open_not_ended(wired):
    pathway(wired)
    # until 04-05: R-1 in IOP since 03-05 (steps up only on 04-10): open; T-1 ended 04-01
    iop = {r.group: r for r in rows(wired, "end-reasons", "2026-04-05T00:00:00Z")}["intensive outpatient"]
    assert (iop.ended, iop.open, iop.left_against_advice) == (1, 1, 1)
    # a period from 04-02: T-1 ended before it (not counted), R-1's IOP stay ends in it (transferred)
    iop = {r.group: r for r in rows(wired, "end-reasons", "2026-05-01T00:00:00Z", "2026-04-02T00:00:00Z")}["intensive outpatient"]
    assert (iop.ended, iop.open, iop.transferred, iop.left_against_advice) == (1, 0, 1, 0)


def test_a_late_discharge_and_a_voided_one(wired):
    register(wired, "L-1", "2026-09-20T10:00:00Z", "west")
    admit(wired, "L-1", "2026-10-01T09:00:00Z", "2.1", "west", "day")  # v2
    until = "2026-11-01T00:00:00Z"
    assert [(r.ended, r.open) for r in rows(wired, "end-reasons", until)] == [(0, 1)]
    # recorded on 11-24 (the clock), dated 10-20: ended in October after all, 19 days
    discharge(wired, "L-1", "2026-10-20T09:00:00Z", "terminated_by_facility")  # v3
    assert [(r.ended, r.open, r.terminated_by_facility) for r in rows(wired, "end-reasons", until)] == [(1, 0, 1)]
    assert [r.median_days for r in rows(wired, "length-of-stay", until)] == [19.0, 19.0]  # all, terminated
    send(wired, line("L-1:void", "void", "L-1", "2026-11-21T10:00:00Z", versions=[3], reason="wrong client"))
    assert [(r.ended, r.open) for r in rows(wired, "end-reasons", until)] == [(0, 1)]


def test_readmission_on_day_30_counts_and_on_day_31_does_not(wired):
    for ref, back in (("A-1", "2026-03-31T09:00:00Z"), ("B-1", "2026-04-01T09:00:00Z")):
        register(wired, ref, "2026-02-01T10:00:00Z", "north")
        admit(wired, ref, "2026-02-02T09:00:00Z", "2.1", "north", "day")
        discharge(wired, ref, "2026-03-01T10:00:00Z", "completed")
        admit(wired, ref, back, "2.1", "north", "day")
    register(wired, "C-1", "2026-02-01T10:00:00Z", "north")  # died: not in the denominator
    admit(wired, "C-1", "2026-02-02T09:00:00Z", "2.1", "north", "day")
    discharge(wired, "C-1", "2026-03-01T10:00:00Z", "died")
    register(wired, "D-1", "2026-02-01T10:00:00Z", "north")  # discharged 05-20: its 30 days not over by 06-01
    admit(wired, "D-1", "2026-02-02T09:00:00Z", "2.1", "north", "day")
    discharge(wired, "D-1", "2026-05-20T10:00:00Z", "completed")
    [row] = rows(wired, "readmission", "2026-06-01T00:00:00Z")
    assert (row.eligible, row.met, row.rate) == (2, 1, 0.5)
    # the window of a discharge on 03-01 is judged once 03-31 is over
    assert [(r.eligible, r.met) for r in rows(wired, "readmission", "2026-03-31T23:59:59Z")] == [(0, 0)]
    assert [(r.eligible, r.met) for r in rows(wired, "readmission", "2026-04-01T00:00:00Z")] == [(2, 1)]


def test_retention_counts_episodes_whose_day_has_come(wired):
    register(wired, "E-1", "2026-01-01T10:00:00Z", "north")
    admit(wired, "E-1", "2026-01-05T09:00:00Z", "2.1", "north", "day")
    discharge(wired, "E-1", "2026-02-10T09:00:00Z", "left_against_advice")  # 36 days
    register(wired, "E-2", "2026-01-01T10:00:00Z", "north")
    admit(wired, "E-2", "2026-01-05T09:00:00Z", "2.1", "north", "day")  # still in treatment
    # until 03-10: day 30 (02-04) and day 60 (03-06) have come, day 90 (04-05) not
    kept = {r.days: (r.eligible, r.met) for r in rows(wired, "retention", "2026-03-10T00:00:00Z")}
    assert kept == {30: (2, 2), 60: (2, 1), 90: (0, 0)}


def test_continuity_after_withdrawal_management(wired):
    pathway(wired)  # WM stepped down to IOP at once (0 days)
    register(wired, "W-2", "2026-03-01T10:00:00Z", "north")
    send(wired, line("W-2:wm", "start_detox", "W-2", "2026-03-05T08:00:00Z", level="3.2-WM", site="north", substances=["alcohol"]))
    discharge(wired, "W-2", "2026-03-10T10:00:00Z", "completed")
    admit(wired, "W-2", "2026-03-20T09:00:00Z", "2.1", "north", "day")  # 10 days after
    register(wired, "W-3", "2026-03-01T10:00:00Z", "north")
    send(wired, line("W-3:wm", "start_detox", "W-3", "2026-03-05T08:00:00Z", level="3.7-WM", site="north", substances=["alcohol"]))
    discharge(wired, "W-3", "2026-03-08T10:00:00Z", "left_against_advice")  # nothing after
    after = {r.days: (r.eligible, r.met) for r in rows(wired, "continuity", "2026-06-01T00:00:00Z") if r.measure == "after withdrawal management"}
    assert after == {7: (3, 1), 14: (3, 2), 30: (3, 2)}


def test_initiation_within_14_days_and_engagement_within_34(wired):
    for ref, admitted in (("I-1", "2026-01-10T09:00:00Z"), ("I-2", "2026-01-20T09:00:00Z"), ("I-3", None)):
        register(wired, ref, "2026-01-01T10:00:00Z", "north")
        send(wired, line(f"{ref}:refer", "refer", ref, "2026-01-02T10:00:00Z", source="self"))
        if admitted:
            admit(wired, ref, admitted, "2.1", "north", "day")
    # I-1 admitted 8 days after its referral, then two sessions on days 3 and 20 of treatment: engaged
    for n, day in ((1, "2026-01-13T09:00:00Z"), (2, "2026-01-30T09:00:00Z")):
        send(wired, line(f"I-1:s{n}", "attend_session", "I-1", day, session_id=f"s{n}", minutes=180))
    # I-2 admitted after 18 days: not initiated; I-3 never
    found = {r.measure: (r.eligible, r.met) for r in rows(wired, "initiation", "2026-06-01T00:00:00Z")}
    assert found == {"initiated": (3, 1), "engaged": (3, 1)}


def attended_weeks(wired) -> None:
    """A-1 in IOP (9 h planned) from Sunday 03-01 to Monday 03-16 10:00: two full weeks (03-02 and 03-09).
    Week 1: Mon, Wed, Fri 3 h attended = 9 h. Week 2: Mon, Wed 3 h attended, Thu 1 h missed excused, Fri missed = 6 h."""
    register(wired, "A-1", "2026-02-20T10:00:00Z", "north")
    admit(wired, "A-1", "2026-03-01T09:00:00Z", "2.1", "north", "day", planned_hours_per_week=9)
    days = {"s1": "2026-03-02", "s2": "2026-03-04", "s3": "2026-03-06", "s4": "2026-03-09", "s5": "2026-03-11"}
    for session, day in days.items():
        send(wired, line(f"A-1:{session}", "attend_session", "A-1", f"{day}T09:00:00Z", session_id=session, minutes=180))
    send(wired, line("A-1:s6", "miss_session", "A-1", "2026-03-12T13:00:00Z", session_id="s6", minutes=60, excused=True))
    send(wired, line("A-1:s7", "miss_session", "A-1", "2026-03-13T09:00:00Z", session_id="s7", minutes=180, excused=False))
    discharge(wired, "A-1", "2026-03-16T10:00:00Z", "completed")


def test_attendance_weeks_meeting_the_iop_minimum(wired):
    attended_weeks(wired)
    [row] = rows(wired, "attendance", "2026-04-01T00:00:00Z")
    assert (row.level, row.minimum_hours, row.client_weeks, row.weeks_meeting_minimum, row.compliance_rate) == ("2.1", 9.0, 2, 1, 0.5)
    assert (row.mean_hours_attended, row.mean_hours_planned) == (7.5, 9.0)
    # 7 sessions: 5 attended, 1 missed excused, 1 not: 5/7 and 5/6
    assert (row.sessions_scheduled, row.sessions_attended, row.missed_excused, row.missed_unexcused) == (7, 5, 1, 1)
    assert (row.attendance_rate, row.attendance_rate_unexcused_only) == (0.7143, 0.8333)
    # a voided session drops out: s7 [v9] voided
    send(wired, line("A-1:void", "void", "A-1", "2026-03-20T10:00:00Z", versions=[9], reason="wrong client"))
    [row] = rows(wired, "attendance", "2026-04-01T00:00:00Z")
    assert (row.sessions_scheduled, row.missed_unexcused, row.attendance_rate) == (6, 0, 0.8333)


def test_negative_share_keeps_expected_medication_apart(wired):
    register(wired, "M-1", "2026-02-20T10:00:00Z", "north")
    admit(wired, "M-1", "2026-03-01T09:00:00Z", "2.1", "north", "day", medication="buprenorphine")
    results = {
        "u1": ("negative", {"fentanyl": "negative"}, []),
        "u2": ("positive", {"fentanyl": "positive"}, []),
        "u3": ("negative", {"fentanyl": "negative", "buprenorphine": "positive"}, ["buprenorphine"]),
        "u4": None,  # awaiting its result
    }
    for n, (specimen, result) in enumerate(results.items(), start=2):
        send(wired, line(f"M-1:{specimen}", "collect_drug_test", "M-1", f"2026-03-0{n}T10:00:00Z", specimen_id=specimen))
        if result:
            overall, substances, expected = result
            send(wired, line(f"M-1:{specimen}:r", "result_drug_test", "M-1", f"2026-03-0{n}T18:00:00Z", specimen_id=specimen,
                             result=overall, substances=substances, expected_medications=expected))
    [row] = rows(wired, "negative-tests", "2026-04-01T00:00:00Z")
    # week of Monday 03-02: 4 collected, 3 resulted, 2 negative (2/3), 1 non-prescribed positive, 1 expected only
    assert (row.week, row.site, row.level, row.collected, row.resulted, row.negative) == (date(2026, 3, 2), "north", "2.1", 4, 3, 2)
    assert (row.negative_share, row.non_prescribed_positive, row.expected_medication_only, row.other_non_negative) == (
        0.6667, 1, 1, 0)


def test_census_trend_counts_the_end_of_each_day(wired):
    register(wired, "D-1", "2026-02-20T10:00:00Z", "north")
    admit(wired, "D-1", "2026-03-01T09:00:00Z", "2.1", "north", "day")
    discharge(wired, "D-1", "2026-03-03T10:00:00Z", "completed")
    trend = [(r.day, r.level, r.clients) for r in rows(wired, "census-trend", "2026-03-05T00:00:00Z", "2026-02-28T00:00:00Z")]
    assert trend == [(date(2026, 3, 1), "2.1", 1), (date(2026, 3, 2), "2.1", 1)]


def test_small_cells_are_suppressed_for_the_dashboard(wired):
    pathway(wired)
    report = run(wired, "completion", "2026-07-01T00:00:00Z", small_cells="suppress")
    assert report.suppressed
    assert "under 11" in report.note
    iop = {r.group: r for r in report.rows}["intensive outpatient"]
    assert (iop.ended, iop.completed, iop.completion_rate) == (None, None, None)
    shown = run(wired, "completion", "2026-07-01T00:00:00Z")
    assert not shown.suppressed
    assert shown.note == ""


def test_rebuilt_read_models_equal_live_ones_and_give_the_same_figures(wired):
    pathway(wired)
    attended_weeks(wired)
    wired.runner.catch_up()
    live = dump(wired, NAMES)
    figures = [rows(wired, name, "2026-07-01T00:00:00Z") for name in ("end-reasons", "attendance", "continuity", "retention")]
    wired.runner.rebuild(NAMES)
    assert dump(wired, NAMES) == live
    assert [rows(wired, name, "2026-07-01T00:00:00Z") for name in ("end-reasons", "attendance", "continuity", "retention")] == figures
    assert sum(len(table) for table in live.values()) > 0
