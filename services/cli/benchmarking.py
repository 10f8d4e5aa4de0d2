"""`continuum bench`: how fast every stage is, against its raw limit on the same store, in one run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from services.cli.base import EXIT_REFUSED, UsageError, command, console, errors


@command("bench")
def bench(
    quick: Annotated[bool, typer.Option("--quick/--full", help="About a minute, or the full run (10^5 clients, 10^6 events)")] = True,
    database_url: Annotated[
        list[str] | None,
        typer.Option("--database-url", help="Bench this database (repeatable): new files beside a SQLite path, a new schema in PostgreSQL"),
    ] = None,
    sqlite: Annotated[bool, typer.Option("--sqlite", help="Bench SQLite in a temporary folder")] = False,
    postgres: Annotated[bool, typer.Option("--postgres", help="Bench PostgreSQL at CONTINUUM_BENCH_POSTGRES_URL or 127.0.0.1")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write the JSON results (default: bench.json; --full: BENCHMARKS.json)"),
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option("--markdown", help="The document whose figures section to rewrite (default with --full: BENCHMARKS.md, when here)"),
    ] = None,
) -> None:
    """Measure ingest, projection rebuild, relay, queries and growth, each against a raw baseline. A full run writes
    BENCHMARKS.json and rewrites BENCHMARKS.md's figures from it (run it in the project's folder, then commit both)."""
    from bench.harness import MODES, run_bench
    from bench.markdown import NoFiguresSectionError, figures_section, update
    from bench.report import tables, write_json
    from bench.stores import DEFAULT_POSTGRES, Target

    targets: list[Target] = []
    if sqlite or not (postgres or database_url):
        targets.append(Target.sqlite())
    if postgres or not (sqlite or database_url):
        targets.append(Target.postgres(os.environ.get("CONTINUUM_BENCH_POSTGRES_URL", DEFAULT_POSTGRES)))
    targets.extend(Target.sqlite(url) if url.startswith("sqlite") else Target.postgres(url) for url in database_url or [])
    out = out or Path("bench.json" if quick else "BENCHMARKS.json")
    if markdown is None and not quick and Path("BENCHMARKS.md").exists():
        markdown = Path("BENCHMARKS.md")
    if markdown is not None:
        try:
            figures_section(markdown.read_text(encoding="utf-8"))  # before an hour's run, not after it
        except (OSError, NoFiguresSectionError) as error:
            raise UsageError(f"--markdown {markdown}: {error}") from None
    if not out.parent.exists():
        msg = f"folder {out.parent} does not exist (for --out {out})"
        raise UsageError(msg)
    mode = MODES["quick" if quick else "full"]
    command_line = "continuum bench " + ("--quick" if quick else "--full")
    results = run_bench(targets, mode, say=lambda text: errors.print(text, highlight=False),
                        save=lambda partial: write_json({**partial, "command": command_line}, out))
    results["command"] = command_line
    write_json(results, out)
    wide = console if console.is_terminal else Console(width=120)  # a log or a pipe: room for the columns
    for table in tables(results):
        wide.print(table)
    console.print(f"{mode.name} run in {results['seconds']:.0f} s; results in {out}")
    if markdown is not None:
        markdown.write_text(update(markdown.read_text(encoding="utf-8"), results), encoding="utf-8")
        console.print(f"figures in {markdown} rewritten from {out}")
    if any(backend["status"] == "failed" for backend in results["backends"].values()):
        raise typer.Exit(EXIT_REFUSED)
