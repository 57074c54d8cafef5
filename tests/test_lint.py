"""ruff (lint and format) and mypy hold on the repository, as configured in pyproject.toml.

These run in CI through the README's test command; contributors get the same checks before a commit
from .pre-commit-config.yaml. A failure prints the tools' own messages, with the files to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO
from tests.type_check import mypy

RUFF = Path(sys.executable).with_name("ruff")


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RUFF), *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_lint_is_clean() -> None:
    res = _ruff("check", "--output-format", "concise", ".")
    assert res.returncode == 0, f"ruff check found problems (fix with `ruff check --fix .`):\n{res.stdout}{res.stderr}"


def test_ruff_format_is_applied() -> None:
    res = _ruff("format", "--check", ".")
    assert res.returncode == 0, f"files not formatted (run `ruff format .`):\n{res.stdout}{res.stderr}"


def test_mypy_is_clean() -> None:
    res = mypy()
    assert res.returncode == 0, f"mypy found type errors:\n{res.stdout}{res.stderr}"


def test_a_lint_error_is_caught(tmp_path: Path) -> None:
    """The checks are live, not configured away: an unused import and a type error are reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\n\ndef f(x: int) -> str:\n    return x\n")
    res = subprocess.run(
        [str(RUFF), "check", "--config", str(REPO / "pyproject.toml"), "--output-format", "concise", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1 and "F401" in res.stdout
    exe = Path(sys.executable).with_name("mypy")
    res = subprocess.run(
        [str(exe), "--no-incremental", "--config-file", str(REPO / "pyproject.toml"), str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 1 and 'Incompatible return value type (got "int", expected "str")' in res.stdout
