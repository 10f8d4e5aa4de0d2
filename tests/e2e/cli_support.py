"""What the command-line tests of errors, filters and times share: the CLI in process (CliRunner) and
as the installed script (a real process, to see that no traceback is printed), and a small cohort
on fixed dates in 2025, so that nothing depends on the day the tests run.

The cohort at the end of 31 March 2025 (UTC):

| client | site  | level  | track       | since (UTC)         |
|--------|-------|--------|-------------|---------------------|
| C-1    | north | 3.7-WM | residential | 2025-03-02 10:00    |
| C-2    | north | 3.5    | residential | 2025-03-03 09:00    |
| C-3    | south | 2.1    | day         | 2025-03-04 09:00    |
| C-4    | south | 2.1    | evening     | 2025-03-05 18:00    |
| C-5    | north | 1      | day         | 2025-03-06 09:00    |
| C-6    | north | alumni | alumni      | 2025-03-21 09:00    |
| C-7    | south | 3.1    | residential | 2025-03-02 09:00    |
| C-8    | north | 2.5    | day         | 2025-03-10 03:00    | (23:00 on 9 March in New York, 12:00 in Tokyo)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from services.cli import app

CONTINUUM = Path(sys.executable).parent / "continuum"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _line(command: str, client: str, occurred_at: str, **fields: Any) -> dict[str, Any]:
    return {"command": command, "client": client, "occurred_at": occurred_at, **fields}


COHORT: list[dict[str, Any]] = [
    *(_line("register", f"C-{n}", "2025-03-01T09:00:00+00:00", site=site)
      for n, site in enumerate(["north", "north", "south", "south", "north", "north", "south", "north"], start=1)),
    _line("start_detox", "C-1", "2025-03-02T10:00:00+00:00", level="3.7-WM", site="north"),
    _line("admit", "C-2", "2025-03-03T09:00:00+00:00", level="3.5", site="north"),
    _line("admit", "C-3", "2025-03-04T09:00:00+00:00", level="2.1", site="south", track="day"),
    _line("admit", "C-4", "2025-03-05T18:00:00+00:00", level="2.1", site="south", track="evening"),
    _line("admit", "C-5", "2025-03-06T09:00:00+00:00", level="1", site="north", track="day"),
    _line("admit", "C-6", "2025-03-02T09:00:00+00:00", level="2.5", site="north", track="day"),
    _line("discharge", "C-6", "2025-03-20T12:00:00+00:00", reason="completed"),
    _line("enrol_alumni", "C-6", "2025-03-21T09:00:00+00:00"),
    _line("admit", "C-7", "2025-03-02T09:00:00+00:00", level="3.1", site="south"),
    _line("admit", "C-8", "2025-03-10T03:00:00+00:00", level="2.5", site="north", track="day"),
]
END_OF_MARCH = "2025-03-31"
SITES = ["north", "south"]

runner = CliRunner()


def cli(*args: object, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, [str(arg) for arg in args], env=env, catch_exceptions=False)


def read_json(*args: object, env: dict[str, str] | None = None) -> Any:
    result = cli(*args, "--json", env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def run(*args: object, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed `continuum` script in a real process."""
    return subprocess.run(  # noqa: S603 - our own console script
        [str(CONTINUUM), *(str(arg) for arg in args)], capture_output=True, text=True, timeout=timeout, check=False,
        env={**clean_environment(), "NO_COLOR": "1", "COLUMNS": "200", **env},
    )


def clean_environment() -> dict[str, str]:
    """The environment without the developer's CONTINUUM_* settings."""
    return {
        key: value for key, value in os.environ.items()
        if not key.startswith("CONTINUUM_") or key.startswith("CONTINUUM_TEST_") or key == "CONTINUUM_REQUIRE_SERVICES"
    }


def plain(text: str) -> str:
    """Output without colour codes and with rich's wrapping undone."""
    return " ".join(ANSI.sub("", text).split())


def nonblank(text: str) -> list[str]:
    return [line for line in ANSI.sub("", text).splitlines() if line.strip()]


def jsonl(path: Path, rows: list[dict[str, Any]], *, prefix: bytes = b"") -> Path:
    path.write_bytes(prefix + "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8"))
    return path


def recorded(url: str, tmp_path: Path, rows: list[dict[str, Any]] | None = None) -> str:
    """`url` holding the cohort (or `rows`), imported and projected by `continuum import`."""
    result = cli("import", jsonl(tmp_path / "cohort.jsonl", COHORT if rows is None else rows), "--database-url", url)
    assert result.exit_code == 0, result.output
    return url
