"""Fuzzing whole objects: ELF headers, section tables, symbols, relocations, code.

Every mutated object either opens (and links, without the kernel) or raises
ObjectError: never another exception, a crash or a hang.  Bounded for CI.
"""
from __future__ import annotations

import io
from typing import List, Tuple

from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import built
from pybpf.errors import ObjectError
from pybpf.obj.spec import parse_object
from pybpf.obj.relocate import Linker

SETTINGS = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
OBJECTS = ["exec.bpf.o", "perfbuf-output.bpf.o", "core_task.bpf.o"]


def _regions(name: str) -> Tuple[bytes, List[Tuple[int, int]]]:
    """The object's bytes and the (offset, size) of the parts a loader interprets:
    ELF header, section headers, symbol table, relocations, code, .maps."""
    raw = built(name).read_bytes()
    elf = ELFFile(io.BytesIO(raw))
    regions = [(0, 64), (elf["e_shoff"], elf["e_shnum"] * elf["e_shentsize"])]
    for sec in elf.iter_sections():
        if sec["sh_type"] in ("SHT_SYMTAB", "SHT_REL") or sec.name == ".maps" or \
                sec["sh_flags"] & 0x4:
            regions.append((sec["sh_offset"], sec["sh_size"]))
    return raw, [r for r in regions if r[1]]


def exercise(raw: bytes) -> None:
    spec = parse_object(raw)
    linker = Linker(spec, {m.name: 3 for m in spec.maps})
    for prog in spec.programs:
        linker.link(prog)


def _check(raw: bytes) -> None:
    try:
        exercise(raw)
    except ObjectError:
        pass


mutation = st.tuples(
    st.sampled_from(OBJECTS), st.integers(0, 1 << 20),   # object, region pick
    st.integers(0, 1 << 20),                              # offset inside the region
    st.lists(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]) | st.integers(0, 255),
             min_size=1, max_size=8))


@SETTINGS
@given(mutation)
def test_mutated_regions(m):
    name, pick, offset, values = m
    raw, regions = _regions(name)
    start, size = regions[pick % len(regions)]
    pos = start + offset % size
    out = bytearray(raw)
    out[pos:pos + len(values)] = bytes(values)
    _check(bytes(out[:len(raw)]))


@SETTINGS
@given(st.sampled_from(OBJECTS), st.integers(0, 1 << 20), st.binary(max_size=8))
def test_truncated_and_extended(name, cut, tail):
    raw, _ = _regions(name)
    _check(raw[:cut % (len(raw) + 1)] + tail)


def test_unmutated_objects_link():
    for name in OBJECTS:
        exercise(built(name).read_bytes())
