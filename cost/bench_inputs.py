"""The measured throughputs a plan is priced from, read from docs/benchmarks.md.

docs/benchmarks.md keeps a table under the heading ``## Plan inputs``: one row per input, with its
value, its unit and the measurement it comes from (a benchmark command and its date). A plan reads
that table and nothing else, so the numbers it prices are the ones a person can check and rerun.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from scenario_pipeline.errors import UsageError

SECTION = "## Plan inputs"
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
    """docs/benchmarks.md of this checkout (SCENARIO_COST_BENCHMARKS names another file)."""
    from scenario_pipeline.cost.settings import CostSettings

    configured = CostSettings().benchmarks
    if configured:
        return Path(configured).expanduser()
    import scenario_pipeline

    return Path(scenario_pipeline.__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def read_plan_inputs(path: Path | None = None) -> dict[str, PlanInput]:
    path = path or default_path()
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"a plan is priced from the measurements in docs/benchmarks.md, and {path} cannot be read ({exc.strerror or exc}); "
                         "set SCENARIO_COST_BENCHMARKS to that file") from exc
    start = text.find(SECTION)
    if start < 0:
        raise UsageError(f"{path} has no '{SECTION}' table; a plan needs it (docs/costs.md)")
    body = text[start + len(SECTION):]
    nxt = re.search(r"^## ", body, flags=re.M)
    body = body[: nxt.start()] if nxt else body
    inputs: dict[str, PlanInput] = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`"):
            continue
        key = cells[0].strip("`")
        try:
            value = float(cells[1].replace(",", "").replace("_", ""))
        except ValueError as exc:
            raise UsageError(f"{path}: plan input {key} has value {cells[1]!r}, not a number") from exc
        if value <= 0:
            raise UsageError(f"{path}: plan input {key} must be positive, got {value}")
        inputs[key] = PlanInput(value, cells[2], cells[3])
    missing = [k for k in REQUIRED if k not in inputs]
    if missing:
        raise UsageError(f"{path}: the '{SECTION}' table lacks {', '.join(missing)}; measure it ({REQUIRED[missing[0]]}) and add the row")
    return inputs
