"""The agent sandbox on its own: real child processes, real timeouts, a real read-only mount.

The behaviour tests run both ways an agent can run: in the bwrap sandbox (untrusted, the default)
and as a plain child (trusted). The attacks are in tests/test_sandbox_hostile.py."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from scenario_pipeline.tasks.sandbox import (
    Sandbox,
    SandboxPolicy,
    sandbox_for,
    sandbox_support,
)

SCENARIO = "s12-search"
MODES = [
    pytest.param(False, id="bwrap", marks=pytest.mark.skipif(not sandbox_support()[0], reason="no bwrap sandbox here")),
    pytest.param(True, id="trusted"),
]


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "ds"
    (root / "events").mkdir(parents=True)
    (root / "events" / "part-0000000.parquet").write_bytes(b"PAR1 original PAR1")
    context = {
        "dataset": {
            "url": root.as_uri(),
            "manifest": {"tables": {"events": {"partitions": [{"path": "events/part-0000000.parquet"}]}}},
        }
    }
    return root, context


def _box(agent: str, root: Path, trusted: bool = False) -> Sandbox:
    # The child is spawned with this process's sys.path, so tests.agents_faults imports there.
    return Sandbox(f"tests.agents_faults:{agent}", SCENARIO, str(root), SandboxPolicy(trusted=trusted))


@pytest.mark.parametrize("trusted", MODES)
def test_a_hung_agent_times_out_and_the_next_call_gets_a_fresh_process(dataset, trusted) -> None:  # noqa: ANN001
    root, ctx = dataset
    box = _box("hangs", root, trusted)
    try:
        t = time.monotonic()
        r = box.call({"q": 1}, ctx, "k", timeout_s=1.5, max_bytes=1000)
        elapsed = time.monotonic() - t
        assert r.answer is None and r.error == "timeout: no answer within 1.5 s" and r.error_kind == "timeout"
        assert 1.5 <= elapsed < 10  # the worker thread is back after the limit (plus process start)
        assert r.latency_ms == 1500.0
        assert box.proc is None  # the hung process was killed
    finally:
        box.kill()


@pytest.mark.parametrize("trusted", MODES)
def test_raise_crash_huge_wrong_and_unserializable_answers_become_errors(dataset, trusted) -> None:  # noqa: ANN001
    root, ctx = dataset
    expected = {
        "raises": "agent raised ValueError: I always fail",
        "crashes": "agent crashed its process (exit code 3)",
        "huge": "answer too large: ",
        "not_json": "answer is not JSON-serializable",
    }
    for agent, message in expected.items():
        box = _box(agent, root, trusted)
        try:
            r = box.call({}, ctx, "k", timeout_s=60, max_bytes=1_000_000)
        finally:
            box.kill()
        assert r.answer is None and r.error.startswith(message), (agent, r.error)
    box = _box("wrong_types", root, trusted)
    try:
        r = box.call({}, ctx, "k", timeout_s=60, max_bytes=1000)
    finally:
        box.kill()
    assert r.error is None and json.loads(r.answer) == ["not", "an", "object"]  # the scorer side rejects non-objects
    assert r.read_bytes is not None and r.read_bytes < 4096  # measured; the call's own messages left out


@pytest.mark.parametrize("trusted", MODES)
def test_the_dataset_is_read_only_to_the_agent(dataset, trusted) -> None:  # noqa: ANN001
    root, ctx = dataset
    before = hashlib.sha256((root / "events" / "part-0000000.parquet").read_bytes()).hexdigest()
    box = _box("writes_dataset", root, trusted)
    try:
        r = box.call({}, ctx, "k", timeout_s=60, max_bytes=1000)
    finally:
        box.kill()
    # bwrap: EACCES (uid 65534 does not own the file) and EROFS; trusted (root): EROFS twice
    assert (
        r.error == f"agent raised PermissionError: dataset is read-only: {'OSError' if trusted else 'PermissionError'}, OSError"
    )
    assert hashlib.sha256((root / "events" / "part-0000000.parquet").read_bytes()).hexdigest() == before
    assert not (root / "events" / "evil.parquet").exists()


def test_http_agent_sends_the_authorization_header_from_the_environment(monkeypatch) -> None:  # noqa: ANN001
    """A real HTTP server sees the header; the URL never holds the credential."""
    import json as _json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from scenario_pipeline.agents.loader import AUTH_ENV, HttpAgent
    from tests.helpers import send_body

    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.headers.get("Authorization"))
            self.rfile.read(int(self.headers["Content-Length"]))
            send_body(self, 200, _json.dumps({"ok": True}).encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        monkeypatch.setenv(AUTH_ENV, "Bearer tok-123")
        assert HttpAgent(url)({"q": 1}, {"dataset": {}}) == {"ok": True}
        monkeypatch.delenv(AUTH_ENV)
        assert HttpAgent(url)({"q": 2}, {"dataset": {}}) == {"ok": True}
    finally:
        server.shutdown()
    assert seen == ["Bearer tok-123", None]


def test_the_answer_key_is_kept_apart_and_hidden_from_agents(tmp_path: Path) -> None:
    """The manifest an agent reads has no seed and no planted features; the full spec is under
    {storage}/truth, which the sandboxed agent finds empty while this process reads it."""
    from scenario_pipeline.datasets.manifest import (
        build_manifest,
        dataset_root,
        read_truth,
        truth_root,
        write_manifest,
        write_truth,
    )
    from scenario_pipeline.datasets.partition import write_partition
    from scenario_pipeline.scenarios.registry import get_scenario
    from scenario_pipeline.storage import Storage

    storage = Storage.from_url(str(tmp_path / "data"))
    spec = get_scenario("s12").dataset_spec(300_000, 918_273_645)
    root = dataset_root(storage, spec)
    write_truth(storage, spec)
    parts = {
        t.name: [write_partition(spec, root, t.name, p, gx=False) for p in range(spec.partitions_of(t.name))] for t in spec.tables
    }
    manifest = build_manifest(spec, parts)
    write_manifest(root, manifest)
    on_disk = json.loads(Path(root.path("_manifest.json")).read_text())
    assert "seed" not in on_disk["spec"] and "features" not in on_disk["spec"] and on_disk["spec"]["records"] == 300_000
    assert "918273645" not in json.dumps(on_disk)  # nothing else carries the seed either
    assert read_truth(storage, spec.name, spec.spec_hash()) == spec  # the key, whole, where it is kept
    key_file = Path(truth_root(storage, spec.name, spec.spec_hash()).path("spec.json"))
    assert key_file.exists()

    ctx = {"dataset": {"url": root.url, "manifest": manifest}}
    box = Sandbox("tests.agents_faults:reads_truth", SCENARIO, root.path(""))
    try:
        r = box.call({}, ctx, "k", timeout_s=60, max_bytes=1_000_000)
    finally:
        box.kill()
    assert r.error is None and json.loads(r.answer) == {"found": []}
    from tests.agents_faults import reads_truth

    assert reads_truth({}, ctx) == {"found": [str(key_file)]}  # outside the sandbox it is there


def test_a_trusted_agent_gets_the_minimal_environment_too(dataset, monkeypatch) -> None:  # noqa: ANN001
    root, ctx = dataset
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-for-agents")
    monkeypatch.setenv("SCENARIO_REDSHIFT_PASSWORD", "not-for-agents")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    monkeypatch.setenv("AGENT_TOKEN", "for-the-agent")
    box = Sandbox("tests.agents_hostile:attack", SCENARIO, str(root), SandboxPolicy(trusted=True, env_allow=("AGENT_TOKEN",)))
    try:
        r = box.call({"attack": "secrets", "harness_pid": 0, "secret_file": "/nonexistent"}, ctx, "k", 60, 10_000_000)
    finally:
        box.kill()
    env = json.loads(r.answer)["env"]
    passed_when_set = {n for n in ("PYTHONHASHSEED", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if n in os.environ}
    assert set(env) == {"PATH", "HOME", "LANG", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "AGENT_TOKEN"} | passed_when_set
    assert env["AGENT_TOKEN"] == "for-the-agent"
    assert box.strength == "trusted: no isolation"


def test_an_http_agent_runs_as_our_trusted_client_with_its_authorization_only(dataset, monkeypatch) -> None:  # noqa: ANN001
    """The HTTP agent's client runs outside bwrap (the host's network: the endpoint may be on loopback),
    with the minimal environment plus SCENARIO_AGENT_AUTHORIZATION; what it read is not measurable here."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.helpers import send_body

    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.headers.get("Authorization"))
            self.rfile.read(int(self.headers["Content-Length"]))
            send_body(self, 200, json.dumps({"record_ids": [1]}).encode())

        def log_message(self, *args: object) -> None:
            pass

    root, ctx = dataset
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("SCENARIO_AGENT_AUTHORIZATION", "Bearer tok-9")
    box = Sandbox(f"http://127.0.0.1:{server.server_address[1]}/", SCENARIO, str(root), SandboxPolicy())
    try:
        r = box.call({"q": 1}, ctx, "k", 60, 1000)
    finally:
        box.kill()
        server.shutdown()
    assert r.error is None and json.loads(r.answer) == {"record_ids": [1]} and r.read_bytes is None
    assert seen == ["Bearer tok-9"]
    assert box.mode == "trusted" and box.strength.startswith("trusted: no isolation (HTTP agent")


def test_reference_agents_run_in_bwrap_on_a_local_dataset_and_trusted_on_a_remote_one(dataset) -> None:  # noqa: ANN001
    root, _ = dataset
    local, remote = Sandbox("reference", SCENARIO, str(root)), Sandbox("reference", SCENARIO, "")
    assert local.mode == ("bwrap" if sandbox_support()[0] else "trusted") and remote.mode == "trusted"


def test_the_policy_is_picklable_validated_and_part_of_the_sandbox_key(dataset) -> None:  # noqa: ANN001
    import pickle

    root, _ = dataset
    policy = SandboxPolicy(memory_mb=512, env_allow=["OPENAI_API_KEY"])
    assert pickle.loads(pickle.dumps(policy)) == policy and policy.env_allow == ("OPENAI_API_KEY",)
    with pytest.raises(ValueError, match="sandbox network must be one of none, outbound"):
        SandboxPolicy(network="host")
    a = sandbox_for("tests.agents_faults:raises", SCENARIO, str(root), policy)
    assert sandbox_for("tests.agents_faults:raises", SCENARIO, str(root), policy) is a
    b = sandbox_for("tests.agents_faults:raises", SCENARIO, str(root), SandboxPolicy(memory_mb=1024))
    assert b is not a and b.policy.memory_mb == 1024
    b.kill()


def test_policy_from_env_reads_the_allowed_names(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("SCENARIO_AGENT_ENV", " OPENAI_API_KEY, ANTHROPIC_API_KEY ,,")
    assert SandboxPolicy.from_env(network="outbound") == SandboxPolicy(
        network="outbound", env_allow=("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
    )


def test_the_sandboxs_storage_names_are_the_dataset_layers() -> None:
    """tasks/sandbox_bwrap.py spells out the storage layout's folder names (a sandbox child must start
    without importing the dataset layer): they must stay the ones datasets/manifest.py writes."""
    from scenario_pipeline.datasets.manifest import DATASETS, TRUTH_DIR
    from scenario_pipeline.tasks import sandbox_bwrap as bw

    assert (bw.DATASETS, bw.TRUTH_DIR) == (DATASETS, TRUTH_DIR)
    assert bw.TRUTH_DIR in bw._STORAGE_PRIVATE
