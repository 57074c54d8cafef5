"""``scenario server start|stop|status``: the local Prefect server."""

from __future__ import annotations

import json

import typer

from scenario_pipeline.cli.common import app, out

server_app = typer.Typer(no_args_is_help=True, help="The local Prefect server.")
app.add_typer(server_app, name="server")


@server_app.command("start")
def server_start() -> None:
    """Start the local Prefect server in the background (if none is running)."""
    from scenario_pipeline.infra.prefect_server import start  # lazy (cli/__init__.py): 117 ms

    st = start()
    out.print(f"Prefect server running: API {st.api_url}, UI {st.ui_url}" + (f", pid {st.pid}" if st.pid else ""))


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local Prefect server this tool started."""
    from scenario_pipeline.infra.prefect_server import stop  # lazy (cli/__init__.py): 117 ms

    out.print("stopped" if stop() else "no local server started by this tool is running")


@server_app.command("status")
def server_status(as_json: bool = typer.Option(False, "--json")) -> None:
    """Whether the Prefect API answers."""
    from scenario_pipeline.infra.prefect_server import status  # lazy (cli/__init__.py): 117 ms

    st = status()
    if as_json:
        print(json.dumps({"api_url": st.api_url, "healthy": st.healthy, "pid": st.pid, "managed": st.managed}))
    else:
        out.print(f"{st.api_url}: {'up' if st.healthy else 'down'}" + (f" (pid {st.pid})" if st.pid else ""))
    if not st.healthy:
        raise typer.Exit(1)
