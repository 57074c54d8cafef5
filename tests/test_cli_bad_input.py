"""Bad input to `scenario run`: one clear line on stderr, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import free_port, run_cli

CASES = [
    (["run", "s99"], "unknown scenario 's99'"),
    (["run", "s12", "--records", "0"], "records must be a positive whole number, got 0"),
    (["run", "s12", "--records", "-5"], "records must be a positive whole number, got -5"),
    (["run", "s12", "--cases", "0"], "cases must be a positive whole number, got 0"),
    (["run", "s12", "--cases", "1001"], "s12-search draws at most 1000 cases, got 1001"),
    (["run", "s12", "--records", "abc"], "Invalid value for '--records'"),
    (["run", "s12", "--agent", "no_such_module_xyz:answer"], "does not import: ModuleNotFoundError"),
    (["run", "s12", "--agent", "json:no_such_attr"], "module json has no attribute 'no_such_attr'"),
    (["run", "s12", "--agent", "json:__doc__"], "is not callable"),
    (["run", "s12", "--agent", "gpt"], "is not 'reference', 'package.module:callable' or an http(s):// URL"),
    (["run", "s12", "--run-id", "../escape"], "run id '../escape' may hold only letters"),
    (["run", "s12", "--run-id", "x; DROP TABLE runs"], "may hold only letters"),
    (["run", "s12", "--storage", "ftp://host/x"], "unknown scheme 'ftp'"),
    (["run", "s12", "--warehouse", "postgres://u@h/db"], "unknown scheme"),
    (["run", "s12", "--dask-address", "localhost:8786"], "needs a scheme"),
]


@pytest.mark.parametrize("args,message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_gives_one_clear_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = run_cli([*args, "--data-dir", str(data)] if args[0] == "run" else args, {"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr, proc.stderr
    assert proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not data.exists()  # nothing written


def test_unanswering_http_agent_and_unreachable_dask_are_refused_before_any_work(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    for args, message in (
        (["--agent", f"http://127.0.0.1:{port}/"], f"does not answer: cannot connect to 127.0.0.1:{port}"),
        (["--dask-address", f"tcp://127.0.0.1:{port}"], f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"),
    ):
        data = tmp_path / "data"
        proc = run_cli(["run", "s12", *args, "--data-dir", str(data)], {"PREFECT_API_URL": "http://127.0.0.1:9/api"})
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert not data.exists()
