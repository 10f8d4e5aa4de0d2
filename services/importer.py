"""`continuum import FILE.jsonl`: one command per line; a bad line is reported with its number
and reason, is not applied, and neither stops nor undoes the good lines.

A refused line holds its client's later lines: once a line for client X is refused (by a care rule,
or because it is invalid but still names X in a readable `client` field), X's later lines in the
file are not applied (duplicates included) and are reported as held by that first refused line;
other clients go on. A line whose JSON cannot be read names no client and holds nothing.
`dry_run=True` reports exactly what an import would, recording nothing (`JourneyService.check_many`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from pydantic import ValidationError

from domain.values import Actor
from infra.heap import FrozenHeap
from services.commands import Command, parse_command
from services.journeys import DryRun, JourneyService, Outcome


@dataclass(frozen=True)
class LineError:
    """A refused line: invalid, or refused by the client's journey."""

    line: int
    reason: str


@dataclass(frozen=True)
class HeldLine:
    """A line not applied because an earlier line of the same client (`held_by`) was refused."""

    line: int
    held_by: int
    client: str

    @property
    def reason(self) -> str:
        return f"held: line {self.held_by} for {self.client} was refused"


@dataclass
class ImportReport:
    lines: int = 0
    applied: int = 0
    duplicates: int = 0
    events: int = 0
    last_position: int = 0
    errors: list[LineError] = field(default_factory=list)
    held: list[HeldLine] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors and not self.held

    def problems(self) -> list[str]:
        """'line 5: client C-1: ...' and 'line 6 held: line 5 for C-1 was refused', in line order."""
        shown = [(e.line, f"line {e.line}: {e.reason}") for e in self.errors] + [(h.line, f"line {h.line} {h.reason}") for h in self.held]
        return [text for _, text in sorted(shown, key=lambda item: item[0])]


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


def parse_lines(lines: Iterable[str]) -> Iterator[tuple[int, Command | LineError, str | None]]:
    """(number, the command or why the line is refused, the client the line names if it can be read)."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            yield number, LineError(number, f"invalid JSON: {error.msg} at column {error.colno}"), None
            continue
        if not isinstance(data, dict):
            yield number, LineError(number, "expected a JSON object with a 'command' field"), None
            continue
        client = data.get("client")
        client = client if isinstance(client, str) and client else None
        try:
            yield number, parse_command(data), client
        except ValidationError as error:
            yield number, LineError(number, describe_validation(error)), client


def import_lines(
    service: JourneyService,
    lines: Iterable[str],
    actor: Actor,
    *,
    chunk_size: int = 2000,
    on_chunk: Callable[[ImportReport], None] | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Record the lines, a unit of work per `chunk_size` lines; with `dry_run`, record nothing and
    report what would be recorded (journeys read from the store and changed in memory only)."""
    run = _Import(service, actor, ImportReport(dry_run=dry_run), on_chunk, service.new_dry_run() if dry_run else None)
    try:
        for number, parsed, client in parse_lines(lines):
            run.report.lines = number
            if isinstance(parsed, LineError):
                if client is not None and client in run.chunk_clients:
                    run.flush()  # the client's earlier lines decide first: one of them may be refused and hold this one
                run.refuse(number, parsed, client)
                continue
            if not run.held(number, parsed.client):
                run.chunk.append((number, parsed))
                run.chunk_clients.add(parsed.client)
                if len(run.chunk) >= chunk_size:
                    run.flush()
        run.flush()
    finally:
        run.heap.close()
    run.report.errors.sort(key=lambda error: error.line)
    run.report.held.sort(key=lambda held: held.line)
    return run.report


@dataclass
class _Import:
    service: JourneyService
    actor: Actor
    report: ImportReport
    on_chunk: Callable[[ImportReport], None] | None
    rehearsal: DryRun | None
    refused: dict[str, int] = field(default_factory=dict)  # client -> its first refused line, which holds the later ones
    chunk: list[tuple[int, Command]] = field(default_factory=list)
    chunk_clients: set[str] = field(default_factory=set)
    heap: FrozenHeap = field(default_factory=FrozenHeap)

    def held(self, number: int, client: str | None) -> bool:
        if client is None or client not in self.refused:
            return False
        self.report.held.append(HeldLine(number, self.refused[client], client))
        return True

    def refuse(self, number: int, error: LineError, client: str | None) -> None:
        """An invalid line: held if its client already is, else refused, holding the client's later lines."""
        if self.held(number, client):
            return
        if client is not None:
            self.refused[client] = number
        self.report.errors.append(error)

    def flush(self) -> None:
        if not self.chunk:
            return
        commands = [command for _, command in self.chunk]
        if self.rehearsal is not None:
            outcomes = self.service.check_many(commands, self.actor, self.rehearsal, hold=True)
        else:
            outcomes = self.service.execute_many(commands, self.actor, hold=True)
        for (number, command), outcome in zip(self.chunk, outcomes, strict=True):
            if outcome.held_by is not None:
                self.report.held.append(HeldLine(number, self.chunk[outcome.held_by][0], command.client))
                continue
            if not outcome.ok:
                self.refused.setdefault(command.client, number)
            _count(self.report, number, outcome)
        self.chunk.clear()
        self.chunk_clients.clear()
        self.heap.after_unit()
        if self.on_chunk is not None:
            self.on_chunk(self.report)


def _count(report: ImportReport, number: int, outcome: Outcome) -> None:
    if outcome.error is not None:
        report.errors.append(LineError(number, str(outcome.error)))
    elif outcome.duplicate:
        report.duplicates += 1
    else:
        report.applied += 1
        report.events += len(outcome.events)
        report.last_position = max(report.last_position, *(event.position for event in outcome.events))
