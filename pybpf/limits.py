"""The kernel's limits on what a BPF object may declare, and the step budget of walks.

Every size or count read from a file is checked against these before anything
is allocated or iterated; every walk over a type graph runs under a
:class:`Budget` (and a depth of ``MAX_RESOLVE_DEPTH``), so that cycles, deep
chains and graphs that fan out end in an ``ObjectError`` instead of a hang.
Pure: no I/O.
"""
from __future__ import annotations

import mmap
from typing import Optional

from .errors import ObjectError

U32_MAX = 0xFFFFFFFF
#: kernel/bpf/btf.c: type ids are 20 bits, string offsets 24 bits, vlen 16 bits.
BTF_MAX_TYPE = 0x000FFFFF
BTF_MAX_NAME_OFFSET = 0x00FFFFFF
BTF_MAX_VLEN = 0xFFFF
#: kernel/bpf/btf.c: the largest BTF that BPF_BTF_LOAD takes (E2BIG past it).
BTF_MAX_SIZE = 16 * 1024 * 1024
#: kernel/bpf/btf.c: how deep the kernel follows a type (members, elements, qualifiers).
MAX_RESOLVE_DEPTH = 32
#: include/linux/slab.h: the largest kmalloc (2**(MAX_PAGE_ORDER + PAGE_SHIFT)); an
#: array map (so a global data section) refuses a larger value_size with E2BIG.
KMALLOC_MAX_SIZE = mmap.PAGESIZE << 10
#: kernel/bpf/syscall.c, bpf_obj_name_cpy(): the characters a map or program name
#: may hold, besides the letters of the kernel's Latin-1 ctype (EINVAL otherwise)
KERNEL_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              "0123456789_.")
#: The largest object file pybpf reads (libbpf has none; this bounds memory).
MAX_OBJECT_SIZE = 1 << 30


class Budget:
    """The number of steps one walk may take; ``spend`` raises ObjectError past it.

    A walk that visits each type (or pair of types) once needs far fewer steps
    than any real BTF gives it; only a graph whose paths multiply runs out."""

    __slots__ = ("left", "limit", "what", "section")

    def __init__(self, limit: int, what: str, section: Optional[str] = None):
        self.left = self.limit = limit
        self.what = what
        self.section = section

    def spend(self, steps: int = 1) -> None:
        self.left -= steps
        if self.left < 0:
            raise ObjectError(f"{self.what}: more than {self.limit} steps through the "
                              f"types (a type graph whose paths multiply)", self.section)


def check_value_size(name: str, size: int, section: Optional[str] = None) -> None:
    """A global data section (a one-element array map) of ``size`` bytes must fit
    the kernel's limit on array values."""
    if size > KMALLOC_MAX_SIZE:
        raise ObjectError(f"{name} is {size} bytes: a global data map holds at most "
                          f"{KMALLOC_MAX_SIZE} bytes (the kernel's KMALLOC_MAX_SIZE)",
                          section if section is not None else name)
