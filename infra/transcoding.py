"""How domain values become JSON in the store: every enum by its value, dates, actors."""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoding

from domain.levels import VOCABULARIES
from domain.values import Actor


class EnumAsValue(Transcoding):
    def __init__(self, vocabulary: type[Enum]) -> None:
        self.type = vocabulary
        self.name = vocabulary.__name__

    def encode(self, obj: Enum) -> str:
        return str(obj.value)

    def decode(self, data: str) -> Enum:
        decoded: Enum = self.type(data)
        return decoded


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class ActorAsDict(Transcoding):
    type = Actor
    name = "actor"

    def encode(self, obj: Actor) -> dict[str, str]:
        return {"id": obj.id, "role": obj.role}

    def decode(self, data: dict[str, Any]) -> Actor:
        return Actor(id=data["id"], role=data["role"])


def register_transcodings(transcoder: JSONTranscoder) -> None:
    for vocabulary in VOCABULARIES:
        transcoder.register(EnumAsValue(vocabulary))
    transcoder.register(DateAsISO())
    transcoder.register(ActorAsDict())
