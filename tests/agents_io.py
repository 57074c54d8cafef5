"""Agents that wait, for the concurrency tests (issue 15). Importable as ``tests.agents_io:NAME``.

``IO_AGENT_SLEEP_S`` sets how long they wait (default 2 s). The ``*_logged`` ones append
``start|end <case> <time> <pid>`` lines to ``$IO_AGENT_LOG``, which only a trusted agent can reach
(--trust-agent): the test counts the calls in flight at the agent from them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Any

from scenario_pipeline.agents import RateLimited


def _sleep_s() -> float:
    return float(os.environ.get("IO_AGENT_SLEEP_S", "2"))


def _log(what: str, case: dict[str, Any]) -> None:
    path = os.environ.get("IO_AGENT_LOG")
    if path:
        line = f"{what} {case['predicate']['value']} {time.time():.6f} {os.getpid()} {os.environ.get('IO_AGENT_PHASE', '-')}\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())  # one write per line: O_APPEND keeps concurrent lines whole
        finally:
            os.close(fd)


async def async_sleep(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(_sleep_s())
    return {"record_ids": []}


def sync_sleep(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    time.sleep(_sleep_s())
    return {"record_ids": []}


async def async_logged(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    _log("start", case)
    await asyncio.sleep(_sleep_s())
    _log("end", case)
    return {"record_ids": []}


def sync_logged(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    _log("start", case)
    time.sleep(_sleep_s())
    _log("end", case)
    return {"record_ids": []}


async def async_hangs_some(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Cases whose token ends in 0-3 wait an hour (cancellable); the others answer after 1 s."""
    await asyncio.sleep(3600 if case["predicate"]["value"][-1] in "0123" else 1.0)
    return {"record_ids": []}


def sync_hangs_some(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    time.sleep(3600 if case["predicate"]["value"][-1] in "0123" else 1.0)
    return {"record_ids": []}


async def async_blocks_loop(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """An ``async def`` that blocks its event loop (time.sleep) for a token ending in 0: the sandbox is killed."""
    if case["predicate"]["value"][-1] == "0":
        time.sleep(3600)
    await asyncio.sleep(1.0)
    return {"record_ids": []}


_SEEN: Counter = Counter()


async def async_rate_limited(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Refuses each case twice (RateLimited, retry after 0.2 s), then answers. One sandbox process serves
    a lane's calls, and a case's retries stay in its lane, so the count per case holds."""
    token = case["predicate"]["value"]
    _SEEN[token] += 1
    if _SEEN[token] <= 2:
        raise RateLimited("model API says slow down", retry_after=0.2)
    await asyncio.sleep(0.1)
    return {"record_ids": []}


async def async_always_limited(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    raise RateLimited("quota exhausted")
