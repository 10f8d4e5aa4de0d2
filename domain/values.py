"""Small immutable values the journey is told about."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

BIRTH_YEARS = (1900, 2100)
"""The birth years a client may be recorded with (and a registration's no later than the recording system's year):
the journey's rules, its corrections, the command models and the published contract all take them from here."""


@dataclass(frozen=True)
class Actor:
    """Who records an event: an actor id and the role they act in."""

    id: str
    role: str

    def __str__(self) -> str:
        return f"{self.id} ({self.role})"


@dataclass(frozen=True)
class Context:
    """What every command carries besides its clinical facts.

    `now` is the clock reading of the recording system, passed in so the domain has no clock of
    its own; `command_id` makes a repeated command a no-op (re-running an import records nothing
    twice).
    """

    by: Actor
    now: datetime
    command_id: str
