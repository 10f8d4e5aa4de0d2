"""The projections' faster paths write the same text as the plain ones, computed here in the same run:
times (`utc` against strftime) and the audit trail's rows (details against `json.dumps` of
`domain.events.payload`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import events as ev
from projections import audit_trail
from projections.base import utc
from tests.projections.builders import build_mixed_history, table_rows

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
ZONES = st.one_of(
    st.just(UTC),
    st.builds(lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(min_value=-14 * 60, max_value=14 * 60)),
)


@settings(max_examples=500, deadline=None, database=None, derandomize=True)
@given(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=ZONES))  # noqa: DTZ001
def test_utc_gives_the_text_strftime_gives(moment):
    assert utc(moment) == moment.astimezone(UTC).strftime(FORMAT)


def test_utc_at_the_edges():
    for moment in (
        datetime(2026, 11, 24, 12, 0, tzinfo=UTC),  # no microseconds: isoformat would leave them out untold
        datetime(2026, 11, 24, 13, 30, 0, 5, tzinfo=timezone(timedelta(hours=1, minutes=30))),
        datetime(999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # strftime's %Y: no padding before 1000
        datetime(1000, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ):
        assert utc(moment) == moment.astimezone(UTC).strftime(FORMAT)


def test_utc_of_one_instant_in_two_zones_is_one_text_whichever_is_asked_first():
    """`utc` remembers the texts it gave: by instant, so a zone asked first never colours the other's text."""
    for first_zone, second_zone in ((timezone(timedelta(hours=-5)), UTC), (UTC, timezone(timedelta(hours=9, minutes=30)))):
        moment = datetime(2026, 11, 24, 12, 0, 0, 7, tzinfo=UTC) + timedelta(days=first_zone is UTC)
        first, second = moment.astimezone(first_zone), moment.astimezone(second_zone)
        assert utc(first) == utc(second) == utc(moment) == moment.strftime(FORMAT)
        assert utc(first).endswith("12:00:00.000007Z")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, database=None, derandomize=True)
@given(st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=8))
def test_details_are_written_as_json_dumps_with_sorted_keys_writes_them(details):
    """The audit trail's details: any text (escaped to ASCII), any float (nan and infinity as json writes them), nested."""
    assert audit_trail._write_details(details) == json.dumps(details, sort_keys=True)


def reference_row(event, position: int) -> tuple:
    """The audit row as written before the fast path: `payload`, the envelope fields popped, json.dumps."""
    facts = ev.payload(event)
    actor = facts.pop("recorded_by")
    facts.pop("occurred_at")
    command_id = facts.pop("command_id")
    return (
        str(event.originator_id), event.originator_version, position, ev.event_name(event),
        event.occurred_at.astimezone(UTC).strftime(FORMAT), event.timestamp.astimezone(UTC).strftime(FORMAT),
        actor["id"], actor["role"], command_id, json.dumps(facts, sort_keys=True),
        facts.get("corrects_version", facts.get("voided_version")),
    )


def test_audit_rows_are_those_of_the_plain_path(wired):
    build_mixed_history(wired)
    wired.runner.rebuild(["audit_trail"])
    notifications = wired.app.recorder.select_notifications(start=None, limit=10_000)
    expected = sorted(reference_row(wired.app.mapper.to_domain_event(n), n.id) for n in notifications)
    rows = sorted(table_rows(wired, "audit_entries"))
    assert len(rows) == len(notifications) > 30
    assert rows == expected
    assert any(row[10] is not None for row in rows)  # corrections among them
