"""Kafka commands: `relay` publishes the event log (and the recipients' consent-aware feeds), `consume` builds projections from the topic,
`schema events` writes the published contract."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path
from threading import Thread
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from services.cli.admin import schema_app
from services.cli.base import (
    EXIT_USAGE,
    DatabaseOption,
    UsageError,
    command,
    console,
    continuum,
    errors,
    following,
    print_json,
    settings_for,
    stop_on_signals,
)

if TYPE_CHECKING:  # the Kafka client loads when a Kafka command runs
    from threading import Event

    from kafka.errors import KafkaError

    from infra.kafka.relay import Relay

ServersOption = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers", envvar=["CONTINUUM_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"],
        help="host:port[,host:port] of the Kafka brokers",
    ),
]
TopicOption = Annotated[str | None, typer.Option("--topic", envvar="CONTINUUM_KAFKA_TOPIC", help="default care.journey.v2")]
VerboseOption = Annotated[bool, typer.Option("--verbose", help="Also show the Kafka client's own log")]


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.INFO if verbose else logging.CRITICAL)  # the relay says it in one line


def _broker_error(servers: str, error: KafkaError) -> typer.Exit:
    errors.print(f"[red]error:[/red] Kafka at {escape(servers)}: {escape(str(error))}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_USAGE)


RecipientOption = Annotated[list[str] | None, typer.Option(
    "--recipient", help="Feed this recipient (a name as its consents give it; repeat for more): instead of CONTINUUM_FEED_RECIPIENTS",
)]


@command("relay")
def relay(
    follow: Annotated[bool, typer.Option("--follow", help="Keep running: publish new events as they are recorded")] = False,
    recipients: RecipientOption = None,
    bootstrap_servers: ServersOption = None,
    topic: TopicOption = None,
    verbose: VerboseOption = False,
    database_url: DatabaseOption = None,
) -> None:
    """Publish every recorded event to Kafka, from where the relay stopped (and keep going with --follow); beside it,
    each recipient's consent-aware feed (<topic>.to.<recipient>)."""
    from kafka.errors import KafkaError

    from infra.config import check_recipients, recipient_names
    from infra.kafka.clients import kafka_settings
    from infra.kafka.envelope import ContractViolation

    _logging(verbose)
    with continuum(database_url, kafka_bootstrap_servers=bootstrap_servers, kafka_topic=topic) as wired:
        settings = kafka_settings(wired.settings)
        names = list(dict.fromkeys(name.strip() for name in recipients)) if recipients else recipient_names(
            wired.settings.feed_recipients)
        try:
            check_recipients(names)
        except ValueError as error:
            raise UsageError(str(error)) from None
        publisher = wired.relay()
        feeds = [wired.feed(name) for name in names]
        try:
            if follow:
                stop = stop_on_signals()
                errors.print(
                    f"relaying {wired.database.display} to {settings.topic}"
                    f"{''.join(f', {feed.topic}' for feed in feeds)} at {settings.bootstrap_servers}"
                    f" ({following(wired)}); Ctrl-C stops",
                )
                key = wired.settings.checkpoint_key
                if key is not None:  # signed heads on <topic>.checkpoints, outside the store, while the relay runs
                    from services.checkpoints import keep_publishing

                    keep_publishing(wired, key.get_secret_value(), settings, wired.settings.checkpoint_interval, stop)
                threads = [_beside(feed, stop, wired.settings.poll_interval) for feed in feeds]
                publisher.run(stop, wired.wait_for_events, wired.settings.poll_interval)
                for thread in threads:
                    thread.join()
            else:
                count = publisher.publish_pending()
                publisher.close()
                console.print(f"published {count} events to {settings.topic}")
                for feed in feeds:
                    read = feed.publish_pending()
                    feed.close()
                    console.print(f"feed to {escape(feed.recipient)}: {feed.topic}: {feed.sent} messages ({read} events read)")
        except KafkaError as error:
            raise _broker_error(settings.bootstrap_servers, error) from None
        except ContractViolation as violation:
            errors.print(f"[red]error:[/red] {escape(str(violation))}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_USAGE) from None
        status = publisher.status()
        statuses = [feed.status() for feed in feeds]
    console.print(f"relay position {status.position}, head {status.head}, lag {status.lag}")
    for feed_status in statuses:
        console.print(f"feed {feed_status.topic} position {feed_status.position}, head {feed_status.head}, lag {feed_status.lag}")


def _beside(feed: Relay, stop: Event, poll: float) -> Thread:
    """A recipient's feed following the log in its own thread (polling: the relay holds the LISTEN connection)."""
    thread = Thread(target=feed.run, args=(stop, stop.wait, poll), name=f"feed {feed.topic}", daemon=True)
    thread.start()
    return thread


@command("consume")
def consume(
    projections: Annotated[list[str] | None, typer.Argument(help="Projections to build (default: all)")] = None,
    follow: Annotated[bool, typer.Option("--follow", help="Keep consuming; without it, stop once caught up")] = False,
    group: Annotated[str | None, typer.Option("--group", envvar="CONTINUUM_KAFKA_CONSUMER_GROUP", help="Consumer group")] = None,
    name: Annotated[str | None, typer.Option("--name", help="This worker's name (default host-pid)")] = None,
    rebuild: Annotated[bool, typer.Option(
        "--rebuild", help="Drop the projections' tables and the group's offsets first, and build them again from the beginning",
    )] = False,
    bootstrap_servers: ServersOption = None,
    topic: TopicOption = None,
    verbose: VerboseOption = False,
    database_url: DatabaseOption = None,
) -> None:
    """Build projection tables from the topic into --database-url (the read side), in a consumer group."""
    from kafka.errors import KafkaError

    from projections.catalogue import all_projections
    from services.bootstrap import read_side
    from services.projection_worker import OffsetsMisfit

    _logging(verbose)
    settings = settings_for(database_url, kafka_bootstrap_servers=bootstrap_servers, kafka_topic=topic, kafka_consumer_group=group)
    known = [projection.name for projection in all_projections()]
    unknown = [p for p in projections or [] if p not in known]
    if unknown:
        msg = f"no projection named {', '.join(unknown)} (known: {', '.join(known)})"
        raise UsageError(msg)
    side = read_side(settings)
    worker = side.worker(projections, name=name or f"{socket.gethostname()}-{os.getpid()}")
    stop = stop_on_signals()
    errors.print(f"consuming {settings.kafka_topic} at {settings.kafka_bootstrap_servers} as {worker.name} in group"
                 f" {worker.group} into {side.views.database.display}")
    try:
        if rebuild:
            worker.rebuild()
            errors.print(f"dropped the tables of {', '.join(p.name for p in worker.projections)} and group {worker.group}'s"
                         f" offsets; building them from the beginning of {settings.kafka_topic}")
        counts = worker.run(stop, until_caught_up=not follow)
    except KafkaError as error:
        raise _broker_error(settings.kafka_bootstrap_servers, error) from None
    except OffsetsMisfit as misfit:
        raise UsageError(str(misfit)) from None
    finally:
        side.close()
    console.print(counts.summary())


@schema_app.command("events")
def schema_events(
    out: Annotated[Path | None, typer.Option("--out", help="Write events/<Event>.v2.json and asyncapi.json here")] = None,
) -> None:
    """The published Kafka contract: a JSON Schema per event type and the topic's AsyncAPI 3.0 document."""
    from infra.config import Settings
    from infra.kafka.schemas import asyncapi_document, write_schemas

    defaults = Settings.model_fields  # the documents describe the default topic, whatever this shell's environment says
    topic, partitions = str(defaults["kafka_topic"].default), int(defaults["kafka_partitions"].default)
    if out is None:
        print_json(asyncapi_document(topic, f"{topic}.DLT", partitions))
        return
    written = write_schemas(out, topic, f"{topic}.DLT", partitions)
    console.print(f"wrote {len(written)} files under {out}")
