"""Which of a journey's events a recipient's consents let through (infra/kafka/feeds.py, no broker): the same events
recorded through the commands, followed by the pure decision."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from domain.consent import RECORD_KINDS
from domain.events import EVENT_TYPES
from infra.config import ConfigurationError, Settings, check_recipients, load_settings, recipient_names
from infra.kafka.feeds import CONSENT, KINDS, JourneyConsents, feed_topic, follow
from services.bootstrap import Continuum, bootstrap
from tests.support.clock import fixed_clock
from tests.support.feeds import HIE, PROBATION, admitted, grant, journey_id, line, recorded, run, session

__all__ = ["recorded"]  # the fixture


@pytest.fixture
def wired() -> Iterator[Continuum]:
    continuum = bootstrap(Settings(database_url="sqlite:///:memory:"), clock=fixed_clock)
    yield continuum
    continuum.close()


def sent(wired: Continuum, client: str, recipient: str = HIE) -> list[tuple[str, bool]]:
    """(event type, sent as history) of what `recipient` receives of the client's journey, in the order sent."""
    events = list(wired.app.events.get(journey_id(client)))
    _, out = follow(recipient, client, events)
    return [(type(o.event).__name__, o.history) for o in out]


def test_every_event_type_has_a_record_kind_or_is_a_consents_own():
    names = {t.__name__ for t in EVENT_TYPES} - {"EntryCorrected", "EntryVoided", "ConsentGranted", "ConsentRevoked"}
    assert set(KINDS) == names
    assert set(KINDS.values()) <= set(RECORD_KINDS)
    assert CONSENT not in RECORD_KINDS


def test_without_a_consent_nothing_is_sent(wired, recorded):
    run(wired.journeys, *admitted("A-1"), session("A-1", "10-02", 1), grant("A-1", "10-03", "CF-1", PROBATION, ["all"]))
    assert sent(wired, "A-1") == []


def test_a_grant_sends_the_history_in_its_scope_first_then_itself_and_what_follows(wired, recorded):
    run(wired.journeys, *admitted("A-1"), session("A-1", "10-02", 1), grant("A-1", "10-03", "CF-1", HIE, ["all"]),
        session("A-1", "10-04", 2))
    assert sent(wired, "A-1") == [
        ("ClientRegistered", True), ("AdmittedToLevel", True), ("SessionAttended", True), ("ConsentGranted", False),
        ("SessionAttended", False),
    ]


def test_the_scope_limits_the_kinds_sent(wired, recorded):
    run(wired.journeys, *admitted("A-1"), grant("A-1", "10-03", "CF-1", HIE, ["sessions"]), session("A-1", "10-04", 1),
        line("A-1", "collect_drug_test", "10-05", specimen_id="U1"))
    assert sent(wired, "A-1") == [("ConsentGranted", False), ("SessionAttended", False)]


def test_a_revocation_stops_what_follows_and_is_itself_sent(wired, recorded):
    run(wired.journeys, *admitted("A-1"), grant("A-1", "10-03", "CF-1", HIE, ["sessions"]), session("A-1", "10-04", 1),
        line("A-1", "revoke_consent", "10-05", consent_id="CF-1"), session("A-1", "10-06", 2))
    assert sent(wired, "A-1") == [("ConsentGranted", False), ("SessionAttended", False), ("ConsentRevoked", False)]


def test_a_revocation_stops_events_recorded_after_it_even_when_dated_before_it(wired, recorded):
    run(wired.journeys, *admitted("A-1"), grant("A-1", "10-03", "CF-1", HIE, ["sessions"]),
        line("A-1", "revoke_consent", "10-20", consent_id="CF-1"), session("A-1", "10-10", 1))
    assert sent(wired, "A-1") == [("ConsentGranted", False), ("ConsentRevoked", False)]


def test_an_expired_consent_stops_events_recorded_after_its_last_day(wired, recorded):
    run(wired.journeys, *admitted("A-1"), grant("A-1", "10-03", "CF-1", HIE, ["sessions"], expires_on="2026-11-30"),
        session("A-1", "10-04", 1))
    recorded.at = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    run(wired.journeys, session("A-1", "10-05", 2))
    recorded.at = datetime(2026, 12, 1, 0, 1, tzinfo=UTC)
    run(wired.journeys, session("A-1", "10-06", 3))
    assert sent(wired, "A-1") == [("ConsentGranted", False), ("SessionAttended", False), ("SessionAttended", False)]


def test_a_grant_recorded_after_it_expired_sends_nothing(wired, recorded):
    recorded.at = datetime(2026, 12, 2, tzinfo=UTC)
    run(wired.journeys, *admitted("A-1"), grant("A-1", "10-03", "CF-1", HIE, ["all"], expires_on="2026-11-01"),
        session("A-1", "10-04", 1))
    assert sent(wired, "A-1") == []


def test_a_voided_grant_stops_what_follows(wired, recorded):
    run(wired.journeys, *admitted("A-1"), grant("A-1", "10-03", "CF-1", HIE, ["sessions"]), session("A-1", "10-04", 1),
        line("A-1", "void", "10-05", versions=[3], reason="signed by another client"), session("A-1", "10-06", 2))
    assert sent(wired, "A-1") == [("ConsentGranted", False), ("SessionAttended", False), ("EntryVoided", False)]


def test_a_voided_revocation_puts_the_consent_back_with_what_was_missed(wired, recorded):
    run(wired.journeys, *admitted("A-1"), grant("A-1", "10-03", "CF-1", HIE, ["sessions"]), session("A-1", "10-04", 1),
        line("A-1", "revoke_consent", "10-05", consent_id="CF-1"), session("A-1", "10-06", 2),
        line("A-1", "void", "10-07", versions=[5], reason="the revocation was another client's"), session("A-1", "10-08", 3))
    assert sent(wired, "A-1") == [
        ("ConsentGranted", False), ("SessionAttended", False), ("ConsentRevoked", False),
        ("SessionAttended", True), ("EntryVoided", False), ("SessionAttended", False),
    ]


def test_a_second_grant_sends_only_what_the_recipient_does_not_have(wired, recorded):
    run(wired.journeys, *admitted("A-1"), grant("A-1", "10-03", "CF-1", HIE, ["sessions"]), session("A-1", "10-04", 1),
        grant("A-1", "10-05", "CF-2", HIE, ["sessions", "stays"]))
    assert sent(wired, "A-1") == [
        ("ConsentGranted", False), ("SessionAttended", False), ("AdmittedToLevel", True), ("ConsentGranted", False),
    ]


def test_another_recipients_consent_events_are_never_sent(wired, recorded):
    run(wired.journeys, *admitted("A-1"), grant("A-1", "10-03", "CF-1", HIE, ["all"]),
        grant("A-1", "10-04", "CF-2", PROBATION, ["drug_tests"]), line("A-1", "revoke_consent", "10-05", consent_id="CF-2"))
    assert [name for name, _ in sent(wired, "A-1")] == ["ClientRegistered", "AdmittedToLevel", "ConsentGranted"]
    assert [name for name, _ in sent(wired, "A-1", PROBATION)] == ["ConsentGranted", "ConsentRevoked"]


def test_the_saved_consents_decide_as_the_followed_ones(wired, recorded):
    run(wired.journeys, *admitted("A-1"), grant("A-1", "10-03", "CF-1", HIE, ["sessions"], expires_on="2027-01-31"),
        line("A-1", "revoke_consent", "10-05", consent_id="CF-1"), grant("A-1", "10-06", "CF-2", HIE, ["all"]))
    events = list(wired.app.events.get(journey_id("A-1")))
    state, _ = follow(HIE, "A-1", events)
    again = JourneyConsents.from_json(HIE, state.to_json())
    assert again == state
    assert again.to_json() == state.to_json()


def test_a_recipients_topic_is_named_from_the_journey_topic():
    assert feed_topic("care.journey.v2", "State HIE") == "care.journey.v2.to.state-hie"
    assert feed_topic("care.journey.v2", "  Clinique Évry / Nord ") == "care.journey.v2.to.clinique-evry-nord"
    with pytest.raises(ConfigurationError, match="no letter or digit"):
        feed_topic("care.journey.v2", "§§ —")
    with pytest.raises(ConfigurationError, match="Kafka allows 249"):
        feed_topic("care.journey.v2", "x" * 240)


def test_configured_recipients_are_checked_when_read():
    assert recipient_names(" State HIE, County Probation ,,State HIE") == ["State HIE", "County Probation"]
    with pytest.raises(ValueError, match="would share the feed topic"):
        check_recipients(["State HIE", "state-hie"])
    with pytest.raises(ConfigurationError, match=r"invalid setting CONTINUUM_FEED_RECIPIENTS='State HIE, \?\?\?': recipient"):
        load_settings(feed_recipients="State HIE, ???")
