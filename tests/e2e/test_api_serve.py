"""`continuum serve` and `continuum token` as an operator uses them: a real server on loopback,
tokens made and revoked from the command line, JSON logs without clinical data, and the latency
measurement the benchmark note uses (here bounded to a handful of requests)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bench.api_latency import measure, served
from services.cli import app
from tests.e2e.api_support import at

runner = CliRunner()


def test_token_add_prints_the_token_once_and_revoke_ends_it(database_url: str):
    added = runner.invoke(app, ["token", "add", "dr-ames", "--role", "clinician", "--site", "north", "--database-url", database_url])
    assert added.exit_code == 0, added.output
    token = added.stdout.strip().splitlines()[-1]
    assert token.startswith("cc_")
    listed = runner.invoke(app, ["token", "list", "--json", "--database-url", database_url])
    assert json.loads(listed.stdout)["tokens"][0] | {"created_at": ""} == {
        "name": "dr-ames", "role": "clinician", "site": "north", "created_at": "", "revoked_at": None,
    }
    assert token not in listed.stdout
    missing_site = runner.invoke(app, ["token", "add", "x", "--role", "clinician", "--database-url", database_url])
    assert missing_site.exit_code == 2
    assert "needs --site" in missing_site.output
    revoked = runner.invoke(app, ["token", "revoke", "dr-ames", "--database-url", database_url])
    assert revoked.exit_code == 0
    assert runner.invoke(app, ["token", "revoke", "dr-ames", "--database-url", database_url]).exit_code == 2


def test_schema_openapi_prints_the_committed_document():
    printed = runner.invoke(app, ["schema", "openapi"])
    committed = Path(__file__).parents[2] / "openapi.json"
    assert json.loads(printed.stdout) == json.loads(committed.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_serve_answers_over_http_and_logs_json_without_client_refs(database_url: str, tmp_path: Path):
    log = tmp_path / "serve.log"
    with served(database_url, log=log) as (base_url, tokens):
        clinician = {"Authorization": f"Bearer {tokens['clinician']}"}
        register = {"client": "C-SECRET-1", "occurred_at": at(0), "site": "north"}
        created = httpx.post(f"{base_url}/commands/register", json=register, headers=clinician, timeout=10)
        assert created.status_code == 201
        position = created.json()["position"]
        history = httpx.get(f"{base_url}/clients/C-SECRET-1/history?min_position={position}", headers=clinician, timeout=10)
        assert history.status_code == 200
        assert httpx.get(f"{base_url}/clients/C-SECRET-2/history", headers=clinician, timeout=10).status_code == 404
        reports = measure(base_url, clinician_token=tokens["clinician"], dashboard_token=tokens["dashboard"], requests=20,
                          concurrency=2, max_seconds=30)
    assert [(r.name, r.requests, r.errors) for r in reports] == [("command", 20, 0), ("census", 20, 0)]
    assert all(0 < r.p50_ms <= r.p99_ms for r in reports)
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request"]
    assert {"route": "/clients/{client}/history", "status": 404} in [{k: r[k] for k in ("route", "status")} for r in requests]
    assert "C-SECRET" not in log.read_text(encoding="utf-8")

