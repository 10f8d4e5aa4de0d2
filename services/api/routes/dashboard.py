"""The web dashboard (`/dashboard`) and the API's Swagger page (`/docs`), both served from the package.

Sign-in: a dashboard token posted from the form opens a session (`services/api/sessions.py`); the
browser holds a random session id in an HttpOnly, SameSite=Strict cookie that expires. The page and
its panels read the API's aggregates with the dashboard role; the page's script follows
`/census/stream` (with the same cookie) and fetches the census panel again when the census changes.
None of these routes is in the OpenAPI document: they are the page, not the API.
"""

from __future__ import annotations

import gzip
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse

from services.api import pages
from services.api.dashboard import PANELS, TABLES, Aggregates, Filters, known_sites, read_filters, table_of
from services.api.deps import Api, ApiDep
from services.api.sessions import COOKIE, LIFETIME_SECONDS, SignInRefused, sessions_of
from services.tokens import Principal

router = APIRouter(include_in_schema=False)

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self';"
       " frame-ancestors 'none'; base-uri 'none'")
DOCS_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:;"
            " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")
SWAGGER = "vendor/swagger-ui/"
TYPES = {"css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8", "png": "image/png", "txt": "text/plain; charset=utf-8"}
MAX_FORM_BYTES = 4096
GZIP_FROM = 2048  # bytes: smaller answers go as they are


def _guarded(response: Response, csp: str = CSP) -> Response:
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" would make forms post Origin: null
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _html(body: str, status: int = 200, request: Request | None = None) -> Response:
    """An HTML answer, gzipped when the browser takes it (a year's tables compress about tenfold)."""
    data = body.encode()
    if request is not None and len(data) > GZIP_FROM and "gzip" in request.headers.get("accept-encoding", ""):
        headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        return _guarded(Response(gzip.compress(data, 6), status_code=status, media_type="text/html; charset=utf-8", headers=headers))
    return _guarded(HTMLResponse(data, status_code=status))


def signed_in(request: Request, api: ApiDep) -> Principal | None:
    return sessions_of(request).principal(request.cookies.get(COOKIE), api.tokens)


Session = Annotated[Principal | None, Depends(signed_in)]


def _required(principal: Principal | None) -> Principal:
    if principal is None:
        raise HTTPException(401, "sign in to the dashboard first: /dashboard")
    return principal


def _same_origin(request: Request) -> bool:
    """A form posted from this site's own page: a cross-site post (sign-in or sign-out forced by another
    page) is refused. Clients that send neither header (curl) cannot be made to post by a page."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


def _filters(api: Api, request: Request) -> tuple[Filters, list[str]]:
    values = {name: request.query_params.get(name, "") for name in ("site", "group", "from", "to")}
    return read_filters(api, values)


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, api: ApiDep, principal: Session) -> Response:
    """The sign-in form, or the dashboard for a signed-in session."""
    if principal is None:
        return _html(pages.sign_in())
    filters, problems = _filters(api, request)
    data = Aggregates(api, principal, filters)
    panels = [build(data) for build in PANELS.values()]
    census = next(p for p in panels if p.key == "census")
    body = pages.page(who=principal.name, filters=filters, sites=known_sites(api), panels=panels, problems=problems,
                      census_position=census.position or 0)
    return _html(body, request=request)


@router.post("/dashboard/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, api: ApiDep) -> Response:
    """The form's token opens a session: 303 to the page with the session cookie, else the form again with why."""
    if not _same_origin(request):
        return _html(pages.sign_in("Refused: the sign-in form was posted from another site."), 403)
    body = await request.body()
    token = parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace")).get("token", [""])[0]
    sessions = sessions_of(request)
    try:
        session_id, _ = sessions.open(token, api.tokens)
    except SignInRefused as refused:
        return _html(pages.sign_in(str(refused)), refused.status)
    response = _guarded(RedirectResponse("/dashboard", status_code=303))
    response.set_cookie(COOKIE, session_id, max_age=LIFETIME_SECONDS, expires=LIFETIME_SECONDS, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    sessions.close(request.cookies.get(COOKIE))  # a sign-in over an old session ends it
    return response


@router.post("/dashboard/sign-out")
def sign_out(request: Request) -> Response:
    """End the session and clear the cookie."""
    if not _same_origin(request):
        return _html(pages.sign_in("Refused: the sign-out form was posted from another site."), 403)
    sessions_of(request).close(request.cookies.get(COOKIE))
    response = _guarded(RedirectResponse("/dashboard", status_code=303))
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


@router.get("/dashboard/panels/{name}", response_class=HTMLResponse)
def panel(request: Request, api: ApiDep, principal: Session, name: Annotated[str, Path(max_length=32)]) -> Response:
    """One panel's HTML, as the page has it: the page's script swaps it in when the census changes."""
    signed = _required(principal)
    build = PANELS.get(name)
    if build is None:
        raise HTTPException(404, f"no panel {name!r} (panels: {', '.join(PANELS)})")
    filters, _ = _filters(api, request)
    return _html(pages.panel(build(Aggregates(api, signed, filters)), filters.query()), request=request)


@router.get("/dashboard/csv/{key}")
def table_csv(request: Request, api: ApiDep, principal: Session, key: Annotated[str, Path(max_length=32)]) -> Response:
    """One of the page's tables as CSV: the numbers the page shows, suppressed cells as <11."""
    signed = _required(principal)
    panel_name = TABLES.get(key)
    if panel_name is None:
        raise HTTPException(404, f"no table {key!r} (tables: {', '.join(TABLES)})")
    filters, _ = _filters(api, request)
    found = table_of([PANELS[panel_name](Aggregates(api, signed, filters))], key)
    text = found.as_csv() if found is not None else ""
    name = f"{key}-{filters.first}-{filters.last}.csv"
    return _guarded(Response(text, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'}))


@router.get("/dashboard/assets/{name}")
def dashboard_asset(name: Annotated[str, Path(max_length=64)]) -> Response:
    if name not in pages.ASSETS:
        raise HTTPException(404, "no such file")
    return _asset(name)


@router.get("/docs", response_class=HTMLResponse)
def docs() -> Response:
    """Swagger UI for the OpenAPI document, from the vendored swagger-ui-dist (no CDN)."""
    page = get_swagger_ui_html(
        openapi_url="/openapi.json", title="care-continuum API", swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css", swagger_favicon_url="/docs/assets/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},
    )
    return _guarded(page, DOCS_CSP)


@router.get("/docs/assets/{name}")
def docs_asset(name: Annotated[str, Path(max_length=64)]) -> Response:
    if name not in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        raise HTTPException(404, "no such file")
    return _asset(SWAGGER + name)


def _asset(name: str) -> Response:
    kind = TYPES[name.rsplit(".", 1)[-1]]
    response = Response(pages.asset(name), media_type=kind, headers={"Cache-Control": "public, max-age=86400"})
    return _guarded(response)
