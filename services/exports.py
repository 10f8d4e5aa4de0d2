"""Exports for recipients outside the program: the TEDS-D extract and FHIR bundles.

Each export for a recipient is a 42 CFR Part 2 disclosure: only clients with a consent in force
that covers the recipient, the purpose and the kinds of record exported are included, each is
entered in the accounting of disclosures before anything is written, and the §2.32 notice goes
with it (`services/disclosures.py`). The CLI and the API call these and render what they return.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domain.consent import ConsentPurpose, covering
from services import teds
from services.disclosures import NOTICE, Disclosure, Disclosures, Permitted, load_histories, load_journeys

if TYPE_CHECKING:
    from domain.journey import ClientJourney
    from services.bootstrap import Continuum
    from services.reads import Reader

CHUNK = 500
"""Clients per read of the store, and per batch of bundles held before they are recorded and written."""

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


def all_journeys(wired: Continuum) -> Iterator[ClientJourney]:
    """Every journey, as stored (the census's list of clients, caught up first), `CHUNK` in memory at a time."""
    from projections.census import journey_ids

    wired.runner.catch_up()
    with wired.views.transaction() as cursor:
        ids = journey_ids(cursor)
    return load_journeys(wired.app, ids, CHUNK)


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


def fhir_bundle(wired: Continuum, client_ref: str, reader: Reader) -> dict[str, Any]:
    """The client's Bundle for the program's own auditors and clinicians (an access record, no disclosure)."""
    from services import fhir

    journey_id = wired.reads.journey_id(client_ref)
    wired.reads.record_read(reader, client_ref, "FHIR $everything")
    [(journey, events)] = list(load_histories(wired.app, [journey_id]))
    return fhir.bundle(journey, events, identified=True)


def fhir_export(
    wired: Continuum, out_dir: Path, client_refs: list[str] | None, reader: Reader, *, recipient: str | None,
    purpose: ConsentPurpose | None, at: datetime | None = None,
) -> ExportReport:
    """One Bundle per client (`<journey id>.json`) in `out_dir`; every client when `client_refs` is None.

    For a `recipient`: a disclosure, clients under a consent in force for it only, each Bundle holding the
    kinds of record the consent's scope names, the Patient identified only when the scope includes
    demographics, the §2.32 notice in the Patient's narrative and in `NOTICE.txt`, each client recorded in
    the accounting of disclosures first. Without one: the program's own copy, every client read is an
    access record."""
    import json
    import time

    from domain.journey import ClientJourney
    from projections.census import journey_ids
    from services import fhir

    started = time.perf_counter()
    moment = at or datetime.now(tz=UTC)
    if client_refs is None:
        wired.runner.catch_up()
        with wired.views.transaction() as cursor:
            ids = journey_ids(cursor)
    else:
        ids = [wired.reads.journey_id(ref) for ref in client_refs]
    out_dir.mkdir(parents=True, exist_ok=True)
    log = Disclosures(wired.views)
    written: list[Disclosure] = []
    files: list[Path] = []
    left_out = count = 0
    bundles: list[tuple[str, dict[str, Any]]] = []
    permitted: list[Permitted] = []

    def flush() -> None:  # each chunk's disclosures (or reads) are recorded before its files are written
        if recipient is None:
            wired.reads.record_listing(reader, [ref for ref, _ in bundles], "FHIR export")
        else:
            written.extend(log.record(permitted, recipient=recipient, what="FHIR R4 Bundle (the consent's scope)",
                                      actor_id=reader.actor_id, role=reader.role, at=moment))
        for ref, document in bundles:
            path = out_dir / f"{ClientJourney.create_id(ref)}.json"
            path.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
            files.append(path)
        bundles.clear()
        permitted.clear()

    for journey, events in load_histories(wired.app, ids, CHUNK):
        if recipient is None:
            bundles.append((journey.client_ref, fhir.bundle(journey, events, identified=True, now=moment)))
        else:
            consent = covering(journey.consents(), recipient, moment, (), purpose)
            if consent is None:
                left_out += 1
                continue
            permitted.append(Permitted(journey.client_ref, consent))
            identified = "all" in consent.scope or "demographics" in consent.scope
            bundles.append((journey.client_ref, fhir.bundle(
                journey, events, identified=identified, kinds=consent.scope, now=moment, notice=NOTICE, consents=[consent])))
        count += 1
        if len(bundles) >= CHUNK:
            flush()
    flush()
    if recipient is not None:
        notice = out_dir / "NOTICE.txt"
        notice.write_text(f"Disclosed to {recipient} on {moment.date().isoformat()}.\n\n{NOTICE}\n", encoding="utf-8")
        files.append(notice)
    return ExportReport(recipient or "", count, count, left_out, written, files, time.perf_counter() - started)
