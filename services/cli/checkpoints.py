"""Signed checkpoints: `checkpoint` signs the heads of the event chain and the access log and writes them
outside the store; `verify --checkpoints FILE` (in auditing.py) proves the store still holds each one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from services.cli.base import EXIT_REFUSED, DatabaseOption, UsageError, command, console, errors, open_store, settings_for, writable

if TYPE_CHECKING:
    from infra.config import Settings
    from services.checkpoints import Checkpoint

NO_SIGNING_KEY = (
    "continuum checkpoint needs CONTINUUM_CHECKPOINT_KEY (an Ed25519 private key, kept apart from the database):"
    " create a pair with `continuum checkpoint --keygen`"
)
NO_PUBLIC_KEY = (
    "verify --checkpoints needs CONTINUUM_CHECKPOINT_PUBLIC_KEY (or CONTINUUM_CHECKPOINT_KEY), the key pair's"
    " public half: `continuum checkpoint --keygen` printed both"
)


@command("checkpoint")
def checkpoint(
    out: Annotated[Path | None, typer.Option("--out", help="Append the signed checkpoint to this file (JSON lines); else print it")] = None,
    publish: Annotated[bool, typer.Option("--publish", help="Also send it to the Kafka topic <CONTINUUM_KAFKA_TOPIC>.checkpoints")] = False,
    keygen: Annotated[bool, typer.Option("--keygen", help="Print a new Ed25519 key pair (CONTINUUM_CHECKPOINT_KEY, _PUBLIC_KEY)")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Sign the heads of the event chain and of the access log, with their positions (CONTINUUM_CHECKPOINT_KEY),
    and write the checkpoint outside the store; `continuum verify --checkpoints FILE` checks the store still holds it."""
    from services import checkpoints

    if keygen:
        private, public = checkpoints.new_key_pair()
        print(f"CONTINUUM_CHECKPOINT_KEY={private}\nCONTINUUM_CHECKPOINT_PUBLIC_KEY={public}")  # noqa: T201
        return
    if out is not None:
        writable(out, "--out")  # before the store is read
    settings = settings_for(database_url)
    if settings.checkpoint_key is None:
        raise UsageError(NO_SIGNING_KEY)
    with open_store(settings) as wired:
        signed = checkpoints.take(wired, settings.checkpoint_key.get_secret_value())
    if out is None:
        print(signed.line())  # noqa: T201 - the record itself, for a pipe
    else:
        try:
            with out.open("a", encoding="utf-8") as appended:
                appended.write(signed.line() + "\n")
        except OSError as problem:
            msg = f"cannot write {out}: {problem.strerror or problem}"
            raise UsageError(msg) from None
        console.print(
            f"checkpoint: event #{signed.position} (chain head {signed.chain_head}), access record {signed.access_seq};"
            f" signed at {signed.at} with key {signed.key_id}; appended to {out}", highlight=False,
        )
    if publish:
        _publish(signed, settings)


def _publish(signed: Checkpoint, settings: Settings) -> None:
    from kafka.errors import KafkaError

    from infra.kafka.clients import kafka_settings
    from services.checkpoints import publish

    try:
        topic = publish(signed, kafka_settings(settings))
    except KafkaError as problem:
        errors.print(f"[red]not published:[/red] the checkpoint could not be sent to Kafka ({settings.kafka_bootstrap_servers}):"
                     f" {type(problem).__name__}: {problem}", highlight=False)
        raise typer.Exit(EXIT_REFUSED) from None
    errors.print(f"published to {topic}", highlight=False)


def load_checkpoints(path: Path, settings: Settings) -> tuple[list[tuple[int, Checkpoint]], str | None]:
    """The checkpoints of `path` and the first problem with the file or a signature (None: every one is signed
    with the public key of the settings). A file that is not there or a missing key is a UsageError."""
    from services import checkpoints

    public = settings.checkpoint_public_key
    if public is None and settings.checkpoint_key is not None:
        public = checkpoints.public_key_of(settings.checkpoint_key.get_secret_value())
    if public is None:
        raise UsageError(NO_PUBLIC_KEY)
    if not path.is_file():
        msg = f"--checkpoints {path}: no such file"
        raise UsageError(msg)
    try:
        found = checkpoints.read(path)
    except checkpoints.CheckpointError as problem:
        return [], str(problem)
    return found, checkpoints.check_signatures(found, public).problem
