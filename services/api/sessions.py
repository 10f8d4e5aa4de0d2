"""Dashboard sign-ins: a dashboard token typed once into the sign-in form opens a session, and the
browser keeps only a random session id in an HttpOnly, SameSite=Strict cookie that expires.

The token never reaches a URL, the page or the cookie: it stays in this process's memory beside the
session, so that every request checks it again (a revoked token ends its sessions at once). Only
dashboard tokens open sessions, and a session authenticates reads only (GET and HEAD): the cookie
cannot send a command, and a page on another site cannot make the browser send it (SameSite=Strict,
and the sign-in and sign-out forms check the Origin). Sessions end on sign-out, after
`LIFETIME_SECONDS`, and when the server stops (sign in again).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.tokens import Principal, Role, TokenStore

if TYPE_CHECKING:
    from starlette.requests import Request

COOKIE = "continuum_dashboard"
LIFETIME_SECONDS = 8 * 3600  # a working day; the cookie's Max-Age is the same
MAX_SESSIONS = 10_000  # memory is bounded: beyond this the oldest sessions end
READ_METHODS = frozenset({"GET", "HEAD"})


class SignInRefused(Exception):  # noqa: N818 - reads as what the person is told
    """A token that cannot open a dashboard session: `status` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Session:
    token: str
    name: str
    expires: float  # time.time()


class DashboardSessions:
    """The open sessions of one app, in memory; `clock` is `time.time` (tests move it)."""

    def __init__(self, lifetime: float = LIFETIME_SECONDS, limit: int = MAX_SESSIONS) -> None:
        self.lifetime = lifetime
        self.limit = limit
        self.clock = time.time
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, token: str, tokens: TokenStore) -> tuple[str, Session]:
        """A new session for a dashboard token; any other token is refused with the reason."""
        principal = tokens.find(token.strip()) if token.strip() else None
        if principal is None:
            raise SignInRefused(401, "That is not a valid token. Sign in with a dashboard token from `continuum token add`.")
        if principal.role is not Role.DASHBOARD:
            raise SignInRefused(403, f"A {principal.role.value} token cannot sign in to the dashboard: use a dashboard token.")
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            self._sessions = {key: value for key, value in self._sessions.items() if value.expires > now}
            while len(self._sessions) >= self.limit:
                del self._sessions[min(self._sessions, key=lambda key: self._sessions[key].expires)]
            session = Session(token.strip(), principal.name, now + self.lifetime)
            self._sessions[session_id] = session
        return session_id, session

    def close(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)

    def principal(self, session_id: str | None, tokens: TokenStore) -> Principal | None:
        """The dashboard principal of a live session whose token is still valid, else None."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires <= self.clock():
            self.close(session_id)
            return None
        principal = tokens.find(session.token)
        if principal is None or principal.role is not Role.DASHBOARD:  # revoked since the sign-in
            self.close(session_id)
            return None
        return principal

    def expires_in(self, session_id: str) -> float:
        with self._lock:
            session = self._sessions.get(session_id)
        return 0.0 if session is None else max(0.0, session.expires - self.clock())


def sessions_of(request: Request) -> DashboardSessions:
    """The app's sessions (made on first use, so an app assembled without `create_app` has them too)."""
    state = request.app.state
    sessions: DashboardSessions | None = getattr(state, "dashboard_sessions", None)
    if sessions is None:
        with _first_use:
            sessions = getattr(state, "dashboard_sessions", None)
            if sessions is None:
                sessions = DashboardSessions()
                state.dashboard_sessions = sessions
    return sessions


_first_use = threading.Lock()


def session_principal(request: Request, tokens: TokenStore) -> Principal | None:
    """A dashboard session's principal for a read (GET or HEAD) that carries the session cookie; None otherwise."""
    if request.method not in READ_METHODS:
        return None
    session_id = request.cookies.get(COOKIE)
    return sessions_of(request).principal(session_id, tokens) if session_id else None
