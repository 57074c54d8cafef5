"""The measured throughputs a plan is priced from: ``cost/plan_inputs.toml``, shipped with the package.

One table per input, with its value, its unit and the measurement it comes from (a benchmark command
and its date; docs/benchmarks.md records the runs). ``SCENARIO_COST_PLAN_INPUTS`` (settings group
``cost``, ``plan_inputs``) names another file of the same shape to price plans from instead.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenario_pipeline.errors import UsageError
from scenario_pipeline.settings import CostSettings

PACKAGED = Path(__file__).resolve().parent / "plan_inputs.toml"
REQUIRED = {
    "generate.rows_per_cpu_second": "benchmarks/generate.py, line (a): rows per CPU-second of generation and Parquet write",
    "generate.bytes_per_row": "benchmarks/generate.py, line (a): Parquet MB over rows",
    "fanout.thread_seconds_per_case": "benchmarks/fanout.py: flow fan-out seconds x worker threads / cases",
}


@dataclass(frozen=True)
class PlanInput:
    value: float
    unit: str
    source: str


def default_path() -> Path:
    """The packaged plan inputs, unless SCENARIO_COST_PLAN_INPUTS names another file."""
    configured = CostSettings().plan_inputs
    return Path(configured).expanduser() if configured else PACKAGED


def read_plan_inputs(path: Path | None = None) -> dict[str, PlanInput]:
    path = path or default_path()
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise UsageError(
            f"a plan is priced from measured throughputs, and {path} cannot be read ({exc.strerror or exc}); "
            "check SCENARIO_COST_PLAN_INPUTS, or unset it for the packaged ones"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from exc
    inputs: dict[str, PlanInput] = {}
    for key in REQUIRED:
        entry = _lookup(doc, key)
        if entry is None:
            raise UsageError(
                f"{path} lacks the plan input {key}; measure it ({REQUIRED[key]}) and add it with its value, unit and source"
            )
        value = entry.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{path}: plan input {key} has value {value!r}, not a number")
        if value <= 0:
            raise UsageError(f"{path}: plan input {key} must be positive, got {value}")
        inputs[key] = PlanInput(float(value), str(entry.get("unit", "")), str(entry.get("source", "")))
    return inputs


def _lookup(doc: dict[str, Any], dotted: str) -> dict[str, Any] | None:
    node: Any = doc
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None
