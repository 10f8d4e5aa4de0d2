"""Signed checkpoints, as Certificate Transparency's signed tree heads: the heads of the event chain and
of the access log, with their positions, signed with an Ed25519 key kept apart from the database
(`CONTINUUM_CHECKPOINT_KEY`) and written outside the store. `continuum verify --checkpoints FILE`
proves the store still holds every checkpointed head as a prefix: later writes pass; a truncation, a
rewrite or a deletion before a checkpoint fails. Checking needs only the public key
(`CONTINUUM_CHECKPOINT_PUBLIC_KEY`).

A checkpoint file is JSON lines, one signed record per checkpoint (appended):

    {"format": "care-continuum checkpoint", "version": 1, "position": 10, "chain_head": "…", "access_seq": 3,
     "access_head": "…", "at": "2026-11-30T02:00:00+00:00", "key_id": "…", "signature": "…"}

`signature` is Ed25519 (RFC 8032), base64, over the other fields as JSON with sorted keys and no spaces;
`key_id` is the first 16 hex digits of SHA-256 of the raw public key, to tell keys apart.

`continuum checkpoint --publish` also sends the record to the Kafka topic `<CONTINUUM_KAFKA_TOPIC>.checkpoints`
(one partition, key `checkpoint`, the same JSON as the file's line): a copy that the store's own host cannot take back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from threading import Event, Thread
from typing import TYPE_CHECKING, Any

from infra.chain import GENESIS

log = logging.getLogger("continuum.checkpoints")

if TYPE_CHECKING:
    from pathlib import Path

    from infra.kafka.clients import KafkaSettings
    from services.bootstrap import Continuum
    from services.verification import StoreReport

FORMAT = "care-continuum checkpoint"
VERSION = 1
SIGNED = ("format", "version", "position", "chain_head", "access_seq", "access_head", "at", "key_id")


class CheckpointError(ValueError):
    """A checkpoint file or key that cannot be used; the message says which line or key and why."""


@dataclass(frozen=True)
class Checkpoint:
    position: int  # the last event's position in the log (0: no event yet)
    chain_head: str  # the global chain link after it
    access_seq: int  # the last access record's sequence number (0: none yet)
    access_head: str  # its hash
    at: str  # when it was signed, ISO 8601 UTC
    key_id: str
    signature: str = ""
    format: str = FORMAT
    version: int = VERSION

    def message(self) -> bytes:
        """What is signed: every field but the signature, as canonical JSON."""
        fields = {name: getattr(self, name) for name in SIGNED}
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (*SIGNED, "signature")}

    def line(self) -> str:
        return json.dumps(self.as_json(), separators=(",", ":"))


# -- keys ---------------------------------------------------------------------------------------------------


def new_key_pair() -> tuple[str, str]:
    """A new Ed25519 key: (private key for CONTINUUM_CHECKPOINT_KEY, public key for CONTINUUM_CHECKPOINT_PUBLIC_KEY)."""
    seed = base64.b64encode(os.urandom(32)).decode()
    return seed, public_key_of(seed)


def public_key_of(private_key: str) -> str:
    from Crypto.Signature import eddsa

    raw = eddsa.import_private_key(_decoded(private_key, "CONTINUUM_CHECKPOINT_KEY")).public_key().export_key(format="raw")
    return base64.b64encode(raw).decode()


def key_id(public_key: str) -> str:
    return hashlib.sha256(_decoded(public_key, "CONTINUUM_CHECKPOINT_PUBLIC_KEY")).hexdigest()[:16]


def _decoded(key: str, name: str) -> bytes:
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:  # noqa: PLR2004 - an Ed25519 seed or public key
        msg = f"{name} is not a base64 Ed25519 key of 32 bytes: create a pair with `continuum checkpoint --keygen`"
        raise CheckpointError(msg)
    return raw


# -- signing -----------------------------------------------------------------------------------------------


def sign(heads: tuple[int, str, int, str], private_key: str, at: datetime | None = None) -> Checkpoint:
    """A checkpoint of `heads` (position, chain head, access seq, access head), signed at `at` (now)."""
    from Crypto.Signature import eddsa

    position, chain_head, access_seq, access_head = heads
    moment = (at or datetime.now(tz=UTC)).astimezone(UTC).isoformat()
    unsigned = Checkpoint(position, chain_head, access_seq, access_head, moment, key_id(public_key_of(private_key)))
    signer = eddsa.new(eddsa.import_private_key(_decoded(private_key, "CONTINUUM_CHECKPOINT_KEY")), "rfc8032")
    return Checkpoint(**{**asdict(unsigned), "signature": base64.b64encode(signer.sign(unsigned.message())).decode()})


def take(wired: Continuum, private_key: str) -> Checkpoint:
    """Sign the store's heads as they are now (read in one transaction)."""
    return sign(wired.audit.heads(), private_key)


def checkpoint_topic(kafka: KafkaSettings) -> str:
    return f"{kafka.topic}.checkpoints"


def publish(checkpoint: Checkpoint, kafka: KafkaSettings) -> str:
    """Send the signed record to the checkpoints topic (created with one partition, so they stay in order); its name."""
    from dataclasses import replace

    from infra.kafka.clients import ensure_topics, producer

    topic = checkpoint_topic(kafka)
    ensure_topics(replace(kafka, partitions=1), topic)
    sender = producer(kafka, client_id="continuum-checkpoint")
    try:
        sender.send(topic, key=b"checkpoint", value=checkpoint.line().encode(),
                    headers=[("content-type", b"application/json")]).get(timeout=kafka.send_timeout)
    finally:
        sender.close(timeout=kafka.send_timeout)
    return topic


def keep_publishing(wired: Continuum, private_key: str, kafka: KafkaSettings, interval: float, stop: Event) -> Thread:
    """Beside a following relay: a signed checkpoint of the store's heads on the checkpoints topic at once
    and every `interval` seconds until `stop`. A broker that is away is logged; the next turn tries again."""
    from kafka.errors import KafkaError

    def run() -> None:
        while not stop.is_set():
            try:
                topic = publish(take(wired, private_key), kafka)
                log.info("checkpoint published to %s", topic)
            except KafkaError as error:
                log.warning("checkpoint not published (%s); trying again in %s s", error, interval)
            stop.wait(interval)

    thread = Thread(target=run, name="checkpoints", daemon=True)
    thread.start()
    return thread


def signature_problem(checkpoint: Checkpoint, public_key: str) -> str | None:
    from Crypto.Signature import eddsa

    expected = key_id(public_key)
    if checkpoint.key_id != expected:
        return f"signed with another key (key id {checkpoint.key_id}; the public key given is {expected})"
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        eddsa.new(eddsa.import_public_key(_decoded(public_key, "CONTINUUM_CHECKPOINT_PUBLIC_KEY")), "rfc8032").verify(
            checkpoint.message(), signature,
        )
    except (ValueError, binascii.Error):
        return "the signature does not verify: the checkpoint was altered or forged"
    return None


# -- reading a file ---------------------------------------------------------------------------------------------


def parse(text: str) -> list[tuple[int, Checkpoint]]:
    """(line number, checkpoint) for each non-empty line; CheckpointError naming the first line that is not one."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            msg = f"line {number} is not JSON ({error.msg}): not a checkpoint file"
            raise CheckpointError(msg) from None
        problem = _shape_problem(data)
        if problem:
            msg = f"line {number} is not a signed checkpoint: {problem}"
            raise CheckpointError(msg)
        found.append((number, Checkpoint(**{name: data[name] for name in (*SIGNED, "signature")})))
    if not found:
        msg = "the file holds no checkpoint"
        raise CheckpointError(msg)
    return found


def _shape_problem(data: Any) -> str | None:  # noqa: ANN401 - any JSON
    if not isinstance(data, dict):
        return "not a JSON object"
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        return f"format {data.get('format')!r} version {data.get('version')!r}"
    kinds = {"position": int, "access_seq": int, "chain_head": str, "access_head": str, "at": str, "key_id": str, "signature": str}
    wrong = [name for name, kind in kinds.items() if not isinstance(data.get(name), kind) or isinstance(data.get(name), bool)]
    return f"no valid {', '.join(wrong)}" if wrong else None


def read(path: Path) -> list[tuple[int, Checkpoint]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as unreadable:
        msg = f"cannot read checkpoint file {path}: {getattr(unreadable, 'strerror', None) or unreadable}"
        raise CheckpointError(msg) from None
    try:
        return parse(text)
    except CheckpointError as problem:
        msg = f"checkpoint file {path}: {problem}"
        raise CheckpointError(msg) from None


# -- checking a store against checkpoints -------------------------------------------------------------------------


@dataclass
class CheckpointReport:
    checked: int = 0
    latest: Checkpoint | None = None
    problem: str | None = None


def check_signatures(checkpoints: list[tuple[int, Checkpoint]], public_key: str) -> CheckpointReport:
    """Every checkpoint's signature, before the store is read."""
    for number, checkpoint in checkpoints:
        problem = signature_problem(checkpoint, public_key)
        if problem:
            return CheckpointReport(problem=f"checkpoint of {checkpoint.at} (line {number}): {problem}")
    return CheckpointReport()


def check_store(checkpoints: list[tuple[int, Checkpoint]], report: StoreReport) -> CheckpointReport:
    """Does the verified store still hold every checkpoint's heads? `report` must come from a verify that
    watched their positions and sequence numbers and found both chains intact (so each head it saw there
    is the end of a chain recomputed from the first event: the checkpointed prefix)."""
    result = CheckpointReport()
    for number, checkpoint in checkpoints:
        problem = _store_problem(checkpoint, report)
        if problem:
            result.problem = f"checkpoint of {checkpoint.at} (line {number}): {problem}"
            return result
        result.checked += 1
        if result.latest is None or checkpoint.position >= result.latest.position:
            result.latest = checkpoint
    return result


def _store_problem(checkpoint: Checkpoint, report: StoreReport) -> str | None:
    position, seq = checkpoint.position, checkpoint.access_seq
    held = report.events.links_at.get(position, GENESIS if position == 0 else None)
    if held is None:
        return (f"event #{position} is no longer in the store (its chain ends at #{report.events.last_position}):"
                " events up to the checkpoint were deleted")
    if held != checkpoint.chain_head:
        return (f"the chain at event #{position} is {held[:16]}…, not the signed {checkpoint.chain_head[:16]}…:"
                " history before the checkpoint was rewritten")
    access = report.access.hashes_at.get(seq, GENESIS if seq == 0 else None)
    if access is None:
        return (f"access record {seq} is no longer in the access log (which ends at record {report.access.checked}):"
                " the access log was cut or emptied")
    if access != checkpoint.access_head:
        return f"access record {seq} is not the signed one: the access log was rewritten"
    return None
