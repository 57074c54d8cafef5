"""scenario-pipeline: run scenario workloads against data agents, at scale, with honest numbers.

The repository's top-level folders (``flows/``, ``tasks/``, ``datasets/``, ``scenarios/``,
``agents/``, ``warehouse/``, ``infra/``) are subpackages of this one package. An installed wheel
copies them under ``scenario_pipeline/``; in a source checkout (a Prefect worker after a
``git_clone`` pull step, or an editable install) this file adds the repository root to the
package path so that ``scenario_pipeline.flows`` resolves to ``./flows``. No top-level
``datasets`` module is ever installed, so the Hugging Face ``datasets`` package keeps its name.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

_here = Path(__file__).resolve().parent
_root = _here.parent
if not (_here / "flows").is_dir() and (_root / "flows" / "__init__.py").is_file():
    __path__.append(str(_root))  # source checkout layout
