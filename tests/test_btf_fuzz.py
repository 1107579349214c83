"""Fuzzing BTF and BTF.ext parsing with mutated real blobs: ObjectError or success, nothing else."""
from __future__ import annotations

from typing import List, Tuple

from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import built
from pybpf.btf import BTF, BTFExt, codec
from pybpf.btf.codec import CodecError
from pybpf.errors import ObjectError

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def sections() -> Tuple[bytes, bytes]:
    with open(built("exec.bpf.o"), "rb") as f:
        elf = ELFFile(f)
        return (elf.get_section_by_name(".BTF").data(),
                elf.get_section_by_name(".BTF.ext").data())


try:
    RAW_BTF, RAW_EXT = sections()
except BaseException:          # reported by the tests themselves (built() fails with a hint)
    RAW_BTF = RAW_EXT = b""

# Mutations: overwrite bytes (biased to small/boundary values), then maybe truncate or extend.
Edit = Tuple[int, int]
edits = st.lists(st.tuples(st.integers(0, 1 << 16), st.sampled_from(
    [0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF]) | st.integers(0, 255)), min_size=1, max_size=6)
cuts = st.one_of(st.none(), st.integers(0, 1 << 16))
tails = st.binary(max_size=16)


def mutate(blob: bytes, changes: List[Edit], cut, tail: bytes) -> bytes:
    out = bytearray(blob)
    for pos, value in changes:
        out[pos % len(out)] = value
    if cut is not None:
        del out[cut % (len(out) + 1):]
    return bytes(out) + tail


def exercise(btf: BTF) -> None:
    """Everything a consumer does with a parsed BTF: all may only raise ObjectError."""
    btf.validate()
    for type_id in range(len(btf)):
        t = btf[type_id]
        btf.type_name(type_id)
        btf.find(t.name)
        try:
            btf.size_of(type_id)
        except ObjectError:
            pass
        try:
            c = codec.compile(btf, type_id)
            if c.size <= 4096:
                c.decode(bytes(c.size))
        except (ObjectError, CodecError):
            pass
    BTF.parse(btf.encode(), validate=True)


@SETTINGS
@given(edits, cuts, tails)
def test_fuzz_btf(changes, cut, tail):
    assert RAW_BTF, "build/exec.bpf.o missing: run 'make'"
    try:
        exercise(BTF.parse(mutate(RAW_BTF, changes, cut, tail)))
    except ObjectError:
        pass


@SETTINGS
@given(edits, cuts, tails)
def test_fuzz_btf_ext(changes, cut, tail):
    assert RAW_EXT, "build/exec.bpf.o missing: run 'make'"
    btf = BTF.parse(RAW_BTF)
    try:
        ext = BTFExt.parse(mutate(RAW_EXT, changes, cut, tail), btf)
    except ObjectError:
        return
    for records in ext.core_relos.values():
        assert all(0 <= r.type_id < len(btf) for r in records)


def test_unmutated_blobs_parse():
    btf = BTF.parse(RAW_BTF, validate=True)
    assert BTFExt.parse(RAW_EXT, btf).func_info
