"""Bad input to every command and every flow parameter (issue 9, part 3).

Each bad input gives ONE line on stderr that starts with ``error:`` and says what to do, exit code 2,
no traceback, nothing on stdout, and nothing written: the data folder stays as it was (absent, or
the same files and warehouse rows), the working directory stays empty, and Prefect is never
reached. ``PREFECT_API_URL`` points at a port where nothing listens and ``PREFECT_HOME`` at a folder
that must never be created: a bad input has to be refused before any server is needed, so no
flow run can exist.

``tests/test_cli_bad_input.py`` (``scenario run``), ``tests/test_datasets_cli.py`` (``generate``,
``plan``) and ``tests/test_cost_estimate.py`` (``--max-cost-usd``) hold earlier cases; this file
covers the rest, and the flows' own parameter checks in-process.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli

pytestmark = [pytest.mark.faults]

DEAD_API = "http://127.0.0.1:9/api"  # nothing listens: a command that reached for Prefect would fail with "does not answer"
RUN_IDS = ["../etc", "a;rm -rf x", "x'; DROP TABLE runs;--", "$(id)", "a/b", "", "x" * 129, ".hidden"]
RUN_ID_MSG = "may hold only letters, digits, '.', '_' and '-'"
PW_URL = "redshift://analyst:hunter2-in-url@example.com:5439/dev"
NO_WH = "there is no warehouse at"
NO_CRED = "no credential is set for the Redshift warehouse at 127.0.0.1:9/dev: set SCENARIO_REDSHIFT_PASSWORD"
NO_RS_PW = "the Redshift URL carries a password; remove it and set SCENARIO_REDSHIFT_PASSWORD"

# (command, args, expected message fragment). "DATA" stands for the test's data folder; cases under
# "wh:" start with a DuckDB warehouse (empty, migrated) in it, so that what is checked is the run id,
# not the missing warehouse.
CLI_CASES: list[tuple[str, list[str], str]] = [
    # -- scenario run (the basics are in tests/test_cli_bad_input.py) --
    ("run", ["run", "s12", "--cases", "1.5"], "'1.5' is not a whole number"),
    ("run", ["run", "s12", "--records", "10^-3"], "'10^-3' is not a whole number"),
    ("run", ["run", "s12", "--records", "10^99999999"], "'10^99999999' is far too large a number"),
    ("run", ["run", "s12", "--records", "10^13"], "records must be at most 10^12, got 10,000,000,000,000"),
    ("run", ["run", "s12", "--records", "1e400"], "'1e400' is not a whole number"),
    ("run", ["run", "s14", "--records", "1000"], "s14-query's fact table holds 2,000 to 5,000,000 records, got 1,000"),
    ("run", ["run", "s16", "--records", "10^11"], "S16 needs 20,000 to 10,000,000,000 query-log records"),
    ("run", ["run", "s12", "--seed", "abc"], "Invalid value for '--seed'"),
    ("run", ["run", "s12", "--seed", "-1"], "seed must be a whole number from 0 to 2^63-1, got -1"),
    ("run", ["run", "s12", "--seed", str(2**63)], "seed must be a whole number from 0 to 2^63-1"),
    ("run", ["run", "s12", "--shard-size", "0"], "shard size must be a positive whole number, got 0"),
    ("run", ["run", "s12", "--shard-size", "many"], "Invalid value for '--shard-size'"),
    ("run", ["run", "s12", "--max-cost-usd", "lots"], "Invalid value for '--max-cost-usd'"),
    ("run", ["run", "s12", "--max-cost-usd", "nan"], "max cost must be a positive number of US dollars, got nan"),
    ("run", ["run", ""], "unknown scenario ''"),
    ("run", ["run", "s12; rm -rf x"], "unknown scenario 's12; rm -rf x'"),
    ("run", ["run", "../etc"], "unknown scenario '../etc'"),
    *[("run", ["run", "s12", "--run-id", r], RUN_ID_MSG) for r in RUN_IDS],
    ("run", ["run", "s12", "--storage", "s3://"], "storage URL 's3://' names no bucket"),
    ("run", ["run", "s12", "--storage", "postgres://u@h/db"], "has unknown scheme 'postgres'; use file:// or s3://bucket/prefix"),
    ("run", ["run", "s12", "--warehouse", "ftp://x"], "unknown scheme 'ftp'; use duckdb:///path/file.duckdb or redshift://"),
    ("run", ["run", "s12", "--warehouse", "postgres://analyst:hunter2-in-url@h/db"], "unknown scheme 'postgres'"),
    ("run", ["run", "s12", "--warehouse", "duckdb://"], "warehouse URL 'duckdb://' names no file"),
    ("run", ["run", "s12", "--warehouse", PW_URL], NO_RS_PW),
    ("run", ["run", "s12", "--warehouse", "redshift://example.com:5439/dev"], "needs a user, a host and a database"),
    (
        "run",
        ["run", "s12", "--warehouse", "redshift://u@example.com/dev?password=x"],
        "Redshift URL option(s) ['password'] are not known",
    ),
    ("run", ["run", "s12", "--warehouse", "redshift://u@example.com:port/dev"], "port must be a number from 1 to 65535"),
    (
        "run",
        ["run", "s12", "--warehouse", "redshift://u@example.com/dev?timeout=soon"],
        "option timeout must be a positive whole number",
    ),
    ("run", ["run", "s12", "--warehouse", "redshift://u@example.com/dev?ssl=maybe"], "option must be true or false, got 'maybe'"),
    ("run", ["run", "s12", "--warehouse", "redshift://u@127.0.0.1:9/dev?ssl=false"], NO_CRED),
    ("run", ["run", "s12", "--dask-address", "ftp://x:1"], "Dask address 'ftp://x:1' has unknown scheme 'ftp'"),
    ("run", ["run", "s12", "--dask-address", "tcp://host"], "needs a host and a port"),
    ("run", ["run", "s12", "--price-profile", "../../etc/passwd"], "price profile"),
    ("run", ["run", "s12", "--bogus"], "No such option: --bogus"),
    ("run", ["run"], "Missing argument"),
    (
        "run",
        ["run", "s12", "--storage", "s3://scenario-no-creds/x"],
        "Unable to locate credentials (for s3:// check the AWS credentials",
    ),
    ("run", ["run", "s12", "--data-dir", "/etc/passwd"], "choose a writable folder for --data-dir"),
    # -- scenario run all --
    ("run all", ["run", "all", "--records", "0"], "records must be a positive whole number, got 0"),
    ("run all", ["run", "all", "--cases", "-1"], "cases must be a positive whole number, got -1"),
    ("run all", ["run", "all", "--run-id", "../etc"], "run id '../etc' may hold only"),
    ("run all", ["run", "all", "--run-id", "x'; DROP TABLE runs;--"], RUN_ID_MSG),
    ("run all", ["run", "all", "--seed", "-5"], "seed must be a whole number from 0 to 2^63-1"),
    ("run all", ["run", "all", "--storage", "ftp://x"], "unknown scheme 'ftp'"),
    ("run all", ["run", "all", "--warehouse", PW_URL], NO_RS_PW),
    ("run all", ["run", "all", "--warehouse", "redshift://u@127.0.0.1:9/dev"], NO_CRED),
    ("run all", ["run", "all", "--dask-address", "localhost:8786"], "needs a scheme"),
    (
        "run",
        ["run", "s12", "--case-timeout-s", "0"],
        "case timeout must be a number of seconds above 0 and at most 86,400, got 0.0",
    ),
    ("run", ["run", "s12", "--case-timeout-s", "abc"], "Invalid value for '--case-timeout-s': Input should be a valid number"),
    (
        "run",
        ["run", "s12", "--max-answer-bytes", "-1"],
        "max answer bytes must be a whole number from 1 to 1,073,741,824, got -1",
    ),
    (
        "run",
        ["run", "s12", "--max-answer-bytes", "2000000000"],
        "max answer bytes must be a whole number from 1 to 1,073,741,824, got 2000000000",
    ),
    # -- issue 15: calls in flight and retries --
    (
        "run",
        ["run", "s12", "--concurrency", "0"],
        "concurrency must be a whole number of agent calls in flight from 1 to 100,000, got 0",
    ),
    (
        "run",
        ["run", "s12", "--concurrency", "-5"],
        "concurrency must be a whole number of agent calls in flight from 1 to 100,000, got -5",
    ),
    (
        "run",
        ["run", "s12", "--concurrency", "10^6"],
        "concurrency must be a whole number of agent calls in flight from 1 to 100,000, got 1000000",
    ),
    ("run", ["run", "s12", "--concurrency", "lots"], "'lots' is not a whole number"),
    ("run", ["run", "s12", "--concurrency", "2.5"], "'2.5' is not a whole number"),
    ("run", ["run", "s12", "--max-retries", "-1"], "max retries must be a whole number from 0 to 100, got -1"),
    ("run", ["run", "s12", "--max-retries", "1000"], "max retries must be a whole number from 0 to 100, got 1000"),
    ("run", ["run", "s12", "--max-retries", "x"], "'x' is not a whole number"),
    (
        "run all",
        ["run", "all", "--concurrency", "0"],
        "concurrency must be a whole number of agent calls in flight from 1 to 100,000, got 0",
    ),
    ("run all", ["run", "all", "--max-retries", "101"], "max retries must be a whole number from 0 to 100, got 101"),
    ("run all", ["run", "all", "--agent", "gpt"], "is not 'reference', 'package.module:callable' or an http(s):// URL"),
    ("run all", ["run", "all", "--agent", "https://bob:hunter2-in-url@agent.example/"], "carries credentials"),
    ("run all", ["run", "all", "--max-cost-usd", "5"], "--max-cost-usd applies to one scenario's run"),
    # -- scenario list --
    ("list", ["list", "--bogus"], "No such option: --bogus"),
    ("list", ["list", "extra"], "unexpected extra argument"),
    # -- scenario generate (more in tests/test_datasets_cli.py) --
    ("generate", ["generate", "events", "--records", "abc"], "'abc' is not a whole number"),
    ("generate", ["generate", "events", "--records", "1.5"], "'1.5' is not a whole number"),
    (
        "generate",
        ["generate", "events", "--records", "10^13"],
        "records must be at most 10^12, got 10,000,000,000,000",
    ),
    ("generate", ["generate", "events", "--partition-rows", "abc"], "Invalid value for '--partition-rows'"),
    ("generate", ["generate", "events", "--seed", "-1"], "seed must be a whole number from 0 to 2^63-1, got -1"),
    ("generate", ["generate", "events", "--seed", str(2**64)], "seed must be a whole number from 0 to 2^63-1"),
    ("generate", ["generate", "../etc"], "unknown dataset '../etc'"),
    ("generate", ["generate", "events; rm -rf x"], "unknown dataset 'events; rm -rf x'"),
    ("generate", ["generate", "events", "--dask-address", "localhost:8786"], "needs a scheme"),
    ("generate", ["generate", "events", "--dask-address", "ftp://x:1"], "unknown scheme 'ftp'"),
    ("generate", ["generate", "events", "--storage", "s3://"], "names no bucket"),
    ("generate", ["generate", "events", "--storage", "postgres://x"], "unknown scheme 'postgres'"),
    (
        "generate",
        ["generate", "events", "--records", "1000", "--data-dir", "/etc/passwd"],
        "choose a writable folder for --data-dir",
    ),
    (
        "generate",
        ["generate", "events", "--records", "1000", "--storage", "s3://scenario-no-creds/x"],
        "Unable to locate credentials",
    ),
    # -- scenario plan (more in tests/test_datasets_cli.py and tests/test_cost_plan.py) --
    ("plan", ["plan", "--records", "abc", "--workers", "2"], "'abc' is not a whole number"),
    ("plan", ["plan", "--records", "1000", "--workers", "abc"], "'abc' is not a whole number"),
    ("plan", ["plan", "--records", "1000", "--workers", "-1"], "workers must be a positive number, got -1"),
    ("plan", ["plan", "--records", "1000", "--workers", "10^30"], "workers must be at most 1,000,000"),
    ("plan", ["plan", "--records", "10^13", "--workers", "2"], "records must be at most 10^12"),
    ("plan", ["plan", "--records", "1000", "--workers", "2", "--seed", "-1"], "seed must be a whole number from 0 to 2^63-1"),
    (
        "plan",
        ["plan", "--records", "1000", "--workers", "2", "--partition-rows", "0"],
        "partition rows must be a positive whole number, got 0",
    ),
    ("plan", ["plan", "--records", "1000", "--workers", "2", "--dataset", "../etc"], "unknown dataset '../etc'"),
    ("plan", ["plan", "--records", "1000", "--workers", "2", "--profile", "aws-mars-1"], "unknown price profile 'aws-mars-1'"),
    ("plan", ["plan", "--records", "1000"], "Missing option '--workers'"),
    # -- scenario compare --
    ("compare", ["compare", "a"], "give at least two run ids"),
    ("compare", ["compare", "a", "a"], "run(s) ['a'] given more than once"),
    *[("compare", ["compare", r, "b"], RUN_ID_MSG) for r in RUN_IDS if r],
    ("compare", ["compare", "a", "b", "--warehouse", "ftp://x"], "unknown scheme 'ftp'"),
    ("compare", ["compare", "a", "b", "--warehouse", "postgres://u@h/db"], "unknown scheme 'postgres'"),
    ("compare", ["compare", "a", "b", "--warehouse", PW_URL], NO_RS_PW),
    ("compare", ["compare", "a", "b", "--warehouse", "redshift://u@127.0.0.1:9/dev"], NO_CRED),
    ("compare", ["compare", "a", "b", "--correction", "bogus"], "correction 'bogus' is not known; use one of ['bh', 'holm']"),
    ("compare", ["compare", "a", "b", "--alpha", "0"], "alpha must lie between 0 and 1"),
    ("compare", ["compare", "a", "b", "--alpha", "1.5"], "alpha must lie between 0 and 1"),
    ("compare", ["compare", "a", "b", "--alpha", "abc"], "Invalid value for '--alpha'"),
    ("compare", ["compare", "a", "b", "--format", "xlsx"], "format 'xlsx' is not known"),
    ("compare", ["compare", "a", "b", "--output", "x.xlsx"], "cannot tell the format of x.xlsx"),
    ("compare", ["compare", "a", "b", "--json", "--format", "csv"], "--json prints JSON"),
    ("compare", ["compare", "a", "b", "--storage", "ftp://x"], "unknown scheme 'ftp'"),
    ("compare", ["compare", "a", "b"], NO_WH),
    ("wh:compare", ["compare", "nosuch-a", "nosuch-b"], "run(s) 'nosuch-a', 'nosuch-b' not in the warehouse"),
    (
        "compare",
        ["compare", "a", "b", "--output", "/nonexistent-dir/x.md"],
        "cannot write /nonexistent-dir/x.md: there is no folder /nonexistent-dir",
    ),
    # -- scenario publish --
    ("publish", ["publish"], "give one RUN_ID or --all"),
    ("publish", ["publish", "a", "--all"], "give one RUN_ID or --all"),
    *[("publish", ["publish", r], RUN_ID_MSG) for r in RUN_IDS if r],
    ("publish", ["publish", "a", "--warehouse", "ftp://x"], "unknown scheme 'ftp'"),
    ("publish", ["publish", "a", "--warehouse", PW_URL], NO_RS_PW),
    ("publish", ["publish", "a", "--warehouse", "redshift://u@127.0.0.1:9/dev"], NO_CRED),
    ("publish", ["publish", "a", "--storage", "ftp://x"], "unknown scheme 'ftp'"),
    ("publish", ["publish", "--all", "--storage", "postgres://x"], "unknown scheme 'postgres'"),
    ("publish", ["publish", "nosuch"], "nothing of run 'nosuch' waits in the outbox"),
    ("wh:publish", ["publish", "nosuch"], "nothing of run 'nosuch' waits in the outbox at"),
    # -- scenario baseline --
    ("baseline", ["baseline"], "give a command: scenario baseline promote | show"),
    ("baseline", ["baseline", "bogus"], "No such command 'bogus'"),
    *[("baseline promote", ["baseline", "promote", r], RUN_ID_MSG) for r in RUN_IDS if r],
    ("baseline promote", ["baseline", "promote", "a", "--timeout", "0"], "--timeout and --poll-interval must be positive"),
    ("baseline promote", ["baseline", "promote", "a", "--timeout", "abc"], "Invalid value for '--timeout'"),
    ("baseline promote", ["baseline", "promote", "a", "--timeout", "10^9"], "Invalid value for '--timeout'"),
    (
        "baseline promote",
        ["baseline", "promote", "a", "--timeout", "99999999"],
        "timeout must be a whole number of seconds from 1 to 2,592,000",
    ),
    ("baseline promote", ["baseline", "promote", "a", "--poll-interval", "-1"], "--timeout and --poll-interval must be positive"),
    (
        "baseline promote",
        ["baseline", "promote", "a", "--timeout", "10", "--poll-interval", "60"],
        "poll interval must be a whole number of seconds from 1 to the timeout",
    ),
    (
        "baseline promote",
        ["baseline", "promote", "a", "--interactive", "--non-interactive"],
        "choose --interactive or --non-interactive",
    ),
    (
        "baseline promote",
        ["baseline", "promote", "a", "--decided-by", "x\ny"],
        "decided_by must be a name of 1 to 256 printable characters",
    ),
    ("baseline promote", ["baseline", "promote", "a", "--warehouse", "ftp://x"], "unknown scheme 'ftp'"),
    ("baseline promote", ["baseline", "promote", "a", "--warehouse", PW_URL], NO_RS_PW),
    ("baseline promote", ["baseline", "promote", "a", "--warehouse", "redshift://u@127.0.0.1:9/dev"], NO_CRED),
    ("baseline promote", ["baseline", "promote", "a"], NO_WH),
    ("wh:baseline promote", ["baseline", "promote", "nosuch"], "run(s) 'nosuch' not in the warehouse"),
    ("baseline show", ["baseline", "show"], NO_WH),
    (
        "baseline show",
        ["baseline", "show", "--warehouse", "duckdb:///nonexistent-dir/wh.duckdb"],
        "there is no warehouse at /nonexistent-dir/wh.duckdb",
    ),
    ("baseline show", ["baseline", "show", "--warehouse", "ftp://x"], "unknown scheme 'ftp'"),
    ("baseline show", ["baseline", "show", "--warehouse", PW_URL], NO_RS_PW),
    ("baseline show", ["baseline", "show", "--warehouse", "redshift://u@127.0.0.1:9/dev"], NO_CRED),
    ("baseline show", ["baseline", "show", "extra"], "unexpected extra argument"),
    # -- scenario alerts (issue 16) --
    ("alerts", ["alerts"], NO_WH),
    ("alerts", ["alerts", "--severity", "high"], "severity 'high' is not known; use one of info, warning, critical"),
    ("alerts", ["alerts", "--status", "closed"], "status 'closed' is not known; use one of open, acknowledged, resolved"),
    ("alerts", ["alerts", "--warehouse", "ftp://x"], "unknown scheme 'ftp'"),
    ("alerts", ["alerts", "--warehouse", PW_URL], NO_RS_PW),
    ("alerts", ["alerts", "--warehouse", "redshift://u@127.0.0.1:9/dev"], NO_CRED),
    ("alerts", ["alerts", "bogus"], "No such command 'bogus'"),
    ("alerts", ["alerts", "--severity", "critical", "ack", "abcd", "--by", "x"], "--severity before `ack` belong to the list"),
    ("alerts ack", ["alerts", "ack", "abcd"], "Missing option '--by'"),
    ("alerts ack", ["alerts", "ack", "--by", "x"], "Missing argument"),
    *[("alerts ack", ["alerts", "ack", r, "--by", "x"], "must be 4 to 64 hex digits") for r in [*RUN_IDS, "abc", "abcdefg"]],
    ("alerts ack", ["alerts", "ack", "abcd", "--by", "x\ny"], "--by must be a name of 1 to 256 printable characters"),
    ("alerts ack", ["alerts", "ack", "abcd", "--by", ""], "--by must be a name of 1 to 256 printable characters"),
    ("alerts ack", ["alerts", "ack", "abcd", "--by", "x", "--comment", "a\x1b[2J"], "--comment must be text of at most 4,096"),
    ("alerts ack", ["alerts", "ack", "abcd", "--by", "x", "--comment", "c" * 5000], "--comment must be text of at most 4,096"),
    ("alerts ack", ["alerts", "ack", "abcd", "--by", "x"], NO_WH),
    ("alerts ack", ["alerts", "ack", "abcd", "--by", "x", "--warehouse", PW_URL], NO_RS_PW),
    ("wh:alerts ack", ["alerts", "ack", "abcd1234", "--by", "x"], "no alert has an id starting 'abcd1234'"),
    ("alerts resolve", ["alerts", "resolve", "abcd"], "Missing option '--by'"),
    ("alerts resolve", ["alerts", "resolve", "x'; DROP TABLE alerts;--", "--by", "x"], "must be 4 to 64 hex digits"),
    ("alerts resolve", ["alerts", "resolve", "abcd", "--by", "x", "--warehouse", "duckdb://"], "names no file"),
    ("alerts resolve", ["alerts", "resolve", "abcd", "--by", "x"], NO_WH),
    ("wh:alerts resolve", ["alerts", "resolve", "ffff", "--by", "x"], "no alert has an id starting 'ffff'"),
    # -- scenario costs --
    *[("costs", ["costs", r], RUN_ID_MSG) for r in RUN_IDS if r],
    ("costs", ["costs", "a", "--warehouse", "ftp://x"], "unknown scheme 'ftp'"),
    ("costs", ["costs", "a", "--warehouse", PW_URL], NO_RS_PW),
    ("costs", ["costs", "a", "--warehouse", "redshift://u@127.0.0.1:9/dev"], NO_CRED),
    ("costs", ["costs", "a"], NO_WH),
    ("wh:costs", ["costs", "nosuch"], "run 'nosuch' has no cost lines in the warehouse"),
    # -- scenario reconcile-costs --
    ("reconcile-costs", ["reconcile-costs", "--days", "0"], "days must be a whole number from 1 to 365, got 0"),
    ("reconcile-costs", ["reconcile-costs", "--days", "-1"], "days must be a whole number from 1 to 365, got -1"),
    ("reconcile-costs", ["reconcile-costs", "--days", "100000"], "days must be a whole number from 1 to 365"),
    ("reconcile-costs", ["reconcile-costs", "--days", "abc"], "Invalid value for '--days'"),
    ("reconcile-costs", ["reconcile-costs", "--today", "bad"], "--today must be a date as YYYY-MM-DD, got 'bad'"),
    ("reconcile-costs", ["reconcile-costs", "--today", "2026-13-01"], "--today must be a date as YYYY-MM-DD"),
    ("reconcile-costs", ["reconcile-costs", "--today", "'; DROP TABLE costs;--"], "--today must be a date as YYYY-MM-DD"),
    ("reconcile-costs", ["reconcile-costs", "--warehouse", "ftp://x"], "unknown scheme 'ftp'"),
    ("reconcile-costs", ["reconcile-costs", "--warehouse", PW_URL], NO_RS_PW),
    ("reconcile-costs", ["reconcile-costs", "--warehouse", "redshift://u@127.0.0.1:9/dev"], NO_CRED),
    ("reconcile-costs", ["reconcile-costs"], NO_WH),
    ("wh:reconcile-costs", ["reconcile-costs"], "reconcile-costs asks AWS Cost Explorer, so it needs AWS credentials"),
    # -- scenario price-profiles --
    ("price-profiles", ["price-profiles", "extra"], "unexpected extra argument"),
    ("price-profiles", ["price-profiles", "--bogus"], "No such option: --bogus"),
    # -- scenario server --
    ("server", ["server"], "give a command: scenario server start | stop | status"),
    ("server", ["server", "bogus"], "No such command 'bogus'"),
    ("server", ["server", "start", "--port", "5"], "No such option: --port"),
    ("server", ["server", "status", "--bogus"], "No such option: --bogus"),
    ("scenario", [], "give a command: scenario "),
    ("scenario", ["bogus"], "No such command 'bogus'"),
]

# Commands with a --data-dir option get the test's data folder.
HAS_DATA_DIR = {
    "run",
    "generate",
    "plan",
    "compare",
    "publish",
    "promote",
    "show",
    "costs",
    "reconcile-costs",
    "alerts",
    "ack",
    "resolve",
}
SECRET_IN_URL = "hunter2-in-url"
SEEN: Counter = Counter()


def _env(tmp_path: Path) -> dict[str, str]:
    """No Prefect, no AWS credentials, no Redshift password; an S3 endpoint where nothing listens."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SCENARIO_", "PREFECT_"))}
    env.update(
        {
            "PREFECT_API_URL": DEAD_API,
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
            "SCENARIO_SERVER_PORT": "9",
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "COLUMNS": "200",
        }
    )
    return env


def _snapshot(data: Path) -> tuple[set[str], dict[str, int]]:
    """The data folder's files and, if it holds a DuckDB warehouse, every table's row count."""
    if not data.exists():
        return set(), {}
    files = {str(p.relative_to(data)) for p in data.rglob("*") if not p.name.endswith(".wal")}
    rows: dict[str, int] = {}
    wh = data / "warehouse.duckdb"
    if wh.exists():
        import duckdb

        con = duckdb.connect(str(wh), read_only=True)
        try:
            for (t,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall():
                rows[t] = con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0]
        finally:
            con.close()
    return files, rows


@pytest.fixture(scope="module", autouse=True)
def _table_row() -> Iterator[None]:
    """One line per command in the fault suite's table (tests/fault_table.py)."""
    yield
    from tests.fault_table import record

    for key, n in sorted(SEEN.items()):
        kind, name = key.split(":", 1)
        if kind == "cli":
            record(
                f"bad input: `{' '.join(['scenario', name]).strip()}` ({n} cases)",
                "one line on stderr, exit 2, no traceback, nothing written, Prefect never reached",
                0,
                0,
                0,
            )
        else:
            record(
                f"bad input: flow `{name}` parameters ({n} cases, in-process)",
                "one-line UsageError before any work (the checks deployments go through)",
                0,
                0,
                0,
            )


@pytest.mark.parametrize("command,args,message", CLI_CASES, ids=[f"{c}: {' '.join(a)[:60]}" for c, a, _ in CLI_CASES])
def test_every_command_refuses_bad_input_with_one_line_and_exit_2(
    command: str, args: list[str], message: str, tmp_path: Path
) -> None:
    data, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    if command.startswith("wh:"):
        from scenario_pipeline.warehouse.base import connect

        data.mkdir()
        connect(f"duckdb://{data}/warehouse.duckdb").close()
    before = _snapshot(data)
    leaf = (
        args[1]
        if len(args) > 1 and (args[0] in ("baseline", "server") or (args[0] == "alerts" and args[1] in ("ack", "resolve")))
        else (args[0] if args else "")
    )
    argv = (
        [*args, "--data-dir", str(data)]
        if leaf in HAS_DATA_DIR and "--data-dir" not in args and args[-1:] != ["--bogus"]
        else args
    )
    if args == ["run"]:
        argv = args
    proc = run_cli(argv, _env(tmp_path), timeout=180, cwd=cwd)
    err = proc.stderr
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], err[-3000:])
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err  # one clear line
    assert message in lines[0], (message, lines[0])
    assert "does not answer" not in err and "PREFECT_API_URL" not in err, err  # refused before any server was needed
    assert SECRET_IN_URL not in err + proc.stdout  # a password in a URL is never echoed
    if args in (["baseline"], ["server"], []):
        assert proc.stdout.lstrip().startswith("Usage:")  # a group given no command also shows its help
    else:
        assert proc.stdout == "", proc.stdout
    assert _snapshot(data) == before  # nothing written: no new files, no warehouse rows
    assert list(cwd.iterdir()) == []  # nothing in the working directory either (./scenario-data, x.md, ...)
    assert not (tmp_path / "prefect-home").exists()  # Prefect's home never created: no server started, no flow run
    SEEN["cli:" + command.removeprefix("wh:").removeprefix("scenario")] += 1


# ---- the flows' own checks, in-process, without a flow run: what a deployment's parameters go through ----


def _settings() -> Any:
    from scenario_pipeline.settings import Settings

    return Settings(data_dir=Path("/nonexistent-scenario-data"))


def _resolve(**kw: Any) -> Any:
    from scenario_pipeline.flows.params import resolve_params

    args = {
        "scenario": "s12",
        "records": None,
        "cases": None,
        "agent": "reference",
        "seed": None,
        "run_id": None,
        "storage_url": None,
        "warehouse_url": None,
        "dask_address": None,
        "shard_size": None,
    }
    args.update(kw)
    return resolve_params(_settings(), **args)


RUN_SCENARIO_CASES: list[tuple[dict[str, Any], str]] = [
    ({"scenario": 12}, "scenario must be a scenario id such as 's12', got 12"),
    ({"scenario": "s99"}, "unknown scenario 's99'"),
    ({"scenario": "../etc"}, "unknown scenario '../etc'"),
    ({"records": "1000"}, "records must be a positive whole number, got '1000'"),
    ({"records": 1.5}, "records must be a positive whole number, got 1.5"),
    ({"records": True}, "records must be a positive whole number, got True"),
    ({"records": -1}, "records must be a positive whole number, got -1"),
    ({"records": 10**13}, "records must be at most 10^12"),
    ({"scenario": "s14", "records": 1000}, "s14-query's fact table holds 2,000 to 5,000,000 records"),
    ({"scenario": "s11", "records": 10**9}, "S11 needs 8,000 to 10,000,000 records"),
    ({"cases": 0}, "cases must be a positive whole number, got 0"),
    ({"cases": "8"}, "cases must be a positive whole number, got '8'"),
    ({"cases": 1001}, "s12-search draws at most 1000 cases, got 1001"),
    ({"agent": 42}, "agent must be 'reference', 'package.module:callable' or an http(s):// URL, got 42"),
    ({"agent": "gpt"}, "is not 'reference', 'package.module:callable' or an http(s):// URL"),
    (
        {"agent": f"http://bob:{SECRET_IN_URL}@127.0.0.1:9/"},
        "carries credentials; remove them and put the Authorization header value in SCENARIO_AGENT_AUTHORIZATION",
    ),
    ({"case_timeout_s": 0}, "case timeout must be a number of seconds above 0 and at most 86,400, got 0"),
    ({"case_timeout_s": "5"}, "case timeout must be a number of seconds above 0 and at most 86,400, got '5'"),
    ({"max_answer_bytes": 0}, "max answer bytes must be a whole number from 1 to 1,073,741,824, got 0"),
    ({"max_answer_bytes": 1.5}, "max answer bytes must be a whole number from 1 to 1,073,741,824, got 1.5"),
    ({"seed": -1}, "seed must be a whole number from 0 to 2^63-1, got -1"),
    ({"seed": 2**63}, "seed must be a whole number from 0 to 2^63-1"),
    ({"seed": "7"}, "seed must be a whole number from 0 to 2^63-1, got '7'"),
    ({"seed": True}, "seed must be a whole number from 0 to 2^63-1, got True"),
    *[({"run_id": r}, RUN_ID_MSG) for r in [*RUN_IDS, 42]],
    ({"storage_url": "ftp://x"}, "storage URL 'ftp://x' has unknown scheme 'ftp'"),
    ({"storage_url": "s3://"}, "names no bucket"),
    ({"storage_url": 42}, "storage URL must be file:///path or s3://bucket/prefix, got 42"),
    ({"warehouse_url": "postgres://u@h/db"}, "unknown scheme 'postgres'"),
    ({"warehouse_url": "ftp://x"}, "unknown scheme 'ftp'"),
    ({"warehouse_url": PW_URL}, NO_RS_PW),
    ({"warehouse_url": "postgres://u:hunter2-in-url@h/db"}, "'postgres://u:***@h/db' has an unknown scheme"),
    ({"warehouse_url": "redshift://h/db"}, "needs a user, a host and a database"),
    ({"warehouse_url": "redshift://u@h/db?password=x"}, "option(s) ['password'] are not known"),
    ({"warehouse_url": "redshift://u@h:99999/db"}, "port must be a number from 1 to 65535"),
    ({"warehouse_url": "redshift://u@h/db?timeout=abc"}, "option timeout must be a positive whole number"),
    ({"warehouse_url": "duckdb://"}, "names no file"),
    ({"warehouse_url": 42}, "warehouse URL must be a string"),
    ({"dask_address": "localhost:8786"}, "needs a scheme"),
    ({"dask_address": "ftp://x:1"}, "unknown scheme 'ftp'"),
    ({"dask_address": "tcp://host"}, "needs a host and a port"),
    ({"shard_size": 0}, "shard size must be a positive whole number, got 0"),
    ({"shard_size": "10"}, "shard size must be a positive whole number, got '10'"),
    ({"max_cost_usd": -1}, "max cost must be a positive number of US dollars, got -1"),
    ({"max_cost_usd": math.nan}, "max cost must be a positive number of US dollars, got nan"),
    ({"max_cost_usd": "5"}, "max cost must be a positive number of US dollars, got '5'"),
    ({"price_profile": "aws-mars-1"}, "unknown price profile 'aws-mars-1'"),
    # issue 15
    ({"concurrency": 0}, "concurrency must be a whole number of agent calls in flight from 1 to 100,000, got 0"),
    ({"concurrency": -1}, "concurrency must be a whole number of agent calls in flight from 1 to 100,000, got -1"),
    ({"concurrency": 100_001}, "concurrency must be a whole number of agent calls in flight from 1 to 100,000, got 100001"),
    ({"concurrency": 2.5}, "concurrency must be a whole number of agent calls in flight from 1 to 100,000, got 2.5"),
    ({"concurrency": "64"}, "concurrency must be a whole number of agent calls in flight from 1 to 100,000, got '64'"),
    ({"concurrency": True}, "concurrency must be a whole number of agent calls in flight from 1 to 100,000, got True"),
    ({"max_retries": -1}, "max retries must be a whole number from 0 to 100, got -1"),
    ({"max_retries": 101}, "max retries must be a whole number from 0 to 100, got 101"),
    ({"max_retries": 1.0}, "max retries must be a whole number from 0 to 100, got 1.0"),
    ({"max_retries": "5"}, "max retries must be a whole number from 0 to 100, got '5'"),
    (
        {"max_retries": None, "concurrency": False},
        "concurrency must be a whole number of agent calls in flight from 1 to 100,000, got False",
    ),
]


@pytest.mark.parametrize("kw,message", RUN_SCENARIO_CASES, ids=[repr(k)[:60] for k, _ in RUN_SCENARIO_CASES])
def test_run_scenario_parameters_are_refused_before_any_work(kw: dict[str, Any], message: str) -> None:
    """flows/run_scenario.py (and every scenario deployment) resolves its parameters with resolve_params first."""
    from scenario_pipeline.errors import UsageError

    with pytest.raises(UsageError) as exc:
        _resolve(**kw)
    assert message in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
    assert SECRET_IN_URL not in str(exc.value)
    SEEN["flow:run-scenario"] += 1


def _flow_cases() -> list[tuple[str, Callable[[], Any], str]]:
    from scenario_pipeline.flows import params as p

    return [
        # compare-runs
        ("compare-runs", lambda: p.check_compare_params("a-b"), "give at least two run ids to compare (a list), got 'a-b'"),
        ("compare-runs", lambda: p.check_compare_params(["a"]), "give at least two run ids"),
        ("compare-runs", lambda: p.check_compare_params(["a", "a"]), "run(s) ['a'] given more than once"),
        ("compare-runs", lambda: p.check_compare_params(["../etc", "b"]), RUN_ID_MSG),
        ("compare-runs", lambda: p.check_compare_params(["a", "x'; DROP TABLE runs;--"]), RUN_ID_MSG),
        ("compare-runs", lambda: p.check_compare_params(["a", 7]), RUN_ID_MSG),
        (
            "compare-runs",
            lambda: p.check_compare_params(["a", "b"], correction="bonferroni"),
            "correction 'bonferroni' is not known",
        ),
        ("compare-runs", lambda: p.check_compare_params(["a", "b"], alpha=0), "alpha must lie between 0 and 1"),
        ("compare-runs", lambda: p.check_compare_params(["a", "b"], alpha="0.05"), "alpha must lie between 0 and 1"),
        (
            "compare-runs",
            lambda: p.check_compare_params(["a", "b"], n_boot=0),
            "n_boot (bootstrap resamples) must be a whole number",
        ),
        (
            "compare-runs",
            lambda: p.check_compare_params(["a", "b"], n_boot=10**9),
            "n_boot (bootstrap resamples) must be a whole number",
        ),
        ("compare-runs", lambda: p.check_compare_params(["a", "b"], warehouse_url="ftp://x"), "unknown scheme 'ftp'"),
        ("compare-runs", lambda: p.check_compare_params(["a", "b"], warehouse_url=PW_URL), NO_RS_PW),
        ("compare-runs", lambda: p.check_compare_params(["a", "b"], storage_url="ftp://x"), "unknown scheme 'ftp'"),
        # generate-dataset
        ("generate-dataset", lambda: p.check_generate_params(7, 1000), "dataset must be a dataset name such as 'events', got 7"),
        ("generate-dataset", lambda: p.check_generate_params("nosuch", 1000), "unknown dataset 'nosuch'"),
        ("generate-dataset", lambda: p.check_generate_params("../etc", 1000), "unknown dataset '../etc'"),
        ("generate-dataset", lambda: p.check_generate_params("events", 0), "records must be a positive whole number, got 0"),
        (
            "generate-dataset",
            lambda: p.check_generate_params("events", "1000"),
            "records must be a positive whole number, got '1000'",
        ),
        ("generate-dataset", lambda: p.check_generate_params("events", 1.5), "records must be a positive whole number, got 1.5"),
        (
            "generate-dataset",
            lambda: p.check_generate_params("events", None),
            "records must be a positive whole number, got None",
        ),
        (
            "generate-dataset",
            lambda: p.check_generate_params("events", 10**13),
            "records must be at most 10^12, got 10,000,000,000,000",
        ),
        (
            "generate-dataset",
            lambda: p.check_generate_params("events", 1000, 0),
            "partition rows must be a positive whole number, got 0",
        ),
        (
            "generate-dataset",
            lambda: p.check_generate_params("events", 1000, 5000),
            "partition rows (5000) cannot exceed records (1000)",
        ),
        (
            "generate-dataset",
            lambda: p.check_generate_params("events", 1000, seed=-1),
            "seed must be a whole number from 0 to 2^63-1",
        ),
        ("generate-dataset", lambda: p.check_generate_params("events", 1000, storage_url="ftp://x"), "unknown scheme 'ftp'"),
        ("generate-dataset", lambda: p.check_generate_params("events", 1000, dask_address="localhost:8786"), "needs a scheme"),
        # reconcile-costs
        ("reconcile-costs", lambda: p.check_reconcile_params(days=0), "days must be a whole number from 1 to 365, got 0"),
        ("reconcile-costs", lambda: p.check_reconcile_params(days=366), "days must be a whole number from 1 to 365, got 366"),
        ("reconcile-costs", lambda: p.check_reconcile_params(days="7"), "days must be a whole number from 1 to 365, got '7'"),
        ("reconcile-costs", lambda: p.check_reconcile_params(days=True), "days must be a whole number from 1 to 365, got True"),
        (
            "reconcile-costs",
            lambda: p.check_reconcile_params(today="yesterday"),
            "today must be a date as YYYY-MM-DD, got 'yesterday'",
        ),
        ("reconcile-costs", lambda: p.check_reconcile_params(today=20261122), "today must be a date as YYYY-MM-DD, got 20261122"),
        ("reconcile-costs", lambda: p.check_reconcile_params(today="2026-13-01"), "today must be a date as YYYY-MM-DD"),
        ("reconcile-costs", lambda: p.check_reconcile_params(warehouse_url="ftp://x"), "unknown scheme 'ftp'"),
        ("reconcile-costs", lambda: p.check_reconcile_params(warehouse_url=PW_URL), NO_RS_PW),
        # promote-baseline
        ("promote-baseline", lambda: p.check_promote_params("../etc"), RUN_ID_MSG),
        ("promote-baseline", lambda: p.check_promote_params("$(id)"), RUN_ID_MSG),
        ("promote-baseline", lambda: p.check_promote_params("a", warehouse_url="ftp://x"), "unknown scheme 'ftp'"),
        (
            "promote-baseline",
            lambda: p.check_promote_params("a", interactive="yes"),
            "interactive must be true or false, got 'yes'",
        ),
        (
            "promote-baseline",
            lambda: p.check_promote_params("a", decided_by=""),
            "decided_by must be a name of 1 to 256 printable characters",
        ),
        (
            "promote-baseline",
            lambda: p.check_promote_params("a", timeout_s=0),
            "timeout must be a whole number of seconds from 1 to 2,592,000",
        ),
        ("promote-baseline", lambda: p.check_promote_params("a", timeout_s=10**12), "timeout must be a whole number of seconds"),
        ("promote-baseline", lambda: p.check_promote_params("a", timeout_s=1.5), "timeout must be a whole number of seconds"),
        (
            "promote-baseline",
            lambda: p.check_promote_params("a", poll_interval_s=0),
            "poll interval must be a whole number of seconds",
        ),
        ("promote-baseline", lambda: p.check_promote_params("a", timeout_s=10, poll_interval_s=11), "from 1 to the timeout (10)"),
    ]


def _suite_cases() -> list[tuple[str, Callable[[], Any], str]]:
    from scenario_pipeline.flows.run_suite import check_suite_params as s

    base = {
        "scenarios": None,
        "records": None,
        "cases": None,
        "agent": "reference",
        "seed": None,
        "run_id": None,
        "storage_url": None,
        "warehouse_url": None,
        "dask_address": None,
    }
    return [
        ("run-suite", lambda: s(**{**base, "scenarios": "s12"}), "scenarios must be a list of scenario ids"),
        ("run-suite", lambda: s(**{**base, "scenarios": ["s12", "s99"]}), "unknown scenario 's99'"),
        ("run-suite", lambda: s(**{**base, "run_id": "../etc"}), "suite run id '../etc' may hold only"),
        ("run-suite", lambda: s(**{**base, "records": 0}), "records must be a positive whole number, got 0"),
        ("run-suite", lambda: s(**{**base, "warehouse_url": PW_URL}), NO_RS_PW),
        (
            "run-suite",
            lambda: s(**base, options={"concurrency": 0}),
            "concurrency must be a whole number of agent calls in flight",
        ),
        ("run-suite", lambda: s(**base, options={"max_retries": -2}), "max retries must be a whole number from 0 to 100, got -2"),
    ]


def _flow_fn_cases() -> list[tuple[str, Callable[[], Any], str]]:
    """The flow functions themselves (``.fn``: the body without Prefect) check before any work, even before their logger."""
    from scenario_pipeline.flows.compare_runs import compare_runs
    from scenario_pipeline.flows.generate_dataset import generate_dataset
    from scenario_pipeline.flows.promote_baseline import promote_baseline
    from scenario_pipeline.flows.reconcile_costs import reconcile_costs
    from scenario_pipeline.flows.run_suite import run_suite

    return [
        ("compare-runs", lambda: compare_runs.fn(run_ids=["a", "../b"]), RUN_ID_MSG),
        ("generate-dataset", lambda: generate_dataset.fn(dataset="nosuch"), "unknown dataset 'nosuch'"),
        ("promote-baseline", lambda: promote_baseline.fn(run_id="x'; DROP TABLE runs;--"), RUN_ID_MSG),
        ("reconcile-costs", lambda: reconcile_costs.fn(days=0), "days must be a whole number from 1 to 365"),
        ("run-suite", lambda: run_suite.fn(scenarios=["s99"]), "unknown scenario 's99'"),
        ("run-suite", lambda: run_suite.fn(concurrency=-3), "concurrency must be a whole number of agent calls in flight"),
        ("run-suite", lambda: run_suite.fn(max_retries="many"), "max retries must be a whole number from 0 to 100, got 'many'"),
    ]


@pytest.mark.parametrize("group", ["params", "suite", "flow-fn"])
def test_every_flows_parameters_are_refused_in_process(group: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scenario_pipeline.errors import UsageError

    monkeypatch.setenv("SCENARIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PREFECT_API_URL", DEAD_API)
    cases = {"params": _flow_cases, "suite": _suite_cases, "flow-fn": _flow_fn_cases}[group]()
    failures = []
    for flow, call, message in cases:
        try:
            call()
        except UsageError as exc:
            text = str(exc)
            if message not in text or "\n" in text or SECRET_IN_URL in text:
                failures.append((flow, message, text))
            else:
                SEEN[f"flow:{flow}"] += 1
        except Exception as exc:  # noqa: BLE001 - anything but a UsageError is a failure to report
            failures.append((flow, message, f"{type(exc).__name__}: {exc}"))
        else:
            failures.append((flow, message, "accepted"))
    assert failures == []
    assert not (tmp_path / "data").exists()  # nothing written


def test_count_parser_refuses_what_is_not_a_count_quickly() -> None:
    import time

    import typer

    from scenario_pipeline.cli.common import count

    assert [count(v) for v in ("1000000", "1_000_000", "1,000,000", "1e6", "10^6", "10**6")] == [10**6] * 6
    started = time.monotonic()
    for bad, message in (
        ("10^99999999", "far too large"),
        ("10^-3", "not a whole number"),
        ("1.5", "not a whole number"),
        ("1e400", "not a whole number"),
        ("9" * 5000, "not a whole number"),
        ("", "not a whole number"),
        ("$(id)", "not a whole number"),
    ):
        with pytest.raises(typer.BadParameter, match=message):
            count(bad)
    assert time.monotonic() - started < 1  # no giant power is computed
