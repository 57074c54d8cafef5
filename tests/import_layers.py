"""Run import-linter (the contracts in pyproject.toml, ``[tool.importlinter]``) on this repository.

lint-imports finds a package's modules by walking its folder. In this repository the subpackages
of ``scenario_pipeline`` are top-level folders (``[tool.setuptools.package-dir]``), which an
editable install maps by an import hook that lint-imports never sees; so it would check
``scenario_pipeline/`` alone. ``mirror`` builds the installed layout from links (a folder per
package, a link per module: the sources stay where they are) and lint-imports runs on that.

    python -m tests.import_layers     # what tests/test_layering.py and the pre-commit hook run
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "scenario_pipeline"


def package_dirs(repo: Path = REPO) -> dict[str, Path]:
    """The folder of the root package and of each subpackage mapped to a folder of its own."""
    config = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = {PACKAGE: repo / PACKAGE}
    dirs.update({name: repo / folder for name, folder in config.get("package-dir", {}).items() if name.startswith(f"{PACKAGE}.")})
    return dirs


def mirror(dest: Path, repo: Path = REPO) -> Path:
    """The installed layout of the package under ``dest``: real folders, each module a link to its source."""
    for name, folder in package_dirs(repo).items():
        target = dest.joinpath(*name.split("."))
        for src in folder.rglob("*.py"):
            rel = src.relative_to(folder)
            if "__pycache__" in rel.parts or not all((folder / p / "__init__.py").is_file() for p in _parents(rel)):
                continue
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            (target / rel).symlink_to(src)
    return dest


def _parents(rel: Path) -> list[Path]:
    return [Path(*rel.parts[:i]) for i in range(1, len(rel.parts))]


def lint_imports(root: Path, config: Path = REPO / "pyproject.toml") -> subprocess.CompletedProcess[str]:
    """lint-imports on the package under ``root`` (a ``mirror``); it runs there, since it puts its
    working folder first on the import path."""
    exe = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "500"}  # one line per import in the report
    return subprocess.run(
        [str(exe), "--config", str(config), "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="import-layers-") as tmp:
        res = lint_imports(mirror(Path(tmp)))
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.returncode


if __name__ == "__main__":
    sys.exit(main())
