"""The synthetic cohort: every line parses, the domain accepts every command in order, and the mix
looks like the cohort table of shared/notes/domain.md section 7."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.errors import CareRuleViolation
from domain.journey import ClientJourney
from domain.values import Actor, Context
from services.commands import Register, parse_command
from services.demo import cohort_key, cohort_lines, cohort_window, describe, generate_cohort

START = datetime(2025, 11, 24, tzinfo=UTC)
END = datetime(2026, 11, 24, tzinfo=UTC)
YEAR_2025 = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC))


def at(command: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(command["occurred_at"])


@pytest.fixture(scope="module")
def small() -> list[dict[str, Any]]:
    return generate_cohort(60, 11, start=START, end=END)


@pytest.fixture(scope="module")
def cohort() -> list[dict[str, Any]]:
    return generate_cohort(300, 7, start=START, end=END)


def replay(commands: list[dict[str, Any]], now: datetime) -> dict[str, ClientJourney]:
    """Apply each command to in-memory journeys as the service would; fail on any refusal."""
    journeys: dict[str, ClientJourney] = {}
    for data in commands:
        command = parse_command(data)
        ctx = Context(Actor("demo", "system"), now=now, command_id=command.command_id())
        try:
            if isinstance(command, Register):
                assert command.client not in journeys, f"registered twice: {data}"
                journey = journeys[command.client] = command.create(ctx)
                assert journey.version == 1
                assert len(journey.pending_events) == 1
                continue
            journey = journeys[command.client]
            version, pending = journey.version, len(journey.pending_events)
            command.apply(journey, ctx)
        except CareRuleViolation as violation:
            pytest.fail(f"refused {data}: {violation}")
        assert journey.version == version + 1, f"recorded nothing: {data}"
        assert len(journey.pending_events) == pending + 1
        assert data["id"].endswith(f"-{journey.version}")  # the id's number is the journey version
    return journeys


def test_every_line_parses_and_round_trips_as_json(small: list[dict[str, Any]]) -> None:
    lines = list(cohort_lines(60, 11, start=START, end=END))
    assert [json.loads(line) for line in lines] == small
    for data in small:
        assert parse_command(data).command_id() == data["id"]
    assert len({data["id"] for data in small}) == len(small)


@pytest.mark.parametrize("days", [365, 100])
def test_the_domain_accepts_every_command_in_order(days: int) -> None:
    end = START + timedelta(days=days)
    commands = generate_cohort(60, 3, start=START, end=end)
    journeys = replay(commands, end)
    assert len(journeys) == 60

    versions = {ref: journey.version for ref, journey in journeys.items()}
    for data in commands:  # a second import records nothing: every command carries its id
        command = parse_command(data)
        if not isinstance(command, Register):
            command.apply(journeys[command.client], Context(Actor("demo", "system"), end, command.command_id()))
    assert {ref: journey.version for ref, journey in journeys.items()} == versions


def test_same_seed_same_cohort_other_seed_other_cohort(small: list[dict[str, Any]]) -> None:
    assert generate_cohort(60, 11, start=START, end=END) == small
    assert generate_cohort(60, 12, start=START, end=END) != small


@pytest.mark.parametrize("today", ["2026-01-01T00:00:01", "2026-11-28T12:00:00", "2026-11-30T23:59:59", "2031-06-15T08:00:00"])
def test_the_default_window_is_the_year_2025_whatever_the_day(today: str) -> None:
    assert cohort_window(None, None, datetime.fromisoformat(f"{today}+00:00")) == YEAR_2025


def test_a_window_asked_for_by_days() -> None:
    now = datetime(2026, 11, 30, 14, 30, 15, 123456, tzinfo=UTC)
    day = datetime.fromisoformat
    assert cohort_window("2025-03-01", "2025-03-31", now) == (day("2025-03-01T00:00:00+00:00"), day("2025-03-31T23:59:59+00:00"))
    assert cohort_window(None, "2025-06-30", now) == (day("2024-07-01T00:00:00+00:00"), day("2025-06-30T23:59:59+00:00"))
    assert cohort_window("2024-01-01", None, now) == (day("2024-01-01T00:00:00+00:00"), day("2024-12-30T23:59:59+00:00"))
    # a window that reaches today ends at the clock reading: nothing in the future is generated
    assert cohort_window(None, "today", now) == (day("2025-12-01T00:00:00+00:00"), day("2026-11-30T14:30:15+00:00"))
    assert cohort_window("2026-06-01", None, now) == (day("2026-06-01T00:00:00+00:00"), day("2026-11-30T14:30:15+00:00"))
    assert cohort_window(None, "2026-11-30", now) == cohort_window(None, "today", now)


@pytest.mark.parametrize(("start", "end", "problem"), [
    (None, "2026-12-01", "--end 2026-12-01 is after today (2026-11-30): the demo records only what has happened"),
    ("2025-07-01", "2025-06-30", "--start 2025-07-01 is after the end of the window (2025-06-30)"),
    ("2025-02-30", None, "--start '2025-02-30' is not a date (YYYY-MM-DD)"),
    (None, "yesterday", "--end 'yesterday' is not a date (YYYY-MM-DD)"),
])
def test_a_window_that_cannot_be_generated_is_refused(start: str | None, end: str | None, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        cohort_window(start, end, datetime(2026, 11, 30, 12, tzinfo=UTC))


def test_command_ids_name_the_cohort_so_two_cohorts_share_none() -> None:
    cohorts = {
        "this": (20, 11, *YEAR_2025), "seed": (20, 12, *YEAR_2025), "size": (21, 11, *YEAR_2025),
        "window": (20, 11, YEAR_2025[0], YEAR_2025[1] - timedelta(days=1)),
    }
    ids = {name: {data["id"] for data in generate_cohort(clients, seed, start=start, end=end)}
           for name, (clients, seed, start, end) in cohorts.items()}
    assert all(ids[name].isdisjoint(ids["this"]) for name in ("seed", "size", "window"))
    assert all(i.startswith("demo-11-20-20250101-20251231T235959-C-") for i in ids["this"])
    assert describe(cohort_key(20, 11, *YEAR_2025)) == "seed 11, 20 clients, 2025-01-01 00:00 to 2025-12-31 23:59 UTC"


def test_nothing_after_end_sorted_and_each_clients_order_kept(small: list[dict[str, Any]]) -> None:
    times = [at(data) for data in small]
    assert all(t.utcoffset() == timedelta(0) for t in times)
    assert times == sorted(times)
    assert times[0] >= START
    assert times[-1] <= END
    numbers: dict[str, list[int]] = defaultdict(list)
    for data in small:
        numbers[data["client"]].append(int(data["id"].rsplit("-", 1)[1]))
    assert all(seen == list(range(1, len(seen) + 1)) for seen in numbers.values())
    assert {data["client"] for data in small} == {f"C-{n:05d}" for n in range(1, 61)}


def test_short_horizon_cuts_journeys_at_end() -> None:
    end = START + timedelta(days=30)
    commands = generate_cohort(40, 5, start=START, end=end)
    assert max(at(data) for data in commands) <= end
    assert any(data["command"] == "attend_session" for data in commands)


def iop_entries(commands: list[dict[str, Any]]) -> list[tuple[str, datetime, str]]:
    """(client, time, track) of each entry into IOP, by admission or by a step."""
    return [
        (data["client"], at(data), data["track"])
        for data in commands
        if (data["command"] == "admit" and data["level"] == "2.1")
        or (data["command"] in ("step_up", "step_down") and data["to_level"] == "2.1")
    ]


def test_iop_has_three_groups_a_week_in_the_first_weeks(cohort: list[dict[str, Any]]) -> None:
    weeks = 3
    by_client: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for data in cohort:
        by_client[data["client"]].append(data)
    counts = []
    for client, since, _ in iop_entries(cohort):
        until = since + timedelta(weeks=weeks)
        later = [data for data in by_client[client] if since < at(data) < until]
        if until > END or any(d["command"] in ("step_up", "step_down", "discharge") for d in later):
            continue  # stays shorter than three weeks
        sessions = [d for d in later if d["command"] in ("attend_session", "miss_session") and d["kind"] == "group"]
        assert all(d["minutes"] == 180 and at(d).hour in (9, 18) and at(d).weekday() in (0, 2, 4) for d in sessions)
        counts.append(len(sessions) / weeks)
    assert len(counts) > 50
    assert 2.6 <= sum(counts) / len(counts) <= 3.1


def test_the_mix_is_realistic(cohort: list[dict[str, Any]]) -> None:
    kinds = Counter(data["command"] for data in cohort)
    assert 35 <= len(cohort) / 300 <= 80
    for kind in ("step_up", "step_down", "enrol_alumni", "attend_alumni_activity", "correct", "start_detox"):
        assert kinds[kind] > 0, kind
    reasons = Counter(data["reason"] for data in cohort if data["command"] == "discharge")
    assert reasons["completed"] > 0
    assert reasons["left_against_advice"] > 0

    tracks = Counter(track for _, _, track in iop_entries(cohort))
    assert 0.45 <= tracks["day"] / (tracks["day"] + tracks["evening"]) <= 0.75

    attended = kinds["attend_session"] / (kinds["attend_session"] + kinds["miss_session"])
    assert 0.75 <= attended <= 0.9


def test_results_come_late_and_mat_analytes_are_expected(cohort: list[dict[str, Any]]) -> None:
    collected = {
        (d["client"], d["specimen_id"]): at(d) for d in cohort if d["command"] == "collect_drug_test"
    }
    results = [d for d in cohort if d["command"] == "result_drug_test"]
    lags = [at(d) - collected[d["client"], d["specimen_id"]] for d in results]
    assert min(lags) > timedelta(0)
    assert any(lag >= timedelta(days=1) for lag in lags)
    shares = Counter(d["result"] for d in results)
    assert 0.1 <= shares["positive"] / len(results) <= 0.3
    on_mat = [d for d in results if d["expected_medications"]]
    assert on_mat
    for d in results:
        positives = {name for name, value in d["substances"].items() if value == "positive"}
        if d["result"] == "negative":
            assert positives <= set(d["expected_medications"])
