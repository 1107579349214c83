"""Facts about the running system that loaders need: CPU lists, kernel release."""
from __future__ import annotations

import ctypes
import functools
import os
from typing import List

from ..errors import BPFError


def parse_cpu_list(text: str) -> List[int]:
    """'0-3,5,7-8' -> [0, 1, 2, 3, 5, 7, 8] (the format of /sys/devices/system/cpu/*)."""
    cpus: List[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            cpus.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise BPFError(f"malformed CPU list {text!r}") from None
    return cpus


def _read_cpus(kind: str) -> List[int]:
    path = f"/sys/devices/system/cpu/{kind}"
    try:
        with open(path) as f:
            return parse_cpu_list(f.read())
    except OSError:
        return list(range(os.cpu_count() or 1))


@functools.lru_cache(maxsize=None)
def possible_cpus() -> List[int]:
    """CPUs the kernel sizes per-CPU data for (per-CPU map values, perf arrays)."""
    return _read_cpus("possible")


def online_cpus() -> List[int]:
    """CPUs online now (perf events can only be opened on these)."""
    return _read_cpus("online")


# libbpf's arch_specific_syscall_pfx(): the prefix of syscall wrapper symbols.
SYSCALL_PREFIX = {"x86_64": "x64", "i386": "ia32", "i686": "ia32", "s390x": "s390x",
                   "s390": "s390", "armv7l": "arm", "aarch64": "arm64", "mips": "mips",
                   "mips64": "mips", "riscv64": "riscv", "ppc64le": "powerpc",
                   "ppc64": "powerpc"}


def syscall_func_name(syscall_name: str, machine: str, wrapped: bool) -> str:
    """Kernel function behind a syscall: __<arch>_sys_NAME where the kernel has
    syscall wrappers (CONFIG_ARCH_HAS_SYSCALL_WRAPPER), else sys_NAME."""
    prefix = SYSCALL_PREFIX.get(machine)
    return f"__{prefix}_sys_{syscall_name}" if wrapped and prefix else f"sys_{syscall_name}"


def interface_name(index: int) -> str:
    """Name of the network interface ``index`` in this process's network namespace;
    "" if there is none (libc's if_indextoname(3), as for :func:`interface_index`)."""
    if not 0 < index <= 0xFFFFFFFF:
        return ""
    fn = ctypes.CDLL(None, use_errno=True).if_indextoname
    fn.argtypes, fn.restype = [ctypes.c_uint, ctypes.c_char_p], ctypes.c_char_p
    buf = ctypes.create_string_buffer(16)                            # IFNAMSIZ
    name = fn(index, buf)
    return name.decode(errors="replace") if name else ""


def interface_index(name: str) -> int:
    """ifindex of a network interface in this process's network namespace; 0 if there
    is none.  libc's if_nametoindex(3), which every interpreter reaches through ctypes
    (PyPy's socket module lacks it)."""
    if not name or "\0" in name or len(name.encode()) >= 16:       # IFNAMSIZ
        return 0
    fn = ctypes.CDLL(None, use_errno=True).if_nametoindex
    fn.argtypes, fn.restype = [ctypes.c_char_p], ctypes.c_uint
    return int(fn(name.encode()))

