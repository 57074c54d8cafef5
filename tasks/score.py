"""Stage 3, score: call the agent on one case under its limits, then score the answer.

Runs inside Dask workers; the agent itself runs in a sandbox process (tasks/sandbox.py).
Nothing an agent does (raise, hang, crash, return junk, return too much) stops the run: it
becomes a failed case with a reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass
from typing import Any

from scenario_pipeline.scenarios.base import Case, CaseScore, Scenario
from scenario_pipeline.tasks.sandbox import Sandbox


@dataclass(frozen=True)
class Limits:
    timeout_s: float
    max_answer_bytes: int


def _usage(answer: dict[str, Any]) -> tuple[int | None, int | None, float | None]:
    usage = answer.pop("usage", None)
    if not isinstance(usage, dict):
        return None, None, None

    def num(key: str, cast: type) -> Any:
        v = usage.get(key)
        return cast(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else None

    return num("input_tokens", int), num("output_tokens", int), num("cost_usd", float)


def run_case(scenario: Scenario, sandbox: Sandbox, case: Case, context: dict[str, Any], context_key: str,
             limits: Limits, run_id: str, shard: int) -> dict[str, Any]:
    """Call the agent in its sandbox under the limits, then score the answer; never raises."""
    result = sandbox.call(dict(case.input), context, context_key, limits.timeout_s, limits.max_answer_bytes)
    latency_ms = result.latency_ms
    tokens_in = tokens_out = cost = None
    digest = hashlib.sha256(result.answer).hexdigest() if result.answer is not None else None
    size = len(result.answer) if result.answer is not None else None
    error = result.error
    answer: Any = None
    if error is None:
        answer = json.loads(result.answer)
        if not isinstance(answer, dict):
            error = f"answer must be a JSON object, got {type(answer).__name__}"
    score: CaseScore
    if error is None:
        tokens_in, tokens_out, cost = _usage(answer)
        try:
            score = scenario.score(case, answer, context)
        except Exception as exc:  # noqa: BLE001 - a malformed answer the scorer could not read
            score = CaseScore(False, {}, f"malformed answer: {type(exc).__name__}: {str(exc)[:200]}")
    else:
        score = CaseScore(False, {}, error)
    return {
        "run_id": run_id,
        "scenario": scenario.id,
        "case_id": case.case_id,
        "case_index": case.index,
        "shard": shard,
        "passed": bool(score.passed),
        "reason": score.reason,
        "metrics_json": json.dumps(score.metrics, sort_keys=True),
        "answer_digest": digest,
        "answer_bytes": size,
        "latency_ms": latency_ms,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cost_usd": cost,
        "attributes_json": json.dumps(case.attributes, sort_keys=True),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
