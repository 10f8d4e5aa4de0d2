"""Audit packages: `export-audit` writes one self-contained JSON document that `verify --file` checks
without any database, and that fails to verify (exit 1, the problem named) once altered. Exported
from SQLite and from PostgreSQL; also from a store that encrypts events at rest."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.chain import GENESIS
from infra.config import Settings, parse_database_url
from services.audit_package import verify_package
from services.bootstrap import Continuum, bootstrap
from tests.integration.audit_builders import (
    UNREACHABLE_POSTGRES,
    cli,
    cli_json,
    correction_history,
    drug_test_history,
    jid,
    plain,
    raw,
)

Package = dict[str, Any]
NO_DATABASE = [UNREACHABLE_POSTGRES, "sqlite:////nonexistent-folder/none.db"]


def export(url: str, client: str, out: Path, env: dict[str, str] | None = None) -> Package:
    result = cli(url, "export-audit", client, "--out", out, "--actor", "aud-1", "--role", "auditor", "--purpose", "accreditation",
                 env=env)
    assert result.exit_code == 0, result.output
    assert f"to {out}" in plain(result.stdout)
    package: Package = json.loads(out.read_text(encoding="utf-8"))
    return package


def verify_file(package: Package, path: Path, *, code: int) -> dict[str, Any]:
    """`verify --file` against a database that does not exist: the package must need none."""
    path.write_text(json.dumps(package), encoding="utf-8")
    data = None
    for nowhere in NO_DATABASE:
        data = cli_json(nowhere, "verify", "--file", path, code=code)
    assert data is not None
    return data


@pytest.fixture
def exported(wired: Continuum, database_url: str, tmp_path: Path) -> Package:
    """K-1's package: five events (the admission's site corrected by v5) and one access record (the export)."""
    correction_history(wired)
    wired.runner.catch_up()
    return export(database_url, "K-1", tmp_path / "k1.json")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def package(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Package]:
    """The same package as `exported`, made once per database for the tests that only alter a copy of it."""
    folder = tmp_path_factory.mktemp("package")
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{folder}/continuum.db"
    else:
        base = request.getfixturevalue("postgres_url")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        url = f"{base}{'&' if '?' in base else '?'}schema={schema}"
    wired = bootstrap(Settings(database_url=url))
    try:
        correction_history(wired)
        wired.runner.catch_up()
        yield export(url, "K-1", folder / "k1.json")
    finally:
        wired.close()
        if schema is not None:
            with raw(url) as connection:
                connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_an_exported_package_carries_both_times_actors_corrections_links_and_access(exported, database_url):
    package = exported
    assert package["format"] == "care-continuum audit package"
    assert (package["client"], package["journey_id"], package["encrypted_at_rest"]) == ("K-1", str(jid("K-1")), False)
    assert package["exported_by"] == "aud-1 (auditor)"
    events = package["events"]
    assert [(e["version"], e["type"]) for e in events] == [
        (1, "ClientRegistered"), (2, "AdmittedToLevel"), (3, "SessionAttended"), (4, "SessionAttended"), (5, "EntryCorrected"),
    ]
    admission, correction = events[1], events[4]
    assert admission["payload"]["site"] == "north"  # as recorded: the correction is an event of its own
    assert admission["recorded_by"] == {"id": "dr-ames", "role": "clinician"}
    assert admission["occurred_at"] < admission["recorded_at"]
    assert (correction["payload"]["corrects_version"], correction["payload"]["field"], correction["payload"]["corrected_value"]) == (
        2, "site", "south")
    assert correction["recorded_by"] == {"id": "sup-9", "role": "supervisor"}
    with raw(database_url) as connection:
        links = connection.execute(
            "SELECT notification_id, row_hash, journey_link, global_link FROM event_chain WHERE originator_id = ? ORDER BY notification_id",
            (str(jid("K-1")),),
        )
        global_head = connection.execute("SELECT global_link FROM event_chain ORDER BY notification_id DESC LIMIT 1")[0][0]
    assert [(e["position"], e["row_hash"], e["journey_link"], e["global_link"]) for e in events] == [tuple(row) for row in links]
    assert (package["journey_head"], package["global_head"]) == (events[-1]["journey_link"], global_head)
    assert [(r["actor_id"], r["role"], r["what"], r["purpose"]) for r in package["access_records"]] == [
        ("aud-1", "auditor", "export-audit", "accreditation"),
    ]
    assert "continuum verify --file" in package["how_to_verify"]


def test_an_exported_package_verifies_offline(exported, database_url, tmp_path):
    if database_url.startswith("sqlite"):  # the store is gone altogether
        database = Path(parse_database_url(database_url).path)
        for leftover in database.parent.glob(database.name + "*"):
            leftover.unlink()
    data = verify_file(exported, tmp_path / "copy.json", code=0)
    assert data == {"ok": True, "client": "K-1", "events_checked": 5, "journey_head": exported["journey_head"], "problems": []}
    (tmp_path / "text.json").write_text(json.dumps(exported), encoding="utf-8")
    result = cli(UNREACHABLE_POSTGRES, "verify", "--file", tmp_path / "text.json")
    assert result.exit_code == 0, result.output
    assert f"intact: 5 events of K-1; journey head {exported['journey_head']}" in plain(result.stdout)


def test_the_package_recipe_can_be_followed_by_hand(package):
    """The `how_to_verify` note is enough: recompute the chain with hashlib alone."""
    previous = "0" * 64
    for event in package["events"]:
        head = f"{event['position']}|{package['journey_id']}|{event['version']}|{event['topic']}|".encode()
        hashed = hashlib.sha256(head + base64.b64decode(event["stored_state"])).hexdigest()
        assert hashed == event["row_hash"]
        previous = hashlib.sha256(f"{previous}{hashed}".encode()).hexdigest()
        assert previous == event["journey_link"]
        stored = json.loads(base64.b64decode(event["stored_state"]))
        assert stored["timestamp"]["_data_"] == event["recorded_at"]
    assert previous == package["journey_head"]
    for record in package["access_records"]:
        fields = [record[name] for name in ("seq", "at", "actor_id", "role", "client_ref", "what", "purpose")]
        assert hashlib.sha256((record["prev_hash"] + json.dumps(fields, separators=(",", ":"))).encode()).hexdigest() == record["hash"]


def _flip_state_byte(package: Package) -> None:
    state = bytearray(base64.b64decode(package["events"][2]["stored_state"]))
    state[state.index(b"180")] = ord("9")  # the session's 180 minutes become 980
    package["events"][2]["stored_state"] = base64.b64encode(bytes(state)).decode()


def _set(path: tuple[Any, ...], value: Any) -> Callable[[Package], None]:
    def alter(package: Package) -> None:
        target = package
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return alter


ALTERATIONS: dict[str, tuple[Callable[[Package], None], str]] = {
    "payload value changed": (_set(("events", 1, "payload", "site"), "east"),
                              "event #2 (version 2): shown site differ from the stored state: altered"),
    "clinical time changed": (_set(("events", 2, "occurred_at"), "2026-01-01T09:00:00+00:00"),
                              "(version 3): shown occurred_at differ from the stored state: altered"),
    "actor changed": (_set(("events", 3, "recorded_by"), {"id": "someone-else", "role": "clinician"}),
                      "(version 4): shown recorded_by differ from the stored state: altered"),
    "event removed": (lambda package: package["events"].pop(2),
                      "(version 4): follows version 2: an event is missing or out of order"),
    "last event removed": (lambda package: package["events"].pop(), "is not the last link"),
    "events reordered": (lambda package: package["events"].insert(2, package["events"].pop(3)),
                         "(version 4): follows version 2: an event is missing or out of order"),
    "stored_state byte changed": (_flip_state_byte, "(version 3): stored state does not match row_hash: altered"),
    "journey link changed": (_set(("events", 3, "journey_link"), "f" * 64),
                             "(version 4): journey_link does not follow from the previous link: altered"),
    "access record edited": (_set(("access_records", 0, "purpose"), "curiosity"),
                             "access record 1: does not match its hash: altered"),
    "not a package": (lambda package: package.update(format="something else"), "not a care-continuum audit package"),
}


@pytest.mark.parametrize("alteration", list(ALTERATIONS))
def test_an_altered_package_fails_to_verify_and_names_the_problem(package, tmp_path, alteration):
    alter, problem = ALTERATIONS[alteration]
    altered = copy.deepcopy(package)
    alter(altered)
    data = verify_file(altered, tmp_path / "altered.json", code=1)
    assert data["ok"] is False
    assert any(problem in found for found in data["problems"]), data["problems"]
    result = cli(UNREACHABLE_POSTGRES, "verify", "--file", tmp_path / "altered.json")
    assert result.exit_code == 1
    assert "TAMPERED:" in plain(result.stderr)
    assert problem in plain(result.stderr)


def test_a_file_that_is_not_json_is_a_usage_error(tmp_path):
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    result = cli(UNREACHABLE_POSTGRES, "verify", "--file", tmp_path / "broken.json")
    assert result.exit_code == 2
    assert "cannot read audit package" in plain(result.stderr)


# Shown fields an auditor relies on that `verify --file` does not compare with the hashed stored state.
UNCHECKED: dict[str, Callable[[Package], None]] = {
    "recorded time changed": _set(("events", 4, "recorded_at"), "2026-01-01T09:00:00+00:00"),
    "field added to a payload": _set(("events", 1, "payload", "result"), "positive"),
    "event type changed": _set(("events", 3, "type"), "SessionMissed"),
    "client changed": _set(("client",), "Z-9"),
}


@pytest.mark.parametrize("alteration", list(UNCHECKED))
def test_an_altered_shown_field_fails_to_verify(package, alteration):
    altered = copy.deepcopy(package)
    UNCHECKED[alteration](altered)
    assert not verify_package(altered).ok


# -- a store that encrypts events at rest -----------------------------------------------------------------


def test_an_encrypted_store_exports_a_package_that_verifies(database_url, tmp_path):
    key = base64.b64encode(os.urandom(32)).decode()
    wired = bootstrap(Settings(database_url=database_url, cipher_key=key))
    try:
        drug_test_history(wired, "ENC-4711")
        wired.runner.catch_up()
        with raw(database_url) as connection:
            states = [state for *_, state in connection.events()]
        assert len(states) == 4
        for state in states:  # nothing readable in the raw table
            assert b"ENC-4711" not in state
            assert b"north" not in state
            assert b"sp-1" not in state
            with pytest.raises(ValueError):  # not JSON (a first byte of "{" is 1 in 256 for ciphertext: not a test)
                json.loads(state)
        assert cli_json(database_url, "verify", env={"CONTINUUM_CIPHER_KEY": key})["ok"] is True

        package = export(database_url, "ENC-4711", tmp_path / "enc.json", env={"CONTINUUM_CIPHER_KEY": key})
    finally:
        wired.close()
    assert package["encrypted_at_rest"] is True
    assert package["events"][0]["payload"]["client_ref"] == "ENC-4711"  # decrypted for the auditor...
    assert b"ENC-4711" not in base64.b64decode(package["events"][0]["stored_state"])  # ...the stored bytes stay ciphertext
    data = verify_file(package, tmp_path / "copy.json", code=0)
    assert (data["ok"], data["events_checked"]) == (True, 4)

    # the hashes are still checked...
    altered = copy.deepcopy(package)
    state = bytearray(base64.b64decode(altered["events"][1]["stored_state"]))
    state[-1] ^= 0x01
    altered["events"][1]["stored_state"] = base64.b64encode(bytes(state)).decode()
    assert "(version 2): stored state does not match row_hash: altered" in verify_file(altered, tmp_path / "a.json", code=1)["problems"][0]
    # ...but the shown payload cannot be compared with ciphertext: that check is skipped, as the note says
    shown = copy.deepcopy(package)
    shown["events"][1]["payload"]["site"] = "east"
    assert verify_package(shown).ok
    assert "only the hashes can be checked" in package["how_to_verify"]


def test_an_empty_journey_head_is_genesis_in_a_package_with_no_events():
    package = {"format": "care-continuum audit package", "client": "X", "journey_id": str(jid("X")), "events": [],
               "journey_head": GENESIS, "access_records": []}
    assert verify_package(package).ok
