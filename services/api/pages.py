"""The dashboard's HTML: the sign-in form, the page, and one panel at a time (for live updates).

Everything is escaped here; the page loads one style sheet and one script, both served from the
package (`services/api/static/`), and nothing from anywhere else: no CDN, no web font (the system's
own sans-serif). The token is typed into a form posted to the server and never appears in the page.
"""

from __future__ import annotations

import hashlib
from functools import cache
from html import escape
from importlib.resources import files

from services.api.dashboard import GROUP_FILTERS, MAX_DAYS, Filters, Panel, Table
from services.reports import SMALL_CELL

ASSETS = ("dashboard.css", "dashboard.js")
NUMERIC = ' class="num"'
SUBTOTAL = ' class="subtotal"'


@cache
def asset(name: str) -> bytes:
    """A file of the page (package data); only the names in ASSETS and the vendored Swagger UI are served."""
    return files("services.api").joinpath("static", *name.split("/")).read_bytes()


@cache
def asset_url(name: str) -> str:
    """The file's URL with its digest, so a browser may keep it and still gets a changed one."""
    return f"/dashboard/assets/{name}?v={hashlib.sha256(asset(name)).hexdigest()[:12]}"


def _head(title: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="referrer" content="same-origin">'
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title>"
        f'<link rel="stylesheet" href="{asset_url("dashboard.css")}">'
        f'<script src="{asset_url("dashboard.js")}" defer></script></head>'
    )


def sign_in(message: str | None = None) -> str:
    """The sign-in form: the token is posted in the body, never put in a URL."""
    problem = f'<p class="problem" role="alert" id="sign-in-problem">{escape(message)}</p>' if message else ""
    return (
        _head("Sign in · care-continuum dashboard")
        + '<body class="sign-in"><main id="main" class="sign-in-box">'
        '<h1>Care-continuum dashboard</h1>'
        "<p>Sign in with a <strong>dashboard</strong> token (from <code>continuum token add NAME --role dashboard</code>)."
        " The page shows aggregate counts only.</p>"
        f"{problem}"
        '<form method="post" action="/dashboard/sign-in" autocomplete="off">'
        '<label for="token">Dashboard token</label>'
        '<input id="token" name="token" type="password" autocomplete="off" required autofocus spellcheck="false" autocapitalize="off"'
        + (' aria-describedby="sign-in-problem" aria-invalid="true"' if message else "")
        + '><button type="submit">Sign in</button></form>'
        '<p class="fine">The session ends when you sign out, after 8 hours, or when the server restarts.</p>'
        "</main></body></html>"
    )


def page(*, who: str, filters: Filters, sites: list[str], panels: list[Panel], problems: list[str], census_position: int) -> str:
    query = filters.query()
    site_options = '<option value="">every site</option>' + "".join(
        f'<option value="{escape(site)}"{" selected" if site == filters.site else ""}>{escape(site)}</option>' for site in sites
    )
    group_options = '<option value="">every level</option>' + "".join(
        f'<option value="{value}"{" selected" if value == filters.group else ""}>{escape(label)}</option>'
        for value, label in GROUP_FILTERS.items()
    )
    shown_problems = "".join(f"<li>{escape(p)}</li>" for p in problems)
    stream = "/census/stream" + (f"?{filters.stream_query()}" if filters.stream_query() else "")
    return (
        _head("Dashboard · care-continuum")
        + "<body>"
        '<a class="skip" href="#main">Skip to the dashboard</a>'
        '<header class="top"><h1>Care continuum</h1>'
        f'<div class="who">Signed in as <strong>{escape(who)}</strong> (dashboard)'
        '<form method="post" action="/dashboard/sign-out"><button type="submit" class="quiet">Sign out</button></form></div></header>'
        '<form class="filters" method="get" action="/dashboard" aria-label="Filters">'
        f'<label>Site <select name="site">{site_options}</select></label>'
        f'<label>Level group <select name="group">{group_options}</select></label>'
        f'<label>From <input type="date" name="from" value="{filters.first}" max="{filters.today}" required></label>'
        f'<label>To <input type="date" name="to" value="{filters.last}" max="{filters.today}" required></label>'
        '<button type="submit">Show</button>'
        f'<p class="fine">Whole days, at most {MAX_DAYS}; the census now and the live updates follow the site and level group.</p>'
        "</form>"
        + (f'<ul class="problem" role="alert">{shown_problems}</ul>' if problems else "")
        + f'<p class="privacy">Aggregates only. Counts under {SMALL_CELL} are suppressed (shown as &lt;{SMALL_CELL}), as in the'
        " reports, with what is built on them; no client is named.</p>"
        '<p id="live" class="live" role="status" aria-live="polite">Live updates start when the page has loaded.</p>'
        f'<main id="main" tabindex="-1" data-query="{escape(query)}" data-stream="{escape(stream)}" data-position="{census_position}">'
        + "".join(panel(p, query) for p in panels)
        + "</main>"
        "<footer><p>care-continuum · charts drawn on the server as SVG · every table has a CSV download.</p></footer>"
        "</body></html>"
    )


def panel(p: Panel, query: str) -> str:
    """One panel; the same markup answers `GET /dashboard/panels/{name}` for a live update."""
    if p.figure.startswith("<svg"):
        figure = (f'<figure class="figure"><div class="figure-scroll" role="region" tabindex="0" aria-label="{escape(p.title)}: picture">'
                  f"{p.figure}</div><figcaption>{escape(p.caption)}</figcaption></figure>")
    else:
        figure = f'<div class="figure">{p.figure}</div>'
    tables = list(p.tables)
    beside = table(tables.pop(0), query) if p.beside and tables else ""
    toggled = ""
    if tables:
        label = "Show the numbers" if not beside else "Show more numbers"
        toggled = (f'<details class="numbers" id="numbers-{p.key}"><summary>{label}</summary>'
                   + "".join(table(t, query) for t in tables) + "</details>")
    notes = "".join(f"<li>{escape(n)}</li>" for n in p.notes)
    return (
        f'<section class="panel panel-{p.key}" id="panel-{p.key}" aria-labelledby="h-{p.key}"'
        f' data-position="{"" if p.position is None else p.position}">'
        f'<div class="panel-head"><h2 id="h-{p.key}">{escape(p.title)}</h2><p class="meta">{escape(p.meta)}</p></div>'
        f'<div class="panel-body{" beside" if beside else ""}">{figure}{beside}</div>'
        f"{toggled}"
        + (f'<ul class="notes">{notes}</ul>' if notes else "")
        + "</section>"
    )


def table(t: Table, query: str) -> str:
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in t.headings)
    body = []
    for index, row in enumerate(t.rows):
        cells = []
        for cell in row:
            numeric = isinstance(cell.value, int | float) and not isinstance(cell.value, bool)
            value = "" if cell.value is None else f' data-value="{escape(str(cell.value))}"'
            kind = NUMERIC if numeric or cell.text.startswith("<") else ""
            cells.append(f"<td{kind}{value}>{escape(cell.text)}</td>")
        body.append(f"<tr{SUBTOTAL if index in t.strong else ''}>{''.join(cells)}</tr>")
    href = f"/dashboard/csv/{t.key}" + (f"?{query}" if query else "")
    return (
        f'<div class="table-block"><div class="table-scroll" role="region" aria-labelledby="cap-{t.key}" tabindex="0">'
        f'<table id="table-{t.key}" data-table="{t.key}"><caption id="cap-{t.key}">{escape(t.caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        f'<a class="csv" href="{escape(href)}" download="{t.key}.csv">Download CSV<span class="visually-hidden">: '
        f"{escape(t.caption)}</span></a></div>"
    )
