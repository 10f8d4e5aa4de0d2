"""Recipient feeds: beside the pseudonymous journey topic, a topic per configured recipient carrying only the
clients consented for that recipient (42 CFR Part 2, §2.31-§2.33).

Topic: `<journey topic>.to.<slug>`, the slug being the recipient's name in lower case, each run of anything but
letters and digits one hyphen (`care.journey.v2.to.state-hie` for "State HIE"; `infra.config.feed_slug`).

What is sent (`JourneyConsents.decide`, pure): an event of journey J goes to recipient R's topic only when J has a
consent to R in force at that event - granted (recorded before it in the log), not voided, not revoked, not expired,
as of the event's recorded time - whose scope covers the event's record kind (`KINDS`; a correction or a void has
the kind of the entry it amends). Besides the record, R receives the events of its own consents: the grant, a
revocation, a void of either (so a consumer knows when a client's feed ends); never another recipient's.

- On a grant (or the void of a revocation, which puts a consent back in force), J's earlier events within the
  consent's scope that R has not yet received are sent first, in order, each with the header `feed-history: true`,
  then the grant: a consumer can fold the journey. Their `ce_sequence` and `ce_position` are the original ones, so a
  journey's events on a feed are ordered by `ce_sequence`, not by offset, and its sequence has gaps where events were
  not for R.
- A revocation, an expiry or a void of the grant stops J's events to R from then on (a revocation from the earlier of
  its clinical and its recorded time). What was sent before stays on the topic: Kafka is append-only.
- Every message is encoded as on the journey topic (`infra.kafka.envelope.encode`: the same contract, key,
  pseudonyms and CloudEvents headers) plus the header `part2-notice`: the §2.32 notice against redisclosure.
- Each batch's disclosures are entered in the accounting of disclosures before the batch is sent: one row per client
  and consent per batch (what: the topic, the number of events, their record kinds, the positions, "history" when
  earlier events went with a grant); the composition root passes the accounting in (`account`).

Consent state: one row per journey with a consent to R in `feed_consents` (owned here), keyed by the feed's topic and
saved in the same transaction as the feed's position once the broker has acknowledged the batch (the relay's
`_acknowledged` hook). A restarted feed loads it and decides exactly as a continuous one would; a batch sent again
after a crash is deduplicated by consumers on ce_id (and accounted again).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from threading import Event
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Notification
from kafka import KafkaProducer

from domain.consent import Consent, ConsentPurpose
from domain.events import event_name
from infra.chain import journey_links
from infra.config import ConfigurationError, feed_slug
from infra.kafka.clients import KafkaSettings
from infra.kafka.envelope import encode
from infra.kafka.relay import Relay
from infra.kafka.wire import Wire
from infra.views import ViewStore

LOG = logging.getLogger("continuum.feeds")

INFIX = ".to."
MAX_TOPIC = 249  # Kafka's limit on a topic's name
NOTICE_HEADER = "part2-notice"
HISTORY_HEADER = "feed-history"
CONSENT = "consent"
"""The kind of a consent's own events (a grant, a revocation, a void of either): sent only to that consent's recipient."""

KINDS: dict[str, str] = {
    "ClientRegistered": "demographics",
    "ReferralReceived": "episodes",
    "EnrolledInAlumni": "episodes",
    "AlumniActivityAttended": "episodes",
    "AssessmentCompleted": "assessments",
    "WithdrawalManagementStarted": "stays",
    "DetoxCompleted": "stays",
    "AdmittedToLevel": "stays",
    "SteppedUp": "stays",
    "SteppedDown": "stays",
    "TrackChanged": "stays",
    "TreatmentPlanRecorded": "plans",
    "SessionAttended": "sessions",
    "SessionMissed": "sessions",
    "DrugTestCollected": "drug_tests",
    "DrugTestResulted": "drug_tests",
    "MedicationChanged": "medication",
    "Discharged": "discharges",
}
"""The record kind (domain/consent.py RECORD_KINDS) of each event type; EntryCorrected and EntryVoided take the kind
of the entry they amend; ConsentGranted and ConsentRevoked are `CONSENT`."""

DDL = (
    "CREATE TABLE IF NOT EXISTS feed_consents (topic TEXT NOT NULL, journey_id TEXT NOT NULL, state TEXT NOT NULL,"
    " PRIMARY KEY (topic, journey_id))"
)
UPSERT = (
    "INSERT INTO feed_consents (topic, journey_id, state) VALUES (?, ?, ?)"
    " ON CONFLICT (topic, journey_id) DO UPDATE SET state = excluded.state"
)


def feed_topic(journey_topic: str, recipient: str) -> str:
    """`<journey topic>.to.<slug>`; ConfigurationError for a recipient that cannot name a topic."""
    try:
        topic = f"{journey_topic}{INFIX}{feed_slug(recipient)}"
    except ValueError as error:
        raise ConfigurationError(f"no feed for {error}") from None
    if len(topic) > MAX_TOPIC:
        msg = f"recipient {recipient!r} makes a topic of {len(topic)} characters; Kafka allows {MAX_TOPIC}: name it shorter"
        raise ConfigurationError(msg)
    return topic


def kind_of(event: Any) -> str:  # noqa: ANN401 - an event of the catalogue
    name = event_name(event)
    if name == "EntryCorrected":
        name = event.corrects_type
    elif name == "EntryVoided":
        name = event.voided_type
    return KINDS.get(name, CONSENT)


# -- the decision: pure -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """A consent to the feed's recipient as the feed knows it: `announced` once its grant was sent."""

    version: int
    consent: Consent
    announced: bool = False
    revoked_by: int | None = None

    def in_force(self, at: datetime) -> bool:
        """In force for an event recorded at `at` after the grant (a grant dated up to two minutes ahead counts
        from its recording)."""
        return self.consent.in_force(max(at, self.consent.granted_at))

    def covering(self, recipient: str, at: datetime, kind: str) -> bool:
        return self.consent.covers(recipient, max(at, self.consent.granted_at), (kind,))


@dataclass(frozen=True)
class Out:
    """An event to send under `consent`; `history` when sent on a grant, after its time."""

    event: Any
    consent: Consent
    history: bool = False


Earlier = Callable[[], tuple[Sequence[Any], set[int]]]
"""The journey's events before the one decided, and the versions of them the recipient already has."""


@dataclass
class JourneyConsents:
    """One journey's consents to one recipient, and what of the journey that recipient receives (no I/O)."""

    recipient: str
    client_ref: str
    grants: dict[int, Grant] = field(default_factory=dict)

    def decide(self, event: Any, earlier: Earlier) -> list[Out]:  # noqa: ANN401 - an event of the catalogue
        """What to send for `event` (and, on a grant, of the journey before it), updating the consents first."""
        name, at = event_name(event), event.timestamp
        if name == "ConsentGranted":
            return self._granted(event, earlier)
        if name == "ConsentRevoked":
            grant = self.grants.get(event.granted_version)
            if grant is None:
                return []
            revoked = dataclasses.replace(grant.consent, revoked_at=min(event.occurred_at, at))
            self.grants[grant.version] = dataclasses.replace(grant, consent=revoked, revoked_by=event.originator_version)
            return [Out(event, grant.consent)] if grant.announced else []
        if name == "EntryVoided" and event.voided_type in ("ConsentGranted", "ConsentRevoked"):
            return self._voided(event, earlier)
        kind = kind_of(event)
        if kind == CONSENT:
            return []
        consent = self._covering(at, kind)
        return [Out(event, consent)] if consent is not None else []

    def _granted(self, event: Any, earlier: Earlier) -> list[Out]:  # noqa: ANN401
        if event.recipient != self.recipient:
            return []
        consent = Consent(
            event.consent_id, event.recipient, ConsentPurpose(event.purpose), event.purpose_text, tuple(event.scope),
            event.occurred_at, event.expires_on,
        )
        return self._put_in_force(Grant(event.originator_version, consent), event, earlier)

    def _voided(self, event: Any, earlier: Earlier) -> list[Out]:  # noqa: ANN401
        if event.voided_type == "ConsentGranted":
            grant = self.grants.get(event.voided_version)
            if grant is None:
                return []
            self.grants[grant.version] = dataclasses.replace(grant, consent=dataclasses.replace(grant.consent, voided=True))
            return [Out(event, grant.consent)] if grant.announced else []
        grant = next((g for g in self.grants.values() if g.revoked_by == event.voided_version), None)
        if grant is None:
            return []
        restored = dataclasses.replace(grant, consent=dataclasses.replace(grant.consent, revoked_at=None), revoked_by=None)
        return self._put_in_force(restored, event, earlier)

    def _put_in_force(self, grant: Grant, event: Any, earlier: Earlier) -> list[Out]:  # noqa: ANN401
        """A consent granted or back in force: the history R lacks within what it now covers, then `event`."""
        announced = grant.announced
        self.grants[grant.version] = grant
        if not grant.in_force(event.timestamp):
            return [Out(event, grant.consent)] if announced else []
        self.grants[grant.version] = dataclasses.replace(grant, announced=True)
        prior, sent = earlier()
        history = []
        for before in prior:
            kind = kind_of(before)
            consent = None if before.originator_version in sent or kind == CONSENT else self._covering(event.timestamp, kind)
            if consent is not None:
                history.append(Out(before, consent, history=True))
        return [*history, Out(event, grant.consent)]

    def _covering(self, at: datetime, kind: str) -> Consent | None:
        return next((g.consent for g in self.grants.values() if g.covering(self.recipient, at, kind)), None)

    def to_json(self) -> str:
        return json.dumps({"client_ref": self.client_ref, "grants": [_grant_json(g) for g in self.grants.values()]})

    @classmethod
    def from_json(cls, recipient: str, text: str) -> JourneyConsents:
        data = json.loads(text)
        grants = [_grant_of(recipient, g) for g in data["grants"]]
        return cls(recipient, data["client_ref"], {g.version: g for g in grants})


def follow(recipient: str, client_ref: str, events: Sequence[Any]) -> tuple[JourneyConsents, list[Out]]:
    """A journey's events in order through a fresh feed: its consents after them and everything sent. The live feed
    decides event by event with the consents it saved; this gives the same (and tells a grant what R already has)."""
    state = JourneyConsents(recipient, client_ref)
    sent: list[Out] = []
    versions: set[int] = set()
    for number, event in enumerate(events):
        out = state.decide(event, lambda number=number: (events[:number], set(versions)))  # type: ignore[misc]
        sent.extend(out)
        versions.update(o.event.originator_version for o in out)
    return state, sent


def _grant_json(grant: Grant) -> dict[str, Any]:
    consent = grant.consent
    return {
        "version": grant.version, "announced": grant.announced, "revoked_by": grant.revoked_by,
        "consent_id": consent.consent_id, "purpose": consent.purpose.value, "purpose_text": consent.purpose_text,
        "scope": list(consent.scope), "granted_at": consent.granted_at.isoformat(),
        "expires_on": consent.expires_on.isoformat() if consent.expires_on else None,
        "revoked_at": consent.revoked_at.isoformat() if consent.revoked_at else None, "voided": consent.voided,
    }


def _grant_of(recipient: str, data: dict[str, Any]) -> Grant:
    consent = Consent(
        data["consent_id"], recipient, ConsentPurpose(data["purpose"]), data["purpose_text"], tuple(data["scope"]),
        datetime.fromisoformat(data["granted_at"]),
        date.fromisoformat(data["expires_on"]) if data["expires_on"] else None,
        datetime.fromisoformat(data["revoked_at"]) if data["revoked_at"] else None, data["voided"],
    )
    return Grant(data["version"], consent, data["announced"], data["revoked_by"])


# -- the feed: the relay's batching, acknowledgements and position, deciding per recipient -------------


@dataclass(frozen=True)
class Disclosed:
    """What one batch disclosed of one client under one consent: an entry of the accounting of disclosures."""

    client_ref: str
    consent: Consent
    what: str


Account = Callable[[str, Sequence[Disclosed]], None]
"""Enters a batch's disclosures to a recipient in the accounting of disclosures (before the batch is sent)."""


class Feed(Relay):
    """Publishes to `<journey topic>.to.<slug>` only what `recipient`'s consents allow (see the module's doc)."""

    def __init__(
        self, app: Application[Any], views: ViewStore, settings: KafkaSettings, recipient: str, *, notice: str,
        account: Account, batch_size: int = 1000, retry_max: float = 10.0,
        connect: Callable[[], KafkaProducer] | None = None, pseudonym_key: bytes | None = None,
    ) -> None:
        """`settings` are the journey topic's; raises ConfigurationError for a recipient that names no topic, or
        without a pseudonym key."""
        topic = feed_topic(settings.topic, recipient)
        own = dataclasses.replace(settings, topic=topic, dead_letter_topic=f"{topic}.DLT")
        super().__init__(app, views, own, batch_size=batch_size, retry_max=retry_max, connect=connect,
                         pseudonym_key=pseudonym_key)
        self.recipient = recipient
        self.journey_topic = settings.topic
        self.sent = 0  # messages sent by this object (a batch sent again counts again)
        self._notice = notice.encode()
        self._account = account
        self._states: dict[UUID, JourneyConsents] = {}
        self._pending: list[tuple[int, dict[UUID, str]]] = []  # per batch in flight: its last id, the states it changed
        self._ready = False

    def publish_pending(self, stop: Event | None = None, limit: int | None = None) -> int:
        self._load()  # the consents as of the recorded position: after a failure, the batches not acknowledged again
        return super().publish_pending(stop, limit)

    def consents(self) -> dict[UUID, JourneyConsents]:
        """The consents the feed has saved, by journey (as a restarted feed starts from)."""
        self._load()
        return dict(self._states)

    def _load(self) -> None:
        if not self._ready:
            self.positions.setup()
            with self.views.transaction() as cursor:
                cursor.execute(DDL)
            self._ready = True
        with self.views.transaction() as cursor:
            cursor.execute("SELECT journey_id, state FROM feed_consents WHERE topic = ?", (self.topic,))
            rows = cursor.fetchall()
        self._states = {UUID(str(journey)): JourneyConsents.from_json(self.recipient, str(text)) for journey, text in rows}
        self._pending = []

    def _encode(self, notifications: Sequence[Notification]) -> list[Wire]:
        outs: list[tuple[Out, int]] = []
        changed: dict[UUID, str] = {}
        for notification in notifications:
            journey = cast("UUID", notification.originator_id)  # the store's ids are UUIDs
            state = self._states.get(journey)
            if state is None and not notification.topic.endswith(".ConsentGranted"):
                continue  # no consent to this recipient: not even decoded
            event: Any = self.app.mapper.to_domain_event(notification)
            if state is None:
                if event.recipient != self.recipient:
                    continue
                state = self._states[journey] = JourneyConsents(self.recipient, self._client_ref(journey))
            grants = dict(state.grants)
            decided = state.decide(event, lambda event=event: self._earlier(event))  # type: ignore[misc]
            if state.grants != grants:
                changed[journey] = state.to_json()
            outs.extend((out, notification.id) for out in decided)
        self._pending.append((notifications[-1].id, changed))
        resolved = self._resolved(outs, notifications[0].id, notifications[-1].id)
        self._account(self.recipient, self._disclosed(resolved))  # entered before anything is sent
        return [self._message(out, position, head) for out, position, head in resolved]

    def _send(self, messages: list[Wire]) -> list[Any]:
        futures = super()._send(messages)
        self.sent += len(messages)
        return futures

    def _acknowledged(self, last: int) -> None:
        """The consents the acknowledged batches changed, saved with the position in one transaction."""
        rows: dict[UUID, str] = {}
        while self._pending and self._pending[0][0] <= last:
            rows.update(self._pending.pop(0)[1])
        with self.views.transaction() as cursor:
            if rows:
                cursor.executemany(UPSERT, [(self.topic, str(journey), text) for journey, text in rows.items()])
            self.positions.advance_in(cursor, self.topic, last)

    def _client_ref(self, journey: UUID) -> str:
        first: Any = next(iter(self.app.events.get(journey, lte=1)))
        return str(first.client_ref)

    def _earlier(self, event: Any) -> tuple[Sequence[Any], set[int]]:  # noqa: ANN401
        """The journey's events before `event` and the versions this recipient already has (the journey followed
        from its start: what the feed sent, since it decides from the log alone)."""
        prior = list(self.app.events.get(event.originator_id, lte=event.originator_version - 1))
        _, sent = follow(self.recipient, "", prior)
        return prior, {out.event.originator_version for out in sent}

    def _resolved(self, outs: list[tuple[Out, int]], first: int, last: int) -> list[tuple[Out, int, str | None]]:
        """Each event to send with its position in the log and its global chain link (earlier events' looked up)."""
        if not outs:
            return []
        heads = self._chain_heads(first, last)
        links: dict[tuple[UUID, int], tuple[int, str]] = {}
        history = {out.event.originator_id for out, _ in outs if out.history}
        if history:
            with self.views.transaction() as cursor:
                for journey in history:
                    links |= {(journey, row.version): (row.position, row.global_link)
                              for row in journey_links(cursor, journey).values()}
        resolved: list[tuple[Out, int, str | None]] = []
        for out, position in outs:
            if out.history:
                resolved.append((out, *links[out.event.originator_id, out.event.originator_version]))
            else:
                resolved.append((out, position, heads.get(position)))
        return resolved

    def _message(self, out: Out, position: int, head: str | None) -> Wire:
        """The journey topic's message for the event, with the §2.32 notice (and the history mark) in its headers."""
        message = encode(out.event, position, head, self.pseudonyms)
        headers = {**message.headers, NOTICE_HEADER: self._notice}
        if out.history:
            headers[HISTORY_HEADER] = b"true"
        return cast("bytes", message.key), message.value, list(headers.items())

    def _disclosed(self, resolved: list[tuple[Out, int, str | None]]) -> list[Disclosed]:
        """One entry per client and consent: how many events, of which kinds, at which positions."""
        groups: dict[tuple[str, str], list[tuple[Out, int]]] = {}
        for out, position, _ in resolved:
            key = (self._states[out.event.originator_id].client_ref, out.consent.consent_id)
            groups.setdefault(key, []).append((out, position))
        entries = []
        for (client_ref, _), sent in groups.items():
            kinds = ", ".join(dict.fromkeys(kind_of(out.event) for out, _ in sent))
            positions = [position for _, position in sent]
            history = sum(out.history for out, _ in sent)
            also = f"; {history} of them earlier events, sent with the grant" if history else ""
            events = f"{len(sent)} event{'s' if len(sent) > 1 else ''}"
            what = f"Kafka feed {self.topic}: {events} ({kinds}) at positions {min(positions)}..{max(positions)}{also}"
            entries.append(Disclosed(client_ref, sent[0][0].consent, what))
        return entries
