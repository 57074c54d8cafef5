"""Test agents for S02, S11, S13 and S16, importable as ``tests.agents_issue5:NAME``.

``perfect_*`` agents answer from the oracle: they rebuild the spec from the manifest in their
context and ask the scenario module for the case's truth (test agents may; reference agents may
not). ``empty_*`` agents answer validly with nothing. ``malformed_*`` agents answer junk of a
different shape on each case.
"""

from __future__ import annotations

from typing import Any

from scenario_pipeline.datasets.spec import DatasetSpec
from tests import oracle


def _spec(context: dict[str, Any]) -> DatasetSpec:
    return DatasetSpec.model_validate(oracle.spec_json(context))


def perfect_s02(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    from scenario_pipeline.scenarios.s02_conflicts import case_truth

    truth = case_truth(_spec(context), case["entity_ids"])
    return {"conflicts": [{"entity_id": c["entity_id"], "field": c["field"], "resolved": c["resolved"]} for c in truth]}


def perfect_s11(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    from scenario_pipeline.scenarios.s11_evolution import case_truth

    return case_truth(_spec(context), case)


def perfect_s13(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    from scenario_pipeline.scenarios.s13_insights import case_truth

    truth = case_truth(_spec(context), case["measure"], case["scope"])
    return {"relationships": [{**r, "p_value": 0.0} for r in truth["relationships"]]}


def perfect_s16(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    from scenario_pipeline.scenarios.s16_zombies import case_truth

    truth = case_truth(_spec(context), case["schema"], case["as_of"], case["idle_days"])
    return {"zombies": [{"table": z["table"], "reason": "planted", "last_access": z["last_access"]} for z in truth["zombies"]]}


def empty_s02(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"conflicts": []}


def empty_s11(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"changes": []} if case["kind"] == "changes" else {"value": 0}


def empty_s13(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"relationships": []}


def empty_s16(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"zombies": []}


def _pick(case: dict[str, Any], options: list[Any]) -> Any:
    """A different junk answer per case, chosen by something every case input has."""
    return options[len(str(sorted(case.items()))) % len(options)]


def malformed_s02(case: dict[str, Any], context: dict[str, Any]) -> Any:
    return _pick(
        case,
        [
            {"conflicts": "none"},
            {"conflicts": [{"entity_id": "7", "field": "email", "resolved": "x"}]},
            {"conflicts": [{"entity_id": 1, "field": "shoe_size", "resolved": 9}]},
            {"conflicts": [42]},
            {},
        ],
    )


def malformed_s11(case: dict[str, Any], context: dict[str, Any]) -> Any:
    return _pick(
        case,
        [
            {"changes": {"kind": "added"}},
            {"changes": [{"kind": "vanished", "column": "x"}]},
            {"changes": [{"kind": "renamed", "column": "a"}]},
            {"value": "12"},
            {"value": True},
            {},
        ],
    )


def malformed_s13(case: dict[str, Any], context: dict[str, Any]) -> Any:
    return _pick(
        case,
        [
            {"relationships": None},
            {"relationships": [{"with": "crm.nps", "effect_size": "big", "p_value": 0.01}]},
            {"relationships": [{"with": "crm.nps", "effect_size": 0.3, "p_value": 7.0}]},
            {"relationships": ["crm.nps"]},
            {},
        ],
    )


def malformed_s16(case: dict[str, Any], context: dict[str, Any]) -> Any:
    return _pick(
        case,
        [
            {"zombies": "sales.x"},
            {"zombies": [{"table": "sales.x"}]},
            {"zombies": [{"table": 5, "reason": "old"}]},
            {"zombies": [{"table": "sales.x", "reason": "   "}]},
            {},
        ],
    )
