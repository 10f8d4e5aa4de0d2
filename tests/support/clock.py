"""The tests' fixed clock: every history is dated before `NOW`, and the journey service reads `NOW`
instead of the wall clock, so no test depends on the day it runs.

`NOW` is "today" for the tests: the journey refuses a clinical time more than two minutes after the
service's clock reading, so a fixed history needs a fixed clock. Recorded times (the library's event
`timestamp`) stay the wall clock's; tests about them compare with `datetime.now` taken around them.
"""

from __future__ import annotations

from datetime import UTC, datetime

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    """The service's `clock=`: always `NOW`."""
    return NOW
