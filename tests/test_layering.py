"""Layers only point down (docs/architecture.md): the import-linter contracts in pyproject.toml hold,
and an import that points up, or across scenario packages, breaks them by name.

The dataset layer in particular imports nothing above it: scenario packages register their kinds
and datasets with it, and it finds them through discovery hooks (datasets/discovery.py)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.import_layers import lint_imports, mirror

# the contracts' names in pyproject.toml
LAYERS = "Layers only point down (docs/architecture.md)"
INFRA = "infra (the Dask cluster, the Prefect server) uses nothing but the base modules"
PACKAGES = "Scenario packages do not import one another"

UPPER = ("scenarios", "agents", "tasks", "flows", "warehouse", "compare", "cost", "infra", "cli")


def _imports(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, anywhere (functions too, importlib literals)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            f = node.func
            if (f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")) in ("import_module", "__import__"):
                out.add(node.args[0].value)
    return out


def test_the_import_contracts_hold(tmp_path: Path) -> None:
    res = lint_imports(mirror(tmp_path))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert all(f"{name} KEPT" in res.stdout for name in (LAYERS, INFRA, PACKAGES)), res.stdout


@pytest.mark.parametrize(
    ("module", "source", "broken", "says"),
    [
        # an upward import, inside a function: it counts like any other
        (
            "datasets/_upward.py",
            "def rows():\n    from scenario_pipeline.tasks.checkpoint import read_results\n    return read_results\n",
            LAYERS,
            "scenario_pipeline.datasets._upward -> scenario_pipeline.tasks.checkpoint",
        ),
        (
            "warehouse/_upward.py",
            "from scenario_pipeline.compare import alerts\n",
            LAYERS,
            "scenario_pipeline.warehouse._upward -> scenario_pipeline.compare.alerts",
        ),
        (
            "compare/_sideways.py",
            "from scenario_pipeline.cost import live\n",  # compare and cost are independent
            LAYERS,
            "scenario_pipeline.compare._sideways -> scenario_pipeline.cost.live",
        ),
        (
            "scenarios/s12_search/_borrow.py",
            "from scenario_pipeline.scenarios.s02_conflicts import features\n",
            PACKAGES,
            "scenario_pipeline.scenarios.s12_search._borrow -> scenario_pipeline.scenarios.s02_conflicts",
        ),
        (
            "infra/_reach.py",
            "import scenario_pipeline.tasks.fanout\n",
            INFRA,
            "scenario_pipeline.infra._reach -> scenario_pipeline.tasks.fanout",
        ),
        ("newlayer/__init__.py", "", LAYERS, "scenario_pipeline.newlayer"),  # every subpackage has its place
    ],
    ids=["datasets-to-tasks", "warehouse-to-compare", "compare-to-cost", "s12-to-s02", "infra-to-tasks", "unplaced"],
)
def test_an_import_against_the_contracts_breaks_them(tmp_path: Path, module: str, source: str, broken: str, says: str) -> None:
    """The installed layout of the real sources plus one extra module: the check fails, naming the contract and the import."""
    extra = mirror(tmp_path) / "scenario_pipeline" / module
    extra.parent.mkdir(exist_ok=True)
    extra.write_text(source)
    res = lint_imports(tmp_path)
    assert res.returncode != 0, res.stdout
    assert f"{broken} BROKEN" in res.stdout, res.stdout
    assert says in res.stdout, res.stdout


def test_the_dataset_layer_imports_no_upper_layer() -> None:
    bad = {}
    for path in sorted((REPO / "datasets").rglob("*.py")):
        up = sorted(m for m in _imports(path) if m.split(".")[:2] in (["scenario_pipeline", u] for u in UPPER))
        if up:
            bad[str(path.relative_to(REPO))] = up
    assert not bad, bad


def test_generation_without_the_scenarios_and_discovery_after_them(tmp_path: Path) -> None:
    """A fresh interpreter generates the dataset layer's own ``events`` without loading any
    scenario; a spec naming a scenario package's kind is unknown there until the scenario layer
    is imported (its registry adds the discovery hook), and then it generates."""
    code = f"""
import sys
from scenario_pipeline.datasets.catalog import build_spec
from scenario_pipeline.datasets.manifest import dataset_root
from scenario_pipeline.datasets.partition import write_partition
from scenario_pipeline.datasets.spec import DatasetSpec
from scenario_pipeline.errors import UsageError
from scenario_pipeline.storage import Storage

storage = Storage.from_url({str(tmp_path)!r})
events = build_spec("events", records=1000, seed=1)
write_partition(events, dataset_root(storage, events), "events", 0)
assert not [m for m in sys.modules if m.startswith("scenario_pipeline.scenarios")], "scenarios loaded"
spec = DatasetSpec.model_validate_json(sys.stdin.read())
try:
    write_partition(spec, dataset_root(storage, spec), "crm", 0)
    raise SystemExit("generated a scenario's kind without its package")
except UsageError as exc:
    assert "unknown column kind 's02_attr'" in str(exc), exc
import scenario_pipeline.scenarios.registry
print(write_partition(spec, dataset_root(storage, spec), "crm", 0).checksum)
"""
    from scenario_pipeline.scenarios.registry import get_scenario
    from scenario_pipeline.settings import DEFAULT_SEED
    from tests.test_spec_pins import PINS

    _, records, _, checksums = PINS["s02-conflicts"]
    spec = get_scenario("s02").dataset_spec(records, DEFAULT_SEED)
    res = subprocess.run(
        [sys.executable, "-c", code], input=spec.model_dump_json(), capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == checksums["crm"]
