"""One parser of the moments people type, one way to show a time to a person, one JSON shape
(services/moments.py). The clock is always given: nothing here reads the day the tests run."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.moments import MomentError, heading, json_moment, parse_moment, shown

JSON_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?\+00:00$")
CLOCK = datetime(2025, 4, 1, 2, 0, tzinfo=UTC)  # 1 April 02:00 UTC: still 31 March west of Greenwich


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("UTC", utc(2025, 3, 9, 23, 59, 59, 999999)),
        ("America/New_York", utc(2025, 3, 10, 3, 59, 59, 999999)),  # EDT from 9 March: UTC-4
        ("Asia/Tokyo", utc(2025, 3, 9, 14, 59, 59, 999999)),
        ("Asia/Kolkata", utc(2025, 3, 9, 18, 29, 59, 999999)),
    ],
)
def test_a_date_means_the_end_of_that_day_in_the_configured_zone(zone, expected):
    assert parse_moment("2025-03-09", zone) == expected


def test_a_date_at_the_start_of_a_period_means_the_start_of_that_day():
    assert parse_moment("2025-03-09", "America/New_York", end_of_day=False) == utc(2025, 3, 9, 5, 0)  # still EST at midnight


def test_a_time_without_an_offset_is_in_the_configured_zone_and_one_with_an_offset_keeps_it():
    assert parse_moment("2025-03-10T17:00", "Europe/Berlin") == utc(2025, 3, 10, 16, 0)
    assert parse_moment("2025-03-10T17:00:00-05:00", "Europe/Berlin") == utc(2025, 3, 10, 22, 0)
    assert parse_moment("2025-03-10T17:00:00Z", "Asia/Tokyo") == utc(2025, 3, 10, 17, 0)


def test_every_moment_is_returned_in_utc():
    assert parse_moment("2025-03-10T17:00", "Asia/Tokyo").tzinfo is UTC


@pytest.mark.parametrize(
    ("zone", "today", "tomorrow"),
    [
        ("UTC", "2025-04-01", "2025-04-02"),
        ("America/Los_Angeles", "2025-03-31", "2025-04-01"),  # 19:00 on 31 March
        ("America/New_York", "2025-03-31", "2025-04-01"),  # 22:00 on 31 March
        ("Pacific/Pago_Pago", "2025-03-31", "2025-04-01"),  # UTC-11: 15:00 on 31 March
        ("Asia/Tokyo", "2025-04-01", "2025-04-02"),  # 11:00 on 1 April
        ("Pacific/Kiritimati", "2025-04-01", "2025-04-02"),  # UTC+14: 16:00 on 1 April
    ],
)
def test_today_in_any_zone_means_now_and_tomorrow_is_refused(zone, today, tomorrow):
    assert parse_moment(today, zone, now=CLOCK) == CLOCK
    assert parse_moment("today", zone, now=CLOCK) == CLOCK
    with pytest.raises(MomentError, match=rf"--on {tomorrow} is in the future \(it is .* {re.escape(zone)} now\)"):
        parse_moment(tomorrow, zone, now=CLOCK, name="--on")


def test_yesterday_is_the_end_of_yesterday_even_given_the_clock():
    assert parse_moment("2025-03-30", "UTC", now=CLOCK) == utc(2025, 3, 30, 23, 59, 59, 999999)


def test_a_time_after_the_clock_is_refused_and_one_before_it_is_kept():
    assert parse_moment("2025-04-01T01:59", "UTC", now=CLOCK) == utc(2025, 4, 1, 1, 59)
    with pytest.raises(MomentError, match="is in the future"):
        parse_moment("2025-04-01T02:01", "UTC", now=CLOCK)


def test_without_the_clock_a_future_moment_is_read_as_it_is():
    """The end of a period (`matrix --until`) may be after today."""
    assert parse_moment("2099-12-31", "UTC") == utc(2099, 12, 31, 23, 59, 59, 999999)


def test_now_is_the_clocks_reading_and_today_at_the_start_of_a_period_is_midnight():
    assert parse_moment("now", "Asia/Tokyo", now=CLOCK) == CLOCK
    assert parse_moment("today", "Asia/Tokyo", end_of_day=False, now=CLOCK) == utc(2025, 3, 31, 15, 0)


@pytest.mark.parametrize("text", ["last tuesday", "2025-13-01", "31/03/2025", "", "[/x]"])
def test_what_is_not_a_date_or_time_is_said_with_the_name_of_the_option(text):
    with pytest.raises(MomentError, match=rf"^--since {re.escape(repr(text))} is not a date \(YYYY-MM-DD\) or an ISO 8601 time$"):
        parse_moment(text, "UTC", name="--since")


def test_an_unknown_zone_is_said():
    with pytest.raises(MomentError, match="unknown time zone 'Mars/Olympus'"):
        parse_moment("2025-03-09", "Mars/Olympus")


# -- shown to people ------------------------------------------------------------------------------


def test_a_time_is_shown_in_the_configured_zone_and_labelled_with_it():
    moment = utc(2025, 3, 10, 3, 0, 30)

    assert shown(moment, "America/New_York") == "2025-03-09 23:00 America/New_York"
    assert shown(moment, "UTC") == "2025-03-10 03:00 UTC"
    assert shown(moment, "Asia/Kolkata", seconds=True) == "2025-03-10 08:30:30 Asia/Kolkata"
    assert shown(moment, "America/New_York", label=False) == "2025-03-09 23:00"
    assert heading("occurred", "America/New_York") == "occurred (America/New_York)"


def test_a_time_is_shown_in_the_zone_whatever_offset_it_was_recorded_with():
    recorded_in_new_york = datetime(2025, 3, 12, 9, 0, tzinfo=timezone(timedelta(hours=-4)))

    assert shown(recorded_in_new_york, "UTC") == "2025-03-12 13:00 UTC"
    assert shown("2025-03-12T09:00:00-04:00", "Europe/Berlin") == "2025-03-12 14:00 Europe/Berlin"


# -- in JSON --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (utc(2025, 3, 10, 14, 0), "2025-03-10T14:00:00+00:00"),
        (datetime(2025, 3, 10, 9, 0, tzinfo=timezone(timedelta(hours=-5))), "2025-03-10T14:00:00+00:00"),
        (utc(2025, 3, 31, 23, 59, 59, 999999), "2025-03-31T23:59:59.999999+00:00"),
        (datetime(2025, 3, 10, 14, 0), "2025-03-10T14:00:00+00:00"),  # noqa: DTZ001 - naive: taken as UTC
    ],
)
def test_json_carries_iso_8601_in_utc_with_the_offset_written_out(moment, expected):
    assert json_moment(moment) == expected
    assert JSON_SHAPE.match(json_moment(moment))
