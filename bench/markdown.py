"""BENCHMARKS.md's tables from a `continuum bench --out FILE` result: `python -m bench.markdown FILE`.

The rows are `bench.rows`' (the terminal's tables show the same); this only writes them as Markdown."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.reports import REPORT_HEADERS, REPORT_NUMBERS, report_rows
from bench.rows import Section, stage_rows


def render(results: dict[str, Any]) -> str:
    machine = results["machine"]
    out = [
        f"Run `{results.get('command', 'continuum bench --' + results['mode'])}` on {results['started_at']} ({results['seconds'] / 60:.0f} min).\n",
        f"Machine: {machine['nproc']} vCPU ({machine['cpu']}), {machine['memory_gb']} GB RAM, Python {machine['python']},"
        f" eventsourcing {machine['eventsourcing']}, psycopg {machine['psycopg']}; {machine['platform']}.\n",
    ]
    for section in [] if results.get("only") == "reports" else stage_rows(results):
        out.append(f"\n### {section.title}\n")
        out.append(f"skipped: {section.skipped}\n" if section.skipped is not None else table(section))
    reports = reports_table(results)
    if reports:
        out.append(f"\n### Reports\n\n{reports}")
    return "\n".join(out)


def reports_table(results: dict[str, Any]) -> str:
    """Every report's p50 and p99 by scope, backend and size (`bench.reports`); empty when none were timed."""
    rows = report_rows(results)
    if not rows:
        return ""
    return grid(REPORT_HEADERS, tuple("---:" if header in REPORT_NUMBERS else "---" for header in REPORT_HEADERS), rows)


def table(section: Section) -> str:
    return grid(section.headers, tuple("---:" if side == "right" else "---" for side in section.justify), section.rows)


def grid(headers: tuple[str, ...], rules: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    return "\n".join([_line(headers), "|" + "|".join(rules) + "|", *(_line(row) for row in rows)])


def _line(cells: tuple[str, ...]) -> str:
    # an empty cell is "| |"; a blank one (`bench.rows.NO_TARGET`) "|  |", as BENCHMARKS.md has always had them
    return "|" + "".join(f" {cell.strip()} |" if cell else " |" for cell in cells)


BEGIN = "<!-- figures: written by `continuum bench --full` from BENCHMARKS.json; edit outside these marks -->"
END = "<!-- figures end -->"


class NoFiguresSectionError(ValueError):
    """A document without the marks that say where the figures go."""


def figures_section(document: str) -> tuple[int, int]:
    """Where the figures go: after BEGIN, up to END; NoFiguresSectionError when the marks are missing."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        msg = f"no figures section: the document needs a line {BEGIN!r} and, after it, a line {END!r}"
        raise NoFiguresSectionError(msg)
    return start + len(BEGIN), end


def update(document: str, results: dict[str, Any]) -> str:
    """`document` with what lies between BEGIN and END replaced by the figures of `results`; the rest kept as it is."""
    start, end = figures_section(document)
    return f"{document[:start]}\n\n{render(results).rstrip()}\n\n{document[end:]}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.markdown", description="BENCHMARKS.md's tables from a result")
    parser.add_argument("file", type=Path, help="the JSON of `continuum bench --out FILE`")
    path: Path = parser.parse_args(argv).file
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        parser.error(f"cannot read {path} as a bench result: {error}")
    print(render(results))  # noqa: T201


if __name__ == "__main__":
    main()
