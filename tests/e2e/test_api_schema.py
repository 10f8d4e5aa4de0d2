"""The OpenAPI document: committed as openapi.json and regenerated here, and a schema-driven fuzz
run (schemathesis) over every operation that finds no 5xx answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from services.api import openapi_document
from tests.e2e.api_support import ApiUnderTest

COMMITTED = Path(__file__).parents[2] / "openapi.json"
EXAMPLES = 12  # per operation and store: about 30 operations x 2 stores, a few seconds each
ENDLESS = "/census/stream"  # an open stream; tested in test_api_stream.py


def test_the_committed_openapi_document_is_current():
    """Regenerate with: continuum schema openapi > openapi.json"""
    assert json.loads(COMMITTED.read_text(encoding="utf-8")) == json.loads(json.dumps(openapi_document()))


def test_the_served_document_is_the_committed_one(api: ApiUnderTest):
    assert api.client.get("/openapi.json").json() == json.loads(COMMITTED.read_text(encoding="utf-8"))


def _token_for(api: ApiUnderTest, path: str) -> str:
    if path.startswith("/commands/"):
        return api.tokens["north"]
    return api.tokens["auditor"]


@pytest.mark.slow
def test_fuzzing_every_operation_finds_no_server_error(api: ApiUnderTest):
    api.admitted("C-1")
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app).exclude(path=ENDLESS)
    problems: list[str] = []
    statuses: dict[int, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        headers = {"Authorization": f"Bearer {_token_for(api, operation.path)}"}

        @given(case=operation.as_strategy(headers=headers))
        @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                             suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            response = case.call()
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                problems.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")
            case.validate_response(response, checks=[response_schema_conformance, status_code_conformance])

        run()
    assert problems == []
    assert sum(statuses.values()) > 100, statuses
    assert {200, 403, 404, 422} <= set(statuses), statuses  # answers, site refusals, unknown clients, invalid input


def test_the_committed_openapi_document_is_valid_openapi_3_1():
    from openapi_spec_validator import validate

    document = json.loads((Path(__file__).resolve().parents[2] / "openapi.json").read_text(encoding="utf-8"))
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises with the first invalid part
    stream = document["paths"]["/census/stream"]["get"]["responses"]
    assert "text/event-stream" in stream["200"]["content"]
    assert set(stream["401"]["content"]) == {"application/json"}  # problems are sent as JSON
