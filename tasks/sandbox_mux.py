"""Many calls at once to one ``async def`` agent in one sandbox process, by request id.

An ``async def`` agent (tasks/sandbox.py's child says so when it is ready) is switched to this
protocol with one ``("mux",)`` message. From then on the child runs an event loop that serves every
call as its own task, and both sides speak multiprocessing's framing over the same socket:

- harness -> child (pickled, as before): ``("context", key, context)``, ``("call", id, key, case,
  max_bytes)``, ``("cancel", id)``;
- child -> harness (raw bytes, never unpickled by the harness): one byte of kind, the request id
  as 8 bytes, then the payload. Kinds: ``J`` the answer as JSON, ``E`` why there is none, ``L`` the
  agent raised ``RateLimited`` (JSON: message, retry_after), ``C`` the call was cancelled.

What the harness keeps from the one-call-at-a-time sandbox: the case time limit (a call over it is
cancelled in the child; if the child's event loop does not answer the cancel within
``CANCEL_GRACE_S``, something blocks it, and the whole sandbox is killed and started afresh), the
answer size limit (checked in the child, and by the harness on every frame before it is read), the
memory limit and the crash handling (every call in flight in a process that died fails with the
reason), stray processes killed whenever no call is in flight.

Reads (``read_bytes``): the kernel counts reads per process, not per call, so the process's reads
are measured continuously and each answer (or timeout) takes what the process read since the one
before it. Where calls overlap, a case's own figure is only an attribution; their sum over the
lane is exact, reads between calls included, so a run's total cannot be hidden by overlapping calls.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import struct
import time
from dataclasses import dataclass, field
from multiprocessing.reduction import ForkingPickler
from typing import Any

from scenario_pipeline.tasks.sandbox import CallResult, Sandbox, rate_limited_result

CANCEL_GRACE_S = 2.0  # a cancelled call must be acknowledged within this, or the sandbox is killed
_ID = struct.Struct("!Q")


# ---------------------------------------------------------------------------------------------
# The child
# ---------------------------------------------------------------------------------------------
def child_mux(fd: int, agent: Any, load_error: str | None, contexts: dict[str, dict]) -> None:
    """Serve calls concurrently until the harness closes the socket (runs in the sandboxed child)."""
    asyncio.run(_serve(fd, agent, load_error, contexts))


async def _serve(fd: int, agent: Any, load_error: str | None, contexts: dict[str, dict]) -> None:
    from scenario_pipeline.tasks.sandbox import _encode_answer, _failure_reply

    loop = asyncio.get_running_loop()
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    send_lock = asyncio.Lock()
    tasks: dict[int, asyncio.Task] = {}
    closed = loop.create_future()
    buf = bytearray()

    async def reply(cid: int, kind: bytes, payload: bytes) -> None:
        body = kind + _ID.pack(cid) + payload
        header = struct.pack("!i", len(body)) if len(body) <= 0x7FFFFFFF else struct.pack("!i", -1) + struct.pack("!Q", len(body))
        async with send_lock:  # one frame at a time on the socket
            try:
                await loop.sock_sendall(sock, header + body)
            except OSError:
                if not closed.done():
                    closed.set_result(None)

    async def call(cid: int, key: str, case_input: dict, max_bytes: int) -> None:
        try:
            if load_error:
                out = b"E" + load_error.encode("utf-8", "replace")
            else:
                answer = agent(case_input, contexts[key])
                if asyncio.iscoroutine(answer) or isinstance(answer, asyncio.Future):
                    answer = await answer
                out = _encode_answer(answer, max_bytes)
        except asyncio.CancelledError:
            out = b"C"
        except BaseException as exc:  # noqa: BLE001 - an agent's failure is a result
            out = _failure_reply(exc)
        finally:
            tasks.pop(cid, None)
        await reply(cid, out[:1], out[1:])

    def handle(msg: tuple) -> None:
        if msg[0] == "context":
            contexts.clear()  # one run at a time per child
            contexts[msg[1]] = msg[2]
        elif msg[0] == "call":
            _, cid, key, case_input, max_bytes = msg
            tasks[cid] = loop.create_task(call(cid, key, case_input, max_bytes))
        elif msg[0] == "cancel":
            task = tasks.get(msg[1])
            if task is not None:
                task.cancel()

    def readable() -> None:
        # os.read, not recv: read(2) on the socket is what the kernel's rchar counts, so the harness
        # can subtract exactly the bytes of its own messages from a call's measured reads.
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            loop.remove_reader(fd)
            if not closed.done():
                closed.set_result(None)
            return
        buf.extend(chunk)
        while len(buf) >= 4:
            (n,) = struct.unpack("!i", buf[:4])
            head = 4
            if n == -1:
                if len(buf) < 12:
                    return
                (n,) = struct.unpack("!Q", buf[4:12])
                head = 12
            if len(buf) < head + n:
                return
            msg = pickle.loads(bytes(buf[head : head + n]))
            del buf[: head + n]
            handle(msg)

    loop.add_reader(fd, readable)
    await closed
    for task in list(tasks.values()):
        task.cancel()


# ---------------------------------------------------------------------------------------------
# The harness side
# ---------------------------------------------------------------------------------------------
class _Dead(Exception):
    pass


@dataclass
class _Call:
    future: asyncio.Future
    started: float
    max_bytes: int
    overlapped: bool = False  # another call was in flight at some moment of this one
    cancelled: bool = False


@dataclass
class MuxSandbox:
    """One sandbox process serving many concurrent calls to an ``async def`` agent (harness side, asyncio).

    ``box`` is a started ``Sandbox`` whose child said its agent is async; it lends its process, its
    measurement and its kill. The reader task answers each call's future by request id."""

    box: Sandbox
    calls: dict[int, _Call] = field(default_factory=dict)
    next_id: int = 1
    context_key: str | None = None
    dead: str | None = None
    mark: int | None = None  # the process's read counter at the last answer
    sent: int = 0  # bytes of the harness's own messages sent to the child since then (it reads them)
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    task: asyncio.Task | None = None

    async def open(self) -> None:
        chan = self.box.chan
        assert chan is not None
        self.mark = self.box._read_total()
        self.sent = chan.send(("mux",), time.monotonic() + 10)
        sock = chan.sock
        sock.setblocking(False)
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        self.task = asyncio.get_running_loop().create_task(self._read_loop())

    @property
    def in_flight(self) -> int:
        return len(self.calls)

    def alive(self) -> bool:
        return self.dead is None and self.box._alive()

    # -- the reader ------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        reader = self.reader
        assert reader is not None
        try:
            while True:
                (n,) = struct.unpack("!i", await reader.readexactly(4))
                if n == -1:
                    (n,) = struct.unpack("!Q", await reader.readexactly(8))
                if n < 9:
                    raise _Dead("the agent process broke the protocol")
                head = await reader.readexactly(9)
                kind, (cid,) = head[:1], _ID.unpack(head[1:])
                call = self.calls.get(cid)
                limit = max(call.max_bytes + 1, 1 << 16) if call else 1 << 16
                if n - 9 > limit:  # refused before it is read: skipped in chunks, never held
                    left = n - 9
                    while left:
                        chunk = await reader.read(min(left, 1 << 20))
                        if not chunk:
                            raise _Dead("")
                        left -= len(chunk)
                    if call is not None and not call.future.done():
                        call.future.set_result((b"T", str(n - 10).encode()))
                    continue
                payload = await reader.readexactly(n - 9)
                if call is not None and not call.future.done():
                    call.future.set_result((kind, payload))
                elif call is not None and call.cancelled:
                    self.calls.pop(cid, None)  # the acknowledgement of a call given up on
        except (asyncio.IncompleteReadError, ConnectionError, OSError, _Dead) as exc:
            self._fail_all(str(exc) if isinstance(exc, _Dead) else "")
        except asyncio.CancelledError:
            self._fail_all("")
            raise

    def _fail_all(self, why: str) -> None:
        if self.dead is None:
            self.dead = why or "exited"
        for call in self.calls.values():
            if not call.future.done():
                call.future.set_exception(_Dead(self.dead))

    # -- one call ----------------------------------------------------------------------------
    async def call(self, case_input: dict, context: dict, context_key: str, timeout_s: float, max_bytes: int) -> CallResult:
        writer = self.writer
        if writer is None or not self.alive():
            return await self._crashed(None, time.perf_counter())
        loop = asyncio.get_running_loop()
        cid, self.next_id = self.next_id, self.next_id + 1
        call = _Call(loop.create_future(), time.perf_counter(), max_bytes)
        alone = not self.calls
        for other in self.calls.values():
            other.overlapped = True
        call.overlapped = not alone
        self.calls[cid] = call
        oom_before = self.box._oom_kills()
        try:
            if self.context_key != context_key:
                self._send(("context", context_key, context))
                self.context_key = context_key
            call.started = time.perf_counter()
            self._send(("call", cid, context_key, case_input, max_bytes))
            await writer.drain()
            kind, payload = await asyncio.wait_for(asyncio.shield(call.future), timeout_s)
        except TimeoutError:
            read = self._reads(call)
            await self._cancel(cid, call)
            return CallResult(None, f"timeout: no answer within {timeout_s:g} s", timeout_s * 1000.0, read, "timeout")
        except (_Dead, ConnectionError, OSError):
            self.calls.pop(cid, None)
            return await self._crashed(oom_before, call.started)
        latency_ms = (time.perf_counter() - call.started) * 1000.0
        read = self._reads(call)
        self.calls.pop(cid, None)
        self._idle_cleanup()
        oom = self.box._oom_kills()
        if oom is not None and oom_before is not None and oom > oom_before and not call.overlapped:
            return CallResult(None, self.box._memory_error("a process was killed"), latency_ms, read, "memory")
        if kind == b"J":
            return CallResult(payload, None, latency_ms, read)
        if kind == b"L":
            return rate_limited_result(payload, latency_ms, read)
        if kind == b"T":
            return CallResult(
                None, f"answer too large: {payload.decode()} bytes over the {max_bytes} byte limit", latency_ms, None, "too_large"
            )
        message = payload.decode("utf-8", "replace")
        box = self.box
        if message.startswith("agent raised MemoryError") and box.box is not None and box.box.memory_by == "rlimit":
            return CallResult(None, box._memory_error("allocation refused"), latency_ms, read, "memory")
        return CallResult(None, message, latency_ms, read)

    def _send(self, obj: Any) -> int:
        payload = bytes(ForkingPickler.dumps(obj))
        n = len(payload)
        header = struct.pack("!i", n) if n <= 0x7FFFFFFF else struct.pack("!i", -1) + struct.pack("!Q", n)
        assert self.writer is not None
        self.writer.write(header + payload)
        self.sent += len(header) + n
        return len(header) + n

    def _reads(self, call: _Call) -> int | None:
        """What the process read since the last answer (or since it was switched to this protocol), less
        the harness's own messages it read meanwhile, plus the dataset files it has mapped."""
        read = self.box._read_since(self.mark, self.sent, self.box._processes())
        self.mark, self.sent = self.box._read_total(), 0
        return read

    async def _cancel(self, cid: int, call: _Call) -> None:
        """Cancel a call over its time limit; a child that does not acknowledge in time is killed."""
        call.cancelled = True
        try:
            self._send(("cancel", cid))
            assert self.writer is not None
            await self.writer.drain()
            await asyncio.wait_for(asyncio.shield(call.future), CANCEL_GRACE_S)
            self.calls.pop(cid, None)
            self._idle_cleanup()
        except (TimeoutError, _Dead, ConnectionError, OSError):
            self.calls.pop(cid, None)
            # Its event loop is blocked (or gone): every other call in it would hang too.
            self.kill(
                "killed: its event loop did not answer within "
                f"{CANCEL_GRACE_S:g} s after a call over the time limit was cancelled"
            )

    async def _crashed(self, oom_before: int | None, started: float) -> CallResult:
        latency_ms = (time.perf_counter() - started) * 1000.0
        why = self.dead or "exited"
        oom = self.box._oom_kills()
        if oom is not None and oom_before is not None and oom > oom_before:
            return CallResult(None, self.box._memory_error("process killed"), latency_ms, None, "memory")
        if why.startswith("killed:"):
            return CallResult(None, f"agent crashed its process ({why})", latency_ms, None, "crashed")
        code = self.box.proc.poll() if self.box.proc is not None else None
        if code is None and self.box.proc is not None:
            try:
                code = await asyncio.get_running_loop().run_in_executor(None, self.box.proc.wait, 10)
            except Exception:  # noqa: BLE001 - TimeoutExpired: report what is known
                code = None
        return CallResult(None, f"agent crashed its process (exit code {code})", latency_ms, None, "crashed")

    def _idle_cleanup(self) -> None:
        """With no call in flight, every process but the agent's main one goes (as after each call of a
        one-call sandbox)."""
        box = self.box.box
        if self.calls or box is None or not self.alive():
            return
        if not box.kill_strays():
            self.kill("killed: processes outran the cleanup")
            return
        total = self.box._read_total()  # killed processes leave the sum until reaped: never let the mark sit above it
        if total is not None and self.mark is not None:
            self.mark = min(self.mark, total)

    def kill(self, why: str = "killed") -> None:
        self._fail_all(why)
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001, S110 - closing a broken transport
                pass
        self.box.chan = None  # the transport owns the socket now
        self.box.kill()


__all__ = ["CANCEL_GRACE_S", "MuxSandbox", "child_mux"]
