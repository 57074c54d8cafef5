"""Key accounts (S01): per question cell, enterprise accounts whose sales rows are planted.

A cell is a (region, week) pair of the ``sales`` table. Every planted row of cell c sits at a
record id whose timestamp falls inside the cell's week (the timestamp rises with the record id),
carries the cell's region, segment ``enterprise`` (no generated row has it), an account id and an
amount. The rows of a cell are therefore exactly the rows a question about that cell selects.

params: ``cells``; ``accounts_min`` / ``accounts_max`` (accounts per cell); ``rows_min`` /
``rows_max`` (rows per account); ``cents_min`` / ``cents_max`` (one row's amount, log-uniform);
``weeks`` (52). Account a of cell c gets an id of L digits (L drawn in 4-10), unique within
the cell: ``10^(L-1) + (a * 7919 + offset_c) mod 9 * 10^(L-1)``. When two planted rows draw the
same record id, the first in (cell, account, row) order keeps it; totals are summed over the
rows that were kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from scenario_pipeline.datasets.features import register_feature_kind
from scenario_pipeline.datasets.hashing import mix64, stream_key, unit_float
from scenario_pipeline.datasets.spec import DatasetSpec, FeatureSpec

ACCOUNT_STRIDE = 4096  # accounts per cell at most
ID_DIGITS = (4, 10)  # account ids have 4 to 10 digits, so an item costs 5 to 8 tokens
ID_STEP = 7919  # a prime: a -> (a * ID_STEP + offset) mod 9 * 10^(L-1) is one-to-one
MAX_ACCOUNT_ID = 10 ** ID_DIGITS[1] - 1
ENTERPRISE = "enterprise"


@dataclass(frozen=True)
class Cell:
    index: int
    region: str
    week: int
    ts_from: str  # ISO start of the week, inclusive
    ts_to: str  # ISO end of the week, exclusive
    first_id: int  # record ids [first_id, end_id) all fall inside the week
    end_id: int


@dataclass(frozen=True)
class KeyAccounts:
    """Planted rows sorted by record id: their cell, account id and amount in cents."""

    cells: tuple[Cell, ...]
    record_ids: np.ndarray  # int64, sorted, unique
    cell_of: np.ndarray  # int64
    account_of: np.ndarray  # int64
    cents_of: np.ndarray  # int64

    def in_range(self, start: int, stop: int) -> slice:
        lo, hi = np.searchsorted(self.record_ids, [start, stop])
        return slice(int(lo), int(hi))

    def rows_of_cell(self, c: int) -> np.ndarray:
        """Positions (into the arrays) of cell c's rows, in record-id order."""
        return np.flatnonzero(self.cell_of == c)

    def totals_of_cell(self, c: int) -> dict[int, int]:
        """Account id -> total cents over the cell's kept rows."""
        rows = self.rows_of_cell(c)
        accounts, inverse = np.unique(self.account_of[rows], return_inverse=True)
        sums = np.zeros(len(accounts), dtype=np.int64)
        np.add.at(sums, inverse, self.cents_of[rows])
        return {int(a): int(s) for a, s in zip(accounts, sums, strict=True)}


def _base_offset(ids: np.ndarray, step: float) -> np.ndarray:
    """The timestamp kind's offset of each id from the start (before jitter, in [0, floor(step))), in microseconds."""
    return (ids.astype(np.float64) * step).astype(np.int64)


def _first_id(offset: int, step: float, records: int, slack: int) -> int:
    """The smallest id whose offset + slack reaches ``offset`` (records when none does)."""
    x = max(0, int(offset / step) - 2)
    while x < records and int(_base_offset(np.array([x], dtype=np.uint64), step)[0]) + slack < offset:
        x += 1
    return min(x, records)


def week_ids(spec: DatasetSpec, table: str, week: int) -> tuple[int, int, datetime, datetime]:
    """Record ids [first, end) whose timestamp is inside ``week`` whatever its jitter, and the week."""
    ts = spec.table(table).column("ts").params
    records = spec.table_records(table)
    start = datetime.fromisoformat(ts.get("start", "2026-01-01T00:00:00")).replace(tzinfo=UTC)
    step = int(ts.get("span_days", 365.0) * 86_400_000_000) / max(records, 1)  # as the timestamp kind computes it
    jitter = max(1, int(step))
    lo_off, hi_off = week * 7 * 86_400_000_000, (week + 1) * 7 * 86_400_000_000
    first = _first_id(lo_off, step, records, 0)
    end = _first_id(hi_off, step, records, jitter - 1)  # ids below end: offset + jitter - 1 < hi_off
    return first, max(first, end), start + timedelta(weeks=week), start + timedelta(weeks=week + 1)


def _cells(spec: DatasetSpec, feature: FeatureSpec) -> tuple[Cell, ...]:
    regions = tuple(spec.table(feature.table).column("region").params["values"])
    weeks = feature.params.get("weeks", 52)
    shift = stream_key(spec.seed, "key-accounts-region-shift") % len(regions)
    out = []
    for c in range(feature.params["cells"]):
        week = c % weeks
        region = regions[(c // weeks + week + shift) % len(regions)]  # (week, region) distinct for c < weeks * regions
        first, end, t0, t1 = week_ids(spec, feature.table, week)
        out.append(Cell(c, region, week, t0.strftime("%Y-%m-%dT%H:%M:%S"), t1.strftime("%Y-%m-%dT%H:%M:%S"), first, end))
    return tuple(out)


@register_feature_kind("key_accounts")
class KeyAccountsKind:
    def truth(self, spec: DatasetSpec, feature: FeatureSpec) -> KeyAccounts:
        p = feature.params
        cells = _cells(spec, feature)
        n_cells = len(cells)
        if n_cells > len(spec.table(feature.table).column("region").params["values"]) * p.get("weeks", 52):
            raise ValueError("more key-account cells than (region, week) pairs")
        key = lambda *parts: stream_key(spec.seed, "key-accounts", feature.table, *parts)  # noqa: E731
        c_idx = np.arange(n_cells, dtype=np.uint64)
        a_lo, a_hi = p["accounts_min"], p["accounts_max"]
        accounts = a_lo + (mix64(c_idx, key("accounts")) % np.uint64(a_hi - a_lo + 1)).astype(np.int64)
        cell_of_acct = np.repeat(np.arange(n_cells, dtype=np.int64), accounts)
        acct_in_cell = np.concatenate([np.arange(a) for a in accounts]).astype(np.int64) if n_cells else np.zeros(0, np.int64)
        acct_key = (cell_of_acct * ACCOUNT_STRIDE + acct_in_cell).astype(np.uint64)
        r_lo, r_hi = p["rows_min"], p["rows_max"]
        rows = r_lo + (mix64(acct_key, key("rows")) % np.uint64(r_hi - r_lo + 1)).astype(np.int64)
        cell_of = np.repeat(cell_of_acct, rows)
        acct_of = np.repeat(acct_key.astype(np.int64), rows)
        slot = np.concatenate([np.arange(r) for r in rows]).astype(np.int64) if len(rows) else np.zeros(0, np.int64)
        draw = (acct_of * 64 + slot).astype(np.uint64)
        lo_c, hi_c = np.log(p["cents_min"]), np.log(p["cents_max"])
        cents = np.floor(np.exp(lo_c + unit_float(mix64(draw, key("cents"))) * (hi_c - lo_c))).astype(np.int64)
        first = np.array([c.first_id for c in cells], dtype=np.int64)
        width = np.array([c.end_id - c.first_id for c in cells], dtype=np.int64)
        if len(width) and width.min() <= 0:
            raise ValueError("a key-account week holds no record ids; use more records")
        ids = first[cell_of] + (mix64(draw, key("position")) % width[cell_of].astype(np.uint64)).astype(np.int64)
        unique_ids, keep = np.unique(ids, return_index=True)  # first in (cell, account, row) order wins
        account_id = np.repeat(_account_ids(acct_key, key), rows)
        return KeyAccounts(cells, unique_ids, cell_of[keep], account_id[keep], cents[keep])

    def plant(
        self, tbl: pa.Table, spec: DatasetSpec, feature: FeatureSpec, truth: KeyAccounts, start: int, stop: int
    ) -> pa.Table:
        sl = truth.in_range(start, stop)
        pos = truth.record_ids[sl] - start
        if len(pos) == 0:
            return tbl
        regions = list(spec.table(feature.table).column("region").params["values"])
        region_idx = np.array([regions.index(c.region) for c in truth.cells], dtype=np.int64)[truth.cell_of[sl]]
        tbl = _set_dictionary_indices(tbl, "region", pos, region_idx)
        segments = list(spec.table(feature.table).column("segment").params["values"])
        tbl = _set_dictionary_indices(tbl, "segment", pos, np.full(len(pos), segments.index(ENTERPRISE)))
        tbl = _set_values(tbl, "customer_id", pos, truth.account_of[sl])
        return _set_values(tbl, "revenue", pos, truth.cents_of[sl] / 100.0)


def _account_ids(acct_key: np.ndarray, key) -> np.ndarray:  # noqa: ANN001 - the feature's stream-key maker
    """Account ids of 4-10 digits, distinct within a cell (disjoint ranges by length, a bijection within one)."""
    cell = (acct_key // np.uint64(ACCOUNT_STRIDE)).astype(np.int64)
    a = (acct_key % np.uint64(ACCOUNT_STRIDE)).astype(np.int64)
    lo, hi = ID_DIGITS
    digits = lo + (mix64(acct_key, key("id-digits")) % np.uint64(hi - lo + 1)).astype(np.int64)
    first = 10 ** (digits - 1)
    span = 9 * first
    offset = (mix64(cell.astype(np.uint64), key("id-offset")) % span.astype(np.uint64)).astype(np.int64)
    return first + (a * ID_STEP + offset) % span


def _set_dictionary_indices(tbl: pa.Table, name: str, pos: np.ndarray, idx: np.ndarray) -> pa.Table:
    i = tbl.schema.get_field_index(name)
    col = tbl.column(i).combine_chunks()
    indices = col.indices.to_numpy(zero_copy_only=False).copy()
    indices[pos] = idx
    return tbl.set_column(i, name, pa.DictionaryArray.from_arrays(pa.array(indices, type=col.indices.type), col.dictionary))


def _set_values(tbl: pa.Table, name: str, pos: np.ndarray, values: np.ndarray) -> pa.Table:
    i = tbl.schema.get_field_index(name)
    col = tbl.column(i).combine_chunks()
    data = col.to_numpy(zero_copy_only=False).copy()
    data[pos] = values
    return tbl.set_column(i, name, pa.array(data, type=col.type))
