"""The running kernel's BTF: vmlinux and module (split) BTF from /sys/kernel/btf.

Each blob is read and scanned once per process (``BTF.parse`` is lazy, so even
the ~5 MB vmlinux costs tens of milliseconds).  ``PYBPF_VMLINUX`` may name
another vmlinux BTF file (tests, or inspecting another machine's kernel).
"""
from __future__ import annotations

import mmap
import os
import warnings
from typing import Dict, List, Optional, Tuple

from ..errors import BPFError, ObjectError
from ..files import open_regular
from . import cache
from .spec import BTF, MIN_CACHED_BLOB
from .strtab import Blob

SYSFS_BTF = "/sys/kernel/btf"
VMLINUX_ENV = "PYBPF_VMLINUX"

_vmlinux: Dict[str, BTF] = {}
_modules: Dict[Tuple[str, str], Dict[str, BTF]] = {}


def vmlinux_path() -> str:
    return os.environ.get(VMLINUX_ENV) or os.path.join(SYSFS_BTF, "vmlinux")


def _is_sysfs(path: str) -> bool:
    """Whether ``path`` is the running kernel's own BTF (not a copy elsewhere)."""
    return path.startswith(SYSFS_BTF + "/")


def _read(path: str) -> Blob:
    """The blob at ``path``.  The kernel's own BTF is mapped read-only where the kernel
    allows it (vmlinux on recent kernels, as recent libbpf maps it), so it is neither
    copied nor read a page at a time (~5 ms).  Other files are read: a mapped file
    that shrinks would kill the process with SIGBUS; sysfs files cannot shrink."""
    hint = " (kernel built without CONFIG_DEBUG_INFO_BTF?)" if path.startswith(SYSFS_BTF) else ""

    def fail(why: str, _errno: Optional[int]) -> ObjectError:
        return ObjectError(f"cannot read kernel BTF {path}: {why}{hint}")
    fd = open_regular(path, fail)         # a FIFO named by PYBPF_VMLINUX: refused, not waited on
    try:
        with open(fd, "rb") as f:
            if _is_sysfs(path):
                try:
                    return mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
                except (OSError, ValueError):      # EACCES/ENODEV before 6.16, or empty
                    pass
            return f.read()
    except OSError as exc:
        raise fail(exc.strerror or str(exc), exc.errno) from None


def vmlinux() -> BTF:
    """The kernel's own BTF (cached per path for the life of the process)."""
    path = vmlinux_path()
    btf = _vmlinux.get(path)
    if btf is None:
        btf = _vmlinux[path] = _parse(path)
    return btf


def _parse(path: str, base: Optional[BTF] = None) -> BTF:
    """The BTF at ``path``, its record index through the on-disk cache when the blob
    is big enough to be kept there (the key is not worth hashing otherwise)."""
    blob = _read(path)
    key = cache.key(blob, _is_sysfs(path)) if len(blob) >= MIN_CACHED_BLOB else None
    return BTF.parse(blob, base=base, section=path, cache_key=key)


def modules(directory: Optional[str] = None) -> Dict[str, BTF]:
    """Module name -> split BTF on top of ``vmlinux()``, for every module under
    ``directory`` (default /sys/kernel/btf).  A module whose BTF cannot be read
    or parsed is skipped with a warning."""
    directory = directory or SYSFS_BTF
    key = (directory, vmlinux_path())
    found = _modules.get(key)
    if found is None:
        base = vmlinux()
        found = {}
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            warnings.warn(f"cannot list kernel module BTF in {directory}: {exc.strerror}")
            names = []
        for name in names:
            path = os.path.join(directory, name)
            if name == "vmlinux" or os.path.realpath(path) == os.path.realpath(vmlinux_path()):
                continue
            try:
                found[name] = _parse(path, base)
            except BPFError as exc:
                warnings.warn(f"skipping BTF of kernel module {name}: {exc}")
        _modules[key] = found
    return dict(found)


def find_in_kernel(name: str, kind: Optional[int] = None) -> List[Tuple[BTF, int]]:
    """Every (btf, type id) named ``name``: vmlinux first, then modules by name."""
    base = vmlinux()
    hits = [(base, type_id) for type_id in base.find(name, kind)]
    for module in modules().values():
        hits.extend((module, type_id) for type_id in module.find(name, kind)
                    if type_id >= module.start_id)
    return hits


def clear_cache() -> None:
    """Forget every BTF read so far (tests; a kernel module loaded meanwhile)."""
    _vmlinux.clear()
    _modules.clear()
