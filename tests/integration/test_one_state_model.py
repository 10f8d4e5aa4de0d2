"""One state model: the replay, the census as recorded and the journey that takes commands agree,
because the replay folds the recorded events through the journey's own code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import takewhile

import pytest

from domain.levels import ALUMNI
from domain.record import Status
from domain.replay import fold, replay
from services.demo import cohort_lines
from services.importer import import_lines
from tests.projections.builders import CLINICIAN, line, send

START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2025, 12, 31, tzinfo=UTC)
MOMENTS = [START + timedelta(days=d) for d in (20, 75, 140, 210, 300, 364)]


@pytest.fixture
def cohort(wired):
    report = import_lines(wired.service, list(cohort_lines(30, 11, start=START, end=END)), CLINICIAN)
    assert report.ok, report.errors[:3]
    # a history with a correction, a void and a change of track beside the demo's
    send(
        wired,
        line("X:reg", "register", "X-1", "2025-02-01T09:00:00+00:00", site="north"),
        line("X:wm", "start_detox", "X-1", "2025-02-02T09:00:00+00:00", level="1-WM", site="north"),
        line("X:done", "complete_detox", "X-1", "2025-02-05T09:00:00+00:00"),
        line("X:iop", "step_down", "X-1", "2025-02-06T09:00:00+00:00", to_level="2.1", reason="detox done", track="day"),
        line("X:eve", "change_track", "X-1", "2025-03-10T09:00:00+00:00", track="evening", reason="job"),
        line("X:fix", "correct", "X-1", "2025-03-11T09:00:00+00:00", corrects_version=4, field="site", value="south", reason="typo"),
        line("X:dc", "discharge", "X-1", "2025-06-01T09:00:00+00:00", reason="completed"),
        line("X:void", "void", "X-1", "2025-06-02T09:00:00+00:00", versions=[7], reason="discharged the wrong client"),
    )
    wired.runner.catch_up()
    return wired


def journey_ids(wired):
    with wired.views.transaction() as cursor:
        cursor.execute("SELECT journey_id FROM census_clients ORDER BY journey_id")
        return [row[0] for row in cursor.fetchall()]


def test_the_replayed_state_equals_the_journey_after_the_events_up_to_that_moment(cohort):
    from uuid import UUID

    checked = 0
    for journey_id in journey_ids(cohort):
        events = list(cohort.app.events.get(UUID(journey_id)))
        assert [e.originator_version for e in events] == list(range(1, len(events) + 1))
        for moment in MOMENTS:
            prefix = list(takewhile(lambda e, m=moment: e.occurred_at <= m, events))
            if len(prefix) < len([e for e in events if e.occurred_at <= moment]):
                continue  # a late entry (recorded after a later one): no prefix of the log is "up to that moment"
            replayed = replay(events, as_of=moment).state
            journey = fold(prefix)
            if journey is None:
                assert replayed.status == "not registered"
                continue
            expected_level = ALUMNI if journey.status is Status.ALUMNI else journey.level and journey.level.code
            expected_track = ALUMNI if journey.status is Status.ALUMNI else journey.track and journey.track.value
            assert (replayed.status, replayed.level, replayed.track, replayed.episodes) == (
                journey.status.value, expected_level, expected_track, journey.episodes,
            ), (journey.client_ref, moment)
            if journey.status is not Status.ALUMNI:
                assert (replayed.site, replayed.level_since, replayed.admitted_at) == (
                    journey.site, journey.level_since, journey.admitted_at,
                ), (journey.client_ref, moment)
            checked += 1
    assert checked > 50


def test_the_census_as_recorded_now_equals_the_census_on_each_day(cohort):
    reads = cohort.reads
    now = datetime.now(tz=UTC) + timedelta(seconds=1)  # after everything recorded
    counted = 0
    for moment in [*MOMENTS, datetime(2025, 3, 20, tzinfo=UTC), datetime(2025, 6, 5, tzinfo=UTC)]:
        projected = [(c.level, c.site, c.track, c.clients) for c in reads.census(moment).lines]
        replayed = [(c.level, c.site, c.track, c.clients) for c in reads.census_as_recorded(moment, now).lines]
        assert projected == replayed, moment
        counted += sum(line[3] for line in projected)
    assert counted > 30


def test_a_client_in_ambulatory_detox_is_on_the_day_track_both_ways(cohort):
    reads = cohort.reads
    moment = datetime(2025, 2, 3, tzinfo=UTC)
    now = datetime.now(tz=UTC) + timedelta(seconds=1)
    projected = {(c.level, c.track) for c in reads.census(moment).lines}
    replayed = {(c.level, c.track) for c in reads.census_as_recorded(moment, now).lines}
    assert ("1-WM", "day") in projected
    assert ("1-WM", "day") in replayed
