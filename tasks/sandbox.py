"""Agent calls in a child process: a hung agent is killed and its worker freed, a crash or a
100 MB answer stays in the child, and the dataset is mounted read-only where the OS allows.

Each Dask worker thread keeps one child process per (agent, scenario, dataset). The child
loads the agent once, receives each run's context once, and answers calls over a pipe with the
answer already encoded as JSON and checked against the size limit, so an oversized answer is
never copied into the worker. On a timeout the child is killed (SIGKILL) and a fresh one is
started for the next case.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

_LIBC = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent (the Dask worker) dies."""
    try:
        _libc().prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (AttributeError, OSError):
        pass


def readonly_view(path: str) -> bool:
    """Make ``path`` read-only for this process only, via a private mount namespace.

    Needs root (or CAP_SYS_ADMIN) on Linux; returns False where it cannot, and the dataset
    then relies on its files' read-only modes.
    """
    if not path or not os.path.isdir(path) or os.geteuid() != 0:
        return False
    libc = _libc()
    ms_rdonly, ms_remount, ms_bind, ms_rec, ms_private = 1, 32, 4096, 16384, 1 << 18
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        return False
    if libc.mount(b"none", b"/", None, ms_rec | ms_private, None) != 0:
        return False
    p = path.encode()
    if libc.mount(p, p, None, ms_bind | ms_rec, None) != 0:
        return False
    if libc.mount(p, p, None, ms_remount | ms_bind | ms_rdonly, None) != 0:
        return False
    return hide_truth(libc, path)


def hide_truth(libc: Any, dataset_path: str) -> bool:
    """Cover {storage}/truth (the specs with their seeds) with an empty read-only tmpfs in this namespace."""
    from scenario_pipeline.datasets.manifest import DATASETS, TRUTH_DIR

    root = Path(dataset_path).resolve()  # {storage}/datasets/{name}/{spec_hash}
    if len(root.parents) < 3 or root.parents[1].name != DATASETS:
        return True  # not under a storage root laid out by this project: nothing to hide
    truth = root.parents[2] / TRUTH_DIR
    if not truth.is_dir():
        return True
    t = str(truth).encode()
    return libc.mount(b"tmpfs", t, b"tmpfs", 1, b"size=4k") == 0  # MS_RDONLY


def _reply_error(conn: Any, message: str) -> None:
    conn.send_bytes(b"E" + message.encode("utf-8", "replace"))


def _child_main(conn: Any, agent_spec: str, scenario_id: str, readonly_path: str) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when we stop
    readonly_view(readonly_path)
    contexts: dict[str, dict] = {}
    agent = None
    load_error = None
    try:
        from scenario_pipeline.agents.loader import load_agent
        from scenario_pipeline.scenarios.registry import get_scenario

        agent = load_agent(agent_spec, get_scenario(scenario_id))
    except Exception as exc:  # noqa: BLE001 - reported on every call
        load_error = f"agent failed to load: {type(exc).__name__}: {str(exc)[:300]}"
    conn.send_bytes(b"R")  # ready: the case time limit starts counting only now
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "context":
            contexts.clear()  # one run at a time per child
            contexts[msg[1]] = msg[2]
            continue
        _, key, case_input, max_bytes = msg
        if load_error:
            _reply_error(conn, load_error)
            continue
        try:
            answer = agent(case_input, contexts[key])
        except BaseException as exc:  # noqa: BLE001 - an agent's failure is a result
            _reply_error(conn, f"agent raised {type(exc).__name__}: {str(exc)[:300]}")
            continue
        try:
            encoded = json.dumps(answer, sort_keys=True, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            _reply_error(conn, f"answer is not JSON-serializable: {str(exc)[:200]}")
            continue
        if len(encoded) > max_bytes:
            _reply_error(conn, f"answer too large: {len(encoded)} bytes over the {max_bytes} byte limit")
            continue
        conn.send_bytes(b"J" + encoded)


LOAD_TIMEOUT_S = 300.0  # starting the process and importing the agent, not counted against a case


@dataclass
class CallResult:
    answer: bytes | None  # the answer as JSON, within the size limit
    error: str | None
    latency_ms: float = 0.0  # from sending the case to the answer (process start excluded)


class Sandbox:
    """One agent child process, restarted after a timeout or a crash.

    A plain subprocess, not multiprocessing: Dask worker processes are daemonic and may not
    have multiprocessing children. The child gets this process's import path and one end of a
    socket pair, over which both sides speak multiprocessing's framed Connection protocol.
    """

    def __init__(self, agent_spec: str, scenario_id: str, readonly_path: str) -> None:
        self.key = (agent_spec, scenario_id, readonly_path)
        self.proc: subprocess.Popen | None = None
        self.conn: Connection | None = None
        self.context_key: str | None = None

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        code = "import sys; from scenario_pipeline.tasks.sandbox import child_entry; child_entry(sys.argv[1:])"
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(theirs.fileno()), *self.key], pass_fds=(theirs.fileno(),),
                                     env=env, stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.context_key = None
        if not self.conn.poll(LOAD_TIMEOUT_S) or self.conn.recv_bytes() != b"R":
            self.kill()
            raise OSError(f"the agent process did not start within {LOAD_TIMEOUT_S:g} s")

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(timeout=10)
        if self.conn is not None:
            self.conn.close()
        self.proc = self.conn = None

    def call(self, case_input: dict, context: dict, context_key: str, timeout_s: float, max_bytes: int) -> CallResult:
        started = time.perf_counter()
        try:
            if self.proc is None or self.proc.poll() is not None:
                self.kill()
                self._start()
            if self.context_key != context_key:
                self.conn.send(("context", context_key, context))
                self.context_key = context_key
            started = time.perf_counter()
            self.conn.send(("call", context_key, case_input, max_bytes))
            if not self.conn.poll(timeout_s):
                self.kill()  # frees this worker thread; the next case gets a fresh process
                return CallResult(None, f"timeout: no answer within {timeout_s:g} s", timeout_s * 1000.0)
            reply = self.conn.recv_bytes()
        except (EOFError, OSError):
            code = self.proc.wait(timeout=10) if self.proc is not None else None
            self.kill()
            return CallResult(None, f"agent crashed its process (exit code {code})", (time.perf_counter() - started) * 1000.0)
        latency_ms = (time.perf_counter() - started) * 1000.0
        if reply[:1] == b"J":
            return CallResult(reply[1:], None, latency_ms)
        return CallResult(None, reply[1:].decode("utf-8", "replace"), latency_ms)


def child_entry(argv: list[str]) -> None:
    """The child's main: ``fd agent_spec scenario_id readonly_path``."""
    fd, agent_spec, scenario_id, readonly_path = int(argv[0]), argv[1], argv[2], argv[3]
    _child_main(Connection(fd), agent_spec, scenario_id, readonly_path)


_LOCAL = threading.local()


def sandbox_for(agent_spec: str, scenario_id: str, readonly_path: str) -> Sandbox:
    """This thread's sandbox for the key; one child process per worker thread and key."""
    boxes: dict = getattr(_LOCAL, "boxes", None) or {}
    _LOCAL.boxes = boxes
    key = (agent_spec, scenario_id, readonly_path)
    if key not in boxes:
        for other in boxes.values():  # a new run: retire the previous run's child
            other.kill()
        boxes.clear()
        boxes[key] = Sandbox(*key)
    return boxes[key]
