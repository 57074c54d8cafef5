"""The local Prefect server: started in the background when no PREFECT_API_URL is set.

Prefect's ephemeral in-process API does not serve tasks that run in Dask worker processes, so
the CLI always talks to a real server: the user's (PREFECT_API_URL: Prefect Cloud or a team
server) or a local one it starts here (SQLite under PREFECT_HOME).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from scenario_pipeline.errors import ServerError
from scenario_pipeline.settings import PrefectServerSettings


@dataclass(frozen=True)
class ServerStatus:
    api_url: str
    healthy: bool
    pid: int | None
    managed: bool  # started by this tool (it can stop it)

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")


def _home() -> Path:
    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def _pid_file(settings: PrefectServerSettings) -> Path:
    return _home() / f"scenario-server-{settings.port}.pid"


def log_file(settings: PrefectServerSettings) -> Path:
    return _home() / f"scenario-server-{settings.port}.log"


def local_api_url(settings: PrefectServerSettings) -> str:
    return f"http://{settings.host}:{settings.port}/api"


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _read_pid(settings: PrefectServerSettings) -> int | None:
    try:
        pid = int(_pid_file(settings).read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def status(settings: PrefectServerSettings | None = None) -> ServerStatus:
    settings = settings or PrefectServerSettings()
    external = os.environ.get("PREFECT_API_URL")
    if external:
        return ServerStatus(external, healthy(external), None, False)
    url = local_api_url(settings)
    pid = _read_pid(settings)
    return ServerStatus(url, healthy(url), pid, pid is not None)


def start(settings: PrefectServerSettings | None = None) -> ServerStatus:
    """Start a local server in the background (idempotent) and wait until it answers."""
    settings = settings or PrefectServerSettings()
    url = local_api_url(settings)
    if healthy(url):
        return status(settings)
    if _read_pid(settings) is None:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        env["PREFECT_UI_API_URL"] = url  # the UI asks the API there (its default is port 4200)
        with open(log_file(settings), "ab") as log:  # the server keeps its own copy of the descriptor
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "server",
                    "start",
                    "--host",
                    settings.host,
                    "--port",
                    str(settings.port),
                    "--no-services",
                ]
                if os.environ.get("SCENARIO_SERVER_NO_SERVICES")
                else [sys.executable, "-m", "prefect", "server", "start", "--host", settings.host, "--port", str(settings.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        _pid_file(settings).write_text(str(proc.pid))
    deadline = time.monotonic() + settings.start_timeout_s
    while time.monotonic() < deadline:
        if healthy(url):
            return status(settings)
        pid = _read_pid(settings)
        if pid is None:
            raise ServerError(f"the local Prefect server exited during start-up; see {log_file(settings)}")
        time.sleep(0.5)
    raise ServerError(
        f"the local Prefect server did not answer at {url} within {settings.start_timeout_s:.0f} s; see {log_file(settings)}"
    )


def stop(settings: PrefectServerSettings | None = None) -> bool:
    settings = settings or PrefectServerSettings()
    pid = _read_pid(settings)
    if pid is None:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.1)
    _pid_file(settings).unlink(missing_ok=True)
    return True


def ensure_api(settings: PrefectServerSettings | None = None) -> ServerStatus:
    """Make sure a Prefect API answers, and export PREFECT_API_URL for this process and its children."""
    # Ride through a restart of the Prefect server. Prefect's client retries a lost connection with
    # exponential backoff (2, 4, 8, ... s): 7 retries wait about 4 min in all, its default 5 about 1 min.
    # Set before Prefect is imported (it reads its settings then); a user's own value wins.
    os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "7")
    st = status(settings)
    if os.environ.get("PREFECT_API_URL"):
        if not st.healthy:
            raise ServerError(
                f"PREFECT_API_URL={st.api_url} does not answer; check the URL (and PREFECT_API_KEY for Prefect Cloud)"
            )
        return st
    st = start(settings)
    os.environ["PREFECT_API_URL"] = st.api_url
    return st
