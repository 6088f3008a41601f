"""Static checks in the suite, so CI runs them: mypy (strict, as pyproject.toml sets it) on the
bridge, and vulture for dead code (configured in pyproject.toml, exceptions in
vulture_whitelist.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
        check=False,
    )


def test_mypy_strict_passes_on_the_bridge() -> None:
    found = run("mypy", "bridge")
    assert found.returncode == 0, f"mypy bridge:\n{found.stdout}{found.stderr}"


def test_no_dead_code() -> None:
    found = run("vulture")
    assert found.returncode == 0, f"vulture (unused code; whitelist in vulture_whitelist.py if a framework calls it):\n{found.stdout}{found.stderr}"


def test_the_dead_code_check_finds_dead_code(tmp_path: Path) -> None:
    module = tmp_path / "dead.py"
    module.write_text("def used() -> int:\n    return 1\n\n\ndef forgotten() -> int:\n    return used()\n")
    found = run("vulture", str(module))
    assert found.returncode != 0
    assert "unused function 'forgotten'" in found.stdout and "'used'" not in found.stdout
