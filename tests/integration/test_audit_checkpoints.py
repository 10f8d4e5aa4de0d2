"""Nothing lost, nothing forged (the security review's point 5), on SQLite and PostgreSQL: a cut-off tail,
an emptied access log and a history rewritten before a signed checkpoint fail `continuum verify
--checkpoints`, while later writes pass; the global chain is keyed (HMAC) when CONTINUUM_CHAIN_KEY is
set, so nobody without the key can re-chain an edited row; positions are never given twice.

The store is `small_clinic` (positions 1..10, see its docstring):
  1 A v1  2 B v1  3 C v1  4 A v2  5 B v2  6 A v3  7 A v4  8 A v5  9 C v2  10 B v3
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from Crypto.Signature import eddsa

from infra.chain import GENESIS, ChainKeyMismatch, StoreDamaged, link, row_hash
from infra.config import Settings
from services.bootstrap import Continuum, bootstrap
from services.reads import Reader
from tests.integration.audit_builders import Raw, cli, cli_json, jid, located, plain, raw, send, small_clinic
from tests.support.clock import fixed_clock

CHAIN_KEY = base64.b64encode(b"k" * 32).decode()
OTHER_CHAIN_KEY = base64.b64encode(b"o" * 32).decode()
DAMAGED = "store damaged"
A = jid("A")


def key_pair() -> tuple[str, str]:
    seed = os.urandom(32)
    public = eddsa.import_private_key(seed).public_key().export_key(format="raw")
    return base64.b64encode(seed).decode(), base64.b64encode(public).decode()


@pytest.fixture
def keys() -> dict[str, str]:
    private, public = key_pair()
    return {"CONTINUUM_CHECKPOINT_KEY": private, "CONTINUUM_CHECKPOINT_PUBLIC_KEY": public}


def auditor(keys: dict[str, str], **more: str) -> dict[str, str]:
    """An auditor's environment: the public key only."""
    return {"CONTINUUM_CHECKPOINT_PUBLIC_KEY": keys["CONTINUUM_CHECKPOINT_PUBLIC_KEY"], **more}


@pytest.fixture
def clinic(wired: Continuum) -> Continuum:
    small_clinic(wired)
    wired.runner.catch_up()
    return wired


@pytest.fixture
def keyed(database_url: str) -> Iterator[Continuum]:
    """The small clinic recorded with CONTINUUM_CHAIN_KEY set: its global links are HMAC-SHA256."""
    wired = bootstrap(Settings(database_url=database_url, chain_key=CHAIN_KEY), clock=fixed_clock)
    small_clinic(wired)
    wired.runner.catch_up()
    yield wired
    wired.close()


def checkpoint(url: str, path: Path, keys: dict[str, str], **more: str) -> dict[str, Any]:
    result = cli(url, "checkpoint", "--out", path, env={**keys, **more})
    assert result.exit_code == 0, result.output
    assert f"appended to {path}" in plain(result.stdout)
    return json.loads(path.read_text().splitlines()[-1])


def read_three_times(wired: Continuum) -> None:
    for client in ("A", "B", "C"):
        wired.reads.history(client, Reader("aud-1", "auditor", "payer audit"))


def truncate(connection: Raw, after: int) -> None:
    """Delete the stored events after position `after` and their chain rows: a cut-off tail."""
    connection.execute(f"DELETE FROM {connection.table} WHERE {connection.position} > ?", (after,))
    connection.execute("DELETE FROM event_chain WHERE notification_id > ?", (after,))


# -- signed checkpoints: later writes pass ---------------------------------------------------------------------


def test_later_writes_and_reads_pass_verify_against_earlier_checkpoints(clinic, database_url, keys, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    first = checkpoint(database_url, path, keys)
    assert (first["position"], first["access_seq"], first["access_head"]) == (10, 0, GENESIS)
    assert first["chain_head"] == cli_json(database_url, "verify")["chain_head"]

    read_three_times(clinic)
    send(clinic, "attend_session", "C", 4, session_id="c-1", minutes=60)
    second = checkpoint(database_url, path, keys)
    assert (second["position"], second["access_seq"]) == (11, 3)
    send(clinic, "attend_session", "B", 5, session_id="b-2", minutes=60)
    clinic.reads.history("A", Reader("dr-ames", "clinician", "review"))

    data = cli_json(database_url, "verify", "--checkpoints", path, env=auditor(keys))
    assert (data["ok"], data["checkpoints_checked"], data["events_checked"], data["access_records_checked"]) == (True, 2, 12, 4)
    text = plain(cli(database_url, "verify", "--checkpoints", path, env=auditor(keys)).stdout)
    assert f"checkpoints: 2 held; the latest, signed at {second['at']}: event #11, access record 3" in text
    # the head kept by hand, by contrast, cries tampering after any legitimate write
    assert cli_json(database_url, "verify", "--expect-head", first["chain_head"], code=1)["ok"] is False


def test_a_checkpoint_without_out_is_printed_and_verifies(clinic, database_url, keys, tmp_path):
    result = cli(database_url, "checkpoint", env=keys)
    assert result.exit_code == 0, result.output
    path = tmp_path / "printed.jsonl"
    path.write_text(result.stdout)
    assert json.loads(result.stdout)["position"] == 10
    assert cli_json(database_url, "verify", "--checkpoints", path, env=auditor(keys))["ok"] is True


# -- a truncated tail --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("meta_too", [False, True], ids=["rows", "rows-and-chain-meta"])
def test_a_truncated_tail_fails_verify(clinic, database_url, keys, tmp_path, meta_too):
    path = tmp_path / "checkpoints.jsonl"
    checkpoint(database_url, path, keys)
    with raw(database_url) as connection:
        truncate(connection, 8)
        if meta_too:  # a careful attacker sets the recorded last position back too
            connection.execute("UPDATE chain_meta SET value = '8' WHERE name = 'last_position'")
    plain_verify = cli(database_url, "verify", "--json")
    if meta_too:
        assert plain_verify.exit_code == 0  # a consistent, shorter chain: only a checkpoint shows what is gone
    else:
        assert plain_verify.exit_code == 1
        assert json.loads(plain_verify.stdout)["broken"] == (
            "the event log reached position #10 but its chain ends at #8: the last events were deleted (truncated)")
    data = cli_json(database_url, "verify", "--checkpoints", path, env=auditor(keys), code=1)
    assert data["ok"] is False
    if meta_too:
        assert "(line 1): event #10 is no longer in the store (its chain ends at #8): events up to the checkpoint were deleted" in (
            data["broken"])
    result = cli(database_url, "verify", "--checkpoints", path, env=auditor(keys))
    assert result.exit_code == 1
    assert "TAMPERED:" in plain(result.stderr)


def test_positions_are_never_given_again_after_a_truncation(clinic, database_url):
    with raw(database_url) as connection:
        truncate(connection, 8)
    with pytest.raises(StoreDamaged, match=r"reached position #10 but its hash chain ends at #8.*run `continuum verify`"):
        send(clinic, "attend_session", "A", 9, session_id="a-9", minutes=60)
    with raw(database_url) as connection:
        assert [event[0] for event in connection.events()] == list(range(1, 9))  # nothing recorded, no position reused
        assert connection.execute("SELECT max(notification_id) FROM event_chain") == [(8,)]


def test_a_truncated_store_refuses_a_command_in_one_line(clinic, database_url, tmp_path):
    with raw(database_url) as connection:
        truncate(connection, 9)
    lines = tmp_path / "more.jsonl"
    lines.write_text(json.dumps({"command": "attend_session", "client": "A", "occurred_at": "2026-10-30T09:00:00+00:00",
                                 "session_id": "a-x", "minutes": 30}) + "\n")
    result = cli(database_url, "import", lines)
    assert result.exit_code == 2, result.output
    text = plain(result.stderr)
    assert DAMAGED in text
    assert "run `continuum verify`" in text
    assert "Traceback" not in result.output


# -- the access log ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tamper", "seq"), [
    ("DELETE FROM access_log", 3),  # emptied
    ("DELETE FROM access_log WHERE seq = 3", 3),  # its last record cut off
])
def test_an_emptied_or_cut_access_log_fails_verify_against_a_checkpoint(clinic, database_url, keys, tmp_path, tamper, seq):
    read_three_times(clinic)
    path = tmp_path / "checkpoints.jsonl"
    assert checkpoint(database_url, path, keys)["access_seq"] == 3
    with raw(database_url) as connection:
        connection.execute(tamper)
    assert cli_json(database_url, "verify")["ok"] is True  # a shorter log is consistent in itself
    data = cli_json(database_url, "verify", "--checkpoints", path, env=auditor(keys), code=1)
    assert f"access record {seq} is no longer in the access log" in data["broken"]
    assert "the access log was cut or emptied" in data["broken"]


def test_a_rewritten_access_log_fails_verify_against_a_checkpoint(clinic, database_url, keys, tmp_path):
    read_three_times(clinic)
    path = tmp_path / "checkpoints.jsonl"
    checkpoint(database_url, path, keys)
    with raw(database_url) as connection:  # a reader's purpose changed and the log's hashes recomputed after it
        from infra.access_log import AccessRecord

        rows = connection.execute("SELECT seq, at, actor_id, role, client_ref, what, purpose, prev_hash, hash FROM access_log ORDER BY seq")
        previous = GENESIS
        for row in rows:
            record = AccessRecord(*row)
            purpose = "curiosity" if record.seq == 2 else record.purpose
            forged = AccessRecord(record.seq, record.at, record.actor_id, record.role, record.client_ref, record.what, purpose,
                                  previous, "")
            hashed = forged.expected_hash()
            connection.execute("UPDATE access_log SET purpose = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                               (purpose, previous, hashed, record.seq))
            previous = hashed
    assert cli_json(database_url, "verify")["ok"] is True
    data = cli_json(database_url, "verify", "--checkpoints", path, env=auditor(keys), code=1)
    assert "access record 3 is not the signed one: the access log was rewritten" in data["broken"]


# -- history rewritten before a checkpoint ---------------------------------------------------------------------------


def test_a_history_rewritten_before_a_checkpoint_fails(clinic, database_url, keys, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    signed = checkpoint(database_url, path, keys)
    send(clinic, "attend_session", "C", 4, session_id="c-1", minutes=60)
    with raw(database_url) as connection:  # an unkeyed chain: a forger recomputes it consistently
        connection.replace_in_state(4, "north", "nortx")
        connection.rewrite_chain()
    assert cli_json(database_url, "verify")["ok"] is True
    data = cli_json(database_url, "verify", "--checkpoints", path, env=auditor(keys), code=1)
    assert "the chain at event #10 is " in data["broken"]
    assert f"not the signed {signed['chain_head'][:16]}…: history before the checkpoint was rewritten" in data["broken"]


# -- the checkpoint file itself --------------------------------------------------------------------------------------


@pytest.mark.parametrize("forgery", ["position", "chain_head", "signature", "another-key"])
def test_a_forged_checkpoint_fails_before_the_store_is_read(clinic, database_url, keys, tmp_path, forgery):
    path = tmp_path / "checkpoints.jsonl"
    checkpoint(database_url, path, keys)
    with raw(database_url) as connection:
        truncate(connection, 8)
        connection.execute("UPDATE chain_meta SET value = '8' WHERE name = 'last_position'")
    record = json.loads(path.read_text())
    if forgery == "another-key":  # re-signed by whoever holds the store, with a key of their own
        private, _ = key_pair()
        result = cli(database_url, "checkpoint", env={"CONTINUUM_CHECKPOINT_KEY": private})
        record = json.loads(result.stdout)
        problem = "signed with another key"
    elif forgery == "signature":
        record["signature"] = base64.b64encode(b"x" * 64).decode()
        problem = "the signature does not verify: the checkpoint was altered or forged"
    else:  # the truncated store's own head and position, in the signed record
        record[forgery] = 8 if forgery == "position" else cli_json(database_url, "verify")["chain_head"]
        problem = "the signature does not verify: the checkpoint was altered or forged"
    path.write_text(json.dumps(record) + "\n")
    data = cli_json(database_url, "verify", "--checkpoints", path, env=auditor(keys), code=1)
    assert data["ok"] is False
    assert problem in data["broken"]
    assert "(line 1)" in data["broken"]


@pytest.mark.parametrize(("content", "problem"), [
    ("", "holds no checkpoint"),
    ("not json\n", "line 1 is not JSON"),
    ('{"format": "care-continuum checkpoint", "version": 1}\n', "line 1 is not a signed checkpoint: no valid position"),
    ("[]\n", "line 1 is not a signed checkpoint: not a JSON object"),
])
def test_a_file_that_is_not_checkpoints_is_said(clinic, database_url, keys, tmp_path, content, problem):
    path = tmp_path / "checkpoints.jsonl"
    path.write_text(content)
    data = cli_json(database_url, "verify", "--checkpoints", path, env=auditor(keys), code=1)
    assert problem in data["broken"]


def test_checkpoint_keys_and_usage(clinic, database_url, keys, tmp_path):
    result = cli(database_url, "checkpoint", "--keygen")
    assert result.exit_code == 0
    pair = dict(line.split("=", 1) for line in result.stdout.split())
    assert sorted(pair) == ["CONTINUUM_CHECKPOINT_KEY", "CONTINUUM_CHECKPOINT_PUBLIC_KEY"]
    path = tmp_path / "checkpoints.jsonl"
    checkpoint(database_url, path, pair)
    assert cli_json(database_url, "verify", "--checkpoints", path, env=auditor(pair))["ok"] is True
    # the signing key alone also verifies (its public half is derived)
    assert cli_json(database_url, "verify", "--checkpoints", path,
                    env={"CONTINUUM_CHECKPOINT_KEY": pair["CONTINUUM_CHECKPOINT_KEY"]})["ok"] is True

    no_key = cli(database_url, "checkpoint", "--out", path)
    assert no_key.exit_code == 2
    assert "needs CONTINUUM_CHECKPOINT_KEY" in plain(no_key.stderr)
    no_public = cli(database_url, "verify", "--checkpoints", path)
    assert no_public.exit_code == 2
    assert "needs CONTINUUM_CHECKPOINT_PUBLIC_KEY" in plain(no_public.stderr)
    bad = cli(database_url, "checkpoint", env={"CONTINUUM_CHECKPOINT_KEY": "c2hvcnQ="})
    assert bad.exit_code == 2
    assert "CONTINUUM_CHECKPOINT_KEY: decodes to 5 bytes; it must be 32" in plain(bad.stderr)
    assert "c2hvcnQ" not in bad.output  # a secret is never shown
    with_client = cli(database_url, "verify", "--checkpoints", path, "--client", "A", env=auditor(pair))
    assert with_client.exit_code == 2
    assert "without --client" in plain(with_client.stderr)
    missing = cli(database_url, "verify", "--checkpoints", tmp_path / "none.jsonl", env=auditor(pair))
    assert missing.exit_code == 2


# -- a keyed chain ----------------------------------------------------------------------------------------------------


def edit_recorded_time(connection: Raw, position: int, moment: str = "2026-01-01T00:00:00+00:00") -> None:
    state = {p: s for p, *_, s in connection.events()}[position]
    data = json.loads(state)
    data["timestamp"]["_data_"] = moment
    connection.execute(f"UPDATE {connection.table} SET state = ? WHERE {connection.position} = ?",
                       (json.dumps(data, separators=(",", ":")).encode(), position))


def rechain_journey_only(connection: Raw) -> None:
    """What a forger without the chain key can do: recompute row hashes and journey links (SHA-256), and
    leave the keyed global links as they were."""
    heads: dict[Any, str] = {}
    for position, journey, version, topic, state in connection.events():
        hashed = row_hash(position, journey, version, topic, state)
        heads[journey] = link(heads.get(journey, GENESIS), hashed)
        connection.execute("UPDATE event_chain SET row_hash = ?, journey_link = ? WHERE notification_id = ?",
                           (hashed, heads[journey], position))


WITH_KEY = {"CONTINUUM_CHAIN_KEY": CHAIN_KEY}


def test_an_intact_keyed_store_verifies_with_its_key_only(keyed, database_url):
    data = cli_json(database_url, "verify", env=WITH_KEY)
    assert (data["ok"], data["events_checked"]) == (True, 10)
    with raw(database_url) as connection:
        assert connection.execute("SELECT name, value FROM chain_meta WHERE name = 'scheme'") == [("scheme", "hmac-sha256")]
        assert connection.execute("SELECT global_link FROM event_chain WHERE notification_id = 10") == [(data["chain_head"],)]
    assert cli_json(database_url, "verify", "--client", "A", env=WITH_KEY)["ok"] is True

    no_key = cli(database_url, "verify")
    assert no_key.exit_code == 2
    assert "this store's hash chain is keyed (HMAC-SHA256): set CONTINUUM_CHAIN_KEY" in plain(no_key.stderr)
    wrong = cli_json(database_url, "verify", env={"CONTINUUM_CHAIN_KEY": OTHER_CHAIN_KEY}, code=1)
    assert "CONTINUUM_CHAIN_KEY is not the key this store's hash chain was started with" in wrong["broken"]


@pytest.mark.parametrize("forger", ["whole-chain-sha256", "journey-links-only"])
def test_an_edited_recorded_time_cannot_be_rechained_without_the_key(keyed, database_url, forger):
    with raw(database_url) as connection:
        edit_recorded_time(connection, 6)
        if forger == "whole-chain-sha256":
            connection.rewrite_chain()
        else:
            rechain_journey_only(connection)
    # every global link rewritten without the key breaks at the first; the keyed links left as they were, at the edit
    expected = (1, A, 1) if forger == "whole-chain-sha256" else (6, A, 3)
    position, journey, version, what = located(cli_json(database_url, "verify", env=WITH_KEY, code=1)["broken"])
    assert (position, journey, version) == expected
    assert what.startswith("global chain link does not match")
    assert "recomputed without the chain key" in what
    # one client's check catches it too: each of its rows is checked against the keyed global chain
    assert located(cli_json(database_url, "verify", "--client", "A", env=WITH_KEY, code=1)["broken"])[:3] == expected


def test_a_keyed_chain_rewritten_as_unkeyed_is_reported(keyed, database_url):
    """A forger without the key rewrites every link with SHA-256 and makes chain_meta say so."""
    with raw(database_url) as connection:
        edit_recorded_time(connection, 6)
        connection.rewrite_chain()
        connection.execute("UPDATE chain_meta SET value = 'sha256' WHERE name = 'scheme'")
        connection.execute("UPDATE chain_meta SET value = '' WHERE name = 'key_id'")
    data = cli_json(database_url, "verify", env=WITH_KEY, code=1)
    assert data["broken"].startswith("the hash chain is not keyed although CONTINUUM_CHAIN_KEY is set")


def test_a_keyed_store_refuses_unkeyed_writes_and_another_key(keyed, database_url):
    for chain_key, problem in ((None, "this store's hash chain is keyed (HMAC-SHA256): set CONTINUUM_CHAIN_KEY"),
                               (OTHER_CHAIN_KEY, "CONTINUUM_CHAIN_KEY is not the key this store's hash chain was started with")):
        other = bootstrap(Settings(database_url=database_url, chain_key=chain_key), clock=fixed_clock)
        try:
            with pytest.raises(ChainKeyMismatch, match=re.escape(problem)):
                send(other, "attend_session", "A", 9, session_id="a-9", minutes=60)
        finally:
            other.close()
    send(keyed, "attend_session", "A", 9, session_id="a-9", minutes=60)  # the right key records on
    assert cli_json(database_url, "verify", env=WITH_KEY)["events_checked"] == 11


def test_an_unkeyed_store_refuses_keyed_writes(clinic, database_url):
    other = bootstrap(Settings(database_url=database_url, chain_key=CHAIN_KEY), clock=fixed_clock)
    try:
        with pytest.raises(ChainKeyMismatch, match="started without CONTINUUM_CHAIN_KEY"):
            send(other, "attend_session", "A", 9, session_id="a-9", minutes=60)
    finally:
        other.close()
    assert cli_json(database_url, "verify")["events_checked"] == 10
    result = cli(database_url, "verify", env=WITH_KEY)
    assert result.exit_code == 1
    assert "the hash chain is not keyed although CONTINUUM_CHAIN_KEY is set" in plain(result.stderr)


def test_a_store_from_before_chain_meta_goes_on_unkeyed(clinic, database_url):
    with raw(database_url) as connection:
        connection.execute("DELETE FROM chain_meta")  # as a store chained before chain_meta existed
    assert cli_json(database_url, "verify")["ok"] is True
    send(clinic, "attend_session", "A", 9, session_id="a-9", minutes=60)
    with raw(database_url) as connection:
        assert dict(connection.execute("SELECT name, value FROM chain_meta")) == {
            "scheme": "sha256", "key_id": "", "last_position": "11"}
    assert cli_json(database_url, "verify")["events_checked"] == 11


def test_checkpoints_of_a_keyed_store(keyed, database_url, keys, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    checkpoint(database_url, path, keys)
    send(keyed, "attend_session", "A", 9, session_id="a-9", minutes=60)
    assert cli_json(database_url, "verify", "--checkpoints", path, env=auditor(keys, **WITH_KEY))["checkpoints_checked"] == 1
    with raw(database_url) as connection:
        truncate(connection, 9)
        connection.execute("UPDATE chain_meta SET value = '9' WHERE name = 'last_position'")
    data = cli_json(database_url, "verify", "--checkpoints", path, env=auditor(keys, **WITH_KEY), code=1)
    assert "event #10 is no longer in the store" in data["broken"]


# -- published to Kafka ------------------------------------------------------------------------------------------------


@pytest.mark.kafka
def test_a_checkpoint_is_published_to_the_checkpoints_topic(clinic, database_url, keys, tmp_path, kafka):
    from tests.integration.kafka_support import read_topic

    path = tmp_path / "checkpoints.jsonl"
    env = {**keys, "CONTINUUM_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "CONTINUUM_KAFKA_TOPIC": kafka.topic}
    result = cli(database_url, "checkpoint", "--out", path, "--publish", env=env)
    assert result.exit_code == 0, result.output
    assert f"published to {kafka.topic}.checkpoints" in plain(result.stderr)
    records = read_topic(kafka, f"{kafka.topic}.checkpoints")
    assert [(record.key, record.value.decode()) for record in records] == [(b"checkpoint", path.read_text().strip())]
    # a copy read back from the topic verifies like the file
    copy = tmp_path / "from-kafka.jsonl"
    copy.write_text(records[0].value.decode() + "\n")
    assert cli_json(database_url, "verify", "--checkpoints", copy, env=auditor(keys))["checkpoints_checked"] == 1


def test_a_checkpoint_that_cannot_be_published_says_so_after_writing_the_file(clinic, database_url, keys, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    env = {**keys, "CONTINUUM_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "CONTINUUM_KAFKA_SEND_TIMEOUT": "2"}
    result = cli(database_url, "checkpoint", "--out", path, "--publish", env=env)
    assert result.exit_code == 1, result.output
    assert "not published: the checkpoint could not be sent to Kafka (127.0.0.1:1)" in plain(result.stderr)
    assert len(path.read_text().splitlines()) == 1


@pytest.mark.kafka
def test_a_following_relay_publishes_checkpoints_outside_the_store(clinic, database_url, keys, tmp_path, kafka):
    import threading

    from infra.kafka.clients import KafkaSettings
    from services.checkpoints import keep_publishing
    from tests.integration.kafka_support import read_topic, wait_until

    settings = KafkaSettings(kafka.bootstrap_servers, kafka.topic, f"{kafka.topic}.DLT")
    stop = threading.Event()
    thread = keep_publishing(clinic, keys["CONTINUUM_CHECKPOINT_KEY"], settings, 0.2, stop)
    try:
        wait_until(lambda: len(read_topic(kafka, f"{kafka.topic}.checkpoints", timeout=2)) >= 2, 60, "two checkpoints")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    records = read_topic(kafka, f"{kafka.topic}.checkpoints")
    copy = tmp_path / "from-kafka.jsonl"
    copy.write_text("".join(record.value.decode() + "\n" for record in records))
    verified = cli_json(database_url, "verify", "--checkpoints", copy, env=auditor(keys))
    assert verified["checkpoints_checked"] == len(records) >= 2
