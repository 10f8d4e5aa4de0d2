"""The live census over Server-Sent Events: the census at once, each change after it, and a
reconnect with Last-Event-ID that resumes after the position it names."""

from __future__ import annotations

import json
import threading
from typing import Any

from tests.e2e.api_support import ApiUnderTest, at


def events(api: ApiUnderTest, count: int, **headers: str) -> list[dict[str, Any]]:
    """Read `count` events from the stream (max_events closes it after them)."""
    found: list[dict[str, Any]] = []
    with api.client.stream("GET", f"/census/stream?max_events={count}", headers=api.headers("auditor", **headers)) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        current: dict[str, Any] = {}
        for line in stream.iter_lines():
            if line.startswith("id: "):
                current["id"] = int(line[4:])
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif not line and current:
                found.append(current)
                current = {}
    return found


def test_the_stream_starts_with_the_census_and_its_position(api: ApiUnderTest):
    position = api.admitted("C-1")
    api.client.app.state.api.freshness.at_least(["census"], position)  # type: ignore[attr-defined]
    [first] = events(api, 1)
    assert first["event"] == "census"
    assert first["id"] == first["data"]["position"] >= position
    assert first["data"]["total"] == 1


def test_a_reconnect_with_last_event_id_resumes_after_it(api: ApiUnderTest):
    position = api.admitted("C-1")
    api.client.app.state.api.freshness.at_least(["census"], position)  # type: ignore[attr-defined]
    [seen] = events(api, 1)
    later = api.admitted("C-2", site="south")  # recorded while the dashboard was away
    api.client.app.state.api.freshness.at_least(["census"], later)  # type: ignore[attr-defined]
    [resumed] = events(api, 1, **{"Last-Event-ID": str(seen["id"])})
    assert resumed["id"] >= later > seen["id"]
    assert resumed["data"]["total"] == 2


def test_a_change_after_connecting_is_streamed(api: ApiUnderTest):
    position = api.admitted("C-1")
    api.client.app.state.api.freshness.at_least(["census"], position)  # type: ignore[attr-defined]
    def discharge_soon() -> None:
        api.send("north", "discharge", {"client": "C-1", "occurred_at": at(5), "reason": "completed"})

    timer = threading.Timer(0.5, discharge_soon)
    timer.start()
    [change] = events(api, 1, **{"Last-Event-ID": str(position)})  # up to date: the next event is the change
    timer.join()
    assert change["id"] > position
    assert change["data"]["total"] == 0


def test_the_stream_needs_a_token(api: ApiUnderTest):
    assert api.client.get("/census/stream?max_events=1").status_code == 401
    bad = api.client.get("/census/stream?max_events=1", headers=api.headers("dashboard", **{"Last-Event-ID": "x"}))
    assert bad.status_code == 422
    unknown_level = api.client.get("/census/stream?level=9.9", headers=api.headers("dashboard"))
    assert unknown_level.status_code == 422
    assert unknown_level.json()["fields"][0]["field"] == "level"


def test_resuming_after_a_position_beyond_the_head_is_refused_at_once(api: ApiUnderTest):
    head = api.wired.runner.head()
    beyond = api.client.get("/census/stream", headers=api.headers("dashboard", **{"Last-Event-ID": str(head + 1000)}))
    assert beyond.status_code == 422
    assert beyond.json()["fields"][0]["field"] == "Last-Event-ID"
    assert f"beyond the last recorded position {head}" in beyond.json()["detail"]


def test_a_body_that_is_not_utf8_gets_a_400_that_says_so(api: ApiUnderTest):
    body = b'{"client": "A\\xff1", "occurred_at": "2025-01-01T00:00:00Z", "site": "north"}'.replace(b"\\xff", b"\xff")
    answer = api.client.post("/commands/register", content=body,
                             headers={**api.headers("north"), "Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["detail"] == "the body is not JSON in UTF-8: send the command as UTF-8 encoded JSON"
