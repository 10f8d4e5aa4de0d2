"""The census filters as people type them, for the CLI and the API alike: a level of care (an ASAM
code, a level's name, or a group such as `detox` or `residential`), a track and a site. A value
that names nothing is refused with the values that are known, never counted as 0.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from domain.levels import ALUMNI, Level, Track, census_level

if TYPE_CHECKING:
    from infra.views import Cursor
    from services.reads import Census

WITHDRAWAL_MANAGEMENT = tuple(level.code for level in Level if level.is_withdrawal_management)
RESIDENTIAL = (Level.RESIDENTIAL_LOW.code, Level.RESIDENTIAL_HIGH.code, Level.INPATIENT_MONITORED.code)  # ASAM level 3

LEVEL_GROUPS: dict[str, tuple[str, ...]] = {
    "detox": WITHDRAWAL_MANAGEMENT,
    "wm": WITHDRAWAL_MANAGEMENT,
    "withdrawal": WITHDRAWAL_MANAGEMENT,
    "residential": RESIDENTIAL,
    "op": (Level.OUTPATIENT.code,),
}
TRACKS = (*(track.value for track in Track), ALUMNI)


@dataclass(frozen=True)
class Levels:
    """What `--level` named: one census level, or a group of them."""

    asked: str
    codes: tuple[str, ...]

    @property
    def single(self) -> str | None:
        """The one code to filter by in the query, when the value named one level."""
        return self.codes[0] if len(self.codes) == 1 else None

    def keep(self, census: Census) -> Census:
        """The census of these levels only (a group is counted from the unfiltered census)."""
        if self.single is not None:
            return census
        return replace(
            census, lines=[line for line in census.lines if line.level in self.codes],
            clients=[client for client in census.clients if client.level in self.codes],
        )


def census_levels(value: str) -> Levels:
    """An ASAM code (2.1), a level's name (iop, php, outpatient), `alumni`, or a group: detox (also wm,
    withdrawal: every withdrawal-management level), residential (3.1, 3.5, 3.7), op (1). Any case."""
    text = value.strip()
    group = LEVEL_GROUPS.get(text.lower())
    if group is not None:
        return Levels(value, group)
    for candidate in (text, text.lower(), text.upper()):
        try:
            return Levels(value, (census_level(candidate),))
        except ValueError:
            continue
    codes = ", ".join(level.code for level in Level)
    msg = (
        f"unknown level of care {value!r} (known: {codes}, alumni; a level's name such as iop or php;"
        f" or a group: {', '.join(LEVEL_GROUPS)})"
    )
    raise ValueError(msg)


def census_track(value: str) -> str:
    track = value.strip().lower()
    if track not in TRACKS:
        msg = f"unknown track {value!r} (known: {', '.join(TRACKS)})"
        raise ValueError(msg)
    return track


def census_site(cursor: Cursor, value: str) -> str:
    """A site the census knows; a name no client was ever registered or treated at is refused."""
    from projections.census import known_sites  # the census owns its tables' SQL (and loads the store's modules)

    sites = known_sites(cursor)
    if value in sites:
        return value
    shown = ", ".join(sites) if sites else "none: no client is recorded yet"
    msg = f"unknown site {value!r}: no client has been registered or treated there (known sites: {shown})"
    raise ValueError(msg)
