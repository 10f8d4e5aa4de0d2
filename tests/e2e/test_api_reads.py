"""Queries over HTTP: census, history, matrix and audit trail by role; read-your-writes; ETags;
the access log of API reads; operations endpoints; and errors that say nothing of their cause."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi import APIRouter

from tests.e2e.api_support import ApiUnderTest, at


def test_census_with_min_position_reflects_the_command(api: ApiUnderTest):
    position = api.admitted("C-1", level="2.1", track="evening")
    response = api.get("auditor", f"/census?min_position={position}")
    assert response.status_code == 200
    body = response.json()
    assert body["position"] >= position
    assert int(response.headers["X-Position"]) == body["position"]
    assert body["counts"] == [{"level": "2.1", "site": "north", "track": "evening", "clients": 1}]
    assert body["clients"] is None


def test_census_filters_by_level_site_and_track(api: ApiUnderTest):
    api.admitted("C-1", level="2.1", track="day")
    position = api.admitted("C-2", site="south", level="2.5", track="evening")
    by_level = api.get("auditor", f"/census?min_position={position}&level=PHP").json()
    assert by_level["total"] == 1
    assert by_level["counts"][0]["level"] == "2.5"
    assert api.get("auditor", "/census?site=north").json()["total"] == 1
    assert api.get("auditor", "/census?track=evening").json()["counts"][0]["site"] == "south"
    past = api.get("auditor", f"/census?on={at(0.5)[:10]}").json()
    assert past["total"] == 0
    bad = api.get("dashboard", "/census?level=9.9")
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"] == "level"
    assert api.get("dashboard", "/census?on=yesterday").json()["fields"][0]["field"] == "on"


def test_a_lagging_projection_answers_503_with_retry_after(lagging_api: ApiUnderTest):
    position = lagging_api.admitted("C-1")
    response = lagging_api.get("auditor", f"/census?min_position={position}")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"] == "not_caught_up"
    assert int(response.headers["X-Position"]) < position
    assert lagging_api.get("dashboard", "/census").status_code == 200  # without min_position: what there is, and its position


def test_a_query_waits_for_a_projection_that_catches_up_within_the_bound(lagging_api: ApiUnderTest):
    position = lagging_api.admitted("C-1")
    lagging_api.client.app.state.api.freshness.timeout = 5.0  # type: ignore[attr-defined]
    catch_up = threading.Timer(0.3, lagging_api.wired.runner.catch_up)
    catch_up.start()
    started = time.monotonic()
    response = lagging_api.get("auditor", f"/census?min_position={position}")
    catch_up.join()
    assert response.status_code == 200
    assert response.json()["total"] == 1
    assert 0.25 < time.monotonic() - started < 5.0


def test_min_position_beyond_the_head_is_422(api: ApiUnderTest):
    response = api.get("auditor", "/census?min_position=999999")
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "min_position"


def test_an_unchanged_read_is_304_with_its_etag(api: ApiUnderTest):
    position = api.admitted("C-1")
    first = api.get("auditor", f"/census?min_position={position}")
    tag = first.headers["ETag"]
    again = api.get("auditor", "/census", **{"If-None-Match": tag})
    assert again.status_code == 304
    assert again.headers["ETag"] == tag
    assert again.headers["X-Position"] == first.headers["X-Position"]
    later = api.send("north", "discharge", {"client": "C-1", "occurred_at": at(3), "reason": "completed"}).json()["position"]
    changed = api.get("auditor", f"/census?min_position={later}", **{"If-None-Match": tag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != tag


def test_dashboards_read_counts_but_nothing_client_level(api: ApiUnderTest):
    position = api.admitted("C-1")
    assert api.get("dashboard", f"/census?min_position={position}").status_code == 200
    assert api.get("dashboard", "/steps/matrix").status_code == 200
    for path in ("/census?clients=true", "/clients/C-1/history", "/clients/C-1/audit-trail", "/clients/C-1/replay",
                 "/clients/C-1/audit-package", "/audit/access-log", "/audit/chain-head"):
        assert api.get("dashboard", path).status_code == 403, path


def test_a_clinician_lists_and_reads_only_its_sites_clients(api: ApiUnderTest):
    api.admitted("C-1", site="north")
    position = api.admitted("C-2", site="south")
    north = api.get("north", f"/census?clients=true&min_position={position}").json()
    assert [c["client"] for c in north["clients"]] == ["C-1"]
    assert north["clients"][0]["days_in_level"] == 29  # admitted 29 days before the service's clock reading
    assert api.get("north", "/census?clients=true&site=south").json()["clients"] == []
    assert api.get("north", "/clients/C-1/history").status_code == 200
    other_site = api.get("north", "/clients/C-2/history")  # another site's client looks like no client at all
    unknown = api.get("north", "/clients/C-404/history")
    assert (other_site.status_code, unknown.status_code) == (404, 404)
    assert other_site.json()["detail"].replace("C-2", "C-X") == unknown.json()["detail"].replace("C-404", "C-X")
    refused = api.get("auditor", "/audit/access-log?client=C-2").json()["records"]
    assert [(r["actor_id"], r["what"]) for r in refused] == [("north-token", "refused: /clients/C-2/history")]
    assert api.get("north", "/clients/C-1/audit-trail").status_code == 403  # audit trails are for auditors
    assert api.get("north", "/clients/C-404/history").status_code == 404


def test_a_clinician_lists_its_sites_clients_wherever_they_are_treated(api: ApiUnderTest):
    api.send("north", "register", {"client": "C-1", "occurred_at": at(0), "site": "north"})
    body = {"client": "C-1", "occurred_at": at(1), "level": "3.5", "site": "south", "track": "residential"}
    position = api.send("north", "admit", body).json()["position"]  # registered at north, treated at south
    north = api.get("north", f"/census?clients=true&min_position={position}").json()
    assert [(c["client"], c["site"]) for c in north["clients"]] == [("C-1", "south")]
    south = api.get("south", "/census?clients=true&site=south").json()
    assert south["total"] == 1
    assert south["clients"] == []  # counted at south, but not south's client to read


def test_history_and_matrix_show_the_steps(api: ApiUnderTest):
    api.admitted("C-1", level="2.5", track="day")
    step = api.send("north", "step_down", {"client": "C-1", "occurred_at": at(10), "to_level": "2.1", "reason": "stable"})
    position = step.json()["position"]
    history = api.get("north", f"/clients/C-1/history?min_position={position}").json()
    assert [(t["kind"], t["from_level"], t["to_level"]) for t in history["transitions"]] == [
        ("admission", None, "2.5"), ("step_down", "2.5", "2.1"),
    ]
    matrix = api.get("auditor", f"/steps/matrix?since={at(0)[:10]}").json()
    assert matrix["steps"] == [{"from_level": "2.5", "to_level": "2.1", "count": 1}]


def test_audit_trail_pages_by_keyset(api: ApiUnderTest):
    api.admitted("C-1")
    position = api.send("north", "plan", {"client": "C-1", "occurred_at": at(2), "goals": ["stay sober"]}).json()["position"]
    first = api.get("auditor", f"/clients/C-1/audit-trail?limit=2&min_position={position}").json()
    assert [e["version"] for e in first["entries"]] == [1, 2]
    assert first["next_after"] == 2
    rest = api.get("auditor", f"/clients/C-1/audit-trail?limit=2&after={first['next_after']}").json()
    assert [e["version"] for e in rest["entries"]] == [3]
    assert rest["next_after"] is None
    assert rest["entries"][0]["recorded_by"] == {"id": "north-token", "role": "clinician"}


def test_every_api_read_of_a_record_is_in_the_access_log(api: ApiUnderTest):
    position = api.admitted("C-1")
    api.get("north", f"/clients/C-1/history?purpose=care review&min_position={position}")
    api.get("auditor", "/clients/C-1/audit-trail")
    api.get("auditor", "/clients/C-1/replay?as_of=" + at(1)[:10])
    log = api.get("auditor", "/audit/access-log?client=C-1").json()["records"]
    assert [(r["actor_id"], r["role"], r["what"].split()[0]) for r in log] == [
        ("north-token", "clinician", "history"), ("auditor-token", "auditor", "audit"), ("auditor-token", "auditor", "replay"),
    ]
    assert log[0]["purpose"] == "care review"
    head = api.get("auditor", "/audit/chain-head").json()
    assert head["access_records"] == 3
    assert head["access_head"] == log[-1]["hash"]
    assert api.get("auditor", "/audit/verify").json()["ok"] is True


def test_census_as_recorded_is_for_auditors(api: ApiUnderTest):
    api.admitted("C-1")
    assert api.get("dashboard", f"/census?as_recorded={at(40)[:10]}").status_code == 403
    body = api.get("auditor", f"/census?as_recorded={at(0).replace('+00:00', 'Z')}").json()
    assert body["total"] == 0  # nothing had been recorded by then


def test_health_readiness_and_metrics(api: ApiUnderTest):
    api.admitted("C-1")
    assert api.client.get("/healthz").json() == {"status": "ok", "head": None, "max_lag": None, "detail": None}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert api.client.get("/metrics").status_code == 401
    metrics = api.get("dashboard", "/metrics").text
    assert 'continuum_http_requests_total{method="POST",route="/commands/admit",status="201"} 1.0' in metrics
    assert 'continuum_projection_lag_events{projection="census"}' in metrics
    assert "C-1" not in metrics


def test_metrics_show_the_relay_lag_once_the_relay_records_a_position(api: ApiUnderTest):
    position = api.admitted("C-1")
    with api.wired.views.transaction() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS relay_positions (name TEXT PRIMARY KEY, position BIGINT NOT NULL, updated_at TEXT NOT NULL)")
        cursor.execute("INSERT INTO relay_positions VALUES (?, ?, ?)", ("kafka", position - 1, "now"))
    metrics = api.get("dashboard", "/metrics").text
    assert 'continuum_relay_lag_events{relay="kafka"} 1.0' in metrics


def test_readiness_fails_while_projections_lag_beyond_the_bound(database_url: str):
    from tests.e2e.api_support import api_under_test

    with api_under_test(database_url, follow=False, api_ready_max_lag=1) as lagging:
        lagging.admitted("C-1")
        lagging.admitted("C-2")
        response = lagging.client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "catching_up"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_unexpected_error_is_a_bare_500(api: ApiUnderTest):
    router = APIRouter()

    @router.get("/boom")
    def boom() -> None:
        raise RuntimeError("SELECT secret FROM clients WHERE ref = 'C-1'")

    api.client.app.include_router(router)  # type: ignore[attr-defined]
    response = api.client.get("/boom")
    assert response.status_code == 500
    assert "SELECT" not in response.text
    assert "C-1" not in response.text
    assert "Traceback" not in response.text
    assert response.json()["error"] == "internal_error"


def test_a_dashboard_sees_no_count_under_eleven_and_whole_days_only(api: ApiUnderTest):
    for number in range(12):
        position = api.admitted(f"N-{number}", site="north")
    api.admitted("S-1", site="south")
    position = api.admitted("S-2", site="south")
    full = api.get("auditor", f"/census?min_position={position}").json()
    seen = api.get("dashboard", f"/census?min_position={position}").json()
    assert {(c["site"], c["clients"]) for c in full["counts"]} == {("north", 12), ("south", 2)}
    assert {(c["site"], c["clients"]) for c in seen["counts"]} == {("north", 12), ("south", None)}
    assert (full["total"], seen["total"]) == (14, None)  # the total would give the small cell away
    assert seen["suppressed"] is True
    assert "under 11" in seen["note"]
    at_noon = api.get("dashboard", f"/census?on={at(1)[:10]}T12:00:00%2B00:00").json()
    whole_day = api.get("dashboard", f"/census?on={at(1)[:10]}").json()
    assert at_noon["at"] == whole_day["at"]  # a time of day counts as the end of that day
    matrix = api.get("dashboard", "/steps/matrix").json()
    assert all(step["count"] is None or step["count"] >= 11 for step in matrix["steps"])
