"""From a database URL to the eventsourcing library's environment for the event store."""

from __future__ import annotations

import base64
import binascii

from infra.config import ConfigurationError, Database
from infra.recorders import recorder_topic

AES_KEY_SIZES = (16, 24, 32)


def store_environment(database: Database, *, cipher_key: str | None, connect_timeout: int, cache_size: int = 10_000) -> dict[str, str]:
    env = {
        "AGGREGATE_CACHE_MAXSIZE": str(cache_size),
        "AGGREGATE_CACHE_FASTFORWARD": "y",  # a cached journey reads what other writers added before use
        "CREATE_TABLE": "y",
        "APPLICATION_RECORDER_TOPIC": recorder_topic(database.kind),  # hash-chains rows as they are stored
    }
    if database.kind == "sqlite":
        env |= {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": database.path, "SQLITE_LOCK_TIMEOUT": "30"}
    else:
        env |= {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": database.name,
            "POSTGRES_HOST": database.host,
            "POSTGRES_PORT": str(database.port),
            "POSTGRES_USER": database.user,
            "POSTGRES_PASSWORD": database.password,
            "POSTGRES_SCHEMA": database.schema,
            "POSTGRES_CONNECT_TIMEOUT": str(connect_timeout),
            "POSTGRES_LOCK_TIMEOUT": "10",
            "POSTGRES_POOL_SIZE": "4",
            "POSTGRES_MAX_OVERFLOW": "8",
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",  # the insert must run in Python to chain the rows it stores
        }
    if cipher_key:
        check_cipher_key(cipher_key)
        env |= {"CIPHER_TOPIC": "eventsourcing.cipher:AESCipher", "CIPHER_KEY": cipher_key}
    return env


def check_cipher_key(key: str) -> None:
    try:
        size = len(base64.b64decode(key, validate=True))
    except (binascii.Error, ValueError):
        msg = "CONTINUUM_CIPHER_KEY is not base64: create one with `continuum keygen`"
        raise ConfigurationError(msg) from None
    if size not in AES_KEY_SIZES:
        msg = f"CONTINUUM_CIPHER_KEY decodes to {size} bytes; AES needs 16, 24 or 32"
        raise ConfigurationError(msg)
