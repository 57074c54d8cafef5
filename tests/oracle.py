"""How test agents cheat: the full dataset spec, whose seed and planted features are the answer key.

The manifest an agent can read holds only the public spec (datasets/manifest.py), and a sandboxed
agent cannot see ``{storage}/truth``. Oracle agents therefore rebuild the spec the way the flow
did, from the scenario, the run's ``records`` (in the agent context) and the seed the tests run
with (``SCENARIO_SEED`` or the default), and check it against the manifest's hash. Contexts that
tests build in-process hand the spec over as ``oracle_spec``.
"""

from __future__ import annotations

import os
from typing import Any


def spec_json(context: dict[str, Any]) -> dict[str, Any]:
    if "oracle_spec" in context:
        return context["oracle_spec"]
    from scenario_pipeline.scenarios.registry import get_scenario
    from scenario_pipeline.settings import DEFAULT_SEED

    seed = int(os.environ.get("SCENARIO_SEED", DEFAULT_SEED))
    spec = get_scenario(context["scenario"]).dataset_spec(context["records"], seed)
    want = context["dataset"]["manifest"]["spec_hash"]
    if spec.spec_hash() != want:
        raise RuntimeError(
            f"the oracle rebuilt spec {spec.spec_hash()}, the dataset is {want}: run the test with the default seed"
        )
    return spec.model_dump(mode="json")
