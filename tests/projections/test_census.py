"""Census: counts per level/site/track now and on past dates, clients with days in level, late events,
corrections of a transition's placement and time, alumni, readmission.

Every figure is worked out by hand in the comments; days in level are `(at - since).days`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from domain import errors
from projections.audit_trail import trail_query
from projections.census import census_query
from services.commands import parse_command
from tests.projections.builders import (
    CLINICIAN,
    admit,
    alumni,
    build_clinic,
    correct,
    discharge,
    jid,
    line,
    register,
    send,
    step,
    t,
    utc_text,
)


def census(wired, at: str | datetime | None = None, *, with_clients: bool = True, **filters):
    """(lines as tuples, clients as tuples); `at=None` is the census now."""
    now = at is None
    moment = datetime.now(tz=UTC) if now else (t(at) if isinstance(at, str) else at)
    with wired.views.transaction() as cursor:
        lines, clients = census_query(cursor, moment, now=now, with_clients=with_clients, **filters)
    return (
        [(x.level, x.site, x.track, x.clients) for x in lines],
        [(c.client_ref, c.level, c.site, c.track, c.days_in_level) for c in clients],
    )


def counts(wired, at: str | None = None, **filters):
    return census(wired, at, with_clients=False, **filters)[0]


def test_census_now_counts_per_level_site_and_track(wired):
    build_clinic(wired)
    wired.runner.catch_up()
    # Now: C-1 at 1 north evening (stepped down, track kept), C-2 at 3.5 south residential,
    # C-3 discharged, C-4 2.1 north evening, C-5 2.1 north day, C-6 never admitted.
    # Order: most intensive level first, then site, then track.
    assert counts(wired) == [
        ("3.5", "south", "residential", 1),
        ("2.1", "north", "day", 1),
        ("2.1", "north", "evening", 1),
        ("1", "north", "evening", 1),
    ]
    lines, clients = census(wired)
    assert [(ref, level, site, track) for ref, level, site, track, _ in clients] == [
        ("C-2", "3.5", "south", "residential"),
        ("C-4", "2.1", "north", "evening"),  # same level and site: by client reference
        ("C-5", "2.1", "north", "day"),
        ("C-1", "1", "north", "evening"),
    ]
    assert all(days >= 0 for *_, days in clients)
    # the open-interval census ("now") agrees with a range census at this moment
    moment = datetime.now(tz=UTC)
    with wired.views.transaction() as cursor:
        ranged, _ = census_query(cursor, moment, now=False)
    assert [(x.level, x.site, x.track, x.clients) for x in ranged] == lines


def test_census_now_filters_by_level_site_and_track(wired):
    build_clinic(wired)
    wired.runner.catch_up()
    assert counts(wired, level="2.1") == [("2.1", "north", "day", 1), ("2.1", "north", "evening", 1)]
    assert counts(wired, site="south") == [("3.5", "south", "residential", 1)]
    assert counts(wired, track="evening") == [("2.1", "north", "evening", 1), ("1", "north", "evening", 1)]
    assert counts(wired, level="2.1", site="north", track="day") == [("2.1", "north", "day", 1)]
    assert counts(wired, level="3.7") == []
    assert census(wired, level="2.1", track="evening")[1][0][:4] == ("C-4", "2.1", "north", "evening")
    assert census(wired, "2026-05-01T00:00:00Z", level="2.5", track="day") == (
        [("2.5", "north", "day", 1)], [("C-3", "2.5", "north", "day", 29)],
    )


def test_census_lists_clients_filtered_by_site(wired):
    build_clinic(wired)
    wired.runner.catch_up()
    # 2026-05-01T00:00Z at site north: C-3 (2.5, 29 days) and C-1 (2.1, 88 days); C-2 is at south.
    assert census(wired, "2026-05-01T00:00:00Z", site="north") == (
        [("2.5", "north", "day", 1), ("2.1", "north", "evening", 1)],
        [("C-3", "2.5", "north", "day", 29), ("C-1", "2.1", "north", "evening", 88)],
    )


def test_census_on_past_dates_uses_the_level_held_then(wired):
    build_clinic(wired)
    wired.runner.catch_up()
    # 2026-05-01T00:00Z: C-1 still in IOP (stepped down only on 06-01), C-3 in PHP (discharged 07-01),
    # C-4 and C-5 not admitted yet.
    #   C-2 3.5 since 03-10 12:00 -> 51 d 12 h -> 51 days
    #   C-3 2.5 since 04-01 08:00 -> 29 d 16 h -> 29 days
    #   C-1 2.1 since 02-01 09:00 -> 28 + 31 + 30 = 89 d - 9 h -> 88 days
    assert census(wired, "2026-05-01T00:00:00Z") == (
        [("3.5", "south", "residential", 1), ("2.5", "north", "day", 1), ("2.1", "north", "evening", 1)],
        [
            ("C-2", "3.5", "south", "residential", 51),
            ("C-3", "2.5", "north", "day", 29),
            ("C-1", "2.1", "north", "evening", 88),
        ],
    )
    # 2026-08-01T00:00Z: C-1 now at 1 (since 06-01 09:00 -> 61 d - 9 h -> 60), C-2 still 3.5
    # (since 03-10 12:00 -> 144 d - 12 h -> 143), C-3 discharged, C-5 admitted only on 08-15.
    assert census(wired, "2026-08-01T00:00:00Z") == (
        [("3.5", "south", "residential", 1), ("1", "north", "evening", 1)],
        [("C-2", "3.5", "south", "residential", 143), ("C-1", "1", "north", "evening", 60)],
    )
    # Before anyone was admitted: empty.
    assert census(wired, "2026-01-31T00:00:00Z") == ([], [])


def test_census_interval_starts_inclusive_and_ends_exclusive(wired):
    build_clinic(wired)
    wired.runner.catch_up()
    # C-3 was discharged at 2026-07-01T08:00Z: still counted a second before, gone at that instant.
    assert ("2.5", "north", "day", 1) in counts(wired, "2026-07-01T07:59:59Z")
    assert all(level != "2.5" for level, *_ in counts(wired, "2026-07-01T08:00:00Z"))
    # C-4 was admitted at 20:00+02:00 = 18:00Z on 09-01: not there at 17:59:59Z, there at 18:00Z (0 days),
    # the same instant written in another offset gives the same census.
    assert "C-4" not in [c[0] for c in census(wired, "2026-09-01T17:59:59Z")[1]]
    assert ("C-4", "2.1", "north", "evening", 0) in census(wired, "2026-09-01T18:00:00Z")[1]
    assert census(wired, "2026-09-01T20:00:00+02:00") == census(wired, "2026-09-01T18:00:00Z")
    # C-1's step down at 06-01 09:00Z: the old level up to, the new level from that instant.
    assert ("C-1", "2.1", "north", "evening", 119) in census(wired, "2026-06-01T08:59:59Z")[1]
    assert ("C-1", "1", "north", "evening", 0) in census(wired, "2026-06-01T09:00:00Z")[1]


def test_late_discharge_leaves_the_census_from_its_clinical_time(wired):
    register(wired, "L-1", "2026-09-20T10:00:00Z", "west")
    register(wired, "L-2", "2026-09-20T10:00:00Z", "west")
    admit(wired, "L-1", "2026-10-01T09:00:00Z", "2.1", "west", "day")
    admit(wired, "L-2", "2026-10-05T09:00:00Z", "2.1", "west", "day")
    wired.runner.catch_up()
    assert counts(wired, "2026-11-19T12:00:00Z") == [("2.1", "west", "day", 2)]
    assert counts(wired) == [("2.1", "west", "day", 2)]

    # Recorded today, happened on 2026-11-14 09:00Z (10 days ago).
    before = datetime.now(tz=UTC)
    late = discharge(wired, "L-1", "2026-11-14T09:00:00Z", reason="left_against_advice")
    wired.runner.catch_up()

    assert census(wired)[1][0][0] == "L-2"
    assert counts(wired) == [("2.1", "west", "day", 1)]
    # 5 days ago: L-1 already gone.
    assert census(wired, "2026-11-19T12:00:00Z") == (
        [("2.1", "west", "day", 1)], [("L-2", "2.1", "west", "day", 45)],  # 10-05 09:00 -> 11-19 12:00: 45 d 3 h
    )
    # 12 days ago: still there. L-1 10-01 09:00 -> 11-12 12:00: 42 d 3 h; L-2 from 10-05: 38 d 3 h.
    assert census(wired, "2026-11-12T12:00:00Z") == (
        [("2.1", "west", "day", 2)],
        [("L-1", "2.1", "west", "day", 42), ("L-2", "2.1", "west", "day", 38)],
    )
    assert counts(wired, "2026-11-14T08:59:59Z") == [("2.1", "west", "day", 2)]
    assert counts(wired, "2026-11-14T09:00:00Z") == [("2.1", "west", "day", 1)]
    # The audit trail shows both times: clinical 10 days ago, recorded now.
    with wired.views.transaction() as cursor:
        entry = trail_query(cursor, jid("L-1"))[-1]
    assert (entry.version, entry.event_type) == (late.events[0].version, "Discharged")
    assert entry.occurred_at == t("2026-11-14T09:00:00Z")
    assert before <= entry.recorded_at <= datetime.now(tz=UTC)


def test_correcting_an_admissions_site_and_track_moves_the_client(wired):
    register(wired, "K-1", "2026-09-25T10:00:00Z", "north")
    register(wired, "K-2", "2026-09-25T10:00:00Z", "north")
    admit(wired, "K-1", "2026-10-01T09:00:00Z", "2.1", "north", "day")  # v2
    admit(wired, "K-2", "2026-10-02T09:00:00Z", "2.1", "north", "day")
    wired.runner.catch_up()
    assert counts(wired) == [("2.1", "north", "day", 2)]

    site_fix = correct(wired, "K-1", 2, "site", "south", "2026-11-20T10:00:00Z", reason="wrong site picked")  # v3
    track_fix = correct(wired, "K-1", 2, "track", "evening", "2026-11-20T10:05:00Z", reason="evening group")  # v4
    wired.runner.catch_up()

    # K-1 is now counted at south/evening, now and on every date of the stay (the admission was wrong from the start).
    assert counts(wired) == [("2.1", "north", "day", 1), ("2.1", "south", "evening", 1)]
    # 2026-10-15T00:00Z: K-1 since 10-01 09:00 -> 13 d 15 h; K-2 since 10-02 09:00 -> 12 d 15 h.
    assert census(wired, "2026-10-15T00:00:00Z") == (
        [("2.1", "north", "day", 1), ("2.1", "south", "evening", 1)],
        [("K-2", "2.1", "north", "day", 12), ("K-1", "2.1", "south", "evening", 13)],
    )
    assert counts(wired, site="north") == [("2.1", "north", "day", 1)]

    # The audit trail keeps the admission as recorded, with both corrections beside it.
    with wired.views.transaction() as cursor:
        trail = trail_query(cursor, jid("K-1"))
    assert [e.event_type for e in trail] == ["ClientRegistered", "AdmittedToLevel", "EntryCorrected", "EntryCorrected"]
    admission = trail[1]
    assert (admission.details["site"], admission.details["track"]) == ("north", "day")
    assert [(c.version, c.details["field"], c.details["previous_value"], c.details["corrected_value"], c.details["reason"])
            for c in admission.corrections] == [
        (3, "site", "north", "south", "wrong site picked"),
        (4, "track", "day", "evening", "evening group"),
    ]
    assert [c.command_id for c in admission.corrections] == [site_fix.command_id, track_fix.command_id]
    assert trail[0].corrections == []


def test_correcting_a_steps_time_moves_the_interval_boundary(wired):
    register(wired, "S-1", "2026-08-20T10:00:00Z", "north")
    admit(wired, "S-1", "2026-09-01T09:00:00Z", "2.5", "north", "day")  # v2
    step(wired, "S-1", "2026-10-01T09:00:00Z", "step_down", "2.1", "stable")  # v3, stays on the day track
    wired.runner.catch_up()
    # 10-10 12:00Z: IOP since 10-01 09:00 -> 9 d 3 h.
    assert census(wired, "2026-10-10T12:00:00Z")[1] == [("S-1", "2.1", "north", "day", 9)]

    # The step really happened on 10-20 09:00Z.
    correct(wired, "S-1", 3, "occurred_at", "2026-10-20T09:00:00+00:00", "2026-11-21T09:00:00Z")  # v4
    wired.runner.catch_up()
    # 10-10 12:00Z: still in PHP since 09-01 09:00 -> 30 + 9 d 3 h -> 39 days.
    assert census(wired, "2026-10-10T12:00:00Z")[1] == [("S-1", "2.5", "north", "day", 39)]
    assert census(wired, "2026-10-20T08:59:59Z")[1] == [("S-1", "2.5", "north", "day", 48)]
    assert census(wired, "2026-10-20T09:00:00Z")[1] == [("S-1", "2.1", "north", "day", 0)]
    assert census(wired, "2026-10-25T12:00:00Z")[1] == [("S-1", "2.1", "north", "day", 5)]  # 5 d 3 h
    assert counts(wired) == [("2.1", "north", "day", 1)]
    with wired.views.transaction() as cursor:
        cursor.execute(
            "SELECT opened_by, closed_by, level, started_at, ended_at FROM census_intervals WHERE journey_id = ?"
            " ORDER BY opened_by", (str(jid("S-1")),),
        )
        assert cursor.fetchall() == [
            (2, 3, "2.5", utc_text("2026-09-01T09:00:00Z"), utc_text("2026-10-20T09:00:00Z")),
            (3, None, "2.1", utc_text("2026-10-20T09:00:00Z"), None),
        ]

    # A corrected time may not cross the change of level before it: refused, the census is unchanged.
    refused = wired.service.execute(parse_command(line(
        "S-1:bad-fix", "correct", "S-1", "2026-11-21T10:00:00Z", corrects_version=3, field="occurred_at",
        value="2026-08-01T09:00:00+00:00", reason="typo")), CLINICIAN)
    assert isinstance(refused.error, errors.OutOfOrder)
    assert wired.runner.catch_up() == 0
    assert census(wired, "2026-10-10T12:00:00Z")[1] == [("S-1", "2.5", "north", "day", 39)]


def test_correcting_a_discharge_time_moves_the_end_of_the_stay(wired):
    register(wired, "E-1", "2026-08-20T10:00:00Z", "west")
    admit(wired, "E-1", "2026-09-01T09:00:00Z", "3.1", "west")  # v2, residential
    discharge(wired, "E-1", "2026-10-01T09:00:00Z")  # v3
    wired.runner.catch_up()
    assert counts(wired, "2026-10-05T00:00:00Z") == []
    correct(wired, "E-1", 3, "occurred_at", "2026-10-06T09:00:00+00:00", "2026-11-21T09:00:00Z")
    wired.runner.catch_up()
    # 10-05 00:00Z: still in 3.1 since 09-01 09:00 -> 33 d 15 h; gone from the corrected discharge on.
    assert census(wired, "2026-10-05T00:00:00Z")[1] == [("E-1", "3.1", "west", "residential", 33)]
    assert census(wired, "2026-10-06T08:59:59Z")[0] == [("3.1", "west", "residential", 1)]
    assert counts(wired, "2026-10-06T09:00:00Z") == []
    assert counts(wired) == []


def test_alumni_enrolment_is_counted_at_the_alumni_level(wired):
    register(wired, "A-1", "2026-02-20T10:00:00Z", "east")
    register(wired, "A-2", "2026-02-20T10:00:00Z", "east")
    admit(wired, "A-1", "2026-03-01T09:00:00Z", "2.1", "east", "day")
    admit(wired, "A-2", "2026-04-01T09:00:00Z", "2.1", "east", "day")
    discharge(wired, "A-1", "2026-05-01T10:00:00Z")
    alumni(wired, "A-1", "2026-05-02T10:00:00Z", program="east alumni")
    wired.runner.catch_up()

    # Alumni sort after every ASAM level; the alumni "track" is alumni and the site the client's home site.
    assert counts(wired) == [("2.1", "east", "day", 1), ("alumni", "east", "alumni", 1)]
    assert counts(wired, level="alumni") == [("alumni", "east", "alumni", 1)]
    # Between discharge and enrolment A-1 is in no census line.
    assert census(wired, "2026-05-01T12:00:00Z")[1] == [("A-2", "2.1", "east", "day", 30)]  # 30 d 3 h
    # 06-01T00:00Z: alumni since 05-02 10:00 -> 29 d 14 h; A-2 since 04-01 09:00 -> 60 d 15 h.
    assert census(wired, "2026-06-01T00:00:00Z") == (
        [("2.1", "east", "day", 1), ("alumni", "east", "alumni", 1)],
        [("A-2", "2.1", "east", "day", 60), ("A-1", "alumni", "east", "alumni", 29)],
    )


def test_readmission_after_alumni_closes_the_alumni_interval(wired):
    register(wired, "A-1", "2026-02-20T10:00:00Z", "east")
    admit(wired, "A-1", "2026-03-01T09:00:00Z", "2.1", "east", "day")  # v2
    discharge(wired, "A-1", "2026-05-01T10:00:00Z")  # v3
    alumni(wired, "A-1", "2026-05-02T10:00:00Z")  # v4
    wired.runner.catch_up()
    readmission = admit(wired, "A-1", "2026-09-01T09:00:00Z", "2.5", "east", "day")  # v5
    assert readmission.events[0].version == 5
    wired.runner.catch_up()

    assert counts(wired) == [("2.5", "east", "day", 1)]
    assert counts(wired, level="alumni") == []
    # 08-31 12:00Z: alumni since 05-02 10:00 -> 121 d 2 h.
    assert census(wired, "2026-08-31T12:00:00Z")[1] == [("A-1", "alumni", "east", "alumni", 121)]
    assert census(wired, "2026-09-01T08:59:59Z")[0] == [("alumni", "east", "alumni", 1)]
    assert census(wired, "2026-09-01T09:00:00Z")[1] == [("A-1", "2.5", "east", "day", 0)]
    with wired.views.transaction() as cursor:
        cursor.execute(
            "SELECT opened_by, closed_by, level, track, started_at, ended_at FROM census_intervals"
            " WHERE journey_id = ? ORDER BY opened_by", (str(jid("A-1")),),
        )
        assert cursor.fetchall() == [
            (2, 3, "2.1", "day", utc_text("2026-03-01T09:00:00Z"), utc_text("2026-05-01T10:00:00Z")),
            (4, 5, "alumni", "alumni", utc_text("2026-05-02T10:00:00Z"), utc_text("2026-09-01T09:00:00Z")),
            (5, None, "2.5", "day", utc_text("2026-09-01T09:00:00Z"), None),
        ]


def test_readmission_through_detox_also_closes_the_alumni_interval(wired):
    register(wired, "A-3", "2026-02-20T10:00:00Z", "east")
    admit(wired, "A-3", "2026-03-01T09:00:00Z", "1", "east", "evening")
    discharge(wired, "A-3", "2026-05-01T10:00:00Z")
    alumni(wired, "A-3", "2026-05-02T10:00:00Z")
    send(wired, line("A-3:detox", "start_detox", "A-3", "2026-10-01T22:00:00Z", level="3.2-WM", site="west"))
    wired.runner.catch_up()
    assert counts(wired) == [("3.2-WM", "west", "residential", 1)]
    assert counts(wired, "2026-10-01T21:59:59Z") == [("alumni", "east", "alumni", 1)]


def test_alumni_are_counted_at_the_corrected_home_site(wired):
    register(wired, "R-1", "2026-02-20T10:00:00Z", "nroth")  # v1, mistyped
    admit(wired, "R-1", "2026-03-01T09:00:00Z", "2.1", "north", "day")
    correct(wired, "R-1", 1, "site", "north", "2026-03-02T09:00:00Z")
    discharge(wired, "R-1", "2026-05-01T10:00:00Z")
    alumni(wired, "R-1", "2026-05-02T10:00:00Z")
    wired.runner.catch_up()
    assert counts(wired) == [("alumni", "north", "alumni", 1)]
