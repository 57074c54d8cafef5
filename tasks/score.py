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
from enum import Enum
from typing import Any

from scenario_pipeline.scenarios.base import Case, CaseScore, Scenario
from scenario_pipeline.scenarios.declared import error_metrics
from scenario_pipeline.tasks.sandbox import CallResult, Sandbox


class CaseError(str, Enum):  # noqa: UP042 - StrEnum would change str() of members, which rows and messages use
    """Why a case has no scorable answer: a typed reason, stored with the case (``error_kind``)."""

    LOAD = "load"  # the agent did not import or start
    RAISED = "raised"  # the agent raised
    TIMEOUT = "timeout"  # no answer within the case time limit
    CRASHED = "crashed"  # the agent's process died
    MEMORY = "memory"  # over the sandbox's memory limit
    TOO_LARGE = "too_large"  # answer over --max-answer-bytes
    NOT_JSON = "not_json"  # answer not JSON-serializable
    NOT_OBJECT = "not_object"  # answer not a JSON object
    MALFORMED = "malformed"  # the scorer could not read the answer
    RATE_LIMITED = "rate_limited"  # still rate-limited (HTTP 429, RateLimited) after every retry
    UNAVAILABLE = "unavailable"  # still unavailable (HTTP 503, connection reset, connect timeout) after every retry


_PREFIXES = (
    ("agent failed to load", CaseError.LOAD),
    ("agent raised", CaseError.RAISED),
    ("timeout", CaseError.TIMEOUT),
    ("agent crashed", CaseError.CRASHED),
    ("agent exceeded the sandbox memory", CaseError.MEMORY),
    ("answer too large", CaseError.TOO_LARGE),
    ("answer is not JSON", CaseError.NOT_JSON),
)


def error_kind(result: CallResult) -> CaseError:
    """The typed reason of a failed call: the sandbox's own kind when it gives one."""
    kind = getattr(result, "error_kind", None)
    if kind:
        return CaseError(kind)
    for prefix, k in _PREFIXES:
        if (result.error or "").startswith(prefix):
            return k
    return CaseError.CRASHED


@dataclass(frozen=True)
class Limits:
    timeout_s: float
    max_answer_bytes: int


def _usage(answer: dict[str, Any]) -> tuple[int | None, int | None, float | None]:
    """What the agent claims it used (the reserved ``usage`` key): kept as claimed, never scored.
    The key stays in the answer, so every check of the answer (PII echo, size) sees it too."""
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        return None, None, None

    def num(key: str, cast: type) -> Any:
        v = usage.get(key)
        return cast(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else None

    return num("input_tokens", int), num("output_tokens", int), num("cost_usd", float)


def run_case(
    scenario: Scenario,
    sandbox: Sandbox,
    case: Case,
    context: dict[str, Any],
    context_key: str,
    limits: Limits,
    run_id: str,
    shard: int,
) -> dict[str, Any]:
    """Call the agent in its sandbox under the limits, then score the answer; never raises.

    A case without a scorable answer (the agent raised, timed out, crashed, answered junk) keeps
    its typed reason and scores as the declared miss (scenarios/declared.py ``error_metrics``), so
    it counts against every quality metric.
    """
    result = sandbox.call(dict(case.input), context, context_key, limits.timeout_s, limits.max_answer_bytes)
    return score_result(scenario, case, result, context, run_id, shard)


def score_result(
    scenario: Scenario, case: Case, result: CallResult, context: dict[str, Any], run_id: str, shard: int, retries: int = 0
) -> dict[str, Any]:
    """The case's row from the agent's answer (or failure): scored, never raises. ``retries``: the attempts
    after the first (tasks/lanes.py)."""
    latency_ms = result.latency_ms
    read_bytes = getattr(result, "read_bytes", None)
    scoring_context = {**context, "measured": {"read_bytes": read_bytes}}
    tokens_in = tokens_out = cost = None
    digest = hashlib.sha256(result.answer).hexdigest() if result.answer is not None else None
    size = len(result.answer) if result.answer is not None else None
    error = result.error
    kind: CaseError | None = error_kind(result) if error is not None else None
    answer: Any = None
    if error is None:
        answer = json.loads(result.answer or b"")
        if not isinstance(answer, dict):
            error, kind = f"answer must be a JSON object, got {type(answer).__name__}", CaseError.NOT_OBJECT
    score: CaseScore
    if error is None:
        tokens_in, tokens_out, cost = _usage(answer)
        try:
            score = scenario.score(case, answer, scoring_context)
        except Exception as exc:  # noqa: BLE001 - a malformed answer the scorer could not read
            error, kind = f"malformed answer: {type(exc).__name__}: {str(exc)[:200]}", CaseError.MALFORMED
    if error is not None:
        score = CaseScore(False, error_metrics(scenario, case, scoring_context), error)
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
        "error_kind": kind.value if kind is not None else None,
        "read_bytes": read_bytes,
        "retries": retries,
    }
