"""What a run costs: resource accounting, price profiles, live estimates and a budget guard during a
run, actuals from AWS Cost Explorer after it, and a priced plan before it (docs/costs.md).

- ``accounting``: what a run used, per stage and per case shard (pricing-agnostic quantities).
- ``profiles``: versioned unit prices (``profiles/*.toml``), selectable by name, overridable by a file.
- ``estimate``: accounting x prices, as cost lines.
- ``budget``: the guard that stops submitting shards before the estimate would cross ``--max-cost-usd``.
- ``live``: the per-run tracker the flow and the fan-out use (ledger persisted with the checkpoints).
- ``explorer`` / ``reconcile``: Cost Explorer ``GetCostAndUsage`` by the run-id tag, into the warehouse.
- ``plan``: prices a run of N records on W workers from throughput measured by the benchmarks (cost/plan_inputs.toml).
"""
