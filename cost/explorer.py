"""AWS Cost Explorer: daily cost by the run-id cost-allocation tag and by service.

``GetCostAndUsage`` (boto3 ``ce``) grouped by ``TAG scenario-run-id`` and ``DIMENSION SERVICE``,
every page (``NextPageToken``), each request retried on ``ThrottlingException`` and
``LimitExceededException`` with exponential backoff and full jitter. botocore's own retries are
turned off for this client so that the backoff here is the only one (and is what tests exercise).

Every request costs $0.01 (Cost Explorer API pricing), so a reconcile asks for a window of days
once, not per run. The endpoint follows the standard AWS settings (``AWS_ENDPOINT_URL_COST_EXPLORER``
or ``AWS_ENDPOINT_URL``; tests point it at moto's server on loopback).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from scenario_pipeline.errors import ScenarioError

RETRYABLE = ("ThrottlingException", "LimitExceededException", "TooManyRequestsException", "RequestLimitExceeded")


class CostExplorerError(ScenarioError):
    """Cost Explorer refused or could not be reached; the message says what to check."""


@dataclass
class DayCost:
    run_id: str  # "" for cost that carries no run-id tag
    day: date
    service: str
    amount_usd: float
    estimated: bool


@dataclass
class Fetch:
    rows: list[DayCost] = field(default_factory=list)
    pages: int = 0
    retries: int = 0


def ce_client(region: str = "us-east-1", endpoint_url: str | None = None) -> Any:
    """Cost Explorer's API lives in us-east-1 whatever region the resources are in."""
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=60)
    return boto3.client("ce", region_name=region, endpoint_url=endpoint_url, config=config)


def call_with_backoff(
    call: Callable[[], dict[str, Any]],
    max_attempts: int,
    base_s: float,
    cap_s: float,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, Any], int]:
    """(response, retries): the call, retried on throttling with exponential backoff and full jitter."""
    for attempt in range(max_attempts):
        try:
            return call(), attempt
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in RETRYABLE:
                raise CostExplorerError(
                    f"Cost Explorer refused GetCostAndUsage: {code}: {exc.response.get('Error', {}).get('Message', '')}; "
                    "check the credentials' ce:GetCostAndUsage permission and that the tag is activated (docs/costs.md)"
                ) from exc
            if attempt + 1 == max_attempts:
                raise CostExplorerError(
                    f"Cost Explorer is still throttling ({code}) after {max_attempts} attempts; "
                    "run the reconcile again later or raise SCENARIO_COST_CE_MAX_ATTEMPTS"
                ) from exc
            sleep(random.uniform(0, min(cap_s, base_s * 2**attempt)))
        except BotoCoreError as exc:
            raise CostExplorerError(
                f"cannot reach Cost Explorer: {exc}; check the network, the region and AWS credentials"
            ) from exc
    raise AssertionError("unreachable")


def _tag_value(key: str, tag_key: str) -> str:
    """Cost Explorer names a tag group ``KEY$VALUE`` (``KEY$`` when untagged)."""
    prefix = f"{tag_key}$"
    return key[len(prefix) :] if key.startswith(prefix) else key


def daily_costs_by_run(
    client: Any,
    start: date,
    end: date,
    tag_key: str,
    max_attempts: int = 8,
    base_s: float = 1.0,
    cap_s: float = 60.0,
    metric: str = "UnblendedCost",
) -> Fetch:
    """Every (run, day, service) cost in [start, end), following every page."""
    if end <= start:
        raise CostExplorerError(f"empty window: {start} to {end}")
    request: dict[str, Any] = {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": "DAILY",
        "Metrics": [metric],
        "GroupBy": [{"Type": "TAG", "Key": tag_key}, {"Type": "DIMENSION", "Key": "SERVICE"}],
    }
    out = Fetch()
    while True:
        resp, retries = call_with_backoff(lambda: client.get_cost_and_usage(**request), max_attempts, base_s, cap_s)
        out.pages += 1
        out.retries += retries
        for period in resp.get("ResultsByTime", []):
            day = date.fromisoformat(period["TimePeriod"]["Start"])
            estimated = bool(period.get("Estimated", False))
            for group in period.get("Groups", []):
                keys = group.get("Keys", [])
                amount = float(group.get("Metrics", {}).get(metric, {}).get("Amount", 0.0))
                run_id = _tag_value(keys[0], tag_key) if keys else ""
                service = keys[1] if len(keys) > 1 else "unknown"
                out.rows.append(DayCost(run_id, day, service, amount, estimated))
        token = resp.get("NextPageToken")
        if not token:
            return out
        request["NextPageToken"] = token
