"""The web dashboard without a browser (the browser test is test_dashboard_browser.py): sign-in with a
dashboard token sets an HttpOnly, SameSite=Strict, expiring session cookie; a wrong token, another
role's token, a revoked token, an expired session and a cross-site post are refused; the cookie reads
aggregates only; the page shows the API's numbers with small cells suppressed; nothing the page asks
for names a client; and the page and /docs load nothing from anywhere else."""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from services.api.dashboard import TABLES
from services.api.pages import ASSETS
from services.api.sessions import COOKIE, LIFETIME_SECONDS
from tests.e2e.api_support import ApiUnderTest, at

EXTERNAL = re.compile(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}")  # a URL of another host (or protocol-relative)


class Tables(HTMLParser):
    """The page's tables: id -> rows of (text, data-value) cells; and every src/href the page names."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.links: list[str] = []
        self._table: str | None = None
        self._cell: tuple[list[str], str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.links += [value for name, value in attrs if name in ("src", "href", "action") and value]
        if tag == "table":
            self._table = found.get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag == "td" and self._table is not None:
            self._cell = ([], found.get("data-value"))

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[0].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append(("".join(self._cell[0]), self._cell[1]))
            self._cell = None
        elif tag == "table":
            self._table = None


def parsed(html: str) -> Tables:
    tables = Tables()
    tables.feed(html)
    tables.tables = {key: [row for row in rows if row] for key, rows in tables.tables.items()}  # the heading rows have no td
    return tables


def sign_in(api: ApiUnderTest, who: str = "dashboard", **headers: str):
    return api.client.post("/dashboard/sign-in", data={"token": api.tokens[who]}, headers=headers, follow_redirects=False)


def census_cohort(api: ApiUnderTest) -> None:
    """12 clients in one cell (shown), 3 in another (suppressed), with references that must never appear."""
    for n in range(12):
        api.admitted(f"SECRET-N{n}", site="north", level="2.1", track="day")
    for n in range(3):
        api.admitted(f"SECRET-S{n}", site="south", level="2.1", track="day")
    api.wired.runner.catch_up()


def test_sign_in_sets_an_http_only_strict_expiring_cookie_and_sign_out_clears_it(api: ApiUnderTest):
    form = api.client.get("/dashboard")
    assert form.status_code == 200
    assert '<form method="post" action="/dashboard/sign-in"' in form.text
    assert 'type="password"' in form.text
    assert form.headers["content-security-policy"].startswith("default-src 'none'")
    signed = sign_in(api)
    assert signed.status_code == 303
    assert signed.headers["location"] == "/dashboard"
    [cookie] = signed.headers.get_list("set-cookie")
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert f"max-age={LIFETIME_SECONDS}" in attributes
    assert any(part.startswith("expires=") for part in attributes)
    assert "path=/" in attributes
    assert api.tokens["dashboard"] not in cookie  # a random session id, never the token
    page = api.client.get("/dashboard")
    assert page.status_code == 200
    assert "Signed in as <strong>dashboard-token</strong>" in page.text
    assert api.tokens["dashboard"] not in page.text
    assert page.headers["cache-control"] == "no-store"
    session_id = api.client.cookies[COOKIE]
    out = api.client.post("/dashboard/sign-out", follow_redirects=False)
    assert out.status_code == 303
    [cleared] = out.headers.get_list("set-cookie")
    assert f'{COOKIE}="";' in cleared or f"{COOKIE}=;" in cleared
    assert "max-age=0" in cleared.lower()
    # the old session id is dead even if a browser kept it
    api.client.cookies.set(COOKIE, session_id)
    assert api.client.get("/census").status_code == 401
    assert 'action="/dashboard/sign-in"' in api.client.get("/dashboard").text


def test_a_wrong_token_is_refused_and_sets_no_cookie(api: ApiUnderTest):
    wrong = api.client.post("/dashboard/sign-in", data={"token": "cc_not-a-token"}, follow_redirects=False)
    assert wrong.status_code == 401
    assert "not a valid token" in wrong.text
    assert "set-cookie" not in wrong.headers
    assert api.client.post("/dashboard/sign-in", data={}, follow_redirects=False).status_code == 401
    assert api.client.get("/dashboard/panels/census").status_code == 401
    assert api.client.get("/dashboard/csv/census-lines").status_code == 401
    assert api.client.get("/census").status_code == 401


@pytest.mark.parametrize("who", ["north", "auditor"])
def test_another_roles_token_cannot_sign_in_nor_widen_the_page(api: ApiUnderTest, who: str):
    refused = sign_in(api, who)
    assert refused.status_code == 403
    assert "cannot sign in to the dashboard" in refused.text
    assert "set-cookie" not in refused.headers
    # a bearer token is not a session: the page and its panels are for signed-in dashboards only
    assert 'action="/dashboard/sign-in"' in api.get(who, "/dashboard").text
    assert api.get(who, "/dashboard/panels/census").status_code == 401
    assert api.get(who, "/dashboard/csv/census-lines").status_code == 401


def test_the_cookie_reads_aggregates_only_and_sends_no_command(api: ApiUnderTest):
    census_cohort(api)
    sign_in(api)
    census = api.client.get("/census")
    assert census.status_code == 200
    assert census.json()["suppressed"] is True  # the dashboard role's view
    assert api.client.get("/census?clients=true").status_code == 403
    assert api.client.get("/clients/SECRET-N1/history").status_code == 403
    assert api.client.get("/audit/access-log").status_code == 403
    register = api.client.post("/commands/register", json={"client": "C-COOKIE", "occurred_at": at(0), "site": "north"})
    assert register.status_code == 401  # the cookie authenticates reads only


def test_the_page_shows_the_api_numbers_with_small_cells_suppressed(api: ApiUnderTest):
    census_cohort(api)
    sign_in(api)
    page = parsed(api.client.get("/dashboard").text)
    lines = api.get("dashboard", "/census").json()
    assert {(x["level"], x["site"], x["clients"]) for x in lines["counts"]} == {("2.1", "north", 12), ("2.1", "south", None)}
    shown = {row[0][0]: row for row in page.tables["table-census-levels"]}
    iop = shown["2.1 intensive outpatient"]
    assert (iop[1][1], iop[2][1]) == ("12", "1")  # 12 shown, one cell under 11 (never 15)
    assert shown["Total (as the API gives it)"][1] == ("suppressed", None)  # the API's total would give the 3 away
    assert [(r[0][0], r[3][0]) for r in page.tables["table-census-lines"]] == [("2.1", "12"), ("2.1", "<11")]
    trend = api.get("dashboard", f"/reports/census-trend?since={at(1)[:10]}").json()
    trend_days = {row["day"]: row["clients"] for row in trend["rows"] if row["level"] == "2.1"}
    page_days = {row[0][0]: row[1][1] for row in page.tables["table-census-trend"]}
    for day, clients in trend_days.items():
        assert page_days[day] == (None if clients is None else str(clients)), day
    assert "15" not in "".join(text for row in page.tables["table-census-levels"] for text, _ in row)


def test_the_level_group_and_site_filters_reach_the_api(api: ApiUnderTest):
    census_cohort(api)
    api.admitted("SECRET-R1", site="north", level="3.5", track="residential")
    api.wired.runner.catch_up()
    sign_in(api)
    iop = parsed(api.client.get("/dashboard?group=iop&site=north").text)
    assert [row[0][0] for row in iop.tables["table-census-lines"]] == ["2.1"]
    unknown = api.client.get("/dashboard?site=nowhere&group=bogus&from=yesterday")
    assert unknown.status_code == 200
    assert "Unknown site &#x27;nowhere&#x27;" in unknown.text
    assert "Unknown level group" in unknown.text
    assert "is not a date" in unknown.text


def test_csv_downloads_are_the_tables_the_page_shows(api: ApiUnderTest):
    census_cohort(api)
    sign_in(api)
    lines = api.client.get("/dashboard/csv/census-lines")
    assert lines.status_code == 200
    assert lines.headers["content-type"].startswith("text/csv")
    assert lines.headers["content-disposition"].startswith('attachment; filename="census-lines-')
    assert lines.text.splitlines() == ["level,site,track,clients", "2.1,north,day,12", "2.1,south,day,<11"]
    for key in TABLES:
        answer = api.client.get(f"/dashboard/csv/{key}")
        assert answer.status_code == 200, key
    assert api.client.get("/dashboard/csv/clients").status_code == 404


def test_nothing_the_page_requests_names_a_client(api: ApiUnderTest):
    census_cohort(api)
    api.send("north", "discharge", {"client": "SECRET-N0", "occurred_at": at(5), "reason": "completed"})
    api.wired.runner.catch_up()
    sign_in(api)
    page = api.client.get("/dashboard")
    answers = [page.text]
    answers += [api.client.get(f"/dashboard/panels/{name}").text for name in ("census", "trend", "flows", "outcomes", "freshness")]
    answers += [api.client.get(f"/dashboard/csv/{key}").text for key in TABLES]
    with api.client.stream("GET", "/census/stream?max_events=1") as stream:
        answers.append("".join(stream.iter_text()))
    links = parsed(page.text).links
    for text in answers:
        assert "SECRET" not in text
        assert api.tokens["dashboard"] not in text
    assert all("SECRET" not in link and "token" not in link for link in links)


def test_the_page_and_the_docs_load_nothing_from_elsewhere(api: ApiUnderTest):
    sign_in(api)
    for html in (api.client.get("/dashboard").text, api.client.get("/dashboard?signed=out").text):
        links = parsed(html).links
        assert links, "the page names its style sheet and script"
        assert all(link.startswith(("/", "#", "data:", "?")) for link in links), links
        assert not EXTERNAL.search(html)
    for name in ASSETS:
        asset = api.client.get(f"/dashboard/assets/{name}")
        assert asset.status_code == 200
        assert not EXTERNAL.search(asset.text), name
    assert api.client.get("/dashboard/assets/..%2Fdashboard.py").status_code == 404
    docs = api.client.get("/docs")
    assert docs.status_code == 200
    assert not EXTERNAL.search(docs.text)
    assert "/docs/assets/swagger-ui-bundle.js" in docs.text
    assert "default-src 'none'" in docs.headers["content-security-policy"]
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        assert api.client.get(f"/docs/assets/{name}").status_code == 200
    assert api.client.get("/redoc").status_code == 404  # it would load from a CDN: off
    paths = json.loads(api.client.get("/openapi.json").text)["paths"]
    assert not [path for path in paths if path.startswith(("/dashboard", "/docs"))]


def test_a_revoked_token_or_an_expired_session_ends_the_session(api: ApiUnderTest):
    sign_in(api)
    assert api.client.get("/census").status_code == 200
    sessions = api.client.app.state.dashboard_sessions  # type: ignore[attr-defined]
    sessions.clock = lambda: time.time() + LIFETIME_SECONDS + 1
    assert api.client.get("/census").status_code == 401
    assert 'action="/dashboard/sign-in"' in api.client.get("/dashboard").text
    sessions.clock = time.time
    sign_in(api)
    assert api.client.get("/census").status_code == 200
    api.wired.tokens.revoke("dashboard-token")
    assert api.client.get("/census").status_code == 401
    assert api.client.get("/dashboard/panels/census").status_code == 401


def test_a_cross_site_post_is_refused(api: ApiUnderTest):
    forged = sign_in(api, Origin="https://elsewhere.example")
    assert forged.status_code == 403
    assert "set-cookie" not in forged.headers
    assert sign_in(api, **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert sign_in(api, Origin="http://testserver", **{"Sec-Fetch-Site": "same-origin"}).status_code == 303
    assert api.client.post("/dashboard/sign-out", headers={"Origin": "https://elsewhere.example"}).status_code == 403
    assert api.client.get("/census").status_code == 200  # still signed in


def test_the_vendored_files_ship_with_their_licences():
    static = Path(__file__).parents[2] / "services" / "api" / "static"
    vendor = static / "vendor" / "swagger-ui"
    assert "Apache License" in (vendor / "LICENSE").read_text(encoding="utf-8")
    assert (static / "vendor" / "README.md").is_file()
