"""Times: every time shown to a person is in the configured zone (CONTINUUM_TIMEZONE) and labelled
with it; every JSON answer (CLI --json, API) carries ISO 8601 in UTC with `+00:00`; `census --on
TODAY` works in every zone, and the API refuses a future date as the CLI does. The CLI and the API
read dates with one parser.

The clock is injected (the journey service's clock, which both read): 1 April 2025, 02:00 UTC, when
it is still 31 March west of Greenwich and already 1 April east of it.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette asks for httpx2; the TestClient still speaks httpx
    from fastapi.testclient import TestClient

from domain.values import Actor
from infra.config import Settings
from services.api import create_app
from services.bootstrap import bootstrap
from services.importer import import_lines
from services.tokens import Role, TokenStore
from tests.e2e.cli_support import COHORT, END_OF_MARCH, clean_environment, cli, plain, read_json, recorded

CLOCK = datetime(2025, 4, 1, 2, 0, tzinfo=UTC)
JSON_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?\+00:00$")
TIME_KEYS = {"at", "as_of", "as_recorded", "since", "until", "occurred_at", "recorded_at", "level_since", "admitted_at",
             "created_at", "revoked_at"}

# C-9 was recorded in New York's offset: admitted at 18:00 EDT, 22:00 UTC.
C9 = [
    {"command": "register", "client": "C-9", "occurred_at": "2025-03-01T09:00:00-05:00", "site": "north"},
    {"command": "admit", "client": "C-9", "occurred_at": "2025-03-12T18:00:00-04:00", "level": "2.1", "site": "north",
     "track": "evening"},
]
ZONES = [
    # zone, its date at CLOCK (today), the next date
    pytest.param("UTC", "2025-04-01", "2025-04-02", id="UTC"),
    pytest.param("America/Los_Angeles", "2025-03-31", "2025-04-01", id="Los_Angeles"),
    pytest.param("Pacific/Pago_Pago", "2025-03-31", "2025-04-01", id="Pago_Pago-11"),
    pytest.param("Asia/Tokyo", "2025-04-01", "2025-04-02", id="Tokyo"),
    pytest.param("Pacific/Kiritimati", "2025-04-01", "2025-04-02", id="Kiritimati+14"),
]


@pytest.fixture(autouse=True)
def _clock_and_clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI run in process reads CLOCK (the composition root's default clock), and no CONTINUUM_* of the developer."""
    for key in set(os.environ) - set(clean_environment()):
        monkeypatch.delenv(key)
    monkeypatch.setitem(bootstrap.__kwdefaults__, "clock", lambda: CLOCK)


@pytest.fixture
def cohort(database_url: str, tmp_path: Path) -> str:
    return recorded(database_url, tmp_path, rows=COHORT + C9)


def in_zone(zone: str = "UTC") -> dict[str, str]:
    return {"CONTINUUM_TIMEZONE": zone, "COLUMNS": "250"}  # wide enough for a table's headings on one line


def times_in(document: Any, found: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """Every (key, value) of a JSON document whose key names a time and whose value is set."""
    found = [] if found is None else found
    if isinstance(document, dict):
        for key, value in document.items():
            if key in TIME_KEYS and isinstance(value, str):
                found.append((key, value))
            else:
                times_in(value, found)
    elif isinstance(document, list):
        for item in document:
            times_in(item, found)
    return found


def assert_one_json_shape(document: Any) -> list[tuple[str, str]]:
    found = times_in(document)
    assert found, document
    assert [(key, value) for key, value in found if not JSON_TIME.match(value)] == []
    return found


# -- census --on TODAY in every zone ----------------------------------------------------------


@pytest.mark.parametrize(("zone", "today", "tomorrow"), ZONES)
def test_census_on_todays_date_is_the_census_so_far_in_every_zone(cohort, zone, today, tomorrow):
    census = read_json("census", "--on", today, "--database-url", cohort, env=in_zone(zone))

    assert census["at"] == "2025-04-01T02:00:00+00:00"
    assert census["total"] == 9

    refused = cli("census", "--on", tomorrow, "--database-url", cohort, env=in_zone(zone))
    assert refused.exit_code == 2
    assert f"--on {tomorrow} is in the future (it is " in refused.stderr
    assert f"{zone} now)" in plain(refused.stderr)


def test_census_on_today_in_words_and_a_time_later_today_is_refused(cohort):
    assert read_json("census", "--on", "today", "--database-url", cohort)["at"] == "2025-04-01T02:00:00+00:00"

    refused = cli("census", "--on", "2025-04-01T09:00", "--database-url", cohort)
    assert refused.exit_code == 2
    assert "is in the future" in refused.stderr


def test_replay_as_of_a_future_date_is_refused_and_as_of_today_is_now(cohort):
    refused = cli("replay", "C-1", "--as-of", "2025-04-02", "--database-url", cohort)
    assert refused.exit_code == 2
    assert "--as-of 2025-04-02 is in the future" in refused.stderr

    assert read_json("replay", "C-1", "--as-of", "2025-04-01", "--database-url", cohort)["as_of"] == "2025-04-01T02:00:00+00:00"


def test_as_recorded_is_bounded_by_the_clock_that_records_and_today_means_everything_recorded(cohort):
    """Recorded times are the store's (the wall clock's), not the journey service's injected CLOCK."""
    refused = cli("census", "--as-recorded", "2999-01-01", "--database-url", cohort)
    assert refused.exit_code == 2
    assert "--as-recorded 2999-01-01 is in the future" in refused.stderr

    everything = read_json("census", "--on", END_OF_MARCH, "--as-recorded", "today", "--database-url", cohort)
    assert everything["total"] == read_json("census", "--on", END_OF_MARCH, "--database-url", cohort)["total"] == 9


def test_the_end_of_a_period_may_be_after_today(cohort):
    steps = read_json("matrix", "--since", "2025-03-01", "--until", "2025-12-31", "--database-url", cohort)

    assert (steps["since"], steps["until"]) == ("2025-03-01T00:00:00+00:00", "2025-12-31T23:59:59.999999+00:00")


@pytest.mark.parametrize(("zone", "php"), [("UTC", 1), ("America/New_York", 2), ("Asia/Tokyo", 1)])
def test_a_date_ends_at_midnight_in_the_configured_zone(cohort, zone, php):
    """C-8 entered PHP at 03:00 UTC on 10 March: still 9 March in New York, already 10 March in UTC and Tokyo."""
    census = read_json("census", "--on", "2025-03-09", "--level", "php", "--database-url", cohort, env=in_zone(zone))

    assert census["total"] == php


# -- shown to people: in the configured zone, labelled --------------------------------------------


def test_history_shows_times_in_the_configured_zone_under_a_heading_naming_it(cohort):
    new_york = plain(cli("history", "C-8", "--database-url", cohort, env=in_zone("America/New_York")).stdout)
    utc = plain(cli("history", "C-8", "--database-url", cohort, env=in_zone()).stdout)

    assert "when (America/New_York)" in new_york
    assert "2025-03-09 23:00" in new_york
    assert "when (UTC)" in utc
    assert "2025-03-10 03:00" in utc


def test_replay_shows_clinical_times_converted_to_the_zone_not_as_recorded_under_a_utc_heading(cohort):
    """C-9 was admitted at 18:00 New York time (recorded with -04:00): 22:00 in UTC, 07:00 next day in Tokyo."""
    utc = plain(cli("replay", "C-9", "--as-of", END_OF_MARCH, "--database-url", cohort, env=in_zone()).stdout)
    tokyo = plain(cli("replay", "C-9", "--as-of", END_OF_MARCH, "--database-url", cohort, env=in_zone("Asia/Tokyo")).stdout)

    assert "C-9 as of 2025-03-31 23:59 UTC:" in utc
    assert "since 2025-03-12 22:00 UTC" in utc
    assert "occurred (UTC)" in utc
    assert re.search(r"AdmittedToLevel\s*│\s*2025-03-12 22:00", utc), utc
    assert "2025-03-12 18:00" not in utc
    assert "C-9 as of 2025-03-31 23:59 Asia/Tokyo:" in tokyo
    assert "occurred (Asia/Tokyo)" in tokyo
    assert re.search(r"AdmittedToLevel\s*│\s*2025-03-13 07:00", tokyo), tokyo


def test_census_title_and_client_list_are_in_the_zone(cohort):
    text = plain(cli("census", "--on", "2025-03-30", "--clients", "--database-url", cohort, env=in_zone("America/New_York")).stdout)

    assert "Census at 2025-03-30 23:59 America/New_York" in text
    assert "since (America/New_York)" in text
    assert "2025-03-09 23:00" in text  # C-8's PHP admission


def test_audit_and_access_log_tables_are_in_the_zone(cohort):
    zone = in_zone("Asia/Kolkata")
    audit = plain(cli("audit", "C-9", "--database-url", cohort, env=zone).stdout)
    access = plain(cli("access-log", "--database-url", cohort, env=zone).stdout)

    assert "occurred (Asia/Kolkata)" in audit
    assert "recorded (Asia/Kolkata)" in audit
    assert "2025-03-13 03:30" in audit  # 22:00 UTC
    assert "when (Asia/Kolkata)" in access


# -- one JSON shape ---------------------------------------------------------------------------------


def test_every_cli_json_output_carries_times_in_one_shape(cohort):
    zone = in_zone("America/New_York")  # the zone of people never reaches JSON
    assert cli("token", "add", "wallboard", "--role", "dashboard", "--database-url", cohort).exit_code == 0
    documents = {
        "census": read_json("census", "--on", "2025-03-30", "--clients", "--database-url", cohort, env=zone),
        "census as recorded": read_json("census", "--on", "2025-03-30", "--as-recorded", "2025-03-31T21:00", "--database-url",
                                        cohort, env=zone),
        "history": read_json("history", "C-9", "--database-url", cohort, env=zone),
        "matrix": read_json("matrix", "--since", "2025-03-01", "--until", "2025-03-30", "--database-url", cohort, env=zone),
        "audit": read_json("audit", "C-9", "--database-url", cohort, env=zone),
        "replay": read_json("replay", "C-9", "--as-of", "2025-03-30", "--database-url", cohort, env=zone),
        "access-log": read_json("access-log", "--database-url", cohort, env=zone),
        "token list": read_json("token", "list", "--database-url", cohort, env=zone),
    }

    for name, document in documents.items():
        assert assert_one_json_shape(document), name
    assert documents["census"]["at"] == "2025-03-31T03:59:59.999999+00:00"  # the end of 30 March in New York
    assert documents["census as recorded"]["as_recorded"] == "2025-04-01T01:00:00+00:00"  # 21:00 in New York
    assert documents["replay"]["state"]["level_since"] == "2025-03-12T22:00:00+00:00"  # recorded as 18:00-04:00
    assert [e["occurred_at"] for e in documents["replay"]["entries"]] == ["2025-03-01T14:00:00+00:00", "2025-03-12T22:00:00+00:00"]
    assert [t["occurred_at"] for t in documents["history"]["transitions"]] == ["2025-03-12T22:00:00+00:00"]


# -- the API: the same parser, the same refusal, the same JSON shape ---------------------------------


@contextmanager
def api_at(database_url: str, zone: str, clock: Callable[[], datetime] = lambda: CLOCK) -> Iterator[tuple[TestClient, dict[str, str]]]:
    wired = bootstrap(Settings(database_url=database_url, timezone=zone), clock=clock)
    try:
        report = import_lines(wired.service, [json.dumps(line) for line in COHORT + C9], Actor("import", "system"))
        assert report.ok, report.errors
        wired.runner.catch_up()
        store = TokenStore(wired.views)
        tokens = {"auditor": store.add("auditor", Role.AUDITOR, None), "north": store.add("dr-north", Role.CLINICIAN, "north")}
        with TestClient(create_app(wired, follow=False), raise_server_exceptions=False) as client:
            yield client, {who: f"Bearer {token}" for who, token in tokens.items()}
    finally:
        wired.close()


def get(api: tuple[TestClient, dict[str, str]], path: str, who: str = "auditor") -> Any:
    client, tokens = api
    return client.get(path, headers={"Authorization": tokens[who]})


@pytest.mark.parametrize(("zone", "today", "tomorrow"), ZONES)
def test_the_api_census_on_todays_date_is_now_and_a_future_date_is_refused_as_the_cli_does(database_url, zone, today, tomorrow):
    with api_at(database_url, zone) as api:
        answer = get(api, f"/census?on={today}")
        refused = get(api, f"/census?on={tomorrow}")

    assert answer.status_code == 200, answer.text
    assert (answer.json()["at"], answer.json()["total"]) == ("2025-04-01T02:00:00+00:00", 9)
    assert refused.status_code == 422
    field = refused.json()["fields"][0]
    assert field["field"] == "on"
    assert field["message"].startswith(f"on {tomorrow} is in the future (it is ")


def test_the_api_refuses_a_future_replay_and_reads_dates_in_the_configured_zone(database_url):
    with api_at(database_url, "America/New_York") as api:
        future = get(api, "/clients/C-1/replay?as_of=2025-04-01")  # already 1 April in UTC, not yet in New York
        recorded_later = get(api, "/census?as_recorded=2999-01-01")
        php = get(api, "/census?on=2025-03-09&level=php").json()["total"]
        matrix = get(api, "/steps/matrix?until=2025-12-31").json()

    assert future.status_code == 422
    assert "as_of 2025-04-01 is in the future" in future.json()["fields"][0]["message"]
    assert recorded_later.status_code == 422
    assert "as_recorded 2999-01-01 is in the future" in recorded_later.json()["fields"][0]["message"]
    assert php == 2  # 9 March ends at 04:00 UTC on 10 March in New York: C-8 was in PHP by then
    assert matrix["until"] == "2026-01-01T04:59:59.999999+00:00"


def test_every_api_answer_carries_times_in_the_one_shape_and_matches_the_cli(database_url, tmp_path):
    with api_at(database_url, "Asia/Tokyo") as api:
        get(api, "/clients/C-9/history", "north")
        documents = {
            "census": get(api, f"/census?on={END_OF_MARCH}&clients=true").json(),
            "census as recorded": get(api, f"/census?on={END_OF_MARCH}&as_recorded=2025-04-01").json(),
            "matrix": get(api, "/steps/matrix?since=2025-03-01&until=2025-03-31").json(),
            "history": get(api, "/clients/C-9/history").json(),
            "audit trail": get(api, "/clients/C-9/audit-trail").json(),
            "replay": get(api, f"/clients/C-9/replay?as_of={END_OF_MARCH}").json(),
            "access log": get(api, "/audit/access-log").json(),
        }

    for name, document in documents.items():
        assert assert_one_json_shape(document), name
    replay = documents["replay"]
    assert replay["as_of"] == "2025-03-31T14:59:59.999999+00:00"  # the end of 31 March in Tokyo
    assert replay["state"]["level_since"] == "2025-03-12T22:00:00+00:00"
    assert [t["occurred_at"] for t in documents["history"]["transitions"]] == ["2025-03-12T22:00:00+00:00"]

    url = recorded(f"sqlite:///{tmp_path}/cli.db", tmp_path, rows=COHORT + C9)
    from_cli = read_json("replay", "C-9", "--as-of", END_OF_MARCH, "--database-url", url, env=in_zone("Asia/Tokyo"))
    assert from_cli["as_of"] == replay["as_of"]
    assert from_cli["state"] == replay["state"]
    assert [(e["occurred_at"], e["type"]) for e in from_cli["entries"]] == [(e["occurred_at"], e["type"]) for e in replay["entries"]]
