"""All configuration in one pydantic-settings class, read from the environment (CONTINUUM_*)."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./continuum.db"
SQLITE_CACHE_MB = 64
SQLITE_CHECKPOINT_PAGES = 20_000  # 80 MB of 4 KB pages
SQLITE_PRAGMAS = (
    # SQLite's own page cache is 2 MB by default: once the log's (id, version) index outgrows it, each
    # insert and each lookup of a journey's last link reads its index page again. Each connection's cache
    # is filled only as pages are read, and is bounded by this. Connection settings only: no stored byte changes.
    f"PRAGMA cache_size = -{SQLITE_CACHE_MB * 1024}",
    # A commit checkpoints the WAL into the database file once it holds this many pages (1,000 by default).
    # Rows keyed by journey dirty pages all over a large file; checkpointing less often writes each such
    # page once for many commits, not once for a few.
    f"PRAGMA wal_autocheckpoint = {SQLITE_CHECKPOINT_PAGES}",
)


class ConfigurationError(Exception):
    """A setting that cannot be used; the message says which and why."""


LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _named(value: str) -> str:
    if not value.strip():
        msg = "must not be empty: it is recorded on every event and access record"
        raise ValueError(msg)
    return value


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        msg = "is not an IANA time zone (such as UTC, America/New_York or Europe/Berlin)"
        raise ValueError(msg) from None
    return value


def _log_level(value: str) -> str:
    if value.lower() not in LOG_LEVELS:
        msg = f"is not a log level (one of {', '.join(LOG_LEVELS)})"
        raise ValueError(msg)
    return value.lower()


def _cipher_key(value: SecretStr | None) -> SecretStr | None:
    """An AES key in base64, checked before any store is opened (infra/store.py checks it again)."""
    if value is None or not value.get_secret_value():
        return None
    try:
        size = len(base64.b64decode(value.get_secret_value(), validate=True))
    except (binascii.Error, ValueError):
        msg = "is not base64: create one with `continuum keygen`"
        raise ValueError(msg) from None
    if size not in (16, 24, 32):
        msg = f"decodes to {size} bytes; AES needs 16, 24 or 32"
        raise ValueError(msg)
    return value


def _base64_key(value: SecretStr | None, sizes: range, how: str) -> SecretStr | None:
    if value is None or not value.get_secret_value():
        return None
    try:
        size = len(base64.b64decode(value.get_secret_value(), validate=True))
    except (binascii.Error, ValueError):
        msg = f"is not base64: create one with `{how}`"
        raise ValueError(msg) from None
    if size not in sizes:
        wanted = f"{sizes.start} to {sizes.stop - 1}" if len(sizes) > 1 else str(sizes.start)
        msg = f"decodes to {size} bytes; it must be {wanted}: create one with `{how}`"
        raise ValueError(msg)
    return value


def _chain_key(value: SecretStr | None) -> SecretStr | None:
    """The HMAC key of the hash chain's global links (infra/chain.py), 32 to 64 bytes in base64."""
    return _base64_key(value, range(32, 65), "continuum keygen")


def _pseudonym_key(value: SecretStr | None) -> SecretStr | None:
    """The HMAC key of the topic's pseudonyms and site codes (infra/kafka/envelope.py), 32 to 64 bytes in base64."""
    return _base64_key(value, range(32, 65), "continuum keygen")


def _checkpoint_key(value: SecretStr | None) -> SecretStr | None:
    """An Ed25519 private key (its 32-byte seed) in base64: signs checkpoints (services/checkpoints.py)."""
    return _base64_key(value, range(32, 33), "continuum checkpoint --keygen")


def _checkpoint_public_key(value: str | None) -> str | None:
    """The Ed25519 public key (32 bytes) in base64 that checks checkpoints; not secret."""
    checked = _base64_key(SecretStr(value or ""), range(32, 33), "continuum checkpoint --keygen")
    return checked.get_secret_value() if checked else None


def feed_slug(recipient: str) -> str:
    """The part of a recipient's feed topic that names it (`<journey topic>.to.<slug>`): the name in lower case
    without accents, each run of anything but letters and digits one hyphen (`State HIE, North` -> `state-hie-north`)."""
    plain = unicodedata.normalize("NFKD", recipient).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", plain).strip("-")
    if not slug:
        msg = f"recipient {recipient!r} has no letter or digit (a-z, 0-9) to name its feed's topic with"
        raise ValueError(msg)
    return slug


def recipient_names(value: str) -> list[str]:
    """`CONTINUUM_FEED_RECIPIENTS`: recipient names separated by commas, each exactly as consents name it."""
    return list(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))


def check_recipients(names: list[str]) -> list[str]:
    """Every name makes a topic and no two make the same one; else a ValueError naming them."""
    seen: dict[str, str] = {}
    for name in names:
        slug = feed_slug(name)
        if slug in seen:
            msg = f"recipients {seen[slug]!r} and {name!r} would share the feed topic ...to.{slug}: name one differently"
            raise ValueError(msg)
        seen[slug] = name
    return names


def _recipients(value: str) -> str:
    check_recipients(recipient_names(value))
    return value


Name = Annotated[str, AfterValidator(_named)]
Positive = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    """Every value is checked when read: a setting that cannot work is refused, never used."""

    model_config = SettingsConfigDict(env_prefix="CONTINUUM_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    cipher_key: Annotated[SecretStr | None, AfterValidator(_cipher_key)] = None  # base64 AES key: events encrypted at rest
    chain_key: Annotated[SecretStr | None, AfterValidator(_chain_key)] = None  # base64 HMAC key of the chain's global links
    checkpoint_key: Annotated[SecretStr | None, AfterValidator(_checkpoint_key)] = None  # base64 Ed25519 seed: signs checkpoints
    checkpoint_public_key: Annotated[str | None, AfterValidator(_checkpoint_public_key)] = None  # checks them
    checkpoint_interval: Seconds = 300.0  # a following relay publishes a checkpoint this often (with the key set)
    actor: Name = "cli"
    role: Name = "system"
    timezone: Annotated[str, AfterValidator(_zone)] = "UTC"  # the zone of dates typed and times shown to people
    projection_batch_size: Positive = 1000
    command_batch_size: Positive = 2000  # commands per unit of work (one transaction)
    journey_cache_size: Positive = 10_000  # journeys kept between units of work, and between a projection's pages: the memory bound
    poll_interval: Seconds = 0.5  # seconds between polls when following on SQLite
    connect_timeout: Positive = 5
    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_topic: str = "care.journey.v2"
    kafka_dead_letter_topic: str = ""  # empty: the topic's name + ".DLT"
    kafka_partitions: Positive = 6  # when the relay or a worker creates the topics
    kafka_replication_factor: Positive = 1
    kafka_send_timeout: Seconds = 30.0  # seconds a batch may wait for the broker's acknowledgements
    kafka_relay_batch_size: Positive = 1000
    kafka_relay_encoder: Literal["process", "thread"] = "process"  # where the relay decodes and encodes batches
    kafka_consumer_group: str = "continuum-projections"
    pseudonym_key: Annotated[SecretStr | None, AfterValidator(_pseudonym_key)] = None  # base64 HMAC key of the topic's pseudonyms
    feed_recipients: Annotated[str, AfterValidator(_recipients)] = ""  # comma-separated: a consent-aware feed topic each
    # The HTTP API (`continuum serve`)
    api_host: str = "127.0.0.1"
    api_port: Annotated[int, Field(ge=1, le=65535)] = 8000
    api_follow: bool = True  # keep projections current in the serving process (else `continuum project --follow`)
    api_consistency_timeout: Seconds = 2.0  # seconds a query waits for `min_position` before 503
    api_retry_after: Annotated[int, Field(ge=0)] = 1  # seconds, in Retry-After of a 503
    api_ready_max_lag: Annotated[int, Field(ge=0)] = 1000  # events a projection may be behind the head while /readyz says ready
    api_stream_poll: Seconds = 0.25  # seconds between checks of the census for the live stream
    api_stream_max_seconds: Seconds = 300.0  # a live stream ends after this long; EventSource reconnects
    log_level: Annotated[str, AfterValidator(_log_level)] = "info"


SECRETS = ("cipher_key", "chain_key", "checkpoint_key", "pseudonym_key")  # never shown in a message
OPTIONS = {"database_url": "--database-url", "actor": "--actor", "role": "--role"}  # settings a CLI option also gives


def load_settings(**values: Any) -> Settings:  # noqa: ANN401 - the fields of Settings
    """Settings from the environment and `values`; a setting that cannot work is a ConfigurationError
    naming the variable (and option), the value and why: `CONTINUUM_PROJECTION_BATCH_SIZE=0: ...`."""
    try:
        return Settings(**values)
    except ValidationError as invalid:
        raise ConfigurationError(describe(invalid)) from None


def describe(invalid: ValidationError) -> str:
    """One line for the first invalid setting of a ValidationError raised by `Settings`."""
    error = invalid.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    variable = f"CONTINUUM_{field.upper()}"
    name = f"{OPTIONS[field]} / {variable}" if field in OPTIONS else variable
    shown = "" if field in SECRETS else f"={error.get('input')!r}"
    reason = str(error["msg"]).removeprefix("Value error, ")
    return f"invalid setting {name}{shown}: {reason}"


@dataclass(frozen=True)
class Database:
    """A parsed `CONTINUUM_DATABASE_URL`."""

    kind: str  # "sqlite" | "postgres"
    path: str = ""  # sqlite file
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    name: str = ""
    schema: str = "public"
    memory: bool = False  # sqlite:///:memory: - one private in-memory store for this process (tests, trials)

    @property
    def display(self) -> str:
        if self.memory:
            return "sqlite:///:memory:"
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.name} (schema {self.schema})"


def parse_database_url(url: str) -> Database:
    """`sqlite:///./continuum.db`, `sqlite:////abs/path.db` or `postgresql://user:pass@host:5432/db`."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parts.path.removeprefix("/"))
        if parts.netloc or not path:
            msg = f"malformed database URL {url!r}: expected sqlite:///relative/path.db or sqlite:////absolute/path.db"
            raise ConfigurationError(msg)
        if path == ":memory:":  # shared by the store's and the views' connections by its unique name
            return Database(kind="sqlite", path=f"file:continuum-{uuid.uuid4().hex}?mode=memory&cache=shared", memory=True)
        if not Path(path).parent.exists():
            msg = f"database URL {url!r}: folder {Path(path).parent} does not exist"
            raise ConfigurationError(msg)
        return Database(kind="sqlite", path=path)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        name = unquote(parts.path.lstrip("/"))
        try:
            port = parts.port or 5432
        except ValueError:
            msg = f"malformed database URL {url!r}: the port is not a number"
            raise ConfigurationError(msg) from None
        if not parts.hostname or not name:
            msg = f"malformed database URL {url!r}: expected postgresql://user:password@host:5432/database"
            raise ConfigurationError(msg)
        schema = parse_qs(parts.query).get("schema", ["public"])[0]
        if not schema.replace("_", "").isalnum():
            msg = f"database URL {url!r}: schema {schema!r} must be letters, digits and underscores"
            raise ConfigurationError(msg)
        return Database(
            kind="postgres", host=parts.hostname, port=port, user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""), name=name, schema=schema,
        )
    msg = f"unsupported database URL {url!r}: use sqlite:///FILE or postgresql://user:pass@host:port/db"
    raise ConfigurationError(msg)
