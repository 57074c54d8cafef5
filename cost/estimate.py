"""The estimate: accounting x prices, as cost lines (one per priced item).

One-time lines add up to ``estimate_usd``: what the run spent. Storage is a recurring line (per month
the run's bytes are kept) and is reported apart, since it accrues after the run ends. AWS bills
memory and S3 storage per GB of 2^30 bytes, which is the GB used here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from scenario_pipeline.cost.accounting import GIB, Ledger, Usage
from scenario_pipeline.cost.prices import PriceProfile


@dataclass(frozen=True)
class Line:
    item: str
    quantity: float
    unit: str
    unit_price_usd: float
    amount_usd: float
    recurring: bool = False


def price(usage: Usage, profile: PriceProfile) -> list[Line]:
    """The priced lines of one usage; items with nothing used are left out."""
    lines: list[Line] = []

    def add(item: str, qty: float, unit: str, unit_price: float, recurring: bool = False) -> None:
        if qty:
            lines.append(Line(item, qty, unit, unit_price, qty * unit_price, recurring))

    add("compute.vcpu", usage.thread_seconds * profile.vcpus_per_thread / 3600.0, "vCPU-hours", profile.vcpu_hour)
    add("compute.memory", usage.gb_seconds / 3600.0, "GB-hours", profile.gb_hour)
    add("s3.put", usage.s3_put, "requests", profile.put_per_1000 / 1000.0)
    add("s3.get", usage.s3_get, "requests", profile.get_per_1000 / 1000.0)
    add("s3.list", usage.s3_list, "requests", profile.list_per_1000 / 1000.0)
    if usage.warehouse_seconds:
        # Redshift Serverless bills base RPUs per second with a minimum per active period.
        rpu_hours = max(usage.warehouse_seconds, profile.min_seconds) * profile.base_rpu / 3600.0
        add("warehouse.rpu", rpu_hours, "RPU-hours", profile.rpu_hour)
    if usage.agent_cost_usd:
        lines.append(
            Line("agent.reported", float(usage.cases), "cases", usage.agent_cost_usd / max(usage.cases, 1), usage.agent_cost_usd)
        )
    model = profile.model() if (usage.unpriced_input_tokens or usage.unpriced_output_tokens) else None
    if model:
        _, m = model
        add("agent.tokens_in", usage.unpriced_input_tokens, "tokens", m.input_per_1k / 1000.0)
        add("agent.tokens_out", usage.unpriced_output_tokens, "tokens", m.output_per_1k / 1000.0)
    if usage.bytes_written:
        gb = usage.bytes_written / GIB
        lines.append(
            Line("s3.storage_month", gb, "GB-months", profile.storage_month_usd(gb) / gb, profile.storage_month_usd(gb), True)
        )
    return lines


def one_time_usd(lines: list[Line]) -> float:
    return sum(line.amount_usd for line in lines if not line.recurring)


def usage_cost(usage: Usage, profile: PriceProfile) -> float:
    """What one usage cost, storage months excluded: the number the budget guard adds up."""
    return one_time_usd(price(usage, profile))


def estimate(ledger: Ledger, profile: PriceProfile) -> dict[str, Any]:
    """A run's estimate: total, per stage, per item, and the recurring storage apart."""
    by_stage: dict[str, float] = {}
    by_item: dict[str, float] = {}
    lines_out: list[dict[str, Any]] = []
    for stage, usage in sorted(ledger.by_stage().items()):
        lines = price(usage, profile)
        by_stage[stage] = round(one_time_usd(lines), 10)
        for line in lines:
            if not line.recurring:
                by_item[line.item] = by_item.get(line.item, 0.0) + line.amount_usd
            lines_out.append({"stage": stage, **asdict(line)})
    total = ledger.total()
    recurring = profile.storage_month_usd(total.bytes_written / GIB)  # tiers apply to the run's bytes together
    shard_costs = [usage_cost(u, profile) for u in ledger.shards.values()]
    return {
        "profile": profile.name,
        "as_of": profile.as_of,
        "currency": "USD",
        "estimate_usd": round(sum(by_stage.values()), 10),
        "storage_usd_per_month": round(recurring, 10),
        "by_stage": by_stage,
        "by_item": {k: round(v, 10) for k, v in sorted(by_item.items())},
        "lines": lines_out,
        "shards": {
            "accounted": len(ledger.shards),
            "imputed": len(ledger.imputed_shards),
            "max_usd": max(shard_costs) if shard_costs else 0.0,
        },
        "usage": total.to_dict(),
    }
