"""Agents that ship with the harness for measuring the harness itself.

``noop`` answers nothing at once: a run with it measures orchestration, scoring and
checkpoint overhead alone (benchmarks/fanout.py), and scores as a run of empty answers.
"""

from __future__ import annotations

from typing import Any


def noop(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {}
