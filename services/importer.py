"""`continuum import FILE.jsonl`: one command per line; a bad line is reported with its number
and reason, is not applied, and neither stops nor undoes the good lines."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from pydantic import ValidationError

from domain.values import Actor
from services.commands import Command, parse_command
from services.journeys import JourneyService, Outcome


@dataclass(frozen=True)
class LineError:
    line: int
    reason: str


@dataclass
class ImportReport:
    lines: int = 0
    applied: int = 0
    duplicates: int = 0
    events: int = 0
    last_position: int = 0
    errors: list[LineError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def describe_validation(error: ValidationError) -> str:
    """'level: Input should be ...; site: Field required' - the field first, then what is wrong."""
    parts = []
    for problem in error.errors():
        if problem["type"] == "union_tag_invalid":
            context = problem.get("ctx", {})
            parts.append(f"command: unknown command {context.get('tag')!r} (known: {context.get('expected_tags')})")
            continue
        if problem["type"] == "union_tag_not_found":
            parts.append('command: field required (the name of the command, e.g. "admit")')
            continue
        location = [str(part) for part in problem["loc"]][1:]  # drop the tagged-union branch name
        parts.append(f"{'.'.join(location) or 'line'}: {problem['msg']}")
    return "; ".join(parts)


def parse_lines(lines: Iterable[str]) -> Iterator[tuple[int, Command | LineError]]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            yield number, LineError(number, f"invalid JSON: {error.msg} at column {error.colno}")
            continue
        if not isinstance(data, dict):
            yield number, LineError(number, "expected a JSON object with a 'command' field")
            continue
        try:
            yield number, parse_command(data)
        except ValidationError as error:
            yield number, LineError(number, describe_validation(error))


def import_lines(
    service: JourneyService,
    lines: Iterable[str],
    actor: Actor,
    *,
    chunk_size: int = 500,
    on_chunk: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    report = ImportReport()
    chunk: list[tuple[int, Command]] = []

    def flush() -> None:
        outcomes = service.execute_many([command for _, command in chunk], actor)
        for (number, _), outcome in zip(chunk, outcomes, strict=True):
            _count(report, number, outcome)
        chunk.clear()
        if on_chunk is not None:
            on_chunk(report)

    for number, parsed in parse_lines(lines):
        report.lines = number
        if isinstance(parsed, LineError):
            report.errors.append(parsed)
            continue
        chunk.append((number, parsed))
        if len(chunk) >= chunk_size:
            flush()
    if chunk:
        flush()
    report.errors.sort(key=lambda error: error.line)
    return report


def _count(report: ImportReport, number: int, outcome: Outcome) -> None:
    if outcome.error is not None:
        report.errors.append(LineError(number, str(outcome.error)))
    elif outcome.duplicate:
        report.duplicates += 1
    else:
        report.applied += 1
        report.events += len(outcome.events)
        report.last_position = max(report.last_position, *(event.position for event in outcome.events))
