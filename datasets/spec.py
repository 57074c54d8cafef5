"""Declarative dataset specs. A spec fixes every value of every record; its hash names its version.

Columns and planted features are open sets: a column ``kind`` names a generator registered in
``datasets/columns.py`` (or any module that registers one), a feature ``kind`` names a planter
registered in ``datasets/features/``. Their parameters live in ``params``.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from scenario_pipeline.errors import UsageError

MAX_RECORDS = 10**12
# Bumped whenever the same spec would generate different values; part of both hashes, so data
# of an older generator never passes for the current one.
GENERATOR_VERSION = 3  # 3: params in canonical key order (see _canonical)


def _canonical(value: Any) -> Any:
    """Dicts with their keys sorted, all the way down.

    The spec is stored and hashed as sorted JSON, and generators walk params in iteration order
    (a mix of labels, for one), so a spec read back from a manifest must iterate exactly like the
    one built in code, or a process holding the reloaded spec would see other values.
    """
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return type(value)(_canonical(v) for v in value)
    return value


Params = Annotated[dict[str, Any], AfterValidator(_canonical)]  # a kind's parameters, in canonical order


class Rules(BaseModel):
    """Business rules a column obeys; they become the Great Expectations suite."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    pattern: str | None = None
    unique: bool = False
    max_null_rate: float = 0.0


def null_allowance(rate: float, n: int) -> int:
    """Most nulls a column with null rate ``rate`` may show in ``n`` rows: the rate plus four
    standard deviations of a binomial count, plus one (generated nulls are random)."""
    if rate <= 0:
        return 0
    return int(n * rate + 4 * math.sqrt(n * rate * (1 - rate)) + 1)


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str
    null_rate: float = Field(0.0, ge=0.0, le=1.0)
    rules: Rules | None = None  # None: the kind's default rules for these params
    params: Params = Field(default_factory=dict)


def column(name: str, kind: str, null_rate: float = 0.0, rules: Rules | None = None, **params: Any) -> ColumnSpec:
    """Shorthand: ``column("amount", "float", low=0, high=1000)``."""
    return ColumnSpec(name=name, kind=kind, null_rate=null_rate, rules=rules, params=params)


class TableSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    columns: tuple[ColumnSpec, ...]
    records: int | None = None  # None: the dataset's record count
    bloom_columns: tuple[str, ...] = ()  # columns that get Parquet Bloom filters per row group

    def column(self, name: str) -> ColumnSpec:
        for col in self.columns:
            if col.name == name:
                return col
        raise UsageError(f"table {self.name} has no column {name!r}")


class FeatureSpec(BaseModel):
    """Something planted in a table, whose truth the oracle enumerates from the spec alone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    table: str
    column: str | None = None
    params: Params = Field(default_factory=dict)


class DatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    seed: int
    records: int
    partition_rows: int = 1_000_000
    row_group_rows: int = 131_072
    tables: tuple[TableSpec, ...]
    features: tuple[FeatureSpec, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> DatasetSpec:
        if self.records <= 0:
            raise ValueError(f"records must be a positive number, got {self.records}")
        if self.records > MAX_RECORDS:
            raise ValueError(f"records must be at most 10^12, got {self.records}")
        if self.partition_rows <= 0:
            raise ValueError(f"partition rows must be a positive number, got {self.partition_rows}")
        if self.partition_rows > self.records:
            raise ValueError(f"partition rows ({self.partition_rows}) cannot exceed records ({self.records})")
        if self.row_group_rows <= 0:
            raise ValueError(f"row group rows must be a positive number, got {self.row_group_rows}")
        return self

    def __hash__(self) -> int:  # params dicts are not hashable; the content hash is
        return hash(self.spec_hash())

    # -- identity -----------------------------------------------------------------------
    def values_hash(self) -> str:
        """Hash of what the values are: everything but the physical layout."""
        return _digest(self.model_dump(mode="json", exclude={"partition_rows", "row_group_rows"}))

    def spec_hash(self) -> str:
        """Hash of the whole spec, layout included: names the dataset's folder."""
        return _digest(self.model_dump(mode="json"))

    # -- layout -------------------------------------------------------------------------
    def table_records(self, table: str) -> int:
        return self.table(table).records or self.records

    def partitions_of(self, table: str) -> int:
        return -(-self.table_records(table) // self.partition_rows)

    @property
    def partitions(self) -> int:
        return self.partitions_of(self.tables[0].name)

    def partition_bounds(self, p: int, table: str | None = None) -> tuple[int, int]:
        """Record ids [start, stop) of partition p of ``table`` (default: the first table)."""
        table = table or self.tables[0].name
        n = self.partitions_of(table)
        if not 0 <= p < n:
            raise UsageError(f"partition {p} of {table} is out of range 0..{n - 1}")
        start = p * self.partition_rows
        return start, min(start + self.partition_rows, self.table_records(table))

    def table(self, name: str) -> TableSpec:
        for t in self.tables:
            if t.name == name:
                return t
        raise UsageError(f"dataset {self.name} has no table {name!r}")

    def features_of(self, kind: str) -> list[FeatureSpec]:
        return [f for f in self.features if f.kind == kind]


def _digest(body: dict[str, Any]) -> str:
    body = {**body, "generator_version": GENERATOR_VERSION}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
