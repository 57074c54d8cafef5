"""The ``scenario`` command line. Bad input: one line on stderr, exit code 2, nothing written.

Each module of this package adds its commands to ``app``; adding a command group is adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from scenario_pipeline.cli.common import app, err
from scenario_pipeline.errors import ScenarioError


def _load_commands() -> None:
    import scenario_pipeline.cli as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in ("common", "__main__"):
            importlib.import_module(f"{pkg.__name__}.{mod.name}")


def main() -> None:
    _load_commands()
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
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            hint = getattr(getattr(exc, "ctx", None), "command_path", None)
            err.print(f"[bold red]error:[/] {exc.format_message()}" + (f" (see `{hint} --help`)" if hint else ""), highlight=False, soft_wrap=True)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
