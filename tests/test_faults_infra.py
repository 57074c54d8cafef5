"""The infrastructure part of the fault suite (issue 9), with real parts and no mocks of our clients:
an object store that answers a share of requests with 503 SlowDown, the data folder's disk full,
and the Prefect server restarted in the middle of a run."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.fault_table import record
from tests.helpers import REPO, VENV_BIN, free_port, moto_server, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.faults]

BUCKET = "scenario-faults-infra"
SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>FAULTS9</RequestId></Error>"
)
RETRY_LINE = re.compile(r"storage: (\w+) (s3://\S+) failed \((\d{3} [^)]*|\w+Error)\), retry (\d+)/(\d+) in (\d+\.\d+) s")


def _cases(data_dir: Path, run_id: str) -> tuple[int, int, int]:
    """(rows, distinct case ids, passed) of a run in the DuckDB warehouse; zeros when it has none."""
    path = data_dir / "warehouse.duckdb"
    if not path.exists():
        return 0, 0, 0
    con = duckdb.connect(str(path), read_only=True)
    try:
        if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'case_results'").fetchone()[0]:
            return 0, 0, 0
        n, distinct, passed = con.execute(
            "SELECT count(*), count(DISTINCT case_id), count(*) FILTER (WHERE passed) FROM case_results WHERE run_id = ?",
            [run_id],
        ).fetchone()
        return n, distinct, passed
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------
# 1. A flaky object store: a loopback proxy in front of moto's S3 answers every 4th request 503.
# ---------------------------------------------------------------------------------------------
class FlakyS3Proxy:
    """A threaded HTTP/1.1 proxy to an S3 server that answers every ``every``-th request (counted
    over all clients, so deterministic in count) with ``503 SlowDown`` instead of forwarding it."""

    def __init__(self, upstream_port: int, every: int = 4) -> None:
        self.upstream_port, self.every = upstream_port, every
        self.requests = self.injected = 0
        self.injected_by_method: dict[str, int] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                body = self._body()
                with proxy._lock:
                    proxy.requests += 1
                    fail = proxy.requests % proxy.every == 0
                    if fail:
                        proxy.injected += 1
                        proxy.injected_by_method[self.command] = proxy.injected_by_method.get(self.command, 0) + 1
                if fail:
                    self.send_response(503, "Slow Down")
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOWDOWN)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(SLOWDOWN)
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("transfer-encoding", "connection", "content-length")
                }
                headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                            self.send_header(k, v)
                    self.send_header(
                        "Content-Length", resp.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
                    )
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True

    def __enter__(self) -> FlakyS3Proxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def moto_s3() -> Iterator[int]:
    """moto's S3 on loopback with an empty bucket; yields its port."""
    with moto_server(BUCKET) as endpoint:
        yield int(endpoint.rsplit(":", 1)[1])


def _flow_run_logs(api_url: str, flow_run_id: str) -> list[str]:
    msgs: list[str] = []
    offset = 0
    while True:
        page = httpx.post(
            f"{api_url}/logs/filter",
            json={"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200, "offset": offset, "sort": "TIMESTAMP_ASC"},
            timeout=30,
        ).json()
        msgs += [log["message"] for log in page]
        if len(page) < 200:
            return msgs
        offset += 200


def test_flaky_object_store_retries_visibly_and_loses_nothing(prefect_server: str, moto_s3: int, data_dir: Path) -> None:
    cases, run_id = 8, "fault-s3-flaky"
    with FlakyS3Proxy(moto_s3, every=4) as proxy:
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{proxy.port}",
            "PREFECT_API_URL": prefect_server,
        }
        started = time.monotonic()
        proc = run_cli(
            [
                "run",
                "s12",
                "--no-fail-on-threshold",
                "--records",
                "1000000",
                "--cases",
                str(cases),
                "--storage",
                f"s3://{BUCKET}/faults",
                "--run-id",
                run_id,
                "--data-dir",
                str(data_dir),
                "--json",
            ],
            env,
            timeout=900,
        )
        seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-4000:]
    s = json.loads(proc.stdout)
    assert s["status"] == "completed" and s["counts"]["cases"] == cases and s["counts"]["shards_failed"] == 0
    # Every read went through in the end: the reference agent found every needle of every case.
    assert s["metrics"]["recall"] == 1.0 and s["counts"]["passed"] == cases, s["metrics"]
    n, distinct, passed = _cases(data_dir, run_id)
    assert (n, distinct, passed) == (cases, cases, cases)

    # The faults really happened: the proxy answered a quarter of the requests with 503 SlowDown.
    assert proxy.requests >= 40 and proxy.injected == proxy.requests // 4, (proxy.requests, proxy.injected)
    assert proxy.injected_by_method.get("PUT", 0) >= 1 and proxy.injected_by_method.get("GET", 0) >= 1, proxy.injected_by_method
    # ... and each 503 was retried with backoff, one visible line per retry (CLI and Dask workers log to this stderr).
    # (A HEAD answer has no body, so its line says "503 Service Unavailable". A dropped loopback connection, rare
    # under load, is retried and logged as well, as "...Error": counted apart.)
    retries = [m.groups() for m in RETRY_LINE.finditer(proc.stderr)]
    of_503 = [r for r in retries if r[2] in ("503 SlowDown", "503 Service Unavailable")]
    assert len(of_503) == proxy.injected, (len(of_503), proxy.injected, proc.stderr[-3000:])
    odd = [
        r
        for r in retries
        if not r[1].startswith(f"s3://{BUCKET}/") or r[4] != "7" or (r not in of_503 and not r[2].endswith("Error"))
    ]
    assert odd == [], odd
    assert {verb for verb, *_ in retries} >= {"write", "read"}
    for *_, attempt, _, delay in retries:  # exponential backoff with jitter: retry n waits 0.05-0.1 s x 2^(n-1)
        bound = min(5.0, 0.1 * 2 ** (int(attempt) - 1))
        assert bound / 2 - 0.006 <= float(delay) <= bound + 0.006, (attempt, delay)
    assert "giving up" not in proc.stderr and "Traceback" not in proc.stderr
    assert "testing" not in " ".join(line for line in proc.stderr.splitlines() if "storage:" in line)  # no key in the lines
    # The retries made in the flow process are in the flow run's logs on the Prefect server too.
    logs = _flow_run_logs(prefect_server, s["flow_run_id"])
    in_prefect = [m for m in logs if RETRY_LINE.search(m)]
    assert in_prefect, "no storage retry line in the flow run's Prefect logs"
    record(
        "object store answers every 4th request 503 SlowDown",
        f"{proxy.injected} of {proxy.requests} requests failed; each retried with backoff and logged "
        f"({len(of_503)} retry lines for them, {len(in_prefect)} in the flow run's Prefect logs); run completed in {seconds:.0f} s, recall 1.0",
        cases,
        n,
        n - distinct,
    )


# ---------------------------------------------------------------------------------------------
# 2. The disk under the data folder is full.
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MB tmpfs mounted on a fresh folder (root only); always unmounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the disk-full tests needs root")
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (mount said: {res.stderr.strip()})")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)  # still busy: detach it now, freed when released


def _resize(mnt: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mnt)], check=True, capture_output=True)


def _litter(root: Path) -> list[str]:
    """Temporary files a writer left behind (a rerun must not trip on them)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".tmp-" in p.name or ".write-probe" in p.name)


def _assert_one_clear_disk_full_line(proc: subprocess.CompletedProcess, where: Path) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    lines = proc.stderr.strip().splitlines()
    last = lines[-1]
    assert re.match(rf"error: the disk is full: cannot write (file://)?{re.escape(str(where))}/\S+ \(", last), proc.stderr[-3000:]
    assert (
        "(No space left on device, ENOSPC)" in last
        and "free space on that disk, or choose another --data-dir (or --storage)" in last
    )
    assert [line for line in lines if line.startswith("error:")] == [last]
    assert "Traceback" not in proc.stderr and "Compute Failed" not in proc.stderr, proc.stderr[-3000:]
    return last


def test_disk_full_in_the_data_folder_fails_clearly_publishes_nothing_and_reruns(prefect_server: str, small_disk: Path) -> None:
    env = {"PREFECT_API_URL": prefect_server}
    gen = run_cli(["generate", "events", "--records", "3000000", "--data-dir", str(small_disk)], env, timeout=600)
    gen_line = _assert_one_clear_disk_full_line(gen, small_disk)
    target = re.search(r"cannot write (\S+) \(", gen_line)
    assert target and "/datasets/events/" in target.group(1) and target.group(1).endswith(".parquet"), (
        gen_line
    )  # the partition it could not write
    assert list(small_disk.rglob("_manifest.json")) == [] and _litter(small_disk) == []

    run_id, cases = "fault-disk-full", 8
    args = [
        "run",
        "s12",
        "--no-fail-on-threshold",
        "--records",
        "3000000",
        "--cases",
        str(cases),
        "--run-id",
        run_id,
        "--data-dir",
        str(small_disk),
        "--json",
    ]
    run = run_cli(args, env, timeout=600)
    _assert_one_clear_disk_full_line(run, small_disk)
    assert run.stdout == ""  # no summary: the run did not pretend to finish
    assert list(small_disk.rglob("_manifest.json")) == [] and _litter(small_disk) == []
    assert list(small_disk.rglob("shard-*.parquet")) == [] and _cases(small_disk, run_id) == (
        0,
        0,
        0,
    )  # nothing published, not half

    # Room again (the same folder, a bigger disk): the same command finishes the run.
    _resize(small_disk, "256m")
    again = run_cli(args, env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    s = json.loads(again.stdout)
    assert s["status"] == "completed" and s["counts"]["cases"] == cases and s["metrics"]["recall"] == 1.0
    n, distinct, passed = _cases(small_disk, run_id)
    assert (n, distinct, passed) == (cases, cases, cases)
    assert len(list(small_disk.rglob("_manifest.json"))) == 1 and _litter(small_disk) == []
    record(
        "data folder's disk full (8 MB tmpfs) during generate and run",
        "generate and run each exit 2 with one line 'the disk is full: cannot write <partition> (No space left on device, ENOSPC); "
        "free space ... or choose another --data-dir'; no traceback, no manifest, no temp files, 0 rows published; "
        "after the disk grew the same command completed",
        cases,
        n,
        n - distinct,
    )


def test_disk_filling_up_mid_fan_out_stops_the_run_and_it_resumes(prefect_server: str, small_disk: Path) -> None:
    _resize(small_disk, "64m")
    run_id, cases, shards = "fault-disk-fills", 60, 30
    args = [
        str(VENV_BIN / "scenario"),
        "run",
        "s12",
        "--no-fail-on-threshold",
        "--records",
        "1000000",
        "--cases",
        str(cases),
        "--shard-size",
        "2",
        "--agent",
        "tests.agents_faults:sleeps_100_to_300ms",
        "--run-id",
        run_id,
        "--data-dir",
        str(small_disk),
        "--json",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": prefect_server}
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    ckpt = small_disk / "runs" / run_id / "shards"
    ballast = small_disk / "ballast.bin"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(list(ckpt.glob("shard-*.parquet"))) < 3 and first.poll() is None:
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()[1][-3000:]
        with open(ballast, "wb") as fh:  # fill the disk to the last page
            try:
                while True:
                    fh.write(b"\0" * (1 << 20))
                    fh.flush()
            except OSError:
                pass
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    proc = subprocess.CompletedProcess(args, first.returncode, out, err)
    line = _assert_one_clear_disk_full_line(proc, small_disk)
    assert f"/runs/{run_id}/" in line, line  # a checkpoint (or the run's cost ledger) it could not write
    done_before = len(list(ckpt.glob("shard-*.parquet")))
    assert 3 <= done_before < shards and out == ""
    assert _cases(small_disk, run_id) == (0, 0, 0) and _litter(small_disk) == []

    ballast.unlink()
    again = run_cli(args[1:], {"PREFECT_API_URL": prefect_server}, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    s = json.loads(again.stdout)
    assert s["resumed"] is True and s["status"] == "completed" and s["counts"]["cases"] == cases
    assert s["counts"]["shards_resumed"] == done_before and s["counts"]["shards_run"] == shards - done_before
    n, distinct, _ = _cases(small_disk, run_id)
    assert (n, distinct) == (cases, cases)
    record(
        "data folder's disk fills up mid fan-out (checkpoints)",
        f"run stopped with exit 2 and one line 'the disk is full: ...'; {done_before} of {shards} shards kept, 0 rows published; "
        f"after space was freed, rerun with the same --run-id resumed ({shards - done_before} shards run) and completed",
        cases,
        n,
        n - distinct,
    )


# ---------------------------------------------------------------------------------------------
# 3. The Prefect server restarted during a run (a private server: the session's is shared).
# ---------------------------------------------------------------------------------------------
class PrivatePrefectServer:
    """``prefect server start`` on a fixed loopback port with its own PREFECT_HOME (SQLite there), as
    tests/conftest.py starts the shared one; it can be stopped (SIGTERM to its process group) and started again."""

    def __init__(self, home: Path) -> None:
        self.home, self.port = home, free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.proc: subprocess.Popen | None = None
        home.mkdir(parents=True, exist_ok=True)

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self) -> float:
        """Start it and wait until it answers; returns the seconds that took."""
        env = {
            **os.environ,
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_API_URL": self.url,
        }
        env.pop("PREFECT_API_URL", None)
        started = time.monotonic()
        with open(self.home / "server.log", "ab") as log:  # the server keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        while time.monotonic() - started < 180:
            if self.healthy():
                return time.monotonic() - started
            if self.proc.poll() is not None:
                raise RuntimeError(f"prefect server exited: {(self.home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.25)
        raise RuntimeError("prefect server did not start within 180 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)

    def flow_run_state(self, flow_run_id: str) -> str:
        return httpx.get(f"{self.url}/flow_runs/{flow_run_id}", timeout=30).json()["state"]["type"]


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[PrivatePrefectServer]:
    server = PrivatePrefectServer(tmp_path / "prefect-home")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _start_run(args: list[str], api_url: str, env_extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": api_url, **(env_extra or {})}
    return subprocess.Popen(
        [str(VENV_BIN / "scenario"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for_shards(run: subprocess.Popen, folder: Path, n: int, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(list(folder.glob("shard-*.parquet"))) < n:
        assert run.poll() is None, run.communicate()[1][-3000:]
        time.sleep(0.05)
    return len(list(folder.glob("shard-*.parquet")))


def test_prefect_server_restarted_mid_fan_out_the_run_rides_through(private_server: PrivatePrefectServer, data_dir: Path) -> None:
    run_id, cases = "fault-server-restart", 200
    args = [
        "run",
        "s12",
        "--no-fail-on-threshold",
        "--records",
        "2000000",
        "--cases",
        str(cases),
        "--agent",
        "tests.agents_faults:sleeps_100_to_300ms",
        "--run-id",
        run_id,
        "--data-dir",
        str(data_dir),
        "--json",
    ]
    run = _start_run(args, private_server.url)
    shards = data_dir / "runs" / run_id / "shards"
    try:
        at_kill = _wait_for_shards(run, shards, 2)
        private_server.stop()  # SIGTERM to the server's process group, mid fan-out
        down_at = time.monotonic()
        assert not private_server.healthy()
        time.sleep(5)
        assert run.poll() is None  # the run goes on while the server is away ...
        restart_s = private_server.start()  # same port, same PREFECT_HOME (its SQLite database)
        down_s = time.monotonic() - down_at
        during = len(list(shards.glob("shard-*.parquet"))) - at_kill
        out, err = run.communicate(timeout=600)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 0, err[-4000:]
    s = json.loads(out)
    total = s["counts"]["shards"]
    assert 2 <= at_kill < total, (at_kill, total)  # the server went away mid fan-out
    assert s["status"] == "completed" and s["counts"]["cases"] == cases and s["counts"]["shards_failed"] == 0
    assert s["counts"]["shards_run"] == total and s["resumed"] is False  # ... in one go, no resume needed
    n, distinct, _ = _cases(data_dir, run_id)
    assert (n, distinct) == (cases, cases)
    assert private_server.flow_run_state(s["flow_run_id"]) == "COMPLETED"  # the restarted server knows the run finished
    record(
        "Prefect server stopped (SIGTERM) mid fan-out, restarted on the same port and database",
        f"server away {down_s:.0f} s (restart took {restart_s:.0f} s; {during} shards checkpointed meanwhile); the run rode through "
        f"on the Prefect client's retries and completed; the flow run is Completed on the restarted server",
        cases,
        n,
        n - distinct,
    )


def test_prefect_server_away_longer_than_the_client_retries_fails_clearly_and_resumes(
    private_server: PrivatePrefectServer, data_dir: Path
) -> None:
    run_id, cases = "fault-server-away", 60
    args = [
        "run",
        "s12",
        "--no-fail-on-threshold",
        "--records",
        "1000000",
        "--cases",
        str(cases),
        "--shard-size",
        "2",
        "--agent",
        "tests.agents_faults:sleeps_100_to_300ms",
        "--run-id",
        run_id,
        "--data-dir",
        str(data_dir),
        "--json",
    ]
    # One retry (about 2 s) instead of the CLI's 7 (about 4 min): the outage outlasts the client's patience.
    run = _start_run(args, private_server.url, {"PREFECT_CLIENT_MAX_RETRIES": "1"})
    shards = data_dir / "runs" / run_id / "shards"
    try:
        at_kill = _wait_for_shards(run, shards, 2)
        private_server.stop()
        out, err = run.communicate(timeout=300)  # the server stays away until the run gives up
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    done_before = len(list(shards.glob("shard-*.parquet")))
    assert run.returncode == 2 and out == "", (run.returncode, err[-4000:])
    assert 2 <= at_kill < cases // 2, at_kill  # the server went away mid fan-out
    errors = [
        line for line in err.splitlines() if line.startswith("error:")
    ]  # (Prefect's log and event workers complain after it)
    assert len(errors) == 1, err[-4000:]
    assert errors[0].startswith(f"error: lost the Prefect API at {private_server.url} during run {run_id} (ConnectError: "), (
        errors[0]
    )
    assert errors[0].endswith(f"when the server answers again, rerun with --run-id {run_id} to resume"), errors[0]
    assert _cases(data_dir, run_id) == (0, 0, 0)  # nothing published by the broken attempt

    private_server.start()
    again = run_cli(args, {"PREFECT_API_URL": private_server.url}, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    s = json.loads(again.stdout)
    assert s["resumed"] is True and s["status"] == "completed" and s["counts"]["cases"] == cases
    assert s["counts"]["shards_resumed"] == done_before and s["counts"]["shards_run"] == s["counts"]["shards"] - done_before
    n, distinct, _ = _cases(data_dir, run_id)
    assert (n, distinct) == (cases, cases)
    record(
        "Prefect server gone for longer than the client's retries (PREFECT_CLIENT_MAX_RETRIES=1)",
        f"the fan-out went on without the server ({at_kill} of {s['counts']['shards']} shards checkpointed when it went, {done_before} "
        f"at exit); the run exited 2 with 'lost the Prefect API ... rerun with --run-id {run_id} to resume'; after the restart the "
        f"rerun resumed ({s['counts']['shards_run']} shards run) and completed",
        cases,
        n,
        n - distinct,
    )
