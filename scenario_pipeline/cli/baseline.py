"""``scenario baseline promote RUN_ID`` (through the validation gate) and ``scenario baseline show``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.table import Table

from scenario_pipeline.cli.common import _data_dir, app, check_warehouse, err, out, require_runs
from scenario_pipeline.errors import UsageError

baseline_app = typer.Typer(no_args_is_help=True, help="Baselines: the run each scenario+scale is compared with.")
app.add_typer(baseline_app, name="baseline")


def _person_present() -> bool:
    """A terminal on stdin and no CI: someone can answer the gate in the Prefect UI."""
    return sys.stdin.isatty() and not os.environ.get("CI")


@baseline_app.command("promote")
def promote(
    run_id: str = typer.Argument(..., help="the run to make the baseline for its scenario and scale"),
    non_interactive: bool = typer.Option(
        False, "--non-interactive", help="let the thresholds decide (the default in CI or without a terminal)"
    ),
    interactive: bool = typer.Option(
        False, "--interactive", help="wait for a reviewer in the Prefect UI even without a terminal"
    ),
    warehouse: str | None = typer.Option(None, help="duckdb:///path or redshift://user@host:5439/db (default: the settings')"),
    data_dir: Path | None = typer.Option(None, help="local data folder (default: SCENARIO_DATA_DIR or ./scenario-data)"),
    decided_by: str | None = typer.Option(None, help="who decides (stored with the decision)"),
    timeout: int = typer.Option(3600, help="seconds to wait for a reviewer before the decision expires"),
    poll_interval: int = typer.Option(5, help="seconds between checks for the reviewer's answer"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Promote a run through the validation gate; exit 1 when the gate rejects it."""
    if interactive and non_interactive:
        raise UsageError("choose --interactive or --non-interactive, not both")
    if timeout <= 0 or poll_interval <= 0:
        raise UsageError("--timeout and --poll-interval must be positive")
    _data_dir(data_dir)
    mode = interactive or (not non_interactive and _person_present())
    # the flow's own checks, and the run in the warehouse, before a server is needed
    from scenario_pipeline.flows.params import check_promote_params  # lazy (cli/__init__.py): 144 ms
    from scenario_pipeline.infra.prefect_server import ensure_api  # lazy: 117 ms
    from scenario_pipeline.settings import load_settings  # lazy: 93 ms

    check_promote_params(run_id, warehouse, mode, decided_by, timeout, poll_interval)
    url = check_warehouse(warehouse or load_settings().resolved_warehouse_url(), must_exist=True)
    require_runs(url, [run_id])
    st = ensure_api()
    if mode and not as_json:
        err.print(
            f"The gate waits for your decision in the Prefect UI: {st.ui_url}/runs (the paused promote-baseline run)",
            highlight=False,
        )
    from scenario_pipeline.flows.promote_baseline import promote_baseline  # lazy: the flow with Prefect, 0.9 s

    result = promote_baseline(
        run_id=run_id,
        warehouse_url=warehouse,
        interactive=mode,
        decided_by=decided_by,
        timeout_s=timeout,
        poll_interval_s=poll_interval,
    )
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        color = "green" if result["decision"] == "approved" else "red"
        out.print(
            f"run {run_id}: [{color}]{result['decision']}[/] by {result['decided_by']} ({result['mode']}): {result['comment']}"
        )
        out.print(
            f"baseline now: {result['baseline'] or 'none'}"
            + (f" (was {result['previous_baseline']})" if result["previous_baseline"] else "")
        )
    if result["decision"] != "approved":
        raise typer.Exit(1)


@baseline_app.command("show")
def show(
    warehouse: str | None = typer.Option(None, help="duckdb:///path or redshift://user@host:5439/db (default: the settings')"),
    data_dir: Path | None = typer.Option(None, help="local data folder (default: SCENARIO_DATA_DIR or ./scenario-data)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """The current baselines and the gate decisions that set them."""
    from scenario_pipeline.settings import load_settings  # lazy (cli/__init__.py): 93 ms
    from scenario_pipeline.warehouse.base import connect  # lazy: 50 ms

    _data_dir(data_dir)
    wh = connect(
        check_warehouse(warehouse or load_settings().resolved_warehouse_url(), must_exist=True)
    )  # a look creates nothing
    try:
        rows = wh.baselines()
        decisions = {d["decision_id"]: d for d in wh.decisions()}
    finally:
        wh.close()
    items = [{**b, **{k: decisions.get(b["decision_id"], {}).get(k) for k in ("decided_by", "mode", "comment")}} for b in rows]
    if as_json:
        print(json.dumps(items, indent=2, default=str))
        return
    t = Table("scenario", "records", "baseline run", "promoted", "by", "mode", "comment")
    for i in items:
        t.add_row(
            i["scenario"],
            f"{i['records']:,}",
            i["run_id"],
            str(i["promoted_at"])[:19],
            i["decided_by"] or "",
            i["mode"] or "",
            i["comment"] or "",
        )
    out.print(t)
