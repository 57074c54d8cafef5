"""Agents: how a spec (``reference``, ``package.module:callable``, ``http(s)://...``) becomes a callable.

``RateLimited`` is for agents to raise: ``from scenario_pipeline.agents import RateLimited``.
"""

from __future__ import annotations


class RateLimited(Exception):
    """Raise it from an agent when the model API it calls refused for now (an HTTP 429 of its own).

    The harness treats it as an HTTP agent's 429: the call is retried with exponential backoff (at least
    ``retry_after`` seconds later when given), up to ``--max-retries``, and the lane calls the agent less
    often for a while; the case fails only when every retry was refused (docs/agents.md, "Concurrency,
    rate limits and retries").
    """

    def __init__(self, message: str = "rate limited", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


__all__ = ["RateLimited"]
