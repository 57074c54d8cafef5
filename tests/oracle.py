"""How test agents cheat: the dataset spec, which names every planted feature and its seed.

The pipeline strips the spec from the agent context (it is the truth by another name), so
oracle agents read it from the dataset's own ``_manifest.json``, as a determined cheater
could; in-process tests may hand it over in the context directly.
"""

from __future__ import annotations

from typing import Any

from scenario_pipeline.storage import Storage


def spec_json(context: dict[str, Any]) -> dict[str, Any]:
    manifest = context["dataset"]["manifest"]
    if "spec" in manifest:
        return manifest["spec"]
    return Storage.from_url(context["dataset"]["url"]).read_json("_manifest.json")["spec"]
