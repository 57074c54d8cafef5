"""One installed top-level package; nothing named `datasets` at top level (Hugging Face's name)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.helpers import REPO


def test_wheel_installs_only_scenario_pipeline(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(REPO)], check=True, timeout=300
    )
    wheel = next(tmp_path.glob("scenario_pipeline-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"scenario_pipeline"}, top
    for stage in (
        "flows/run_scenario.py",
        "tasks/fanout.py",
        "datasets/spec.py",
        "scenarios/s12_search/__init__.py",
        "scenarios/s12_search/agent.py",
        "scenarios/s02_conflicts/features.py",
        "warehouse/schema.py",
        "agents/loader.py",
    ):
        assert f"scenario_pipeline/{stage}" in names, stage
    # Every subpackage in the stage folders ships: a missing one breaks imports only after install.
    for stage in ("flows", "tasks", "datasets", "scenarios", "agents", "warehouse", "infra", "compare", "cost"):
        for init in (REPO / stage).rglob("__init__.py"):
            assert f"scenario_pipeline/{init.relative_to(REPO).as_posix()}" in names, init
    assert "scenario_pipeline/cli/run.py" in names
    # Nothing the repository no longer has: setuptools never empties build/lib, so a module moved
    # away (issue 14 moved scenarios into packages) would still ship, and register twice.
    stale = [
        n
        for n in names
        if n.endswith(".py")
        and n.split("/")[1] in ("flows", "tasks", "datasets", "scenarios", "agents", "warehouse", "infra", "compare", "cost")
        and not (REPO / n.split("/", 1)[1]).is_file()
    ]
    assert not stale, f"the wheel holds modules the repository lacks (delete the stale build/ folder): {stale}"
    assert any(n.startswith("scenario_pipeline/cost/profiles/") and n.endswith(".toml") for n in names)
    assert "scenario_pipeline/cost/plan_inputs.toml" in names  # a plan is priced from it, in any install


def test_outside_the_repository_datasets_is_not_ours(tmp_path: Path) -> None:
    code = "import importlib.util as u, scenario_pipeline.datasets as d; s = u.find_spec('datasets'); print(d.__file__); print(s.origin if s else None)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, check=True
    ).stdout.split("\n")
    assert out[0] == str(REPO / "datasets" / "__init__.py")
    assert out[1] == "None" or not out[1].startswith(str(REPO)), out[1]
