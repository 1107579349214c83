"""BTF objects loaded in the kernel: vmlinux's and modules' (BPF_BTF_GET_NEXT_ID),
their names and raw bytes, and module BTF fds (attach_btf_obj_fd, kfunc calls)."""
from __future__ import annotations

import ctypes
import errno as _errno
from typing import Dict, Iterator, Optional, Tuple

from .. import uapi
from ..errors import AttachError, BPFError
from . import syscall
from .syscall import Fd

# Module BTF objects stay open for the life of the process: the fd handed to
# BPF_PROG_LOAD must outlive every load that names it, and there are few.
_module_fds: Dict[str, Fd] = {}


def btf_info(fd: int, data: Optional[ctypes.Array[ctypes.c_char]] = None
             ) -> Tuple[uapi.bpf_btf_info, str]:
    """bpf_btf_info of a BTF fd, with its name (and the raw BTF when data is given)."""
    name = ctypes.create_string_buffer(64)
    info = uapi.bpf_btf_info(name=ctypes.addressof(name), name_len=ctypes.sizeof(name))
    if data is not None:
        info.btf, info.btf_size = ctypes.addressof(data), ctypes.sizeof(data)
    syscall.obj_info(fd, uapi.bpf_btf_info, info)
    return info, name.value.decode(errors="replace")


def kernel_btf_objects() -> Iterator[Tuple[int, str]]:
    """(BTF object id, name) of every kernel BTF object loaded: vmlinux and modules."""
    btf_id = 0
    while True:
        next_id = syscall.next_id(uapi.BPF_BTF_GET_NEXT_ID, btf_id)
        if next_id is None:
            return
        btf_id = next_id
        try:
            with syscall.fd_by_id(uapi.BPF_BTF_GET_FD_BY_ID, btf_id) as fd:
                info, name = btf_info(fd.fd)
        except BPFError as e:
            if e.errno == _errno.ENOENT:      # freed while we walked the list
                continue
            raise
        if info.kernel_btf:
            yield btf_id, name


def module_btf_fd(module: str) -> Fd:
    """An fd of a kernel module's BTF object, as BPF_PROG_LOAD's attach_btf_obj_fd."""
    fd = _module_fds.get(module)
    if fd is not None and not fd.closed:
        return fd
    for btf_id, name in kernel_btf_objects():
        if name == module:
            fd = syscall.fd_by_id(uapi.BPF_BTF_GET_FD_BY_ID, btf_id)
            _module_fds[module] = fd
            return fd
    raise AttachError(f"no BTF object for kernel module {module!r} is loaded", _errno.ENOENT)


def btf_raw(btf_fd: int) -> bytes:
    """The raw .BTF bytes of a kernel BTF object."""
    info, _ = btf_info(btf_fd)
    data = ctypes.create_string_buffer(info.btf_size)
    btf_info(btf_fd, data)
    return data.raw
