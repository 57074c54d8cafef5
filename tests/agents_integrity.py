"""Agents that try to win by what they claim or by failing, for tests/test_score_integrity.py.

Each behaves as a pure function of its case, so a test knows exactly what it earned honestly.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa

from scenario_pipeline.agents.reference.catalog_reader import read_table
from scenario_pipeline.scenarios.registry import get_scenario

_REF: dict[str, Any] = {}


def _reference(sid: str) -> Any:
    if sid not in _REF:
        _REF[sid] = get_scenario(sid).reference_agent()
    return _REF[sid]


def raises_on(token: str) -> bool:
    """The cases s12_half_errors refuses: a fixed half, by the case's needle token."""
    return int(hashlib.sha256(token.encode()).hexdigest(), 16) % 2 == 1


def s12_half_errors(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The honest reference answer on half the cases; raises on the other half (attack 8)."""
    if raises_on(case["predicate"]["value"]):
        raise RuntimeError("refusing this one, hoping it will not count")
    return _reference("s12")(case, context)


def s12_claims_no_reads(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The honest reference answer, claiming it read nothing (attack 7)."""
    answer = dict(_reference("s12")(case, context))
    answer["bytes_read"] = 0
    answer["partitions_opened"] = 0
    return answer


def s15_pii_in_usage(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The honest reference labels, with the raw values of every cell it labelled hidden under the
    reserved ``usage`` key (attack 9)."""
    answer = dict(_reference("s15")(case, context))
    tbl = read_table(context, case["table"])
    ids = tbl.column(case["row_key"]).to_pylist()
    raw = []
    for column, by_entity in answer["cells"].items():
        values = tbl.column(column)
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        text = dict(zip(ids, values.to_pylist(), strict=True))
        raw += [text[r] for rows in by_entity.values() for r in rows]
    answer["usage"] = {"input_tokens": 10, "output_tokens": 5, "notes": raw}
    return answer
