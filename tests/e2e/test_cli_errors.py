"""Nothing silent, no tracebacks: a read of a store that is not there says so and creates nothing; a
setting or option that cannot work is refused in one line that names it; a file that is not what
it should be is one line, never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.cli_support import COHORT, clean_environment, cli, jsonl, nonblank, read_json, recorded, run


@pytest.fixture(autouse=True)
def _no_continuum_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the options given here, never from the developer's CONTINUUM_* variables."""
    for key in set(os.environ) - set(clean_environment()):
        monkeypatch.delenv(key)


def one_line(result: object, code: int, *fragments: str) -> str:
    """The process exited with `code` and said one line on stderr, with each fragment, without a traceback."""
    stderr = getattr(result, "stderr", "")
    exit_code = getattr(result, "returncode", getattr(result, "exit_code", None))
    assert exit_code == code, stderr
    assert "Traceback" not in stderr
    lines = nonblank(stderr)
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# -- a read never creates a store -------------------------------------------------------------

READS = [
    pytest.param(["census"], id="census"),
    pytest.param(["census", "--on", "2025-03-31", "--clients"], id="census-on-a-date"),
    pytest.param(["history", "C-1"], id="history"),
    pytest.param(["matrix"], id="matrix"),
    pytest.param(["audit", "C-1"], id="audit"),
    pytest.param(["replay", "C-1"], id="replay"),
    pytest.param(["verify"], id="verify"),
    pytest.param(["verify", "--expect-head", "ab" * 32], id="verify-expect-head"),
    pytest.param(["access-log"], id="access-log"),
    pytest.param(["export-audit", "C-1", "--out", "{tmp}/package.json"], id="export-audit"),
    pytest.param(["status"], id="status"),
    pytest.param(["project"], id="project"),
    pytest.param(["rebuild", "--all"], id="rebuild"),
    pytest.param(["relay", "--bootstrap-servers", "127.0.0.1:1"], id="relay"),
    pytest.param(["token", "list"], id="token-list"),
    pytest.param(["serve", "--port", "8123"], id="serve"),
]


@pytest.mark.parametrize("args", READS)
def test_a_read_of_a_sqlite_file_that_does_not_exist_says_so_and_creates_nothing(tmp_path, args):
    store = tmp_path / "elsewhere.db"

    result = run(*[arg.format(tmp=tmp_path) for arg in args], "--database-url", f"sqlite:///{store}")

    one_line(result, 2, f"no store at sqlite:///{store}", "does not exist")
    assert not store.exists()
    assert result.stdout == ""


def test_verify_expect_head_in_the_wrong_folder_is_no_store_not_tampered(tmp_path):
    result = cli("verify", "--expect-head", "ab" * 32, "--database-url", f"sqlite:///{tmp_path}/continuum.db")

    assert result.exit_code == 2
    assert "no store at" in result.stderr
    assert "TAMPERED" not in result.output


def test_the_default_store_in_the_current_folder_is_not_created_by_a_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    result = cli("census")

    assert result.exit_code == 2
    assert "no store at sqlite:///./continuum.db" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["import", "{tmp}/cohort.jsonl"], id="import"),
        pytest.param(["token", "add", "wallboard", "--role", "dashboard"], id="token-add"),
    ],
)
def test_a_write_creates_the_store(tmp_path, args):
    jsonl(tmp_path / "cohort.jsonl", COHORT[:2])
    store = tmp_path / "new.db"

    result = cli(*[arg.format(tmp=tmp_path) for arg in args], "--database-url", f"sqlite:///{store}")

    assert result.exit_code == 0, result.output
    assert store.exists()


def test_import_then_read_of_the_same_file_works(tmp_path):
    url = recorded(f"sqlite:///{tmp_path}/continuum.db", tmp_path)

    assert read_json("census", "--on", "2025-03-31", "--database-url", url)["total"] == len(
        [line for line in COHORT if line["command"] == "register"],
    )


# -- settings and options that cannot work ----------------------------------------------------


@pytest.fixture
def cohort(database_url: str, tmp_path: Path) -> str:
    return recorded(database_url, tmp_path)


def test_a_projection_batch_size_of_0_is_refused_and_the_census_stays_whole(cohort):
    before = read_json("census", "--on", "2025-03-31", "--database-url", cohort)

    refused = cli("rebuild", "--all", "--database-url", cohort, env={"CONTINUUM_PROJECTION_BATCH_SIZE": "0"})

    assert refused.exit_code == 2
    assert "invalid setting CONTINUUM_PROJECTION_BATCH_SIZE='0'" in refused.stderr
    assert "greater than or equal to 1" in refused.stderr
    assert refused.stdout == ""
    assert read_json("census", "--on", "2025-03-31", "--database-url", cohort) == before
    assert before["total"] == 8


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        pytest.param("CONTINUUM_PROJECTION_BATCH_SIZE", "0", "greater than or equal to 1", id="batch-0"),
        pytest.param("CONTINUUM_COMMAND_BATCH_SIZE", "-5", "greater than or equal to 1", id="command-batch-negative"),
        pytest.param("CONTINUUM_LOG_LEVEL", "loud", "is not a log level", id="log-level"),
        pytest.param("CONTINUUM_TIMEZONE", "Mars/Olympus", "is not an IANA time zone", id="timezone"),
        pytest.param("CONTINUUM_API_PORT", "99999", "less than or equal to 65535", id="api-port"),
        pytest.param("CONTINUUM_POLL_INTERVAL", "0", "greater than 0", id="poll-interval"),
        pytest.param("CONTINUUM_ACTOR", "", "must not be empty", id="empty-actor"),
        pytest.param("CONTINUUM_CIPHER_KEY", "not-base64!", "not base64", id="cipher-key"),
    ],
)
def test_an_invalid_setting_is_one_line_naming_it_in_a_real_process(tmp_path, variable, value, said):
    url = recorded(f"sqlite:///{tmp_path}/continuum.db", tmp_path)

    result = run("census", "--database-url", url, **{variable: value})

    line = one_line(result, 2, "invalid setting", variable, said)
    assert result.stdout == ""
    if variable == "CONTINUUM_CIPHER_KEY":
        assert value not in line  # a key is never echoed


def test_an_invalid_log_level_stops_serve_in_one_line(tmp_path):
    url = recorded(f"sqlite:///{tmp_path}/continuum.db", tmp_path)

    one_line(run("serve", "--port", "8124", "--database-url", url, CONTINUUM_LOG_LEVEL="verbose"), 2, "CONTINUUM_LOG_LEVEL='verbose'")


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_serve_on_a_port_that_does_not_exist_is_one_line(tmp_path, port):
    url = recorded(f"sqlite:///{tmp_path}/continuum.db", tmp_path)

    one_line(run("serve", "--port", port, "--database-url", url), 2, f"--port {port} is not a TCP port", "1 to 65535")


@pytest.mark.parametrize("actor", ["", "   "])
def test_an_empty_actor_is_refused_and_nothing_is_recorded(tmp_path, actor):
    url = f"sqlite:///{tmp_path}/continuum.db"

    refused = cli("import", jsonl(tmp_path / "lines.jsonl", COHORT[:1]), "--actor", actor, "--database-url", url)

    assert refused.exit_code == 2
    assert "invalid setting --actor / CONTINUUM_ACTOR" in refused.stderr
    assert "must not be empty" in refused.stderr
    assert not (tmp_path / "continuum.db").exists()


def test_an_empty_actor_cannot_read_a_record_either(cohort):
    refused = cli("history", "C-1", "--actor", "", "--database-url", cohort)

    assert refused.exit_code == 2
    assert "--actor / CONTINUUM_ACTOR" in refused.stderr
    assert read_json("access-log", "--database-url", cohort)["records"] == []


def test_an_empty_role_is_refused(cohort):
    refused = cli("audit", "C-1", "--role", "", "--database-url", cohort)

    assert refused.exit_code == 2
    assert "invalid setting --role / CONTINUUM_ROLE" in refused.stderr


# -- verify --file on what is not a whole audit package -----------------------------------------


@pytest.fixture
def package(cohort: str, tmp_path: Path) -> dict[str, object]:
    out = tmp_path / "package.json"
    exported = cli("export-audit", "C-6", "--out", out, "--database-url", cohort)
    assert exported.exit_code == 0, exported.output
    return json.loads(out.read_text(encoding="utf-8"))


def _without(package: dict[str, object], *path: object) -> dict[str, object]:
    copy = json.loads(json.dumps(package))
    holder = copy
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    return copy


def test_verify_file_of_an_exported_package_is_intact(package, tmp_path):
    path = tmp_path / "whole.json"
    path.write_text(json.dumps(package), encoding="utf-8")

    result = cli("verify", "--file", path)

    assert result.exit_code == 0, result.output
    assert "intact: 4 events of C-6" in result.stdout


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        pytest.param(lambda _: [], "not a care-continuum audit package: the file holds a JSON array", id="empty-array"),
        pytest.param(lambda _: {}, "not a care-continuum audit package (format None)", id="empty-object"),
        pytest.param(lambda _: "package", "the file holds a JSON string", id="a-string"),
        pytest.param(lambda p: _without(p, "events"), "incomplete audit package: no events", id="no-events"),
        pytest.param(lambda p: _without(p, "journey_id"), "incomplete audit package: no journey_id", id="no-journey-id"),
        pytest.param(lambda p: _without(p, "events", 1, "row_hash"), "event 2 has no row_hash", id="event-without-hash"),
        pytest.param(lambda p: {**p, "events": [1, 2]}, "event 1 has no position", id="events-not-objects"),
        pytest.param(lambda p: _without(p, "access_records", 0, "hash"), "access record 1 does not have exactly", id="record-part"),
        pytest.param(lambda p: {**p, "journey_id": "not-a-uuid"}, "malformed audit package: ValueError", id="bad-journey-id"),
    ],
)
def test_verify_file_of_a_partial_package_is_one_line_and_exit_1(package, tmp_path, damage, said):
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(damage(package)), encoding="utf-8")

    result = run("verify", "--file", path)

    one_line(result, 1, said)
    assert result.stdout == ""

    as_json = cli("verify", "--file", path, "--json")
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert said in report["problems"][0]


# -- export-audit --out where nothing can be written ----------------------------------------------


@pytest.mark.parametrize(
    ("out", "said"),
    [
        pytest.param("{tmp}/no/such/folder/package.json", "folder {tmp}/no/such/folder does not exist", id="missing-folder"),
        pytest.param("{tmp}", "is a folder: give a file name", id="a-folder"),
        pytest.param("{tmp}/cohort.jsonl/package.json", "folder {tmp}/cohort.jsonl does not exist", id="under-a-file"),
    ],
)
def test_export_audit_to_a_path_that_cannot_be_written_is_one_line_and_reads_nothing(cohort, tmp_path, out, said):
    result = run("export-audit", "C-1", "--out", out.format(tmp=tmp_path), "--database-url", cohort)

    one_line(result, 2, said.format(tmp=tmp_path))
    assert read_json("access-log", "--database-url", cohort)["records"] == []  # refused before the record was read


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_export_audit_that_fails_while_writing_is_one_line(cohort):
    one_line(run("export-audit", "C-1", "--out", "/dev/full", "--database-url", cohort), 2, "cannot write /dev/full")


# -- import files ------------------------------------------------------------------------------------


def test_an_import_file_starting_with_a_byte_order_mark_is_accepted(database_url, tmp_path):
    path = jsonl(tmp_path / "excel.jsonl", COHORT[:2], prefix=b"\xef\xbb\xbf")

    result = cli("import", path, "--json", "--database-url", database_url)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["applied"], report["errors"]) == (2, [])
    assert [entry["type"] for entry in read_json("audit", "C-1", "--database-url", database_url)["entries"]] == ["ClientRegistered"]
