"""A minimal HTTP agent for scenario s12, standard library only.

    python examples/agents/http_agent.py --port 8765 &
    scenario run s12 --agent http://127.0.0.1:8765/

It receives ``POST {"case": {...}, "context": {...}}`` and answers the answer object as JSON.
HTTP agents are not sent the manifest itself; they fetch ``context["dataset"]["manifest_url"]``.
"""

from __future__ import annotations

import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import duckdb


def answer(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    manifest_path = context["dataset"]["manifest_url"].removeprefix("file://")
    with open(manifest_path) as fh:
        manifest = json.load(fh)
    root = os.path.dirname(manifest_path)
    files = [os.path.join(root, p["path"]) for p in manifest["tables"][case["table"]]["partitions"]]
    pred = case["predicate"]
    rows = (
        duckdb.connect()
        .execute(f'SELECT record_id FROM read_parquet(?) WHERE "{pred["column"]}" = ?', [files, pred["value"]])
        .fetchall()
    )
    return {"record_ids": sorted(r[0] for r in rows), "partitions_opened": len(files)}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        payload = json.dumps(answer(body["case"], body["context"])).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


def serve(port: int) -> ThreadingHTTPServer:
    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8765)
    serve(ap.parse_args().port).serve_forever()
