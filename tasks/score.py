"""Stage 3, score: call the agent on one case under its limits, then score the answer.

Runs inside Dask workers. Nothing an agent does (raise, hang, return junk, return too much)
stops the run: it becomes a failed case with a reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from scenario_pipeline.scenarios.base import Agent, Case, CaseScore, Scenario


@dataclass(frozen=True)
class Limits:
    timeout_s: float
    max_answer_bytes: int


def call_with_timeout(agent: Agent, case_input: dict[str, Any], context: dict[str, Any], timeout_s: float) -> tuple[Any, str | None]:
    """(answer, error). A hung agent is abandoned after ``timeout_s``; its thread is a daemon."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["answer"] = agent(case_input, context)
        except BaseException as exc:  # noqa: BLE001 - an agent's failure is a result, not a crash
            box["error"] = f"agent raised {type(exc).__name__}: {str(exc)[:300]}"

    thread = threading.Thread(target=target, daemon=True, name="agent-call")
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        return None, f"timeout: no answer within {timeout_s:g} s"
    return box.get("answer"), box.get("error")


def _usage(answer: dict[str, Any]) -> tuple[int | None, int | None, float | None]:
    usage = answer.pop("usage", None)
    if not isinstance(usage, dict):
        return None, None, None

    def num(key: str, cast: type) -> Any:
        v = usage.get(key)
        return cast(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else None

    return num("input_tokens", int), num("output_tokens", int), num("cost_usd", float)


def run_case(scenario: Scenario, agent: Agent, case: Case, context: dict[str, Any], limits: Limits, run_id: str, shard: int) -> dict[str, Any]:
    start = time.perf_counter()
    answer, error = call_with_timeout(agent, dict(case.input), context, limits.timeout_s)
    latency_ms = (time.perf_counter() - start) * 1000.0
    tokens_in = tokens_out = cost = None
    digest, size = None, None
    score: CaseScore
    if error is None:
        try:
            encoded = json.dumps(answer, sort_keys=True, default=str).encode()
        except (TypeError, ValueError) as exc:
            encoded, error = b"", f"answer is not JSON-serializable: {exc}"
        size = len(encoded)
        digest = hashlib.sha256(encoded).hexdigest()
        if error is None and size > limits.max_answer_bytes:
            error = f"answer too large: {size} bytes over the {limits.max_answer_bytes} byte limit"
        elif error is None and not isinstance(answer, dict):
            error = f"answer must be a JSON object, got {type(answer).__name__}"
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
