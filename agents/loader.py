"""Turn an agent spec into a callable, and check up front that it imports or answers.

Specs: ``reference`` (or ``reference:key=value,...`` for its parameters), ``package.module:callable``,
or an ``http(s)://`` endpoint. See docs/agents.md for the contract.
"""

from __future__ import annotations

import importlib
import json
import socket
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
            raise AgentError(f"the agent URL for {url.hostname} carries credentials; remove them and put the "
                             f"Authorization header value in {AUTH_ENV} instead")
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


def load_agent(spec: str, scenario: HasReferenceAgent) -> Agent:
    kind = agent_kind(spec)
    if kind == "reference":
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
            raise AgentError(f"agent {spec} does not answer: cannot connect to {url.hostname}:{port} ({exc.strerror or exc})") from exc
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
