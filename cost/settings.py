"""Cost settings live in the one settings root (scenario_pipeline/settings.py, group ``cost``)."""

from __future__ import annotations

from scenario_pipeline.settings import CostSettings

__all__ = ["CostSettings"]
