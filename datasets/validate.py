"""Business-rule checks of a generated partition, before anything of it is written.

Two layers (docs/datasets.md, "Validation"):

1. Every row, exactly, for free: the Parquet footer's min / max / null count of every column
   and the dictionary of every dictionary column are compared with the column's rules.
2. Great Expectations: the rules become an expectation suite, run on ``GX_SAMPLE_ROWS`` evenly
   spaced rows of the partition (all rows of a smaller one), on every partition of a dataset of
   up to ``GX_MAX_PARTITIONS`` partitions and on an even spread of that many above it.

A broken rule found by either layer is counted exactly over the whole partition and fails it
with a report: which rule, which column, how many rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scenario_pipeline.datasets.columns import effective_rules
from scenario_pipeline.datasets.gx_suite import gx_failures
from scenario_pipeline.datasets.spec import ColumnSpec, DatasetSpec, Rules, TableSpec, null_allowance
from scenario_pipeline.errors import ValidationFailed

GX_SAMPLE_ROWS = 16_384
GX_MAX_PARTITIONS = 64


@dataclass(frozen=True)
class Violation:
    rule: str  # e.g. "max <= 20", "in allowed set", "matches /.../", "unique", "null rate <= 0.05"
    column: str
    rows: int  # rows that break it (exact, over the partition)
    of: int  # rows checked
    found_by: str  # "footer statistics", "dictionary", "great expectations: <what it saw in the sample>", "full scan"
    example: Any = None

    def line(self) -> str:
        ex = f"; e.g. {self.example!r}" if self.example is not None else ""
        return f"rule '{self.rule}' on column {self.column}: {self.rows:,} of {self.of:,} rows break it (found by {self.found_by}){ex}"


def gx_partition(spec: DatasetSpec, table: str, p: int) -> bool:
    """Whether partition p gets the Great Expectations check: all of them up to
    ``GX_MAX_PARTITIONS`` partitions, else every k-th (an even spread) and the last."""
    n = spec.partitions_of(table)
    if n <= GX_MAX_PARTITIONS:
        return True
    stride = math.ceil(n / GX_MAX_PARTITIONS)
    return p % stride == 0 or p == n - 1


# -- layer 1: statistics -------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _number(v: object) -> float | None:
    if v is None or isinstance(v, str):
        return None
    if isinstance(v, datetime):  # timestamps are checked in whole microseconds
        return ((v if v.tzinfo else v.replace(tzinfo=UTC)) - _EPOCH) // timedelta(microseconds=1)
    return float(v)  # type: ignore[arg-type]


def stats_suspects(tspec: TableSpec, footer: Any, dictionaries: dict[str, list[pa.Array]]) -> set[tuple[str, str]]:
    """(column, rule) pairs the footer statistics (``partition.Footer``) or the dictionaries say are broken."""
    suspects: set[tuple[str, str]] = set()
    lo = {c: _number(v) for c, v in footer.lo.items()}
    hi = {c: _number(v) for c, v in footer.hi.items()}
    nulls = footer.nulls
    for col in tspec.columns:
        r = effective_rules(col)
        low, high = lo.get(col.name), hi.get(col.name)
        if r.min is not None and low is not None and low < r.min:
            suspects.add((col.name, "min"))
        if r.max is not None and high is not None and high > r.max:
            suspects.add((col.name, "max"))
        if nulls.get(col.name, 0) > null_allowance(r.max_null_rate, footer.rows):
            suspects.add((col.name, "nulls"))
        for d in dictionaries.get(col.name, []):
            if r.allowed is not None and not _all_pass(d, "allowed", r.allowed):
                suspects.add((col.name, "allowed"))
            if r.pattern is not None and not _all_pass(d, "pattern", r.pattern):
                suspects.add((col.name, "pattern"))
    return suspects


# Dictionary values already found to obey a rule, per process: a partition's dictionary is
# mostly the same vocabulary as the last one's, plus a few planted values.
_PASSED: dict[tuple[str, Any], set[str]] = {}


def _all_pass(d: pa.Array, rule: str, arg: Any) -> bool:
    known = _PASSED.setdefault((rule, arg), set())
    new = [v for v in d.to_pylist() if v is not None and v not in known]
    if not new:
        return True
    ok = pc.is_in(pa.array(new), pa.array(arg)) if rule == "allowed" else pc.match_substring_regex(pa.array(new), arg)
    passed = [v for v, good in zip(new, ok.to_pylist(), strict=True) if good]
    if len(known) + len(passed) > 1_000_000:
        known.clear()
    known.update(passed)
    return len(passed) == len(new)


# -- exact counts --------------------------------------------------------------------------


def _rule_text(rule: str, r: Rules) -> str:
    return {
        "min": f">= {r.min:g}" if r.min is not None else "",
        "max": f"<= {r.max:g}" if r.max is not None else "",
        "nulls": f"null rate <= {r.max_null_rate:g}",
        "allowed": f"in {{{', '.join(r.allowed or ())}}}",
        "pattern": f"matches /{r.pattern}/",
        "unique": "unique",
    }[rule]


def _comparable(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(arr.type):
        return arr.cast(arr.type.value_type)
    if pa.types.is_timestamp(arr.type):
        return arr.cast(pa.int64())  # rules hold microseconds
    return arr


def count_violation(tbl: pa.Table, col: ColumnSpec, rule: str) -> tuple[int, Any]:
    """Rows of ``tbl`` that break ``rule`` of ``col``, and one offending value."""
    r = effective_rules(col)
    arr = _comparable(tbl.column(col.name))
    n = tbl.num_rows
    if rule == "nulls":
        bad = arr.null_count
        return (bad if bad > null_allowance(r.max_null_rate, n) else 0), None
    if rule == "unique":
        valid = arr.drop_null()
        return len(valid) - pc.count_distinct(valid).as_py(), None
    if rule == "min":
        mask = pc.less(arr, r.min)
    elif rule == "max":
        mask = pc.greater(arr, r.max)
    elif rule == "allowed":
        mask = pc.invert(pc.is_in(arr, pa.array(r.allowed)))
    elif rule == "pattern":
        mask = pc.invert(pc.match_substring_regex(arr, r.pattern))
    else:
        raise ValueError(rule)
    mask = pc.fill_null(mask, False)
    bad = pc.sum(mask).as_py() or 0
    example = pc.filter(arr, mask).slice(0, 1).to_pylist()[0] if bad else None
    return bad, example


# -- the check -----------------------------------------------------------------------------


def check_partition(spec: DatasetSpec, table: str, p: int, enc: Any, footer: Any) -> str:
    """Validate an encoded partition (``partition.Encoded``, its ``partition.Footer``); raise
    ``ValidationFailed`` with the report, or return the label of the checks it passed."""
    tspec = spec.table(table)
    found: dict[tuple[str, str], str] = {}
    for c, r in stats_suspects(tspec, footer, enc.dictionaries):
        found[(c, r)] = "footer statistics" if r in ("min", "max", "nulls") else "dictionary"
    label = "footer statistics + dictionaries"
    if enc.sample is not None:
        for (c, r), seen in gx_failures(enc.sample, tspec).items():
            for rule in ("min", "max") if r == "range" else (r,):
                if (c, rule) in found or not _applies(effective_rules(tspec.column(c)), rule):
                    continue
                found[(c, rule)] = f"great expectations: {seen}"
        label += f" + great expectations ({enc.sample.num_rows:,} sampled rows)"
    if not found:
        return label
    whole = pq.read_table(pa.BufferReader(enc.buffer()), columns=sorted({c for c, _ in found}))
    violations = []
    for (column, rule), found_by in sorted(found.items()):
        col = tspec.column(column)
        bad, example = count_violation(whole, col, rule)
        if bad == 0 and found_by.startswith("great") and "raised" not in found_by:
            continue  # the other bound of a failed range expectation
        violations.append(Violation(_rule_text(rule, effective_rules(col)), column, bad, whole.num_rows, found_by, example))
    if not violations:
        return label
    raise ValidationFailed(report(spec, table, p, violations))


def _applies(r: Rules, rule: str) -> bool:
    return rule not in ("min", "max") or (r.min if rule == "min" else r.max) is not None


def report(spec: DatasetSpec, table: str, p: int, violations: list[Violation]) -> str:
    lines = "\n  ".join(v.line() for v in violations)
    return (
        f"partition {p} of {spec.name}.{table} broke {len(violations)} rule(s) and was not published:\n  {lines}\n"
        f"Fix the column's generator or its rules in the dataset spec, then generate again."
    )
