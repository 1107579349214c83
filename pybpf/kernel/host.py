"""The running system as extern resolution sees it: :class:`LiveHost`.

The pure resolver (:mod:`pybpf.obj.externs`) asks a :class:`~pybpf.obj.externs.Host`;
this one reads uname, the Kconfig, /proc/kallsyms and /sys/kernel/btf, and probes
the kernel where a fact is only known by trying.
"""
from __future__ import annotations

import functools
import os
import zlib
from typing import List, Optional, Tuple

from .. import uapi
from ..btf import BTF, kernel
from ..errors import BPFError, BPFPermissionError, ObjectError
from ..asm import insn as I
from ..obj.externs import Host, kallsyms_addresses, kernel_version_code
from . import syscall
from .btf_objects import module_btf_fd
from .sysinfo import syscall_func_name


class LiveHost(Host):
    """The running kernel: uname, /boot/config-$(uname -r) or /proc/config.gz,
    /proc/kallsyms (as root: otherwise addresses read as 0), /sys/kernel/btf."""

    def __init__(self) -> None:
        self._kallsyms: Optional[List[str]] = None

    def kernel_version(self) -> int:
        uts = os.uname()
        return kernel_version_code(uts.release, uts.version,
                                   _read_text("/proc/version_signature") or "")

    def kconfig(self) -> Optional[str]:
        for path in (f"/boot/config-{os.uname().release}", "/proc/config.gz"):
            try:
                with open(path, "rb") as f:
                    raw = f.read()
                if raw[:2] == b"\x1f\x8b":          # gzip (as zlib's gzopen, either works)
                    import gzip                     # most kernels ship /boot/config-*
                    raw = gzip.decompress(raw)
            except OSError:
                continue
            except (EOFError, zlib.error) as e:
                raise ObjectError(f"{path}: corrupt gzip data: {e}") from None
            return raw.decode(errors="surrogateescape")
        return None

    def kallsyms(self) -> List[str]:
        if self._kallsyms is None:
            try:
                with open("/proc/kallsyms") as f:
                    self._kallsyms = f.readlines()
            except OSError as e:
                raise ObjectError(f"cannot read /proc/kallsyms: {e.strerror}") from None
        return self._kallsyms

    def has_bpf_cookie(self) -> bool:
        return _probe_bpf_cookie()

    def has_syscall_wrapper(self) -> bool:
        """Whether syscalls enter through __<arch>_sys_* wrappers.  libbpf finds out by
        opening a kprobe on the wrapper; kallsyms answers the same without kprobes."""
        wrapper = syscall_func_name("bpf", os.uname().machine, True)
        return wrapper.startswith("__") and bool(kallsyms_addresses(self.kallsyms(), [wrapper]))

    def find(self, name: str, kind: int) -> Optional[Tuple[BTF, int, str]]:
        hits = kernel.find_in_kernel(name, kind)
        if not hits:
            return None
        btf, type_id = hits[0]
        module = "" if btf is kernel.vmlinux() else \
            next(m for m, b in kernel.modules().items() if b is btf)
        return btf, type_id, module

    def module_btf_fd(self, module: str) -> int:
        return module_btf_fd(module).fd


def _read_text(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


@functools.lru_cache(maxsize=None)
def _probe_bpf_cookie() -> bool:
    """libbpf's FEAT_BPF_COOKIE: a tracepoint program may call bpf_get_attach_cookie()."""
    code = (I.Insn(I.CALL, 0, 0, 0, uapi.BPF_FUNC_get_attach_cookie).encode()
            + I.Insn(I.EXIT, 0, 0, 0, 0).encode())
    try:
        fd, _ = syscall.prog_load(uapi.BPF_PROG_TYPE_TRACEPOINT, code, "GPL")
    except BPFPermissionError:
        raise
    except BPFError:
        return False
    fd.close()
    return True
