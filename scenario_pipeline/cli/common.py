"""Shared pieces of the command line: the Typer app, consoles, the progress bars."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Run scenario workloads against data agents.")
err = Console(stderr=True)
out = Console()


class RichListener:
    """Progress bars on stderr, for a person at a terminal."""

    def __init__(self) -> None:
        self.bars = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[unit]}"),
                             TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False)
        self.tasks: dict[str, Any] = {}

    def start(self, stage: str, total: int, unit: str) -> None:
        if not self.tasks:
            self.bars.start()
        self.tasks[stage] = self.bars.add_task(stage, total=total, unit=unit)

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


def _data_dir(data_dir: Optional[Path]) -> None:
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
