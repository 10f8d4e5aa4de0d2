"""`continuum export-audit`: one self-contained JSON document per client that an auditor can check
offline with `continuum verify --file` (or by hand: the recipe travels inside the package)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from domain import events as ev
from domain.journey import ClientJourney
from infra.access_log import AccessRecord
from infra.chain import GENESIS, chain_head, journey_links, link, row_hash
from infra.raw import stream_events
from services.bootstrap import Continuum

FORMAT = "care-continuum audit package"
HOW_TO_VERIFY = (
    "For each event in order: row_hash = sha256(f'{position}|{journey_id}|{version}|{topic}|' bytes + base64-decoded"
    " stored_state); journey_link = sha256(previous journey_link + row_hash) as hex text, starting from 64 zeros at"
    " version 1; the last journey_link must equal journey_head. The payload is the decoded stored_state (unless the"
    " store encrypts events at rest, when stored_state is ciphertext and only the hashes can be checked). Each access"
    " record's hash = sha256(prev_hash + JSON [seq, at, actor_id, role, client_ref, what, purpose] without spaces)."
    " Compare journey_head and global_head with the heads you were given earlier: a rewritten history changes them."
    " `continuum verify --file PACKAGE` does all of this."
)


def build_package(wired: Continuum, client_ref: str, *, exported_by: str, access: list[AccessRecord]) -> dict[str, Any]:
    journey_id = ClientJourney.create_id(client_ref)
    links = _links(wired, journey_id)
    events = []
    for position, journey, version, topic, state in stream_events(wired.views, wired.database.kind, journey=journey_id):
        event = wired.app.mapper.to_domain_event(StoredEvent(journey, version, topic, state))
        if not isinstance(event, ev.JourneyEvent | ev.ClientRegistered):  # every event of the catalogue is one
            raise TypeError(f"not an event of the catalogue: {type(event).__name__}")
        facts = ev.payload(event)
        chain = links.get(position, {})
        events.append({
            "position": position, "version": version, "type": ev.event_name(event), "topic": topic,
            "occurred_at": facts.pop("occurred_at"), "recorded_at": event.timestamp.isoformat(),
            "recorded_by": facts.pop("recorded_by"), "command_id": facts.pop("command_id"), "payload": facts,
            "stored_state": base64.b64encode(state).decode(), "row_hash": chain.get("row_hash"),
            "journey_link": chain.get("journey_link"), "global_link": chain.get("global_link"),
        })
    _annotate(events)
    return {
        "format": FORMAT, "format_version": 1, "client": client_ref, "journey_id": str(journey_id),
        "exported_at": datetime.now(tz=UTC).isoformat(), "exported_by": exported_by,
        "encrypted_at_rest": wired.settings.cipher_key is not None,
        "events": events, "journey_head": events[-1]["journey_link"] if events else GENESIS,
        "global_head": _global_head(wired),
        "access_records": [record.as_json() for record in access],
        "how_to_verify": HOW_TO_VERIFY,
    }


def _annotate(events: list[dict[str, Any]]) -> None:
    """Each entry names the corrections and the void that refer to it, so they read side by side."""
    by_version = {event["version"]: event for event in events}
    for event in events:
        target = by_version.get(event["payload"].get("corrects_version") or event["payload"].get("voided_version"))
        if target is None:
            continue
        if event["type"] == "EntryVoided":
            target["voided_by"] = {"version": event["version"], "reason": event["payload"]["reason"], "at": event["recorded_at"]}
        else:
            target.setdefault("corrected_by", []).append(event["version"])


def _links(wired: Continuum, journey_id: UUID) -> dict[int, dict[str, str]]:
    with wired.views.transaction() as cursor:
        rows = journey_links(cursor, journey_id)
    return {
        position: {"row_hash": r.row_hash, "journey_link": r.journey_link, "global_link": r.global_link}
        for position, r in rows.items()
    }


def _global_head(wired: Continuum) -> str:
    with wired.views.transaction() as cursor:
        return chain_head(cursor)[1]


@dataclass
class PackageReport:
    client: str
    events: int
    journey_head: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_package(package: dict[str, Any]) -> PackageReport:  # noqa: C901 - one check after another, in order
    """Check a package without the database: hashes, the journey chain, payloads, access records."""
    problems: list[str] = []
    if package.get("format") != FORMAT:
        return PackageReport(str(package.get("client")), 0, GENESIS, [f"not a {FORMAT} (format {package.get('format')!r})"])
    journey_id = UUID(package["journey_id"])
    if ClientJourney.create_id(str(package.get("client"))) != journey_id:
        problems.append(f"client {package.get('client')!r} is not the client of journey {journey_id}: altered")
    previous, version = GENESIS, 0
    for entry in package["events"]:
        where = f"event #{entry['position']} (version {entry['version']})"
        state = base64.b64decode(entry["stored_state"])
        hashed = row_hash(entry["position"], journey_id, entry["version"], entry["topic"], state)
        if entry["version"] != version + 1:
            problems.append(f"{where}: follows version {version}: an event is missing or out of order")
        if hashed != entry["row_hash"]:
            problems.append(f"{where}: stored state does not match row_hash: altered")
        elif link(previous, hashed) != entry["journey_link"]:
            problems.append(f"{where}: journey_link does not follow from the previous link: altered")
        if not package.get("encrypted_at_rest") and not problems:
            problems.extend(_payload_problems(where, entry, state))
        previous, version = entry["journey_link"], entry["version"]
        if problems:
            break
    if not problems and previous != package["journey_head"]:
        problems.append(f"journey_head {package['journey_head'][:16]}… is not the last link {previous[:16]}…")
    for record in package.get("access_records", []):
        access = AccessRecord(**record)
        if access.expected_hash() != access.hash:
            problems.append(f"access record {access.seq}: does not match its hash: altered")
    return PackageReport(package.get("client", "?"), len(package["events"]), previous, problems)


def _payload_problems(where: str, entry: dict[str, Any], state: bytes) -> list[str]:
    """Everything shown must be what the hashed stored state says: each field, the recorded time, the type."""
    stored = json.loads(state)
    shown = {"occurred_at": entry["occurred_at"], "recorded_by": entry["recorded_by"], "command_id": entry["command_id"],
             "timestamp": entry["recorded_at"], **entry["payload"]}
    mismatched = [name for name, value in shown.items() if name not in stored or _plain(stored[name]) != value]
    if entry["topic"].rsplit(".", 1)[-1] != entry["type"]:
        mismatched.append("type")
    if mismatched:
        return [f"{where}: shown {', '.join(sorted(mismatched))} differ from the stored state: altered"]
    return []


def _plain(value: Any) -> Any:  # noqa: ANN401 - JSON of any shape
    """The library's JSON keeps custom types as {'_type_': name, '_data_': value}; compare the values."""
    if isinstance(value, dict):
        if set(value) == {"_type_", "_data_"}:
            return _plain(value["_data_"])
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
