"""Agents for the walking-skeleton tests. Importable as ``tests.agents_skeleton:NAME``."""

from __future__ import annotations

import os
import time
from typing import Any


def slow_logging(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Answers nothing after 0.3 s and appends the case's question to $SKELETON_CALL_LOG."""
    time.sleep(0.3)
    with open(os.environ["SKELETON_CALL_LOG"], "a") as fh:
        fh.write(f"{os.environ.get('SKELETON_PHASE', '?')} {case['predicate']['value']}\n")
    return {"record_ids": []}


def raises(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("agent is broken")


def wrong_types(case: dict[str, Any], context: dict[str, Any]) -> Any:
    return {"record_ids": "not a list"}
