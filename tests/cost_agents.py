"""Agents for the cost tests. Importable as ``tests.cost_agents:NAME``."""

from __future__ import annotations

import os
from typing import Any


def penny(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Answers nothing, reports 100 tokens in, 20 out and $0.01 per case; logs each case it is asked."""
    log = os.environ.get("COST_CALL_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{os.environ.get('COST_PHASE', '?')} {case['predicate']['value']}\n")
    return {"record_ids": [], "usage": {"input_tokens": 100, "output_tokens": 20, "cost_usd": 0.01}}


def tokens_only(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Reports 1,000 tokens in and 200 out and no cost: the price profile's model prices them."""
    return {"record_ids": [], "usage": {"input_tokens": 1000, "output_tokens": 200}}
