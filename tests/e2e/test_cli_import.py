"""`continuum import`: a refused line holds its client's later lines; `--dry-run` records nothing.

Each test runs on a fresh SQLite file and a fresh PostgreSQL schema. Clinical times are fixed dates
in March 2024: in the past whatever day the tests run, and the journey refuses only future times.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from services.cli import app

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def at(day: int, hour: int = 9) -> str:
    return f"2024-03-{day:02d}T{hour:02d}:00:00-05:00"


# Line 5 for C-1042 is refused (a step up to a lower level): its lines 6 and 8 are held; C-2001 goes on.
FILE: list[dict[str, Any]] = [
    {"command": "register", "client": "C-1042", "occurred_at": at(1), "site": "north"},
    {"command": "register", "client": "C-2001", "occurred_at": at(1), "site": "north"},
    {"command": "admit", "client": "C-1042", "occurred_at": at(2), "level": "2.1", "site": "north", "track": "evening"},
    {"command": "admit", "client": "C-2001", "occurred_at": at(2), "level": "2.1", "site": "north", "track": "day"},
    {"command": "step_up", "client": "C-1042", "occurred_at": at(9), "to_level": "1", "reason": "use"},
    {"command": "attend_session", "client": "C-1042", "occurred_at": at(10, 18), "session_id": "s-1"},
    {"command": "attend_session", "client": "C-2001", "occurred_at": at(10, 10), "session_id": "s-1"},
    {"command": "discharge", "client": "C-1042", "occurred_at": at(20), "reason": "completed"},
    {"command": "discharge", "client": "C-2001", "occurred_at": at(20), "reason": "completed"},
]
SUMMARY = "6 commands applied (6 events), 0 already recorded, 1 refused, 2 held"
HELD = ["line 6 held: line 5 for C-1042 was refused", "line 8 held: line 5 for C-1042 was refused"]

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
    return " ".join(ANSI.sub("", text).split())


def problems(result: Result) -> list[str]:
    return [" ".join(line.split()) for line in ANSI.sub("", result.stderr).splitlines() if line.startswith("line ")]


def write(tmp_path: Path, rows: list[dict[str, Any]], name: str = "file.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def read_json(*args: object) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def store_state(url: str) -> tuple[Any, ...]:
    """Every projection's position and head, the census with its clients, and the step matrix."""
    status = read_json("status", "--database-url", url)
    census = read_json("census", "--clients", "--database-url", url)
    return (
        [(p["name"], p["position"], p["head"]) for p in status["projections"]],
        census["counts"], census["clients"],
        read_json("matrix", "--database-url", url),
    )


def test_a_refused_line_holds_its_clients_later_lines_and_exits_1(database_url, tmp_path):
    result = cli("import", write(tmp_path, FILE), "--database-url", database_url)

    assert result.exit_code == 1, result.output
    assert plain(result.stdout) == SUMMARY
    shown = problems(result)
    assert shown[0].startswith("line 5: client C-1042: step up must raise intensity")
    assert shown[1:] == HELD
    trail = read_json("audit", "C-1042", "--database-url", database_url)["entries"]
    assert [entry["type"] for entry in trail] == ["ClientRegistered", "AdmittedToLevel"]
    trail = read_json("audit", "C-2001", "--database-url", database_url)["entries"]
    assert [entry["type"] for entry in trail] == ["ClientRegistered", "AdmittedToLevel", "SessionAttended", "Discharged"]


def test_holds_cross_units_of_work(database_url, tmp_path):
    result = cli("import", write(tmp_path, FILE), "--database-url", database_url, env={"CONTINUUM_COMMAND_BATCH_SIZE": "2"})

    assert result.exit_code == 1, result.output
    assert plain(result.stdout) == SUMMARY
    assert problems(result)[1:] == HELD


def test_import_json_counts_and_lists_held_lines(database_url, tmp_path):
    report = json.loads(cli("import", write(tmp_path, FILE), "--json", "--database-url", database_url).stdout)

    assert (report["applied"], report["duplicates"], report["refused"], report["held"]) == (6, 0, 1, 2)
    assert [error["line"] for error in report["errors"]] == [5]
    assert report["held_lines"] == [
        {"line": 6, "held_by": 5, "client": "C-1042", "reason": "held: line 5 for C-1042 was refused"},
        {"line": 8, "held_by": 5, "client": "C-1042", "reason": "held: line 5 for C-1042 was refused"},
    ]
    assert report["dry_run"] is False


def test_an_invalid_line_that_names_its_client_holds_it(database_url, tmp_path):
    rows = [FILE[0], {**FILE[2], "level": "9.9"}, FILE[5]]

    result = cli("import", write(tmp_path, rows), "--database-url", database_url)

    assert result.exit_code == 1, result.output
    assert plain(result.stdout) == "1 commands applied (1 events), 0 already recorded, 1 refused, 1 held"
    assert problems(result)[1] == "line 3 held: line 2 for C-1042 was refused"


def test_a_dry_run_records_nothing_and_reports_what_the_import_then_does(database_url, tmp_path):
    path = write(tmp_path, FILE)
    assert cli("import", write(tmp_path, [], "empty.jsonl"), "--database-url", database_url).exit_code == 0  # a store, empty
    before = store_state(database_url)

    dry = cli("import", path, "--dry-run", "--database-url", database_url, env={"CONTINUUM_COMMAND_BATCH_SIZE": "2"})

    assert dry.exit_code == 1, dry.output
    assert plain(dry.stdout) == f"dry run: {SUMMARY.replace('applied', 'would be applied')}; nothing was recorded"
    assert problems(dry)[1:] == HELD
    assert store_state(database_url) == before
    checked = json.loads(cli("import", path, "--dry-run", "--json", "--database-url", database_url).stdout)
    recorded = json.loads(cli("import", path, "--json", "--database-url", database_url).stdout)
    assert (checked.pop("dry_run"), checked.pop("position"), recorded.pop("dry_run"), recorded.pop("position")) == (True, 0, False, 6)
    assert checked == recorded
    assert [(p["position"], p["head"]) for p in read_json("status", "--database-url", database_url)["projections"]][:3] == [(6, 6)] * 3


def test_a_dry_run_of_lines_already_recorded_reports_duplicates(database_url, tmp_path):
    first = cli("import", write(tmp_path, FILE[:4], "first.jsonl"), "--database-url", database_url)
    assert first.exit_code == 0, first.output
    before = store_state(database_url)

    dry = cli("import", write(tmp_path, FILE), "--dry-run", "--json", "--database-url", database_url)

    report = json.loads(dry.stdout)
    assert (report["applied"], report["duplicates"], report["events"], report["refused"], report["held"]) == (2, 4, 2, 1, 2)
    assert store_state(database_url) == before


def test_a_clean_dry_run_exits_0(database_url, tmp_path):
    rows = [row for row in FILE if row["client"] == "C-2001"]

    result = cli("import", write(tmp_path, rows), "--dry-run", "--database-url", database_url)

    assert result.exit_code == 0, result.output
    expected = "dry run: 4 commands would be applied (4 events), 0 already recorded, 0 refused; nothing was recorded"
    assert plain(result.stdout) == expected
    assert read_json("status", "--database-url", database_url)["projections"][0]["head"] == 0
