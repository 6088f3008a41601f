"""Static checks in the suite, so CI runs them: ruff (lint and format) on the bridge, the
benchmarks and the tests, mypy (strict, as pyproject.toml sets it) on the bridge, and vulture
for dead code (configured in pyproject.toml, exceptions in
vulture_whitelist.py)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import msgspec

import bridge

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_ruff_lint_and_format_pass() -> None:
    linted = run("ruff", "check", "bridge", "bench", "tests")
    assert linted.returncode == 0, f"ruff check:\n{linted.stdout}{linted.stderr}"
    formatted = run("ruff", "format", "--check", "bridge", "bench", "tests")
    assert formatted.returncode == 0, (
        f"ruff format --check (run `ruff format bridge bench tests`):\n{formatted.stdout}"
    )


def test_modules_stay_small() -> None:
    """STYLE: small modules, one concept each. None in ``bridge/`` over 600 lines, and one over
    400 says why at its top ("Over 400 lines because ...")."""
    too_long, unexplained = [], []
    for path in sorted((ROOT / "bridge").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        name = str(path.relative_to(ROOT))
        if lines > 600:
            too_long.append(f"{name} ({lines})")
        elif lines > 400 and "Over 400 lines because" not in (
            ast.get_docstring(ast.parse(text)) or ""
        ):
            unexplained.append(f"{name} ({lines})")
    assert not too_long, f"modules over 600 lines: {too_long}"
    assert not unexplained, f"modules over 400 lines without a reason at the top: {unexplained}"


def test_mypy_strict_passes_on_the_bridge() -> None:
    found = run("mypy", "bridge")
    assert found.returncode == 0, f"mypy bridge:\n{found.stdout}{found.stderr}"


def struct_fields() -> list[str]:
    """The field names of the bridge's msgspec Structs: the encoder and decoder read and write
    them, which vulture cannot see."""
    for module in pkgutil.walk_packages(bridge.__path__, "bridge."):
        if module.name != "bridge.__main__":
            importlib.import_module(module.name)
    names: set[str] = set()
    pending: list[type] = [msgspec.Struct]
    while pending:
        kind = pending.pop()
        pending.extend(kind.__subclasses__())
        if kind.__module__.startswith("bridge."):
            names.update(kind.__struct_fields__)  # type: ignore[attr-defined]
    return sorted(names)


def test_no_dead_code(tmp_path: Path) -> None:
    fields = tmp_path / "struct_fields.py"
    fields.write_text("".join(f"_.{name}\n" for name in struct_fields()))
    paths = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["vulture"]["paths"]
    found = run("vulture", *paths, str(fields))
    assert found.returncode == 0, (
        f"vulture (unused code; whitelist in vulture_whitelist.py if a framework calls it):\n{found.stdout}{found.stderr}"
    )


def test_the_dead_code_check_finds_dead_code(tmp_path: Path) -> None:
    module = tmp_path / "dead.py"
    module.write_text(
        "def used() -> int:\n    return 1\n\n\ndef forgotten() -> int:\n    return used()\n"
    )
    found = run("vulture", str(module))
    assert found.returncode != 0
    assert "unused function 'forgotten'" in found.stdout and "'used'" not in found.stdout


def connection_calls(source: str) -> list[int]:
    """The lines of ``source`` that take a database connection (``x.acquire()`` or
    ``x.transaction()``)."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("acquire", "transaction")
    ]


def test_rest_handlers_leave_transactions_to_the_services() -> None:
    """The REST layer parses, calls a service, renders: connections and transactions are the
    services' (so a rule and its transaction are the same on every path)."""
    found = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / "bridge" / "api").rglob("*.py"))
        if (lines := connection_calls(path.read_text()))
    }
    assert found == {}
    assert connection_calls(
        "async def f(db):\n    async with db.transaction() as c:\n        pass\n"
    ) == [2]


def test_modules_that_start_a_command_import_on_their_own() -> None:
    """Imported first, in a fresh interpreter (as ``bridge generate-registration`` or a script
    does), each loads without an import cycle through the REST package."""
    for module in ("bridge.own_key", "bridge.registration", "bridge.demo.prepare"):
        found = subprocess.run(
            [sys.executable, "-c", f"import {module}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert found.returncode == 0, f"{module}:\n{found.stderr}"
