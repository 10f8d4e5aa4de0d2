"""FHIR R4 export, on SQLite and PostgreSQL: every resource validates with fhir.resources and carries
the DS4P labels; a disclosure to a recipient holds consented clients only, in the consent's scope."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from domain.journey import ClientJourney
from services import fhir
from services.disclosures import NOTICE
from tests.e2e.cli_support import _line, cli, jsonl, read_json
from tests.e2e.test_disclosures import STATE, cohort


def richer() -> list[dict[str, Any]]:
    lines = cohort()
    discharge = next(n for n, line in enumerate(lines) if line["command"] == "discharge")
    return [
        *lines[:discharge],
        _line("assess", "T-1", "2025-01-02T12:00:00+00:00", ratings=[3, 1, 2, 2, 3, 2], recommended_level="3.7-WM",
              clinician="dr-ames"),
        _line("plan", "T-1", "2025-01-08T10:00:00+00:00", goals=["abstinence", "housing"]),
        _line("collect_drug_test", "T-1", "2025-02-20T09:00:00+00:00", specimen_id="T1-U1"),
        _line("result_drug_test", "T-1", "2025-02-21T09:00:00+00:00", specimen_id="T1-U1", result="positive",
              substances={"opiates": "positive", "buprenorphine": "positive"}, expected_medications=["buprenorphine"]),
        _line("miss_session", "T-1", "2025-03-03T09:00:00+00:00", session_id="T1-S2", excused=True),
        *lines[discharge:],
        _line("grant_consent", "T-2", "2025-01-02T11:00:00+00:00", consent_id="T2-CF", recipient=STATE,
              purpose="payment", scope=["episodes", "stays"], expires_on="2030-01-01"),
    ]


def resources(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [item["resource"] for item in document["entry"]]


def test_a_clients_bundle_validates_and_is_labelled(database_url, tmp_path):
    assert cli("import", jsonl(tmp_path / "c.jsonl", richer()), "--database-url", database_url).exit_code == 0
    out = tmp_path / "fhir"
    report = read_json("export", "fhir", "T-1", "--out", out, "--database-url", database_url)
    assert report["records"] == 1
    document = json.loads((out / f"{ClientJourney.create_id('T-1')}.json").read_text(encoding="utf-8"))
    fhir.validate(document)
    found = resources(document)
    assert all(r["meta"]["security"] == fhir.SECURITY for r in found)
    assert {c["code"] for c in fhir.SECURITY} == {"R", "42CFRPart2", "ETH", "NORDSCLCD"}
    kinds = Counter(r["resourceType"] for r in found)
    assert kinds == {"Patient": 1, "EpisodeOfCare": 1, "Encounter": 5, "Observation": 8, "CarePlan": 1, "Goal": 2, "Consent": 1}
    patient = found[0]
    assert {"system": fhir.CLIENT_SYSTEM, "value": "T-1"} in patient["identifier"]
    [episode] = [r for r in found if r["resourceType"] == "EpisodeOfCare"]
    assert episode["status"] == "finished"
    assert [h["status"] for h in episode["statusHistory"]] == ["planned", "active"]
    encounters = [r for r in found if r["resourceType"] == "Encounter"]
    assert [(e["class"]["code"], e["status"]) for e in encounters] == [
        ("IMP", "finished"), ("IMP", "finished"), ("AMB", "finished"), ("AMB", "finished"), ("AMB", "cancelled")]
    analytes = {r["code"]["text"]: r for r in found if r["resourceType"] == "Observation" and "ASAM" not in r["code"]["text"]}
    assert sorted(analytes) == ["buprenorphine", "opiates"]
    assert "coding" not in analytes["buprenorphine"]["code"]
    assert analytes["opiates"]["code"]["coding"][0]["code"] == "19295-5"
    assert analytes["buprenorphine"]["interpretation"][0]["coding"][0]["code"] == "POS"
    [consent] = [r for r in found if r["resourceType"] == "Consent"]
    assert consent["status"] == "active"
    assert consent["provision"]["actor"][0]["reference"]["display"] == STATE
    assert consent["provision"]["purpose"] == [{"system": fhir.PURPOSE_OF_USE, "code": "HOPERAT"}]
    access = read_json("access-log", "--client", "T-1", "--database-url", database_url)
    assert any("FHIR export" in r["what"] for r in access.get("records", access if isinstance(access, list) else []))


def test_a_disclosure_holds_consented_clients_in_the_consents_scope(database_url, tmp_path):
    assert cli("import", jsonl(tmp_path / "c.jsonl", richer()), "--database-url", database_url).exit_code == 0
    out = tmp_path / "state"
    report = read_json("export", "fhir", "--all", "--out", out, "--recipient", STATE, "--database-url", database_url)
    assert (report["records"], report["without_consent"], report["disclosures"]) == (2, 1, 2)
    assert NOTICE in (out / "NOTICE.txt").read_text(encoding="utf-8")
    t2 = json.loads((out / f"{ClientJourney.create_id('T-2')}.json").read_text(encoding="utf-8"))
    fhir.validate(t2)
    found = resources(t2)
    assert Counter(r["resourceType"] for r in found) == {"Patient": 1, "EpisodeOfCare": 1, "Encounter": 1, "Consent": 1}
    [consent] = [r for r in found if r["resourceType"] == "Consent"]  # the one it is disclosed under, no other
    assert consent["provision"]["purpose"] == [{"system": fhir.PURPOSE_OF_USE, "code": "HPAYMT"}]
    assert found[0]["identifier"] == [{"system": fhir.PSEUDONYM_SYSTEM, "value": str(ClientJourney.create_id("T-2"))}]
    assert "42 CFR part 2" in found[0]["text"]["div"]
    listed = read_json("disclosures", "--recipient", STATE, "--database-url", database_url)["disclosures"]
    assert sorted(d["client_ref"] for d in listed) == ["T-1", "T-2"]
    assert read_json("export", "fhir", "--all", "--out", tmp_path / "x", "--recipient", STATE, "--purpose", "treatment",
                     "--database-url", database_url)["records"] == 0


def test_everything_through_the_api(api):
    position = api.admitted("N-1", site="north")
    body = api.get("auditor", f"/fhir/Patient/N-1/$everything?min_position={position}")  # read your write
    assert body.status_code == 200, body.text
    assert body.headers["content-type"].startswith("application/fhir+json")
    fhir.validate(body.json())
    assert api.get("north", "/fhir/Patient/N-1/$everything").status_code == 200
    assert api.get("south", "/fhir/Patient/N-1/$everything").status_code == 404
    assert api.get("dashboard", "/fhir/Patient/N-1/$everything").status_code == 403
    log = api.get("auditor", "/audit/access-log?client=N-1").json()["records"]
    assert [(r["actor_id"], r["what"]) for r in log[:2]] == [("auditor-token", "FHIR $everything"), ("north-token", "FHIR $everything")]
