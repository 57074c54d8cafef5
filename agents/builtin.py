"""Agents that ship with the harness for measuring the harness itself.

``noop`` answers nothing at once: a run with it measures orchestration, scoring and
checkpoint overhead alone (benchmarks/fanout.py), and scores as a run of empty answers.
``sleep_2s`` is an ``async def`` agent that answers nothing after 2 s, as a model API would:
a run with it measures how many calls the harness keeps in flight (benchmarks/fanout_io.py).
"""

from __future__ import annotations

import asyncio
from typing import Any


def noop(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {}


async def sleep_2s(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(2.0)
    return {"record_ids": []}
