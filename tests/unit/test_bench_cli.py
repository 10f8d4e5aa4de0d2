"""The bench's modules as a user runs them (`python -m bench.X`, as README and BENCHMARKS.md show): they start
without warnings, and a wrong argument gets a usage line, not a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import markdown


def _module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, check=False, timeout=120)  # noqa: S603


@pytest.mark.parametrize("module", ["bench.relay", "bench.reports", "bench.kafka", "bench.parallel", "bench.markdown"])
def test_a_bench_module_run_by_name_starts_without_a_warning(module):
    done = _module(module, "--help")
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
    assert done.stderr == ""  # was: "RuntimeWarning: 'bench.relay' found in sys.modules after import of package 'bench'"


def test_markdown_names_a_file_it_cannot_read(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        markdown.main([str(tmp_path / "missing.json")])
    assert exited.value.code == 2
    assert f"cannot read {tmp_path / 'missing.json'} as a bench result" in capsys.readouterr().err


def test_markdown_renders_a_result_file(capsys):
    path = Path(__file__).parents[2] / "BENCHMARKS.json"
    markdown.main([str(path)])
    assert capsys.readouterr().out.startswith(f"Run `continuum bench --{json.loads(path.read_text())['mode']}` on ")


def test_the_growth_worker_without_its_arguments_says_how_to_call_it():
    done = _module("bench.worker")
    assert done.returncode == 1
    assert done.stderr.strip() == "usage: python -m bench.worker URL LINES_FILE CHUNK BATCH [ingest]"
