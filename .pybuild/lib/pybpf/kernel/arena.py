"""BPF_MAP_TYPE_ARENA memory: the user-space mapping of an arena map.

libbpf mmaps an arena right after creating it (before any program is loaded:
the kernel resolves ``__arena`` global references against the mapping's
address), ``max_entries`` pages long, at ``map_extra`` when the definition sets
it, and copies the initial values of the ``__arena`` globals to its start.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import mmap
import os
from typing import Optional, Union

from ..errors import BPFError
from ..events.ringmem import buffer_address, close_mmap

_MAP_FIXED_NOREPLACE = 0x100000
_MAP_FAILED = ctypes.c_void_p(-1).value


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


class ArenaMemory:
    """The mapped pages of an arena map: ``buffer`` is writable bytes-like memory,
    ``address`` its user-space address (what arena pointers hold)."""

    def __init__(self, map_fd: int, size: int, address: int = 0, name: str = ""):
        self.size = size
        self._mm: Optional[mmap.mmap] = None
        self._address = 0
        self._fixed: Optional["ctypes.Array[ctypes.c_char]"] = None
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        what = f"arena map {name!r}: mmap of {size} bytes"
        if not address:
            try:
                self._mm = mmap.mmap(map_fd, size, mmap.MAP_SHARED, prot)
            except OSError as e:
                raise BPFError(f"{what} failed: {os.strerror(e.errno or 0)}",
                               e.errno or 0) from None
            return
        # map_extra fixes the address; NOREPLACE refuses to clobber a live mapping
        libc = _libc()
        ptr = libc.mmap(address, size, prot, mmap.MAP_SHARED | _MAP_FIXED_NOREPLACE,
                        map_fd, 0)
        if ptr in (None, _MAP_FAILED):
            err = ctypes.get_errno()
            hint = " (that address range is already in use)" if err == _errno.EEXIST else ""
            raise BPFError(f"{what} at map_extra={address:#x} failed: "
                           f"{os.strerror(err)}{hint}", err)
        if ptr != address:      # a kernel without MAP_FIXED_NOREPLACE treats it as a hint
            libc.munmap(ptr, size)
            raise BPFError(f"{what}: the kernel placed it at {ptr:#x}, not at "
                           f"map_extra={address:#x}", _errno.EEXIST)
        self._address = ptr
        self._fixed = (ctypes.c_char * size).from_address(ptr)

    @property
    def address(self) -> int:
        """The user-space address of the arena's first page."""
        if self._mm is not None:
            return buffer_address(self._mm)
        return self._address

    @property
    def buffer(self) -> Union[mmap.mmap, memoryview]:
        """The arena's bytes (valid until the object is closed)."""
        if self._mm is not None:
            return self._mm
        if self._fixed is None:
            raise BPFError("arena memory is unmapped (the object is closed)")
        return memoryview(self._fixed).cast("B")

    def close(self) -> None:
        """Unmap; a mapping some caller still holds a memoryview of is left to the
        garbage collector instead (it is never unmapped under a live view)."""
        close_mmap(self._mm)
        self._mm = None
        if self._fixed is not None:
            _libc().munmap(self.address, self.size)
            self._fixed = None
