"""All configuration in one pydantic-settings class, read from the environment (CONTINUUM_*)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./continuum.db"


class ConfigurationError(Exception):
    """A setting that cannot be used; the message says which and why."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTINUUM_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    cipher_key: SecretStr | None = None  # base64 AES key (16, 24 or 32 bytes) to encrypt events at rest
    actor: str = "cli"
    role: str = "system"
    timezone: str = "UTC"  # the day boundary of `census --on DATE`
    projection_batch_size: int = 1000
    command_batch_size: int = 500
    journey_cache_size: int = 10_000  # journeys kept in memory between units of work: the bound on memory
    poll_interval: float = 0.5  # seconds between polls when following on SQLite
    connect_timeout: int = 5
    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_topic: str = "care.journey.v1"
    kafka_dead_letter_topic: str = ""  # empty: the topic's name + ".DLT"
    kafka_partitions: int = 6  # when the relay or a worker creates the topics
    kafka_replication_factor: int = 1
    kafka_send_timeout: float = 30.0  # seconds a batch may wait for the broker's acknowledgements
    kafka_relay_batch_size: int = 1000
    kafka_consumer_group: str = "continuum-projections"
    # The HTTP API (`continuum serve`)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_follow: bool = True  # keep projections current in the serving process (else `continuum project --follow`)
    api_consistency_timeout: float = 2.0  # seconds a query waits for `min_position` before 503
    api_retry_after: int = 1  # seconds, in Retry-After of a 503
    api_ready_max_lag: int = 1000  # events a projection may be behind the head while /readyz says ready
    api_stream_poll: float = 0.25  # seconds between checks of the census for the live stream
    api_stream_max_seconds: float = 300.0  # a live stream ends after this long; EventSource reconnects
    log_level: str = "info"


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

    @property
    def display(self) -> str:
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
        if path != ":memory:" and not Path(path).parent.exists():
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
