"""The ``scenario`` command line. Bad input: one line on stderr, exit code 2, nothing written.

Each module of this package adds its commands to ``app``; adding a command group is adding a module.

Every start of ``scenario`` loads every command module, so what they import at the top every
command pays, ``--help`` and each bad-input check included. They import the flows, Prefect, Dask,
the warehouse back ends, storage and the settings inside the commands that use them ("lazy" in
their comments). Measured on top of Typer and Rich (``scenario --help``: 0.3 s in all): a flow
module with Prefect 0.9-1.4 s, the Dask cluster 313 ms, the Prefect server client 117 ms,
flows/params.py 144 ms, the settings 93-99 ms, the warehouse 50-190 ms, storage 38 ms.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys

from scenario_pipeline.cli.common import app, err
from scenario_pipeline.errors import ScenarioError


def _load_commands() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in ("common", "__main__"):
            importlib.import_module(f"{__name__}.{mod.name}")


class _NoTracebackForOurErrors(logging.Filter):
    """Prefect logs a failed task or flow run with its traceback. For our own errors (a ScenarioError says
    what went wrong and what to do) the CLI prints that message as its last line; the traceback would bury it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ScenarioError):
            record.exc_info, record.exc_text = None, None
        return True


def main() -> None:
    _load_commands()
    for name in ("prefect.flow_runs", "prefect.task_runs"):  # kept when Prefect configures its logging later
        logging.getLogger(name).addFilter(_NoTracebackForOurErrors())
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except SystemExit:
        raise
    except ScenarioError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted; rerun with the same --run-id to resume")
        sys.exit(130)
    except Exception as exc:  # Typer's (vendored click) usage errors arrive here in standalone_mode=False
        prefect_errors = sys.modules.get("prefect.exceptions")  # imported only by a command that started a flow
        if prefect_errors is not None and isinstance(exc, prefect_errors.ParameterTypeError):
            from scenario_pipeline.flows.param_types import usage_error  # the flow refused a parameter: one line

            err.print(f"[bold red]error:[/] {usage_error(exc)}", highlight=False, soft_wrap=True)
            sys.exit(2)
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            ctx = getattr(exc, "ctx", None)
            hint = getattr(ctx, "command_path", None)
            message = exc.format_message()
            if not message and ctx is not None and hasattr(ctx.command, "list_commands"):  # a group given no command
                message = f"give a command: {hint} {' | '.join(ctx.command.list_commands(ctx))}"
            err.print(
                f"[bold red]error:[/] {message}" + (f" (see `{hint} --help`)" if hint else ""), highlight=False, soft_wrap=True
            )
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
