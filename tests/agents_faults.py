"""Hostile and broken agents for the fault and abuse suite. ``tests.agents_faults:NAME``."""

from __future__ import annotations

import os
import random
import time
from typing import Any


def hangs(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    time.sleep(3600)
    return {}


def raises(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    raise ValueError("I always fail")


def huge(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"record_ids": [], "padding": "x" * (100 * 1024 * 1024)}


def crashes(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    os._exit(3)


def wrong_types(case: dict[str, Any], context: dict[str, Any]) -> Any:
    return ["not", "an", "object"]


def not_json(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"record_ids": {1, 2, 3}}


def writes_dataset(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Tries to overwrite a partition and add a file under the dataset."""
    root = context["dataset"]["url"].removeprefix("file://")
    part = context["dataset"]["manifest"]["tables"]["events"]["partitions"][0]["path"]
    errors = []
    for target, mode in ((os.path.join(root, part), "r+b"), (os.path.join(root, "events", "evil.parquet"), "wb")):
        try:
            with open(target, mode) as fh:
                fh.write(b"corrupted")
        except OSError as exc:
            errors.append(type(exc).__name__)
    if errors:
        raise PermissionError(f"dataset is read-only: {', '.join(errors)}")
    return {"record_ids": []}


def sleeps_0_to_50ms(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    time.sleep(random.random() * 0.05)
    return {"record_ids": []}


def sleeps_0_to_50ms_by_case(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """issue 9 load test: like sleeps_0_to_50ms, but the sleep is a pure function of the case (seeded by
    its content, which is unique per case), so a rerun sleeps the same 0-50 ms per case."""
    import hashlib
    import json

    seed = hashlib.sha256(json.dumps(case, sort_keys=True, default=str).encode()).digest()
    time.sleep(random.Random(seed).random() * 0.05)
    return {"record_ids": []}


def sleeps_100_to_300ms(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Issue 9, infrastructure faults: a fan-out slow enough to break a server or a disk in the middle of it."""
    time.sleep(0.1 + random.random() * 0.2)
    return {"record_ids": []}


# One run, every fault: each case gets one misbehaviour, a pure function of the case's content, so
# the test can tell from the redrawn cases which reason each case must fail with.
FAULTS = ("raises", "hangs", "huge", "crashes", "wrong_types", "not_json", "writes_dataset")


def pick(case: dict[str, Any], choices: tuple[str, ...]) -> str:
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(case, sort_keys=True, default=str).encode()).digest()
    return choices[int.from_bytes(digest[:8], "big") % len(choices)]


def every_fault(case: dict[str, Any], context: dict[str, Any]) -> Any:
    return globals()[pick(case, FAULTS)](case, context)


def reads_truth(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Looks for the answer key next to the dataset: {storage}/truth/... (hidden in the sandbox)."""
    storage = context["dataset"]["url"].removeprefix("file://").split("/datasets/")[0]
    found = []
    for folder, _, files in os.walk(os.path.join(storage, "truth")):
        found += [os.path.join(folder, f) for f in files]
    return {"found": sorted(found)}
