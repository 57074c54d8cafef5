"""A local HTTP agent for measuring the fan-out: asyncio, holds thousands of open requests, counts them.

Each POST is answered after ``--delay`` seconds (the time a model API takes), with the answer looked
up in ``--answers`` (a JSON file: S12 token -> record ids, computed up front) or ``{"record_ids": []}``.
The server measures what matters at the agent: the most requests open at once (received, not yet
answered). ``GET /stats`` returns its counters as JSON; ``POST /stats/reset`` zeroes them.

Scripted refusals, for the retry and rate-limit tests and the 429 storm:
- ``--rate-limit P``: HTTP 429 with ``Retry-After: --retry-after`` to a fraction P of requests, chosen by
  a hash of the case and how often it was seen, never more than ``--max-refusals`` times for one case
  (so a run with enough retries always completes);
- ``--unavailable P``: HTTP 503 likewise; ``--reset P``: the connection is reset with no answer;
- ``--limit-above C``: 429 to every request that arrives while C are already open (a real rate limit).

    .venv/bin/python benchmarks/io_agent.py --port 8770 --delay 2

Importable: ``serve_in_thread(...)`` starts one in a daemon thread of the caller (its own event loop).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Script:
    delay_s: float = 2.0
    rate_limit: float = 0.0
    unavailable: float = 0.0
    reset: float = 0.0
    retry_after: str | None = "1"
    max_refusals: int = 3
    limit_above: int | None = None
    answers: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stats:
    open: int = 0
    max_open: int = 0
    requests: int = 0
    answered: int = 0
    by_status: Counter = field(default_factory=Counter)
    refused_cases: Counter = field(default_factory=Counter)
    seen: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "max_open": self.max_open,
            "requests": self.requests,
            "answered": self.answered,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "resets": self.by_status.get("reset", 0),
            "cases_refused": len(self.refused_cases),
            "cases_seen": len(self.seen),
        }


def _key(case: dict[str, Any]) -> str:
    pred = case.get("predicate") or {}
    return str(pred.get("value", json.dumps(case, sort_keys=True)))


def _draw(key: str, nth: int, what: str) -> float:
    digest = hashlib.blake2b(f"{what}:{key}:{nth}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Agent:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.stats = Stats()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                if method == "GET" and path.startswith("/stats"):
                    await self._send(writer, 200, json.dumps(self.stats.to_dict()).encode())
                    continue
                if method == "POST" and path.startswith("/stats/reset"):
                    self.stats = Stats()
                    await self._send(writer, 200, b"{}")
                    continue
                if not await self._answer(writer, body):
                    return
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            try:
                writer.close()
            except Exception:  # noqa: BLE001, S110 - a reset connection
                pass

    async def _answer(self, writer: asyncio.StreamWriter, body: bytes) -> bool:
        s, st = self.script, self.stats
        case = json.loads(body)["case"]
        key = _key(case)
        nth = st.seen[key]
        st.seen[key] += 1
        st.requests += 1
        st.open += 1
        st.max_open = max(st.max_open, st.open)
        try:
            refusals = st.refused_cases[key]
            if s.limit_above is not None and st.open > s.limit_above:
                return await self._refuse(writer, key, 429)
            if refusals < s.max_refusals:
                if _draw(key, nth, "429") < s.rate_limit:
                    return await self._refuse(writer, key, 429)
                if _draw(key, nth, "503") < s.unavailable:
                    return await self._refuse(writer, key, 503)
                if _draw(key, nth, "reset") < s.reset:
                    st.refused_cases[key] += 1
                    st.by_status["reset"] += 1
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close -> RST
                    writer.transport.abort()
                    return False
            await asyncio.sleep(s.delay_s)
            answer = s.answers.get(key, {"record_ids": []})
            await self._send(writer, 200, json.dumps(answer).encode())
            st.answered += 1
            return True
        finally:
            st.open -= 1

    async def _refuse(self, writer: asyncio.StreamWriter, key: str, status: int) -> bool:
        self.stats.refused_cases[key] += 1
        extra = f"Retry-After: {self.script.retry_after}\r\n" if self.script.retry_after is not None else ""
        await self._send(writer, status, b'{"error": "slow down"}', extra)
        return True

    async def _send(self, writer: asyncio.StreamWriter, status: int, payload: bytes, extra: str = "") -> None:
        self.stats.by_status[status] += 1
        reason = {200: "OK", 429: "Too Many Requests", 503: "Service Unavailable"}.get(status, "X")
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n{extra}\r\n".encode()
            + payload
        )
        await writer.drain()


async def serve(script: Script, port: int = 0, ready: Any = None) -> None:
    agent = Agent(script)
    server = await asyncio.start_server(agent.handle, "127.0.0.1", port, backlog=4096, reuse_address=True)
    if ready is not None:
        ready(server.sockets[0].getsockname()[1], agent)
    async with server:
        await server.serve_forever()


def serve_in_thread(script: Script) -> tuple[int, Agent]:
    """Start a server on a free loopback port in a daemon thread; (port, the Agent with its stats)."""
    got: dict[str, Any] = {}
    done = threading.Event()

    def ready(port: int, agent: Agent) -> None:
        got["port"], got["agent"] = port, agent
        done.set()

    threading.Thread(target=lambda: asyncio.run(serve(script, 0, ready)), daemon=True, name="io-agent").start()
    if not done.wait(30):
        raise RuntimeError("the I/O agent did not start")
    return got["port"], got["agent"]


def stats(url: str) -> dict[str, Any]:
    import httpx

    return httpx.get(url.rstrip("/") + "/stats", timeout=10).json()


def reset_stats(url: str) -> None:
    import httpx

    httpx.post(url.rstrip("/") + "/stats/reset", timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=8770)
    ap.add_argument("--delay", type=float, default=2.0)
    ap.add_argument("--answers", help="JSON file: S12 token -> answer")
    ap.add_argument("--rate-limit", type=float, default=0.0)
    ap.add_argument("--unavailable", type=float, default=0.0)
    ap.add_argument("--reset", type=float, default=0.0)
    ap.add_argument("--retry-after", default="1")
    ap.add_argument("--max-refusals", type=int, default=3)
    ap.add_argument("--limit-above", type=int)
    args = ap.parse_args()
    answers = json.loads(Path(args.answers).read_text()) if args.answers else {}
    script = Script(
        args.delay,
        args.rate_limit,
        args.unavailable,
        args.reset,
        args.retry_after or None,
        args.max_refusals,
        args.limit_above,
        answers,
    )
    started = time.time()

    def ready(port: int, agent: Agent) -> None:
        print(f"listening on http://127.0.0.1:{port}/ ({time.time() - started:.2f} s)", flush=True)

    asyncio.run(serve(script, args.port, ready))


if __name__ == "__main__":
    main()
