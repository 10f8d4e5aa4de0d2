"""The dashboard in a real browser: headless Chromium from the system's packages (`.ci/run` installs
it), driven by Playwright, against `continuum serve` on a free loopback port over a demo store
(`continuum demo --clients 60 --seed 3`). It signs in, checks that the numbers shown equal the API's,
sends commands through the API and sees the census change without a reload, is refused with a wrong
token and with another role's token, works by keyboard and on a phone-sized screen, loads nothing
from another origin (the dashboard and /docs), and saves screenshots and its load figures under
tests/artefacts/dashboard/ (not committed).

Without Chromium or Playwright the tests skip, except where CONTINUUM_REQUIRE_SERVICES=1 (CI): there
they fail."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.api_latency import served
from infra.config import Settings
from services.bootstrap import bootstrap
from services.tokens import Role, TokenStore

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
ARTEFACTS = ROOT / "tests" / "artefacts" / "dashboard"
PERIOD = {"from": "2025-01-01", "to": "2025-12-31"}  # the demo cohort's year
CLIENT_REF = re.compile(r"\bC-\d{5}\b|\bLIVE-\d+\b")  # the demo's references, and the ones sent here


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        reason = "headless Chromium (apt-get install chromium) and Playwright (pip install -e '.[test]') are needed"
        if os.environ.get("CONTINUUM_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@dataclass
class Served:
    base_url: str
    tokens: dict[str, str]
    requests: list[str] = field(default_factory=list)

    def api(self, path: str, who: str = "dashboard") -> Any:
        answer = httpx.get(f"{self.base_url}{path}", headers={"Authorization": f"Bearer {self.tokens[who]}"}, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def send(self, command: str, body: dict[str, Any]) -> int:
        answer = httpx.post(f"{self.base_url}/commands/{command}", json=body, timeout=30,
                            headers={"Authorization": f"Bearer {self.tokens['clinician']}"})
        assert answer.status_code == 201, answer.text
        return int(answer.json()["position"])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{folder}/demo.db"
    continuum = Path(sys.executable).parent / "continuum"
    made = subprocess.run([str(continuum), "demo", "--clients", "60", "--seed", "3", "--database-url", url],  # noqa: S603
                          capture_output=True, text=True, timeout=300, check=False)
    assert made.returncode == 0, made.stderr
    wired = bootstrap(Settings(database_url=url))
    try:
        auditor = TokenStore(wired.views).add("browser-auditor", Role.AUDITOR, None)
    finally:
        wired.close()
    with served(url) as (base_url, tokens):
        yield Served(base_url, {**tokens, "auditor": auditor})


@pytest.fixture(scope="module")
def browser(demo: Served) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = _chromium()
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, demo: Served) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(60_000)  # generous: a loaded 2-core CI machine runs the server, the browser and the suite
    demo.requests = []
    tab.on("request", lambda request: demo.requests.append(request.url))
    try:
        yield tab
    finally:
        context.close()


def sign_in(page: Any, demo: Served, who: str = "dashboard") -> Any:
    page.goto(f"{demo.base_url}/dashboard")
    page.fill("#token", demo.tokens[who])
    with page.expect_navigation() as navigation:
        page.click("button[type=submit]")
    return navigation.value


def table(page: Any, key: str) -> list[list[tuple[str, str | None]]]:
    """A table of the page: rows of (text, data-value)."""
    return page.eval_on_selector(f"#table-{key}", """t => [...t.tBodies[0].rows].map(r =>
        [...r.cells].map(c => [c.textContent, c.hasAttribute('data-value') ? c.getAttribute('data-value') : null]))""")


def census_by_level(lines: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    levels: dict[str, tuple[int, int]] = {}
    for line in lines:
        shown, hidden = levels.get(line["level"], (0, 0))
        levels[line["level"]] = (shown + (line["clients"] or 0), hidden + (line["clients"] is None))
    return levels


def page_census(page: Any) -> dict[str, tuple[int, int]]:
    rows = table(page, "census-levels")
    return {text.split()[0]: (int(shown or 0), int(hidden or 0)) for (text, _), (_, shown), (_, hidden) in rows
            if not text.startswith(("Subtotal", "Total"))}


def test_signed_in_the_page_shows_the_apis_numbers(page: Any, demo: Served):
    sign_in(page, demo)
    assert page.locator("h2#h-census").inner_text() == "Census now"
    with page.expect_navigation():
        page.fill("input[name=from]", PERIOD["from"])
        page.fill("input[name=to]", PERIOD["to"])
        page.click("form.filters button[type=submit]")
    timing = page.evaluate("""() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const files = performance.getEntriesByType('resource').filter(r => !r.name.includes('/census/stream'));
        return {load_ms: nav.loadEventEnd, dom_ready_ms: nav.domContentLoadedEventEnd, response_ms: nav.responseEnd,
                page_bytes: nav.decodedBodySize, assets: files.map(r => [r.name.split('?')[0].split('/').pop(), r.decodedBodySize])};
    }""")
    timing["asset_bytes"] = sum(size for _, size in timing["assets"])
    (ARTEFACTS / "load.json").write_text(json.dumps(timing, indent=2), encoding="utf-8")

    census = demo.api("/census")
    assert page_census(page) == census_by_level(census["counts"])
    lines = table(page, "census-lines")
    assert [(r[0][0], r[1][0], r[2][0], r[3][1]) for r in lines] == [
        (x["level"], x["site"], x["track"], None if x["clients"] is None else str(x["clients"])) for x in census["counts"]]

    trend = demo.api("/reports/census-trend?since=2025-01-01&until=2026-01-01")
    headings = page.eval_on_selector("#table-census-trend", "t => [...t.tHead.rows[0].cells].map(c => c.textContent)")
    shown_trend = {(row[0][0], level): row[i][1] for row in table(page, "census-trend") for i, level in enumerate(headings) if i}
    for row in trend["rows"]:
        assert shown_trend[(row["day"], row["level"])] == (None if row["clients"] is None else str(row["clients"])), row
    assert len({day for day, _ in shown_trend}) == 365

    matrix = demo.api("/steps/matrix?since=2025-01-01&until=2025-12-31")
    steps = {(r[0][0], r[1][0]): r[3][1] for r in table(page, "steps")}
    assert steps == {(s["from_level"], s["to_level"]): None if s["count"] is None else str(s["count"]) for s in matrix["steps"]}

    period = "since=2025-01-01&until=2026-01-01"
    completion = demo.api(f"/reports/completion?{period}")
    retention = demo.api(f"/reports/retention?{period}")
    readmission = demo.api(f"/reports/readmission?{period}")
    tile = {key: page.eval_on_selector_all(f"#tile-{key} .metric-value", "vs => vs.map(v => v.dataset.value)")
            for key in ("completion", "retention", "readmission")}
    def values(report: dict[str, Any], name: str) -> list[str]:
        return ["" if r[name] is None else f"{r[name]}" for r in report["rows"]]
    assert tile["completion"] == values(completion, "completion_rate")
    assert tile["retention"] == values(retention, "rate")
    assert tile["readmission"] == values(readmission, "rate")
    status = demo.api("/projections")
    freshness = {r[0][1]: (r[1][1], r[2][1]) for r in table(page, "freshness")}
    assert freshness == {p["name"]: (str(p["position"]), str(p["lag"])) for p in status["projections"]}
    assert f"position {status['head']:,}" in page.locator("#panel-freshness").inner_text()

    page.screenshot(path=str(ARTEFACTS / "dashboard-1280x800.png"))
    page.screenshot(path=str(ARTEFACTS / "dashboard-1280-full.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways on a phone"
    page.screenshot(path=str(ARTEFACTS / "dashboard-phone-390.png"), full_page=True)
    _only_this_origin(demo, page)


def test_the_census_changes_live_without_a_reload(page: Any, demo: Served):
    sign_in(page, demo)
    eventually(lambda: page.evaluate("document.getElementById('live').textContent.includes('following')"), "the live census to follow")
    page.evaluate("window.__stayed = true")
    before = page_census(page)
    now = datetime.now(UTC)
    stamp = int(time.time())
    for n in range(11):  # a new cell of 11 at PHP north day: shown once it reaches 11
        ref = f"LIVE-{stamp}{n:02d}"
        demo.send("register", {"client": ref, "occurred_at": (now - timedelta(hours=2)).isoformat(), "site": "north"})
        demo.send("admit", {"client": ref, "occurred_at": (now - timedelta(hours=1)).isoformat(), "level": "2.5", "site": "north",
                            "track": "day"})
    expected = census_by_level(demo.api("/census?min_position=0")["counts"])
    assert expected["2.5"][0] >= 11 > before.get("2.5", (0, 0))[0]
    want = str(_settled(demo, "2.5"))
    eventually(lambda: page.evaluate("""() => {
        const row = [...document.querySelectorAll('#table-census-levels tbody tr')].find(r => r.cells[0].textContent.startsWith('2.5 '));
        return row ? row.cells[1].dataset.value : null;
    }""") == want, "the census row of 2.5 to change live")
    assert page.evaluate("window.__stayed === true"), "the page was reloaded"
    assert "census changed" in page.locator("#live").inner_text()
    assert page_census(page) == census_by_level(demo.api("/census")["counts"])
    page.screenshot(path=str(ARTEFACTS / "live-update.png"))
    _only_this_origin(demo, page)


def eventually(condition: Any, what: str, timeout: float = 60.0) -> None:
    """Poll from here (the page's Content-Security-Policy forbids the string evaluation Playwright's
    wait_for_function needs), generously: a loaded 2-core CI machine runs the server, the browser and the suite."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"waited {timeout:g} s for {what}")


def _settled(demo: Served, level: str) -> int:
    """The level's shown count once the projections have caught up with every command sent."""
    head = demo.api("/projections")["head"]
    census = demo.api(f"/census?min_position={head}")
    return census_by_level(census["counts"])[level][0]


def test_a_wrong_token_and_another_roles_token_are_refused(page: Any, demo: Served):
    page.goto(f"{demo.base_url}/dashboard")
    page.screenshot(path=str(ARTEFACTS / "sign-in.png"))
    page.fill("#token", "cc_this-is-not-a-token")
    with page.expect_navigation() as navigation:
        page.click("button[type=submit]")
    assert navigation.value.status == 401
    assert "not a valid token" in page.locator("#sign-in-problem").inner_text()
    page.screenshot(path=str(ARTEFACTS / "refused.png"))
    for who in ("clinician", "auditor"):
        response = sign_in(page, demo, who)
        assert response.status == 403
        assert "cannot sign in to the dashboard" in page.locator("#sign-in-problem").inner_text()
    assert page.context.cookies() == []
    assert page.locator("#panel-census").count() == 0


def test_it_works_by_keyboard_and_downloads_csv(page: Any, demo: Served):
    sign_in(page, demo)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to the dashboard"
    for _ in range(60):  # Tab through the header and the filters to the census picture and its table
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.tagName") == "SUMMARY":
            break
    assert page.evaluate("document.activeElement.parentElement.id") == "numbers-census"
    page.keyboard.press("Enter")
    assert page.evaluate("document.getElementById('numbers-census').open")
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('csv')"):
            break
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    saved = ARTEFACTS / "census-lines.csv"
    download.value.save_as(str(saved))
    assert saved.read_text(encoding="utf-8").startswith("level,site,track,clients")
    _only_this_origin(demo, page)


def test_the_docs_load_nothing_from_elsewhere(page: Any, demo: Served):
    page.goto(f"{demo.base_url}/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "care-continuum" in page.locator(".swagger-ui .info .title").inner_text()
    page.screenshot(path=str(ARTEFACTS / "docs.png"))
    _only_this_origin(demo, page)


def _only_this_origin(demo: Served, page: Any = None) -> None:
    """Every request went to the server itself, and none (nor the page) names a client or carries a token."""
    if page is not None:
        assert not CLIENT_REF.search(page.content())
    elsewhere = [url for url in demo.requests if not url.startswith((demo.base_url + "/", "data:", "blob:"))]
    assert not elsewhere, elsewhere
    named = [url for url in demo.requests if CLIENT_REF.search(url) or "token" in url.lower()]
    assert not named, named
