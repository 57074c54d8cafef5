"""The harness key: a secret that the harness has and the agents under test do not.

It signs what the harness trusts later, when storage may have been written by someone else in
the meantime: the checkpoint shards of a run (``tasks/checkpoint.py``) and commitments such as
``run_commitment`` of a private seed. Where it comes from, first match wins:

1. ``SCENARIO_HARNESS_KEY``: at least 64 hex digits (32 bytes). Set it, to the same value, on
   every machine that shares a storage root (remote Dask workers, Prefect workers on other hosts,
   a run resumed on another machine): each machine otherwise makes its own key file, and the
   shards one writes do not verify on another (they are run again, forever).
   Make one with ``python -c "import secrets; print(secrets.token_hex(32))"``.
2. A key file, ``$XDG_CONFIG_HOME/scenario-pipeline/harness.key`` (default
   ``~/.config/scenario-pipeline/harness.key``): made on first use with 32 random bytes, mode 0600,
   in a folder of mode 0700. It lives outside every storage root, so nothing that can only write
   storage can read it. A key file readable by group or others is refused, as ssh refuses a key.

Keys derived from it: a run's key is ``HMAC-SHA256(harness_key, "run:" + run_id)``; checkpoint
MACs and commitments are HMACs under the run's key (see ``mac_checkpoint`` for the domain
separation). The key's value is never logged or put in a message; ``key_id`` is a public
fingerprint that may be.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import uuid
from pathlib import Path

from scenario_pipeline.errors import HarnessKeyError

ENV_VAR = "SCENARIO_HARNESS_KEY"
KEY_BYTES = 32  # the least a key may have; the key file has exactly this many
APP_DIR = "scenario-pipeline"
KEY_FILE = "harness.key"
_MAKE_ONE = 'python -c "import secrets; print(secrets.token_hex(32))"'


def key_path() -> Path:
    """Where the key file is (or would be made): ``$XDG_CONFIG_HOME`` when it is an absolute path, else ``~/.config``."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"  # XDG: a relative value is ignored
    return root / APP_DIR / KEY_FILE


def harness_key() -> bytes:
    """The harness key's bytes: from ``SCENARIO_HARNESS_KEY`` when set, else the key file (made on first use)."""
    text = os.environ.get(ENV_VAR)
    if text is not None:
        return _parse(
            text,
            f"the environment variable {ENV_VAR}",
            f"set {ENV_VAR} to at least 64 hex digits (32 bytes), e.g. the output of {_MAKE_ONE}, or unset it to use the key file {key_path()}",
        )
    path = key_path()
    return _read_key_file(path) if path.exists() else _make_key_file(path)


def source() -> str:
    """Where the key comes from, in words, for messages (never the value)."""
    return f"the environment variable {ENV_VAR}" if os.environ.get(ENV_VAR) is not None else f"the key file {key_path()}"


def key_id(key: bytes | None = None) -> str:
    """A public fingerprint of the key (16 hex digits): tells two keys apart without revealing either."""
    return hmac.new(harness_key() if key is None else key, b"scenario-pipeline key id", hashlib.sha256).hexdigest()[:16]


def run_key(run_id: str, key: bytes | None = None) -> bytes:
    """The run's key: ``HMAC-SHA256(harness_key, "run:" + run_id)``. A MAC made for one run does not verify in another."""
    return hmac.new(harness_key() if key is None else key, b"run:" + run_id.encode("utf-8"), hashlib.sha256).digest()


def run_commitment(value: str, run_id: str) -> str:
    """Hex ``HMAC-SHA256(run_key(run_id), value)``: a commitment to ``value`` (e.g. a private seed) that can be
    stored where agents may read it, checked later with ``check_commitment``, and reveals nothing of ``value``."""
    return hmac.new(run_key(run_id), value.encode("utf-8"), hashlib.sha256).hexdigest()


def check_commitment(value: str, run_id: str, commitment: str) -> bool:
    """True when ``commitment`` is ``run_commitment(value, run_id)`` (constant-time compare)."""
    return hmac.compare_digest(run_commitment(value, run_id), str(commitment).strip().lower())


# A checkpoint's MAC input starts with 0xFF, which no UTF-8 text does: no ``run_commitment`` of any
# string can ever equal a checkpoint MAC, though both are HMACs under the same run key.
_CHECKPOINT_DOMAIN = b"\xffscenario-pipeline checkpoint shard v1\x00"


def mac_checkpoint(run_key_bytes: bytes, run_id: str, shard: int, data: bytes) -> str:
    """Hex HMAC-SHA256 of a checkpoint shard's exact bytes, bound to its run id and shard number."""
    mac = hmac.new(run_key_bytes, _CHECKPOINT_DOMAIN, hashlib.sha256)
    rid = run_id.encode("utf-8")
    mac.update(len(rid).to_bytes(8, "big") + rid + int(shard).to_bytes(8, "big", signed=True) + len(data).to_bytes(8, "big"))
    mac.update(data)
    return mac.hexdigest()


# -- the key's sources ---------------------------------------------------------------------


def _parse(text: str, where: str, cure: str) -> bytes:
    """Hex text to a key; a bad one is one clear message naming ``where`` (never the value, not even a part)."""
    digits = "".join(text.split())
    try:
        key = bytes.fromhex(digits)
    except ValueError:
        raise HarnessKeyError(f"{where} is not a valid harness key: it is not hex digits; {cure}") from None
    if len(key) < KEY_BYTES:
        raise HarnessKeyError(
            f"{where} is not a valid harness key: it has {len(key)} bytes, at least {KEY_BYTES} are needed; {cure}"
        )
    return key


def _private_dir(folder: Path) -> None:
    """Make ``folder`` (mode 0700) and its parents; tighten it to 0700 when it exists already."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if stat.S_IMODE(folder.stat().st_mode) != 0o700:
            folder.chmod(0o700)
    except OSError as exc:
        raise HarnessKeyError(
            f"cannot make the harness key folder {folder}: {exc.strerror or exc}; set XDG_CONFIG_HOME to a "
            f"private folder of yours, or set {ENV_VAR}"
        ) from None


def _make_key_file(path: Path) -> bytes:
    """Make the key file, mode 0600, atomically: processes racing to make it all end up with one key."""
    _private_dir(path.parent)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (secrets.token_hex(KEY_BYTES) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process made it first: then theirs is the key
            os.link(tmp, path)
    except OSError as exc:
        raise HarnessKeyError(
            f"cannot make the harness key file {path}: {exc.strerror or exc}; set XDG_CONFIG_HOME to a "
            f"private folder of yours, or set {ENV_VAR}"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return _read_key_file(path)


def _read_key_file(path: Path) -> bytes:
    cure = f"delete it to have a new one made (the checkpoints it signed will be run again), or set {ENV_VAR}"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise HarnessKeyError(f"the harness key file {path} is not a regular file; {cure}")
            if os.name == "posix":
                if st.st_uid != os.geteuid():
                    raise HarnessKeyError(f"the harness key file {path} belongs to another user (uid {st.st_uid}); {cure}")
                if stat.S_IMODE(st.st_mode) & 0o077:
                    raise HarnessKeyError(
                        f"the harness key file {path} may be read by other users (mode "
                        f"{stat.S_IMODE(st.st_mode):04o}); make it private with `chmod 600 {path}`, or {cure}"
                    )
            text = os.read(fd, 4096).decode("ascii", "replace")
        finally:
            os.close(fd)
    except OSError as exc:
        raise HarnessKeyError(f"cannot read the harness key file {path}: {exc.strerror or exc}; {cure}") from None
    return _parse(text, f"the harness key file {path}", cure)


__all__ = [
    "ENV_VAR",
    "HarnessKeyError",
    "check_commitment",
    "harness_key",
    "key_id",
    "key_path",
    "mac_checkpoint",
    "run_commitment",
    "run_key",
    "source",
]
