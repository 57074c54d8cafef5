"""Agent calls in a sandbox: a hung agent is killed and its worker freed, a crash or a 100 MB
answer stays in the sandbox, and an untrusted agent sees the dataset and nothing else.

Each Dask worker thread keeps one sandbox per (agent, scenario, dataset, policy). The sandboxed
child loads the agent once, receives each run's context once, and answers calls over a socket
with the answer already encoded as JSON and checked against the size limit, so an oversized
answer is never copied into the worker. On a timeout, a crash or an overrun of the memory limit
the whole sandbox is killed and a fresh one started for the next case.

Untrusted agents (``package.module:callable``) run under bubblewrap (tasks/sandbox_bwrap.py): an
unprivileged uid, no capabilities, their own user/PID/mount/IPC/UTS/network namespaces, a minimal
read-only filesystem (the interpreter, the import path, the dataset; never the rest of storage),
an explicit minimal environment, a memory and a process limit, and after every call every process
they started, but their main one, is killed. Trusted agents (``SandboxPolicy(trusted=True)``,
our HTTP client, our reference agents where bwrap is missing) run as a plain child process with
the same minimal environment. See ``describe_policy`` for what a policy gives.

The harness measures what the agent read (``CallResult.read_bytes``) from the host: the kernel's
``rchar`` counter (every byte returned by read-like system calls) summed over the sandbox's
processes after the call minus before it, less the bytes of the call's own messages on the
socket (the child reads exactly those frames, so they are subtracted exactly), plus the size of
every dataset file a sandbox process has mapped at the end of the call.
"""

from __future__ import annotations

import atexit
import json
import multiprocessing.util
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

from scenario_pipeline.tasks import sandbox_bwrap as bw

_LIBC = None
AGENT_ENV = "SCENARIO_AGENT_ENV"  # comma-separated names of harness variables an agent may see
NETWORKS = ("none", "outbound")


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        import ctypes

        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


@dataclass(frozen=True)
class SandboxPolicy:
    """How an agent is confined. Picklable: it travels to the Dask workers with the shard."""

    trusted: bool = False  # a plain child process, no bwrap (our own agents; --trust-agent)
    memory_mb: int = 4096  # the whole sandbox: every process, and its /tmp
    max_processes: int = 64  # tasks the kernel counts: processes and their threads
    network: str = "none"  # "none": loopback of its own; "outbound": slirp4netns, no host loopback
    env_allow: tuple[str, ...] = ()  # harness variables passed through by name
    uid: int = bw.SANDBOX_UID
    gid: int = bw.SANDBOX_GID

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise ValueError(f"sandbox network must be one of {', '.join(NETWORKS)}, got {self.network!r}")
        if self.memory_mb < 64 or self.max_processes < 1:
            raise ValueError("sandbox limits too small: memory_mb >= 64 and max_processes >= 1")
        object.__setattr__(self, "env_allow", tuple(self.env_allow))

    @classmethod
    def from_env(cls, **kw: Any) -> SandboxPolicy:
        """A policy whose env_allow comes from SCENARIO_AGENT_ENV (comma-separated names)."""
        names = tuple(n.strip() for n in os.environ.get(AGENT_ENV, "").split(",") if n.strip())
        return cls(env_allow=names, **kw)


def sandbox_support() -> tuple[bool, str]:
    """Whether the bwrap sandbox works on this machine, and one line saying why not."""
    return bw.sandbox_support()


def _limit_mechanisms() -> tuple[str, str]:
    """How memory and processes would be limited here: 'cgroup' or 'rlimit' (or 'none')."""
    own = bw._own_cgroups() if os.geteuid() == 0 else {}
    v2 = own.get("")
    if v2 and not ("memory" in own or "pids" in own):
        try:
            delegated = Path(v2, "cgroup.subtree_control").read_text().split()
        except OSError:
            delegated = []
        ok = "memory" in delegated and "pids" in delegated and os.access(v2, os.W_OK)
        return ("cgroup", "cgroup") if ok else ("rlimit", "rlimit" if os.geteuid() == 0 else "none")
    mem = "cgroup" if "memory" in own and os.access(own["memory"], os.W_OK) else "rlimit"
    pids = "cgroup" if "pids" in own and os.access(own["pids"], os.W_OK) else ("rlimit" if os.geteuid() == 0 else "none")
    return mem, pids


def _describe_bwrap(uid: int, policy: SandboxPolicy, memory_by: str, processes_by: str) -> str:
    procs = f"{policy.max_processes} processes ({processes_by})" if processes_by != "none" else "processes unlimited"
    return (
        f"bwrap: uid {uid}, no capabilities, pid/mount/net/ipc/uts namespaces, network {policy.network}, "
        f"memory {policy.memory_mb} MB ({memory_by}), {procs}"
    )


def describe_policy(policy: SandboxPolicy) -> str:
    """One line on what the policy gives an untrusted agent on this machine."""
    if policy.trusted:
        return "trusted: no isolation"
    ok, why = sandbox_support()
    if not ok:
        return f"unavailable: {why}"
    uid, _, _ = bw.sandbox_uid(policy.uid, policy.gid)
    return _describe_bwrap(uid, policy, *_limit_mechanisms())


# ---------------------------------------------------------------------------------------------
# The child: loads the agent and answers calls (inside the sandbox)
# ---------------------------------------------------------------------------------------------
def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent (the Dask worker) dies."""
    try:
        _libc().prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (AttributeError, OSError):
        pass


def readonly_view(path: str) -> bool:
    """Trusted mode: make ``path`` read-only for this process only, via a private mount namespace.

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
    TRUTH_DIR = bw.TRUTH_DIR  # noqa: N806

    root = bw.storage_root_of(dataset_path)
    if root is None or not os.path.isdir(os.path.join(root, TRUTH_DIR)):
        return True  # not under a storage root laid out by this project: nothing to hide
    t = os.path.join(root, TRUTH_DIR).encode()
    return libc.mount(b"tmpfs", t, b"tmpfs", 1, b"size=4k") == 0  # MS_RDONLY


def _reply_error(conn: Any, message: str) -> None:
    conn.send_bytes(b"E" + message.encode("utf-8", "replace"))


def _is_async(agent: Any) -> bool:
    """An ``async def`` agent (a coroutine function, or an object whose ``__call__`` is one)."""
    import inspect

    return inspect.iscoroutinefunction(agent) or inspect.iscoroutinefunction(getattr(agent, "__call__", None))  # noqa: B004 - an object whose __call__ is async


def _rate_limited(exc: BaseException) -> bytes | None:
    """A ``scenario_pipeline.agents.RateLimited`` as its reply payload (JSON), else None."""
    from scenario_pipeline.agents import RateLimited

    if not isinstance(exc, RateLimited):
        return None
    after = getattr(exc, "retry_after", None)
    after = float(after) if isinstance(after, (int, float)) and not isinstance(after, bool) and after >= 0 else None
    return json.dumps({"message": str(exc)[:300], "retry_after": after}).encode()


def _encode_answer(answer: Any, max_bytes: int) -> bytes:
    """The reply to a call that returned: b"J" + the answer as JSON, or b"E" + why it cannot be one."""
    try:
        encoded = json.dumps(answer, sort_keys=True, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        return b"E" + f"answer is not JSON-serializable: {str(exc)[:200]}".encode("utf-8", "replace")
    if len(encoded) > max_bytes:
        return b"E" + f"answer too large: {len(encoded)} bytes over the {max_bytes} byte limit".encode()
    return b"J" + encoded


def _failure_reply(exc: BaseException) -> bytes:
    limited = _rate_limited(exc)
    if limited is not None:
        return b"L" + limited
    return b"E" + f"agent raised {type(exc).__name__}: {str(exc)[:300]}".encode("utf-8", "replace")


def _child_main(conn: Any, agent_spec: str, scenario_id: str, readonly_path: str, mode: str) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when we stop
    if mode == "trusted":
        readonly_view(readonly_path)  # under bwrap the dataset is a read-only bind already
    contexts: dict[str, dict] = {}
    agent: Any = None  # a sync or async callable, or None when it failed to load
    load_error = None
    try:
        from scenario_pipeline.agents.loader import agent_kind, load_agent

        scenario = None
        if agent_kind(agent_spec) == "reference":  # only reference agents need their scenario (and its imports)
            from scenario_pipeline.scenarios.registry import get_scenario

            scenario = get_scenario(scenario_id)
        agent = load_agent(agent_spec, scenario)
    except Exception as exc:  # noqa: BLE001 - reported on every call
        load_error = f"agent failed to load: {type(exc).__name__}: {str(exc)[:300]}"
    is_async = agent is not None and _is_async(agent)
    loop = None
    conn.send_bytes(b"RA" if is_async else b"R")  # ready: the case time limit starts counting only now
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "context":
            contexts.clear()  # one run at a time per child
            contexts[msg[1]] = msg[2]
            continue
        if msg[0] == "mux":  # from now on many calls at once, by request id (tasks/sandbox_mux.py)
            from scenario_pipeline.tasks.sandbox_mux import child_mux

            child_mux(conn.fileno(), agent, load_error, contexts)
            return
        _, key, case_input, max_bytes = msg
        if load_error:
            _reply_error(conn, load_error)
            continue
        try:
            answer = agent(case_input, contexts[key])
            if is_async:
                import asyncio

                loop = loop or asyncio.new_event_loop()
                answer = loop.run_until_complete(answer)
        except BaseException as exc:  # noqa: BLE001 - an agent's failure is a result
            conn.send_bytes(_failure_reply(exc))
            continue
        conn.send_bytes(_encode_answer(answer, max_bytes))


def child_entry(argv: list[str]) -> None:
    """The child's main: ``fd agent_spec scenario_id readonly_path [mode]``."""
    fd, agent_spec, scenario_id, readonly_path = int(argv[0]), argv[1], argv[2], argv[3]
    _child_main(Connection(fd), agent_spec, scenario_id, readonly_path, argv[4] if len(argv) > 4 else "trusted")


# ---------------------------------------------------------------------------------------------
# The harness side
# ---------------------------------------------------------------------------------------------
LOAD_TIMEOUT_S = 300.0  # starting the sandbox and importing the agent, not counted against a case
CHILD_CODE = "import sys; from scenario_pipeline.tasks.sandbox import child_entry; child_entry(sys.argv[1:])"


@dataclass
class CallResult:
    answer: bytes | None  # the answer as JSON, within the size limit; None when the call failed
    error: str | None  # why there is no answer (one line), else None
    latency_ms: float = 0.0  # from sending the case to the answer (sandbox start excluded)
    read_bytes: int | None = None  # bytes the agent's processes read during the call, measured by the harness; None: unmeasured
    error_kind: str | None = None  # load, raised, timeout, crashed, memory, too_large, not_json, rate_limited, unavailable
    retry_after: float | None = None  # rate_limited / unavailable: seconds the agent asked the harness to wait


class _Timeout(Exception):
    pass


class _TooLarge(Exception):
    pass


class _Channel:
    """multiprocessing.connection's framing (what the child's Connection speaks) over a socket,
    with deadlines: a child that stops reading, or sends half a frame, cannot hang the worker,
    and a frame longer than the caller allows is refused before it is read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def _timeout(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Timeout()
        self.sock.settimeout(left)

    def send(self, obj: Any, deadline: float) -> int:
        payload = bytes(ForkingPickler.dumps(obj))
        n = len(payload)
        header = struct.pack("!i", n) if n <= 0x7FFFFFFF else struct.pack("!i", -1) + struct.pack("!Q", n)
        data = memoryview(header + payload)
        while data:
            self._timeout(deadline)
            try:
                sent = self.sock.send(data)
            except TimeoutError:
                raise _Timeout() from None
            data = data[sent:]
        return len(header) + n

    def _exact(self, n: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            self._timeout(deadline)
            try:
                chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            except TimeoutError:
                raise _Timeout() from None
            if not chunk:
                raise EOFError()
            buf += chunk
        return bytes(buf)

    def recv(self, deadline: float, maxlen: int) -> bytes:
        (n,) = struct.unpack("!i", self._exact(4, deadline))
        if n == -1:
            (n,) = struct.unpack("!Q", self._exact(8, deadline))
        if n < 0 or n > maxlen:
            raise _TooLarge(n)
        return self._exact(n, deadline)

    def close(self) -> None:
        self.sock.close()


def _agent_kind(spec: str) -> str:
    from scenario_pipeline.agents.loader import agent_kind

    try:
        return agent_kind(spec)
    except Exception:  # noqa: BLE001 - checked up front by the CLI; here it is just untrusted code
        return "python"


_LIVE: weakref.WeakSet = weakref.WeakSet()


class Sandbox:
    """One agent child process, in bwrap or plain (trusted), restarted after a timeout or a crash.

    A plain subprocess, not multiprocessing: Dask worker processes are daemonic and may not
    have multiprocessing children. The child gets one end of a socket pair, over which both sides
    speak multiprocessing's framed Connection protocol (the worker never unpickles what it reads).
    """

    def __init__(self, agent_spec: str, scenario_id: str, readonly_path: str, policy: SandboxPolicy | None = None) -> None:
        self.key = (agent_spec, scenario_id, readonly_path)
        self.policy = policy or SandboxPolicy()
        self.kind = _agent_kind(agent_spec)
        self.proc: subprocess.Popen | None = None
        self.box: bw.BwrapBox | None = None
        self.chan: _Channel | None = None
        self.context_key: str | None = None
        self._mark: tuple[subprocess.Popen, int] | None = None  # (process, read counter) where the last call's measurement ended
        self.agent_async = False  # the child said its agent is an ``async def`` (tasks/sandbox_mux.py serves those)
        self.unavailable: str | None = None
        self.extra_env: tuple[str, ...] = ()
        self.mode = self._choose_mode()
        _LIVE.add(self)

    def _choose_mode(self) -> str:
        if self.kind == "http":
            # Our own client of a remote agent, on the host's network: the agent runs on its machine.
            self.extra_env = ("SCENARIO_AGENT_AUTHORIZATION",)
            return "trusted"
        if self.policy.trusted:
            return "trusted"
        if self.kind == "reference":
            if not self.key[2]:
                # Our own agent on a remote dataset (s3://): it reads with the harness's credentials and network.
                self.extra_env = tuple(n for n in os.environ if n.startswith("AWS_"))
                return "trusted"
            return "bwrap" if bw.sandbox_support(self.policy.uid, self.policy.gid)[0] else "trusted"
        ok, why = bw.sandbox_support(self.policy.uid, self.policy.gid)
        if not ok:
            self.unavailable = (
                f"agent failed to load: the sandbox is unavailable on this machine ({why}); --trust-agent runs agents without it"
            )
        return "bwrap"

    @property
    def strength(self) -> str:
        if self.mode == "trusted":
            if self.kind == "http":
                return "trusted: no isolation (HTTP agent: our client in a plain child; the agent runs elsewhere)"
            return "trusted: no isolation"
        if self.unavailable:
            return f"unavailable: {bw.sandbox_support(self.policy.uid, self.policy.gid)[1]}"
        if self.box is not None:
            return _describe_bwrap(self.box.uid, self.policy, self.box.memory_by, self.box.processes_by)
        return describe_policy(self.policy)

    # -- lifecycle ---------------------------------------------------------------------------
    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        agent_spec, scenario_id, readonly_path = self.key
        command = [sys.executable, "-c", CHILD_CODE, str(theirs.fileno()), agent_spec, scenario_id, readonly_path, self.mode]
        allow = tuple(dict.fromkeys(self.policy.env_allow + self.extra_env))
        try:
            if self.mode == "bwrap":
                env = bw.agent_environment(allow, bw.import_path())
                self.box = bw.BwrapBox(
                    command,
                    theirs.fileno(),
                    readonly_path,
                    env,
                    uid=self.policy.uid,
                    gid=self.policy.gid,
                    memory_mb=self.policy.memory_mb,
                    max_processes=self.policy.max_processes,
                    network=self.policy.network,
                )
                self.proc = self.box.proc
            else:
                env = bw.agent_environment(allow, bw.import_path(), home=os.environ.get("HOME", "/tmp"))
                # the agent's prints go to stderr: stdout carries the CLI's `--json` summary, which an agent must not touch
                self.proc = subprocess.Popen(command, pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL, stdout=2)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.chan = _Channel(ours)
        self.context_key = None
        try:
            ready = self.chan.recv(time.monotonic() + LOAD_TIMEOUT_S, 16)
        except _Timeout:
            self.kill()
            raise OSError(f"the agent process did not start within {LOAD_TIMEOUT_S:g} s") from None
        except (EOFError, OSError, _TooLarge):
            code = self.kill()
            raise OSError(f"the agent process exited before it was ready (exit code {code})") from None
        if ready not in (b"R", b"RA"):
            self.kill()
            raise OSError("the agent process did not start")
        self.agent_async = ready == b"RA"
        if self.box is not None:
            self.box.find_main()

    def kill(self) -> int | None:
        """Kill the child (the whole sandbox); its exit code."""
        code = None
        if self.box is not None:
            code = self.box.close()
        elif self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            code = self.proc.wait(timeout=10)
        if self.chan is not None:
            self.chan.close()
        self.proc = self.chan = self.box = None
        return code

    def _alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.chan is not None

    # -- measuring -----------------------------------------------------------------------------
    def _processes(self) -> list[int]:
        if self.box is not None:
            return self.box.processes()
        return [self.proc.pid] if self.proc is not None else []

    def _read_total(self) -> int | None:
        if self.kind == "http" or not self.key[2]:
            return None  # an HTTP agent reads on its own machine; a remote dataset over sockets (not in rchar)
        try:
            if self.box is not None:
                return self.box.read_bytes()
            return bw.rchar(self.proc.pid) if self.proc is not None else None
        except OSError:
            return None

    def _read_since(self, before: int | None, protocol_bytes: int, pids: list[int]) -> int | None:
        if before is None:
            return None
        try:
            after = self.box.read_bytes(pids) if self.box is not None else self._read_total()
            if after is None:
                return None
            mapped = self._mapped_bytes(pids)
        except OSError:
            return None
        return max(0, after - before - protocol_bytes) + mapped

    def _mapped_bytes(self, pids: list[int]) -> int:
        roots = {os.path.abspath(self.key[2]), os.path.realpath(self.key[2])}
        return bw.file_sizes(set().union(*(bw.mapped_files(pids, r) for r in roots)))

    def _since_last_call(self) -> int | None:
        """The read counter where the last call's measurement of this same process ended, else now.
        Measuring from there, reads between calls (a thread of the agent's reading in the background,
        to answer the next case from memory) land in the next call instead of in no call at all."""
        if self._mark is not None and self._mark[0] is self.proc:
            return self._mark[1]
        return self._read_total()

    def _set_mark(self) -> None:
        total = self._read_total()
        self._mark = (self.proc, total) if self.proc is not None and total is not None else None

    def _oom_kills(self) -> int | None:
        return self.box.cgroups.oom_kills() if self.box is not None else None

    def _memory_error(self, how: str) -> str:
        return f"agent exceeded the sandbox memory limit of {self.policy.memory_mb} MB ({how})"

    # -- one call ------------------------------------------------------------------------------
    def call(self, case_input: dict, context: dict, context_key: str, timeout_s: float, max_bytes: int) -> CallResult:
        if self.unavailable:
            return CallResult(None, self.unavailable, 0.0, None, "load")
        try:
            if not self._alive():
                self.kill()
                self._start()
        except OSError as exc:
            self.kill()
            return CallResult(None, f"agent failed to load: the sandbox did not start: {exc}", 0.0, None, "load")
        chan = self.chan
        assert chan is not None
        before = self._since_last_call()
        oom_before = self._oom_kills()
        sent = 0
        started = time.perf_counter()
        try:
            if self.context_key != context_key:
                sent += chan.send(("context", context_key, context), time.monotonic() + max(timeout_s, 60.0))
                self.context_key = context_key
            started = time.perf_counter()
            deadline = time.monotonic() + timeout_s
            sent += chan.send(("call", context_key, case_input, max_bytes), deadline)
            reply = chan.recv(deadline, max_bytes + 1)
        except _Timeout:
            read = self._read_since(before, sent, self._processes())
            self.kill()  # frees this worker thread; the next case gets a fresh sandbox
            return CallResult(None, f"timeout: no answer within {timeout_s:g} s", timeout_s * 1000.0, read, "timeout")
        except _TooLarge as exc:
            self.kill()
            return CallResult(
                None,
                f"answer too large: {exc.args[0] - 1} bytes over the {max_bytes} byte limit",
                (time.perf_counter() - started) * 1000.0,
                None,
                "too_large",
            )
        except (EOFError, OSError):
            latency_ms = (time.perf_counter() - started) * 1000.0
            if self.proc is not None:
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            oom = self._oom_kills()
            code = self.kill()
            if oom is not None and oom_before is not None and oom > oom_before:
                return CallResult(None, self._memory_error("process killed"), latency_ms, None, "memory")
            return CallResult(None, f"agent crashed its process (exit code {code})", latency_ms, None, "crashed")
        latency_ms = (time.perf_counter() - started) * 1000.0
        box = self.box
        pids = self._processes()
        read = self._read_since(before, sent, pids)
        oom = self._oom_kills()
        if box is not None and not box.kill_strays(pids=pids):
            self.kill()  # processes that outran the cleanup: the whole sandbox goes
        self._set_mark()
        if oom is not None and oom_before is not None and oom > oom_before:
            return CallResult(None, self._memory_error("a process was killed"), latency_ms, read, "memory")
        if reply[:1] == b"J":
            return CallResult(reply[1:], None, latency_ms, read)
        if reply[:1] == b"L":
            return rate_limited_result(reply[1:], latency_ms, read)
        message = reply[1:].decode("utf-8", "replace")
        if message.startswith("agent raised MemoryError") and box is not None and box.memory_by == "rlimit":
            return CallResult(None, self._memory_error("allocation refused"), latency_ms, read, "memory")
        return CallResult(None, message, latency_ms, read)


def rate_limited_result(payload: bytes, latency_ms: float, read: int | None) -> CallResult:
    """The agent raised ``RateLimited``: a retryable result (tasks/lanes.py retries it)."""
    try:
        info = json.loads(payload)
        message, after = str(info.get("message", ""))[:300], info.get("retry_after")
        after = float(after) if isinstance(after, (int, float)) and not isinstance(after, bool) and 0 <= after < 1e9 else None
    except (ValueError, AttributeError):
        message, after = "", None
    return CallResult(None, f"rate limited: agent raised RateLimited: {message}", latency_ms, read, "rate_limited", after)


_LOCAL = threading.local()


def sandbox_for(agent_spec: str, scenario_id: str, readonly_path: str, policy: SandboxPolicy | None = None) -> Sandbox:
    """This thread's sandbox for the key; one sandbox per worker thread and key."""
    policy = policy or SandboxPolicy()
    boxes: dict = getattr(_LOCAL, "boxes", None) or {}
    _LOCAL.boxes = boxes
    key = (agent_spec, scenario_id, readonly_path, policy)
    if key not in boxes:
        for other in boxes.values():  # a new run: retire the previous run's sandbox
            other.kill()
        boxes.clear()
        boxes[key] = Sandbox(agent_spec, scenario_id, readonly_path, policy)
    return boxes[key]


def _kill_all() -> None:
    """At exit, sandboxes go with their cgroups (their processes would die with this one anyway; a
    cgroup left behind by a killed worker is removed by the next sandbox made on the machine)."""
    for box in list(_LIVE):
        try:
            box.kill()
        except Exception:  # noqa: BLE001, S110 - best effort at exit
            pass


atexit.register(_kill_all)
# Dask's worker processes are multiprocessing children, which end with os._exit (no atexit) after
# running multiprocessing's own finalizers.
multiprocessing.util.Finalize(None, _kill_all, exitpriority=100)


__all__ = [
    "CallResult",
    "Sandbox",
    "SandboxPolicy",
    "child_entry",
    "describe_policy",
    "readonly_view",
    "sandbox_for",
    "sandbox_support",
]
