"""Business-rule checks of a generated partition before it is published."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from scenario_pipeline.datasets.spec import TableSpec
from scenario_pipeline.errors import ValidationFailed


def rule_violations(tbl: pa.Table, tspec: TableSpec) -> list[str]:
    """One readable line per broken rule: which rule, which column, how many rows."""
    problems: list[str] = []
    n = tbl.num_rows
    for col in tspec.columns:
        rules = col.effective_rules()
        arr = tbl.column(col.name)
        if isinstance(arr.type, pa.DictionaryType):
            arr = arr.cast(arr.type.value_type)
        nulls = arr.null_count
        if n and nulls / n > rules.max_null_rate + 0.01 + 3 * (rules.max_null_rate / max(n, 1)) ** 0.5:
            problems.append(f"{col.name}: null rate {nulls / n:.4f} above {rules.max_null_rate} ({nulls} of {n} rows)")
        if rules.min is not None:
            bad = pc.sum(pc.less(arr, rules.min)).as_py() or 0
            if bad:
                problems.append(f"{col.name}: {bad} of {n} rows below minimum {rules.min}")
        if rules.max is not None:
            bad = pc.sum(pc.greater(arr, rules.max)).as_py() or 0
            if bad:
                problems.append(f"{col.name}: {bad} of {n} rows above maximum {rules.max}")
        if rules.allowed is not None:
            bad = pc.sum(pc.invert(pc.is_in(arr.drop_null(), pa.array(rules.allowed)))).as_py() or 0
            if bad:
                problems.append(f"{col.name}: {bad} of {n} rows outside the allowed values")
        if rules.pattern is not None:
            re.compile(rules.pattern)
            bad = pc.sum(pc.invert(pc.match_substring_regex(arr.drop_null(), rules.pattern))).as_py() or 0
            if bad:
                problems.append(f"{col.name}: {bad} of {n} rows do not match /{rules.pattern}/")
        if rules.unique:
            distinct = pc.count_distinct(arr).as_py()
            if distinct != n - nulls:
                problems.append(f"{col.name}: {n - nulls - distinct} duplicate values in {n} rows")
    return problems


def validate_partition(tbl: pa.Table, tspec: TableSpec, partition: int) -> None:
    problems = rule_violations(tbl, tspec)
    if problems:
        raise ValidationFailed(f"partition {partition} of table {tspec.name} broke its rules and was not published:\n  " + "\n  ".join(problems))
