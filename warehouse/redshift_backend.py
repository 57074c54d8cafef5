"""Amazon Redshift through redshift_connector, chosen by ``redshift://user@host:5439/db``.

Secrets never travel in the URL or on a command line: the password comes from
``SCENARIO_REDSHIFT_PASSWORD``, or from the Prefect Secret block named by
``SCENARIO_REDSHIFT_PASSWORD_BLOCK``; with ``?iam=true`` the driver gets temporary credentials
from the standard AWS chain instead. Non-secret driver options may ride in the URL query
(``ssl``, ``sslmode``, ``timeout``, ``iam``, ``cluster_identifier``, ``region``, ``db_user``,
``profile``, ``is_serverless``, ``serverless_work_group``, ``serverless_acct_id``).

Rows go in as multi-row ``INSERT ... VALUES`` with bound parameters, a few thousand rows per
statement (the driver's executemany is a round trip per row). Large case loads from S3
checkpoints use ``COPY ... FORMAT AS PARQUET`` instead (warehouse/redshift_copy.py).
Every statement this back end issues is kept in ``statements``; tests check each one against
what Redshift accepts (warehouse/redshift_rules.py).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlparse

import pyarrow as pa

from scenario_pipeline.errors import UsageError, WarehouseError
from scenario_pipeline.settings import RedshiftSettings
from scenario_pipeline.warehouse.redshift_copy import copy_statement
from scenario_pipeline.warehouse.schema import CASE_COLUMNS
from scenario_pipeline.warehouse.sql_warehouse import SqlWarehouse

MAX_BIND_PARAMS = 32767  # redshift_connector refuses statements with more bound parameters
MAX_STATEMENT_BYTES = 8 << 20  # well under Redshift's 16 MB statement limit
URL_OPTIONS = {
    "ssl",
    "sslmode",
    "timeout",
    "iam",
    "cluster_identifier",
    "region",
    "db_user",
    "profile",
    "is_serverless",
    "serverless_work_group",
    "serverless_acct_id",
}


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"warehouse URL option must be true or false, got {value!r}")


def parse_url(url: str) -> dict[str, Any]:
    """redshift_connector.connect arguments from the URL alone (no secret); every problem is a UsageError.

    Checked before any work (flows/params.py), so a bad URL never becomes a flow run's parameter.
    """
    p = urlparse(url)
    if p.password is not None:  # secrets - name the problem, never echo the value
        raise UsageError(
            "the Redshift URL carries a password; remove it and set SCENARIO_REDSHIFT_PASSWORD "
            "(or SCENARIO_REDSHIFT_PASSWORD_BLOCK, the name of a Prefect Secret block), or add ?iam=true"
        )
    try:
        port = p.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise UsageError("the Redshift URL's port must be a number from 1 to 65535, as in redshift://user@host:5439/db")
    if not p.hostname or not p.username or not p.path.strip("/"):
        raise UsageError(
            f"Redshift URL {p.scheme}://{p.hostname or ''}{p.path} needs a user, a host and a database: redshift://user@host:5439/db"
        )
    query = {k: v[-1] for k, v in parse_qs(p.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - URL_OPTIONS)
    if unknown:
        raise UsageError(
            f"Redshift URL option(s) {unknown} are not known; allowed: {sorted(URL_OPTIONS)} (secrets go in the environment)"
        )
    kw: dict[str, Any] = {
        "host": p.hostname,
        "port": port or 5439,
        "database": unquote(p.path.strip("/")),
        "user": unquote(p.username),
        "application_name": "scenario-pipeline",
        "timeout": 30,
    }
    for key, value in query.items():
        if key in ("ssl", "iam", "is_serverless"):
            kw[key] = _flag(value)
        elif key == "timeout":
            if not value.isdigit() or int(value) <= 0:
                raise UsageError(f"Redshift URL option timeout must be a positive whole number of seconds, got {value!r}")
            kw[key] = int(value)
        else:
            kw[key] = value
    if kw.get("iam"):
        kw["db_user"] = kw.get("db_user", kw["user"])
    return kw


def has_credential(url: str, settings: RedshiftSettings | None = None) -> bool:
    """A password, a Secret block or IAM is configured for this URL (none of them read here)."""
    settings = settings or RedshiftSettings()
    return bool(parse_url(url).get("iam") or settings.password is not None or settings.password_block)


def connect_kwargs(url: str, settings: RedshiftSettings | None = None) -> dict[str, Any]:
    """redshift_connector.connect arguments for a URL plus the environment; checks the URL first."""
    settings = settings or RedshiftSettings()
    kw = parse_url(url)
    if kw.get("iam"):
        return kw
    kw["password"] = _password(settings)
    return kw


def probe(url: str, settings: RedshiftSettings | None = None) -> None:
    """Connect and disconnect (no migration, nothing written); a WarehouseError says why not."""
    RedshiftWarehouse(url, settings, migrate=False).close()


def _password(settings: RedshiftSettings) -> str:
    if settings.password is not None:
        return settings.password.get_secret_value()
    if settings.password_block:
        from prefect.blocks.system import Secret  # lazy: Prefect (0.65 s) only when a Secret block holds the password

        try:
            secret = cast(Secret, Secret.load(settings.password_block))  # a sync caller: the block, not a coroutine
            return str(secret.get())
        except Exception as exc:  # noqa: BLE001 - a missing block or an unreachable API, told plainly
            raise WarehouseError(
                f"cannot read the Prefect Secret block {settings.password_block!r} for the Redshift password: "
                f"{type(exc).__name__}"
            ) from exc
    return ""  # trust or IAM-less local setups; Redshift itself will refuse an empty password


class RedshiftWarehouse(SqlWarehouse):
    dialect = "redshift"

    def __init__(self, url: str, settings: RedshiftSettings | None = None, migrate: bool = True) -> None:
        import redshift_connector  # lazy: 0.1-0.16 s that a DuckDB warehouse never needs

        self.url = url
        self.settings = settings or RedshiftSettings()
        self.statements: deque[str] = deque(maxlen=10_000)
        kw = connect_kwargs(url, self.settings)
        self._secret = kw.get("password") or None
        self._where = f"{kw['host']}:{kw['port']}/{kw['database']}"
        self._driver_errors = (redshift_connector.Error, OSError)
        try:
            self.con = redshift_connector.connect(**kw)
        except self._driver_errors as exc:
            hint = (
                ""
                if self._secret or kw.get("iam")
                else " (no password set: SCENARIO_REDSHIFT_PASSWORD, SCENARIO_REDSHIFT_PASSWORD_BLOCK or ?iam=true)"
            )
            raise WarehouseError(f"cannot reach the Redshift warehouse at {self._where}: {self._clean(exc)}{hint}") from exc
        self.con.autocommit = False
        self.cur = self.con.cursor()
        self.cur.paramstyle = "qmark"  # the same `?` SQL as DuckDB
        if not migrate:
            return
        try:
            self.migrate()
        except BaseException:
            self.close()
            raise

    def _clean(self, exc: BaseException) -> str:
        """The driver error's text without the password; the error itself (kept as the WarehouseError's
        cause, so in every traceback Prefect logs) is scrubbed too."""
        if self._secret:
            _scrub(exc, self._secret)  # secrets
        text = f"{type(exc).__name__}: {exc}"
        if self._secret:
            text = text.replace(self._secret, "***")
        return text[:800]

    def _execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        self.statements.append(sql)
        try:
            self.cur.execute(sql, list(params) if params else None)
        except self._driver_errors as exc:
            raise WarehouseError(
                f"Redshift warehouse {self._where} rejected a statement ({sql.split()[0]} ...): {self._clean(exc)}"
            ) from exc

    def _fetch(self, sql: str, params: Sequence[Any] | None = None) -> tuple[list[str], list[tuple]]:
        self._execute(sql, params)
        names = [d[0] for d in self.cur.description or []]
        return names, [tuple(r) for r in self.cur.fetchall()]

    def _insert_rows(self, table: str, columns: list[str], rows: list[tuple]) -> None:
        if not rows:
            return
        per_stmt = max(1, min(self.settings.batch_rows, MAX_BIND_PARAMS // len(columns)))
        head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        tuple_sql = "(" + ", ".join("?" * len(columns)) + ")"
        lo = 0
        while lo < len(rows):
            hi, size = lo, 0
            while hi < len(rows) and hi - lo < per_stmt and size < MAX_STATEMENT_BYTES:
                size += sum(len(v) if isinstance(v, str) else 8 for v in rows[hi])
                hi += 1
            chunk = rows[lo:hi]
            self._execute(head + ", ".join([tuple_sql] * len(chunk)), [v for r in chunk for v in r])
            lo = hi

    def _load_cases(self, cases: pa.Table, copy_manifest: str | None) -> None:
        if copy_manifest and self.settings.iam_role:
            # The checkpoint files already hold exactly these rows, in case_results' column order.
            self._execute(copy_statement("case_results", copy_manifest, self.settings.iam_role))
            return
        self._insert_arrow("case_results", CASE_COLUMNS, cases)

    def _end_read(self) -> None:
        self._commit()

    def _lock_migrations(self) -> None:
        self._execute("LOCK schema_migrations")

    def _begin(self) -> None:
        # redshift_connector opens a transaction by itself on the first statement (autocommit off).
        self.statements.append("BEGIN")

    def _commit(self) -> None:
        self.statements.append("COMMIT")
        try:
            self.con.commit()
        except self._driver_errors as exc:
            raise WarehouseError(f"Redshift warehouse {self._where} refused to commit: {self._clean(exc)}") from exc

    def _rollback(self) -> None:
        self.statements.append("ROLLBACK")
        with contextlib.suppress(*self._driver_errors):  # the connection is gone; the server rolls back by itself
            self.con.rollback()

    def close(self) -> None:
        with contextlib.suppress(*self._driver_errors):
            self.con.close()


def _scrub(exc: BaseException, secret: str) -> None:
    """Secrets: replace ``secret`` in the args of ``exc`` and of every exception it chains to or
    holds, so that neither its text, its repr nor a traceback of the chain can show it."""

    def clean(v: Any, depth: int = 0) -> Any:
        if isinstance(v, str):
            return v.replace(secret, "***")
        if isinstance(v, bytes):
            return v.replace(secret.encode(), b"***")
        if isinstance(v, (tuple, list)) and depth < 4:
            return type(v)(clean(x, depth + 1) for x in v)
        if isinstance(v, dict) and depth < 4:  # the driver's server errors are dicts of fields
            return {k: clean(x, depth + 1) for k, x in v.items()}
        if isinstance(v, BaseException) and depth < 4:
            seen_exc(v)
        return v

    seen: set[int] = set()

    def seen_exc(e: BaseException) -> None:
        if id(e) in seen:
            return
        seen.add(id(e))
        with contextlib.suppress(AttributeError, TypeError):
            e.args = tuple(clean(a) for a in e.args)
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None:
                seen_exc(nxt)

    seen_exc(exc)
