"""End-to-end tests of the `continuum` command line.

Most tests drive `services.cli.app` in process through typer's CliRunner; the tests about what a
user sees after a mistake, and about `project --follow`, run the installed `continuum` script in a
real subprocess. Every test works on a fresh store (a new SQLite file or PostgreSQL schema).

Clinical times are fixed days before the tests' clock reading `NOW` (tests/support/clock.py), which
the commands run in process read (tests/e2e/conftest.py); a subprocess reads the wall clock, later still.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from domain.values import Actor
from infra.config import Settings
from services.bootstrap import bootstrap
from services.cli import app
from services.demo import cohort_lines
from services.importer import import_lines
from tests.support.clock import NOW

CONTINUUM = Path(sys.executable).parent / "continuum"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
UNREACHABLE_POSTGRES = "postgresql://postgres@127.0.0.1:1/nope"

BASE = (NOW - timedelta(days=60)).replace(hour=9, minute=0, second=0, microsecond=0)  # 2026-09-25 09:00 UTC
YEAR_2025 = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC))


def at(days: float) -> str:
    return (BASE + timedelta(days=days)).isoformat()


def day(days: float) -> str:
    return (BASE + timedelta(days=days)).date().isoformat()


# -- the import file -----------------------------------------------------------------------------

GOOD: dict[int, dict[str, Any]] = {
    1: {"command": "register", "client": "C-1", "occurred_at": at(0), "site": "north"},
    2: {"command": "admit", "client": "C-1", "occurred_at": at(1), "level": "2.1", "site": "north", "track": "day"},
    4: {"command": "register", "client": "C-2", "occurred_at": at(0), "site": "south"},
    6: {"command": "admit", "client": "C-2", "occurred_at": at(2), "level": "3.5", "site": "south"},
    8: {"command": "register", "client": "C-3", "occurred_at": at(0), "site": "north"},
    10: {"command": "admit", "client": "C-3", "occurred_at": at(3), "level": "2.1", "site": "north", "track": "evening"},
    14: {"command": "step_down", "client": "C-1", "occurred_at": at(20), "to_level": "1", "reason": "stable"},
    16: {
        "command": "correct", "client": "C-1", "occurred_at": at(21), "corrects_version": 3, "field": "reason",
        "value": "met IOP goals", "reason": "typo in the step-down reason",
    },
}
NAIVE = at(0).replace("+00:00", "")
# Each bad line is the last line of its client: a refused line holds its client's later lines
# (tests/e2e/test_cli_import.py), and these tests are about each bad line's own reason.
BAD = {
    3: ('{"command": "register", "client": "C-2", ', "invalid JSON"),
    5: (json.dumps({"command": "transfer", "client": "C-5", "occurred_at": at(5)}), "unknown command 'transfer'"),
    7: (json.dumps({"command": "refer", "client": "C-7", "occurred_at": at(1)}), "source: Field required"),
    9: (json.dumps({"command": "admit", "client": "C-9", "occurred_at": at(3), "level": "9.9", "site": "north"}),
        "level: Input should be"),
    11: (json.dumps({"command": "register", "client": "C-4", "occurred_at": NAIVE, "site": "north"}),
         "occurred_at: Input should have timezone info"),
    12: (json.dumps({"command": "refer", "client": "C-404", "occurred_at": at(1), "source": "self"}),
         "client C-404: no such client"),
    17: (json.dumps({"command": "admit", "client": "C-1", "occurred_at": at(4), "level": "2.5", "site": "north"}),
         "client C-1: client is already admitted"),
}
BLANK = 15  # a blank line is skipped, not refused (so is line 13)
LINES = max([*GOOD, *BAD, BLANK])
EVENTS = len(GOOD)  # every good command records one event


def mixed_text() -> str:
    rows = []
    for number in range(1, LINES + 1):
        if number in GOOD:
            rows.append(json.dumps(GOOD[number]))
        elif number in BAD:
            rows.append(BAD[number][0])
        else:
            rows.append("")
    return "\n".join(rows) + "\n"


def good_text() -> str:
    return "\n".join(json.dumps(GOOD[number]) for number in sorted(GOOD)) + "\n"


# -- helpers -------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _no_continuum_environment() -> Iterator[None]:
    """Settings come from the options given here, never from the developer's CONTINUUM_* variables."""
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("CONTINUUM_") and not key.startswith("CONTINUUM_TEST_") and key != "CONTINUUM_REQUIRE_SERVICES":
                patch.delenv(key)
        yield


def cli(*args: object, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, [str(arg) for arg in args], env=env, catch_exceptions=False)


def plain(text: str) -> str:
    """Output without colour codes and with rich's wrapping at 80 columns undone."""
    return " ".join(ANSI.sub("", text).split())


def nonblank(text: str) -> list[str]:
    return [line for line in ANSI.sub("", text).splitlines() if line.strip()]


def as_json(result: Result) -> Any:
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def read_json(*args: object) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def record_without_projecting(url: str, lines: Sequence[str]) -> None:
    """What another process (the API, say) does: record commands and leave projecting to others."""
    wired = bootstrap(Settings(database_url=url))
    try:
        report = import_lines(wired.service, lines, Actor("api", "system"))
        assert report.ok, report.errors
        assert report.applied == len(lines)
    finally:
        wired.close()


def heads(url: str) -> dict[str, tuple[int, int]]:
    return {p["name"]: (p["position"], p["head"]) for p in read_json("status", "--database-url", url)["projections"]}


def counts(census: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    return [(c["level"], c["site"], c["track"], c["clients"]) for c in census["counts"]]


def run(*args: str, timeout: float = 30, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own console script
        [str(CONTINUUM), *args], capture_output=True, text=True, timeout=timeout, env=env or subprocess_env(), check=False,
    )


def subprocess_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **extra}


@pytest.fixture
def populated(sqlite_url: str, tmp_path: Path) -> str:
    """A SQLite store holding the good lines of the import file, projected."""
    result = cli("import", write(tmp_path, "good.jsonl", good_text()), "--database-url", sqlite_url)
    assert result.exit_code == 0, result.output
    return sqlite_url


# -- import --------------------------------------------------------------------------------------


def test_import_reports_each_bad_line_by_number_and_reason_and_exits_1(database_url, tmp_path):
    result = cli("import", write(tmp_path, "mixed.jsonl", mixed_text()), "--database-url", database_url)

    assert result.exit_code == 1, result.output
    assert plain(result.stdout) == f"{len(GOOD)} commands applied ({EVENTS} events), 0 already recorded, {len(BAD)} refused"
    reported = dict(re.findall(r"^line (\d+): (.*)$", ANSI.sub("", result.stderr), flags=re.MULTILINE))
    assert sorted(int(number) for number in reported) == sorted(BAD)
    for number, (_, reason) in BAD.items():
        assert reason in reported[str(number)], (number, reported[str(number)])
    assert "Traceback" not in result.output


def test_import_json_lists_every_refused_line(database_url, tmp_path):
    report = as_json(cli("import", write(tmp_path, "mixed.jsonl", mixed_text()), "--json", "--database-url", database_url))

    assert report["lines"] == LINES
    assert (report["applied"], report["duplicates"], report["events"]) == (len(GOOD), 0, EVENTS)
    assert report["position"] == EVENTS
    assert [error["line"] for error in report["errors"]] == sorted(BAD)
    for error in report["errors"]:
        assert BAD[error["line"]][1] in error["reason"]


def test_import_records_the_good_lines_of_a_mixed_file(database_url, tmp_path):
    cli("import", write(tmp_path, "mixed.jsonl", mixed_text()), "--database-url", database_url)

    census = read_json("census", "--database-url", database_url)
    assert census["total"] == 3
    assert sorted(counts(census)) == sorted([("1", "north", "day", 1), ("3.5", "south", "residential", 1),
                                             ("2.1", "north", "evening", 1)])
    trail = read_json("audit", "C-1", "--database-url", database_url)
    assert [(e["version"], e["type"]) for e in trail["entries"]] == [
        (1, "ClientRegistered"), (2, "AdmittedToLevel"), (3, "SteppedDown"), (4, "EntryCorrected"),
    ]
    assert [e["type"] for e in read_json("audit", "C-2", "--database-url", database_url)["entries"]] == [
        "ClientRegistered", "AdmittedToLevel",
    ]


def test_reimporting_a_file_records_nothing_new_and_still_exits_1(database_url, tmp_path):
    path = write(tmp_path, "mixed.jsonl", mixed_text())
    cli("import", path, "--database-url", database_url)
    before = heads(database_url)

    again = cli("import", path, "--json", "--database-url", database_url)

    assert again.exit_code == 1, again.output
    report = json.loads(again.stdout)
    assert (report["applied"], report["duplicates"], report["events"]) == (0, len(GOOD), 0)
    assert [error["line"] for error in report["errors"]] == sorted(BAD)
    assert heads(database_url) == before == dict.fromkeys(before, (EVENTS, EVENTS))


def test_import_of_only_good_lines_exits_0(sqlite_url, tmp_path):
    result = cli("import", write(tmp_path, "good.jsonl", good_text()), "--database-url", sqlite_url)

    assert result.exit_code == 0, result.output
    assert plain(result.stdout) == f"{len(GOOD)} commands applied ({EVENTS} events), 0 already recorded, 0 refused"
    assert not re.search(r"^line \d+:", result.stderr, flags=re.MULTILINE)


def test_actor_and_role_options_land_on_every_event(sqlite_url, tmp_path):
    path = write(tmp_path, "good.jsonl", good_text())
    result = cli("import", path, "--actor", "nurse7", "--role", "clinician", "--database-url", sqlite_url)
    assert result.exit_code == 0, result.output

    for client in ("C-1", "C-2", "C-3"):
        entries = read_json("audit", client, "--database-url", sqlite_url)["entries"]
        assert entries
        recorders = [e["recorded_by"] for e in entries] + [c["recorded_by"] for e in entries for c in e["corrections"]]
        assert all(who == {"id": "nurse7", "role": "clinician"} for who in recorders), recorders


def test_import_without_actor_records_the_configured_default(sqlite_url, tmp_path):
    cli("import", write(tmp_path, "good.jsonl", good_text()), "--database-url", sqlite_url)

    entries = read_json("audit", "C-2", "--database-url", sqlite_url)["entries"]
    assert {json.dumps(e["recorded_by"]) for e in entries} == {json.dumps({"id": "cli", "role": "system"})}


# -- census --------------------------------------------------------------------------------------


def test_census_json_gives_the_total_and_the_counts_by_level_site_and_track(populated):
    census = read_json("census", "--database-url", populated)

    assert census["total"] == 3
    assert census["position"] == EVENTS
    assert counts(census) == [("3.5", "south", "residential", 1), ("2.1", "north", "evening", 1), ("1", "north", "day", 1)]
    assert "clients" not in census


def test_census_on_a_past_date_counts_who_was_there_at_the_end_of_that_day(populated):
    before_step_down = read_json("census", "--on", day(10), "--database-url", populated)
    first_day = read_json("census", "--on", day(1), "--database-url", populated)

    assert before_step_down["at"] == f"{day(10)}T23:59:59.999999+00:00"
    assert before_step_down["total"] == 3
    assert counts(before_step_down) == [
        ("3.5", "south", "residential", 1), ("2.1", "north", "day", 1), ("2.1", "north", "evening", 1),
    ]
    assert counts(first_day) == [("2.1", "north", "day", 1)]


def test_census_level_filter_counts_only_that_level(populated):
    census = read_json("census", "--level", "2.1", "--database-url", populated)

    assert census["total"] == 1
    assert counts(census) == [("2.1", "north", "evening", 1)]


def test_census_site_filter_counts_only_that_site(populated):
    census = read_json("census", "--site", "north", "--database-url", populated)

    assert census["total"] == 2
    assert counts(census) == [("2.1", "north", "evening", 1), ("1", "north", "day", 1)]


def test_census_clients_lists_each_client_with_days_in_level(populated):
    census = read_json("census", "--clients", "--database-url", populated)

    listed = {c["client_ref"]: c for c in census["clients"]}
    assert set(listed) == {"C-1", "C-2", "C-3"}
    assert (listed["C-1"]["level"], listed["C-1"]["since"]) == ("1", at(20))
    now = datetime.fromisoformat(census["at"])  # the census of now counts days to the wall clock's reading
    assert now >= NOW
    for client, since_day in (("C-1", 20), ("C-2", 2), ("C-3", 3)):
        expected = (now - (BASE + timedelta(days=since_day))).days
        assert listed[client]["days_in_level"] == expected
        assert expected >= 60 - since_day - 1  # at least the days from admission to NOW


def test_census_table_shows_levels_and_the_total(populated):
    result = cli("census", "--database-url", populated)

    assert result.exit_code == 0, result.output
    text = ANSI.sub("", result.stdout)
    assert "Census at" in text
    assert re.search(r"total\s*│\s*│\s*│\s*3", text), text


def test_census_of_an_unknown_level_is_a_one_line_error_exit_2(populated):
    result = cli("census", "--level", "9.9", "--database-url", populated)

    assert result.exit_code == 2
    assert nonblank(result.stderr) == [nonblank(result.stderr)[0]]
    assert "unknown level of care '9.9'" in result.stderr
    assert result.stdout == ""


# -- history and audit ---------------------------------------------------------------------------


def test_history_json_lists_the_transitions_in_clinical_order(populated):
    history = read_json("history", "C-1", "--database-url", populated)

    assert history["client"] == "C-1"
    assert [(t["kind"], t["from_level"], t["to_level"], t["occurred_at"]) for t in history["transitions"]] == [
        ("admission", None, "2.1", at(1)), ("step_down", "2.1", "1", at(20)),
    ]


def test_history_shows_a_corrected_reason(populated):
    history = read_json("history", "C-1", "--database-url", populated)

    assert history["transitions"][-1]["reason"] == "met IOP goals"


def test_audit_json_shows_a_correction_under_the_entry_it_corrects(populated):
    trail = read_json("audit", "C-1", "--database-url", populated)

    entries = {e["version"]: e for e in trail["entries"]}
    step_down = entries[3]
    assert step_down["details"]["reason"] == "stable"  # the original stays as recorded
    assert [c["version"] for c in step_down["corrections"]] == [4]
    fix = step_down["corrections"][0]
    assert (fix["type"], fix["corrects_version"]) == ("EntryCorrected", 3)
    assert (fix["details"]["field"], fix["details"]["previous_value"], fix["details"]["corrected_value"]) == (
        "reason", "stable", "met IOP goals",
    )
    assert all(not entries[v]["corrections"] for v in (1, 2, 4))
    assert entries[4]["occurred_at"] == at(21)


@pytest.mark.parametrize("command", ["history", "audit"])
def test_reading_an_unknown_client_is_one_line_no_such_client_exit_1(populated, command):
    result = cli(command, "C-999", "--json", "--database-url", populated)

    assert result.exit_code == 1
    assert len(nonblank(result.stderr)) == 1
    assert "no such client" in result.stderr
    assert "C-999" in result.stderr
    assert result.stdout == ""


# -- status, project, rebuild --------------------------------------------------------------------


def test_status_json_shows_lag_0_for_every_projection_after_an_import(populated):
    status = read_json("status", "--database-url", populated)

    assert status["database"].startswith("sqlite:///")
    assert {(p["name"], p["position"], p["head"], p["lag"]) for p in status["projections"]} == {
        (name, EVENTS, EVENTS, 0) for name in ("census", "step_history", "audit_trail", "flags", "outcomes", "attendance", "drug_tests")
    }


def test_project_brings_every_projection_up_to_the_head_and_prints_the_lags(sqlite_url):
    record_without_projecting(sqlite_url, [json.dumps(GOOD[1]), json.dumps(GOOD[2])])
    assert {p["lag"] for p in read_json("status", "--database-url", sqlite_url)["projections"]} == {2}

    result = cli("project", "--database-url", sqlite_url)

    assert result.exit_code == 0, result.output
    assert plain(result.stdout) == "projected 2 events; census at 2 (lag 0), step_history at 2 (lag 0), audit_trail at 2 (lag 0), flags at 2 (lag 0), outcomes at 2 (lag 0), attendance at 2 (lag 0), drug_tests at 2 (lag 0)"
    assert heads(sqlite_url) == dict.fromkeys(("census", "step_history", "audit_trail", "flags", "outcomes", "attendance", "drug_tests"), (2, 2))


def test_rebuild_census_rebuilds_a_damaged_census_from_the_events(populated):
    before = read_json("census", "--clients", "--database-url", populated)
    with sqlite3.connect(populated.removeprefix("sqlite:///")) as connection:
        connection.execute("DELETE FROM census_intervals")
        connection.execute("DELETE FROM census_now")  # the running counts behind the census of now
    connection.close()
    assert read_json("census", "--database-url", populated)["total"] == 0

    result = cli("rebuild", "census", "--database-url", populated)

    assert result.exit_code == 0, result.output
    assert plain(result.stdout).startswith(f"rebuilt census from {EVENTS} events; census at {EVENTS} (lag 0)")
    after = read_json("census", "--clients", "--database-url", populated)
    assert (counts(after), after["total"], after["position"]) == (counts(before), before["total"], before["position"])
    assert [(c["client_ref"], c["since"]) for c in after["clients"]] == [(c["client_ref"], c["since"]) for c in before["clients"]]


def test_rebuild_all_leaves_every_read_unchanged(populated):
    reads = [("census",), ("history", "C-1"), ("audit", "C-1"), ("matrix",)]
    before = [read_json(*args, "--database-url", populated) for args in reads]

    result = cli("rebuild", "--all", "--database-url", populated)

    assert result.exit_code == 0, result.output
    assert plain(result.stdout).startswith(f"rebuilt census, step_history, audit_trail, flags, outcomes, attendance, drug_tests from {EVENTS} events")
    after = [read_json(*args, "--database-url", populated) for args in reads]
    before[0].pop("at")
    after[0].pop("at")
    assert after == before


def test_rebuild_all_with_two_workers_leaves_every_read_unchanged_and_no_scratch_file(populated):
    reads = [("census",), ("history", "C-1"), ("audit", "C-1"), ("matrix",)]
    before = [read_json(*args, "--database-url", populated) for args in reads]

    result = cli("rebuild", "--all", "--workers", "2", "--database-url", populated)

    assert result.exit_code == 0, result.output
    assert plain(result.stdout).startswith(f"rebuilt census, step_history, audit_trail, flags, outcomes, attendance, drug_tests from {EVENTS} events")
    assert "scratch file" not in result.stderr  # each share's file is gone
    after = [read_json(*args, "--database-url", populated) for args in reads]
    before[0].pop("at")
    after[0].pop("at")
    assert after == before


def test_rebuild_with_no_workers_is_a_one_line_error_exit_2(populated):
    result = cli("rebuild", "--all", "--workers", "0", "--database-url", populated)

    assert result.exit_code == 2
    assert nonblank(result.stderr) == ["error: --workers must be 1 or more (given 0)"]


def test_rebuild_names_the_scratch_file_a_killed_rebuild_left_and_leaves_it(populated):
    store = Path(populated.removeprefix("sqlite:///"))
    assert "scratch file" not in cli("rebuild", "census", "--database-url", populated).stderr  # its own is gone
    left = store.with_name(store.name + ".rebuild-0123456789ab")
    left.write_bytes(bytes(3 * 2**20))

    result = cli("rebuild", "census", "--database-url", populated)

    assert result.exit_code == 0, result.output
    assert plain(result.stdout).startswith(f"rebuilt census from {EVENTS} events")
    assert plain(result.stderr) == (f"1 scratch file of an interrupted rebuild beside the store (3 MB): {left};"
                                    " delete it unless a rebuild is running now")
    assert left.exists()  # another rebuild may be filling it: the user decides


def test_rebuild_of_an_unknown_projection_is_a_one_line_error_exit_2(populated):
    result = cli("rebuild", "nosuch", "--database-url", populated)

    assert result.exit_code == 2
    assert len(nonblank(result.stderr)) == 1
    assert "no projection named 'nosuch'" in result.stderr


def test_rebuild_without_a_name_or_all_is_a_one_line_error_exit_2(populated):
    result = cli("rebuild", "--database-url", populated)

    assert result.exit_code == 2
    assert len(nonblank(result.stderr)) == 1
    assert "--all" in result.stderr


# -- schema --------------------------------------------------------------------------------------


def _validate(instance: Any, schema: dict[str, Any], root: dict[str, Any]) -> list[str]:  # noqa: C901, PLR0911, PLR0912
    """A small JSON Schema validator for the keywords pydantic emits (used when `jsonschema` is absent)."""
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        found = _validate(instance, target, root)
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return found + (_validate(instance, rest, root) if rest else [])
    types: dict[str, Any] = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "null": type(None),
             "object": dict, "array": list}
    kind = schema.get("type")
    if kind is not None:
        if kind in ("integer", "number") and isinstance(instance, bool):
            return [f"{instance!r} is not {kind}"]
        if not isinstance(instance, types[kind]):
            return [f"{instance!r} is not {kind}"]
    if "const" in schema and instance != schema["const"]:
        return [f"{instance!r} is not {schema['const']!r}"]
    if "enum" in schema and instance not in schema["enum"]:
        return [f"{instance!r} is not one of {schema['enum']}"]
    if "anyOf" in schema and not any(not _validate(instance, s, root) for s in schema["anyOf"]):
        return [f"{instance!r} matches none of anyOf"]
    if "oneOf" in schema:
        matches = sum(1 for s in schema["oneOf"] if not _validate(instance, s, root))
        if matches != 1:
            return [f"{instance!r} matches {matches} of oneOf"]
    problems: list[str] = []
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0) or len(instance) > schema.get("maxLength", len(instance)):
            problems.append(f"{instance!r} has the wrong length")
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            problems.append(f"{instance!r} does not match {schema['pattern']}")
    if isinstance(instance, int | float) and not isinstance(instance, bool):
        if "minimum" in schema and instance < schema["minimum"]:
            problems.append(f"{instance} < {schema['minimum']}")
        if "maximum" in schema and instance > schema["maximum"]:
            problems.append(f"{instance} > {schema['maximum']}")
        if "exclusiveMinimum" in schema and instance <= schema["exclusiveMinimum"]:
            problems.append(f"{instance} <= {schema['exclusiveMinimum']}")
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0) or len(instance) > schema.get("maxItems", len(instance)):
            problems.append("wrong number of items")
        for item in instance:
            problems += _validate(item, schema.get("items", {}), root)
    if isinstance(instance, dict):
        properties = schema.get("properties", {})
        problems += [f"{name!r} is required" for name in schema.get("required", []) if name not in instance]
        for name, value in instance.items():
            if "propertyNames" in schema:
                problems += _validate(name, schema["propertyNames"], root)
            if name in properties:
                problems += _validate(value, properties[name], root)
            elif schema.get("additionalProperties") is False:
                problems.append(f"{name!r} is not allowed")
            elif isinstance(schema.get("additionalProperties"), dict):
                problems += _validate(value, schema["additionalProperties"], root)
    return problems


def schema_problems(instance: Any, schema: dict[str, Any]) -> list[str]:
    try:
        import jsonschema
    except ImportError:
        return _validate(instance, schema, schema)
    return [error.message for error in jsonschema.Draft202012Validator(schema).iter_errors(instance)]


@pytest.fixture(scope="module")
def command_schema() -> dict[str, Any]:
    result = cli("schema", "commands")
    assert result.exit_code == 0, result.output
    schema: dict[str, Any] = json.loads(result.stdout)
    return schema


def test_schema_commands_prints_a_json_schema_naming_every_command(command_schema):
    assert command_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(command_schema["discriminator"]["mapping"]) == {
        "register", "refer", "assess", "start_detox", "complete_detox", "admit", "plan", "attend_session", "miss_session",
        "collect_drug_test", "result_drug_test", "step_up", "step_down", "discharge", "enrol_alumni",
        "attend_alumni_activity", "correct", "change_track", "change_medication", "void", "grant_consent", "revoke_consent",
    }
    assert len(command_schema["oneOf"]) == 22
    for definition in command_schema["discriminator"]["mapping"].values():
        model = command_schema["$defs"][definition.removeprefix("#/$defs/")]
        assert model["additionalProperties"] is False
        assert {"client", "occurred_at"} <= set(model["required"])


@pytest.mark.parametrize("number", sorted(GOOD))
def test_schema_commands_accepts_every_good_import_line(command_schema, number):
    assert schema_problems(GOOD[number], command_schema) == []


@pytest.mark.parametrize(
    "line",
    [
        pytest.param({"command": "transfer", "client": "C-1", "occurred_at": at(1)}, id="unknown-command"),
        pytest.param({"command": "refer", "client": "C-1", "occurred_at": at(1)}, id="missing-field"),
        pytest.param({**GOOD[2], "level": "9.9"}, id="invalid-level"),
        pytest.param({**GOOD[2], "ward": "7"}, id="extra-field"),
        pytest.param({**GOOD[1], "client": "no spaces allowed"}, id="bad-client-ref"),
        pytest.param({**GOOD[6], "planned_hours_per_week": 200}, id="hours-out-of-range"),
    ],
)
def test_schema_commands_rejects_a_bad_line(command_schema, line):
    assert schema_problems(line, command_schema) != []


def test_schema_commands_requires_the_command_field_as_the_importer_does(command_schema, tmp_path, sqlite_url):
    line = {k: v for k, v in GOOD[1].items() if k != "command"}
    refused = cli("import", write(tmp_path, "no-command.jsonl", json.dumps(line) + "\n"), "--json", "--database-url", sqlite_url)
    assert json.loads(refused.stdout)["errors"][0]["reason"].startswith("command: field required")

    assert schema_problems(line, command_schema) != []


# -- mistakes: one line on stderr, an exit code, never a traceback ---------------------------------


def test_malformed_database_url_is_a_one_line_error_exit_2():
    result = cli("census", "--database-url", "nonsense://x")

    assert result.exit_code == 2
    assert len(nonblank(result.stderr)) == 1
    assert "unsupported database URL 'nonsense://x'" in result.stderr


def test_database_url_comes_from_the_environment(populated):
    result = cli("census", "--json", env={"CONTINUUM_DATABASE_URL": populated})

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total"] == 3


def test_missing_import_file_is_a_one_line_error_exit_2(sqlite_url, tmp_path):
    result = cli("import", tmp_path / "nope.jsonl", "--database-url", sqlite_url)

    assert result.exit_code == 2
    assert len(nonblank(result.stderr)) == 1
    assert "no such file" in result.stderr
    assert "nope.jsonl" in result.stderr


def test_unreachable_postgres_is_one_line_exit_2_within_seconds():
    started = time.monotonic()
    result = run("census", "--database-url", UNREACHABLE_POSTGRES, timeout=20)

    assert time.monotonic() - started < 5
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(nonblank(result.stderr)) == 1, result.stderr
    assert "cannot reach database postgresql://postgres@127.0.0.1:1/nope" in result.stderr
    assert result.stdout == ""


MISTAKES = [
    pytest.param(["census", "--database-url", "nonsense://x"], 2, "unsupported database URL", id="malformed-url"),
    pytest.param(["census", "--database-url", "sqlite:////no/such/folder/x.db"], 2, "does not exist", id="missing-folder"),
    pytest.param(["import", "{tmp}/missing.jsonl", "--database-url", "{db}"], 2, "no such file", id="missing-import-file"),
    pytest.param(["import", "{tmp}", "--database-url", "{db}"], 2, "no such file", id="import-a-folder"),
    pytest.param(["census", "--level", "9.9", "--database-url", "{db}"], 2, "unknown level of care", id="unknown-level"),
    pytest.param(["census", "--on", "last tuesday", "--database-url", "{db}"], 2, "is not a date", id="bad-date"),
    pytest.param(["history", "C-999", "--database-url", "{db}"], 2, "no store at", id="read-of-a-missing-store"),
    pytest.param(["rebuild", "nosuch", "--database-url", "{db}"], 2, "no projection named", id="unknown-projection"),
]


@pytest.mark.parametrize(("args", "code", "message"), MISTAKES)
def test_a_user_mistake_prints_one_line_without_traceback(tmp_path, args, code, message):
    url = f"sqlite:///{tmp_path}/continuum.db"
    result = run(*[arg.format(tmp=tmp_path, db=url) for arg in args])

    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert len(nonblank(result.stderr)) == 1, result.stderr
    assert message in result.stderr


def test_bad_import_lines_print_no_traceback_in_a_real_process(tmp_path):
    url = f"sqlite:///{tmp_path}/continuum.db"
    result = run("import", str(write(tmp_path, "mixed.jsonl", mixed_text())), "--database-url", url)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert sorted(int(n) for n in re.findall(r"^line (\d+):", result.stderr, flags=re.MULTILINE)) == sorted(BAD)
    assert plain(result.stdout) == f"{len(GOOD)} commands applied ({EVENTS} events), 0 already recorded, {len(BAD)} refused"


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        pytest.param(["import", "{tmp}/data [v2].jsonl"], "data [v2].jsonl", id="file-name-with-brackets"),
        pytest.param(["import", "{tmp}/[/x].jsonl"], "[/x].jsonl", id="file-name-with-closing-tag"),
        pytest.param(["census", "--on", "[/x]"], "'[/x]' is not a date", id="date-with-closing-tag"),
    ],
)
def test_a_mistake_naming_text_in_brackets_is_shown_verbatim_in_one_line(tmp_path, args, shown):
    url = f"sqlite:///{tmp_path}/continuum.db"
    result = run(*[arg.format(tmp=tmp_path) for arg in args], "--database-url", url)

    assert "Traceback" not in result.stderr
    assert result.returncode == 2, result.stderr
    assert len(nonblank(result.stderr)) == 1, result.stderr
    assert shown in result.stderr


def test_an_import_file_that_is_not_utf8_is_reported_without_traceback(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD[1]).encode() + b"\n" + '{"site": "M\u00fcnster"}'.encode("latin-1") + b"\n")
    result = run("import", str(path), "--database-url", f"sqlite:///{tmp_path}/continuum.db")

    assert "Traceback" not in result.stderr
    assert result.returncode in (1, 2), result.stderr
    assert len(nonblank(result.stderr)) <= 3, result.stderr  # one error line, beside the two progress lines at most


# -- project --follow ----------------------------------------------------------------------------


def _read_line(stream: Any, timeout: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            pytest.fail(f"no output within {timeout} s")
    return str(stream.readline())


def _wait_for_lag_0(url: str, head: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if set(heads(url).values()) == {(head, head)}:
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"projections did not reach {head} within {timeout} s: {heads(url)}")


def _stop(follower: subprocess.Popen[str]) -> tuple[str, str]:
    follower.send_signal(signal.SIGTERM)
    out, err = follower.communicate(timeout=15)
    return out, err


def _follower(url: str, **extra_env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own console script
        [str(CONTINUUM), "project", "--follow", "--database-url", url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(**extra_env),
    )


def _kill(follower: subprocess.Popen[str]) -> None:
    if follower.poll() is None:
        follower.kill()
        follower.communicate(timeout=10)


def test_project_follow_on_sqlite_picks_up_events_from_another_process_and_stops_on_sigterm(sqlite_url):
    bootstrap(Settings(database_url=sqlite_url)).close()  # a follower reads a store; it does not create one
    follower = _follower(sqlite_url)
    try:
        assert "(polling every 0.5 s)" in _read_line(follower.stderr, 15)
        record_without_projecting(sqlite_url, [json.dumps(GOOD[1]), json.dumps(GOOD[2])])

        assert _wait_for_lag_0(sqlite_url, 2, timeout=10) < 5

        out, err = _stop(follower)
    finally:
        _kill(follower)
    assert follower.returncode == 0, err
    assert "Traceback" not in err
    assert plain(out).endswith("stopped; census at 2 (lag 0), step_history at 2 (lag 0), audit_trail at 2 (lag 0), flags at 2 (lag 0), outcomes at 2 (lag 0), attendance at 2 (lag 0), drug_tests at 2 (lag 0)")


@pytest.mark.postgres
def test_project_follow_on_postgres_is_woken_by_notify_and_stops_on_sigterm(pg_url):
    poll = 3.0  # a wake-up well before the poll interval can only come from LISTEN/NOTIFY
    follower = _follower(pg_url, CONTINUUM_POLL_INTERVAL=str(poll))
    try:
        assert "(LISTEN/NOTIFY)" in _read_line(follower.stderr, 15)
        record_without_projecting(pg_url, [json.dumps(GOOD[1])])
        _wait_for_lag_0(pg_url, 1, timeout=10)
        time.sleep(0.3)  # the follower is back waiting on its LISTEN connection

        record_without_projecting(pg_url, [json.dumps(GOOD[2])])

        assert _wait_for_lag_0(pg_url, 2, timeout=10) < poll / 2
        out, err = _stop(follower)
    finally:
        _kill(follower)
    assert follower.returncode == 0, err
    assert "Traceback" not in err
    assert plain(out).endswith("stopped; census at 2 (lag 0), step_history at 2 (lag 0), audit_trail at 2 (lag 0), flags at 2 (lag 0), outcomes at 2 (lag 0), attendance at 2 (lag 0), drug_tests at 2 (lag 0)")


# -- demo ----------------------------------------------------------------------------------------


def test_demo_records_a_cohort_and_shows_census_steps_and_audit_lines(sqlite_url):
    result = cli("demo", "--clients", 40, "--seed", 3, "--database-url", sqlite_url)

    assert result.exit_code == 0, result.output
    text = plain(result.stdout)
    assert "Census at the end of the cohort (2025-12-31 23:59 UTC)" in text
    assert "Steps in the cohort" in text
    assert "First audit lines of" in text
    assert re.search(r"\b\d+ commands → \d+ events \(0 already recorded, 0 refused\)", text), text
    status = heads(sqlite_url)
    assert len({head for _, head in status.values()}) == 1
    assert next(iter(status.values()))[1] > 40


def test_demo_run_twice_records_nothing_new_the_second_time(sqlite_url):
    first = cli("demo", "--clients", 40, "--seed", 3, "--database-url", sqlite_url)
    assert first.exit_code == 0, first.output
    before = heads(sqlite_url)

    second = cli("demo", "--clients", 40, "--seed", 3, "--database-url", sqlite_url)

    assert second.exit_code == 0, second.output
    assert re.search(r"\b0 commands → 0 events \(\d+ already recorded, 0 refused\)", plain(second.stdout)), plain(second.stdout)
    assert heads(sqlite_url) == before


def test_demo_writes_the_same_cohort_of_2025_whatever_the_day(tmp_path, monkeypatch):
    """The default window is the calendar year 2025, not a year before today: the same lines on any day."""
    first = cli("demo", "--clients", 30, "--seed", 5, "--write", tmp_path / "a.jsonl", "--database-url",
                f"sqlite:///{tmp_path}/a.db")
    monkeypatch.setitem(bootstrap.__kwdefaults__, "clock", lambda: datetime(2031, 6, 15, 8, tzinfo=UTC))
    later = cli("demo", "--clients", 30, "--seed", 5, "--write", tmp_path / "b.jsonl", "--database-url",
                f"sqlite:///{tmp_path}/b.db")

    assert (first.exit_code, later.exit_code) == (0, 0), first.output + later.output
    lines = (tmp_path / "a.jsonl").read_text(encoding="utf-8")
    assert (tmp_path / "b.jsonl").read_text(encoding="utf-8") == lines
    times = [datetime.fromisoformat(json.loads(line)["occurred_at"]) for line in lines.splitlines()]
    assert YEAR_2025[0] <= min(times) <= max(times) <= YEAR_2025[1]
    assert lines == "\n".join(cohort_lines(30, 5, start=YEAR_2025[0], end=YEAR_2025[1])) + "\n"


def test_demo_window_from_start_and_end_options_up_to_the_clock(sqlite_url, tmp_path):
    result = cli("demo", "--clients", 10, "--seed", 2, "--end", "today", "--write", tmp_path / "d.jsonl",
                 "--database-url", sqlite_url)

    assert result.exit_code == 0, result.output
    assert "Census at the end of the cohort (2026-11-24 12:00 UTC)" in plain(result.stdout)  # NOW: the service's clock
    times = [datetime.fromisoformat(json.loads(line)["occurred_at"]) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert NOW - timedelta(days=365) < min(times) <= max(times) <= NOW
    assert max(times) > NOW - timedelta(days=30)


@pytest.mark.parametrize(("options", "problem"), [
    (["--end", "2026-11-25"], "error: --end 2026-11-25 is after today (2026-11-24)"),
    (["--start", "2025-02-30"], "error: --start '2025-02-30' is not a date (YYYY-MM-DD)"),
    (["--start", "2025-07-01", "--end", "2025-06-30"], "error: --start 2025-07-01 is after the end of the window"),
])
def test_demo_window_that_cannot_be_generated_is_one_line_exit_2(sqlite_url, options, problem):
    result = cli("demo", "--clients", 5, *options, "--database-url", sqlite_url)

    assert result.exit_code == 2, result.output
    assert len(nonblank(result.stderr)) == 1
    assert plain(result.stderr).startswith(problem), result.stderr


@pytest.mark.parametrize(("options", "this"), [
    pytest.param(["--clients", 40, "--seed", 4], "seed 4, 40 clients, 2025-01-01 00:00 to 2025-12-31 23:59 UTC", id="seed"),
    pytest.param(["--clients", 41, "--seed", 3], "seed 3, 41 clients, 2025-01-01 00:00 to 2025-12-31 23:59 UTC", id="size"),
    pytest.param(["--clients", 40, "--seed", 3, "--start", "2025-01-02", "--end", "2025-12-31"],
                 "seed 3, 40 clients, 2025-01-02 00:00 to 2025-12-31 23:59 UTC", id="window"),
])
def test_demo_into_a_store_holding_another_cohort_is_refused_and_records_nothing(database_url, tmp_path, options, this):
    recorded = cli("demo", "--clients", 40, "--seed", 3, "--database-url", database_url)
    assert recorded.exit_code == 0, recorded.output
    before = heads(database_url)

    result = cli("demo", *options, "--write", tmp_path / "other.jsonl", "--database-url", database_url)

    assert result.exit_code == 1, result.output
    assert plain(result.stderr) == (
        "refused: the store already holds another demo cohort (seed 3, 40 clients, 2025-01-01 00:00 to 2025-12-31"
        f" 23:59 UTC); this demo is {this}: record it into an empty store (--database-url) or repeat the options of"
        " the cohort recorded"
    )
    assert len(nonblank(result.stderr)) == 1
    assert result.stdout == ""
    assert not (tmp_path / "other.jsonl").exists()
    assert heads(database_url) == before


def test_demo_into_a_store_holding_other_events_is_refused(populated):
    before = heads(populated)

    result = cli("demo", "--clients", 5, "--database-url", populated)

    assert result.exit_code == 1, result.output
    assert len(nonblank(result.stderr)) == 1
    assert plain(result.stderr).startswith("refused: the store already holds events that are not this demo's")
    assert heads(populated) == before
