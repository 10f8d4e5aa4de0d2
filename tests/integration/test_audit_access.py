"""Every read of a client's record leaves an access record (who, role, which client, what, when, why) in
its own hash-chained log, apart from the journey events; `access-log` lists and filters them and
`verify` checks their chain. On SQLite and PostgreSQL, through the command line."""

from __future__ import annotations

from datetime import datetime, timedelta

from infra.access_log import record_hash
from infra.chain import GENESIS
from services.reads import Reader
from tests.integration.audit_builders import cli, cli_json, correction_history, cut, day, plain, small_clinic


def test_every_read_from_the_command_line_leaves_an_access_record(wired, database_url, tmp_path):
    history = correction_history(wired)
    small_clinic(wired)
    wired.runner.catch_up()
    head_before = cli_json(database_url, "verify")["chain_head"]
    as_of = day(2) + timedelta(hours=4)

    reads = [
        (("history", history.client, "--purpose", "treatment review", "--actor", "dr-ames", "--role", "clinician"),
         ("dr-ames", "clinician", "history", "treatment review")),
        (("audit", history.client, "--purpose", "payer audit", "--actor", "aud-1", "--role", "auditor"),
         ("aud-1", "auditor", "audit trail after 0", "payer audit")),
        (("replay", history.client, "--as-of", as_of.isoformat(), "--as-recorded", history.before_correction.isoformat(),
          "--purpose", "state licensing survey", "--actor", "surveyor-2", "--role", "surveyor"),
         ("surveyor-2", "surveyor", f"replay as-of {as_of.isoformat()} as-recorded {history.before_correction.isoformat()}",
          "state licensing survey")),
        (("export-audit", history.client, "--out", tmp_path / "k1.json", "--purpose", "accreditation", "--actor", "aud-1",
          "--role", "auditor"),
         ("aud-1", "auditor", "export-audit", "accreditation")),
    ]
    windows = []
    for args, _ in reads:
        start = cut()
        result = cli(database_url, *args)
        assert result.exit_code == 0, result.output
        windows.append((start, cut()))
    # a read of another client, by one of the same readers, with no purpose given
    assert cli(database_url, "history", "A", "--actor", "aud-1", "--role", "auditor").exit_code == 0

    records = cli_json(database_url, "access-log", "--client", history.client)["records"]
    assert [(r["actor_id"], r["role"], r["what"], r["purpose"]) for r in records] == [expected for _, expected in reads]
    assert {r["client_ref"] for r in records} == {history.client}
    for record, (start, end) in zip(records, windows, strict=True):
        assert start < datetime.fromisoformat(record["at"]) < end

    everything = cli_json(database_url, "access-log")["records"]
    assert [r["seq"] for r in everything] == [1, 2, 3, 4, 5]
    assert (everything[-1]["client_ref"], everything[-1]["purpose"]) == ("A", None)

    # the reads went to their own log: the journey events' chain did not move
    verified = cli_json(database_url, "verify")
    assert (verified["ok"], verified["chain_head"], verified["access_records_checked"]) == (True, head_before, 5)
    assert verified["access_head"] == everything[-1]["hash"]


def test_access_records_are_chained(wired, database_url):
    small_clinic(wired)
    wired.runner.catch_up()
    for client in ("A", "B", "A"):
        assert cli(database_url, "audit", client, "--actor", "aud-1", "--role", "auditor").exit_code == 0
    records = cli_json(database_url, "access-log")["records"]
    previous = GENESIS
    for number, record in enumerate(records, start=1):
        assert record["seq"] == number
        assert record["prev_hash"] == previous
        assert record["hash"] == record_hash(number, record["at"], record["actor_id"], record["role"], record["client_ref"],
                                             record["what"], record["purpose"], previous)
        previous = record["hash"]
    assert cli_json(database_url, "verify")["access_head"] == previous


def test_the_access_log_filters_by_client_actor_and_time(wired, database_url):
    small_clinic(wired)
    wired.runner.catch_up()
    assert cli(database_url, "history", "A", "--actor", "dr-ames", "--role", "clinician").exit_code == 0
    assert cli(database_url, "history", "B", "--actor", "aud-1", "--role", "auditor").exit_code == 0
    since = cut()
    assert cli(database_url, "audit", "A", "--actor", "aud-1", "--role", "auditor", "--purpose", "payer audit").exit_code == 0
    assert cli(database_url, "replay", "C", "--actor", "dr-ames", "--role", "clinician").exit_code == 0

    def listed(*args: object) -> list[tuple[str, str, str]]:
        return [(r["actor_id"], r["client_ref"], r["what"]) for r in cli_json(database_url, "access-log", *args)["records"]]

    assert listed("--actor", "aud-1") == [("aud-1", "B", "history"), ("aud-1", "A", "audit trail after 0")]
    assert listed("--client", "A") == [("dr-ames", "A", "history"), ("aud-1", "A", "audit trail after 0")]
    assert listed("--client", "A", "--actor", "aud-1") == [("aud-1", "A", "audit trail after 0")]
    assert listed("--since", since.isoformat()) == [("aud-1", "A", "audit trail after 0"), ("dr-ames", "C", "replay")]
    first_day = cli_json(database_url, "access-log")["records"][0]["at"][:10]
    assert listed("--since", first_day) == listed()  # a date: from the start of that day
    assert listed("--since", (since + timedelta(days=1)).date().isoformat()) == []
    assert listed("--client", "nobody") == []

    table = cli(database_url, "access-log", "--client", "A")
    assert table.exit_code == 0, table.output
    assert "aud-1 (auditor)" in plain(table.stdout)


def test_reads_through_the_service_leave_access_records_first(wired):
    history = correction_history(wired)
    wired.runner.catch_up()
    reads = wired.reads
    reader = Reader("api-client-7", "payer", "claim review")
    reads.history(history.client, reader)
    reads.audit(history.client, reader, after=2, limit=1)
    wired.audit.replay(history.client, reader, as_of=None, as_recorded=history.before_correction)
    package = wired.audit.export(history.client, reader)
    records = reads.access.query(client_ref=history.client)
    assert [r.what for r in records] == [
        "history", "audit trail after 2 limit 1", f"replay as-recorded {history.before_correction.isoformat()}", "export-audit",
    ]
    assert {(r.actor_id, r.role, r.purpose) for r in records} == {("api-client-7", "payer", "claim review")}
    # the package carries the client's access records, its own export included
    assert [r["what"] for r in package["access_records"]] == [r.what for r in records]


def test_a_read_of_an_unknown_client_is_refused_and_records_nothing(wired, database_url):
    small_clinic(wired)
    result = cli(database_url, "history", "NOPE", "--actor", "aud-1")
    assert result.exit_code == 1
    assert "no such client" in plain(result.stderr)
    assert cli_json(database_url, "access-log")["records"] == []
