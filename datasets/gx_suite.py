"""The spec's business rules as a Great Expectations suite, run on a sample of a partition.

``import great_expectations`` takes seconds, so nothing here is imported until a partition is
first validated, and each process builds its ephemeral context once and keeps it (a Dask worker
pays the import once, not per partition). GX validates a pandas frame of the sample rows;
dictionary columns arrive as their strings, timestamps as microseconds since the epoch (the
unit of their rules).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from functools import lru_cache
from typing import Any

import pyarrow as pa
import tqdm

from scenario_pipeline.datasets.columns import effective_rules
from scenario_pipeline.datasets.spec import ColumnSpec, Rules, TableSpec, null_allowance

_LOCK = threading.Lock()  # a GX context is not safe to share between threads
_SUITES: dict[tuple[str, int], Any] = {}  # built once per table shape and sample size


@lru_cache(maxsize=1)
def _batch_definition() -> Any:
    """One ephemeral context per process, with a pandas dataframe asset, progress bars off."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    tqdm.tqdm.monitor_interval = 0  # no tqdm monitor thread: it kept Dask workers from exiting promptly
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # "created temporary directory" per worker
    import great_expectations as gx  # lazy: 2.3-3.3 s, paid by the first partition validated (module docstring)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("partitions").add_dataframe_asset("partition")
    return asset.add_batch_definition_whole_dataframe("sample")


def expectation_suite(tspec: TableSpec, rows: int) -> Any:
    """The suite for a sample of ``rows`` rows of ``tspec``; each expectation's ``meta`` names
    the (column, rule) it checks."""
    _batch_definition()  # a suite needs a context to exist
    import great_expectations as gx  # lazy: as in _batch_definition
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=f"{tspec.name}-rules")
    for col in tspec.columns:
        r: Rules = effective_rules(col)

        def add(rule: str, exp: Any, col: ColumnSpec = col) -> None:
            exp.meta = {"column": col.name, "rule": rule}
            suite.add_expectation(exp)

        mostly = 1.0 - null_allowance(r.max_null_rate, rows) / max(rows, 1)
        add("nulls", gxe.ExpectColumnValuesToNotBeNull(column=col.name, mostly=max(0.0, mostly)))
        if r.min is not None or r.max is not None:  # one expectation for both bounds: GX's cost is per expectation
            add("range", gxe.ExpectColumnValuesToBeBetween(column=col.name, min_value=r.min, max_value=r.max))
        if r.allowed is not None:
            add("allowed", gxe.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(r.allowed)))
        if r.pattern is not None:
            # Non-capturing groups: pandas warns about capturing groups in str.contains.
            add("pattern", gxe.ExpectColumnValuesToMatchRegex(column=col.name, regex=re.sub(r"\((?!\?)", "(?:", r.pattern)))
        if r.unique:
            add("unique", gxe.ExpectColumnValuesToBeUnique(column=col.name))
    return suite


def sample_frame(sample: pa.Table) -> Any:
    """The sample as pandas, in the units the rules use."""
    cols = []
    for arr in sample.columns:
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        elif pa.types.is_timestamp(arr.type):
            arr = arr.cast(pa.int64())
        cols.append(arr)
    return pa.Table.from_arrays(cols, names=sample.column_names).to_pandas()


def gx_failures(sample: pa.Table, tspec: TableSpec) -> dict[tuple[str, str], str]:
    """Every expectation the sample fails: (column, rule) -> what GX saw ("range" stands for
    both bounds)."""
    frame = sample_frame(sample)
    with _LOCK:
        batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
        key = (tspec.model_dump_json(), len(frame))
        if key not in _SUITES:
            _SUITES[key] = expectation_suite(tspec, len(frame))
        result = batch.validate(_SUITES[key], result_format="BASIC")
    failed = {}
    for r in result.results:
        if r.success:
            continue
        meta = r.expectation_config.meta or {}
        res = r.result or {}
        if r.exception_info and r.exception_info.get("raised_exception"):
            seen = f"{r.expectation_config.type} raised {r.exception_info.get('exception_message')}"
        else:
            examples = (res.get("partial_unexpected_list") or [])[:3]
            seen = (
                f"{r.expectation_config.type}: {res.get('unexpected_count', 0):,} of {res.get('element_count', len(frame)):,} "
                f"sampled rows unexpected" + (f", e.g. {examples}" if examples else "")
            )
        failed[(meta["column"], meta["rule"])] = seen
    return failed
