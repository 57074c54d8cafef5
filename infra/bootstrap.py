#!/usr/bin/env python3
"""Set-up on a fresh machine, in one command each (see README):

    python3 infra/bootstrap.py demo   # environment, install, Prefect server, a real demo run
    python3 infra/bootstrap.py test   # environment, install, the whole test suite

Only the standard library here: it runs before anything is installed. Re-running is cheap:
the install is skipped while pyproject.toml is unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("SCENARIO_VENV", REPO / ".venv"))
BIN = VENV / "bin"


def sh(*cmd: str, **kw) -> None:  # noqa: ANN003
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def ensure_env(extras: str) -> None:
    if sys.version_info[:2] != (3, 11) and not os.environ.get("SCENARIO_ANY_PYTHON"):
        print(f"note: tested on Python 3.11; this is {sys.version.split()[0]}", file=sys.stderr)
    if not (BIN / "python").exists():
        sh(sys.executable, "-m", "venv", str(VENV))
    stamp = VENV / f".installed-{extras}"
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    sh(str(BIN / "python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    sh(str(BIN / "python"), "-m", "pip", "install", "--quiet", "-e", f"{REPO}[{extras}]")
    stamp.write_text(digest)


def apt_install(*packages: str) -> None:
    """Debian packages, installed when possible (root, apt-get) unless SCENARIO_SKIP_APT is set."""
    if not packages or os.environ.get("SCENARIO_SKIP_APT"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        sh("apt-get", "update", "-qq", env=env)
        sh("apt-get", "install", "-y", "-qq", *packages, env=env)


def sandbox_packages() -> list[str]:
    """The agent sandbox (tasks/sandbox.py): bubblewrap, and slirp4netns for agents with network "outbound"."""
    return [] if shutil.which("bwrap") else ["bubblewrap", "slirp4netns"]


def system_packages() -> None:
    """Debian packages the sandbox and the browser test (Chromium) need, installed when missing and possible."""
    apt_install(*sandbox_packages(), *([] if shutil.which("chromium") else ["chromium"]))


def demo() -> int:
    ensure_env("test")
    apt_install(*sandbox_packages())
    data = Path(os.environ.get("SCENARIO_DATA_DIR", REPO / "scenario-data"))
    print(
        f"\nStarting the local Prefect server and running scenario s12 (10,000,000 records, 100 cases) into {data}\n", flush=True
    )
    subprocess.run([str(BIN / "scenario"), "server", "start"], check=True)
    return subprocess.run([str(BIN / "scenario"), "run", "s12", "--data-dir", str(data)]).returncode


def test(args: list[str]) -> int:
    ensure_env("test")
    system_packages()
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)  # the tests start their own server
    return subprocess.run([str(BIN / "python"), "-m", "pytest", *args], cwd=REPO, env=env).returncode


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("demo", "test", "install"):
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "install":
        ensure_env("test")
        return 0
    return demo() if sys.argv[1] == "demo" else test(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
