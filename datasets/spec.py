"""Declarative dataset specs. A spec fixes every value of every record; its hash names its version."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scenario_pipeline.errors import UsageError

MAX_RECORDS = 10**12


class Rules(BaseModel):
    """Business rules a column obeys; they become the Great Expectations suite."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    pattern: str | None = None
    unique: bool = False
    max_null_rate: float = 0.0


class _Column(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    null_rate: float = Field(0.0, ge=0.0, le=1.0)
    rules: Rules | None = None  # None: derived from the generator's own parameters

    def effective_rules(self) -> Rules:
        return self.rules or self.default_rules()

    def default_rules(self) -> Rules:
        return Rules(max_null_rate=self.null_rate)


class RecordIdColumn(_Column):
    kind: Literal["record_id"] = "record_id"

    def default_rules(self) -> Rules:
        return Rules(min=0, unique=True)


class IntColumn(_Column):
    kind: Literal["int"] = "int"
    low: int = 0
    high: int = 1000  # exclusive
    bits: Literal[32, 64] = 64

    def default_rules(self) -> Rules:
        return Rules(min=self.low, max=self.high - 1, max_null_rate=self.null_rate)


class FloatColumn(_Column):
    kind: Literal["float"] = "float"
    low: float = 0.0
    high: float = 1.0
    decimals: int | None = 2

    def default_rules(self) -> Rules:
        return Rules(min=self.low, max=self.high, max_null_rate=self.null_rate)


class TimestampColumn(_Column):
    """Event time rising with the record id (as in an append-only event log), plus jitter."""

    kind: Literal["timestamp"] = "timestamp"
    start: str = "2026-01-01T00:00:00"
    span_days: float = 365.0


class CategoryColumn(_Column):
    kind: Literal["category"] = "category"
    values: tuple[str, ...]
    weights: tuple[float, ...] | None = None

    @model_validator(mode="after")
    def _check(self) -> "CategoryColumn":
        if self.weights is not None and len(self.weights) != len(self.values):
            raise ValueError(f"column {self.name}: {len(self.weights)} weights for {len(self.values)} values")
        return self

    def default_rules(self) -> Rules:
        return Rules(allowed=self.values, max_null_rate=self.null_rate)


class WordColumn(_Column):
    """A short text token from a fixed vocabulary of pronounceable words."""

    kind: Literal["word"] = "word"
    vocabulary: int = 1024

    def default_rules(self) -> Rules:
        # Planted tokens (needles) follow their own pattern, so the rule admits both.
        return Rules(pattern=r"^([a-z]{4,12}|zq[0-9a-f]{16})$", max_null_rate=self.null_rate)


ColumnSpec = Annotated[
    Union[RecordIdColumn, IntColumn, FloatColumn, TimestampColumn, CategoryColumn, WordColumn],
    Field(discriminator="kind"),
]


class TableSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    columns: tuple[ColumnSpec, ...]
    bloom_columns: tuple[str, ...] = ()  # columns that get Parquet Bloom filters per row group

    def column(self, name: str) -> ColumnSpec:
        for col in self.columns:
            if col.name == name:
                return col
        raise UsageError(f"table {self.name} has no column {name!r}")


class NeedleFeature(BaseModel):
    """Groups of needle records; every record of group g carries a token only group g has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["needles"] = "needles"
    table: str
    column: str
    groups: int = Field(1000, ge=1)
    min_per_group: int = Field(1, ge=1)
    max_per_group: int = Field(5, ge=1)


FeatureSpec = Annotated[Union[NeedleFeature], Field(discriminator="kind")]


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
    def _check(self) -> "DatasetSpec":
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

    # -- identity -----------------------------------------------------------------------
    def values_hash(self) -> str:
        """Hash of what the values are: everything but the physical layout."""
        body = self.model_dump(mode="json", exclude={"partition_rows", "row_group_rows"})
        return _digest(body)

    def spec_hash(self) -> str:
        """Hash of the whole spec, layout included: names the dataset's folder."""
        return _digest(self.model_dump(mode="json"))

    # -- layout -------------------------------------------------------------------------
    @property
    def partitions(self) -> int:
        return -(-self.records // self.partition_rows)

    def partition_bounds(self, p: int) -> tuple[int, int]:
        """Record ids [start, stop) of partition p."""
        if not 0 <= p < self.partitions:
            raise UsageError(f"partition {p} is out of range 0..{self.partitions - 1}")
        start = p * self.partition_rows
        return start, min(start + self.partition_rows, self.records)

    def table(self, name: str) -> TableSpec:
        for t in self.tables:
            if t.name == name:
                return t
        raise UsageError(f"dataset {self.name} has no table {name!r}")

    def features_of(self, kind: str) -> list[FeatureSpec]:
        return [f for f in self.features if f.kind == kind]


def _digest(body: object) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
