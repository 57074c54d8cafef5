"""The bubblewrap sandbox for untrusted agents (tasks/sandbox.py uses it).

One sandbox is one ``bwrap`` process tree, started by a tiny root launcher (``LAUNCHER``) that,
before any agent code exists: joins the sandbox's cgroups (memory, pids), sets the fallback
rlimits, stages the folders to bind in a private mount namespace of its own (so folders under
0700 parents such as /root/.pyenv can be bound), drops to the sandbox uid/gid with no
supplementary groups and execs bwrap. bwrap then gives the agent its own user, PID, mount, IPC,
UTS, cgroup and network namespaces, no capabilities, no_new_privs, no further user namespaces,
a fresh /proc, a minimal /dev, a private /tmp and a minimal read-only filesystem.

From the host the harness sees every process of the sandbox (same PID namespace as bwrap's init)
and measures and cleans up with that: the bytes they read (``rchar``), the dataset files they
map, and the processes left over after a call (killed).

Limits: a memory and a pids cgroup per sandbox, made under this process's own cgroups (v1, or a
v2 folder whose memory and pids controllers are delegated) so that the worker's own limits still
hold; the OOM killer's counter says when the memory limit killed something. Where no cgroup can
be made, RLIMIT_DATA (not RLIMIT_AS: pyarrow and duckdb reserve far more address space than they
use) and RLIMIT_NPROC, which the kernel also checks against the count of *all* the uid's tasks on
the host: concurrent sandboxes under one uid share that fallback process limit.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SANDBOX_UID = 65534  # nobody
SANDBOX_GID = 65534  # nogroup
_SYSTEM_DIRS = ("/usr", "/etc")
_TOP_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")  # symlinks into /usr, or real folders
# The project's packages (pyproject.toml [tool.setuptools] packages): in an editable install they
# live in folders of the checkout that are not on sys.path, and the child imports from them.
_PROJECT_PACKAGES = (
    "scenario_pipeline",
    "scenario_pipeline.agents",
    "scenario_pipeline.compare",
    "scenario_pipeline.cost",
    "scenario_pipeline.datasets",
    "scenario_pipeline.flows",
    "scenario_pipeline.infra",
    "scenario_pipeline.scenarios",
    "scenario_pipeline.tasks",
    "scenario_pipeline.warehouse",
)
_STORAGE_PRIVATE = ("truth", "runs")  # a folder holding datasets/ and one of these is a storage root
# datasets/manifest.py's DATASETS and TRUTH_DIR (tests/test_sandbox.py checks they agree), spelled out here
# so that a trusted sandbox child hides the answer key without importing the dataset layer (pyarrow):
# about 0.5 CPU-seconds and 140 MB less for every process a pool starts.
DATASETS = "datasets"
TRUTH_DIR = "truth"
# Credentials that sit in a home or project folder which happens to be on sys.path: covered too.
# (.git: a remote URL in its config may carry a token.)
_SECRET_NAMES = (
    ".aws",
    ".ssh",
    ".gnupg",
    ".docker",
    ".kube",
    ".config",
    ".prefect",
    ".netrc",
    ".pgpass",
    ".git-credentials",
    ".git",
    ".env",
    ".pypirc",
)
CGROUP_PREFIX = "scenario-sandbox"
OUTPUT_LIMIT = 1 << 20  # bytes of a sandbox's stdout/stderr forwarded to the worker's stderr

# Runs as root in a fresh interpreter (python -I -S): nothing of the agent exists yet.
LAUNCHER = r"""
import ctypes, json, os, resource, sys
spec = json.loads(sys.argv[1])
for procs in spec["cgroups"]:
    with open(procs, "w") as fh:
        fh.write(str(os.getpid()))
for name, value in spec["rlimits"]:
    resource.setrlimit(getattr(resource, name), (value, value))
libc = ctypes.CDLL(None, use_errno=True)
def check(rc, what):
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, what + ": " + os.strerror(err))
if spec["stage"]:
    check(libc.unshare(0x00020000), "unshare(CLONE_NEWNS)")
    check(libc.mount(b"none", b"/", None, 16384 | (1 << 18), None), "mount --make-rprivate /")
    check(libc.mount(b"tmpfs", spec["stage"].encode(), b"tmpfs", 2 | 4 | 8, b"mode=0755,size=1m"), "mount tmpfs on the stage")
    for i, src in enumerate(spec["sources"]):
        dst = os.path.join(spec["stage"], str(i))
        if os.path.isdir(src):
            os.mkdir(dst, 0o755)
        else:
            open(dst, "w").close()
        check(libc.mount(src.encode(), dst.encode(), None, 4096 | 16384, None), "bind " + src)
if spec["uid"] is not None:
    os.setgroups([])
    os.setresgid(spec["gid"], spec["gid"], spec["gid"])
    os.setresuid(spec["uid"], spec["uid"], spec["uid"])
libc.prctl(1, 9)  # PR_SET_PDEATHSIG SIGKILL: after the uid change, which clears it
if os.getppid() != spec["parent"]:
    os._exit(1)
os.execv(spec["argv"][0], spec["argv"])
"""


# ---------------------------------------------------------------------------------------------
# Can this machine run the sandbox?
# ---------------------------------------------------------------------------------------------
_SUPPORT: dict[tuple, tuple[bool, str]] = {}
_SUPPORT_LOCK = threading.Lock()


def sandbox_uid(uid: int = SANDBOX_UID, gid: int = SANDBOX_GID) -> tuple[int, int, bool]:
    """(uid, gid, switch): root switches to the sandbox uid; anyone else runs bwrap as itself."""
    if os.geteuid() == 0:
        return uid, gid, True
    return os.geteuid(), os.getegid(), False


def sandbox_support(uid: int = SANDBOX_UID, gid: int = SANDBOX_GID) -> tuple[bool, str]:
    """Whether the bwrap sandbox works here, and one line saying why not. Probed once per process
    (per bwrap found on PATH and uid): a trial ``bwrap ... /bin/true`` as the sandbox uid."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False, "bwrap is not installed (apt-get install bubblewrap)"
    if not sys.platform.startswith("linux"):
        return False, "the bwrap sandbox needs Linux"
    key = (bwrap, uid, gid, os.geteuid())
    with _SUPPORT_LOCK:
        if key not in _SUPPORT:
            _SUPPORT[key] = _probe(bwrap, uid, gid)
        return _SUPPORT[key]


def _sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    except OSError:
        return None


def _probe(bwrap: str, uid: int, gid: int) -> tuple[bool, str]:
    if _sysctl("user.max_user_namespaces") == "0":
        return False, "user namespaces are disabled (sysctl user.max_user_namespaces=0)"
    run_uid, _, switch = sandbox_uid(uid, gid)
    argv = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
    ]
    sources: list[str] = []
    stage = _stage_dir() if switch else ""
    for dest in _SYSTEM_DIRS:
        argv += ["--ro-bind", _staged(stage, sources, dest), dest]
    argv += _top_links(stage, sources)
    argv += ["--", "/bin/true"]
    try:
        proc = subprocess.run(
            _launcher_argv(argv, stage, sources, [], [], uid if switch else None, gid),
            env=_launcher_env(),
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"the trial bwrap run failed: {exc}"
    if proc.returncode == 0:
        return True, ""
    why = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    if _sysctl("kernel.unprivileged_userns_clone") == "0":
        return False, "unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=0)"
    if _sysctl("kernel.apparmor_restrict_unprivileged_userns") == "1":
        return False, "AppArmor restricts unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns=1)"
    return False, f"the trial bwrap run as uid {run_uid} failed: {why[:200]}"


def _launcher_env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def _launcher_argv(
    bwrap_argv: list[str],
    stage: str,
    sources: list[str],
    cgroups: list[str],
    rlimits: list[tuple[str, int]],
    uid: int | None,
    gid: int,
) -> list[str]:
    spec = {
        "cgroups": cgroups,
        "rlimits": rlimits,
        "stage": stage,
        "sources": sources,
        "uid": uid,
        "gid": gid,
        "parent": os.getpid(),
        "argv": bwrap_argv,
    }
    return [sys.executable, "-I", "-S", "-c", LAUNCHER, json.dumps(spec)]


def _stage_dir() -> str:
    """An empty root-owned folder on which the launcher mounts its staging tmpfs (in its own mount
    namespace only: on the host the folder stays empty)."""
    parent = "/run" if os.path.isdir("/run") else "/tmp"
    path = os.path.join(parent, "scenario-sandbox-stage")
    os.makedirs(path, mode=0o755, exist_ok=True)
    return path


def _staged(stage: str, sources: list[str], src: str) -> str:
    """The path bwrap binds from: the source itself, or its staged copy under ``stage``."""
    if not stage:
        return src
    sources.append(src)
    return os.path.join(stage, str(len(sources) - 1))


def _top_links(stage: str, sources: list[str]) -> list[str]:
    out: list[str] = []
    for name in _TOP_LINKS:
        path = "/" + name
        if os.path.islink(path):
            out += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            out += ["--ro-bind", _staged(stage, sources, path), path]
    return out


# ---------------------------------------------------------------------------------------------
# What the sandbox sees
# ---------------------------------------------------------------------------------------------
def python_paths() -> list[str]:
    """Folders the agent's interpreter needs, real paths, nested ones dropped: the prefixes, every
    existing folder on sys.path (the agent's module must import) and the project's packages."""
    paths = [
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        getattr(sys, "base_exec_prefix", sys.base_prefix),
        os.path.dirname(os.path.realpath(sys.executable)),
    ]
    paths += [p or os.getcwd() for p in sys.path]
    try:
        import importlib.util

        for name in _PROJECT_PACKAGES:
            spec = importlib.util.find_spec(name)
            paths += list(spec.submodule_search_locations or []) if spec else []
    except (ImportError, ValueError):
        pass
    real = {os.path.realpath(p) for p in paths if p and os.path.isdir(p)} - {"/"}  # never the whole host
    return sorted(p for p in real if not any(_under(p, q) and p != q for q in real) and not _system(p))


def import_path() -> str:
    """PYTHONPATH for the child: this process's sys.path folders, in order, as real paths."""
    seen: list[str] = []
    for p in sys.path:
        p = os.path.realpath(p or os.getcwd())
        if os.path.isdir(p) and p not in seen:
            seen.append(p)
    return os.pathsep.join(seen)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _system(path: str) -> bool:
    return any(_under(path, d) for d in _SYSTEM_DIRS) or any(_under(path, "/" + n) for n in _TOP_LINKS)


def storage_root_of(dataset: str) -> str | None:
    """{storage} of a dataset folder laid out as {storage}/datasets/{name}/{spec_hash}."""
    root = Path(os.path.abspath(dataset))
    if len(root.parents) < 3 or root.parents[1].name != DATASETS or str(root.parents[2]) == "/":
        return None
    return str(root.parents[2])


def covers(dataset: str, binds: list[str]) -> tuple[list[str], list[str]]:
    """What to hide inside the bound folders: (folders under an empty tmpfs, files under /dev/null).

    Storage roots (datasets/ with runs/ or truth/, and warehouse.duckdb): the dataset's own, the
    configured data folder, and any such folder one level below a bound folder outside the
    interpreter (a repository holding scenario-data/, say); and credential files or folders
    (.aws, .ssh, .env, ...) directly in such a bound folder (a home folder on sys.path, say).
    """
    candidates = []
    own = storage_root_of(dataset) if dataset else None
    if own:
        candidates.append(own)
    try:
        from scenario_pipeline.settings import load_settings

        candidates.append(str(load_settings().resolved_data_dir()))
    except Exception:  # noqa: BLE001, S110 - settings that do not load: the run has already said so
        pass
    secret_files: list[str] = []
    interpreter = [os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)]
    for b in binds:
        if any(_under(b, p) for p in interpreter):
            continue
        try:
            children = list(os.scandir(b))
        except OSError:
            continue
        for child in children:
            if child.name in _SECRET_NAMES:
                (candidates if child.is_dir(follow_symlinks=False) else secret_files).append(child.path)
            elif (
                child.is_dir(follow_symlinks=False)
                and os.path.isdir(os.path.join(child.path, "datasets"))
                and any(os.path.isdir(os.path.join(child.path, n)) for n in _STORAGE_PRIVATE)
            ):
                candidates.append(child.path)
    folders = []
    for c in candidates:
        c = os.path.abspath(c)
        if c != "/" and os.path.isdir(c) and c not in folders and any(_under(c, b) for b in binds):
            folders.append(c)
    files = [f for f in secret_files if not any(_under(f, c) for c in folders)]
    return folders, files


@dataclass
class MountPlan:
    argv: list[str]  # bwrap's filesystem options, in order
    sources: list[str]  # what the launcher stages (stage/0, stage/1, ...)
    covered: list[str]  # storage roots and credentials hidden under an empty tmpfs or /dev/null
    binds: list[str]  # folders bound read-only, besides the system ones and the dataset


def mount_plan(dataset: str, stage: str, tmp_mb: int) -> MountPlan:
    sources: list[str] = []
    argv = [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(tmp_mb << 20),
        "--tmpfs",
        "/dev/shm",
        "--size",
        str(tmp_mb << 20),
        "--tmpfs",
        "/tmp",
    ]
    for dest in _SYSTEM_DIRS:
        if os.path.isdir(dest):
            argv += ["--ro-bind", _staged(stage, sources, dest), dest]
    argv += _top_links(stage, sources)
    binds = python_paths()
    folders, files = covers(dataset, binds)
    ops: list[tuple[tuple[str, ...], int, str]] = [(Path(b).parts, 0, b) for b in binds]
    ops += [(Path(c).parts, 1, c) for c in folders]
    ops += [(Path(f).parts, 3, f) for f in files]
    if dataset:
        ops.append((Path(os.path.abspath(dataset)).parts, 2, dataset))
    for _, kind, path in sorted(ops):  # parents before children; at one path a bind, then its cover
        if kind == 0:
            argv += ["--ro-bind", _staged(stage, sources, path), path]
        elif kind == 1:
            argv += ["--size", str(1 << 20), "--tmpfs", path]
        elif kind == 2:
            argv += ["--ro-bind", _staged(stage, sources, os.path.realpath(path)), os.path.abspath(path)]
        else:
            argv += ["--ro-bind", "/dev/null", path]
    for c in folders:
        argv += ["--remount-ro", c]
    # The only writable places are /tmp and /dev/shm, both of a bounded size (and, with a cgroup,
    # charged to its memory): the root bwrap builds the tree in, and /dev, become read-only.
    argv += ["--remount-ro", "/dev", "--remount-ro", "/"]
    return MountPlan(argv, sources, folders + files, binds)


def agent_environment(env_allow: tuple[str, ...], pythonpath: str, home: str = "/tmp") -> dict[str, str]:
    """The agent's whole environment: nothing of the harness's but what is named in ``env_allow``."""
    bindir = os.path.dirname(sys.executable)
    env = {
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "PYTHONPATH": pythonpath,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for name in ("PYTHONHASHSEED", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", *env_allow):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


# ---------------------------------------------------------------------------------------------
# Limits: a cgroup per sandbox where this process may make one, rlimits otherwise
# ---------------------------------------------------------------------------------------------
_COUNTER = itertools.count(1)


def _own_cgroups() -> dict[str, str]:
    """controller ('memory', 'pids', or '' for the v2 hierarchy) -> this process's cgroup folder."""
    mounts: dict[str, str] = {}
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fstype, _, super_opts = (right.split(" ") + ["", "", ""])[:3]
            mountpoint = left.split(" ")[4]
            if fstype == "cgroup2":
                mounts.setdefault("", mountpoint)
            elif fstype == "cgroup":
                for opt in super_opts.split(","):
                    if opt in ("memory", "pids"):
                        mounts.setdefault(opt, mountpoint)
        own: dict[str, str] = {}
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                if c in mounts:
                    own[c] = os.path.join(mounts[c], path.lstrip("/"))
        return own
    except (OSError, ValueError, IndexError):
        return {}


def _write(path: str, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _counter(path: str, name: str) -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    except (OSError, ValueError):
        pass
    return None


@dataclass
class Cgroups:
    """The sandbox's cgroup folders (v1 memory + pids, or one v2 folder); empty where not writable."""

    memory: str | None = None
    pids: str | None = None
    v2: bool = False
    dirs: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, memory_mb: int, max_processes: int) -> Cgroups:
        cg = cls()
        if os.geteuid() != 0:
            return cg
        own = _own_cgroups()
        name = f"{CGROUP_PREFIX}-{os.getpid()}-{next(_COUNTER)}"
        limit = str(memory_mb << 20)
        if "memory" in own or "pids" in own:
            if "memory" in own:
                d = cg._mkdir(own["memory"], name)
                try:
                    if d:
                        _write(os.path.join(d, "memory.limit_in_bytes"), limit)
                        if os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes")):
                            _write(os.path.join(d, "memory.memsw.limit_in_bytes"), limit)
                        cg.memory = d
                except OSError:
                    pass
            if "pids" in own:
                d = cg._mkdir(own["pids"], name)
                try:
                    if d:
                        _write(os.path.join(d, "pids.max"), str(max_processes))
                        cg.pids = d
                except OSError:
                    pass
        elif "" in own:
            try:
                delegated = Path(own[""], "cgroup.subtree_control").read_text().split()
            except OSError:
                delegated = []
            if "memory" in delegated and "pids" in delegated:
                d = cg._mkdir(own[""], name)
                try:
                    if d:
                        _write(os.path.join(d, "memory.max"), limit)
                        if os.path.exists(os.path.join(d, "memory.swap.max")):
                            _write(os.path.join(d, "memory.swap.max"), "0")
                        _write(os.path.join(d, "pids.max"), str(max_processes))
                        cg.memory = cg.pids = d
                        cg.v2 = True
                except OSError:
                    pass
        return cg

    def _mkdir(self, parent: str, name: str) -> str | None:
        _sweep(parent)
        d = os.path.join(parent, name)
        try:
            os.mkdir(d)
        except OSError:
            return None
        self.dirs.append(d)
        return d

    def procs_files(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in dict.fromkeys(d for d in (self.memory, self.pids) if d)]

    def processes(self) -> list[int]:
        """The processes in the sandbox's cgroup (one hierarchy is enough: all joined all)."""
        for f in self.procs_files():
            try:
                with open(f, "rb") as fh:
                    return [int(x) for x in fh.read().split()]
            except (OSError, ValueError):
                continue
        return []

    def oom_kills(self) -> int | None:
        if not self.memory:
            return None
        return _counter(os.path.join(self.memory, "memory.events" if self.v2 else "memory.oom_control"), "oom_kill")

    def pids_refused(self) -> int | None:
        return _counter(os.path.join(self.pids, "pids.events"), "max") if self.pids else None

    def remove(self) -> None:
        for d in self.dirs:
            _rmdir(d)
        self.dirs = []


def _rmdir(d: str, attempts: int = 50) -> None:
    for _ in range(attempts):
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)  # the last processes are still leaving


def _sweep(parent: str) -> None:
    """Remove empty sandbox cgroups of worker processes that are gone (killed before their cleanup)."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for n in names:
        if n.startswith(CGROUP_PREFIX + "-"):
            pid = n.split("-")[-2]
            if pid.isdigit() and int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}"):
                _rmdir(os.path.join(parent, n), attempts=1)


# ---------------------------------------------------------------------------------------------
# Seeing the sandbox's processes from the host
# ---------------------------------------------------------------------------------------------
def pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def processes_in(ns: str, candidates: list[int] | None = None) -> list[int]:
    """Every process (thread group) whose PID namespace is ``ns``, zombies left out."""
    if candidates is None:
        candidates = [int(n) for n in os.listdir("/proc") if n.isdigit()]
    out = []
    for pid in candidates:
        if pid_namespace(pid) == ns and not _zombie(pid):
            out.append(pid)
    return out


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rpartition(b")")[2][:3] in (b" Z ", b" X ")
    except OSError:
        return True


def rchar(pid: int) -> int | None:
    """Bytes this process and the children it reaped have read (any read(2)-like call), or None."""
    try:
        with open(f"/proc/{pid}/io", "rb") as fh:
            for line in fh:
                if line.startswith(b"rchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def mapped_files(pids: list[int], root: str) -> set[str]:
    """Files under ``root`` that any of these processes has mapped."""
    prefix = root.rstrip("/") + "/"
    found: set[str] = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        if prefix.encode() not in data:
            continue
        for line in data.decode("utf-8", "replace").splitlines():
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith(prefix):
                found.add(parts[5].removesuffix(" (deleted)"))
    return found


def file_sizes(paths: set[str]) -> int:
    total = 0
    for p in paths:
        try:
            total += os.stat(p).st_size
        except OSError:
            pass
    return total


# ---------------------------------------------------------------------------------------------
# One running sandbox
# ---------------------------------------------------------------------------------------------
class BwrapStartError(OSError):
    pass


class BwrapBox:
    """A started bwrap sandbox: the outer bwrap (our child), its init (PID 1 inside), the agent's
    main process, the cgroups and, for network "outbound", slirp4netns."""

    def __init__(
        self,
        command: list[str],
        pass_fd: int,
        dataset: str,
        env: dict[str, str],
        *,
        uid: int,
        gid: int,
        memory_mb: int,
        max_processes: int,
        network: str,
    ) -> None:
        bwrap = shutil.which("bwrap")
        if not bwrap:
            raise BwrapStartError("bwrap is not installed (apt-get install bubblewrap)")
        self.bwrap: str = bwrap
        if network == "outbound" and not shutil.which("slirp4netns"):
            raise BwrapStartError("network 'outbound' needs slirp4netns (apt-get install slirp4netns)")
        self.uid, self.gid, self._switch = sandbox_uid(uid, gid)
        self.memory_mb, self.max_processes, self.network = memory_mb, max_processes, network
        self.dataset = os.path.abspath(dataset) if dataset else ""
        self.proc: subprocess.Popen | None = None
        self.slirp: subprocess.Popen | None = None
        self.init_pid = self.main_pid = 0
        self.ns: str | None = None
        self._fds: list[int] = []
        self.cgroups = Cgroups.create(memory_mb, max_processes)
        self.memory_by = "cgroup" if self.cgroups.memory else "rlimit"
        self.processes_by = "cgroup" if self.cgroups.pids else ("rlimit" if self._switch else "none")
        try:
            self._launch(command, pass_fd, env)
        except BaseException:
            self.close()
            raise

    def _launch(self, command: list[str], pass_fd: int, env: dict[str, str]) -> None:
        rlimits: list[tuple[str, int]] = []
        if not self.cgroups.memory:
            rlimits.append(("RLIMIT_DATA", self.memory_mb << 20))  # RLIMIT_AS starves pyarrow/duckdb of address space
        if self.processes_by == "rlimit":
            rlimits.append(("RLIMIT_NPROC", self.max_processes))  # counted per user namespace on Linux 5.14+
        stage = _stage_dir() if self._switch else ""
        self.plan = plan = mount_plan(self.dataset, stage, self.memory_mb)
        info_r, info_w = self._pipe()
        argv = [
            self.bwrap,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "sandbox",
        ]
        argv += plan.argv
        passed = [pass_fd, info_w]
        block_w = -1
        if self.network == "outbound":
            block_r, block_w = self._pipe()
            dns_r, dns_w = self._pipe()
            os.write(dns_w, b"nameserver 10.0.2.3\n")  # slirp4netns's DNS forwarder
            self._close_fd(dns_w)
            passed += [block_r, dns_r]
            argv += ["--block-fd", str(block_r), "--ro-bind-data", str(dns_r), os.path.realpath("/etc/resolv.conf")]
        argv += ["--chdir", "/tmp", "--info-fd", str(info_w), "--", *command]
        launcher = _launcher_argv(
            argv, stage, plan.sources, self.cgroups.procs_files(), rlimits, self.uid if self._switch else None, self.gid
        )
        # The agent's environment is the launcher's, which bwrap passes on: not --setenv, since a
        # command line is public on the host (ps) and the allowed variables may be credentials.
        self.proc = subprocess.Popen(
            launcher, pass_fds=passed, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for fd in passed[1:]:
            self._close_fd(fd)
        self.output = _Output(self.proc.stdout)
        try:
            info = _read_info(info_r, 60.0)
        except BwrapStartError:
            try:
                code = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
            time.sleep(0.05)  # the output pump's last read
            raise BwrapStartError(f"bwrap did not start (exit code {code}): {self.output.last_line()}") from None
        self._close_fd(info_r)
        self.init_pid = int(info["child-pid"])
        self.ns = pid_namespace(self.init_pid)
        if self.network == "outbound":
            # bwrap configures the sandbox's loopback before it blocks on --block-fd; slirp4netns
            # configuring the namespace at the same time makes one of them fail (RTM_NEWADDR).
            _wait_reading(self.init_pid, passed[2], 30.0)
            self._start_slirp(block_w)

    def _pipe(self) -> tuple[int, int]:
        r, w = os.pipe()
        self._fds += [r, w]
        return r, w

    def _close_fd(self, fd: int) -> None:
        if fd in self._fds:
            self._fds.remove(fd)
            os.close(fd)

    def _start_slirp(self, block_w: int) -> None:
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        self._fds += [exit_w]
        try:
            # bwrap's processes live in a user namespace nested in the one that owns the network
            # namespace: slirp4netns would join theirs and lose the right to join the network; our
            # own user namespace (joining it is a no-op) keeps root's. It drops root's capabilities
            # and confines itself (--enable-sandbox, --enable-seccomp) before it handles a packet.
            self.slirp = subprocess.Popen(
                [
                    "slirp4netns",
                    "--configure",
                    "--mtu=65520",
                    "--disable-host-loopback",
                    "--userns-path=/proc/self/ns/user",
                    "--enable-sandbox",
                    "--enable-seccomp",
                    "--ready-fd",
                    str(ready_w),
                    "--exit-fd",
                    str(exit_r),
                    str(self.init_pid),
                    "tap0",
                ],
                pass_fds=(ready_w, exit_r),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        finally:
            os.close(ready_w)
            os.close(exit_r)
        try:
            ready, _, _ = select.select([ready_r], [], [], 30.0)
            ok = bool(ready) and os.read(ready_r, 1) == b"1"
        finally:
            os.close(ready_r)
        if not ok:
            raise BwrapStartError("slirp4netns did not set up the sandbox's network")
        os.write(block_w, b"1")
        self._close_fd(block_w)

    def find_main(self) -> None:
        """The agent's process: the one child of bwrap's init (called once the agent is up)."""
        try:
            kids = Path(f"/proc/{self.init_pid}/task/{self.init_pid}/children").read_text().split()
        except OSError:
            kids = []
        self.main_pid = int(kids[0]) if kids else 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def processes(self) -> list[int]:
        """Every live process of the sandbox, from the host: those in its PID namespace. With a cgroup
        the candidates are the cgroup's processes (every sandbox process is in it from the launcher
        on, and none can leave: no cgroupfs, no capabilities), else every process of the host."""
        if not self.ns:
            return []
        return processes_in(self.ns, self.cgroups.processes() if self.cgroups.dirs else None)

    def read_bytes(self, pids: list[int] | None = None) -> int | None:
        pids = self.processes() if pids is None else pids
        if not pids or self.init_pid not in pids:
            return None
        total = 0
        for pid in pids:
            n = rchar(pid)
            if n is None:
                return None
            total += n
        return total

    def kill_strays(self, budget_s: float = 2.0, pids: list[int] | None = None) -> bool:
        """Kill every process but bwrap's init and the agent's main process; True when none is left.
        Each one is stopped first (a stopped process cannot fork, and holds its slot under the process
        limit), and once a scan finds only stopped ones they are killed together; until a scan of the
        PID namespace finds none."""
        keep = {self.init_pid, self.main_pid}
        signalled: set[int] = set()
        end = time.monotonic() + budget_s
        while time.monotonic() < end:
            strays = [p for p in (self.processes() if pids is None else pids) if p not in keep]
            pids = None
            if not strays:
                return True
            fresh = [p for p in strays if p not in signalled]
            for p in fresh or strays:
                try:
                    os.kill(p, signal.SIGSTOP if fresh else signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if fresh:
                signalled.update(fresh)
            else:
                time.sleep(0.001)
        return False

    def close(self) -> int | None:
        """Kill the whole sandbox (its PID namespace dies with its init) and remove its cgroups;
        the outer bwrap's exit code."""
        code = None
        init_killed = False
        if self.init_pid and self.ns and pid_namespace(self.init_pid) == self.ns:
            try:
                os.kill(self.init_pid, signal.SIGKILL)
                init_killed = True
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:  # the outer bwrap reaps its init and exits
                code = self.proc.wait(timeout=10 if init_killed else 0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait(timeout=30)
        if self.slirp is not None:
            if self.slirp.poll() is None:
                self.slirp.kill()
            self.slirp.wait(timeout=10)
            self.slirp = None
        for fd in list(self._fds):
            self._close_fd(fd)
        if self.cgroups.dirs:
            deadline = time.monotonic() + 10
            while self.cgroups.processes() and time.monotonic() < deadline:
                time.sleep(0.01)
            self.cgroups.remove()
        return code


def _wait_reading(pid: int, fd: int, timeout_s: float) -> None:
    """Until ``pid`` sits in read(2) on ``fd`` (from /proc/PID/syscall: number 0, first argument fd)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            fields = Path(f"/proc/{pid}/syscall").read_text().split()
        except OSError as exc:
            raise BwrapStartError(f"the sandbox went away while starting ({exc.strerror})") from None
        if len(fields) > 1 and fields[0] == "0" and int(fields[1], 16) == fd:
            return
        time.sleep(0.001)
    raise BwrapStartError("bwrap did not finish setting up the sandbox")


def _read_info(fd: int, timeout_s: float) -> dict:
    """bwrap's --info-fd JSON (child-pid and the namespaces); it closes the pipe after writing."""
    buf = b""
    end = time.monotonic() + timeout_s
    while True:
        left = end - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        if not ready:
            raise BwrapStartError("no --info-fd answer")
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
        try:
            return json.loads(buf)
        except ValueError:
            continue
    try:
        return json.loads(buf)
    except ValueError:
        raise BwrapStartError("no --info-fd answer") from None


class _Output:
    """The sandbox's stdout and stderr go to the worker's stderr, up to OUTPUT_LIMIT bytes; after
    that they are read and dropped (an agent can neither fill a disk nor block on a full pipe).
    The first bytes are kept for the error message when bwrap itself fails."""

    def __init__(self, stream) -> None:  # noqa: ANN001 - a pipe's file object
        self.head = b""
        self._stream = stream
        threading.Thread(target=self._pump, daemon=True, name="sandbox-output").start()

    def _pump(self) -> None:
        sent = 0
        out = getattr(sys.stderr, "buffer", None)
        try:
            while True:
                chunk = self._stream.read1(65536)
                if not chunk:
                    break
                if len(self.head) < 4096:
                    self.head += chunk[: 4096 - len(self.head)]
                if sent < OUTPUT_LIMIT and out is not None:
                    part = chunk[: OUTPUT_LIMIT - sent]
                    sent += len(part)
                    try:
                        out.write(part)
                        if sent >= OUTPUT_LIMIT:
                            out.write(b"\n[sandbox: the agent's further output is dropped]\n")
                        out.flush()
                    except (OSError, ValueError):
                        out = None
        except (OSError, ValueError):
            pass
        finally:
            try:
                self._stream.close()
            except OSError:
                pass

    def last_line(self) -> str:
        lines = self.head.decode("utf-8", "replace").strip().splitlines()
        return lines[-1][:300] if lines else ""
