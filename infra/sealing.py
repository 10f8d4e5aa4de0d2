"""Free text that a read model keeps (goals, clinician names, reasons, substances), sealed with the
store's cipher key when one is set: the library's AES-GCM cipher, the same key as the events at
rest, so a copy of the projection tables shows no clinical text either. Without a key, text is kept
as it is, as the events are."""

from __future__ import annotations

import base64

from eventsourcing.cipher import AESCipher
from eventsourcing.utils import Environment

PREFIX = "aes-gcm:"


class FieldSeal:
    def __init__(self, cipher_key: str | None = None) -> None:
        self._cipher = AESCipher(Environment(env={AESCipher.CIPHER_KEY: cipher_key})) if cipher_key else None

    @property
    def sealing(self) -> bool:
        return self._cipher is not None

    def seal(self, text: str) -> str:
        if self._cipher is None:
            return text
        return PREFIX + base64.b64encode(self._cipher.encrypt(text.encode())).decode()

    def open(self, text: str) -> str:
        """Sealed text opened (plain text passes through: rows written before a key was set)."""
        if not text.startswith(PREFIX) or self._cipher is None:
            return text
        return self._cipher.decrypt(base64.b64decode(text.removeprefix(PREFIX))).decode()


PLAIN = FieldSeal()
