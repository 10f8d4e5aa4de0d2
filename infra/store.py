"""From a database URL to the eventsourcing library's environment for the event store.

The chain cannot be switched off: the library also reads its settings from the process environment
(`CARECONTINUUM_<NAME>` before `<NAME>`), so a variable there that would replace the chained recorder
is refused (`refuse_unchaining_variables`), and `chained` checks the recorder the library built.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import Any

from infra.chain import ChainScheme
from infra.config import ConfigurationError, Database
from infra.recorders import ChainedPostgresRecorder, ChainedSQLiteRecorder, recorder_topic

AES_KEY_SIZES = (16, 24, 32)
LIBRARY_PREFIX = "CARECONTINUUM_"  # the library's prefix for our application (its name, upper case)
# The library's settings that choose the recorder or how it inserts: set by us (or left unset, for the legacy
# names of the persistence module); from the environment, any other value would store events with no chain.
CHAIN_GUARDED = ("PERSISTENCE_MODULE", "INFRASTRUCTURE_FACTORY", "FACTORY_TOPIC", "APPLICATION_RECORDER_TOPIC",
                 "POSTGRES_ENABLE_DB_FUNCTIONS")
FLAGS = ("POSTGRES_ENABLE_DB_FUNCTIONS",)


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
    env |= cipher_environment(cipher_key)
    refuse_unchaining_variables(env, os.environ)
    return env


def cipher_environment(cipher_key: str | None) -> dict[str, str]:
    """The library's variables that encrypt events at rest with `cipher_key` (none without one)."""
    if not cipher_key:
        return {}
    check_cipher_key(cipher_key)
    return {"CIPHER_TOPIC": "eventsourcing.cipher:AESCipher", "CIPHER_KEY": cipher_key}


def refuse_unchaining_variables(env: Mapping[str, str], environ: Mapping[str, str]) -> None:
    """A variable of the library's in `environ` that asks for another recorder, persistence module or
    insert than `env`'s is refused in one line, naming it: events must never be stored unchained."""
    for name in CHAIN_GUARDED:
        ours = env.get(name, "")
        for variable in (LIBRARY_PREFIX + name, name):
            given = environ.get(variable)
            if given is None or _same(name, given, ours):
                continue
            msg = (f"{variable}={given!r} in the environment would replace the hash-chained event recorder"
                   f" ({name} is {ours or 'unset'} here), and events would be stored unchained: unset {variable}")
            raise ConfigurationError(msg)


def _same(name: str, given: str, ours: str) -> bool:
    if name in FLAGS:
        return _flag(given) == _flag(ours)
    return given.strip() == ours


def _flag(value: str) -> bool:
    return value.strip().lower() in ("y", "yes", "t", "true", "on", "1")


def chained(recorder: Any, chain_key: str | None) -> None:  # noqa: ANN401 - the library's ApplicationRecorder
    """The recorder the library built is one of ours, inserting in Python (so it chains what it stores); it
    gets the chain's scheme (HMAC-SHA256 links under `chain_key`, SHA-256 without). Else ConfigurationError."""
    if not isinstance(recorder, ChainedSQLiteRecorder | ChainedPostgresRecorder):
        msg = (f"the event store was built with {type(recorder).__module__}.{type(recorder).__qualname__}, which does not"
               " hash-chain what it stores: events would be stored unchained; remove the setting that chose it")
        raise ConfigurationError(msg)
    if getattr(recorder.datastore, "enable_db_functions", False):
        msg = "the event store inserts through a database function, which skips the hash chain: unset POSTGRES_ENABLE_DB_FUNCTIONS"
        raise ConfigurationError(msg)
    recorder.chain_scheme = chain_scheme(chain_key)


def chain_scheme(chain_key: str | None) -> ChainScheme:
    """The chain's scheme for `CONTINUUM_CHAIN_KEY` (base64; checked when the settings were read)."""
    return ChainScheme(base64.b64decode(chain_key) if chain_key else None)


def check_cipher_key(key: str) -> None:
    try:
        size = len(base64.b64decode(key, validate=True))
    except (binascii.Error, ValueError):
        msg = "CONTINUUM_CIPHER_KEY is not base64: create one with `continuum keygen`"
        raise ConfigurationError(msg) from None
    if size not in AES_KEY_SIZES:
        msg = f"CONTINUUM_CIPHER_KEY decodes to {size} bytes; AES needs 16, 24 or 32"
        raise ConfigurationError(msg)
