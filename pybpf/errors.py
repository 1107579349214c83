"""The pybpf error family: everything pybpf raises derives from BPFError."""
from __future__ import annotations

import errno as _errno
import os
from typing import Optional, Type


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


class BPFPermissionError(BPFError):
    """Missing privileges (CAP_BPF / CAP_PERFMON / CAP_SYS_ADMIN)."""

PRIVILEGE_HINT = ("need root, or CAP_BPF + CAP_PERFMON (and CAP_NET_ADMIN for "
                  "networking programs, CAP_SYS_ADMIN on older kernels)")


# capability numbers (linux/capability.h)
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


def has_bpf_capabilities() -> bool:
    """Whether this process holds CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN (effective)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    caps = int(line.split()[1], 16)
                    return all(caps >> c & 1 for c in (CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF))
    except (OSError, ValueError):
        pass
    return False


def from_os_error(e: OSError, what: str) -> BPFError:
    """The BPFError for an OSError that escaped from below (out of fds while a module
    is imported, a read of /proc or /sys...), naming the file when there is one."""
    where = f" ({e.filename})" if e.filename else ""
    return from_errno(e.errno or _errno.EIO, f"{what}{where}")


def from_errno(err: int, what: str, cls: Type[BPFError] = BPFError) -> BPFError:
    """Build the right error for a failed syscall: privileges get their own class,
    and when the privileges are there, the message says a policy refused it."""
    text = f"{what}: {os.strerror(err)} [{_errno.errorcode.get(err, err)}]"
    if err in (_errno.EPERM, _errno.EACCES) and cls is BPFError:
        if has_bpf_capabilities():
            return BPFPermissionError(
                f"{text}; refused although this process has CAP_BPF, CAP_PERFMON and "
                "CAP_SYS_ADMIN: a kernel lockdown, LSM or sandbox policy forbids it", err)
        return BPFPermissionError(f"{text}; {PRIVILEGE_HINT}", err)
    return cls(text, err)
