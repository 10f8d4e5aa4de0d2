"""Recipient feeds against a real broker, on SQLite and PostgreSQL: who appears on which recipient's topic, what a
revocation, an expiry and a scope do, a restart, the accounting of disclosures and the §2.32 notice."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from domain.consent import ConsentPurpose
from infra.config import Settings
from infra.kafka.envelope import decode
from infra.kafka.feeds import HISTORY_HEADER, NOTICE_HEADER, feed_topic
from services.bootstrap import bootstrap
from services.cli import app
from services.disclosures import NOTICE, Disclosures
from tests.integration.kafka_support import PSEUDONYM_KEY, PSEUDONYM_KEY_TEXT, PSEUDONYMS, header, read_topic
from tests.support.clock import fixed_clock
from tests.support.feeds import HIE, PROBATION, admitted, grant, journey_id, line, recorded, run, session

__all__ = ["recorded"]  # the fixture

pytestmark = pytest.mark.kafka


def history_before(service):
    """A-1 all to the HIE, A-2 no consent, A-3 drug tests to probation, A-4 sessions to the HIE until 2026-11-30."""
    run(
        service,
        *admitted("A-1"), session("A-1", "10-02", 1), grant("A-1", "10-03", "CF-1", HIE, ["all"]), session("A-1", "10-04", 2),
        *admitted("A-2"), session("A-2", "10-02", 1),
        *admitted("A-3"), grant("A-3", "10-03", "CF-3", PROBATION, ["drug_tests"]), session("A-3", "10-04", 1),
        line("A-3", "collect_drug_test", "10-05", specimen_id="A-3-U1"),
        *admitted("A-4"), grant("A-4", "10-03", "CF-4", HIE, ["sessions"], expires_on="2026-11-30"), session("A-4", "10-04", 1),
    )


def subjects(records):
    """The messages of a topic by journey pseudonym: (event type, ce_sequence, sent as history) in offset order."""
    found = defaultdict(list)
    for record in records:
        kind = header(record, "ce_type").split(".")[-2]
        found[record.key.decode()].append((kind, int(header(record, "ce_sequence")), header(record, HISTORY_HEADER) == "true"))
    return dict(found)


def of(client):
    return str(PSEUDONYMS.journey(journey_id(client)))


def test_each_recipient_receives_only_its_consented_clients_from_grant_to_revocation_and_expiry(database_url, kafka, recorded):
    wired = bootstrap(Settings(database_url=database_url), clock=fixed_clock)
    try:
        history_before(wired.journeys)
        feeds = [wired.feed(HIE, kafka, pseudonym_key=PSEUDONYM_KEY), wired.feed(PROBATION, kafka, pseudonym_key=PSEUDONYM_KEY)]
        for feed in feeds:
            feed.publish_pending()
        recorded.at = datetime(2026, 11, 25, 9, tzinfo=UTC)
        run(wired.journeys, line("A-1", "revoke_consent", "11-20", consent_id="CF-1"), session("A-1", "11-20", 3),
            session("A-4", "11-20", 2))
        recorded.at = datetime(2026, 12, 1, 9, tzinfo=UTC)  # A-4's consent expired with 2026-11-30
        run(wired.journeys, session("A-4", "11-21", 3), line("A-3", "collect_drug_test", "11-21", specimen_id="A-3-U2"))
        for feed in feeds:
            feed.publish_pending()
            feed.close()
        statuses = [feed.status() for feed in feeds]
        hie = read_topic(kafka, feed_topic(kafka.topic, HIE))
        probation = read_topic(kafka, feed_topic(kafka.topic, PROBATION))
        accounted = Disclosures(wired.views).query(client_ref="A-1")
        head = wired.app.recorder.max_notification_id()
    finally:
        wired.close()

    assert all(status.position == head and status.lag == 0 for status in statuses)
    assert subjects(hie) == {
        of("A-1"): [("ClientRegistered", 1, True), ("AdmittedToLevel", 2, True), ("SessionAttended", 3, True),
                    ("ConsentGranted", 4, False), ("SessionAttended", 5, False), ("ConsentRevoked", 6, False)],
        of("A-4"): [("ConsentGranted", 3, False), ("SessionAttended", 4, False), ("SessionAttended", 5, False)],
    }
    assert subjects(probation) == {
        of("A-3"): [("ConsentGranted", 3, False), ("DrugTestCollected", 5, False), ("DrugTestCollected", 6, False)],
    }
    for record in [*hie, *probation]:
        assert header(record, NOTICE_HEADER) == NOTICE
        envelope, event = decode(record.headers, record.key, record.value)  # the journey topic's contract
        assert str(envelope.journey_id) == record.key.decode() == str(event.originator_id)
    [first, second] = accounted
    assert (first.recipient, second.recipient) == (HIE, HIE)
    assert first.consent_id == second.consent_id == "CF-1"
    assert first.purpose == ConsentPurpose.TREATMENT.value
    assert first.what.startswith(f"Kafka feed {feed_topic(kafka.topic, HIE)}: 5 events (demographics, stays, sessions, consent)")
    assert "3 of them earlier events, sent with the grant" in first.what
    assert second.what.startswith(f"Kafka feed {feed_topic(kafka.topic, HIE)}: 1 event (consent)")


def test_a_restarted_feed_continues_exactly_where_a_continuous_one_would(database_url, kafka, recorded):
    """One feed object throughout against a new feed object for every few events over the same store: the same
    messages, in the same order per journey, none twice."""
    wired = bootstrap(Settings(database_url=database_url), clock=fixed_clock)
    continuous_settings = dataclasses.replace(kafka, topic=f"{kafka.topic}-continuous")
    try:
        continuous = wired.feed(HIE, continuous_settings, pseudonym_key=PSEUDONYM_KEY)
        continuous.batch_size = 4

        def restarted(limit):
            feed = wired.feed(HIE, kafka, pseudonym_key=PSEUDONYM_KEY)
            feed.batch_size = 3
            count = feed.publish_pending(limit=limit)
            feed.close()
            return count

        history_before(wired.journeys)
        continuous.publish_pending()
        while restarted(limit=5):
            pass
        recorded.at = datetime(2026, 11, 25, 9, tzinfo=UTC)
        run(wired.journeys, line("A-1", "revoke_consent", "11-20", consent_id="CF-1"), session("A-1", "11-20", 3),
            grant("A-2", "11-20", "CF-2", HIE, ["sessions", "stays"]), session("A-2", "11-20", 2),
            line("A-1", "void", "11-20", versions=[6], reason="the revocation was another client's"), session("A-1", "11-20", 4))
        continuous.publish_pending()
        continuous.close()
        while restarted(limit=2):
            pass
    finally:
        wired.close()

    continuous_records = read_topic(continuous_settings, feed_topic(continuous_settings.topic, HIE))
    restarted_records = read_topic(kafka, feed_topic(kafka.topic, HIE))
    ids = [header(record, "ce_id") for record in restarted_records]
    assert len(ids) == len(set(ids))
    assert subjects(restarted_records) == subjects(continuous_records)
    assert subjects(restarted_records)[of("A-1")] == [
        ("ClientRegistered", 1, True), ("AdmittedToLevel", 2, True), ("SessionAttended", 3, True), ("ConsentGranted", 4, False),
        ("SessionAttended", 5, False), ("ConsentRevoked", 6, False), ("SessionAttended", 7, True), ("EntryVoided", 8, False),
        ("SessionAttended", 9, False),
    ]
    assert subjects(restarted_records)[of("A-2")] == [
        ("AdmittedToLevel", 2, True), ("SessionAttended", 3, True), ("ConsentGranted", 4, False), ("SessionAttended", 5, False),
    ]


def test_relay_command_runs_the_configured_feeds_and_disclosures_lists_them(kafka, tmp_path, recorded):
    url = f"sqlite:///{tmp_path}/store.db"
    wired = bootstrap(Settings(database_url=url), clock=fixed_clock)
    try:
        history_before(wired.journeys)
        head = wired.app.recorder.max_notification_id()
    finally:
        wired.close()
    runner = CliRunner(env={"CONTINUUM_PSEUDONYM_KEY": PSEUDONYM_KEY_TEXT, "CONTINUUM_FEED_RECIPIENTS": f"{HIE}, {PROBATION}"})
    options = ["--database-url", url, "--bootstrap-servers", kafka.bootstrap_servers, "--topic", kafka.topic]

    published = runner.invoke(app, ["relay", *options])
    one = runner.invoke(app, ["relay", *options, "--recipient", "Nobody Yet"])
    refused = runner.invoke(app, ["relay", *options, "--recipient", "§§"])
    listed = runner.invoke(app, ["disclosures", "--client", "A-3", "--json", "--database-url", url])
    status = runner.invoke(app, ["status", "--json", "--database-url", url], env={"CONTINUUM_KAFKA_TOPIC": kafka.topic})

    assert published.exit_code == 0, published.output
    assert f"published {head} events to {kafka.topic}" in published.output
    assert f"feed to {HIE}: {feed_topic(kafka.topic, HIE)}: 7 messages" in published.output
    assert f"feed to {PROBATION}: {feed_topic(kafka.topic, PROBATION)}: 2 messages" in published.output
    assert f"feed {feed_topic(kafka.topic, PROBATION)} position {head}, head {head}, lag 0" in published.output
    assert one.exit_code == 0, one.output
    assert f"feed to Nobody Yet: {feed_topic(kafka.topic, 'Nobody Yet')}: 0 messages" in one.output
    assert HIE not in one.output
    assert refused.exit_code == 2
    assert "no letter or digit" in refused.output
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)["disclosures"]
    assert row["recipient"] == PROBATION
    assert row["what"].startswith(f"Kafka feed {feed_topic(kafka.topic, PROBATION)}: 2 events (consent, drug_tests)")
    journey_topic = {header(record, "ce_id"): record for record in read_topic(kafka)}
    fed = read_topic(kafka, feed_topic(kafka.topic, HIE))
    assert len(fed) == 7
    for record in fed:  # the journey topic's message, byte for byte, and the notice (and the history mark)
        same = journey_topic[header(record, "ce_id")]
        assert (record.key, record.value) == (same.key, same.value)
        assert [h for h in record.headers if h[0] not in (NOTICE_HEADER, HISTORY_HEADER)] == same.headers
    assert json.loads(status.stdout)["feeds"] == [
        {"topic": feed_topic(kafka.topic, name), "position": head, "head": head, "lag": 0} for name in (PROBATION, "Nobody Yet", HIE)
    ]
