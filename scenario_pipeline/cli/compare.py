"""``scenario compare RUN_A RUN_B [RUN_C ...]``: verdicts with intervals, as a table, JSON, CSV or Markdown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import typer
from rich.table import Table

from scenario_pipeline.cli.common import _data_dir, app, check_warehouse, check_writable, err, out, require_runs
from scenario_pipeline.compare.export import FORMATS, num, pval, render
from scenario_pipeline.errors import UsageError

VERDICT_STYLE = {"improved": "green", "degraded": "red", "unchanged": "white", "inconclusive": "yellow"}


@app.command("compare")
def compare(
    run_ids: list[str] = typer.Argument(..., help="two or more run ids; the first is the reference (before)"),
    as_json: bool = typer.Option(False, "--json", help="print the comparison as JSON on stdout and nothing else there"),
    fmt: str | None = typer.Option(None, "--format", help="md | csv | json: print (or with --output, write) in this format"),
    output: Path | None = typer.Option(
        None, "--output", help="write the comparison to this file (format from --format or the suffix)"
    ),
    warehouse: str | None = typer.Option(None, help="duckdb:///path or redshift://user@host:5439/db (default: the settings')"),
    data_dir: Path | None = typer.Option(None, help="local data folder (default: SCENARIO_DATA_DIR or ./scenario-data)"),
    storage: str | None = typer.Option(None, help="storage URL where the HTML report goes (default: the data folder)"),
    correction: str = typer.Option("holm", help="multiple-comparison correction across metrics: holm | bh"),
    alpha: float = typer.Option(0.05, help="significance level"),
    fail_on_degraded: bool = typer.Option(False, "--fail-on-degraded", help="exit 1 when any metric is degraded (for CI)"),
) -> None:
    """Compare runs of the same scenario, scale and seed, case by case."""
    if len(run_ids) < 2:
        raise UsageError("give at least two run ids: scenario compare RUN_A RUN_B")
    if fmt is None and output is not None:
        fmt = {".md": "md", ".csv": "csv", ".json": "json"}.get(output.suffix.lower())
        if fmt is None:
            raise UsageError(f"cannot tell the format of {output.name}; add --format md|csv|json")
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"format {fmt!r} is not known; use one of {', '.join(FORMATS)}")
    if as_json and fmt not in (None, "json") and output is None:
        raise UsageError("--json prints JSON; drop --format, or write the other format with --output")
    if output is not None and (output.is_dir() or not output.parent.is_dir()):  # before the comparison is computed and stored
        raise UsageError(
            f"cannot write {output}: " + ("it is a folder" if output.is_dir() else f"there is no folder {output.parent}")
        )
    _data_dir(data_dir)
    # the flow's own checks, then the warehouse holds the runs and the report's folder is writable,
    # all before a server is needed or anything is written
    from scenario_pipeline.flows.params import check_compare_params  # lazy (cli/__init__.py): 144 ms
    from scenario_pipeline.infra.prefect_server import ensure_api  # lazy: 117 ms
    from scenario_pipeline.settings import load_settings  # lazy: 93 ms
    from scenario_pipeline.storage import Storage  # lazy: 38 ms

    check_compare_params(run_ids, warehouse, storage, correction, alpha)
    settings = load_settings()
    url = check_warehouse(warehouse or settings.resolved_warehouse_url(), must_exist=True)
    require_runs(url, run_ids)
    check_writable(Storage.from_url(storage or settings.resolved_storage_url()))
    ensure_api()
    from scenario_pipeline.flows.compare_runs import compare_runs  # lazy: the flow with Prefect, 0.9 s

    cmp = compare_runs(
        run_ids=run_ids, warehouse_url=warehouse, storage_url=storage, correction=cast(Any, correction), alpha=alpha
    )  # checked above
    if output is not None:
        output.write_text(render(cmp, fmt or "json"))
        err.print(f"wrote {output}", highlight=False)
    if as_json:
        print(json.dumps(cmp, indent=2, default=str))
    elif fmt is not None and output is None:
        print(render(cmp, fmt), end="")
    elif output is None:
        _print(cmp)
    if fail_on_degraded and cmp["summary"]["degraded"]:
        raise typer.Exit(1)


def _n(v: Any, signed: bool = False) -> str:
    return num(v, signed)


def _print(cmp: dict[str, Any]) -> None:
    out.print(
        f"\n[bold]{cmp['scenario']}[/], {cmp['records']:,} records, seed {cmp['seed']}; reference [bold]{cmp['reference']}[/]"
    )
    for p in cmp["pairs"]:
        t = Table(
            "metric",
            "before",
            "after",
            "difference [95% CI]",
            "test",
            "p adj.",
            "min effect",
            "verdict",
            title=f"{p['run_b']} vs {p['run_a']} ({p['paired_cases']} paired cases)",
        )
        for r in p["rows"]:
            v = r["verdict"]
            t.add_row(
                r["metric"],
                _n(r["before_value"]),
                _n(r["after_value"]),
                f"{_n(r['diff'], True)} [{_n(r['ci_low'], True)}, {_n(r['ci_high'], True)}]",
                r["test"],
                pval(r["p_adjusted"]) if r["p_adjusted"] is not None else pval(r["p_value"]) + " (raw)",
                _n(r["min_effect"]) if v else "",
                f"[{VERDICT_STYLE.get(v, 'white')}]{v}[/]" if v else "[dim]no verdict[/]",
            )
        out.print(t)
        for s in p["failures"]["findings"]:
            out.print(f"  - {s}")
    ops = cmp["operations"]
    t = Table("", *ops.keys(), title="latency and cost")
    for key, label in (
        ("latency_p50_ms", "latency p50 ms"),
        ("latency_p95_ms", "latency p95 ms"),
        ("latency_p99_ms", "latency p99 ms"),
        ("cost_per_case_usd", "cost per case USD"),
    ):
        t.add_row(label, *[_n(o.get(key)) for o in ops.values()])
    out.print(t)
    out.print(f"Report: {cmp['report']}")
