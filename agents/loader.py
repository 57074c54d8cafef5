"""Turn an agent spec into a callable, and check up front that it imports or answers.

Specs: ``reference`` (or ``reference:key=value,...`` for its parameters), ``package.module:callable``,
or an ``http(s)://`` endpoint. See docs/agents.md for the contract.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import random
import socket
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlparse

import httpx

from scenario_pipeline.agents.base import Agent, HasReferenceAgent
from scenario_pipeline.errors import AgentError

AUTH_ENV = "SCENARIO_AGENT_AUTHORIZATION"  # sent as the Authorization header to HTTP agents


def agent_kind(spec: str) -> str:
    if spec == "reference" or spec.startswith("reference:"):
        return "reference"
    if spec.startswith(("http://", "https://")):
        url = urlparse(spec)
        if url.username or url.password:
            # The agent spec is logged, stored with the run and shown in the UI: no secrets in it,
            # and not in this message either.
            raise AgentError(
                f"the agent URL for {url.hostname} carries credentials; remove them and put the "
                f"Authorization header value in {AUTH_ENV} instead"
            )
        return "http"
    if ":" in spec:
        return "python"
    raise AgentError(f"agent {spec!r} is not 'reference', 'package.module:callable' or an http(s):// URL")


def _reference_params(spec: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if ":" not in spec:
        return params
    for item in filter(None, spec.split(":", 1)[1].split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise AgentError(f"reference agent parameter {item!r} is not key=value")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


def load_agent(spec: str, scenario: HasReferenceAgent | None) -> Agent:
    """The agent ``spec`` names; ``scenario`` is needed (and used) only for the reference agent."""
    kind = agent_kind(spec)
    if kind == "reference":
        if scenario is None:
            raise ValueError("the reference agent needs its scenario")
        return scenario.reference_agent(**_reference_params(spec))
    if kind == "http":
        return HttpAgent(spec)
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to fix
        raise AgentError(f"agent {spec!r} does not import: {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise AgentError(f"agent {spec!r}: module {module_name} has no attribute {attr!r}")
    if not callable(obj):
        raise AgentError(f"agent {spec!r} is not callable")
    return obj


def check_agent(spec: str, scenario: HasReferenceAgent) -> None:
    """Fail before any work starts: the callable must import, the endpoint must accept connections."""
    if agent_kind(spec) == "http":
        url = urlparse(spec)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname, port), timeout=5).close()
        except OSError as exc:
            raise AgentError(
                f"agent {spec} does not answer: cannot connect to {url.hostname}:{port} ({exc.strerror or exc})"
            ) from exc
        return
    load_agent(spec, scenario)


class HttpAgent:
    """POSTs ``{"case": ..., "context": ...}`` as JSON; the response body is the answer (JSON)."""

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._client: httpx.Client | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "timeout_s": self.timeout_s, "_client": None}

    def __call__(self, case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        if self._client is None:
            from scenario_pipeline.settings import AgentSettings

            secret = AgentSettings().authorization
            auth = secret.get_secret_value() if secret else None
            self._client = httpx.Client(timeout=self.timeout_s, headers={"Authorization": auth} if auth else None)
        # The manifest can be megabytes; HTTP agents fetch it from manifest_url when they need it.
        slim = {**context, "dataset": {k: v for k, v in context.get("dataset", {}).items() if k != "manifest"}}
        resp = self._client.post(self.url, json={"case": case, "context": slim})
        if resp.status_code >= 400:
            raise AgentError(f"HTTP agent answered {resp.status_code}: {resp.text[:200]}")
        try:
            return resp.json()
        except ValueError as exc:
            raise AgentError(f"HTTP agent answered invalid JSON: {resp.text[:200]!r}") from exc


# ---------------------------------------------------------------------------------------------
# Many calls at once: the fan-out's lanes (tasks/lanes.py) call HTTP agents through one pooled
# async client per lane, and retry what the agent refused for now (docs/agents.md, "Concurrency,
# rate limits and retries").
# ---------------------------------------------------------------------------------------------
CONNECT_TIMEOUT_S = 10.0  # a connection not made within this is retried (capped by the case time limit)
MAX_RETRY_AFTER_S = 120.0  # the longest Retry-After honoured; a longer one is waited this long


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def backoff_s(attempt: int, retry_after: float | None, base_s: float = 0.5, cap_s: float = 30.0) -> float:
    """Exponential backoff with full jitter before attempt ``attempt + 1`` (``attempt`` >= 1 made so far):
    uniform over [0, min(cap, base x 2^(attempt-1))], after the agent's Retry-After when it gave one."""
    jitter = random.uniform(0.0, min(cap_s, base_s * 2 ** (attempt - 1)))
    return (min(retry_after, MAX_RETRY_AFTER_S) if retry_after else 0.0) + jitter


@dataclass
class HttpReply:
    """One attempt at an HTTP agent. ``kind`` (tasks/score.py CaseError values) is None for an answer;
    ``rate_limited`` and ``unavailable`` are the retryable ones."""

    answer: bytes | None
    error: str | None
    kind: str | None
    latency_ms: float
    retry_after: float | None = None


def _raised(text: str) -> str:
    # As a one-call sandbox reports the AgentError HttpAgent raises: "agent raised AgentError: ...".
    return f"agent raised AgentError: {text[:300]}"


class AsyncHttpAgent:
    """``HttpAgent`` for many calls at once: one ``httpx.AsyncClient`` with a pool of up to
    ``max_connections`` kept-alive connections, the same request, the same Authorization header
    (settings ``agent.authorization``) and the same error messages; 429 and 503 (with their
    Retry-After), connection resets and connect timeouts come back as retryable replies."""

    # httpx's connection pool looks through its connections on every request: one client holding 1,000
    # connections took 21.5 s for 1,000 requests of 2 s here, 40 clients of 25 connections 3.0 s.
    CONNECTIONS_PER_CLIENT = 25

    def __init__(self, url: str, max_connections: int) -> None:
        from scenario_pipeline.settings import AgentSettings

        secret = AgentSettings().authorization
        auth = secret.get_secret_value() if secret else None
        self.url = url
        self.max_connections = max_connections
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = auth
        per = self.CONNECTIONS_PER_CLIENT
        n = max(1, -(-max_connections // per))
        limits = httpx.Limits(max_connections=per, max_keepalive_connections=per)
        self.clients = [httpx.AsyncClient(headers=headers, timeout=None, limits=limits) for _ in range(n)]
        self.busy = [0] * n  # requests in flight on each client: a request goes to the least busy

    @property
    def client(self) -> httpx.AsyncClient:  # the first: tests and the one-client case
        return self.clients[0]

    @staticmethod
    def context_json(context: dict[str, Any]) -> bytes:
        """The context as HTTP agents get it (no manifest: they fetch manifest_url), encoded once per run."""
        slim = {**context, "dataset": {k: v for k, v in context.get("dataset", {}).items() if k != "manifest"}}
        return json.dumps(slim).encode()

    @staticmethod
    def body(case: dict[str, Any], context_json: bytes) -> bytes:
        return b'{"case": ' + json.dumps(case).encode() + b', "context": ' + context_json + b"}"

    async def attempt(self, body: bytes, timeout_s: float, max_bytes: int) -> HttpReply:
        started = time.perf_counter()
        i = self.busy.index(min(self.busy))
        self.busy[i] += 1
        try:
            async with asyncio.timeout(timeout_s):
                resp = await self.clients[i].post(
                    self.url, content=body, timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S), pool=None)
                )
        except TimeoutError:
            return HttpReply(None, f"timeout: no answer within {timeout_s:g} s", "timeout", timeout_s * 1000.0)
        except httpx.ConnectTimeout:
            return HttpReply(None, "agent unavailable: connect timeout", "unavailable", self._ms(started))
        except httpx.ConnectError as exc:
            return HttpReply(
                None, f"agent unavailable: cannot connect ({str(exc)[:120] or 'refused'})", "unavailable", self._ms(started)
            )
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            return HttpReply(None, "agent unavailable: connection reset", "unavailable", self._ms(started))
        except httpx.TimeoutException:
            return HttpReply(None, f"timeout: no answer within {timeout_s:g} s", "timeout", timeout_s * 1000.0)
        except httpx.HTTPError as exc:
            return HttpReply(None, f"agent raised {type(exc).__name__}: {str(exc)[:300]}", "raised", self._ms(started))
        finally:
            self.busy[i] -= 1
        latency_ms = self._ms(started)
        status = resp.status_code
        if status in (429, 503):
            after = parse_retry_after(resp.headers.get("Retry-After"))
            what = "rate limited" if status == 429 else "agent unavailable"
            return HttpReply(
                None, f"{what}: HTTP {status}", "rate_limited" if status == 429 else "unavailable", latency_ms, after
            )
        if status >= 400:
            return HttpReply(None, _raised(f"HTTP agent answered {status}: {resp.text[:200]}"), "raised", latency_ms)
        try:
            answer = json.loads(resp.content)
        except ValueError:
            return HttpReply(None, _raised(f"HTTP agent answered invalid JSON: {resp.text[:200]!r}"), "raised", latency_ms)
        try:
            encoded = json.dumps(answer, sort_keys=True, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            return HttpReply(None, f"answer is not JSON-serializable: {str(exc)[:200]}", "not_json", latency_ms)
        if len(encoded) > max_bytes:
            return HttpReply(
                None, f"answer too large: {len(encoded)} bytes over the {max_bytes} byte limit", "too_large", latency_ms
            )
        return HttpReply(encoded, None, None, latency_ms)

    @staticmethod
    def _ms(started: float) -> float:
        return (time.perf_counter() - started) * 1000.0

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
