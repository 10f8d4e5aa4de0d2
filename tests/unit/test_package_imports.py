"""What imports what, read from the source with ast (nothing is imported or run):

- no shipped module (domain/, projections/, services/, infra/, bench/) imports `tests`: the test
  suite is not installed, so such an import works from a clone and fails for a user;
- the application (domain/, projections/, services/, infra/) does not import the measurement tooling
  (`bench`), except the `continuum bench` command, an entry point, which loads it when it runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("domain", "projections", "services", "infra", "bench")
APPLICATION = ("domain", "projections", "services", "infra")
ENTRY_POINTS = {"services/cli/benchmarking.py"}  # may import bench (the `continuum bench` command)


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, wherever it stands (top level, function, try)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name)
              and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))  # importlib.import_module("tests.support.kafka")
    return found


def offenders(packages: tuple[str, ...], forbidden: str, allowed: set[str] = frozenset()) -> list[str]:
    out = []
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name in allowed:
                continue
            out.extend(f"{name}:{line}: {module}" for line, module in imported(path)
                       if module == forbidden or module.startswith(forbidden + "."))
    return out


def test_the_packages_are_there():
    for package in SHIPPED:
        assert (ROOT / package / "__init__.py").is_file(), package


def test_no_shipped_module_imports_tests():
    assert offenders(SHIPPED, "tests") == []


def test_the_application_does_not_import_the_measurement_tooling():
    assert offenders(APPLICATION, "bench", ENTRY_POINTS) == []


def test_the_check_sees_every_kind_of_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "import tests.support\nfrom tests import support\nimport importlib\n"
        "def f():\n    from tests.support.kafka import Broker\n    return importlib.import_module('tests.support.kafka')\n"
        "from . import tests\nimport testsuite\n",
        encoding="utf-8",
    )
    modules = [m for _, m in imported(module)]
    assert sorted(m for m in modules if m == "tests" or m.startswith("tests.")) == [
        "tests", "tests.support", "tests.support.kafka", "tests.support.kafka",
    ]
