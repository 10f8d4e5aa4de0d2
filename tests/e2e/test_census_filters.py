"""The census's filters as people type them, on the CLI and the API: level groups (detox,
residential) and names (iop) are accepted, an unknown site or track is said rather than counted as
0, and a list of clients leaves an access record for each client listed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.values import Actor
from services.importer import import_lines
from tests.e2e.api_support import ApiUnderTest, api_under_test
from tests.e2e.cli_support import COHORT, END_OF_MARCH, clean_environment, cli, read_json, recorded


@pytest.fixture(autouse=True)
def _no_continuum_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in set(os.environ) - set(clean_environment()):
        monkeypatch.delenv(key)


@pytest.fixture
def cohort(database_url: str, tmp_path: Path) -> str:
    return recorded(database_url, tmp_path)


def counts(census: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    return [(c["level"], c["site"], c["track"], c["clients"]) for c in census["counts"]]


ALL = [
    ("3.7-WM", "north", "residential", 1), ("3.5", "north", "residential", 1), ("3.1", "south", "residential", 1),
    ("2.5", "north", "day", 1), ("2.1", "south", "day", 1), ("2.1", "south", "evening", 1), ("1", "north", "day", 1),
    ("alumni", "north", "alumni", 1),
]

LEVELS = [
    pytest.param("detox", [ALL[0]], id="detox"),
    pytest.param("WM", [ALL[0]], id="wm"),
    pytest.param("residential", [ALL[1], ALL[2]], id="residential"),
    pytest.param("Residential", [ALL[1], ALL[2]], id="residential-capitalised"),
    pytest.param("iop", [ALL[4], ALL[5]], id="iop"),
    pytest.param("IOP", [ALL[4], ALL[5]], id="IOP"),
    pytest.param("php", [ALL[3]], id="php"),
    pytest.param("op", [ALL[6]], id="op"),
    pytest.param("outpatient", [ALL[6]], id="outpatient"),
    pytest.param("2.1", [ALL[4], ALL[5]], id="asam-code"),
    pytest.param("3.7-wm", [ALL[0]], id="asam-code-lower-case"),
    pytest.param("alumni", [ALL[7]], id="alumni"),
]


def test_the_census_of_the_cohort_counts_every_level(cohort):
    assert counts(read_json("census", "--on", END_OF_MARCH, "--database-url", cohort)) == ALL


@pytest.mark.parametrize(("level", "expected"), LEVELS)
def test_census_level_accepts_codes_names_and_groups(cohort, level, expected):
    census = read_json("census", "--on", END_OF_MARCH, "--level", level, "--database-url", cohort)

    assert counts(census) == expected
    assert census["total"] == sum(line[3] for line in expected)


def test_census_level_group_lists_the_clients_of_its_levels_only(cohort):
    census = read_json("census", "--on", END_OF_MARCH, "--level", "residential", "--clients", "--database-url", cohort)

    assert sorted(c["client_ref"] for c in census["clients"]) == ["C-2", "C-7"]


def test_census_level_group_as_recorded_counts_the_group(cohort):
    census = read_json("census", "--on", END_OF_MARCH, "--as-recorded", "today", "--level", "residential",
                       "--database-url", cohort)

    assert counts(census) == [ALL[1], ALL[2]]


def test_an_unknown_level_names_the_codes_names_and_groups(cohort):
    result = cli("census", "--level", "rehab", "--database-url", cohort)

    assert result.exit_code == 2
    assert "unknown level of care 'rehab'" in result.stderr
    assert "detox, wm, withdrawal, residential, op" in result.stderr


def test_an_unknown_site_is_said_with_the_known_sites_not_counted_as_0(cohort):
    result = cli("census", "--site", "nrth", "--database-url", cohort)

    assert result.exit_code == 2
    assert "unknown site 'nrth'" in result.stderr
    assert "known sites: north, south" in result.stderr
    assert result.stdout == ""


def test_a_known_site_with_nobody_there_on_a_date_counts_0(cohort):
    census = read_json("census", "--on", "2025-02-01", "--site", "south", "--database-url", cohort)

    assert (census["total"], census["counts"]) == (0, [])


@pytest.mark.parametrize("track", ["nights", "weekend"])
def test_an_unknown_track_is_said_with_the_known_tracks(cohort, track):
    result = cli("census", "--track", track, "--database-url", cohort)

    assert result.exit_code == 2
    assert f"unknown track '{track}' (known: day, evening, residential, alumni)" in result.stderr


def test_a_track_is_accepted_in_any_case(cohort):
    census = read_json("census", "--on", END_OF_MARCH, "--track", "Evening", "--database-url", cohort)

    assert counts(census) == [ALL[5]]


def test_census_on_an_empty_store_refuses_any_site(tmp_path):
    url = recorded(f"sqlite:///{tmp_path}/continuum.db", tmp_path, rows=[])

    result = cli("census", "--site", "north", "--database-url", url)

    assert result.exit_code == 2
    assert "known sites: none: no client is recorded yet" in result.stderr


# -- census --clients is a read of those clients ----------------------------------------------


def test_census_clients_leaves_an_access_record_for_each_client_listed(cohort):
    listed = read_json("census", "--on", END_OF_MARCH, "--site", "south", "--clients", "--actor", "dr-ames", "--role",
                       "clinician", "--purpose", "morning huddle", "--database-url", cohort)["clients"]

    records = read_json("access-log", "--database-url", cohort)["records"]
    assert sorted(r["client_ref"] for r in records) == sorted(c["client_ref"] for c in listed) == ["C-3", "C-4", "C-7"]
    assert {(r["actor_id"], r["role"], r["purpose"]) for r in records} == {("dr-ames", "clinician", "morning huddle")}
    assert {r["what"] for r in records} == {"census client list at 2025-03-31T23:59:59.999999+00:00 site south"}
    assert [r["seq"] for r in records] == [1, 2, 3]


def test_the_access_records_of_a_client_list_keep_the_chain_intact(cohort):
    read_json("census", "--clients", "--database-url", cohort)
    read_json("history", "C-1", "--database-url", cohort)

    verified = read_json("verify", "--database-url", cohort)
    assert verified["ok"] is True
    assert verified["access_records_checked"] == 8 + 1  # the eight clients in the census now, then the history


def test_census_counts_without_clients_leave_no_access_record(cohort):
    read_json("census", "--on", END_OF_MARCH, "--database-url", cohort)

    assert read_json("access-log", "--database-url", cohort)["records"] == []


def test_an_access_record_is_listed_under_each_client(cohort):
    read_json("census", "--on", END_OF_MARCH, "--level", "detox", "--clients", "--database-url", cohort)

    assert [r["what"] for r in read_json("access-log", "--client", "C-1", "--database-url", cohort)["records"]] == [
        "census client list at 2025-03-31T23:59:59.999999+00:00 level detox",
    ]
    assert read_json("access-log", "--client", "C-2", "--database-url", cohort)["records"] == []


# -- the API takes the same filters ------------------------------------------------------------


@pytest.fixture
def api(database_url: str) -> Iterator[ApiUnderTest]:
    with api_under_test(database_url) as under_test:
        report = import_lines(under_test.wired.service, [json.dumps(line) for line in COHORT], Actor("import", "system"))
        assert report.ok, report.errors
        under_test.wired.runner.catch_up()
        yield under_test


@pytest.mark.parametrize(("level", "expected"), LEVELS)
def test_the_api_census_accepts_the_same_levels(api, level, expected):
    answer = api.get("auditor", f"/census?on={END_OF_MARCH}&level={level}")

    assert answer.status_code == 200, answer.text
    assert [(c["level"], c["site"], c["track"], c["clients"]) for c in answer.json()["counts"]] == expected


def test_the_api_refuses_an_unknown_site_with_422(api):
    answer = api.get("dashboard", "/census?site=nrth")

    assert answer.status_code == 422
    assert answer.json()["fields"][0]["field"] == "site"
    assert "unknown site 'nrth'" in answer.json()["fields"][0]["message"]


def test_the_api_refuses_an_unknown_site_before_a_live_census_starts(api):
    assert api.get("dashboard", "/census/stream?site=nrth&max_events=1").status_code == 422


def test_the_api_census_clients_leaves_an_access_record_for_each_client_the_clinician_sees(api):
    answer = api.get("south", f"/census?on={END_OF_MARCH}&clients=true&purpose=handover")

    assert answer.status_code == 200, answer.text
    seen = sorted(c["client"] for c in answer.json()["clients"])
    assert seen == ["C-3", "C-4", "C-7"]
    records = api.get("auditor", "/audit/access-log").json()["records"]
    assert sorted(r["client_ref"] for r in records) == seen
    assert {(r["actor_id"], r["role"], r["purpose"]) for r in records} == {("south-token", "clinician", "handover")}
    assert api.get("auditor", "/audit/verify").json()["ok"] is True


def test_the_api_census_counts_leave_no_access_record(api):
    assert api.get("dashboard", f"/census?on={END_OF_MARCH}").status_code == 200

    assert api.get("auditor", "/audit/access-log").json()["records"] == []
