"""What Redshift accepts: a checker for the SQL text the back ends issue.

Redshift speaks PostgreSQL 8.0's wire protocol but not its whole dialect; the PostgreSQL the tests
run accepts much that Redshift refuses (or, worse, silently changes: TEXT becomes VARCHAR(256)).
Each rule names the construct and what to write instead. String literals are ignored.
"""

from __future__ import annotations

import re

RULES: list[tuple[str, str]] = [
    (r"\bON\s+CONFLICT\b", "ON CONFLICT (upsert) is PostgreSQL-only: DELETE then INSERT in one transaction"),
    (r"\bRETURNING\b", "RETURNING is not supported: read the rows back with SELECT"),
    (r"\b(?:BIG|SMALL)?SERIAL\b", "SERIAL types do not exist: use IDENTITY(seed, step) or ids made by the client"),
    (r"\bJSONB?\b", "JSON/JSONB column types do not exist: store JSON text in VARCHAR (or SUPER)"),
    (r"\w\s*\[\s*\]|\bARRAY\s*\[", "arrays do not exist: one row per element, or JSON text"),
    (r"\bUUID\b", "the UUID type does not exist: VARCHAR(36)"),
    (r"\bTEXT\b", "TEXT silently becomes VARCHAR(256) in Redshift: write VARCHAR(n)"),
    (r"\bBYTEA\b|\bBLOB\b", "binary column types do not exist: VARBYTE or hex text"),
    (r"\bDOUBLE\b(?!\s+PRECISION)", "bare DOUBLE is DuckDB's spelling: DOUBLE PRECISION"),
    (r"\b(?:HUGEINT|UBIGINT|UINTEGER|USMALLINT|UTINYINT|STRUCT|ENUM)\b", "DuckDB/PostgreSQL-only type"),
    (r"\bCREATE\s+(?:UNIQUE\s+)?INDEX\b", "Redshift has no indexes: sort and distribution keys instead"),
    (r"\bADD\s+COLUMN\s+IF\s+NOT\s+EXISTS\b", "ADD COLUMN IF NOT EXISTS is not supported: versioned migrations instead"),
    (r"\bCREATE\s+OR\s+REPLACE\s+TABLE\b", "CREATE OR REPLACE TABLE is DuckDB-only"),
    (r"\bINSERT\s+OR\s+(?:REPLACE|IGNORE)\b|\bUPSERT\b", "INSERT OR REPLACE / UPSERT are not SQL Redshift knows"),
    (r"\bSTRING_AGG\s*\(|\bARRAY_AGG\s*\(", "use LISTAGG(...) WITHIN GROUP (ORDER BY ...)"),
    (r"\bGENERATE_SERIES\s*\(", "generate_series runs on the leader node only and cannot feed a table"),
    (r"\bDISTINCT\s+ON\b", "DISTINCT ON is PostgreSQL-only: ROW_NUMBER() OVER (...) = 1"),
    (r"\bFILTER\s*\(\s*WHERE\b", "aggregate FILTER (WHERE ...) is not supported: SUM(CASE WHEN ... END)"),
    (r"\bNOW\s*\(\s*\)", "NOW() is not supported on compute nodes: pass the time as a parameter or use GETDATE()"),
    (r"\bFROM\s+STDIN\b", "COPY FROM STDIN is not supported: COPY from S3"),
    (r"\bGENERATED\s+ALWAYS\b", "GENERATED ALWAYS is not supported"),
]
_COMPILED = [(re.compile(p, re.IGNORECASE), why) for p, why in RULES]
_LITERAL = re.compile(r"'(?:[^']|'')*'")


def violations(sql: str) -> list[str]:
    """The rules this statement breaks, as messages; empty when Redshift accepts its shape."""
    text = _LITERAL.sub("''", sql)
    return [f"{why}: {m.group(0)!r}" for rx, why in _COMPILED if (m := rx.search(text))]
