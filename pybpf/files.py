"""Opening files named by users without being stalled or fooled by what they are."""
from __future__ import annotations

import os
import stat
from typing import Callable, Optional

from .errors import BPFError

_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def open_regular(path: str, fail: Callable[[str, Optional[int]], BPFError]) -> int:
    """An fd of the regular file at ``path`` (symlinks followed), read-only.

    Opened with O_NONBLOCK and checked with fstat before the first read, so a
    FIFO, a device or a directory is refused at once, never read (nor waited on).
    ``fail(reason, errno)`` makes the error: ``reason`` is the strerror of a failed
    open, or ``not a regular file (a FIFO)``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as e:
        raise fail(e.strerror or str(e), e.errno) from None
    try:
        st = os.fstat(fd)
    except OSError as e:
        os.close(fd)
        raise fail(e.strerror or str(e), e.errno) from None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = next((what for test, what in _FILE_KINDS if test(st.st_mode)), "special")
        raise fail(f"not a regular file ({kind})", None)
    return fd
