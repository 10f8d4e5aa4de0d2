"""Drug tests: one row per specimen (collected when, where, at which level, its overall result) and
one per analyte of its result, with expected medication positives (the client's MAT) kept apart from
non-prescribed positives.

A voided collection drops its specimen, a voided result empties the specimen's result and drops its
analytes; a corrected time or result changes them; a corrected or voided change of level files the
journey's specimens again under the level in force when each was collected.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import DomainEventProtocol

from domain import events as ev
from infra.views import Cursor, Params
from projections.base import Projection, from_utc, id_text, id_type, utc
from projections.pages import Carried
from projections.placements import PLACING, PlacedPage, Placements, Placing, kept, period, placed_page, sync

PLACEMENTS = Placements("drug_test_placements", "drug_specimens", "collected_at")


class DrugTests(Projection):
    name = "drug_tests"
    handles = (*PLACING, ev.DrugTestCollected, ev.DrugTestResulted, ev.EntryCorrected, ev.EntryVoided)
    tables = ("drug_test_placements", "drug_specimens", "drug_analytes")

    def ddl(self, dialect: str) -> list[str]:
        version = id_type(dialect)
        return [
            *PLACEMENTS.ddl(dialect),
            f"""CREATE TABLE IF NOT EXISTS drug_specimens (
                journey_id TEXT NOT NULL, specimen_id TEXT NOT NULL, collected_by {version} NOT NULL, collected_at TEXT NOT NULL,
                specimen TEXT NOT NULL, observed INTEGER NOT NULL, random INTEGER NOT NULL, level TEXT NOT NULL,
                site TEXT NOT NULL, track TEXT NOT NULL, hours REAL NOT NULL, stay {version} NOT NULL, episode {version} NOT NULL,
                result TEXT, resulted_by {version}, resulted_at TEXT, PRIMARY KEY (journey_id, specimen_id))""",
            "CREATE INDEX IF NOT EXISTS drug_specimens_time ON drug_specimens (collected_at)",
            """CREATE TABLE IF NOT EXISTS drug_analytes (
                journey_id TEXT NOT NULL, specimen_id TEXT NOT NULL, analyte TEXT NOT NULL, outcome TEXT NOT NULL,
                expected INTEGER NOT NULL, PRIMARY KEY (journey_id, specimen_id, analyte))""",
        ]

    def page(self, cursor: Cursor, events: Sequence[DomainEventProtocol[UUID]], dialect: str,
             carried: Carried | None = None) -> AbstractContextManager[Cursor]:
        """The page's intervals read once (each specimen filed without a query), its results written together."""
        return PLACEMENTS.page(cursor, events, dialect, carried, SpecimensPage)

    @singledispatchmethod
    def process(self, event: Any, cursor: Cursor, position: int) -> None:  # noqa: ANN401
        """Events the drug tests do not handle only move the position."""

    @process.register
    def _placed(self, event: Placing, cursor: Cursor, position: int) -> None:
        PLACEMENTS.follow(cursor, event)

    @process.register
    def _collected(self, event: ev.DrugTestCollected, cursor: Cursor, position: int) -> None:
        journey, at = id_text(event.originator_id), utc(event.occurred_at)
        page = placed_page(cursor)
        if isinstance(page, SpecimensPage) and (journey, event.specimen_id) in page.resulted:
            page.write_results()  # a result held for this specimen id goes first, as it came
        cursor.execute(
            "INSERT INTO drug_specimens (journey_id, specimen_id, collected_by, collected_at, specimen, observed, random,"
            " level, site, track, hours, stay, episode) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (journey, event.specimen_id, event.originator_version, at, event.specimen.value, int(event.observed),
             int(event.random), *PLACEMENTS.filed(cursor, journey, at).columns()),
        )

    @process.register
    def _resulted(self, event: ev.DrugTestResulted, cursor: Cursor, position: int) -> None:
        journey = id_text(event.originator_id)
        result = (event.result.value, event.originator_version, utc(event.occurred_at), journey, event.specimen_id)
        page = placed_page(cursor)
        if isinstance(page, SpecimensPage):
            page.results.append(result)
            page.resulted.add((journey, event.specimen_id))
        else:
            cursor.execute(RESULT, result)
        expected = set(event.expected_medications)
        for analyte, outcome in sorted(event.substances.items()):
            cursor.execute(
                "INSERT INTO drug_analytes (journey_id, specimen_id, analyte, outcome, expected) VALUES (?, ?, ?, ?, ?)",
                (journey, event.specimen_id, analyte, outcome, int(analyte in expected)),
            )

    @process.register
    def _corrected(self, event: ev.EntryCorrected, cursor: Cursor, position: int) -> None:
        sync(cursor, id_text(event.originator_id))
        journey, version = id_text(event.originator_id), event.corrects_version
        if event.corrects_type in ("DrugTestCollected", "DrugTestResulted"):
            resulted = event.corrects_type == "DrugTestResulted"
            column = {"occurred_at": "resulted_at" if resulted else "collected_at", "result": "result",
                      "observed": "observed", "random": "random"}.get(event.field)
            if column is None:
                return
            value: object = event.corrected_value
            if event.field == "occurred_at":
                value = utc(datetime.fromisoformat(str(value)))
            elif column in ("observed", "random"):
                value = int(str(value).lower() in ("true", "1"))
            by = "resulted_by" if resulted else "collected_by"
            cursor.execute(
                f"UPDATE drug_specimens SET {column} = ? WHERE journey_id = ? AND {by} = ?",  # noqa: S608
                (value, journey, version),
            )
            if column == "collected_at":
                PLACEMENTS.refile(cursor, journey)
        else:
            PLACEMENTS.corrected(cursor, event)

    @process.register
    def _voided(self, event: ev.EntryVoided, cursor: Cursor, position: int) -> None:
        sync(cursor, id_text(event.originator_id))
        journey, version = id_text(event.originator_id), event.voided_version
        if event.voided_type == "DrugTestResulted":
            cursor.execute("SELECT specimen_id FROM drug_specimens WHERE journey_id = ? AND resulted_by = ?", (journey, version))
            row = cursor.fetchone()
            if row is not None:
                cursor.execute("DELETE FROM drug_analytes WHERE journey_id = ? AND specimen_id = ?", (journey, row[0]))
            cursor.execute(
                "UPDATE drug_specimens SET result = NULL, resulted_by = NULL, resulted_at = NULL"
                " WHERE journey_id = ? AND resulted_by = ?",
                (journey, version),
            )
        elif event.voided_type == "DrugTestCollected":
            cursor.execute("DELETE FROM drug_specimens WHERE journey_id = ? AND collected_by = ?", (journey, version))
        else:
            PLACEMENTS.voided(cursor, event)


RESULT = "UPDATE drug_specimens SET result = ?, resulted_by = ?, resulted_at = ? WHERE journey_id = ? AND specimen_id = ?"


class SpecimensPage(PlacedPage):
    """The intervals, and the page's results: one UPDATE each, sent together after the page's collections."""

    def __init__(self, placements: Placements, cursor: Cursor, dialect: str, journey_ids: Sequence[str],
                 carried: Carried | None = None) -> None:
        super().__init__(placements, cursor, dialect, journey_ids, carried)
        self.cursor = cursor
        self.results: list[Params] = []
        self.resulted: set[tuple[str, str]] = set()  # (journey, specimen id) of the results held

    def write_results(self) -> None:
        if self.results:
            self.cursor.executemany(RESULT, self.results)  # after the collections held before them (the runner's order)
            self.results, self.resulted = [], set()

    def write(self) -> None:
        super().write()
        self.write_results()

    def sync(self, journey: str) -> None:
        super().sync(journey)
        self.write_results()


@dataclass(frozen=True)
class Specimen:
    journey_id: str
    specimen_id: str
    collected_at: datetime
    level: str
    site: str
    result: str | None
    expected_positives: int  # analytes positive for the client's own medication
    other_positives: int  # analytes positive and not prescribed


def specimens_query(cursor: Cursor, since: datetime | None, until: datetime | None) -> list[Specimen]:
    """Specimens collected in [since, until), with their positive analytes counted, expected apart."""
    collected, params = period("s.collected_at", since, until)
    cursor.execute(
        "SELECT s.journey_id, s.specimen_id, s.collected_at, s.level, s.site, s.result,"  # noqa: S608
        " COALESCE(SUM(CASE WHEN a.outcome = 'positive' AND a.expected = 1 THEN 1 ELSE 0 END), 0),"
        " COALESCE(SUM(CASE WHEN a.outcome = 'positive' AND a.expected = 0 THEN 1 ELSE 0 END), 0)"
        " FROM drug_specimens s LEFT JOIN drug_analytes a ON a.journey_id = s.journey_id AND a.specimen_id = s.specimen_id"
        f" WHERE {collected}"
        " GROUP BY s.journey_id, s.specimen_id, s.collected_at, s.level, s.site, s.result ORDER BY s.collected_at, s.journey_id",
        params,
    )
    return [Specimen(j, sp, from_utc(at), lv, s, r, int(e), int(o)) for j, sp, at, lv, s, r, e, o in cursor.fetchall()]


@dataclass(frozen=True)
class SpecimenWeek:
    """The specimens collected in one week (Monday, UTC) at a site and level: collected, resulted, negative, with
    a non-prescribed positive, with only expected medication positives, resulted neither negative nor positive."""

    week: date
    site: str
    level: str
    collected: int
    resulted: int
    negative: int
    other_positive: int
    expected_only: int
    odd: int


def specimen_weeks(
    cursor: Cursor, since: datetime | None, until: datetime | None, *, site: str | None = None,
    levels: tuple[str, ...] | None = None,
) -> list[SpecimenWeek]:
    """The specimens of `specimens_query` (and of `site` and `levels`, if given) added up by week, site and level."""
    collected, params = period("s.collected_at", since, until)
    conditions, chosen = kept(site, levels, "s.")
    where, values = [collected, *conditions], [*params, *chosen]
    resulted = "s.result IS NOT NULL"
    cursor.execute(  # the positive analytes per specimen first (few), then one pass over the specimens, by day
        f"SELECT substr(s.collected_at, 1, 10), s.site, s.level, COUNT(*), SUM(CASE WHEN {resulted} THEN 1 ELSE 0 END),"  # noqa: S608
        " SUM(CASE WHEN s.result = 'negative' THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN {resulted} AND COALESCE(a.other, 0) > 0 THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN {resulted} AND COALESCE(a.other, 0) = 0 AND COALESCE(a.expected, 0) > 0 THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN {resulted} AND s.result NOT IN ('negative', 'positive') THEN 1 ELSE 0 END)"
        " FROM drug_specimens s LEFT JOIN (SELECT journey_id, specimen_id, SUM(CASE WHEN expected = 1 THEN 1 ELSE 0 END) AS expected,"
        " SUM(CASE WHEN expected = 0 THEN 1 ELSE 0 END) AS other FROM drug_analytes WHERE outcome = 'positive'"
        " GROUP BY journey_id, specimen_id) a ON a.journey_id = s.journey_id AND a.specimen_id = s.specimen_id"
        f" WHERE {' AND '.join(where)} GROUP BY 1, 2, 3",
        values,
    )
    weeks: dict[tuple[date, str, str], list[int]] = {}
    for day, at_site, level, *counts in cursor.fetchall():
        on = date.fromisoformat(day)
        sums = weeks.setdefault((on - timedelta(days=on.weekday()), at_site, level), [0] * len(counts))
        for i, n in enumerate(counts):
            sums[i] += int(n)
    return [SpecimenWeek(week, at_site, level, *sums) for (week, at_site, level), sums in weeks.items()]
