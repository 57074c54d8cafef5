"""Hostile and broken agents, end to end through `scenario run`: every case is recorded once,
each failure with its reason, and the run completes."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from tests.fault_table import record
from tests.helpers import free_port, run_cli, send_body

pytestmark = [pytest.mark.slow, pytest.mark.faults]


def _rows(data_dir: Path, run_id: str) -> list[tuple]:
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute("SELECT case_id, passed, reason FROM case_results WHERE run_id = ? ORDER BY case_index", [run_id]).fetchall()
    finally:
        con.close()


def _run(prefect_server: str, data_dir: Path, agent: str, run_id: str, cases: int = 4, env: dict | None = None, extra: tuple = ()) -> dict:
    proc = run_cli(["run", "s12", "--records", "1000000", "--cases", str(cases), "--agent", agent, "--run-id", run_id,
                    "--data-dir", str(data_dir), "--json", *extra], {"PREFECT_API_URL": prefect_server, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


AGENTS = [
    ("raises", "agent raises an exception", "agent raised ValueError: I always fail"),
    ("hangs", "agent hangs past the case time limit (2 s)", "timeout: no answer within 2 s"),
    ("huge", "agent answers 100 MB", "answer too large: 104857"),
    ("crashes", "agent kills its own process (os._exit)", "agent crashed its process (exit code 3)"),
    ("wrong_types", "agent answers a list, not an object", "answer must be a JSON object, got list"),
    ("not_json", "agent answers a Python set", "answer is not JSON-serializable"),
    ("writes_dataset", "agent writes into the dataset folder", "agent raised PermissionError: dataset is read-only"),
]


@pytest.mark.parametrize("agent,fault,reason", AGENTS, ids=[a for a, _, _ in AGENTS])
def test_broken_agent_fails_its_cases_and_the_run_completes(agent: str, fault: str, reason: str, prefect_server: str, data_dir: Path) -> None:
    started = time.monotonic()
    # The limits are run parameters (--case-timeout-s, --max-answer-bytes) over settings (SCENARIO_FANOUT_*).
    s = _run(prefect_server, data_dir, f"tests.agents_faults:{agent}", f"fault-{agent.replace('_', '-')}",
             env={"SCENARIO_FANOUT_CASE_TIMEOUT_S": "60"}, extra=("--case-timeout-s", "2") if agent == "hangs" else ())
    rows = _rows(data_dir, s["run_id"])
    assert s["status"] == "completed" and len(rows) == 4 and len({r[0] for r in rows}) == 4
    assert all(not r[1] and r[2].startswith(reason) for r in rows), rows
    if agent == "hangs":
        assert time.monotonic() - started < 120  # 4 cases x 2 s on 4 threads, not an hour
    record(fault, f"each case failed with '{reason}...'; run completed", 4, len(rows), len(rows) - len({r[0] for r in rows}))


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/500":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"internal error")
        elif self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(50):  # a body that trickles for 10 s
                self.wfile.write(b"{")
                self.wfile.flush()
                time.sleep(0.2)
        else:
            send_body(self, 200, b"this is not json")

    def log_message(self, *args: object) -> None:
        pass


HTTP = [("/500", "HTTP agent answers 500", "agent raised AgentError: HTTP agent answered 500"),
        ("/slow", "HTTP agent sends its body slowly past the limit", "timeout: no answer within 2 s"),
        ("/invalid", "HTTP agent answers invalid JSON", "agent raised AgentError: HTTP agent answered invalid JSON")]


def test_misbehaving_http_agents(prefect_server: str, data_dir: Path) -> None:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for path, fault, reason in HTTP:
            s = _run(prefect_server, data_dir, f"http://127.0.0.1:{port}{path}", f"fault-http{path.replace('/', '-')}",
                     env={"SCENARIO_FANOUT_CASE_TIMEOUT_S": "2"})
            rows = _rows(data_dir, s["run_id"])
            assert s["status"] == "completed" and len(rows) == 4
            assert all(not r[1] and r[2].startswith(reason) for r in rows), rows
            record(fault, f"each case failed with '{reason}...'; run completed", 4, len(rows), len(rows) - len({r[0] for r in rows}))
    finally:
        server.shutdown()
