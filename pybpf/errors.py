"""The pybpf error family: everything pybpf raises derives from BPFError."""
from __future__ import annotations

import errno as _errno
import os
from typing import Optional


class BPFError(Exception):
    """Base of every pybpf error; ``.errno`` is set where a syscall failed."""

    def __init__(self, message: str, errno: Optional[int] = None):
        super().__init__(message)
        self.errno = errno


class ObjectError(BPFError):
    """Malformed or unsupported ELF / BTF / BTF.ext input.

    ``section`` and ``offset`` name the place at fault when known.
    """

    def __init__(self, message: str, section: Optional[str] = None,
                 offset: Optional[int] = None):
        where = []
        if section is not None:
            where.append(f"section {section}")
        if offset is not None:
            where.append(f"offset {offset:#x}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)
        self.section = section
        self.offset = offset


class VerifierError(BPFError):
    """The verifier refused a program; ``.log`` holds the whole verifier log."""

    def __init__(self, message: str, log: str, errno: Optional[int] = None):
        super().__init__(message, errno)
        self.log = log


class AttachError(BPFError):
    """A program could not be attached to its hook."""


class PermissionError_(BPFError):
    """Missing privileges (CAP_BPF / CAP_PERFMON / CAP_SYS_ADMIN)."""


# Public spelling; the trailing underscore only avoids shadowing the builtin here.
BPFPermissionError = PermissionError_

PRIVILEGE_HINT = ("need root, or CAP_BPF + CAP_PERFMON (and CAP_NET_ADMIN for "
                  "networking programs, CAP_SYS_ADMIN on older kernels)")


def from_errno(err: int, what: str, cls: type = BPFError) -> BPFError:
    """Build the right error for a failed syscall: privileges get their own class."""
    text = f"{what}: {os.strerror(err)} [{_errno.errorcode.get(err, err)}]"
    if err in (_errno.EPERM, _errno.EACCES) and cls is BPFError:
        return BPFPermissionError(f"{text}; {PRIVILEGE_HINT}", err)
    return cls(text, err)
