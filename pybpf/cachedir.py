"""Where pybpf keeps what it learns about this machine between runs, and this boot's id.

One directory for every on-disk cache (the kernel BTF index, the feature probes):
``PYBPF_CACHE_DIR``, else ``$XDG_CACHE_HOME/pybpf``, else ``~/.cache/pybpf``; set
to the empty string, nothing is cached.  Pure: reads environment and /proc only.
"""
from __future__ import annotations

import os
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
