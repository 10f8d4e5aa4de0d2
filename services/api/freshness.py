"""Read-your-writes and conditional reads.

A command answers with the store position of its events; a query given that position as
`min_position` waits (bounded) until the projections it reads have reached it, and otherwise
answers 503 with Retry-After rather than stale data. Every read says which position it reflects
(`X-Position`), and that position, read before the data, is its ETag: the data is at least as
new as the tag, so a 304 never hides a newer answer.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

from fastapi import Response

from projections.runner import ProjectionRunner
from services.api.follower import ProjectionFollower
from services.api.problems import InvalidParameter, NotCaughtUp

POLL = 0.025  # seconds between looks at the positions while waiting


class Freshness:
    def __init__(self, runner: ProjectionRunner, follower: ProjectionFollower | None, timeout: float) -> None:
        self.runner = runner
        self.follower = follower
        self.timeout = timeout

    def position(self, names: Sequence[str]) -> int:
        positions = self.runner.positions()
        return min(positions.get(name, 0) for name in names)

    def at_least(self, names: Sequence[str], wanted: int | None) -> int:
        """The position the named projections reflect, once it is `wanted` or more."""
        reached = self.position(names)
        if wanted is None or reached >= wanted:
            return reached
        head = self.runner.head()
        if wanted > head:
            raise InvalidParameter("query", "min_position", f"{wanted} is beyond the last recorded event ({head})")
        deadline = time.monotonic() + self.timeout
        while reached < wanted:
            if self.follower is not None:
                self.follower.nudge()
            if time.monotonic() >= deadline:
                raise NotCaughtUp(wanted, reached)
            time.sleep(POLL)
            reached = self.position(names)
        return reached


def etag(view: str, position: int, *scope: object) -> str:
    """`W/"census:1042:3f2a..."`: the view, the position it reflects, and a digest of who asked and how."""
    digest = hashlib.sha256("|".join(str(part) for part in scope).encode()).hexdigest()[:12]
    return f'W/"{view}:{position}:{digest}"'


def matches(if_none_match: str | None, tag: str) -> bool:
    if not if_none_match:
        return False
    offered = [part.strip() for part in if_none_match.split(",")]
    return "*" in offered or tag in offered or tag.removeprefix("W/") in offered


def mark(response: Response, position: int, tag: str | None = None) -> None:
    response.headers["X-Position"] = str(position)
    if tag is not None:
        response.headers["ETag"] = tag
        response.headers["Cache-Control"] = "private, no-cache"
        response.headers["Vary"] = "Authorization, X-API-Key"


def not_modified(position: int, tag: str) -> Response:
    response = Response(status_code=304)
    mark(response, position, tag)
    return response
