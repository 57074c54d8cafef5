"""Shared pieces of the command line: the Typer app, consoles, the progress bars."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Run scenario workloads against data agents.")
err = Console(stderr=True)
out = Console()


class RichListener:
    """Progress bars on stderr, for a person at a terminal."""

    def __init__(self) -> None:
        self.bars = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
            console=err,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}

    def start(self, stage: str, total: int, unit: str) -> None:
        if not self.tasks:
            self.bars.start()
        self.tasks[stage] = self.bars.add_task(stage, total=total, unit=unit, note="")

    def note(self, stage: str, text: str) -> None:
        """A line of state beside the bar (the fan-out's calls in flight and retries)."""
        if stage in self.tasks:
            self.bars.update(self.tasks[stage], note=text)

    def advance(self, stage: str, done: int) -> None:
        if stage in self.tasks:
            self.bars.update(self.tasks[stage], completed=done)

    def finish(self, stage: str) -> None:
        if stage in self.tasks:
            self.bars.update(self.tasks[stage], completed=self.bars.tasks[self.tasks[stage]].total)

    def close(self) -> None:
        if self.tasks:
            self.bars.stop()


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _data_dir(data_dir: Path | None) -> None:
    if data_dir is not None:
        os.environ["SCENARIO_DATA_DIR"] = str(data_dir)


def count(value: str | int) -> int:
    """A record or case count as people write it: 1000000, 1_000_000, 1,000,000, 1e12, 10^12, 10**12."""
    if isinstance(value, int):
        return value
    text = str(value).strip().replace("_", "").replace(",", "")
    try:
        if "^" in text or "**" in text:
            base, _, exp = text.replace("**", "^").partition("^")
            if int(exp) < 0:
                raise ValueError
            if int(exp) > 64 or len(base.strip("+-")) > 20:  # 10^99999999 would take minutes to compute
                raise typer.BadParameter(f"{value!r} is far too large a number")
            number = int(base) ** int(exp)
        elif "e" in text.lower():
            as_float = float(text)
            if not as_float.is_integer():
                raise ValueError
            number = int(as_float)
        else:
            number = int(text)
    except (ValueError, OverflowError):
        raise typer.BadParameter(f"{value!r} is not a whole number (write 1000000, 1_000_000, 1e6 or 10^6)") from None
    return number


def check_writable(root: Any) -> None:
    """Storage that cannot be written (a file in the way, no permission, bad S3 credentials) stops here."""
    from scenario_pipeline.errors import StorageError

    try:
        root.ensure_writable()
    except StorageError as exc:
        if root.scheme != "s3":
            if "--data-dir" in str(exc) or "choose a writable" in str(exc):  # it says what to do already
                raise
            raise StorageError(f"{exc}; choose a writable folder for --data-dir (or --storage)") from exc
        raise StorageError(
            f"{exc} (for s3:// check the AWS credentials in use (AWS_ACCESS_KEY_ID / AWS_PROFILE), "
            "that the bucket exists, and that they may write to it)"
        ) from exc


def check_warehouse(url: str, must_exist: bool) -> str:
    """The warehouse URL, checked whole; then, without writing anything:

    - ``must_exist`` (commands that read): a DuckDB file that is not there is refused, since opening it
      would create an empty warehouse;
    - Redshift with no password, Secret block or IAM configured: one connection is tried, so that a
      missing credential is told now rather than after the work (a trust-authenticated server passes).
    """
    from urllib.parse import urlparse

    from scenario_pipeline.errors import UsageError, WarehouseError
    from scenario_pipeline.flows.param_types import check_warehouse_url

    check_warehouse_url(url)
    if urlparse(url).scheme == "duckdb":
        from scenario_pipeline.warehouse.duckdb_backend import duckdb_path

        path = duckdb_path(url)
        if must_exist and not path.is_file():
            raise UsageError(
                f"there is no warehouse at {path} (no run has published there); check --warehouse, or --data-dir / SCENARIO_DATA_DIR"
            )
        return url
    from scenario_pipeline.warehouse.redshift_backend import has_credential, parse_url, probe

    if not has_credential(url):
        try:
            probe(url)
        except WarehouseError as exc:
            kw = parse_url(url)
            raise UsageError(
                f"no credential is set for the Redshift warehouse at {kw['host']}:{kw['port']}/{kw['database']}: set "
                "SCENARIO_REDSHIFT_PASSWORD (or SCENARIO_REDSHIFT_PASSWORD_BLOCK, the name of a Prefect Secret block), "
                f"or add ?iam=true to the URL (without one: {str(exc).split(': ', 1)[-1].split(' (no password set')[0]})"
            ) from None
    return url


def require_runs(url: str, run_ids: list[str]) -> None:
    """Each run is in the warehouse (read only)."""
    from scenario_pipeline.errors import UsageError
    from scenario_pipeline.warehouse.base import connect, redact_url

    wh = connect(url)
    try:
        missing = [r for r in run_ids if wh.get_run(r) is None]
    finally:
        wh.close()
    if missing:
        raise UsageError(
            f"run(s) {', '.join(map(repr, missing))} not in the warehouse {redact_url(url)}; check the run id and "
            "--warehouse / --data-dir (a run waiting in the outbox is delivered by `scenario publish RUN_ID`)"
        )


def check_aws_credentials(what: str) -> None:
    """The standard AWS credential chain finds some credentials (not checked against AWS here)."""
    import boto3

    from scenario_pipeline.errors import UsageError

    try:
        found = boto3.Session().get_credentials()
    except Exception as exc:  # noqa: BLE001 - a broken profile or config file, told plainly
        raise UsageError(
            f"{what} needs AWS credentials, and reading them failed: {type(exc).__name__}; check AWS_PROFILE and ~/.aws/config"
        ) from None
    if found is None:
        raise UsageError(f"{what} needs AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
