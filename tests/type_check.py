"""Run mypy (pyproject.toml, ``[tool.mypy]``) on the package, as installed.

mypy, like lint-imports, finds a package's modules in its folder, and this package's subpackages
are top-level folders (tests/import_layers.py). The installed layout is built from links in
``.mypy_cache/installed-layout`` (a stable place, so mypy's cache stays valid between runs) and
mypy's messages name the repository's files.

    python -m tests.type_check     # what tests/test_lint.py and the pre-commit hook run
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.import_layers import PACKAGE, REPO, mirror, package_dirs


def _repo_paths(text: str, repo: Path) -> str:
    """``scenario_pipeline/flows/params.py:12: ...`` becomes ``flows/params.py:12: ...``."""
    dirs = sorted(package_dirs(repo).items(), key=lambda kv: -len(kv[0]))
    out = []
    for line in text.splitlines(keepends=True):
        for name, folder in dirs:
            prefix = name.replace(".", "/") + "/"
            if line.startswith(prefix):
                line = folder.relative_to(repo).as_posix() + "/" + line[len(prefix) :]
                break
        out.append(line)
    return "".join(out)


def mypy(repo: Path = REPO) -> subprocess.CompletedProcess[str]:
    cache = repo / ".mypy_cache"
    layout = cache / "installed-layout"
    shutil.rmtree(layout, ignore_errors=True)
    mirror(layout, repo)
    exe = Path(sys.executable).with_name("mypy")
    env = {**os.environ, "PYTHONPATH": str(layout)}
    res = subprocess.run(
        [str(exe), "--config-file", str(repo / "pyproject.toml"), "--cache-dir", str(cache), "-p", PACKAGE],
        cwd=layout,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return subprocess.CompletedProcess(res.args, res.returncode, _repo_paths(res.stdout, repo), res.stderr)


def main() -> int:
    res = mypy()
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.returncode


if __name__ == "__main__":
    sys.exit(main())
