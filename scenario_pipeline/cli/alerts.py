"""``scenario alerts`` (list, filtered), ``scenario alerts ack ID --by NAME``, ``scenario alerts resolve ID --by NAME``.

The workflow's rules live in warehouse/alert_state.py; this module checks options, calls the
warehouse and prints. Alert ids may be shortened to any unambiguous start (at least 4 digits).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from scenario_pipeline.cli.common import _data_dir, app, check_warehouse, out
from scenario_pipeline.errors import UsageError
from scenario_pipeline.warehouse import alert_state

alerts_app = typer.Typer(
    invoke_without_command=True,
    help="Alerts people work: list them, acknowledge one (someone is on it), resolve one (fixed).",
)
app.add_typer(alerts_app, name="alerts")

STATUS_STYLE = {"open": "red", "acknowledged": "yellow", "resolved": "green"}
SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "white"}
WAREHOUSE_HELP = "duckdb:///path or redshift://user@host:5439/db (default: the settings')"
DATA_DIR_HELP = "local data folder (default: SCENARIO_DATA_DIR or ./scenario-data)"


def _open(warehouse: str | None, data_dir: Path | None) -> Any:
    from scenario_pipeline.settings import load_settings  # lazy (cli/__init__.py): 93 ms
    from scenario_pipeline.warehouse.base import connect  # lazy: 50 ms

    _data_dir(data_dir)
    return connect(check_warehouse(warehouse or load_settings().resolved_warehouse_url(), must_exist=True))


def _stamp(at: Any) -> str:
    return "" if at is None else str(at)[:16]


def _json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


@alerts_app.callback()
def list_alerts(
    ctx: typer.Context,
    severity: str | None = typer.Option(None, help="only this severity: info | warning | critical"),
    status: str | None = typer.Option(None, help="only this status: open | acknowledged | resolved"),
    scenario: str | None = typer.Option(None, help="only this scenario (its full name, e.g. s12-search)"),
    as_json: bool = typer.Option(False, "--json", help="print the alerts as JSON on stdout, with their history"),
    warehouse: str | None = typer.Option(None, help=WAREHOUSE_HELP),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
) -> None:
    """List alerts: open first, then acknowledged, then resolved; the worst and newest first."""
    if ctx.invoked_subcommand is not None:
        given = [n for n, v in (("--severity", severity), ("--status", status), ("--scenario", scenario)) if v is not None]
        if given or as_json or warehouse or data_dir:
            raise UsageError(
                f"{', '.join(given) or 'options'} before `{ctx.invoked_subcommand}` belong to the list (`scenario alerts "
                f"[OPTIONS]`); give `{ctx.invoked_subcommand}`'s own options after it, e.g. `scenario alerts "
                f"{ctx.invoked_subcommand} ID --by NAME --warehouse URL`"
            )
        return
    alert_state.check_filters(severity, status)
    wh = _open(warehouse, data_dir)
    try:
        items = wh.list_alerts(severity=severity, status=status, scenario=scenario)
    finally:
        wh.close()
    if as_json:
        _json(items)
        return
    if not items:
        out.print("no alerts" + (" match" if severity or status or scenario else ""))
        return
    t = Table("id", "status", "severity", "scenario", "records", "metric", "kind", "seen", "last run", "raised", "who", "message")
    for a in items:
        who = (
            f"resolved by {a['resolved_by']} {_stamp(a['resolved_at'])}"
            if a["status"] == "resolved"
            else f"ack by {a['acknowledged_by']} {_stamp(a['acknowledged_at'])}"
            if a["status"] == "acknowledged"
            else ""
        )
        t.add_row(
            a["alert_id"][:8],
            f"[{STATUS_STYLE[a['status']]}]{a['status']}[/]",
            f"[{SEVERITY_STYLE.get(a['severity'], 'white')}]{a['severity']}[/]",
            a["scenario"],
            "" if a["records"] is None else f"{a['records']:,}",
            a["metric"],
            a["kind"],
            f"{a['occurrences']}x",
            a["last_run_id"],
            _stamp(a["created_at"]),
            who,
            a["message"] or "",
        )
    out.print(t)


def _act(
    action: str, alert_id: str, by: str, comment: str | None, warehouse: str | None, data_dir: Path | None, as_json: bool
) -> None:
    alert_state.check_id(alert_id)  # every check before the warehouse is opened
    alert_state.check_actor(by)
    alert_state.check_comment(comment)
    wh = _open(warehouse, data_dir)
    try:
        done = (wh.acknowledge_alert if action == "ack" else wh.resolve_alert)(alert_id, by, comment)
    finally:
        wh.close()
    if as_json:
        _json(done)
        return
    verb = "acknowledged" if action == "ack" else "resolved"
    at = done[f"{verb}_at"]
    out.print(
        f"alert {done['alert_id'][:8]} ({done['scenario']} {done['metric']} {done['kind']}, {done['severity']}): "
        f"[{STATUS_STYLE[verb]}]{verb}[/] by {done[f'{verb}_by']} at {alert_state.when(at)}",
        highlight=False,
    )


@alerts_app.command("ack")
def ack(
    alert_id: str = typer.Argument(..., help="the alert's id, or an unambiguous start of it (4 digits or more)"),
    by: str = typer.Option(..., "--by", help="who acknowledges it (stored with the time)"),
    comment: str | None = typer.Option(None, help="a note for whoever looks next"),
    warehouse: str | None = typer.Option(None, help=WAREHOUSE_HELP),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the alert after the change as JSON"),
) -> None:
    """Acknowledge an open alert: someone is on it."""
    _act("ack", alert_id, by, comment, warehouse, data_dir, as_json)


@alerts_app.command("resolve")
def resolve(
    alert_id: str = typer.Argument(..., help="the alert's id, or an unambiguous start of it (4 digits or more)"),
    by: str = typer.Option(..., "--by", help="who resolves it (stored with the time)"),
    comment: str | None = typer.Option(None, help="what fixed it"),
    warehouse: str | None = typer.Option(None, help=WAREHOUSE_HELP),
    data_dir: Path | None = typer.Option(None, help=DATA_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help="print the alert after the change as JSON"),
) -> None:
    """Resolve an open or acknowledged alert; if its condition comes back, the next run opens a new alert."""
    _act("resolve", alert_id, by, comment, warehouse, data_dir, as_json)
