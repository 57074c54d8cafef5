"""The bwrap sandbox against hostile agents (tests/agents_hostile.py), one attack per test, each
asserting what the agent could see or do. Drives ``Sandbox`` directly: no Prefect, no Dask.

The storage below is laid out as the project lays it out ({storage}/datasets/{name}/{hash},
runs/, truth/, warehouse.duckdb) inside a folder on sys.path, as the default storage
(./scenario-data in the repository) is: the sandbox must cover it, not just not bind it.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scenario_pipeline.tasks import sandbox_bwrap as bw
from scenario_pipeline.tasks.sandbox import (
    CallResult,
    Sandbox,
    SandboxPolicy,
    describe_policy,
    sandbox_support,
)

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(not sandbox_support()[0], reason=f"no bwrap sandbox: {sandbox_support()[1]}"),
]

SCENARIO = "s12-search"
AWS_SECRET = "aws-secret-6b1f0c2e9d"
REDSHIFT_SECRET = "redshift-password-41d7a9"
TRUTH_SECRET = "seed-918273645-planted"
PART = "events/part-0000000.parquet"
PART_BYTES = 1_048_576 + 123


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    project = tmp_path / "proj"
    storage = project / "scenario-data"
    dataset = storage / "datasets" / "events" / "0123456789abcdef"
    (dataset / "events").mkdir(parents=True)
    (dataset / PART).write_bytes(os.urandom(PART_BYTES))
    (dataset / "_manifest.json").write_text(json.dumps({"tables": {"events": {"partitions": [{"path": PART}]}}}))
    (storage / "runs" / "r1" / "shards").mkdir(parents=True)
    (storage / "runs" / "r1" / "shards" / "0.json").write_text("{}")
    (storage / "truth" / "events" / "0123456789abcdef").mkdir(parents=True)
    (storage / "truth" / "events" / "0123456789abcdef" / "spec.json").write_text(json.dumps({"seed": TRUTH_SECRET}))
    (storage / "warehouse.duckdb").write_bytes(b"DUCK" + TRUTH_SECRET.encode())
    (project / ".aws").mkdir()
    (project / ".aws" / "credentials").write_text(f"aws_secret_access_key = {AWS_SECRET}\n")
    (project / ".env").write_text(f"SCENARIO_REDSHIFT_PASSWORD={REDSHIFT_SECRET}\n")
    monkeypatch.syspath_prepend(str(project))  # the storage root lies under a folder the sandbox binds
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("SCENARIO_REDSHIFT_PASSWORD", REDSHIFT_SECRET)
    ctx = {"dataset": {"url": dataset.as_uri(), "manifest": json.loads((dataset / "_manifest.json").read_text())}}
    yield {"project": project, "storage": storage, "dataset": dataset, "context": ctx}


@pytest.fixture
def boxes() -> Iterator[list[Sandbox]]:
    made: list[Sandbox] = []
    yield made
    for b in made:
        b.kill()


def _box(boxes: list[Sandbox], layout: dict[str, Any], **policy: Any) -> Sandbox:
    box = Sandbox("tests.agents_hostile:attack", SCENARIO, str(layout["dataset"]), SandboxPolicy(**policy))
    boxes.append(box)
    return box


def _call(box: Sandbox, layout: dict[str, Any], timeout_s: float = 60, **case: Any) -> CallResult:
    return box.call(case, layout["context"], "k", timeout_s, 50_000_000)


def _ok(result: CallResult) -> dict[str, Any]:
    assert result.error is None, result.error
    return json.loads(result.answer)


def _only_init_and_main(box: Sandbox) -> None:
    assert sorted(box.box.processes()) == sorted([box.box.init_pid, box.box.main_pid])


# ---------------------------------------------------------------------------------------------
def test_no_secret_in_the_environment_or_in_any_proc_file_the_agent_can_read(layout, boxes) -> None:  # noqa: ANN001
    box = _box(boxes, layout)
    a = _ok(
        _call(
            box,
            layout,
            attack="secrets",
            harness_pid=os.getpid(),
            secret_file=str(layout["storage"] / "warehouse.duckdb"),
            files=[str(layout["project"] / ".aws" / "credentials"), str(layout["project"] / ".env")],
        )
    )
    seen = json.dumps(a)
    for secret in (AWS_SECRET, REDSHIFT_SECRET, TRUTH_SECRET):
        assert secret not in seen
    assert a["seen"][str(layout["project"] / ".aws" / "credentials")] == "<ENOENT>"  # credentials next to the code: covered
    assert a["seen"][str(layout["project"] / ".env")] == "<EACCES>"  # /dev/null over it, on a nodev mount
    assert a["pids"] == [1, 2] and a["ppid"] == 1 and a["uid"] == 65534  # bwrap's init and the agent: nothing of the host
    passed_when_set = {n for n in ("PYTHONHASHSEED", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if n in os.environ}
    assert set(a["env"]) == {"PATH", "HOME", "LANG", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PWD"} | passed_when_set
    assert a["env"]["HOME"] == "/tmp"
    assert a["seen"][f"/proc/{os.getpid()}/environ"] == "<ENOENT>"
    assert (
        "PATH=" in a["seen"]["/proc/1/environ"] and "PYTHONPATH=" in a["seen"]["/proc/1/environ"]
    )  # bwrap's init: the agent's own
    assert a["seen"]["/proc/1/root" + str(layout["storage"] / "warehouse.duckdb")] == "<ENOENT>"


def test_env_allow_passes_exactly_the_named_variables(layout, boxes, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("OPENAI_API_KEY", "sk-agent-may-see-this")
    box = _box(boxes, layout, env_allow=("OPENAI_API_KEY", "NOT_SET_ANYWHERE"))
    env = _ok(_call(box, layout, attack="secrets", harness_pid=os.getpid(), secret_file="/nonexistent"))["env"]
    assert env["OPENAI_API_KEY"] == "sk-agent-may-see-this"
    assert "NOT_SET_ANYWHERE" not in env and "AWS_SECRET_ACCESS_KEY" not in env and "SCENARIO_REDSHIFT_PASSWORD" not in env
    for pid in [box.proc.pid, *box.box.processes()]:  # command lines are public on the host: the value is in none
        assert b"sk-agent-may-see-this" not in Path(f"/proc/{pid}/cmdline").read_bytes()


def test_runs_truth_and_the_warehouse_are_invisible_and_nothing_is_writable(layout, boxes) -> None:  # noqa: ANN001
    box = _box(boxes, layout)
    a = _ok(_call(box, layout, attack="storage", project=str(layout["project"])))
    assert a["listing"] == ["datasets"]
    assert (a["runs"], a["truth"], a["warehouse.duckdb"], a["datasets"]) == (False, False, False, True)
    assert a["files"] == ["datasets/events/0123456789abcdef/_manifest.json", f"datasets/events/0123456789abcdef/{PART}"]
    ds, st = layout["dataset"], layout["storage"]
    assert a["writes"] == {
        f"{ds}/evil.parquet": "EROFS",
        f"{st}/runs/x.json": "ENOENT",
        f"{st}/evil": "EROFS",
        f"{layout['project']}/evil.py": "EROFS",
        "/usr/evil": "EROFS",
        "/etc/evil": "EROFS",
        "/evil": "EROFS",
        "/dev/evil": "EROFS",
        "/tmp/ok": "written",
        "/dev/shm/ok": "written",
    }
    assert not (ds / "evil.parquet").exists() and not (layout["project"] / "evil.py").exists()
    assert sorted(p.name for p in st.iterdir()) == ["datasets", "runs", "truth", "warehouse.duckdb"]  # all still there


def test_remount_umount_and_unshare_fail(layout, boxes) -> None:  # noqa: ANN001
    box = _box(boxes, layout)
    a = _ok(_call(box, layout, attack="mounts"))
    assert a["remount_rw"] == "EPERM" and a["umount_dataset"] == "EPERM" and a["umount_storage_cover"] == "EPERM"
    assert a["unshare_mount"] == "EPERM" and a["unshare_user"] in ("EINVAL", "ENOSPC", "EPERM")  # bwrap --disable-userns
    assert a["setuid0"] == "EINVAL"  # uid 0 does not exist in the sandbox's user namespace
    assert a["mount_cmd"] == 32 and a["umount_cmd"] == 32 and a["unshare_cmd"] != 0  # mount(8)'s "mount failure"
    assert a["write_after"] == "EROFS"
    assert {k: v.strip() for k, v in a["status"].items()} == {
        "CapEff": "0000000000000000",
        "CapPrm": "0000000000000000",
        "CapBnd": "0000000000000000",
        "NoNewPrivs": "1",
        "Uid": "65534\t65534\t65534\t65534",
        "Gid": "65534\t65534\t65534\t65534",
    }


class _Hello(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"HTTP/1.0 200 OK\r\n\r\nhello from the harness")


@pytest.fixture
def loopback_server() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _host_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: just the route's source address
        return s.getsockname()[0]


def test_network_none_reaches_nothing_of_the_host(layout, boxes, loopback_server) -> None:  # noqa: ANN001
    with socket.create_connection(("127.0.0.1", loopback_server), timeout=5) as s:  # it does answer the harness
        assert b"hello" in s.recv(100)
    box = _box(boxes, layout)
    targets = [["127.0.0.1", loopback_server], ["127.0.0.1", 4200], [_host_address(), loopback_server]]
    a = _ok(_call(box, layout, attack="connect", targets=targets))
    assert a["interfaces"] == ["lo"]
    assert a[f"127.0.0.1:{loopback_server}"] == "ECONNREFUSED" and a["127.0.0.1:4200"] == "ECONNREFUSED"
    assert a[f"{_host_address()}:{loopback_server}"] == "ENETUNREACH"


def test_network_outbound_reaches_out_but_not_the_host_loopback(layout, boxes, loopback_server) -> None:  # noqa: ANN001
    if not bw.shutil.which("slirp4netns"):
        pytest.skip("slirp4netns is not installed")
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        outside = True
    except OSError:
        outside = False
    box = _box(boxes, layout, network="outbound")
    targets = [["127.0.0.1", loopback_server], ["10.0.2.2", loopback_server]] + ([["pypi.org", 443]] if outside else [])
    a = _ok(_call(box, layout, attack="connect", targets=targets))
    assert a["interfaces"] == ["lo", "tap0"]
    assert a[f"127.0.0.1:{loopback_server}"] == "ECONNREFUSED"  # its own loopback
    assert not a[f"10.0.2.2:{loopback_server}"].startswith("connected")  # slirp4netns --disable-host-loopback
    if outside:
        assert a["pypi.org:443"].startswith("connected")
    assert "outbound" in box.strength
    box.kill()
    assert box.box is None


def test_network_outbound_without_slirp4netns_fails_clearly(layout, boxes, monkeypatch) -> None:  # noqa: ANN001
    real = bw.shutil.which
    monkeypatch.setattr(bw.shutil, "which", lambda name, *a, **k: None if name == "slirp4netns" else real(name, *a, **k))
    box = _box(boxes, layout, network="outbound")
    r = _call(box, layout, attack="ok")
    assert (
        r.error
        == ("agent failed to load: the sandbox did not start: network 'outbound' needs slirp4netns (apt-get install slirp4netns)")
        and r.error_kind == "load"
    )


def test_a_detached_daemon_does_not_survive_its_case(layout, boxes) -> None:  # noqa: ANN001
    box = _box(boxes, layout)
    r = _call(box, layout, attack="daemon", marker="/tmp/daemon-was-here", delay=1.0)
    pid = _ok(r)["daemon_pid"]
    _only_init_and_main(box)  # killed as the call returned
    time.sleep(1.5)  # past the daemon's delay: it would have written its marker by now
    a = _ok(_call(box, layout, attack="is_alive", pid=pid, marker="/tmp/daemon-was-here"))
    assert a == {"alive": False, "marker": False, "pids": [1, 2]}
    assert not (layout["dataset"] / "late.parquet").exists()


def test_a_memory_bomb_fails_its_case_with_the_limit_and_the_next_case_works(layout, boxes) -> None:  # noqa: ANN001
    box = _box(boxes, layout, memory_mb=512)
    assert _ok(_call(box, layout, attack="ok"))["ok"] is True
    assert box.strength.endswith("memory 512 MB (cgroup), 64 processes (cgroup)")
    first = box.box
    r = _call(box, layout, attack="memory_bomb", mb=2048)
    assert r.answer is None and r.error == "agent exceeded the sandbox memory limit of 512 MB (process killed)"
    assert r.error_kind == "memory" and box.box is None and first.cgroups.dirs == []  # gone, cgroup removed
    assert _ok(_call(box, layout, attack="ok"))["ok"] is True  # a fresh sandbox
    assert _ok(_call(box, layout, attack="memory_bomb", mb=100))["allocated"] == 100 << 20  # under the limit is fine


def test_a_memory_bomb_under_the_rlimit_fallback(layout, boxes, monkeypatch) -> None:  # noqa: ANN001
    """Where no cgroup can be made, RLIMIT_DATA holds memory (RLIMIT_AS would starve pyarrow and duckdb
    of address space) and the agent's MemoryError names the limit."""
    monkeypatch.setattr(bw.Cgroups, "create", classmethod(lambda cls, *a: cls()))
    box = _box(boxes, layout, memory_mb=512)
    assert _ok(_call(box, layout, attack="ok"))["ok"] is True
    assert box.strength.endswith("memory 512 MB (rlimit), 64 processes (rlimit)")
    r = _call(box, layout, attack="memory_bomb", mb=2048)
    assert r.error == "agent exceeded the sandbox memory limit of 512 MB (allocation refused)" and r.error_kind == "memory"
    assert _ok(_call(box, layout, attack="ok"))["ok"] is True


@pytest.mark.parametrize("limit_by", ["cgroup", "rlimit"])
def test_a_fork_bomb_is_stopped_by_the_process_limit_and_the_next_case_works(layout, boxes, monkeypatch, limit_by) -> None:  # noqa: ANN001
    if limit_by == "rlimit":
        monkeypatch.setattr(bw.Cgroups, "create", classmethod(lambda cls, *a: cls()))
    box = _box(boxes, layout, max_processes=32)
    started = time.monotonic()
    a = _ok(_call(box, layout, timeout_s=30, attack="fork_bomb", seconds=1.5))
    assert a["main_forked"] is False and a["processes_seen"] <= 32  # at the limit, even the main process cannot fork
    if limit_by == "cgroup":
        assert box.box.cgroups.pids_refused() > 0
    _only_init_and_main(box)  # the whole bomb was killed as the call returned
    assert time.monotonic() - started < 15
    assert _ok(_call(box, layout, attack="ok"))["pids"] == [1, 2]


def test_read_bytes_counts_what_was_read_not_what_was_claimed(layout, boxes) -> None:  # noqa: ANN001
    box = _box(boxes, layout)
    _ok(_call(box, layout, attack="ok"))  # the first call imports the agent's module and the like
    n = 300_000
    r = _call(box, layout, attack="read_n", file=PART, n=n)
    assert _ok(r) == {"bytes_read": 0, "got": n}  # the claim is the agent's
    assert n <= r.read_bytes <= n + 4096, r.read_bytes  # the measure is the kernel's
    r = _call(box, layout, attack="ok")
    assert _ok(r)["ok"] and r.read_bytes < 4096  # the call's own messages are not counted
    r = _call(box, layout, attack="child_reads", file=PART, n=n)  # a child process that has exited by the answer
    assert _ok(r)["got"] == n and r.read_bytes >= n


def test_reads_between_calls_are_counted_in_the_next_call(layout, boxes) -> None:  # noqa: ANN001
    """A background thread that reads after its call answered (to answer the next case from memory)
    hides nothing: the next call's measurement starts where the last one ended."""
    box = _box(boxes, layout)
    _ok(_call(box, layout, attack="ok"))
    n = 300_000
    r = _call(box, layout, attack="read_between_calls", file=PART, n=n, delay=0.3)
    assert _ok(r) == {"bytes_read": 0, "got": 0} and r.read_bytes < 4096  # nothing read yet, by the answer
    time.sleep(1.0)  # the thread reads now, between the calls
    r = _call(box, layout, attack="ok")
    assert n <= r.read_bytes <= n + 8192, r.read_bytes  # the next call carries them


def test_overlapping_calls_of_an_async_agent_cannot_hide_their_reads(layout, boxes) -> None:  # noqa: ANN001
    """Eight calls at once in one async agent's process, each reading N bytes: the kernel counts per
    process, so each answer takes what the process read since the answer before; the sum is all of it."""
    import asyncio

    from scenario_pipeline.tasks.sandbox_mux import MuxSandbox

    box = Sandbox("tests.agents_hostile:async_attack", SCENARIO, str(layout["dataset"]), SandboxPolicy())
    boxes.append(box)
    box._start()
    assert box.agent_async
    n, calls = 200_000, 8

    async def run() -> list[CallResult]:
        mux = MuxSandbox(box)
        await mux.open()
        case = {"attack": "read_then_wait", "file": PART, "n": n, "wait": 0.5}
        results = await asyncio.gather(*(mux.call(dict(case), layout["context"], "k", 60, 50_000_000) for _ in range(calls)))
        mux.kill()
        return list(results)

    results = asyncio.run(run())
    assert all(_ok(r) == {"bytes_read": 0, "got": n} for r in results)
    total = sum(r.read_bytes or 0 for r in results)
    assert calls * n <= total <= calls * (n + 8192), [r.read_bytes for r in results]


def test_read_bytes_counts_a_mapped_dataset_file_whole(layout, boxes) -> None:  # noqa: ANN001
    box = _box(boxes, layout)
    r = _call(box, layout, attack="mmap_touch", file=PART)
    assert _ok(r)["bytes_read"] == 0
    assert r.read_bytes >= PART_BYTES


def test_a_hung_agent_is_killed_with_its_whole_sandbox(layout, boxes) -> None:  # noqa: ANN001
    box = _box(boxes, layout)
    _ok(_call(box, layout, attack="ok"))
    box.box.kill_strays = lambda **kw: True  # pretend a daemon outran the cleanup: the timeout must still get it
    _ok(_call(box, layout, attack="daemon", marker="/tmp/m", delay=30))
    init, ns = box.box.init_pid, box.box.ns
    # init, the agent and the daemon; the daemon's short-lived middle fork may take a moment to be reaped
    deadline = time.monotonic() + 5
    while len(bw.processes_in(ns)) > 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(bw.processes_in(ns)) == 3
    started = time.monotonic()
    r = _call(box, layout, timeout_s=0.5, attack="sleep", seconds=30)
    assert r.error == "timeout: no answer within 0.5 s" and r.error_kind == "timeout" and r.latency_ms == 500.0
    assert time.monotonic() - started < 5
    assert box.proc is None and bw.pid_namespace(init) is None and bw.processes_in(ns) == []


def test_sandbox_support_and_its_reason(monkeypatch) -> None:  # noqa: ANN001
    assert sandbox_support() == (True, "")
    assert describe_policy(SandboxPolicy()) == (
        "bwrap: uid 65534, no capabilities, pid/mount/net/ipc/uts namespaces, network none, "
        "memory 4096 MB (cgroup), 64 processes (cgroup)"
    )
    assert describe_policy(SandboxPolicy(trusted=True)) == "trusted: no isolation"
    monkeypatch.setenv("PATH", "/nonexistent")
    assert sandbox_support() == (False, "bwrap is not installed (apt-get install bubblewrap)")
    assert describe_policy(SandboxPolicy()) == "unavailable: bwrap is not installed (apt-get install bubblewrap)"
    box = Sandbox("tests.agents_hostile:attack", SCENARIO, "", SandboxPolicy())
    r = box.call({"attack": "ok"}, {}, "k", 10, 1000)
    assert r.error.startswith("agent failed to load: the sandbox is unavailable on this machine (bwrap is not installed")
    assert r.error_kind == "load"
