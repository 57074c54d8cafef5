"""Reference agents see what any agent sees: never the oracle, the planted features or the truth.

Every scenario's reference agent (``scenarios/sNN_name/agent.py``) and every agent-facing helper
(``agents/reference/*.py``) is checked twice:

- statically: the transitive closure of its imports inside the package, counting imports inside
  functions and ``importlib.import_module("...")`` calls with a literal name;
- at run time: importing it in a fresh interpreter loads none of the forbidden modules.

An agent module sits in its scenario's package, whose ``__init__`` (the scenario: cases with their
truth) Python runs before it. That is not the agent's reach: the static closure starts from the
agent's own imports (an import of its package or of a sibling such as ``features`` is one, and is
forbidden), and the run-time check imports it under an empty stand-in for its package.

Forbidden: the oracle, the feature kinds (they enumerate the truth), the scenario-specific
generators (``datasets/kinds_*``), and every scenario-side module except the agent-facing
helpers (the tokenizer, the budget judge), because scenario modules draw cases
with their truth.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

PKG = "scenario_pipeline"
SUBPACKAGES = ("flows", "tasks", "datasets", "scenarios", "agents", "warehouse", "infra", "compare")
AGENT_FACING = {f"{PKG}.scenarios", f"{PKG}.scenarios.tokenizer", f"{PKG}.scenarios.budget"}


def forbidden(module: str) -> bool:
    if module == f"{PKG}.datasets.oracle" or module.startswith((f"{PKG}.datasets.features", f"{PKG}.datasets.kinds_")):
        return True
    return module.startswith(f"{PKG}.scenarios") and module not in AGENT_FACING


def module_file(module: str) -> Path | None:
    """The source file of a module of the package (None when it is not one of ours)."""
    parts = module.split(".")
    if parts[0] != PKG:
        return None
    base = REPO / parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGES else REPO / PKG
    rest = parts[2:] if len(parts) > 1 and parts[1] in SUBPACKAGES else parts[1:]
    path = base.joinpath(*rest)
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(path: Path, module: str) -> set[str]:
    """Every module ``path`` may import, anywhere in it (top level, functions, importlib literals)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names if module_file(f"{base}.{a.name}"))  # "from pkg import module"
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in ("import_module", "__import__"):
                out.add(node.args[0].value)
    # a module imports its parent packages too
    for m in list(out):
        parts = m.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return out


def forbidden_chain(path: Path, module: str) -> list[str] | None:
    """The import chain from ``module`` to a forbidden module, or None when there is none."""
    seen = {module: [module]}
    queue = [(module, path)]
    while queue:
        mod, file = queue.pop()
        for dep in sorted(imports_of(file, mod)):
            if dep in seen:
                continue
            chain = seen[mod] + [dep]
            if forbidden(dep):
                return chain
            seen[dep] = chain
            dep_file = module_file(dep)
            if dep_file is not None:
                queue.append((dep, dep_file))
    return None


# module name -> file: each scenario package's agent, and the agent-facing helpers
AGENT_FILES = {
    **{f"{PKG}.scenarios.{p.parent.name}.agent": p for p in (REPO / "scenarios").glob("s[0-9][0-9]_*/agent.py")},
    **{f"{PKG}.agents.reference.{p.stem}": p for p in (REPO / "agents" / "reference").glob("*.py") if p.name != "__init__.py"},
}
AGENT_MODULES = sorted(AGENT_FILES)


def test_every_scenario_has_its_reference_agent_module_checked() -> None:
    packages = sorted(p.name for p in (REPO / "scenarios").glob("s[0-9][0-9]_*") if (p / "__init__.py").is_file())
    assert len(packages) >= 9
    assert sorted(m.rsplit(".", 2)[1] for m in AGENT_MODULES if m.endswith(".agent")) == packages


@pytest.mark.parametrize("module", AGENT_MODULES, ids=lambda m: m.removeprefix(f"{PKG}."))
def test_reference_agent_imports_no_oracle(module: str) -> None:
    chain = forbidden_chain(AGENT_FILES[module], module)
    assert chain is None, "reference agent reaches a forbidden module: " + " -> ".join(chain)


def test_importing_the_reference_agents_loads_no_forbidden_module() -> None:
    # A scenario package's agent is imported under an empty stand-in for its package (its
    # __init__ is the scenario, not the agent); what the import loads is the agent's own reach.
    stand_ins = {m.rsplit(".", 1)[0]: str(AGENT_FILES[m].parent) for m in AGENT_MODULES if m.endswith(".agent")}
    code = (
        "import importlib, json, sys, types\n"
        "import scenario_pipeline.scenarios\n"
        f"for name, folder in {stand_ins!r}.items():\n"
        "    stub = types.ModuleType(name)\n"
        "    stub.__path__ = [folder]\n"
        "    sys.modules[name] = stub\n"
        "out = {}\n"
        f"for m in {AGENT_MODULES!r}:\n"
        "    before = set(sys.modules)\n"
        "    importlib.import_module(m)\n"
        "    out[m] = sorted(set(sys.modules) - before)\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    loaded = json.loads(res.stdout)
    bad = {m: [x for x in new if forbidden(x) and x != m] for m, new in loaded.items()}
    assert not any(bad.values()), bad


# -- the checker catches what it must ---------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "from scenario_pipeline.datasets import oracle\n",
        "def answer(case, context):\n    from scenario_pipeline.datasets.oracle import needles\n    return {}\n",
        "import importlib\nKIND = importlib.import_module('scenario_pipeline.datasets.features.needles')\n",
        "from scenario_pipeline.scenarios.s03_warehouse import questions\n",  # a truth helper of S03
        "from scenario_pipeline.scenarios.registry import get_scenario\n",  # a way to any scenario's draw_cases
        "from scenario_pipeline.agents.reference import context_packing\nfrom scenario_pipeline.datasets import kinds_pii\n",
        "from scenario_pipeline.scenarios.s12_search.agent import NeedleSearchAgent\n",  # runs S12's package: its cases
    ],
)
def test_checker_flags_forbidden_imports(tmp_path: Path, source: str) -> None:
    bad = tmp_path / "bad_agent.py"
    bad.write_text(source)
    assert forbidden_chain(bad, f"{PKG}.agents.reference.bad_agent") is not None


@pytest.mark.parametrize(
    "source",
    [
        "from .features import FIELD_COLUMNS\n",  # its own scenario's planted kinds
        "from . import case_truth\n",  # its own scenario package
        "from scenario_pipeline.scenarios.s02_conflicts import features\n",
    ],
)
def test_checker_flags_an_agent_reaching_into_its_own_scenario(tmp_path: Path, source: str) -> None:
    bad = tmp_path / "agent.py"
    bad.write_text(source)
    assert forbidden_chain(bad, f"{PKG}.scenarios.s02_conflicts.agent") is not None


def test_checker_follows_imports_through_other_modules(tmp_path: Path) -> None:
    # the scenario packages import the oracle; reaching it through any module is reaching the oracle
    bad = tmp_path / "sneaky_agent.py"
    bad.write_text("from scenario_pipeline.tasks import generate\n")  # generate -> datasets.partition -> oracle
    chain = forbidden_chain(bad, f"{PKG}.agents.reference.sneaky_agent")
    assert chain is not None and chain[1] == f"{PKG}.tasks.generate"


def test_checker_passes_an_honest_agent(tmp_path: Path) -> None:
    ok = tmp_path / "honest_agent.py"
    ok.write_text(
        "import duckdb\nfrom scenario_pipeline.storage import Storage\nfrom scenario_pipeline.scenarios.tokenizer import count_tokens\n"
    )
    assert forbidden_chain(ok, f"{PKG}.agents.reference.honest_agent") is None
