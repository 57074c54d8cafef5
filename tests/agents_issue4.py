"""Test agents for S01, S03, S14 and S15, given to ``scenario run --agent tests.agents_issue4:NAME``.

``perfect_*`` agents cheat on purpose: they rebuild the spec from the manifest, redraw the cases
with the oracle and answer from the truth (tests check that such an agent scores 1.0).
``empty_*`` agents answer with nothing, ``malformed_*`` with an answer of the wrong shape,
``drop_s14`` with a statement that would destroy the data if it ran, ``mixed_s14`` with a
mix of those and gold answers.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from tests import oracle

_CASES: dict[tuple[str, str], dict[str, Any]] = {}
_LOCK = threading.Lock()
DRAW = {"s01-overflow": None, "s03-warehouse": 300, "s14-query": 300, "s15-pii": None}  # None: every case there is


def _truth(scenario_id: str, case_input: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    from scenario_pipeline.datasets.spec import DatasetSpec
    from scenario_pipeline.scenarios.registry import get_scenario

    spec_json = oracle.spec_json(context)
    key = (scenario_id, json.dumps(spec_json, sort_keys=True))
    with _LOCK:
        if key not in _CASES:
            spec = DatasetSpec.model_validate(spec_json)
            sc = get_scenario(scenario_id)
            n = DRAW[scenario_id]
            if n is None:
                n = len(spec.tables) if scenario_id == "s15-pii" else spec.features[0].params["cells"]
            _CASES[key] = {json.dumps(c.input, sort_keys=True): c.truth for c in sc.draw_cases(spec, n, spec.seed)}
        return _CASES[key][json.dumps(case_input, sort_keys=True)]


def perfect_s01(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    from scenario_pipeline.agents.reference.knapsack import best_subset
    from scenario_pipeline.scenarios.s01_overflow import item_text

    items = sorted(_truth("s01-overflow", case, context)["items"].items())
    chosen = best_subset([w for _, (_, w) in items], [v for _, (v, _) in items], case["budget_tokens"])
    return {"context": " ".join(item_text(int(items[i][0]), items[i][1][0]) for i in chosen)}


def perfect_s03(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    truth = _truth("s03-warehouse", case, context)
    lines = list(truth["tables"]) + [f"{a}.{k} = {b}.{k}" for a, b, k in truth["joins"]]
    return {"context": "\n".join(lines)}


def perfect_s14(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"sql": _truth("s14-query", case, context)["sql"]}


def perfect_s15(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    truth = _truth("s15-pii", case, context)
    return {"columns": truth["columns"], "cells": truth["cells"]}


def empty_s01(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"context": ""}


empty_s03 = empty_s01


def empty_s14(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"sql": ""}


def empty_s15(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"columns": {}, "cells": {}}


def malformed_s01(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"context": ["not", "a", "string"]}


malformed_s03 = malformed_s01


def malformed_s14(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"sql": {"select": "*"}}


def malformed_s15(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"columns": ["email"], "cells": {"email": {"EMAIL_ADDRESS": ["row one"]}}}


def drop_s14(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"sql": "DROP TABLE sales" if case["question"] < "M" else "DELETE FROM sales"}


def mixed_s14(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """By the question's character sum mod 4: DROP, DELETE, a malformed answer, or the gold SQL."""
    kind = sum(map(ord, case["question"])) % 4
    if kind == 0:
        return {"sql": "DROP TABLE sales"}
    if kind == 1:
        return {"sql": "DELETE FROM products"}
    if kind == 2:
        return {"sql": ["SELECT 1"]}
    return perfect_s14(case, context)
