"""What every projection is: a name, the events it handles, its tables, and one handler per event.

Handlers write through the cursor of the runner's transaction, so a page of events, the rows they
produce and the projection's new position are committed together or not at all.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.utils import get_topic

from domain.journey import ClientJourney
from infra.views import Cursor

if TYPE_CHECKING:
    from projections.pages import Carried


def utc(moment: datetime) -> str:
    """Fixed-width UTC text, so that times compare correctly as strings in SQLite and PostgreSQL: the text
    `strftime("%Y-%m-%dT%H:%M:%S.%fZ")` gives for the moment in UTC."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return _utc_text(moment)


@functools.lru_cache(maxsize=8192)
def _utc_text(moment: datetime) -> str:
    """`utc`'s text of a moment in UTC, remembered for the last moments asked: in a rebuild each event's times are
    written by several projections (a hit costs a twentieth of a miss). Equal moments in UTC are one instant, whose
    text is one. The day's part is remembered too; the rest is four numbers (cheaper than isoformat's)."""
    if moment.year < 1000:  # noqa: PLR2004 - strftime does not pad these years to four digits, isoformat does
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return _day(moment.date()) + _CLOCK % (moment.hour, moment.minute, moment.second, moment.microsecond)


@functools.lru_cache(maxsize=1024)
def _day(day: date) -> str:
    return day.isoformat() + "T"


_CLOCK = "%02d:%02d:%02d.%06dZ"


id_text = functools.lru_cache(maxsize=8192)(str)
"""`str` of a journey's id (a UUID), remembered for the last ids asked: a rebuild writes each event's journey in several
projections' rows, and the events of a page share journeys (a hit costs a third of `UUID.__str__`)."""


def from_utc(text: str) -> datetime:
    """The moment `utc` wrote: fromisoformat reads its fixed-width form ~50x faster than the strptime it replaces
    (reports read hundreds of thousands of these at 10^5 clients)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is UTC else moment.replace(tzinfo=UTC)


def stored_topic(event_class: type[Aggregate.Event]) -> str:
    """The topic under which the store records an event of the catalogue."""
    return get_topic(getattr(ClientJourney, event_class.__name__))


class Projection:
    name: ClassVar[str]
    handles: ClassVar[tuple[type[Aggregate.Event], ...]]
    tables: ClassVar[tuple[str, ...]]
    appends_only: ClassVar[bool] = False
    """Whether the handlers only insert rows (never read, change or delete one): a rebuild on PostgreSQL
    then fills the tables without their primary keys and adds them once filled (cheaper than row by row)."""

    def __init__(self) -> None:
        self.topics = frozenset(stored_topic(event_class) for event_class in self.handles)

    def ddl(self, dialect: str) -> list[str]:
        raise NotImplementedError

    def process(self, event: DomainEventProtocol[UUID], cursor: Cursor, position: int) -> None:
        raise NotImplementedError

    def page(self, cursor: Cursor, events: Sequence[DomainEventProtocol[UUID]], dialect: str,
             carried: Carried | None = None) -> AbstractContextManager[Cursor]:
        """The cursor a page of `events` (in order, in one transaction) is processed through: by default `cursor`
        itself. A projection whose handlers read its tables may read ahead for the whole page on entry and write
        what its handlers kept on exit (projections/pages.py), handing on to the next page of the same run what it
        read and wrote (`carried`); `process` on a plain cursor stays the one-event path."""
        return nullcontext(cursor)


def id_type(dialect: str) -> str:
    return "BIGINT" if dialect == "postgres" else "INTEGER"
