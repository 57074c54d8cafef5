"""Hostile agents for tests/test_sandbox_hostile.py: each tries one escape and answers what it
found, so the test can assert the exact outcome. ``tests.agents_hostile:NAME``; the ``attack``
agent runs the function named by the case's ``"attack"`` key (one sandbox, several attacks)."""

from __future__ import annotations

import ctypes
import errno
import glob
import mmap
import os
import socket
import subprocess
import threading
import time
from typing import Any

_KEEP: list[Any] = []  # mappings and the like that must outlive the call


def _err(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return type(exc).__name__


def _read(path: str, limit: int = 1 << 20) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode("utf-8", "replace")
    except OSError as exc:
        return f"<{_err(exc)}>"


def _storage(context: dict[str, Any]) -> tuple[str, str]:
    dataset = context["dataset"]["url"].removeprefix("file://")
    return dataset, dataset.split("/datasets/")[0]


def _pids() -> list[int]:
    """The live processes this agent can see (zombies, dead and waiting for their parent, left out)."""
    out = []
    for p in glob.glob("/proc/[0-9]*"):
        if _read(p + "/stat").rpartition(")")[2][:3] not in (" Z ", " X ", ""):
            out.append(int(p.split("/")[2]))
    return sorted(out)


def attack(case: dict[str, Any], context: dict[str, Any]) -> Any:
    return globals()[case["attack"]](case, context)


def secrets(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Everything an agent could read that might hold the harness's environment."""
    seen: dict[str, str] = {"os.environ": repr(dict(os.environ))}
    for path in glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline") + ["/proc/self/environ"]:
        seen[path] = _read(path)
    ppid = os.getppid()
    harness = case["harness_pid"]  # a host pid: in the sandbox's PID namespace it names nothing (or another process)
    for path in (
        f"/proc/{harness}/environ",
        f"/proc/{harness}/root/proc/{harness}/environ",
        f"/proc/{ppid}/environ",
        f"/proc/{ppid}/root/proc/1/environ",
        f"/proc/1/root/proc/{harness}/environ",
        f"/proc/{ppid}/root{case['secret_file']}",
        case["secret_file"],
        *case.get("files", ()),
    ):
        seen[path] = _read(path)
    try:
        seen["/proc/1/root listing"] = repr(sorted(os.listdir(f"/proc/{ppid}/root")))
    except OSError as exc:
        seen["/proc/1/root listing"] = f"<{_err(exc)}>"
    return {"pids": _pids(), "uid": os.getuid(), "ppid": ppid, "seen": seen, "env": dict(os.environ)}


def storage(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """What of the storage root is visible and writable: runs/, truth/, the warehouse, the dataset."""
    dataset, root = _storage(context)
    out: dict[str, Any] = {"listing": sorted(os.listdir(root)) if os.path.isdir(root) else None}
    for name in ("runs", "truth", "warehouse.duckdb", "datasets"):
        out[name] = os.path.exists(os.path.join(root, name))
    found = []
    for folder, _, files in os.walk(root):
        found += [os.path.relpath(os.path.join(folder, f), root) for f in files]
    out["files"] = sorted(found)
    writes = {}
    for target in (
        os.path.join(dataset, "evil.parquet"),
        os.path.join(root, "runs", "x.json"),
        os.path.join(root, "evil"),
        os.path.join(case["project"], "evil.py"),
        "/usr/evil",
        "/etc/evil",
        "/evil",
        "/dev/evil",
        "/tmp/ok",
        "/dev/shm/ok",
    ):
        try:
            with open(target, "wb") as fh:
                fh.write(b"x")
            writes[target] = "written"
        except OSError as exc:
            writes[target] = _err(exc)
    out["writes"] = writes
    return out


def mounts(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Remount the dataset read-write, unmount the covers, make a namespace of its own: as syscalls and as commands."""
    dataset, root = _storage(context)
    libc = ctypes.CDLL(None, use_errno=True)
    ms_remount, ms_bind = 32, 4096

    def call(fn: Any, *args: Any) -> str:
        rc = fn(*args)
        return "ok" if rc == 0 else errno.errorcode.get(ctypes.get_errno(), "?")

    out = {
        "remount_rw": call(libc.mount, None, dataset.encode(), None, ms_remount | ms_bind, None),
        "umount_dataset": call(libc.umount2, dataset.encode(), 2),  # MNT_DETACH
        "umount_storage_cover": call(libc.umount2, root.encode(), 2),
        "unshare_user": call(libc.unshare, 0x10000000),  # CLONE_NEWUSER
        "unshare_mount": call(libc.unshare, 0x00020000),  # CLONE_NEWNS
        "setuid0": call(libc.setuid, 0),
    }
    for name, cmd in (
        ("mount_cmd", ["mount", "-o", "remount,rw", dataset]),
        ("umount_cmd", ["umount", "-l", root]),
        ("unshare_cmd", ["unshare", "-Ur", "true"]),
    ):
        try:
            p = subprocess.run(cmd, capture_output=True, timeout=20, check=False)
            out[name] = p.returncode
        except OSError as exc:
            out[name] = _err(exc)
    try:
        with open(os.path.join(dataset, "evil.parquet"), "wb") as fh:
            fh.write(b"x")
        out["write_after"] = "written"
    except OSError as exc:
        out["write_after"] = _err(exc)
    out["status"] = {
        k: v
        for k, v in (line.split(":", 1) for line in _read("/proc/self/status").splitlines())
        if k in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Uid", "Gid")
    }
    return out


def connect(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Reach the harness's loopback services (a Prefect API, a Dask scheduler) and the outside."""
    out = {}
    for host, port in case["targets"]:
        try:
            with socket.create_connection((host, port), timeout=3) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                out[f"{host}:{port}"] = "connected: " + s.recv(100).decode("latin-1")
        except OSError as exc:
            out[f"{host}:{port}"] = _err(exc)
    out["interfaces"] = sorted(name for _, name in socket.if_nameindex())
    return out


def daemon(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Double fork + setsid: a daemon that waits, then writes a marker and tries the dataset."""
    dataset, _ = _storage(context)
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.close(r)
            os.write(w, str(os.getpid()).encode())
            os.close(w)
            time.sleep(case.get("delay", 1.0))
            with open(case["marker"], "w") as fh:
                fh.write("daemon was here")
            try:
                with open(os.path.join(dataset, "late.parquet"), "wb") as fh:
                    fh.write(b"x")
            except OSError:
                pass
            time.sleep(3600)
        os._exit(0)
    os.close(w)
    pid = int(os.read(r, 32))
    os.close(r)
    return {"daemon_pid": pid}


def is_alive(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    try:
        os.kill(case["pid"], 0)
        alive = True
    except ProcessLookupError:
        alive = False
    return {"alive": alive, "marker": os.path.exists(case["marker"]), "pids": _pids()}


def memory_bomb(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    hog = b"x" * (case["mb"] << 20)  # every page touched
    return {"allocated": len(hog)}


def fork_bomb(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """A child that forks without end (each child forks too); the main process then tries to fork."""
    if os.fork() == 0:
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(0.001)
    time.sleep(case.get("seconds", 1.5))
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        main_forked = True
    except OSError:
        main_forked = False
    return {"main_forked": main_forked, "processes_seen": len(_pids())}


def sleep(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    time.sleep(case["seconds"])
    return {}


def ok(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "pids": _pids()}


def read_n(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Reads exactly N bytes of a dataset file with os.read, and claims it read nothing."""
    dataset, _ = _storage(context)
    fd = os.open(os.path.join(dataset, case["file"]), os.O_RDONLY)
    try:
        got = 0
        while got < case["n"]:
            chunk = os.read(fd, case["n"] - got)
            if not chunk:
                break
            got += len(chunk)
    finally:
        os.close(fd)
    return {"bytes_read": 0, "got": got}


def mmap_touch(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Maps a dataset file, touches every page (no read(2) at all), keeps the mapping; claims 0."""
    dataset, _ = _storage(context)
    with open(os.path.join(dataset, case["file"]), "rb") as fh:
        m = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
    total = sum(m[i] for i in range(0, len(m), mmap.PAGESIZE))
    _KEEP.append(m)
    return {"bytes_read": 0, "checksum": total}


def read_between_calls(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Starts a thread that reads N bytes after the call has answered, to answer the next case from
    memory: the reads fall between two calls, in no call's window."""

    def later() -> None:
        time.sleep(case["delay"])
        read_n({"file": case["file"], "n": case["n"]}, context)

    threading.Thread(target=later, daemon=True).start()
    return {"bytes_read": 0, "got": 0}


def child_reads(case: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Reads through a short-lived child process (cat), which exits before the answer."""
    dataset, _ = _storage(context)
    out = subprocess.run(
        ["head", "-c", str(case["n"]), os.path.join(dataset, case["file"])], capture_output=True, check=True
    ).stdout
    return {"bytes_read": 0, "got": len(out)}


async def async_attack(case: dict[str, Any], context: dict[str, Any]) -> Any:
    """The ``async def`` twin of ``attack``: served many calls at once in one process (tasks/sandbox_mux.py)."""
    import asyncio

    if case["attack"] == "read_then_wait":  # reads N bytes, then waits while the other calls do the same
        got = read_n(case, context)
        await asyncio.sleep(case["wait"])
        return got
    return globals()[case["attack"]](case, context)
