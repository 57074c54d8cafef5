"""Helpers for tests: run the CLI as a user would, find free ports, start moto's AWS server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# moto accepts any credentials; these are the ones the tests' own boto3 clients use.
TEST_AWS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


@contextmanager
def moto_server(*buckets: str, verbose: bool = True) -> Iterator[str]:
    """moto's AWS server (S3, IAM, Cost Explorer, ...) on a free loopback port, with these S3
    buckets created; yields its endpoint URL and stops it afterwards."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=verbose)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, **TEST_AWS)
        for bucket in buckets:
            s3.create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()


def run_cli(
    args: list[str], env_extra: dict[str, str] | None = None, timeout: float = 600, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run the installed ``scenario`` command as a user would, in a fresh process."""
    # PYTHONPATH: agents given as tests.agents:... must import in the CLI and its Dask workers.
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.run(
        [str(VENV_BIN / "scenario"), *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd or REPO
    )


def send_body(handler: Any, status: int, body: bytes) -> None:
    """Answer an http.server request with ``status`` and ``body`` (for the tests' agent servers)."""
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
