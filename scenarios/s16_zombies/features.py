"""S16 zombie tables, part 2: the query log and the truth of which tables are zombies.

The log's background rows (column kinds: ``timestamp`` rising with the query id, ``s16_object_ref``
over every catalog object, ``category`` for the operation) touch random objects. Feature kind
``s16_zombies`` (on the query-log table) moves background rows off every object whose access
history is planted (only active tables and views keep background traffic; views are only read),
then writes the planted events (see the profiles in ``s16_catalog_plan``) at the record ids
their times fall on.

params: ``plan`` (the catalog plan's params).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scenario_pipeline.datasets.columns import register_column_kind
from scenario_pipeline.datasets.features import register_feature_kind
from scenario_pipeline.datasets.hashing import mix64, stream_key, unit_float
from scenario_pipeline.datasets.spec import ColumnSpec, DatasetSpec, FeatureSpec

from .catalog_plan import DAY_US, PROFILES, CatalogPlan, P, catalog_plan, to_us

READ, WRITE = 0, 1  # indices into the ``op`` column's values ("read", "write")
OPS = ("read", "write")
HEARTBEAT_DAYS = 40  # a planted read of every active object this often: none looks idle by chance


@register_column_kind("s16_object_ref")
def _object_ref(col: ColumnSpec, ids: np.ndarray, h: np.ndarray, records: int) -> pa.Array:
    """A random catalog object, dictionary-encoded over every object name (index = object id)."""
    plan = catalog_plan(col.params["plan"])
    indices = (h % np.uint64(len(plan.names))).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(indices), pa.array(plan.names, pa.string()))


@dataclass(frozen=True)
class ZombieTruth:
    plan: CatalogPlan
    event_ids: np.ndarray  # int64 record ids of planted events, ascending
    event_obj: np.ndarray  # int32 object of each
    event_op: np.ndarray  # int8 READ / WRITE
    event_us: np.ndarray  # int64 time of each

    def last_access_us(self, obj: int, as_of_us: int) -> int | None:
        times = self.event_us[(self.event_obj == obj) & (self.event_us <= as_of_us)]
        return int(times.max()) if len(times) else None

    def zombies(self, schema: str, as_of_us: int, idle_days: int) -> list[dict]:
        """Zombie tables of ``schema`` as of ``as_of_us``: a table (not a view) created at least
        ``idle_days`` before, with no read or write in the ``idle_days`` up to ``as_of_us`` and no
        lineage edge downstream. Background traffic never matters: only active tables and views
        have it, and their planted reads alone keep every window of 45+ days busy."""
        cutoff = as_of_us - idle_days * DAY_US
        plan, down = self.plan, self.plan.has_downstream
        busy = set(self.event_obj[(self.event_us > cutoff) & (self.event_us <= as_of_us)].tolist())
        out = []
        for i, name in enumerate(plan.names):
            if plan.schemas[i] != schema or plan.profile[i] == P["view"] or down[i] or plan.created_us[i] > cutoff or i in busy:
                continue
            assert plan.profile[i] not in (P["active"], P["view"]), "an active table looked idle: heartbeats are broken"
            out.append(
                {
                    "table": name,
                    "bytes": int(plan.bytes[i]),
                    "last_access_us": self.last_access_us(i, as_of_us),
                    "profile": PROFILES[int(plan.profile[i])],
                }
            )
        return out


def _quarter_starts(start_us: int, end_us: int) -> list[int]:
    d0 = date.fromtimestamp(start_us / 1e6)
    out: list[int] = []
    y, m = d0.year, ((d0.month - 1) // 3) * 3 + 1
    while True:
        t = to_us(f"{y:04d}-{m:02d}-01")
        if t >= end_us:
            return out
        if t >= start_us:
            out.append(t)
        y, m = (y + 1, 1) if m == 10 else (y, m + 3)


def planted_events(plan: CatalogPlan, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(object, op, time) of every planted event, from the plan alone."""
    objs: list[int] = []
    ops: list[int] = []
    times: list[int] = []
    start, end = plan.start_us, plan.end_us
    span_days = (end - start) // DAY_US
    quarters = _quarter_starts(start, end)

    def emit(o: int, op: int, t: int) -> None:
        objs.append(o)
        ops.append(op)
        times.append(int(min(max(t, start), end - 1)))

    for i, prof in enumerate(plan.profile.tolist()):
        hs = mix64(np.arange(64, dtype=np.uint64), stream_key(seed, "s16-events", i))
        u = unit_float(hs).tolist()
        jitter = (hs % np.uint64(DAY_US)).astype(np.int64).tolist()  # time of day
        if prof in (P["active"], P["view"]):
            first = int(u[0] * HEARTBEAT_DAYS)
            for k, day in enumerate(range(first, span_days, HEARTBEAT_DAYS)):
                emit(i, READ, start + (day + int(u[1 + k % 60] * 5) - 2) * DAY_US + jitter[k % 64])
        elif prof == P["quarterly"]:
            for k, q in enumerate(quarters):  # refresh, then read, in the quarter's first five days
                t = q + int(u[k % 64] * 4) * DAY_US + jitter[k % 64] // 2
                emit(i, WRITE, t)
                emit(i, READ, t + 2 * 3600 * 1_000_000)
        elif prof == P["job_written"]:
            for k, day in enumerate(range(int(u[0] * 7), span_days, 7)):
                emit(i, WRITE, start + day * DAY_US + jitter[k % 64] // 4)
            emit(i, READ, start + int(u[1] * 200) * DAY_US + jitter[1])
        elif prof == P["revived"]:
            for k in range(2 + int(u[0] * 3)):
                emit(i, READ, start + int(u[1 + k] * 90) * DAY_US + jitter[k])
            for k in range(1 + int(u[5] * 3)):
                emit(i, READ, end - (1 + int(u[6 + k] * 24)) * DAY_US - jitter[k + 8])
        elif prof == P["zombie"]:
            count = int(u[0] * 6)  # 0: created and never used
            last = end - int((60 + u[1] * 420) * DAY_US)
            for k in range(count):
                t = last if k == 0 else start + int(u[2 + k] * (last - start))
                emit(i, WRITE if u[10 + k] < 0.3 else READ, t)
    return np.asarray(objs, dtype=np.int32), np.asarray(ops, dtype=np.int8), np.asarray(times, dtype=np.int64)


def place(times: np.ndarray, start_us: int, end_us: int, records: int) -> np.ndarray:
    """Distinct record ids for events at ``times`` (ascending): the id whose background time is
    nearest, moved to the next free id on a collision."""
    if len(times) > records:
        raise ValueError(f"the query log needs at least {len(times)} records for its planted events, has {records}")
    ids = ((times - start_us) * records // (end_us - start_us)).astype(np.int64).clip(0, records - 1)
    k = np.arange(len(ids))
    ids = np.maximum.accumulate(np.maximum(ids - k, 0)) + k  # strictly rising
    return np.minimum(ids, records - len(ids) + k)  # the last ones pushed back inside the log


@register_feature_kind("s16_zombies")
class ZombieKind:
    def truth(self, spec: DatasetSpec, feature: FeatureSpec) -> ZombieTruth:
        plan = catalog_plan(feature.params["plan"])
        obj, op, times = planted_events(plan, feature.params["plan"]["seed"])
        order = np.lexsort((obj, times))
        obj, op, times = obj[order], op[order], times[order]
        ids = place(times, plan.start_us, plan.end_us, spec.table_records(feature.table))
        return ZombieTruth(plan, ids, obj, op, times)

    def plant(
        self, tbl: pa.Table, spec: DatasetSpec, feature: FeatureSpec, truth: ZombieTruth, start: int, stop: int
    ) -> pa.Table:
        plan = truth.plan
        obj_i, op_i, ts_i = (tbl.schema.get_field_index(c) for c in ("object", "op", "ts"))
        objects = tbl.column(obj_i).combine_chunks()
        idx = objects.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=True)
        background = plan.background
        allowed = np.zeros(len(plan.names), dtype=bool)
        allowed[background] = True
        moved = ~allowed[idx]
        rows = np.arange(start, stop, dtype=np.uint64)
        idx[moved] = background[
            mix64(rows[moved], stream_key(feature.params["plan"]["seed"], "s16-move")) % np.uint64(len(background))
        ]
        ops = tbl.column(op_i).combine_chunks()
        op_idx = ops.indices.to_numpy(zero_copy_only=False).astype(np.int8, copy=True)
        op_idx[plan.profile[idx] == P["view"]] = READ  # views are only read
        lo, hi = np.searchsorted(truth.event_ids, [start, stop])
        at = truth.event_ids[lo:hi] - start
        idx[at] = truth.event_obj[lo:hi]
        op_idx[at] = truth.event_op[lo:hi]
        ts = tbl.column(ts_i).combine_chunks()
        mask = np.zeros(len(ts), dtype=bool)
        mask[at] = True
        ts = pc.replace_with_mask(ts, pa.array(mask), pa.array(truth.event_us[lo:hi], type=ts.type))
        tbl = tbl.set_column(obj_i, "object", pa.DictionaryArray.from_arrays(pa.array(idx), objects.dictionary))
        tbl = tbl.set_column(op_i, "op", pa.DictionaryArray.from_arrays(pa.array(op_idx), ops.dictionary))
        return tbl.set_column(ts_i, "ts", ts)
