"""Where pybpf keeps what it learns about this machine between runs, and this boot's id.

One directory for every on-disk cache (the kernel BTF index, the feature probes):
``PYBPF_CACHE_DIR``, else ``$XDG_CACHE_HOME/pybpf``, else ``~/.cache/pybpf``; set
to the empty string, nothing is cached.  Pure: reads environment and /proc only.
"""
from __future__ import annotations

import os
import stat
from typing import Optional

CACHE_ENV = "PYBPF_CACHE_DIR"
BOOT_ID = "/proc/sys/kernel/random/boot_id"


def directory() -> Optional[str]:
    """The cache directory this process uses, or None when caching is off."""
    path = os.environ.get(CACHE_ENV)
    if path is not None:
        return path or None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pybpf")


def is_private(st: os.stat_result, kind: int) -> bool:
    """Of file type ``kind`` (``stat.S_IFDIR``, ``S_IFREG``), owned by us and writable
    by no one else: a cache entry no other user could have written."""
    return stat.S_IFMT(st.st_mode) == kind and st.st_uid == os.geteuid() \
        and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def write(path: str, data: bytes) -> None:
    """Store ``data`` at ``path`` in the cache directory, atomically (a reader sees the
    old file or the whole new one), the directory made private (0700) if it is new;
    silently nothing when it is not private or cannot be written (a read-only home:
    the cache is only ever a saving)."""
    folder = os.path.dirname(path)
    tmp = f"{path}.{os.getpid()}.tmp"          # ours alone: the pid is in the name
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if not is_private(os.lstat(folder), stat.S_IFDIR):
            return
        if os.path.lexists(tmp):               # left by a process that had our pid
            os.unlink(tmp)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def boot_id() -> Optional[bytes]:
    """This boot's id (the 16 bytes of the kernel's random boot UUID), or None if
    /proc does not say: what anything true "until the next reboot" is keyed by."""
    try:
        with open(BOOT_ID, "rb") as f:
            text = f.read(64)
    except OSError:
        return None
    digits = text.strip().replace(b"-", b"")
    try:
        return bytes.fromhex(digits.decode("ascii")) if len(digits) == 32 else None
    except (UnicodeDecodeError, ValueError):
        return None
