"""libbpf's rules for map definitions, as pure functions (no kernel calls).

- :func:`internal_map_name`: the kernel-visible name of a global data map
  (``biolaten.bss``, ``.rodata.str1.1``), exactly as libbpf's internal_map_name();
- :func:`datasec_is_mmapable`: a data map is ``BPF_F_MMAPABLE`` only when its
  DATASEC holds a variable that is not static (``__hidden`` globals count as
  static), as libbpf's map_is_mmapable();
- :func:`ringbuf_size`: ring buffer ``max_entries`` rounded up to a power-of-two
  number of pages, as libbpf's adjust_ringbuf_sz();
- :func:`check_pinning`: only LIBBPF_PIN_NONE and LIBBPF_PIN_BY_NAME exist.
"""
from __future__ import annotations

import mmap
from typing import Optional

from .. import uapi
from ..limits import KERNEL_NAME_CHARS
from ..btf import BTF
from ..btf import types as T
from ..errors import ObjectError

# libbpf's enum libbpf_pin_type
LIBBPF_PIN_NONE, LIBBPF_PIN_BY_NAME = 0, 1

#: libbpf reserves at least this many characters for the section suffix
_MIN_SUFFIX = 7
_NAME_MAX = uapi.BPF_OBJ_NAME_LEN - 1


def internal_map_name(obj_name: str, section: str) -> str:
    """The name libbpf gives the map of a global data section.

    Up to 8 characters of the object name (fewer when the section name is longer
    than 7 characters) followed by the section name, 15 characters at most; a
    custom section (a second '.' in its name, like ``.rodata.str1.1``) gets no
    object prefix.  Characters the kernel refuses become '_'."""
    suffix = min(max(_MIN_SUFFIX, len(section)), _NAME_MAX)
    prefix = 0 if "." in section[1:] else min(_NAME_MAX - suffix, len(obj_name))
    name = (obj_name[:prefix] + section[:suffix])[:_NAME_MAX]
    return "".join(c if c in KERNEL_NAME_CHARS else "_" for c in name)


def datasec_is_mmapable(btf: Optional[BTF], value_type_id: int) -> bool:
    """Whether libbpf makes a data map BPF_F_MMAPABLE: its value type is a DATASEC
    with at least one non-static variable (no BTF, or a section such as
    ``.rodata.str1.1`` without a DATASEC, is not mmapable)."""
    if btf is None or not value_type_id:
        return False
    datasec = btf[value_type_id]
    if not isinstance(datasec, T.Datasec):
        return False
    for vsi in datasec.vars:
        var = btf[vsi.type]
        if isinstance(var, T.Var) and var.linkage != uapi.BTF_VAR_STATIC:
            return True
    return False


def ringbuf_size(size: int, page_size: int = mmap.PAGESIZE) -> int:
    """A ring buffer's max_entries as libbpf creates it: unchanged when it is 0 (the
    kernel reports the error) or already a power-of-two number of pages, else the
    smallest such size above it (unchanged if none fits in 32 bits)."""
    if size == 0 or (size % page_size == 0 and _pow2(size // page_size)):
        return size
    mul = 1
    while mul * page_size <= 0xFFFFFFFF:
        if mul * page_size > size:
            return mul * page_size
        mul <<= 1
    return size


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def check_pinning(map_name: str, value: int, inner: bool) -> int:
    """The pinning value of a map definition, refused as libbpf refuses it."""
    if inner:
        raise ObjectError(f"map {map_name!r}: an inner map definition can't be pinned",
                          section=".maps")
    if value not in (LIBBPF_PIN_NONE, LIBBPF_PIN_BY_NAME):
        raise ObjectError(f"map {map_name!r}: invalid pinning value {value} (only "
                          f"{LIBBPF_PIN_NONE} = LIBBPF_PIN_NONE and {LIBBPF_PIN_BY_NAME} = "
                          "LIBBPF_PIN_BY_NAME exist)", section=".maps")
    return value
