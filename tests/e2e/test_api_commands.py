"""Commands over HTTP: one endpoint per command, the core's models as bodies, errors mapped once,
idempotency by key (even under concurrent repeats), and who may send what."""

from __future__ import annotations

import threading

from services.commands import COMMANDS
from tests.e2e.api_support import ApiUnderTest, at


def test_every_command_has_its_own_endpoint_taking_the_core_model(api: ApiUnderTest):
    document = api.client.get("/openapi.json").json()
    for model in COMMANDS:
        name = model.model_fields["command"].default
        body = document["paths"][f"/commands/{name}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{model.__name__}"}


def test_a_command_answers_201_with_event_ids_and_position(api: ApiUnderTest):
    response = api.send("north", "register", {"client": "C-1", "occurred_at": at(0), "site": "north"})
    assert response.status_code == 201
    body = response.json()
    assert body["command"] == "register"
    assert body["replayed"] is False
    assert [event["type"] for event in body["events"]] == ["ClientRegistered"]
    assert body["position"] == body["events"][0]["position"] >= 1
    assert response.headers["X-Position"] == str(body["position"])


def test_unknown_client_is_404(api: ApiUnderTest):
    response = api.send("north", "refer", {"client": "C-404", "occurred_at": at(1), "source": "self"})
    assert response.status_code == 404
    assert response.json()["client"] == "C-404"
    assert "no such client" in response.json()["detail"]


def test_a_refused_care_rule_is_409_with_rule_and_values(api: ApiUnderTest):
    api.admitted("C-2")
    response = api.send("north", "step_down", {"client": "C-2", "occurred_at": at(5), "to_level": "2.5", "reason": "worse"})
    assert response.status_code == 409
    problem = response.json()
    assert problem["error"] == "care_rule_violation"
    assert "step down must lower intensity" in problem["rule"]
    assert problem["values"] == {"from": "2.1", "to": "2.5"}


def test_invalid_input_is_422_naming_the_field(api: ApiUnderTest):
    response = api.send("north", "admit", {"client": "C-3", "occurred_at": at(1), "level": "9.9", "site": "north"})
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["level"]
    naive = api.send("north", "register", {"client": "C-3", "occurred_at": at(0)[:19], "site": "north"})
    assert naive.status_code == 422
    assert naive.json()["fields"][0]["field"] == "occurred_at"
    extra = api.send("north", "register", {"client": "C-3", "occurred_at": at(0), "site": "north", "name": "Jane"})
    assert extra.json()["fields"][0]["field"] == "name"


def test_a_repeat_with_the_same_key_returns_the_first_result_and_records_nothing(api: ApiUnderTest):
    api.send("north", "register", {"client": "C-4", "occurred_at": at(0), "site": "north"})
    body = {"client": "C-4", "occurred_at": at(2), "level": "2.1", "site": "north", "track": "evening"}
    first = api.send("north", "admit", body, key="intake-4711")
    again = api.send("north", "admit", body, key="intake-4711")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["replayed"] is True
    assert again.json()["events"] == first.json()["events"]
    assert again.json()["position"] == first.json()["position"]
    assert api.wired.runner.head() == first.json()["position"]


def test_a_key_that_differs_from_the_body_id_is_422(api: ApiUnderTest):
    response = api.send("north", "register", {"id": "a", "client": "C-5", "occurred_at": at(0), "site": "north"}, key="b")
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "Idempotency-Key"


def test_concurrent_repeats_record_once_and_all_get_the_first_result(api: ApiUnderTest):
    api.send("north", "register", {"client": "C-6", "occurred_at": at(0), "site": "north"})
    body = {"client": "C-6", "occurred_at": at(3), "level": "2.5", "site": "north", "track": "day"}
    barrier, answers = threading.Barrier(6), []

    def send() -> None:
        barrier.wait(timeout=10)
        answers.append(api.send("north", "admit", body, key="same-admission"))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201], answers[0].text
    assert len({tuple(e["id"] for e in a.json()["events"]) for a in answers}) == 1
    position = answers[0].json()["position"]
    trail = api.get("auditor", f"/clients/C-6/audit-trail?min_position={position}").json()
    assert [e["type"] for e in trail["entries"]] == ["ClientRegistered", "AdmittedToLevel"]
    assert api.wired.runner.head() == 2


def test_commands_need_a_token(api: ApiUnderTest):
    response = api.client.post("/commands/register", json={"client": "C-7", "occurred_at": at(0), "site": "north"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    wrong = api.client.post("/commands/register", json={}, headers={"Authorization": "Bearer cc_not-a-token"})
    assert wrong.status_code == 401


def test_dashboards_and_auditors_send_no_commands(api: ApiUnderTest):
    for who in ("dashboard", "auditor"):
        response = api.send(who, "register", {"client": "C-8", "occurred_at": at(0), "site": "north"})
        assert response.status_code == 403, who


def test_a_clinician_acts_only_on_its_sites_clients(api: ApiUnderTest):
    api.admitted("C-9", site="north")
    elsewhere = api.send("south", "discharge", {"client": "C-9", "occurred_at": at(4), "reason": "completed"})
    assert elsewhere.status_code == 404  # as if there were no such client: other sites' clients are not disclosed
    nowhere = api.send("south", "discharge", {"client": "C-99", "occurred_at": at(4), "reason": "completed"})
    assert elsewhere.json()["detail"].replace("C-9", "C-X") == nowhere.json()["detail"].replace("C-99", "C-X")
    register_there = api.send("south", "register", {"client": "C-10", "occurred_at": at(0), "site": "north"})
    assert register_there.status_code == 403
    assert api.send("north", "discharge", {"client": "C-9", "occurred_at": at(4), "reason": "completed"}).status_code == 201


def test_api_key_header_works_like_bearer(api: ApiUnderTest):
    headers = {"X-API-Key": api.tokens["north"]}
    response = api.client.post("/commands/register", json={"client": "C-11", "occurred_at": at(0), "site": "north"}, headers=headers)
    assert response.status_code == 201
