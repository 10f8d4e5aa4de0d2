"""The synthetic cohort: every line parses, the domain accepts every command in order, and the mix
looks like the cohort table of shared/notes/domain.md section 7."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.errors import CareRuleViolation
from domain.journey import ClientJourney
from domain.values import Actor, Context
from services.commands import Register, parse_command
from services.demo import cohort_lines, generate_cohort

START = datetime(2025, 11, 24, tzinfo=UTC)
END = datetime(2026, 11, 24, tzinfo=UTC)


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
