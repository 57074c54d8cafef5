"""For the Cost Explorer tests: moto's server seeded through its own API, and a throttling proxy.

The proxy is a real HTTP hop on loopback: it answers the first N requests the way Cost Explorer
throttles (HTTP 400, JSON error body ``ThrottlingException``) and forwards the rest to moto.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

import httpx

TAG = "scenario-run-id"


def group(run_id: str | None, service: str, usd: float) -> dict[str, Any]:
    """A Cost Explorer group: ``KEY$VALUE`` for the tag (``KEY$`` for untagged cost), then the service."""
    return {"Keys": [f"{TAG}${run_id or ''}", service], "Metrics": {"UnblendedCost": {"Amount": f"{usd}", "Unit": "USD"}}}


def day(start: str, end: str, groups: list[dict[str, Any]], estimated: bool) -> dict[str, Any]:
    return {"TimePeriod": {"Start": start, "End": end}, "Total": {}, "Groups": groups, "Estimated": estimated}


def pages(*days_per_page: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One GetCostAndUsage response per page, each but the last naming the next page's token."""
    out = []
    for i, days in enumerate(days_per_page):
        page: dict[str, Any] = {
            "ResultsByTime": days,
            "DimensionValueAttributes": [],
            "GroupDefinitions": [{"Type": "TAG", "Key": TAG}, {"Type": "DIMENSION", "Key": "SERVICE"}],
        }
        if i + 1 < len(days_per_page):
            page["NextPageToken"] = f"page-{i + 2}"
        out.append(page)
    return out


def seed(endpoint: str, results: list[dict[str, Any]]) -> None:
    """Queue responses in moto: each new request body takes the next one (the same body gets the same one)."""
    r = httpx.post(f"{endpoint}/moto-api/static/ce/cost-and-usage-results", json={"results": results}, timeout=10)
    assert r.status_code == 201, r.text


def reset(endpoint: str) -> None:
    httpx.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()


class ThrottlingProxy:
    """Loopback HTTP proxy: the first ``throttle`` requests get Cost Explorer's throttling error."""

    def __init__(self, target: str, throttle: int, codes: tuple[str, ...] = ("ThrottlingException",)) -> None:
        self.target = urlparse(target)
        self.throttle = throttle
        self.codes = codes
        self.throttled = 0
        self.forwarded = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy._lock:
                    n = proxy.throttled + proxy.forwarded
                    throttle = n < proxy.throttle
                    if throttle:
                        proxy.throttled += 1
                    else:
                        proxy.forwarded += 1
                if throttle:
                    code = proxy.codes[n % len(proxy.codes)]
                    payload = json.dumps({"__type": code, "message": "Rate exceeded"}).encode()
                    self.send_response(400)
                    self.send_header("Content-Type", "application/x-amz-json-1.1")
                    self.send_header("x-amzn-RequestId", f"throttled-{n}")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.target.hostname, proxy.target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                conn.request("POST", self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> ThrottlingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
