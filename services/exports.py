"""Exports for recipients outside the program: the TEDS-D extract and FHIR bundles.

Each export for a recipient is a 42 CFR Part 2 disclosure: only clients with a consent in force
that covers the recipient, the purpose and the kinds of record exported are included, each is
entered in the accounting of disclosures before anything is written, and the §2.32 notice goes
with it (`services/disclosures.py`). The CLI and the API call these and render what they return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domain.consent import ConsentPurpose, covering
from services import teds
from services.disclosures import NOTICE, Disclosure, Disclosures, Permitted, load_journeys

if TYPE_CHECKING:
    from domain.journey import ClientJourney
    from services.bootstrap import Continuum

TEDS_KINDS = ("demographics", "episodes", "stays", "discharges", "medication")
"""What a TEDS-D record discloses: age group and sex, admissions, levels, discharges, medication."""


@dataclass
class ExportReport:
    recipient: str
    records: int
    clients: int
    without_consent: int  # clients with something to export and no consent covering it: left out
    disclosures: list[Disclosure] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "recipient": self.recipient, "records": self.records, "clients": self.clients,
            "without_consent": self.without_consent, "disclosures": len(self.disclosures),
            "files": [str(f) for f in self.files], "seconds": round(self.seconds, 3),
        }


def all_journeys(wired: Continuum) -> list[ClientJourney]:
    """Every journey, as stored (the census's list of clients, caught up first)."""
    from projections.census import journey_ids

    wired.runner.catch_up()
    with wired.views.transaction() as cursor:
        ids = journey_ids(cursor)
    return list(load_journeys(wired.app, ids))


def teds_extract(
    wired: Continuum, out: Path, *, recipient: str, purpose: ConsentPurpose | None, since: datetime | None,
    until: datetime | None, at: datetime | None = None,
) -> ExportReport:
    """The TEDS-D discharge extract for `recipient` as CSV at `out`, the §2.32 notice beside it (`<out>.notice.txt`)."""
    import time

    started = time.perf_counter()
    moment = at or datetime.now(tz=UTC)
    records: list[teds.TedsStay] = []
    permitted: list[Permitted] = []
    left_out = 0
    for journey in all_journeys(wired):
        ended = list(teds.ended_between([journey], since, until))
        if not ended:
            continue
        consent = covering(journey.consents(), recipient, moment, TEDS_KINDS, purpose)
        if consent is None:
            left_out += 1
            continue
        permitted.append(Permitted(journey.client_ref, consent))
        records.extend(ended)
    span = f"{since.date().isoformat() if since else '...'}..{until.date().isoformat() if until else '...'}"
    what = f"TEDS-D discharge extract {span} (crosswalk v{teds.CROSSWALK_VERSION}; {', '.join(TEDS_KINDS)})"
    written = Disclosures(wired.views).record(
        permitted, recipient=recipient, what=what, actor_id=wired.settings.actor, role=wired.settings.role, at=moment,
    )
    records.sort(key=lambda r: (r.ended_at, r.client_ref))
    with out.open("w", encoding="utf-8", newline="") as handle:
        count = teds.write_csv(records, handle)
    notice = out.with_name(out.name + ".notice.txt")
    notice.write_text(f"Disclosed to {recipient} on {moment.date().isoformat()}: {what}.\n\n{NOTICE}\n", encoding="utf-8")
    return ExportReport(recipient, count, len(permitted), left_out, written, [out, notice], time.perf_counter() - started)
