"""pybpf.btf.parse on blobs built word by word: exact error messages and offsets,
section layouts at their boundaries, the limits, and every field of every kind
decoded from values chosen so that a neighbouring word, bit or sign would show.
Pure: no kernel, no ELF."""
from __future__ import annotations

import struct
import sys
from types import SimpleNamespace
from typing import List, Optional, Sequence

import pytest

from pybpf.btf import BTF
from pybpf.btf import parse
from pybpf.btf import types as T
from pybpf.btf.parse import Header, TypeReader, words
from pybpf.btf.strtab import StringTable
from pybpf.errors import ObjectError
from pybpf.limits import BTF_MAX_NAME_OFFSET, BTF_MAX_TYPE
from pybpf.uapi import (BTF_FUNC_EXTERN, BTF_FUNC_GLOBAL, BTF_INT_BOOL, BTF_INT_CHAR,
                        BTF_INT_SIGNED, BTF_KIND_ARRAY, BTF_KIND_CONST, BTF_KIND_DATASEC,
                        BTF_KIND_DECL_TAG, BTF_KIND_ENUM, BTF_KIND_ENUM64, BTF_KIND_FLOAT,
                        BTF_KIND_FUNC, BTF_KIND_FUNC_PROTO, BTF_KIND_FWD, BTF_KIND_INT,
                        BTF_KIND_PTR, BTF_KIND_RESTRICT, BTF_KIND_STRUCT, BTF_KIND_TYPE_TAG,
                        BTF_KIND_TYPEDEF, BTF_KIND_UNION, BTF_KIND_VAR, BTF_KIND_VOLATILE,
                        BTF_VAR_GLOBAL_ALLOCATED)

MAGIC = 0xEB9F
HDR = 24


def rec(name_off: int, kind: int, size_type: int = 0, *extra: int, vlen: int = 0,
        kflag: int = 0) -> bytes:
    """One btf_type record and the words that follow it."""
    info = kind << 24 | kflag << 31 | vlen
    return struct.pack(f"<III{len(extra)}I", name_off, info, size_type, *extra)


def int_rec(name_off: int, size: int, encoding: int = 0, offset: int = 0,
            bits: Optional[int] = None) -> bytes:
    bits = 8 * size if bits is None else bits
    return rec(name_off, BTF_KIND_INT, size, encoding << 24 | offset << 16 | bits)


def blob(types: bytes, strs: bytes = b"\0int\0", *, strings_first: bool = False,
         fields: Optional[Sequence[int]] = None, hdr_len: int = HDR) -> bytes:
    """A .BTF blob: header (``fields`` overrides type_off.. after the preamble),
    then the types and the strings in either order, no gap."""
    if strings_first:
        body, type_off, str_off = strs + types, len(strs), 0
    else:
        body, type_off, str_off = types + strs, 0, len(types)
    if fields is None:
        fields = [type_off, len(types), str_off, len(strs)]
    head = struct.pack(f"<HBBI{len(fields)}I", MAGIC, 1, 0, hdr_len, *fields)
    return head.ljust(hdr_len, b"\0") + body


def raises(data: bytes, message: str, offset: int, base: Optional[BTF] = None,
           validate: bool = True) -> ObjectError:
    """BTF.parse(data) fails with exactly ``message`` at exactly ``offset``."""
    with pytest.raises(ObjectError) as info:
        BTF.parse(data, base=base, validate=validate)
    err = info.value
    assert str(err).startswith(message), str(err)
    assert (err.section, err.offset) == (".BTF", offset), (str(err), err.offset)
    return err


ONE_INT = int_rec(1, 4, BTF_INT_SIGNED)


# ---------------------------------------------------------------- the 8-byte preamble

@pytest.mark.parametrize("data, message, offset", [
    (struct.pack("<HBBHB", MAGIC, 1, 0, 24, 0), "BTF too short for a header (7 bytes)", 0),
    (struct.pack("<HBBI", MAGIC, 1, 0, 24), "bad BTF header length 24 (section is 8 bytes)", 4),
    (struct.pack("<HBBI", 0x1234, 1, 0, 24), "bad BTF magic 0x1234 (want 0xeb9f)", 0),
    (struct.pack("<HBBI", 0x9FEB, 1, 0, 24), "big-endian BTF is not supported", 0),
    (struct.pack("<HBBI", MAGIC, 2, 0, 24), "unsupported BTF version 2", 2),
    (struct.pack("<HBBI", MAGIC, 0x81, 0, 24), "unsupported BTF version 129", 2),
    (struct.pack("<HBBI", MAGIC, 1, 0x10, 24), "unsupported BTF flags 0x10", 3),
])
def test_preamble_errors(data, message, offset):
    raises(data, message, offset)


@pytest.mark.parametrize("hdr_len", [0, 8, 23, 0x80000000, 0xFFFFFFFF])
def test_header_length_out_of_range(hdr_len):
    data = bytearray(blob(ONE_INT))
    struct.pack_into("<I", data, 4, hdr_len)
    raises(bytes(data), f"bad BTF header length {hdr_len} (section is {len(data)} bytes)", 4)


def test_header_only_split_btf_is_empty():
    """hdr_len == the blob's size: no types, no strings; valid on top of a base."""
    base = BTF.parse(blob(ONE_INT))
    split = BTF.parse(blob(b"", b"", fields=[0, 0, 0, 0]), base=base, validate=True)
    assert len(split) == 2 and split.start_id == 2 and split[1] == base[1]
    raises(blob(b"", b"", fields=[0, 0, 0, 0]),
           "invalid BTF string section (must start and end with NUL)", HDR)


# ---------------------------------------------------------------- the header fields

def test_fields_past_byte_32_are_checked_to_the_last_byte():
    plain = blob(ONE_INT)
    fields = list(struct.unpack_from("<4I", plain, 8)) + [0, 0]
    for hdr_len in (36, 40):
        ok = blob(ONE_INT, fields=fields, hdr_len=hdr_len)
        assert BTF.parse(ok, validate=True)[1] == T.Int("int", 4, BTF_INT_SIGNED, 0, 32)
        bad = bytearray(ok)
        bad[hdr_len - 1] = 1                      # the header's very last byte
        raises(bytes(bad), f"unknown non-zero fields in BTF header (past byte 32 of "
               f"{hdr_len})", 32)
        bad = bytearray(ok)
        bad[32] = 1                               # the first byte past the known fields
        raises(bytes(bad), "unknown non-zero fields in BTF header", 32)


def test_32_byte_header_reads_layout_len_whole():
    """Byte 31 is layout_len's top byte, not an unknown field."""
    plain = blob(ONE_INT)
    fields = list(struct.unpack_from("<4I", plain, 8)) + [0, 1 << 24]
    data = blob(ONE_INT, fields=fields, hdr_len=32)
    body = len(data) - 32
    raises(data, f"BTF layout section (0 + 16777216) runs past the end of the data "
           f"({body} bytes)", 24)


def test_24_byte_header_reads_str_len_whole():
    plain = blob(ONE_INT)
    type_off, type_len, str_off, str_len = struct.unpack_from("<4I", plain, 8)
    data = blob(ONE_INT, fields=[type_off, type_len, str_off, str_len + (1 << 24)])
    raises(data, f"BTF sections (types 0 + 16, strings 16 + {str_len + (1 << 24)}) run past "
           f"the end of the data ({len(data) - HDR} bytes)", 8)


def test_huge_offsets_are_unsigned():
    data = blob(ONE_INT, fields=[0x80000000, 16, 16, 5])
    raises(data, "BTF sections (types 2147483648 + 16, strings 16 + 5) run past the end of "
           "the data (21 bytes)", 8)


@pytest.mark.parametrize("fields, message, offset", [
    ([0, 18, 16, 5], "BTF type section (0 + 18) is not 4-byte aligned", HDR),
    ([2, 16, 16, 5], "BTF type section (2 + 16) is not 4-byte aligned", HDR + 2),
    ([6, 8, 16, 5], "BTF type section (6 + 8) is not 4-byte aligned", HDR + 6),
    ([0, 24, 16, 5], "BTF sections (types 0 + 24, strings 16 + 5) run past the end of the "
                     "data (21 bytes)", 8),
    ([0, 16, 16, 6], "BTF sections (types 0 + 16, strings 16 + 6) run past the end of the "
                     "data (21 bytes)", 8),
    ([0, 16, 17, 5], "BTF sections (types 0 + 16, strings 17 + 5) run past the end", 8),
    ([0, 16, 8, 5], "BTF type and string sections overlap", 8),
    ([4, 16, 0, 5], "BTF type and string sections overlap", 8),
    ([0, 16, 15, 5], "BTF type and string sections overlap", 8),
])
def test_section_framing(fields, message, offset):
    raises(blob(ONE_INT, fields=fields), message, offset)


def test_strings_first_and_adjacent():
    """Strings before the types, ending where they start (type_off 8)."""
    strs = b"\0int\0\0\0\0"
    data = blob(ONE_INT + int_rec(1, 2), strs, strings_first=True)
    assert struct.unpack_from("<4I", data, 8) == (8, 32, 0, 8)
    btf = BTF.parse(data, validate=True)
    assert [btf[1], btf[2]] == [T.Int("int", 4, BTF_INT_SIGNED, 0, 32), T.Int("int", 2, 0, 0, 16)]


def test_string_section_ends():
    types = ONE_INT
    raises(blob(types, b"\0int"), "invalid BTF string section (must start and end with NUL)",
           HDR + 16)
    raises(blob(types, b"xint\0"), "invalid BTF string section", HDR + 16)
    raises(blob(types, b"\0in\0t"), "invalid BTF string section", HDR + 16)
    raises(blob(b"", b"", fields=[0, 0, 0, 0]), "invalid BTF string section", HDR)
    raises(blob(types, b"\0int", strings_first=True), "invalid BTF string section", HDR)
    # the last type word's high byte is not mistaken for the strings' first byte
    last = rec(0, BTF_KIND_ENUM, 4, 1, 0xFF000000, vlen=1)
    btf = BTF.parse(blob(ONE_INT + last, b"\0int\0"), validate=True)
    assert btf[2] == T.Enum("", 4, [("int", 0xFF000000)], False)


def test_split_string_sections():
    base = BTF.parse(blob(ONE_INT, b"\0int\0"))
    # a split BTF's strings continue the base's: they need not start with NUL
    split = BTF.parse(blob(rec(5, BTF_KIND_PTR, 1) + rec(0, BTF_KIND_PTR, 2), b"ptr\0"),
                      base=base, validate=True)
    assert split[2] == T.Pointer("ptr", 1) and split[3] == T.Pointer("", 2)
    assert len(split) == 4
    # no strings of its own
    split = BTF.parse(blob(rec(1, BTF_KIND_TYPEDEF, 1), b""), base=base, validate=True)
    assert split[2] == T.Typedef("int", 1)
    raises(blob(rec(5, BTF_KIND_PTR, 1), b"ptr"), "invalid BTF string section", HDR + 12,
           base=base)


def test_string_section_size_limit():
    max_len = BTF_MAX_NAME_OFFSET + 1                 # offsets 0 .. BTF_MAX_NAME_OFFSET
    strs = b"\0int\0" + b"a" * (max_len - 6) + b"\0"
    assert len(strs) == max_len
    btf = BTF.parse(blob(ONE_INT, strs))
    assert btf[1].name == "int"
    raises(blob(ONE_INT, strs[:-1] + b"a\0"), "invalid BTF string section", HDR + 16)


# ---------------------------------------------------------------- the layout section

#: struct btf_layout {info_sz, elem_sz} of kinds 0..19 as the kernel defines them
#: (written out here, not derived from parse.RECORD_SHAPE)
KERNEL_LAYOUT = [(0, 0), (4, 0), (0, 0), (12, 0), (0, 12), (0, 12), (0, 8), (0, 0), (0, 0),
                 (0, 0), (0, 0), (0, 0), (0, 0), (0, 8), (4, 0), (0, 12), (0, 0), (4, 0),
                 (0, 0), (0, 12)]
LAYOUT_KINDS = len(KERNEL_LAYOUT)


def layout_table(**changes) -> bytes:
    entries = [changes.get(f"k{kind}", (*KERNEL_LAYOUT[kind], 0)) for kind in range(LAYOUT_KINDS)]
    return b"".join(struct.pack("<BBH", *e) for e in entries)


def with_layout(table: bytes, where: str, types: bytes = ONE_INT,
                strs: bytes = b"\0int\0\0\0\0", fix=None) -> bytes:
    """types, strings and the layout table, the table first, between or last."""
    parts = {"first": [table, types, strs], "between": [types, table, strs],
             "last": [types, strs, table]}[where]
    offs = [0, len(parts[0]), len(parts[0]) + len(parts[1])]
    pos = {id(p): o for p, o in zip(parts, offs)}
    fields = [pos[id(types)], len(types), pos[id(strs)], len(strs), pos[id(table)], len(table)]
    if fix:
        fix(fields)
    head = struct.pack("<HBBI6I", MAGIC, 1, 0, 32, *fields)
    return head + b"".join(parts)


@pytest.mark.parametrize("where", ["first", "between", "last"])
def test_layout_anywhere_adjacent(where):
    table = layout_table()
    data = with_layout(table, where)
    btf = BTF.parse(data, validate=True)
    assert btf[1] == T.Int("int", 4, BTF_INT_SIGNED, 0, 32)
    fields = struct.unpack_from("<6I", data, 8)
    assert fields[5] == len(table) == 4 * LAYOUT_KINDS
    # the type section of one int is 16 bytes: the layout offset 16 is 4-aligned only
    assert where != "between" or fields[4] == 16


@pytest.mark.parametrize("where, fix, message", [
    ("between", lambda f: f.__setitem__(4, 18), "BTF layout section (18 + 80) is not 4-byte "
     "aligned or not a whole number of 4-byte entries"),
    ("between", lambda f: f.__setitem__(5, 78), "BTF layout section (16 + 78) is not 4-byte "
     "aligned or not a whole number of 4-byte entries"),
    ("between", lambda f: f.__setitem__(5, 0), "BTF layout section at offset 16 is empty"),
    ("last", lambda f: f.__setitem__(5, 84), "BTF layout section (24 + 84) runs past the end "
     "of the data (104 bytes)"),
    ("last", lambda f: f.__setitem__(4, 20), "BTF layout section (20 + 80) overlaps the string "
     "section (16 + 8)"),
    ("between", lambda f: f.__setitem__(4, 12), "BTF layout section (12 + 80) overlaps the type "
     "section (0 + 16)"),
    ("first", lambda f: f.__setitem__(5, 84), "BTF layout section (0 + 84) overlaps the type "
     "section (80 + 16)"),
    ("between", lambda f: f.__setitem__(5, 84), "BTF layout section (16 + 84) overlaps the "
     "string section (96 + 8)"),
])
def test_layout_errors(where, fix, message):
    raises(with_layout(layout_table(), where, fix=fix), message, 24)


@pytest.mark.parametrize("where, base", [("first", 32), ("between", 32 + 16), ("last", 32 + 24)])
def test_layout_entry_mismatch_names_the_entry(where, base):
    data = with_layout(layout_table(k4=(0, 8, 0)), where)
    raises(data, "BTF layout of kind 4: info_sz 0, elem_sz 8; this kind has 0 and 12",
           base + 16)
    raises(with_layout(layout_table(k0=(4, 0, 0)), where),
           "BTF layout of kind 0: info_sz 4, elem_sz 0; this kind has 0 and 0", base)
    raises(with_layout(layout_table(k1=(128, 0, 0)), where),
           "BTF layout of kind 1: info_sz 128, elem_sz 0; this kind has 4 and 0", base + 4)
    raises(with_layout(layout_table(k19=(0, 200, 0)), where),
           "BTF layout of kind 19: info_sz 0, elem_sz 200; this kind has 0 and 12", base + 76)


def test_record_shapes_are_the_kernels():
    assert {k: (4 * f, 4 * p) for k, (f, p) in parse.RECORD_SHAPE.items()} == \
        dict(enumerate(KERNEL_LAYOUT[1:], 1))


def test_layout_flags_and_unknown_kinds_are_free():
    table = layout_table(k1=(4, 0, 0xFFFF), k4=(0, 12, 0x8001)) + struct.pack("<BBH", 8, 4, 3)
    btf = BTF.parse(with_layout(table, "between"), validate=True)
    assert btf[1].bits == 32


# ---------------------------------------------------------------- the record scan

def test_scan_errors_name_the_record():
    second = HDR + 16               # type 2 starts after the 16-byte int
    raises(blob(ONE_INT + rec(0, 20)), "unknown BTF kind 20", second)
    raises(blob(ONE_INT + rec(0, 0)), "unknown BTF kind 0", second)
    raises(blob(ONE_INT + rec(0, 31)), "unknown BTF kind 31", second)
    for bit in (16, 23, 29, 30):
        info = BTF_KIND_PTR << 24 | 1 << bit
        raises(blob(ONE_INT + struct.pack("<III", 0, info, 1)),
               f"reserved bits set in BTF info {info:#010x}", second)
    raises(blob(ONE_INT + rec(0, BTF_KIND_PTR, 1, kflag=1)), "kind_flag set on BTF kind 2",
           second)
    raises(blob(ONE_INT + rec(0, BTF_KIND_TYPEDEF, 1, vlen=1)), "vlen 1 on BTF kind 8", second)
    raises(blob(ONE_INT + rec(0, BTF_KIND_ARRAY, 0, 1, 1, 2, vlen=3)), "vlen 3 on BTF kind 3",
           second)


def test_kind_flag_and_vlen_where_they_mean_something():
    types = (ONE_INT + rec(0, BTF_KIND_STRUCT, 4, 1, 1, 3 << 24 | 5, vlen=1, kflag=1)
             + rec(0, BTF_KIND_FWD, 0, kflag=1) + rec(0, BTF_KIND_ENUM, 4, 1, 0xFFFFFFFF,
                                                      vlen=1, kflag=1)
             + rec(0, BTF_KIND_FUNC_PROTO, 1, vlen=0) + rec(1, BTF_KIND_FUNC, 5, vlen=2)
             + rec(1, BTF_KIND_DECL_TAG, 1, 0xFFFFFFFF, kflag=1)
             + rec(1, BTF_KIND_TYPE_TAG, 1, kflag=1))
    btf = BTF.parse(blob(types), validate=True)
    assert btf[2] == T.Struct("", 4, [T.Member("int", 1, 5, 3)])
    assert btf[3] == T.Fwd("", True)
    assert btf[4] == T.Enum("", 4, [("int", -1)], True)
    assert btf[5] == T.FuncProto("", 1, [])
    assert btf[6] == T.Func("int", 5, BTF_FUNC_EXTERN)
    assert btf[7] == T.DeclTag("int", 1, -1, True)
    assert btf[8] == T.TypeTag("int", 1, True)


def test_record_overflow_and_stub_offsets():
    two = ONE_INT + int_rec(1, 8)                 # records at words 0 and 4
    # the last record claims 2 members it does not have
    raises(blob(two + rec(0, BTF_KIND_STRUCT, 8, 1, 1, 0, vlen=2)),
           "a BTF type record runs past the end of the type section", HDR + 32)
    raises(blob(ONE_INT + rec(0, BTF_KIND_STRUCT, 8, 1, 1, 0, vlen=5) + ONE_INT),
           "a BTF type record runs past the end of the type section", HDR + 16)
    # one word left over after the last record
    raises(blob(two + struct.pack("<I", 7)),
           "a BTF type record runs past the end of the type section", HDR + 32)
    raises(blob(two + struct.pack("<II", 7, 0)), "unknown BTF kind 0", HDR + 32)
    btf = BTF.parse(blob(two), validate=True)
    assert len(btf) == 3 and btf[2].size == 8


def test_type_count_limit():
    ptr = rec(0, BTF_KIND_PTR, 0)
    types = ptr * BTF_MAX_TYPE
    btf = BTF.parse(blob(types, b"\0"))
    assert len(btf) == BTF_MAX_TYPE + 1 and btf[BTF_MAX_TYPE] == T.Pointer("", 0)
    raises(blob(types + ptr, b"\0"), f"too many BTF types ({BTF_MAX_TYPE + 1})", HDR,
           validate=False)


# ---------------------------------------------------------------- decoding each kind

def test_int_fields_and_checks():
    ints = [(1, 0, 0, 8), (2, BTF_INT_SIGNED, 0, 16), (4, BTF_INT_CHAR, 1, 31),
            (8, BTF_INT_BOOL, 3, 7), (16, BTF_INT_SIGNED, 0, 128), (4, 0, 31, 1),
            (16, 0, 127, 1), (8, 0, 0, 0)]
    types = b"".join(int_rec(1, *i) for i in ints)
    btf = BTF.parse(blob(types), validate=True)
    assert [btf[i] for i in range(1, len(ints) + 1)] == [T.Int("int", *i) for i in ints]
    second = HDR + 16
    for size, encoding, off, bits in [(3, 0, 0, 24), (0, 0, 0, 0), (5, 0, 0, 8), (32, 0, 0, 8),
                                      (4, 0, 1, 32), (4, 0, 0, 33), (16, 0, 1, 128),
                                      (16, 0, 0, 129), (1, 0, 8, 1)]:
        raises(blob(ONE_INT + int_rec(1, size, encoding, off, bits)),
               f"invalid BTF int 'int': size {size}, bit offset {off}, bits {bits}", second)
    for high in (0x10, 0x20, 0x80):               # the top nibble of the encoding byte
        raises(blob(ONE_INT + int_rec(1, 4, high)), "invalid BTF int 'int': size 4", second)


def test_reference_kinds():
    types = ONE_INT + b"".join(rec(1, kind, 1) for kind in (
        BTF_KIND_PTR, BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST, BTF_KIND_RESTRICT,
        BTF_KIND_TYPE_TAG)) + rec(1, BTF_KIND_TYPE_TAG, 7, kflag=1)
    btf = BTF.parse(blob(types), validate=True)
    assert [btf[i] for i in range(2, 9)] == [
        T.Pointer("int", 1), T.Typedef("int", 1), T.Volatile("int", 1), T.Const("int", 1),
        T.Restrict("int", 1), T.TypeTag("int", 1, False), T.TypeTag("int", 7, True)]


def test_references_at_the_limit():
    ok = ONE_INT + rec(0, BTF_KIND_PTR, 2)       # 2 of 3 ids: itself
    assert BTF.parse(blob(ok), validate=True)[2] == T.Pointer("", 2)
    raises(blob(ONE_INT + rec(0, BTF_KIND_PTR, 3)),
           "reference to type id 3, but there are only 3 types", HDR + 16)
    raises(blob(ONE_INT + rec(0, BTF_KIND_ARRAY, 0, 1, 3, 4)),
           "reference to type id 3, but there are only 3 types", HDR + 16)
    raises(blob(ONE_INT + rec(0, BTF_KIND_ARRAY, 0, 3, 1, 4)),
           "reference to type id 3, but there are only 3 types", HDR + 16)
    # members and params: the error names the member's own words
    raises(blob(ONE_INT + rec(0, BTF_KIND_STRUCT, 8, 0, 1, 0, 0, 3, 32, vlen=2)),
           "reference to type id 3", HDR + 16 + 24)
    raises(blob(ONE_INT + rec(0, BTF_KIND_FUNC_PROTO, 1, 0, 1, 0, 3, vlen=2)),
           "reference to type id 3", HDR + 16 + 20)
    raises(blob(ONE_INT + rec(0, BTF_KIND_DATASEC, 8, 1, 0, 4, 3, 4, 4, vlen=2)),
           "reference to type id 3", HDR + 16 + 24)
    # a split BTF's ids continue its base's
    base = BTF.parse(blob(ONE_INT))
    split = BTF.parse(blob(rec(0, BTF_KIND_PTR, 2) + rec(0, BTF_KIND_PTR, 1), b""), base=base,
                      validate=True)
    assert split[2] == T.Pointer("", 2) and split[3] == T.Pointer("", 1)
    raises(blob(rec(0, BTF_KIND_PTR, 4) + rec(0, BTF_KIND_PTR, 1), b""),
           "reference to type id 4, but there are only 4 types", HDR, base=base)


def test_array_words():
    types = ONE_INT + int_rec(1, 8) + rec(1, BTF_KIND_ARRAY, 0, 2, 1, 77) + int_rec(1, 1)
    btf = BTF.parse(blob(types), validate=True)
    assert btf[3] == T.Array("int", 2, 1, 77)
    assert btf[4].size == 1


def test_struct_and_union_members():
    strs = b"\0int\0a\0b\0c\0"
    types = (ONE_INT
             + rec(1, BTF_KIND_STRUCT, 24, 5, 1, 0x01000001, 7, 1, 160, 9, 1, 0xFFFFFFFF,
                   vlen=3)
             + rec(5, BTF_KIND_STRUCT, 8, 5, 1, 0x030000A1, 7, 1, 0x1F000000, 9, 1, 0x00FFFFFF,
                   vlen=3, kflag=1)
             + rec(9, BTF_KIND_UNION, 4, 5, 1, 0, 7, 1, 0, vlen=2)
             + rec(0, BTF_KIND_STRUCT, 0)
             + rec(0, BTF_KIND_UNION, 0))
    btf = BTF.parse(blob(types, strs), validate=True)
    assert btf[2] == T.Struct("int", 24, [T.Member("a", 1, 0x01000001, 0),
                                          T.Member("b", 1, 160, 0),
                                          T.Member("c", 1, 0xFFFFFFFF, 0)])
    assert btf[3] == T.Struct("a", 8, [T.Member("a", 1, 0xA1, 3), T.Member("b", 1, 0, 31),
                                       T.Member("c", 1, 0xFFFFFF, 0)])
    assert btf[4] == T.Union("c", 4, [T.Member("a", 1, 0), T.Member("b", 1, 0)])
    assert type(btf[4]) is T.Union and type(btf[2]) is T.Struct
    assert btf[5] == T.Struct("", 0, []) and type(btf[6]) is T.Union and btf[6].members == []
    # a member's bad name is reported at the member
    bad = rec(0, BTF_KIND_STRUCT, 8, 5, 1, 0, 1000, 1, 32, vlen=2)
    raises(blob(ONE_INT + bad, strs),
           f"string offset 1000 is past the end of the string section ({len(strs)} bytes)",
           HDR + 16 + 24)


def test_enum_values_and_signs():
    strs = b"\0int\0A\0B\0C\0"
    vals = [0x80000000, 0x7FFFFFFF, 1, 0xFFFFFFFF]
    words_ = [w for i, v in enumerate(vals) for w in (5 + 2 * (i % 3), v)]
    types = (rec(1, BTF_KIND_ENUM, 4, *words_, vlen=4)
             + rec(1, BTF_KIND_ENUM, 1, *words_, vlen=4, kflag=1)
             + rec(0, BTF_KIND_ENUM, 2)
             + rec(0, BTF_KIND_ENUM, 8, 5, 2, vlen=1))
    btf = BTF.parse(blob(types, strs), validate=True)
    names = ["A", "B", "C", "A"]
    assert btf[1] == T.Enum("int", 4, list(zip(names, vals)), False)
    assert btf[2] == T.Enum("int", 1, list(zip(names, [-(1 << 31), 0x7FFFFFFF, 1, -1])), True)
    assert btf[3] == T.Enum("", 2, [], False)
    assert btf[4] == T.Enum("", 8, [("A", 2)], False)
    for size in (0, 3, 5, 16):
        raises(blob(ONE_INT + rec(0, BTF_KIND_ENUM, size), strs), f"invalid BTF enum size {size}",
               HDR + 16)
        raises(blob(ONE_INT + rec(0, BTF_KIND_ENUM64, size), strs),
               f"invalid BTF enum size {size}", HDR + 16)


def test_enum64_values_and_signs():
    strs = b"\0int\0A\0B\0C\0"
    vals = [0x1122334455667788, 1 << 63, (1 << 63) - 1, 1 << 62, 0xFFFFFFFFFFFFFFFF, 0x80000000]
    words_ = [w for i, v in enumerate(vals) for w in (5 + 2 * (i % 3), v & 0xFFFFFFFF, v >> 32)]
    types = (rec(1, BTF_KIND_ENUM64, 8, *words_, vlen=6)
             + rec(1, BTF_KIND_ENUM64, 4, *words_, vlen=6, kflag=1)
             + rec(0, BTF_KIND_ENUM64, 1) + rec(0, BTF_KIND_ENUM64, 2, 9, 5, 6, vlen=1))
    btf = BTF.parse(blob(types, strs), validate=True)
    names = ["A", "B", "C", "A", "B", "C"]
    assert btf[1] == T.Enum64("int", 8, list(zip(names, vals)), False)
    signed = [0x1122334455667788, -(1 << 63), (1 << 63) - 1, 1 << 62, -1, 0x80000000]
    assert btf[2] == T.Enum64("int", 4, list(zip(names, signed)), True)
    assert btf[3] == T.Enum64("", 1, [], False)
    assert btf[4] == T.Enum64("", 2, [("C", 6 << 32 | 5)], False)


def test_fwd_func_proto_var_datasec():
    strs = b"\0int\0p\0q\0.data\0"
    types = (ONE_INT + int_rec(1, 8)
             + rec(5, BTF_KIND_FWD, 0) + rec(7, BTF_KIND_FWD, 0, kflag=1)
             + rec(0, BTF_KIND_FUNC_PROTO, 2, 5, 1, 7, 2, vlen=2)       # [5]
             + rec(0, BTF_KIND_FUNC_PROTO, 0)                           # [6]
             + rec(9, BTF_KIND_FUNC, 5, vlen=BTF_FUNC_GLOBAL)           # [7]
             + rec(5, BTF_KIND_VAR, 1, BTF_VAR_GLOBAL_ALLOCATED)        # [8]
             + rec(7, BTF_KIND_VAR, 2, 2)                               # [9]
             + rec(9, BTF_KIND_DATASEC, 24, 8, 4, 8, 9, 16, 4, vlen=2)  # [10]
             + rec(0, BTF_KIND_DATASEC, 0)                              # [11]
             + rec(5, BTF_KIND_FUNC, 6, vlen=0))                        # [12]
    btf = BTF.parse(blob(types, strs), validate=True)
    assert btf[3] == T.Fwd("p", False) and btf[4] == T.Fwd("q", True)
    assert btf[5] == T.FuncProto("", 2, [T.Param("p", 1), T.Param("q", 2)])
    assert btf[6] == T.FuncProto("", 0, [])
    assert btf[7] == T.Func(".data", 5, BTF_FUNC_GLOBAL)
    assert btf[8] == T.Var("p", 1, BTF_VAR_GLOBAL_ALLOCATED)
    assert btf[9] == T.Var("q", 2, 2)
    assert btf[10] == T.Datasec(".data", 24, [T.VarSecinfo(8, 4, 8), T.VarSecinfo(9, 16, 4)])
    assert btf[11] == T.Datasec("", 0, [])
    assert btf[12] == T.Func("p", 6, 0)
    raises(blob(ONE_INT + rec(0, BTF_KIND_FUNC_PROTO, 1, 1000, 1, vlen=1), strs),
           "string offset 1000", HDR + 16 + 12)


def test_float_sizes():
    sizes = (2, 4, 8, 12, 16)
    btf = BTF.parse(blob(b"".join(rec(1, BTF_KIND_FLOAT, s) for s in sizes)), validate=True)
    assert [btf[i] for i in range(1, 6)] == [T.Float("int", s) for s in sizes]
    for size in (0, 1, 3, 5, 6, 7, 9, 10, 11, 13, 15, 17, 32):
        raises(blob(ONE_INT + rec(0, BTF_KIND_FLOAT, size)), f"invalid BTF float size {size}",
               HDR + 16)


def test_enum_sizes():
    sizes = (1, 2, 4, 8)
    btf = BTF.parse(blob(b"".join(rec(0, BTF_KIND_ENUM, s) + rec(0, BTF_KIND_ENUM64, s)
                                  for s in sizes)), validate=True)
    assert [btf[i].size for i in range(1, 9)] == [1, 1, 2, 2, 4, 4, 8, 8]
    assert [type(btf[i]) for i in (1, 2)] == [T.Enum, T.Enum64]


def test_decl_tag_component_index():
    idxs = [0xFFFFFFFF, 5, 0x7FFFFFFF, 0x80000000, 2]
    types = ONE_INT + b"".join(rec(1, BTF_KIND_DECL_TAG, 1, i) for i in idxs) \
        + rec(1, BTF_KIND_DECL_TAG, 1, 3, kflag=1)
    btf = BTF.parse(blob(types), validate=True)
    assert [btf[i] for i in range(2, 8)] == (
        [T.DeclTag("int", 1, i, False) for i in (-1, 5, 0x7FFFFFFF, -(1 << 31), 2)]
        + [T.DeclTag("int", 1, 3, True)])


def test_reader_reports_a_bad_type_name_at_its_record():
    """TypeReader on its own (BTF.parse checks type names up front): a name
    offset with no NUL after it is reported at the record naming it."""
    w = words(ONE_INT + int_rec(3, 8))
    strtab = StringTable(b"\0int", None, ".BTF.test", 100)
    reader = TypeReader(w, strtab, ".BTF.test", 40, 3)
    with pytest.raises(ObjectError) as info:
        reader.read(4)
    assert (info.value.section, info.value.offset) == (".BTF.test", 40 + 16)
    assert "string offset 3 is past the end" in str(info.value)
    with pytest.raises(ObjectError) as info:
        reader.read(0)
    assert info.value.offset == 40
    assert reader.error("x", 4).offset == 56 and reader.error("x", 4).section == ".BTF.test"


def test_words_on_a_big_endian_host(monkeypatch):
    """Where native words are big-endian, words() byteswaps a copy (simulated
    here: the same swap shows as big-endian words on this host)."""
    data = struct.pack("<II", 0x11223344, 0xA0B0C0D0)
    assert list(words(data)) == ([0x11223344, 0xA0B0C0D0] if sys.byteorder == "little"
                                 else [0x44332211, 0xD0C0B0A0])
    other = "big" if sys.byteorder == "little" else "little"
    monkeypatch.setattr(parse, "sys", SimpleNamespace(byteorder=other))
    swapped = words(data)
    assert list(swapped) == [0x44332211, 0xD0C0B0A0] if other == "big" else \
        [0x11223344, 0xA0B0C0D0]
    assert swapped.itemsize == 4


def test_header_defaults_mean_no_layout():
    hdr = Header(24, 0, 16, 16, 5)
    assert (hdr.layout_off, hdr.layout_len) == (0, 0)
    got = parse.parse_header(blob(ONE_INT), ".BTF", split=False)
    assert got == Header(24, 0, 16, 16, 5, 0, 0)
    data = with_layout(layout_table(), "between")
    assert parse.parse_header(data, ".BTF", split=False) == Header(32, 0, 16, 96, 8, 16, 80)
