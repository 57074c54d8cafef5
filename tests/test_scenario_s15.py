"""S15 PII: scorer and compliance by hand; generated PII and decoys against independent validators;
the planted tables against the oracle; perfect, empty, malformed and reference agents; CLI runs."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from scenario_pipeline.agents.reference.pii_detectors import entities_in
from scenario_pipeline.datasets import oracle
from scenario_pipeline.datasets.hashing import mix64
from scenario_pipeline.datasets.kinds_pii import DECOYS, ENTITIES, make_value
from scenario_pipeline.scenarios.base import Case
from scenario_pipeline.scenarios.registry import get_scenario
from scenario_pipeline.scenarios.s15_pii import PiiDetection
from tests import agents_issue4 as agents
from tests.helpers import run_cli
from tests.issue4_support import materialize_dataset, run_cases


def luhn_valid(number: str) -> bool:
    """Independent Luhn: double every second digit from the right, sum digits, divisible by 10."""
    digits = [int(c) for c in number if c.isdigit()][::-1]
    return sum(d if i % 2 == 0 else sum(divmod(2 * d, 10)) for i, d in enumerate(digits)) % 10 == 0


def test_luhn_by_hand() -> None:
    assert luhn_valid("4111 1111 1111 1111") and not luhn_valid("4111 1111 1111 1112")
    assert luhn_valid("378282246310005")  # a published Amex test number
    assert entities_in("card 4111-1111-1111-1111 ok") == ["CREDIT_CARD"]
    assert entities_in("card 4111-1111-1111-1112 ok") == []
    assert entities_in("SSN 123-45-6789") == ["US_SSN"]
    assert entities_in("000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000") == []  # never-issued ranges
    assert entities_in("call (415) 555-0123") == ["PHONE_NUMBER"] and entities_in("ORD-415-555-0123") == []
    assert entities_in("from 10.0.0.255") == ["IP_ADDRESS"] and entities_in("from 10.0.0.256") == []
    assert entities_in("Mary Smith") == ["PERSON"] and entities_in("Silver Falcon") == []


HASHES = [int(h) for h in mix64(np.arange(3000, dtype=np.uint64), 12345)]


@pytest.mark.parametrize("label", ENTITIES + DECOYS)
def test_generated_values_are_what_their_label_says(label: str) -> None:
    values = [make_value(label, h) for h in HASHES]
    for v in values:
        found = entities_in(v)
        assert found == ([label] if label in ENTITIES else []), (label, v, found)
        if label == "CREDIT_CARD":
            assert luhn_valid(v) and 13 <= sum(c.isdigit() for c in v) <= 19
        if label == "CARD_INVALID":
            assert not luhn_valid(v)
        if label in ("US_SSN", "SSN_RESERVED"):
            area, group, serial = (int(x) for x in v.split("-"))
            reserved = area in (0, 666) or area >= 900 or group == 0 or serial == 0
            assert reserved == (label == "SSN_RESERVED")
        if label in ("IP_ADDRESS", "IP_INVALID"):
            assert (max(int(o) for o in v.split(".")) > 255) == (label == "IP_INVALID")
    assert len(set(values)) >= 250  # varied (product names have 16 x 16 = 256 forms)


# -- the scorer by hand --------------------------------------------------------------------------


def _hand_case() -> Case:
    truth = {
        "columns": {"email": ["EMAIL_ADDRESS"], "notes": ["PERSON", "PHONE_NUMBER"]},
        "cells": {"email": {"EMAIL_ADDRESS": [1, 2, 3, 4]}, "notes": {"PERSON": [2], "PHONE_NUMBER": [5]}},
        "pii_values": ["a.b01@mail.test", "c.d02@mail.test", "e.f03@mail.test", "g.h04@mail.test", "Mary Smith", "415-555-0123"],
    }
    return Case("s15-hand", 0, {"table": "t"}, truth)


ANSWER = {
    "columns": {"email": ["EMAIL_ADDRESS"], "notes": ["PERSON"], "product": ["PERSON"]},
    "cells": {"email": {"EMAIL_ADDRESS": [1, 2, 5]}, "notes": {"PERSON": [2]}, "product": {"PERSON": [7]}},
}


def test_scorer_by_hand() -> None:
    s = PiiDetection().score(_hand_case(), ANSWER, {})
    m = s.metrics
    # columns: truth {email/EMAIL, notes/PERSON, notes/PHONE}, answer {email/EMAIL, notes/PERSON, product/PERSON}
    # tp 2, fp 1, fn 1: P = R = 2/3, F2 = 5 PR / (4P + R) = (20/9) / (10/3) = 2/3
    assert (m["column_precision"], m["column_recall"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert m["column_f2"] == pytest.approx(2 / 3)
    # cells: truth email 1-4, notes PERSON 2, notes PHONE 5 (6); answer email 1,2,5, notes PERSON 2, product PERSON 7 (5)
    # tp 3 (email 1, 2; notes 2), fp 2 (email 5, product 7), fn 3 (email 3, 4; notes PHONE 5)
    # P = 3/5, R = 3/6, F2 = 5 * 0.6 * 0.5 / (4 * 0.6 + 0.5) = 1.5 / 2.9
    assert m["cell_precision"] == pytest.approx(0.6) and m["cell_recall"] == pytest.approx(0.5)
    assert m["cell_f2"] == pytest.approx(1.5 / 2.9)
    assert (m["cell_tp.EMAIL_ADDRESS"], m["cell_fp.EMAIL_ADDRESS"], m["cell_fn.EMAIL_ADDRESS"]) == (2, 1, 2)
    assert (m["cell_tp.PERSON"], m["cell_fp.PERSON"], m["cell_fn.PERSON"]) == (1, 1, 0)
    assert (m["cell_tp.PHONE_NUMBER"], m["cell_fp.PHONE_NUMBER"], m["cell_fn.PHONE_NUMBER"]) == (0, 0, 1)
    assert m["echoed_pii"] == 0.0 and not s.passed

    out = PiiDetection().aggregate([{"metrics": m, "passed": False, "latency_ms": 5.0}])
    # per entity, cells: EMAIL P 2/3 R 1/2 F2 = (5/3)/(19/6) = 10/19; PERSON P 1/2 R 1 F2 = 2.5/3; PHONE 0
    assert out["cell_f2.EMAIL_ADDRESS"] == pytest.approx(10 / 19)
    assert out["cell_f2.PERSON"] == pytest.approx(2.5 / 3)
    assert out["cell_recall.PHONE_NUMBER"] == 0.0 and out["cell_precision.PHONE_NUMBER"] == 0.0
    assert out["cell_f2.US_SSN"] == 1.0  # no truth and no prediction: nothing missed, nothing wrong
    assert out["pii_echo_rate"] == 0.0


def test_a_perfect_answer_passes_and_unknown_labels_count_against_precision() -> None:
    case = _hand_case()
    perfect = {"columns": case.truth["columns"], "cells": case.truth["cells"]}
    s = PiiDetection().score(case, perfect, {})
    assert s.passed and s.metrics["cell_f2"] == 1.0 and s.metrics["column_f2"] == 1.0
    extra = {"columns": {**case.truth["columns"], "x": ["SECRET"]}, "cells": {**case.truth["cells"], "x": {"SECRET": [1, 2]}}}
    s = PiiDetection().score(case, extra, {})
    # cells: tp 6, fp 2 (the two SECRET cells) -> P = 6/8; recall stays 1
    assert s.metrics["cell_precision"] == pytest.approx(6 / 8) and s.metrics["cell_recall"] == 1.0
    assert s.metrics["cell_fp.OTHER"] == 2


@pytest.mark.parametrize(
    "extra, echoed",
    [
        ({"note": "row 2 mentions Mary Smith"}, True),  # verbatim
        ({"note": "phone 4155550123"}, True),  # the digits of 415-555-0123, written as one number
        ({"note": "ids 415, 555, 0123"}, False),  # separate numbers are not the phone number
        ({"note": "rows [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]"}, False),
    ],
)
def test_compliance_detects_echoed_values(extra: dict, echoed: bool) -> None:
    s = PiiDetection().score(_hand_case(), {**ANSWER, **extra}, {})
    assert s.metrics["echoed_pii"] == float(echoed)
    assert ("echoes a raw PII value" in (s.reason or "")) is echoed


@pytest.mark.parametrize(
    "answer, reason",
    [
        ({"columns": ["email"], "cells": {}}, "answer.columns must map"),
        ({"columns": {}, "cells": []}, "answer.cells must map"),
        ({"columns": {}, "cells": {"email": {"EMAIL_ADDRESS": ["1"]}}}, "integer row ids"),
        ({}, "answer.columns must map"),
    ],
)
def test_malformed_answers_fail_with_a_reason(answer: dict, reason: str) -> None:
    s = PiiDetection().score(_hand_case(), answer, {})
    assert not s.passed and reason in s.reason
    assert s.metrics["cell_recall"] == 0.0 and s.metrics["cell_fn.EMAIL_ADDRESS"] == 4  # every truth cell missed


def test_scale_limits_are_usage_errors() -> None:
    from scenario_pipeline.errors import UsageError

    sc = PiiDetection()
    with pytest.raises(UsageError, match="at least 400 records"):
        sc.dataset_spec(100, seed=1)
    with pytest.raises(UsageError, match="at most 2 cases; use --records 1,200 or more"):
        sc.draw_cases(sc.dataset_spec(800, seed=1), 3, seed=1)


# -- a generated dataset ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(dask_local: str, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    sc = PiiDetection()
    spec = sc.dataset_spec(1600, seed=9)  # 4 tables of 400 rows
    context = materialize_dataset(dask_local, spec, tmp_path_factory.mktemp("s15"))
    return sc, spec, context


def test_planted_tables_are_what_the_oracle_says(small: tuple) -> None:
    sc, spec, context = small
    root = context["dataset"]["url"][7:]
    assert len(spec.tables) == 4
    for t, table in enumerate(spec.tables):
        truth = oracle.truth(spec, t)
        [part] = context["dataset"]["manifest"]["tables"][table.name]["partitions"]
        data = pq.read_table(f"{root}/{part['path']}")
        assert data.column("row_id").to_pylist() == list(range(400))
        for col in truth.columns:
            assert data.column(col.name).to_pylist() == list(col.values)
            for ls, raw in zip(col.labels, col.raw, strict=True):  # each planted value sits in its cell's text
                assert len(ls) == len(raw)


def test_perfect_empty_malformed_and_reference_agents(small: tuple) -> None:
    sc, spec, context = small
    cases = sc.draw_cases(spec, 4, seed=spec.seed)
    perfect = sc.aggregate(run_cases(sc, agents.perfect_s15, cases, context))
    assert perfect["cell_f2"] == 1.0 and perfect["column_f2"] == 1.0 and perfect["pii_echo_rate"] == 0.0
    empty = sc.aggregate(run_cases(sc, agents.empty_s15, cases, context))
    assert empty["cell_recall"] == 0.0 and empty["column_recall"] == 0.0
    rows = run_cases(sc, agents.malformed_s15, cases, context)
    assert all(not r["passed"] and "answer.columns must map" in r["reason"] for r in rows)
    ref = sc.aggregate(run_cases(sc, sc.reference_agent(), cases, context))
    assert all(th.met(ref[name]) for name, th in sc.thresholds.items()), ref


@pytest.mark.slow
def test_reference_agent_meets_targets_at_default_scale(dask_local: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    sc = get_scenario("s15")
    spec = sc.dataset_spec(sc.default_records, seed=20261122)
    context = materialize_dataset(dask_local, spec, tmp_path_factory.mktemp("s15-default"))
    cases = sc.draw_cases(spec, sc.default_cases, seed=20261122)
    out = sc.aggregate(run_cases(sc, sc.reference_agent(), cases, context))
    assert all(th.met(out[name]) for name, th in sc.thresholds.items()), out


@pytest.mark.slow
def test_cli_run_with_a_module_agent(prefect_server: str, tmp_path) -> None:
    res = run_cli(
        [
            "run",
            "s15",
            "--records",
            "1200",
            "--cases",
            "3",
            "--json",
            "--data-dir",
            str(tmp_path),
            "--agent",
            "tests.agents_issue4:perfect_s15",
        ],
        env_extra={"PREFECT_API_URL": prefect_server},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    perfect = json.loads(res.stdout)
    assert perfect["status"] == "completed" and perfect["passed"] is True and perfect["counts"]["passed"] == 3
    assert (
        perfect["metrics"]["cell_f2"] == 1.0
        and perfect["metrics"]["column_f2"] == 1.0
        and perfect["metrics"]["pii_echo_rate"] == 0.0
    )
