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
        return con.execute(
            "SELECT case_id, passed, reason FROM case_results WHERE run_id = ? ORDER BY case_index", [run_id]
        ).fetchall()
    finally:
        con.close()


def _run(
    prefect_server: str, data_dir: Path, agent: str, run_id: str, cases: int = 4, env: dict | None = None, extra: tuple = ()
) -> dict:
    proc = run_cli(
        [
            "run",
            "s12",
            "--records",
            "1000000",
            "--cases",
            str(cases),
            "--agent",
            agent,
            "--run-id",
            run_id,
            "--data-dir",
            str(data_dir),
            "--json",
            *extra,
        ],
        {"PREFECT_API_URL": prefect_server, **(env or {})},
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # the run completes, and fails its thresholds: every case failed
    return json.loads(proc.stdout)


AGENTS = [
    ("raises", "agent raises an exception", "agent raised ValueError: I always fail"),
    ("hangs", "agent hangs past the case time limit (5 s)", "timeout: no answer within 5 s"),
    ("huge", "agent answers 100 MB", "answer too large: 104857"),
    ("crashes", "agent kills its own process (os._exit)", "agent crashed its process (exit code 3)"),
    ("wrong_types", "agent answers a list, not an object", "answer must be a JSON object, got list"),
    ("not_json", "agent answers a Python set", "answer is not JSON-serializable"),
    ("writes_dataset", "agent writes into the dataset folder", "agent raised PermissionError: dataset is read-only"),
]


def _fault_of_each_case(summary: dict, choices: tuple[str, ...]) -> dict[str, str]:
    """case id -> the misbehaviour tests.agents_faults.pick gave it, from the cases redrawn by seed."""
    from scenario_pipeline.scenarios.registry import get_scenario
    from tests.agents_faults import pick

    sc = get_scenario("s12")
    cases = sc.draw_cases(
        sc.dataset_spec(summary["records"], summary["seed"]), summary["counts"]["expected_cases"], summary["seed"]
    )
    return {c.case_id: pick(json.loads(json.dumps(c.input)), choices) for c in cases}


def _check_and_record(rows: list[tuple], fault_of: dict[str, str], table: list[tuple[str, str, str]]) -> None:
    assert len(rows) == len(fault_of) and len({r[0] for r in rows}) == len(rows)  # every case once
    for key, fault, reason in table:
        mine = [r for r in rows if fault_of[r[0]] == key]
        assert mine, f"no case drew {key}; draw more cases"
        assert all(not r[1] and r[2].startswith(reason) for r in mine), (key, mine)
        record(fault, f"each case failed with '{reason}...'; run completed", len(mine), len(mine), 0)


def test_broken_agents_fail_their_cases_and_the_run_completes(prefect_server: str, data_dir: Path) -> None:
    """One run in which each case meets one of seven broken behaviours (tests.agents_faults.every_fault)."""
    from tests.agents_faults import FAULTS

    started = time.monotonic()
    # The limits are run parameters (--case-timeout-s, --max-answer-bytes) over settings (SCENARIO_FANOUT_*).
    s = _run(
        prefect_server,
        data_dir,
        "tests.agents_faults:every_fault",
        "fault-agents",
        cases=35,
        env={"SCENARIO_FANOUT_CASE_TIMEOUT_S": "60"},
        extra=("--case-timeout-s", "5"),  # room for a 100 MB answer on a loaded 2-core machine
    )
    assert s["status"] == "completed" and s["counts"]["cases"] == 35 and s["counts"]["passed"] == 0
    assert time.monotonic() - started < 240  # hung cases cost 5 s each, not an hour
    assert {a for a, _, _ in AGENTS} == set(FAULTS)
    _check_and_record(_rows(data_dir, s["run_id"]), _fault_of_each_case(s, FAULTS), AGENTS)


class _Handler(BaseHTTPRequestHandler):
    """One endpoint, three misbehaviours, chosen per case like tests.agents_faults.every_fault."""

    def do_POST(self) -> None:  # noqa: N802
        from tests.agents_faults import pick

        case = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["case"]
        fault = pick(case, tuple(p for p, _, _ in HTTP))
        if fault == "/500":
            send_body(self, 500, b"internal error")
        elif fault == "/slow":
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


HTTP = [
    ("/500", "HTTP agent answers 500", "agent raised AgentError: HTTP agent answered 500"),
    ("/slow", "HTTP agent sends its body slowly past the limit", "timeout: no answer within 2 s"),
    ("/invalid", "HTTP agent answers invalid JSON", "agent raised AgentError: HTTP agent answered invalid JSON"),
]


def test_misbehaving_http_agents(prefect_server: str, data_dir: Path) -> None:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        s = _run(prefect_server, data_dir, f"http://127.0.0.1:{port}/", "fault-http", cases=12, extra=("--case-timeout-s", "2"))
        assert s["status"] == "completed" and s["counts"]["cases"] == 12
        _check_and_record(_rows(data_dir, s["run_id"]), _fault_of_each_case(s, tuple(p for p, _, _ in HTTP)), HTTP)
    finally:
        server.shutdown()
