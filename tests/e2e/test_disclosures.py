"""42 CFR Part 2 disclosures through the CLI, on SQLite and PostgreSQL: a TEDS-D extract for a
recipient includes only consented clients, carries the §2.32 notice, and is recorded in the
accounting of disclosures that `continuum disclosures` lists; a revocation stops the next one."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from services import teds
from services.disclosures import NOTICE
from tests.e2e.api_support import at
from tests.e2e.cli_support import _line, cli, jsonl, read_json

STATE = "State SSA"


def cohort() -> list[dict[str, Any]]:
    """T-1: detox 3.7-WM then 3.5 for 40 days then IOP, discharged; consented to the state.
    T-2: IOP, left against advice; no consent.  T-3: outpatient, completed; consented to someone else."""
    return [
        _line("register", "T-1", "2025-01-02T09:00:00+00:00", site="north", birth_year=1990, sex="female"),
        _line("refer", "T-1", "2025-01-02T10:00:00+00:00", source="court"),
        _line("start_detox", "T-1", "2025-01-03T10:00:00+00:00", level="3.7-WM", site="north", medication="buprenorphine"),
        _line("complete_detox", "T-1", "2025-01-07T10:00:00+00:00"),
        _line("step_down", "T-1", "2025-01-07T12:00:00+00:00", to_level="3.5", reason="withdrawal managed"),
        _line("step_down", "T-1", "2025-02-16T12:00:00+00:00", to_level="2.1", reason="goals met", track="day"),
        _line("attend_session", "T-1", "2025-03-01T09:00:00+00:00", session_id="T1-S1"),
        _line("discharge", "T-1", "2025-03-10T12:00:00+00:00", reason="completed"),
        _line("grant_consent", "T-1", "2025-01-02T11:00:00+00:00", consent_id="T1-CF", recipient=STATE,
              purpose="health_care_operations", scope=["all"]),
        _line("register", "T-2", "2025-01-02T09:00:00+00:00", site="south", birth_year=1970, sex="male"),
        _line("admit", "T-2", "2025-01-05T09:00:00+00:00", level="2.1", site="south", track="evening"),
        _line("discharge", "T-2", "2025-02-01T12:00:00+00:00", reason="left_against_advice"),
        _line("register", "T-3", "2025-01-02T09:00:00+00:00", site="north"),
        _line("admit", "T-3", "2025-01-05T09:00:00+00:00", level="1", site="north", track="day"),
        _line("discharge", "T-3", "2025-01-05T15:00:00+00:00", reason="completed"),
        _line("grant_consent", "T-3", "2025-01-02T11:00:00+00:00", consent_id="T3-CF", recipient="Dr Roe",
              purpose="treatment", scope=["all"]),
    ]


def test_a_teds_extract_is_a_recorded_disclosure_of_consented_clients_only(database_url, tmp_path):
    result = cli("import", jsonl(tmp_path / "c.jsonl", cohort()), "--database-url", database_url)
    assert result.exit_code == 0, result.output
    out = tmp_path / "teds.csv"
    report = read_json("export", "teds", "--since", "2025-01-01", "--until", "2026-01-01", "--out", out,
                       "--recipient", STATE, "--database-url", database_url, "--actor", "records-office")
    assert report["records"] == 3
    assert report["clients"] == 1
    assert report["without_consent"] == 2
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert list(rows[0]) == list(teds.COLUMNS)
    detox, residential, iop = rows
    assert (detox["SERVICES_D"], detox["REASON"], detox["LOS"], detox["PSOURCE"]) == ("2", "1", "4", "7")
    assert (detox["ADMDATE"], detox["DISDATE"], detox["AGE"], detox["GENDER"], detox["METHUSE"]) == (
        "20250103", "20250107", "7", "2", "1")  # 35 years old
    assert (residential["SERVICES_D"], residential["LOS"], residential["PSOURCE"]) == ("5", "31", "2")  # 40 days: long-term
    assert (iop["SERVICES_D"], iop["REASON"], iop["LASTCONTACT"], iop["LOS"]) == ("6", "1", "20250301", "13")
    assert all(row[name] == "-9" for row in rows for name in teds.NOT_RECORDED)
    notice = Path(f"{out}.notice.txt").read_text(encoding="utf-8")
    assert NOTICE in notice
    assert STATE in notice

    listed = read_json("disclosures", "--database-url", database_url)["disclosures"]
    assert [(d["client_ref"], d["recipient"], d["consent_id"], d["actor_id"]) for d in listed] == [
        ("T-1", STATE, "T1-CF", "records-office")]
    assert listed[0]["purpose"] == "health_care_operations"
    assert "TEDS-D" in listed[0]["what"]
    assert read_json("disclosures", "--client", "T-2", "--database-url", database_url)["disclosures"] == []

    # revoked: the next extract leaves T-1 out, and the earlier disclosure stays listed
    result = cli("import", jsonl(tmp_path / "r.jsonl", [
        _line("revoke_consent", "T-1", "2025-04-01T09:00:00+00:00", consent_id="T1-CF")]), "--database-url", database_url)
    assert result.exit_code == 0, result.output
    again = read_json("export", "teds", "--out", out, "--recipient", STATE, "--database-url", database_url)
    assert again["records"] == 0
    assert again["without_consent"] == 3
    assert len(read_json("disclosures", "--database-url", database_url)["disclosures"]) == 1


def test_the_accounting_is_hash_chained(wired, tmp_path):
    from domain.consent import ConsentPurpose
    from services.disclosures import Disclosures, Permitted
    from services.exports import all_journeys

    log = Disclosures(wired.views)
    assert log.verify() == (0, None)
    result = cli("import", jsonl(tmp_path / "c.jsonl", cohort()), "--database-url", wired.settings.database_url)
    assert result.exit_code == 0, result.output
    [t1] = [j for j in all_journeys(wired) if j.client_ref == "T-1"]
    [consent] = t1.consents()
    assert consent.purpose is ConsentPurpose.HEALTH_CARE_OPERATIONS
    log.record([Permitted("T-1", consent)] * 3, recipient=STATE, what="test", actor_id="a", role="auditor")
    assert log.verify() == (3, None)
    with wired.views.transaction() as cursor:
        cursor.execute("UPDATE disclosures SET recipient = 'Someone' WHERE seq = 2")
    assert log.verify() == (2, "disclosure #2 does not match its hash chain")


def test_the_api_lists_disclosures_to_auditors_and_to_clinicians_of_the_site(api, tmp_path):
    for who, client in (("north", "N-1"), ("south", "S-1")):
        api.admitted(client, site=who)
        granted = api.send(who, "grant_consent", {"client": client, "occurred_at": at(2),
                                                  "consent_id": f"{client}-CF", "recipient": STATE, "purpose": "payment"})
        assert granted.status_code == 201, granted.text
    from services.disclosures import Disclosures, Permitted
    from services.exports import all_journeys

    permitted = [Permitted(j.client_ref, j.consents()[0]) for j in all_journeys(api.wired)]
    Disclosures(api.wired.views).record(permitted, recipient=STATE, what="FHIR Bundle", actor_id="exporter", role="auditor")
    everything = api.get("auditor", "/disclosures").json()["disclosures"]
    assert sorted(d["client_ref"] for d in everything) == ["N-1", "S-1"]
    north = api.get("north", "/disclosures").json()["disclosures"]
    assert [d["client_ref"] for d in north] == ["N-1"]
    assert api.get("auditor", "/disclosures?client=S-1").json()["disclosures"][0]["purpose"] == "payment"
    assert api.get("dashboard", "/disclosures").status_code == 403
