"""Binding .rodata maps to every program, as libbpf does with BPF_PROG_BIND_MAP.

A program that reads no ``const volatile`` variable does not hold its object's
.rodata map; libbpf binds every .rodata (and .rodata.*) map to every program
it loads where the kernel has BPF_PROG_BIND_MAP (5.10+), so tools can read a
program's configuration back (bpftool prog show: the map ids).  Failures only
warn, as in libbpf.  The feature probe runs once per process.
"""
from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING, Iterable

from ..asm import insn as I
from . import syscall
from .. import uapi
from ..errors import BPFError, BPFPermissionError

if TYPE_CHECKING:
    from ..maps import Map
    from ..programs import Program


@functools.lru_cache(maxsize=None)
def kernel_has_prog_bind_map() -> bool:
    """libbpf's FEAT_PROG_BIND_MAP: bind an array map to a trivial socket filter."""
    code = (I.Insn(uapi.BPF_ALU64 | uapi.BPF_MOV | uapi.BPF_K, 0, 0, 0, 0).encode()
            + I.Insn(I.EXIT, 0, 0, 0, 0).encode())
    try:
        with syscall.map_create(uapi.BPF_MAP_TYPE_ARRAY, 4, 4, 1) as map_fd:
            prog_fd, _ = syscall.prog_load(uapi.BPF_PROG_TYPE_SOCKET_FILTER, code, "GPL")
            with prog_fd:
                syscall.prog_bind_map(prog_fd.fd, map_fd.fd)
    except BPFPermissionError:
        raise
    except BPFError:
        return False
    return True


def is_rodata(m: "Map") -> bool:
    """A map libbpf binds: the map of a .rodata or .rodata.NAME section."""
    name = m.spec.name
    return m.spec.is_global_data and (name == ".rodata" or name.startswith(".rodata."))


def bind_rodata(prog: "Program", maps: Iterable["Map"]) -> None:
    """Bind every created .rodata map to a freshly loaded program."""
    rodata = [m for m in maps if m.loaded and is_rodata(m)]
    if not rodata or not kernel_has_prog_bind_map():
        return
    for m in rodata:
        try:
            syscall.prog_bind_map(prog.fd, m.fd)
        except BPFError as e:
            warnings.warn(f"program {prog.name!r}: failed to bind map {m.name!r}: {e}")
