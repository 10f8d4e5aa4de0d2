"""The synthetic cohort: every line parses, the domain accepts every command in order, the mix looks
real (readmissions, medication from the first level, tapering IOP schedules, attendance with excused
absences and holidays), and the end reasons per service stay reproduce TEDS-D 2004 as
`continuum report fidelity` measures them (the slow test records a cohort and reads the report)."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.errors import CareRuleViolation
from domain.journey import ClientJourney
from domain.levels import Level
from domain.values import Actor, Context
from infra.config import Settings
from services.bootstrap import bootstrap
from services.commands import Register, parse_command
from services.demo import IOP_MEDIAN_DAYS, REASONS, cohort_key, cohort_lines, cohort_window, describe, generate_cohort
from services.importer import import_lines
from services.reports import Reports, Scope
from tests.support.clock import NOW

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


# -- what the cohort is made of --------------------------------------------------------------------


def by_client(commands: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    mine: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for data in commands:
        mine[data["client"]].append(data)
    return mine


def stays(commands: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]]]:
    """(client, level, entry, the command that ended it or None, the commands in between) per service stay."""
    found = []
    for client, mine in by_client(commands).items():
        level, entry, inside = None, None, []
        for data in mine:
            if data["command"] in ("admit", "start_detox"):
                level, entry, inside = data["level"], data, []
            elif data["command"] in ("step_up", "step_down", "discharge") and entry is not None:
                found.append((client, level, entry, data, inside))
                level, entry, inside = data.get("to_level"), data, []
                if data["command"] == "discharge":
                    level = entry = None
            elif entry is not None:
                inside.append(data)
        if entry is not None:
            found.append((client, level, entry, None, inside))
    return found


def test_each_stay_ends_in_a_step_or_a_discharge_as_teds_counts_it(cohort: list[dict[str, Any]]) -> None:
    ended = [(level, end, inside) for _, level, _, end, inside in stays(cohort) if end is not None]
    assert len(ended) > 300
    for level, end, inside in ended:
        if end["command"] == "discharge":
            assert end["reason"] in REASONS["1"]
            continue
        up = end["command"] == "step_up"
        assert (Level(end["to_level"]).rank > Level(level).rank) is up, (level, end)
        if Level(level).is_withdrawal_management and not Level(end["to_level"]).is_withdrawal_management:
            assert [d["completed"] for d in inside if d["command"] == "complete_detox"] == [True]
    kinds = Counter(end["command"] for _, end, _ in ended)
    assert kinds["step_up"]
    assert kinds["step_down"]
    assert kinds["discharge"]
    # each reason is realised both ways: a step, or a discharge with the reason itself
    reasons = Counter(end["reason"] for _, end, _ in ended if end["command"] == "discharge")
    assert reasons["completed"]
    assert reasons["transferred"]
    assert reasons["left_against_advice"]


def test_readmissions_open_new_episodes_after_a_new_referral(cohort: list[dict[str, Any]]) -> None:
    gaps = []
    for mine in by_client(cohort).values():
        kinds = [d["command"] for d in mine]
        for number, kind in enumerate(kinds):
            if kind not in ("admit", "start_detox") or "discharge" not in kinds[:number]:
                continue
            last = max(i for i in range(number) if kinds[i] == "discharge")
            assert {"refer", "assess"} <= set(kinds[last:number])
            gaps.append((at(mine[number]) - at(mine[last])).days)
    assert any(days <= 30 for days in gaps)
    assert any(days > 30 for days in gaps)
    # and some clients are referred and assessed and never come
    clients = by_client(cohort).values()
    assert any("assess" in {d["command"] for d in mine} and not {"admit", "start_detox"} & {d["command"] for d in mine}
               for mine in clients)


def test_medication_is_recorded_from_the_first_level_and_changed_during_stays(cohort: list[dict[str, Any]]) -> None:
    changes = 0
    for mine in by_client(cohort).values():
        medication, inside, collected = None, False, {}
        for data in mine:
            kind = data["command"]
            if kind in ("admit", "start_detox"):
                medication, inside = data["medication"], True
            elif kind == "discharge":
                inside = False
            elif kind == "change_medication":
                assert inside
                assert data["medication"] != medication
                medication, changes = data["medication"], changes + 1
            elif kind == "collect_drug_test":
                collected[data["specimen_id"]] = medication
            elif kind == "result_drug_test" and data["result"] in ("positive", "negative"):
                mat = collected[data["specimen_id"]]
                assert data["expected_medications"] == ([mat] if mat in ("buprenorphine", "methadone") else [])
    assert changes > 5
    entries = [d for d in cohort if d["command"] in ("admit", "start_detox")]
    assert {"buprenorphine", "methadone", "none"} <= {d["medication"] for d in entries if d["command"] == "start_detox"}


def test_iop_schedules_taper_to_two_groups_a_week_before_a_completion(cohort: list[dict[str, Any]]) -> None:
    tapered = 0
    for _, level, _, end, inside in stays(cohort):
        taper = next((d for d in inside if d["command"] == "change_track" and d.get("planned_hours_per_week") == 6), None)
        if taper is None:
            continue
        tapered += 1
        assert level == "2.1"
        assert end is None or end["command"] == "step_down" or end["reason"] == "completed"
        groups = [d for d in inside if d["command"] in ("attend_session", "miss_session") and d["kind"] == "group"
                  and at(d) > at(taper)]
        assert groups
        assert {at(d).weekday() for d in groups} <= {0, 2}
    assert tapered > 5


def test_attendance_differs_by_client_with_excused_absences_and_closed_holidays(cohort: list[dict[str, Any]]) -> None:
    missed = [d for d in cohort if d["command"] == "miss_session"]
    assert any(d["excused"] for d in missed)
    assert not all(d["excused"] for d in missed)
    rates = []
    for mine in by_client(cohort).values():
        sessions = [d["command"] == "attend_session" for d in mine if d["command"] in ("attend_session", "miss_session")]
        if len(sessions) >= 30:
            rates.append(sum(sessions) / len(sessions))
    assert min(rates) < 0.7
    assert max(rates) > 0.95
    holidays = {"2025-11-27", "2025-12-25", "2026-01-01", "2026-05-25", "2026-09-07"}
    for _, level, _, _, inside in stays(cohort):
        if level in ("1", "2.1", "2.5"):
            assert not any(d["occurred_at"][:10] in holidays for d in inside if d["command"] in ("attend_session", "miss_session"))


@pytest.mark.slow
def test_the_recorded_cohort_reproduces_teds_d_within_two_points() -> None:
    """2,000 clients recorded and projected in memory (about half a minute): `report fidelity` within 2 percentage
    points per reason for WM, residential, IOP and outpatient, and the median IOP stay within 41 +- 4 days."""
    wired = bootstrap(Settings(database_url="sqlite:///:memory:"), clock=lambda: NOW)
    try:
        lines = list(cohort_lines(2000, 1, start=YEAR_2025[0], end=YEAR_2025[1]))
        report = import_lines(wired.service, lines, Actor("demo", "system"), chunk_size=500)
        assert report.errors == []
        wired.runner.catch_up()
        rows = Reports(wired.views).run("fidelity", Scope(NOW)).rows
    finally:
        wired.close()
    checked = [r for r in rows if r.group != "partial hospitalization"]
    assert len(checked) == 4 * 7 + 1
    for r in checked:
        tolerance = 4 if r.end_reason.startswith("median") else 2
        assert r.difference is not None, r
        assert abs(r.difference) <= tolerance, r
    assert next(r.teds_pct for r in rows if r.end_reason.startswith("median")) == IOP_MEDIAN_DAYS
