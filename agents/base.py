"""The agent contract: what an agent is, as the harness calls it (see docs/agents.md).

It lives in the agents layer, below the scenarios: a scenario's reference agent is built on it and
on the helpers in ``agents/reference/``, and the loader turns any agent spec into one of these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Answer = dict[str, Any]
Agent = Callable[[dict[str, Any], dict[str, Any]], Answer]
"""An agent takes (case input, context) and returns an answer dict (see docs/agents.md)."""


class HasReferenceAgent(Protocol):
    """What the loader needs of a scenario (scenarios/base.py ``Scenario`` has it): its reference agent."""

    def reference_agent(self, **params: Any) -> Agent: ...
