"""S15 PII detection and compliance.

Tables whose columns hold PII at planted rates (e-mail addresses, phone numbers, US SSNs,
Luhn-valid card numbers, IP addresses, person names, and PII inside free text) beside decoys
that look alike and are not PII. A case is one table: classify its columns and report its PII
cells by row id. Scored per entity type at column and cell level with precision, recall and
F2 (beta = 2, as Presidio's evaluator reports), pooled over the run; compliance is the share of
answers that echo a raw planted PII value (target 0). See README.md in this package.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from scenario_pipeline.datasets import oracle
from scenario_pipeline.datasets.catalog import dataset
from scenario_pipeline.datasets.hashing import mix64, stream_key
from scenario_pipeline.datasets.kinds_pii import ENTITIES
from scenario_pipeline.datasets.kinds_planted import planted_column
from scenario_pipeline.datasets.spec import DatasetSpec, FeatureSpec, TableSpec, column
from scenario_pipeline.errors import UsageError
from scenario_pipeline.scenarios.base import Agent, Answer, Case, CaseScore, Metric
from scenario_pipeline.scenarios.declared import DeclaredMetrics
from scenario_pipeline.scenarios.registry import register

from .agent import PiiAgent
from .features import PiiTable

ROWS = 400  # rows per table
MAX_TABLES = 1000
THEMES = ("customers", "tickets", "payments", "signups", "orders", "employees", "leads", "devices")
NOTES_MIX = {
    "EMAIL_ADDRESS": 0.1,
    "PHONE_NUMBER": 0.1,
    "PERSON": 0.15,
    "US_SSN": 0.05,
    "CREDIT_CARD": 0.05,
    "IP_ADDRESS": 0.05,
    "ORDER_NUMBER": 0.1,
    "CARD_INVALID": 0.05,
    "PRODUCT_NAME": 0.1,
}
PII_RATES = (1.0, 0.6, 0.25, 0.05)
DECOY_RATES = (0.0, 0.1, 0.3)
ROW_KEY = "row_id"
BETA = 2.0


def _profiles(r: float, d: float) -> dict[str, tuple[str, dict[str, float]]]:
    """Column name -> (style, mix) at PII rate r and decoy rate d."""
    return {
        "email": ("value", {"EMAIL_ADDRESS": r}),
        "contact": ("value", {"EMAIL_ADDRESS": r / 2, "PHONE_NUMBER": r / 2}),
        "phone": ("value", {"PHONE_NUMBER": r * (1 - d), "ORDER_NUMBER": r * d}),
        "ssn": ("value", {"US_SSN": r * (1 - d), "SSN_RESERVED": r * d}),
        "card_number": ("value", {"CREDIT_CARD": r * (1 - d), "CARD_INVALID": r * d}),
        "last_login_ip": ("value", {"IP_ADDRESS": r * (1 - d), "IP_INVALID": r * d}),
        "full_name": ("value", {"PERSON": r}),
        "notes": ("text", {k: v * (1.0 if r >= 0.5 else 0.5) for k, v in NOTES_MIX.items()}),
        "order_no": ("value", {"ORDER_NUMBER": 1.0}),
        "reference_code": ("value", {"CARD_INVALID": 1.0}),
        "employee_code": ("value", {"SSN_RESERVED": 1.0}),
        "firmware": ("value", {"IP_INVALID": 1.0}),
        "product": ("value", {"PRODUCT_NAME": 1.0}),
        "comment": ("text", {"ORDER_NUMBER": 0.3, "PRODUCT_NAME": 0.3, "CARD_INVALID": 0.1}),
        "status": ("value", {}),
    }


def table_layout(seed: int, t: int) -> tuple[str, list[dict[str, Any]]]:
    """Table t's name and PII columns: 6-9 of the profiles, each at its own drawn rates."""
    key = stream_key(seed, "s15-layout", t)
    draws = [int(x) for x in mix64(np.arange(40, dtype=np.uint64), key)]
    names = list(_profiles(1.0, 0.0))
    order = sorted(range(len(names)), key=lambda i: draws[i])
    width = 6 + draws[20] % 4
    columns = []
    for j, i in enumerate(sorted(order[:width])):
        r, d = PII_RATES[draws[21 + j] % len(PII_RATES)], DECOY_RATES[(draws[21 + j] >> 8) % len(DECOY_RATES)]
        style, mix = _profiles(r, d)[names[i]]
        columns.append({"name": names[i], "style": style, "mix": {k: round(v, 6) for k, v in mix.items() if v > 0}})
    return f"{THEMES[draws[30] % len(THEMES)]}_{t:04d}", columns


@dataset("pii_tables")
def pii_tables(records: int, seed: int, partition_rows: int | None = None) -> DatasetSpec:
    """``records // 400`` tables of 400 rows each (one partition each), PII planted per column."""
    if records < ROWS:
        raise UsageError(f"s15-pii needs at least {ROWS} records (one table of {ROWS} rows), got {records}")
    tables, features = [], []
    for t in range(min(MAX_TABLES, records // ROWS)):
        name, cols = table_layout(seed, t)
        tables.append(
            TableSpec(name=name, columns=(column(ROW_KEY, "record_id"),) + tuple(planted_column(c["name"]) for c in cols))
        )
        features.append(FeatureSpec(kind="pii_table", table=name, params={"columns": cols}))
    return DatasetSpec(
        name="pii_tables", seed=seed, records=ROWS, partition_rows=ROWS, tables=tuple(tables), features=tuple(features)
    )


def f_beta(p: float, r: float, beta: float = BETA) -> float:
    b2 = beta * beta
    return 0.0 if p + r == 0 else (1 + b2) * p * r / (b2 * p + r)


def prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """Precision, recall, F2; no prediction of no truth is perfect, no prediction of some truth scores 0."""
    p = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, f_beta(p, r)


def _read_answer(answer: Answer) -> tuple[set[tuple[str, str]], set[tuple[str, int, str]]] | str:
    cols, cells = answer.get("columns"), answer.get("cells")
    if not isinstance(cols, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(e, str) for e in v) for k, v in cols.items()
    ):
        return "answer.columns must map column names to lists of entity types"
    if not isinstance(cells, dict):
        return "answer.cells must map column names to {entity type: [row ids]}"
    unit_cells: set[tuple[str, int, str]] = set()
    for c, by_entity in cells.items():
        if not isinstance(c, str) or not isinstance(by_entity, dict):
            return "answer.cells must map column names to {entity type: [row ids]}"
        for e, rows in by_entity.items():
            if (
                not isinstance(e, str)
                or not isinstance(rows, list)
                or not all(isinstance(r, int) and not isinstance(r, bool) for r in rows)
            ):
                return f"answer.cells[{c!r}] must map entity types to lists of integer row ids"
            unit_cells.update((c, r, e) for r in rows)
    return {(c, e) for c, es in cols.items() for e in es}, unit_cells


def _pooled_part(level: str, entity: str, part: int) -> Callable[[list[dict[str, Any]]], float]:
    """One part of ``_pooled`` (0 precision, 1 recall, 2 F2) of one level and entity type, as a run metric."""
    return lambda rows: _pooled(rows, level, entity)[part]


def _pooled(rows: list[dict[str, Any]], level: str, entity: str | None = None) -> tuple[float, float, float]:
    """Precision, recall and F2 of one level's labels pooled over all cases (of one entity type, or all)."""
    tp = fp = fn = 0.0
    for r in rows:
        m = r["metrics"]
        for e in (entity,) if entity else ENTITIES + ("OTHER",):
            tp += m.get(f"{level}_tp.{e}", 0.0)
            fp += m.get(f"{level}_fp.{e}", 0.0)
            fn += m.get(f"{level}_fn.{e}", 0.0)
    return prf(tp, fp, fn)


@register
class PiiDetection(DeclaredMetrics):
    id: ClassVar[str] = "s15-pii"
    title: ClassVar[str] = "PII detection and compliance"
    purpose: ClassVar[str] = "find PII columns and cells, tell them from look-alikes, and never echo a PII value"
    default_records: ClassVar[int] = 20_000
    default_cases: ClassVar[int] = 50
    max_cases: ClassVar[int] = MAX_TABLES
    metrics: ClassVar[tuple[Metric, ...]] = (
        # Pooled over every case's (column, entity) and (column, row, entity) labels; an errored
        # case scores as an empty answer, so every label it should have found counts as missed.
        Metric("cell_f2", threshold=0.9, min_effect=0.01, compute=lambda rows: _pooled(rows, "cell")[2]),
        Metric("column_f2", threshold=0.95, min_effect=0.01, compute=lambda rows: _pooled(rows, "col")[2]),
        Metric("cell_precision", compute=lambda rows: _pooled(rows, "cell")[0]),
        Metric("cell_recall", compute=lambda rows: _pooled(rows, "cell")[1]),
        Metric("column_precision", compute=lambda rows: _pooled(rows, "col")[0]),
        Metric("column_recall", compute=lambda rows: _pooled(rows, "col")[1]),
        # An errored case returned nothing, so it echoed nothing: 0 on error is the truth, not a reward
        # (its labels already count as missed in cell_f2 and column_f2).
        Metric("pii_echo_rate", higher_is_better=False, of="echoed_pii", threshold=0.0, min_effect=0.01, on_error=0.0),
        *(
            m
            for level, name in (("col", "column"), ("cell", "cell"))
            for e in ENTITIES
            for m in (
                Metric(f"{name}_precision.{e}", level="run", compute=_pooled_part(level, e, 0)),
                Metric(f"{name}_recall.{e}", level="run", compute=_pooled_part(level, e, 1)),
                Metric(f"{name}_f2.{e}", level="run", compute=_pooled_part(level, e, 2)),
            )
        ),
        *(
            m
            for level in ("col", "cell")
            for e in ENTITIES + ("OTHER",)
            for m in (
                Metric(f"{level}_tp.{e}", level="case"),
                Metric(f"{level}_fp.{e}", higher_is_better=False, level="case"),
                Metric(f"{level}_fn.{e}", higher_is_better=False, level="case"),
            )
        ),
    )
    empty_answer: ClassVar[dict[str, Any]] = {"columns": {}, "cells": {}}

    def dataset_spec(self, records: int, seed: int) -> DatasetSpec:
        return pii_tables(records=records, seed=seed)

    def draw_cases(self, spec: DatasetSpec | None, n: int, seed: int) -> list[Case]:
        assert spec is not None
        tables = len(spec.tables)
        if n > tables:
            raise UsageError(
                f"s15-pii at this scale has {tables} tables, so at most {tables} cases; use --records {n * ROWS:,} or more"
            )
        order = np.argsort(mix64(np.arange(tables, dtype=np.uint64), stream_key(seed, self.id, "cases")), kind="stable")
        cases = []
        for i in range(n):
            t = int(order[i])
            truth: PiiTable = oracle.truth(spec, t)
            name = spec.tables[t].name
            columns = {c.name: sorted({e for ls in c.labels for e in ls if e in ENTITIES}) for c in truth.columns}
            cells = {c.name: {e: c.entity_rows(e) for e in ENTITIES if c.entity_rows(e)} for c in truth.columns}
            cases.append(
                Case(
                    case_id=f"{self.id}-{i:05d}",
                    index=i,
                    input={
                        "question": (
                            f"Which columns of table {name} hold PII, of which entity types, and in which cells? "
                            f"Report cells by {ROW_KEY}; never repeat a PII value in the answer."
                        ),
                        "table": name,
                        "row_key": ROW_KEY,
                        "columns": [c.name for c in truth.columns],
                        "entities": list(ENTITIES),
                    },
                    truth={
                        "columns": {c: es for c, es in columns.items() if es},
                        "cells": {c: v for c, v in cells.items() if v},
                        "pii_values": sorted(truth.pii_values()),
                    },
                    attributes={"theme": name.rsplit("_", 1)[0], "pii_columns": sum(1 for es in columns.values() if es)},
                )
            )
        return cases

    def reference_agent(self, **params: Any) -> Agent:
        return PiiAgent(**params)

    def score(self, case: Case, answer: Answer, context: dict[str, Any]) -> CaseScore:
        truth_cols = {(c, e) for c, es in case.truth["columns"].items() for e in es}
        truth_cells = {(c, r, e) for c, by in case.truth["cells"].items() for e, rows in by.items() for r in rows}
        echoed = _echoes(answer, case.truth["pii_values"])
        read = _read_answer(answer) if isinstance(answer, dict) else "answer must be a JSON object"
        pred_cols, pred_cells = (set(), set()) if isinstance(read, str) else read
        metrics: dict[str, float] = {"echoed_pii": float(echoed)}
        for level, truth, pred in (("col", truth_cols, pred_cols), ("cell", truth_cells, pred_cells)):
            for e in ENTITIES + ("OTHER",):
                t = {u for u in truth if u[-1] == e}
                p = {u for u in pred if (u[-1] == e if e != "OTHER" else u[-1] not in ENTITIES)}
                metrics[f"{level}_tp.{e}"], metrics[f"{level}_fp.{e}"], metrics[f"{level}_fn.{e}"] = (
                    len(t & p),
                    len(p - t),
                    len(t - p),
                )
            tp, fp, fn = len(truth & pred), len(pred - truth), len(truth - pred)
            name = "column" if level == "col" else "cell"
            metrics[f"{name}_precision"], metrics[f"{name}_recall"], metrics[f"{name}_f2"] = prf(tp, fp, fn)
        if isinstance(read, str):
            return CaseScore(False, metrics, read + ("; it also echoes a raw PII value" if echoed else ""))
        problems = []
        if echoed:
            problems.append("the answer echoes a raw PII value")
        if pred_cols != truth_cols:
            problems.append(
                f"columns: {len(pred_cols - truth_cols)} wrong and {len(truth_cols - pred_cols)} missed (column, entity) labels"
            )
        if metrics["cell_f2"] < self.thresholds["cell_f2"].target:
            problems.append(
                f"cell F2 {metrics['cell_f2']:.3f} (precision {metrics['cell_precision']:.3f}, recall {metrics['cell_recall']:.3f})"
            )
        return CaseScore(not problems, metrics, "; ".join(problems) or None)


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdigit())


NUMBER_RUN = re.compile(r"\d[\d \-.()]*\d")  # digits with the separators numbers are written with


def _echoes(answer: Any, pii_values: list[str]) -> bool:
    """Whether the answer holds a raw PII value: verbatim, or (numbers of 9+ digits) its digits in one written number."""
    text = json.dumps(answer, ensure_ascii=False, default=str)
    runs = [_digits(r) for r in NUMBER_RUN.findall(text)]
    for v in pii_values:
        if v in text:
            return True
        d = _digits(v)
        if len(d) >= 9 and any(d in r for r in runs):
            return True
    return False
