"""The bench results as rich tables (one per backend) and as JSON. The rows are `bench.rows'`
(BENCHMARKS.md's Markdown shows the same); this only lays them out for the terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from bench.rows import Section, stage_rows


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")


def tables(results: dict[str, Any]) -> list[Table]:
    return [table(section, results["mode"]) for section in stage_rows(results)]


def table(section: Section, mode: str) -> Table:
    out = Table(title=f"{section.title}, {mode} mode", title_justify="left")
    for header, side in zip(section.headers, section.justify, strict=True):
        out.add_column(header, overflow="fold", justify=side)
    if section.skipped is not None:
        out.add_row("all", "skipped", Text(section.skipped), *[""] * (len(section.headers) - 3))
    for stage in section.stages:
        for row in stage:
            out.add_row(*(Text(cell) for cell in row))  # Text: an error's "[...]" is not rich markup
        out.add_section()
    return out
