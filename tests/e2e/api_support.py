"""What the HTTP API tests share: an app over a fresh store (SQLite or PostgreSQL), one token per
role, and helpers that send commands and read through the real HTTP stack (TestClient)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette asks for httpx2; the TestClient still speaks httpx
    from fastapi.testclient import TestClient

from infra.config import Settings
from services.api import create_app
from services.bootstrap import Continuum, bootstrap
from services.tokens import Role, TokenStore
from tests.support.clock import NOW, fixed_clock

# Clinical times from a fixed day before the tests' clock reading, which the service reads.
BASE = (NOW - timedelta(days=30)).replace(hour=9, minute=0, second=0, microsecond=0)  # 2026-10-25 09:00 UTC

WHO = {
    "north": (Role.CLINICIAN, "north"),
    "south": (Role.CLINICIAN, "south"),
    "auditor": (Role.AUDITOR, None),
    "dashboard": (Role.DASHBOARD, None),
}


def at(days: float) -> str:
    return (BASE + timedelta(days=days)).isoformat()


@dataclass
class ApiUnderTest:
    client: TestClient
    wired: Continuum
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}", **extra}

    def send(self, who: str, command: str, body: dict[str, Any], key: str | None = None) -> httpx.Response:
        headers = self.headers(who, **({"Idempotency-Key": key} if key else {}))
        return self.client.post(f"/commands/{command}", json=body, headers=headers)

    def get(self, who: str, path: str, **extra: str) -> httpx.Response:
        return self.client.get(path, headers=self.headers(who, **extra))

    def admitted(self, client: str, site: str = "north", level: str = "2.1", track: str = "day") -> int:
        """Register and admit a client; returns the position of the admission."""
        first = self.send(site, "register", {"client": client, "occurred_at": at(0), "site": site})
        assert first.status_code == 201, first.text
        admitted = self.send(site, "admit", {"client": client, "occurred_at": at(1), "level": level, "site": site, "track": track})
        assert admitted.status_code == 201, admitted.text
        return int(admitted.json()["position"])


@contextmanager
def api_under_test(database_url: str, *, follow: bool = True, **settings: Any) -> Iterator[ApiUnderTest]:
    wired = bootstrap(Settings(database_url=database_url, **settings), clock=fixed_clock)
    try:
        app = create_app(wired, follow=follow)
        store = TokenStore(wired.views)
        tokens = {who: store.add(f"{who}-token", role, site) for who, (role, site) in WHO.items()}
        with TestClient(app, raise_server_exceptions=False) as client:
            yield ApiUnderTest(client, wired, tokens)
    finally:
        wired.close()
