"""Estimates against hand computations, price profiles (built in, user overrides, bad files), the budget guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenario_pipeline.cost.accounting import Ledger, Usage, usage_of_rows
from scenario_pipeline.cost.budget import BudgetGuard, check_max_cost
from scenario_pipeline.cost.estimate import estimate, price
from scenario_pipeline.cost.prices import DEFAULT_PROFILE, load_profile, profile_names
from scenario_pipeline.errors import UsageError


def hand_ledger() -> Ledger:
    led = Ledger("hand-1")
    led.add_stage(
        "generate", Usage(thread_seconds=7200, gb_seconds=28800, s3_put=2001, s3_get=10, s3_list=1, bytes_written=10 * 2**30)
    )
    led.shards[0] = Usage(
        thread_seconds=1800,
        gb_seconds=3600,
        s3_put=1,
        s3_get=1,
        bytes_written=2**20,
        input_tokens=3000,
        output_tokens=1000,
        agent_cost_usd=0.05,
        cases=5,
    )
    led.shards[1] = Usage(
        thread_seconds=1800,
        gb_seconds=3600,
        s3_put=1,
        s3_get=1,
        bytes_written=2**20,
        input_tokens=2000,
        output_tokens=500,
        unpriced_input_tokens=2000,
        unpriced_output_tokens=500,
        cases=5,
    )
    led.add_stage("publish", Usage(warehouse_rows=100, warehouse_seconds=30))
    return led


def test_estimate_of_a_hand_sized_run_matches_the_hand_computation() -> None:
    est = estimate(hand_ledger(), load_profile("aws-us-east-1-2026-11"))
    # generate: 7200 thread-s = 2 vCPU-h x 0.04048 = 0.08096; 28800 GB-s = 8 GB-h x 0.004445 = 0.03556;
    #           2001 PUT x 0.005/1000 = 0.010005; 10 GET x 0.0004/1000 = 0.000004; 1 LIST x 0.005/1000 = 0.000005
    #           = 0.126534
    assert est["by_stage"]["generate"] == pytest.approx(0.126534, abs=1e-9)
    # fanout (both shards): 3600 thread-s = 1 vCPU-h -> 0.04048; 7200 GB-s = 2 GB-h -> 0.00889; 2 PUT -> 0.00001;
    #           2 GET -> 0.0000008; reported $0.05; shard 1 reported no cost, so its tokens are priced with the
    #           default model (Sonnet 4.5): 2000 in x 0.003/1000 = 0.006, 500 out x 0.015/1000 = 0.0075
    #           = 0.1128808
    assert est["by_stage"]["fanout"] == pytest.approx(0.1128808, abs=1e-9)
    # publish: 30 s on Redshift is billed as the 60 s minimum x 8 RPU = 480 RPU-s = 0.1333 RPU-h x 0.375 = 0.05
    assert est["by_stage"]["publish"] == pytest.approx(0.05, abs=1e-9)
    assert est["estimate_usd"] == pytest.approx(0.126534 + 0.1128808 + 0.05, abs=1e-9)  # 0.2894148
    # storage, per month and not in the total: 10 GiB + 2 MiB = 10.001953125 GB x 0.023 = 0.230044921875
    assert est["storage_usd_per_month"] == pytest.approx(0.230044921875, abs=1e-9)
    assert est["by_item"]["agent.reported"] == pytest.approx(0.05)
    assert est["by_item"]["agent.tokens_in"] == pytest.approx(0.006)
    assert est["usage"]["input_tokens"] == 5000 and est["usage"]["cases"] == 10
    assert est["shards"] == {
        "accounted": 2,
        "imputed": 0,
        "max_usd": pytest.approx(0.02024 + 0.004445 + 0.000005 + 0.0000004 + 0.05),
    }


def test_a_user_file_overrides_some_prices_of_a_builtin_profile(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text(
        'extends = "aws-us-east-1-2026-11"\nname = "mine"\n[compute]\nvcpu_hour = 0.1\n[models]\ndefault = "claude-haiku-4-5"\n'
    )
    mine = load_profile(str(f))
    assert (mine.name, mine.vcpu_hour, mine.gb_hour, mine.put_per_1000) == ("mine", 0.1, 0.004445, 0.005)  # the rest is inherited
    lines = {
        ln.item: ln.amount_usd
        for ln in price(Usage(thread_seconds=3600, unpriced_input_tokens=1000, unpriced_output_tokens=1000), mine)
    }
    # 1 vCPU-h x 0.1 = 0.1; Haiku 4.5: 1000 in x 0.001/1000 + 1000 out x 0.005/1000
    assert lines == {
        "compute.vcpu": pytest.approx(0.1),
        "agent.tokens_in": pytest.approx(0.001),
        "agent.tokens_out": pytest.approx(0.005),
    }
    graviton = load_profile("aws-us-east-1-2026-11-graviton")
    assert (graviton.vcpu_hour, graviton.gb_hour, graviton.get_per_1000) == (0.03238, 0.00356, 0.0004)
    assert DEFAULT_PROFILE in profile_names() and "aws-us-east-1-2026-11-graviton" in profile_names()


def test_storage_is_priced_tier_by_tier() -> None:
    p = load_profile(DEFAULT_PROFILE)
    # 51,200 GB (50 TB) x 0.023 + 1,000 GB x 0.022 = 1177.6 + 22 = 1199.6
    assert p.storage_month_usd(51_200 + 1_000) == pytest.approx(1199.6)
    # 100 GB, all in the first tier: 2.3
    assert p.storage_month_usd(100) == pytest.approx(2.3)


@pytest.mark.parametrize(
    "text,message",
    [
        ('extends = "no-such-profile"\n', "unknown price profile 'no-such-profile'"),
        ('extends = "aws-us-east-1-2026-11"\n[compute]\nvcpu_hour = -1\n', "[compute] vcpu_hour must be a number >= 0, got -1"),
        ('extends = "aws-us-east-1-2026-11"\n[storage]\nget_per_1000 = "free"\n', "[storage] get_per_1000 must be a number >= 0"),
        ('name = "partial"\n[compute]\nvcpu_hour = 0.1\n', "lacks [compute] gb_hour"),
        (
            'extends = "aws-us-east-1-2026-11"\n[models]\ndefault = "gpt-x"\n',
            "models.default is 'gpt-x', which has no [models.gpt-x] prices",
        ),
        ("this is not toml", "is not valid TOML"),
    ],
)
def test_a_bad_profile_is_one_clear_message(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(UsageError, match=None) as exc:
        load_profile(str(f))
    assert message in str(exc.value)


def test_unknown_profile_names_and_missing_files_say_what_exists(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown price profile 'aws-mars-1'; choose one of aws-us-east-1-2026-11"):
        load_profile("aws-mars-1")
    with pytest.raises(UsageError, match="does not exist"):
        load_profile(str(tmp_path / "missing.toml"))
    loop = tmp_path / "loop.toml"
    loop.write_text(f'extends = "{loop}"\n')
    with pytest.raises(UsageError, match="extends itself"):
        load_profile(str(loop))


def test_agent_usage_of_rows_prices_only_tokens_without_a_reported_cost() -> None:
    rows = [
        {"input_tokens": 100, "output_tokens": 20, "cost_usd": 0.01},
        {"input_tokens": 300, "output_tokens": 40, "cost_usd": None},
        {"input_tokens": None, "output_tokens": None, "cost_usd": None},
    ]
    u = usage_of_rows(rows)
    assert (u.cases, u.input_tokens, u.output_tokens, u.agent_cost_usd) == (3, 400, 60, 0.01)
    assert (u.unpriced_input_tokens, u.unpriced_output_tokens) == (300, 40)


def test_the_budget_guard_pilots_then_projects_with_the_dearest_case() -> None:
    g = BudgetGuard(0.10)
    assert g.allow(0, 2) is True  # nothing known yet: one pilot shard
    assert g.allow(2, 2) is False and not g.refused  # a second shard waits for the pilot's price
    g.shard_done(0.021, 2)  # $0.0105 per case ($0.01 agent + a little compute)
    # spent 0.021: a shard may go while 0.021 + cases in flight and new x 0.0105 <= 0.10, i.e. up to 7 cases
    assert g.allow(0, 2) and g.allow(2, 2) and g.allow(4, 2)  # 0.021 + 6 x 0.0105 = 0.084
    assert g.allow(6, 2) is False and not g.refused  # 0.021 + 8 x 0.0105 = 0.105 > 0.10: wait for those in flight
    g.shard_done(0.020, 2)  # a cheaper shard does not lower the per-case price used
    g.shard_done(0.021, 2)
    assert g.allow(2, 2) is False  # 0.062 + 4 x 0.0105 = 0.104
    g.shard_done(0.021, 2)
    assert g.spent_usd == pytest.approx(0.083)
    assert g.allow(0, 2) is False and g.refused  # 0.083 + 2 x 0.0105 = 0.104 > 0.10, and nothing left to report back
    assert g.remaining_estimate(12) == pytest.approx(0.126)  # 12 cases x 0.0105
    resumed = BudgetGuard(0.50, spent_usd=0.083, per_case_usd=0.0105)  # a rerun knows the earlier attempts' price
    assert resumed.allow(0, 2) and resumed.allow(2, 2)


def test_max_cost_must_be_a_positive_number() -> None:
    assert check_max_cost(None) is None and check_max_cost(2) == 2.0
    for bad in (0, -1.0, float("nan"), float("inf"), True, "5"):
        with pytest.raises(UsageError, match="max cost must be a positive number of US dollars"):
            check_max_cost(bad)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--max-cost-usd", "0"], "max cost must be a positive number of US dollars, got 0.0"),
        (["--max-cost-usd", "-3"], "max cost must be a positive number of US dollars, got -3.0"),
        (["--price-profile", "aws-mars-1"], "unknown price profile 'aws-mars-1'"),
    ],
)
def test_bad_budget_or_profile_on_the_command_line_is_one_clear_line(args: list[str], message: str, tmp_path: Path) -> None:
    from tests.helpers import run_cli

    data = tmp_path / "data"
    proc = run_cli(["run", "s12", *args, "--data-dir", str(data)], {"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr and proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr
    assert not data.exists()  # nothing written
