"""Times, one way for every entry point (the CLI and the API).

- **Read from people** (`--on 2026-03-10`, `?as_of=2026-03-10T17:00`): `parse_moment`. A date means
  the end of that day in the configured zone (`CONTINUUM_TIMEZONE`), or its start for the beginning
  of a period; a time without an offset is in the configured zone; `today` and `now` are accepted.
  Given the clock's reading, a moment after it is refused, except today's date, which means now: the
  census of today is the census so far, in every zone. A clinical time (`--on`, `--as-of`) is bounded
  by the journey service's clock, a recorded time (`--as-recorded`) by the store's (`recording_clock`).
- **Shown to people**: `shown`, in the configured zone and labelled with it (`2026-03-10 09:00
  America/New_York`); a table says the zone once, in its column heading (`heading`), and its cells
  use `shown(..., label=False)`.
- **In JSON** (every `--json` output and API response): `json_moment`, ISO 8601 in UTC with the
  offset written `+00:00` (`2026-03-10T14:00:00+00:00`; a fraction of a second only when there is one),
  the shape the access log stores. Clients convert to the zone they show.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DATE_LENGTH = len("2026-01-31")


class MomentError(ValueError):
    """What someone typed is not a moment that can be read (not a date or time, or in the future)."""


def zone(name: str) -> tzinfo:
    """The configured zone by its IANA name (`UTC`, `America/New_York`)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"unknown time zone {name!r} in CONTINUUM_TIMEZONE"
        raise MomentError(msg) from None


def parse_moment(
    text: str, zone_name: str, *, end_of_day: bool = True, now: datetime | None = None, name: str = "time",
) -> datetime:
    """The moment `text` names, in UTC.

    `end_of_day`: a date means the end of that day (a midnight census, the last day of a period);
    False for the first day of a period (`--since`). `now`: the clock's reading; when given, nothing
    after it is accepted and today's date (or `today`) means now. `name` is how the caller calls the
    value in its messages (`--on`, `on`).
    """
    local = zone(zone_name)
    word = text.strip().lower()
    if word in ("now", "today"):
        moment = now or datetime.now(tz=UTC)
        return moment.astimezone(UTC) if word == "now" or end_of_day else _start_of(moment, local)
    try:
        if len(text) == DATE_LENGTH:
            day = date.fromisoformat(text)
            if now is not None and end_of_day and day == now.astimezone(local).date():
                return now.astimezone(UTC)  # today so far
            moment = datetime.combine(day, time.max if end_of_day else time.min, tzinfo=local)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=local)
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        msg = f"{name} {text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time"
        raise MomentError(msg) from None
    if now is not None and moment > now:
        msg = f"{name} {text} is in the future (it is {shown(now, zone_name)} now): only what has happened can be read"
        raise MomentError(msg)
    return moment


def recording_clock() -> datetime:
    """The clock that stamps recorded times (the event store's): the bound of an `--as-recorded` moment.
    Clinical times (`--on`, `--as-of`) are bounded by the journey service's clock instead."""
    return datetime.now(tz=UTC)


def _start_of(moment: datetime, local: tzinfo) -> datetime:
    return datetime.combine(moment.astimezone(local).date(), time.min, tzinfo=local).astimezone(UTC)


def shown(moment: datetime | str, zone_name: str, *, seconds: bool = False, label: bool = True) -> str:
    """A time for a person: in the configured zone, `2026-03-10 09:00 America/New_York` (to the second
    with `seconds`); without the zone when a table heading already says it (`heading`)."""
    at = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    text = f"{at.astimezone(zone(zone_name)):%Y-%m-%d %H:%M{':%S' if seconds else ''}}"
    return f"{text} {zone_name}" if label else text


def heading(title: str, zone_name: str) -> str:
    """A column heading that says the zone of the times below it: `occurred (America/New_York)`."""
    return f"{title} ({zone_name})"


def json_moment(moment: datetime) -> str:
    """A time in JSON: ISO 8601 in UTC, `2026-03-10T14:00:00+00:00` (a naive time is taken as UTC)."""
    at = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat()
