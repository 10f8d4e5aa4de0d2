"""API tokens, configured by the operator (`continuum token add`), stored only as hashes.

A token is 256 random bits, so an unsalted SHA-256 is as strong as a slow password hash here
(nothing to brute-force) and keeps authentication at one indexed lookup per request. The table
keeps revoked tokens, so who could read what, and when, can still be told later.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the CLI imports this module without the database drivers
    from infra.views import Cursor, ViewStore

TOKEN_PREFIX = "cc_"  # noqa: S105 - a prefix that makes a leaked token recognisable, not a secret
DDL = (
    ("CREATE TABLE IF NOT EXISTS api_tokens (token_hash TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,"
    " site TEXT, created_at TEXT NOT NULL, revoked_at TEXT)"),
    "CREATE INDEX IF NOT EXISTS api_tokens_name ON api_tokens (name, revoked_at)",
)


class Role(StrEnum):
    CLINICIAN = "clinician"  # sends commands, reads the clients registered at its site
    AUDITOR = "auditor"  # reads full histories, audit trails, replays, the access log, the chain head
    DASHBOARD = "dashboard"  # reads aggregate census counts and step matrices only


class TokenProblem(Exception):  # noqa: N818 - reads as what the operator is told
    """An operator's token request that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the token's name is the actor id on events and access records."""

    name: str
    role: Role
    site: str | None = None


@dataclass(frozen=True)
class TokenInfo:
    name: str
    role: str
    site: str | None
    created_at: str
    revoked_at: str | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, views: ViewStore) -> None:
        self.views = views
        self._ready = False

    def setup(self, cursor: Cursor | None = None) -> None:
        if self._ready:
            return
        if cursor is None:
            with self.views.transaction() as own:
                self.setup(own)
            return
        self.views.lock_for_ddl(cursor)
        for statement in DDL:
            cursor.execute(statement)
        self._ready = True

    def add(self, name: str, role: Role, site: str | None) -> str:
        """A new token for `name`; the token itself is returned once and never stored."""
        if not name.strip() or len(name) > 64:  # noqa: PLR2004 - the width of an actor id
            msg = "a token name is 1 to 64 characters (it is recorded as the actor on events and reads)"
            raise TokenProblem(msg)
        if role is Role.CLINICIAN and not site:
            msg = "a clinician token needs --site: clinicians read and write the clients of their site"
            raise TokenProblem(msg)
        if role is not Role.CLINICIAN and site:
            msg = f"--site applies to clinician tokens only; a {role.value} token is not bound to a site"
            raise TokenProblem(msg)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.views.transaction() as cursor:
            self.setup(cursor)
            cursor.execute("SELECT 1 FROM api_tokens WHERE name = ? AND revoked_at IS NULL", (name,))
            if cursor.fetchone() is not None:
                msg = f"an active token named {name!r} exists: revoke it first (`continuum token revoke {name}`)"
                raise TokenProblem(msg)
            cursor.execute(
                "INSERT INTO api_tokens (token_hash, name, role, site, created_at) VALUES (?, ?, ?, ?, ?)",
                (token_hash(token), name, role.value, site, _now()),
            )
        return token

    def revoke(self, name: str) -> int:
        with self.views.transaction() as cursor:
            self.setup(cursor)
            cursor.execute("UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (_now(), name))
            revoked = int(cursor.rowcount)
        if not revoked:
            msg = f"no active token named {name!r}"
            raise TokenProblem(msg)
        return revoked

    def list(self, *, include_revoked: bool = False) -> list[TokenInfo]:
        sql = "SELECT name, role, site, created_at, revoked_at FROM api_tokens"
        if not include_revoked:
            sql += " WHERE revoked_at IS NULL"
        with self.views.transaction() as cursor:
            self.setup(cursor)
            cursor.execute(sql + " ORDER BY name, created_at")
            return [TokenInfo(*row) for row in cursor.fetchall()]

    def find(self, token: str) -> Principal | None:
        with self.views.transaction() as cursor:
            self.setup(cursor)
            cursor.execute(
                "SELECT name, role, site FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL", (token_hash(token),),
            )
            row = cursor.fetchone()
        return None if row is None else Principal(row[0], Role(row[1]), row[2])


def _now() -> str:
    return datetime.now(tz=UTC).isoformat()
