"""The dataset layer imports nothing above it (issue 14): scenario packages register their kinds
and datasets with it, and it finds them through discovery hooks (datasets/discovery.py)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

UPPER = ("scenarios", "agents", "tasks", "flows", "warehouse", "compare", "cost", "infra", "cli")


def _imports(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, anywhere (functions too, importlib literals)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            f = node.func
            if (f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")) in ("import_module", "__import__"):
                out.add(node.args[0].value)
    return out


def test_the_dataset_layer_imports_no_upper_layer() -> None:
    bad = {}
    for path in sorted((REPO / "datasets").rglob("*.py")):
        up = sorted(m for m in _imports(path) if m.split(".")[:2] in (["scenario_pipeline", u] for u in UPPER))
        if up:
            bad[str(path.relative_to(REPO))] = up
    assert not bad, bad

