"""BTF value codecs: struct event of the exec-snoop objects, bitfields, enums, nesting."""
from __future__ import annotations

import math
import struct

import pytest
from elftools.elf.elffile import ELFFile

from conftest import built
from pybpf.btf import BTF, codec
from pybpf.btf import types as T
from pybpf.btf.codec import CodecError
from pybpf.errors import BPFError, ObjectError
from pybpf.uapi import BTF_INT_BOOL, BTF_INT_CHAR, BTF_INT_SIGNED, BTF_KIND_STRUCT


def object_btf(name: str) -> BTF:
    with open(built(name), "rb") as f:
        return BTF.parse(ELFFile(f).get_section_by_name(".BTF").data())


@pytest.mark.parametrize("obj", ["exec.bpf.o", "ringbuf-output.bpf.o"])
def test_struct_event(obj):
    btf = object_btf(obj)
    c = codec.compile(btf, btf.find_one("event", BTF_KIND_STRUCT))
    assert c.size == 532 and struct.calcsize(c.struct_format) == 532
    assert c.struct_format == "<i16s512s"
    assert c.field_names == ["pid", "comm", "filename"]
    raw = c.encode({"pid": 4242, "comm": b"bash", "filename": "/usr/bin/ls"})
    assert raw[:4] == struct.pack("<i", 4242) and raw[4:9] == b"bash\0"
    assert c.decode(raw) == {"pid": 4242, "comm": b"bash", "filename": b"/usr/bin/ls"}
    assert c.decode(raw + b"\0" * 4)["pid"] == 4242          # ring records are padded
    assert c.encode({"pid": -1}) == struct.pack("<i", -1) + bytes(528)
    rows = [dict(zip(c.field_names, values))
            for values in struct.iter_unpack(c.struct_format, raw * 2)]
    assert rows[1]["pid"] == 4242 and rows[1]["comm"].rstrip(b"\0") == b"bash"
    assert list(c.decode_many(raw * 3)) == [c.decode(raw)] * 3
    with pytest.raises(CodecError, match="not a whole number"):
        c.decode_many(raw[:-1])
    with pytest.raises(CodecError, match="do not fit"):
        c.encode({"comm": b"x" * 17})
    with pytest.raises(CodecError, match="out of range"):
        c.encode({"pid": 1 << 31})
    with pytest.raises(CodecError, match="no member 'pdi'.*pid, comm, filename"):
        c.encode({"pdi": 1})
    with pytest.raises(CodecError, match="too few"):
        c.decode(raw[:100])


@pytest.fixture
def btf() -> BTF:
    return BTF()


def ints(btf: BTF):
    return (btf.add(T.Int("int", 4, BTF_INT_SIGNED, 0, 32)),
            btf.add(T.Int("unsigned char", 1, 0, 0, 8)),
            btf.add(T.Int("char", 1, BTF_INT_SIGNED, 0, 8)),
            btf.add(T.Int("long long unsigned int", 8, 0, 0, 64)))


def test_scalars(btf):
    i32, u8, char, u64 = ints(btf)
    assert codec.encode(btf, i32, -2) == struct.pack("<i", -2)
    assert codec.decode(btf, u64, struct.pack("<Q", 1 << 63)) == 1 << 63
    assert codec.decode(btf, btf.add(T.Pointer("", i32)), struct.pack("<Q", 0xFFFF8000)) \
        == 0xFFFF8000
    boolean = btf.add(T.Int("_Bool", 1, BTF_INT_BOOL, 0, 8))
    assert codec.decode(btf, boolean, b"\x01") is True
    assert codec.encode(btf, boolean, True) == b"\x01"
    i128 = btf.add(T.Int("__int128", 16, BTF_INT_SIGNED, 0, 128))
    assert codec.decode(btf, i128, codec.encode(btf, i128, -(1 << 100))) == -(1 << 100)
    dbl, flt, half = (btf.add(T.Float(n, s)) for n, s in (("double", 8), ("float", 4),
                                                         ("_Float16", 2)))
    assert codec.decode(btf, dbl, codec.encode(btf, dbl, math.pi)) == math.pi
    assert codec.decode(btf, flt, codec.encode(btf, flt, 1.5)) == 1.5
    assert codec.decode(btf, half, codec.encode(btf, half, 0.5)) == 0.5
    const = btf.add(T.Const("", btf.add(T.Typedef("s32", i32))))
    assert codec.compile(btf, const).struct_format == "<i"
    for tid, bad in ((u8, 256), (u8, -1), (i32, -(1 << 31) - 1), (u64, 1 << 64),
                     (i32, "3"), (i32, 1.0)):
        with pytest.raises(CodecError) as info:
            codec.encode(btf, tid, bad)
        assert isinstance(info.value, ValueError) and isinstance(info.value, BPFError)


def test_enums(btf):
    e = btf.add(T.Enum("state", 4, [("IDLE", 0), ("BAD", -1)], signed=True))
    assert codec.encode(btf, e, "BAD") == struct.pack("<i", -1)
    assert codec.decode(btf, e, struct.pack("<i", -1)) == -1
    u = btf.add(T.Enum("flags", 1, [("A", 1), ("B", 255)]))
    assert codec.encode(btf, u, "B") == b"\xff"
    with pytest.raises(CodecError, match="'C' is not an enumerator"):
        codec.encode(btf, u, "C")
    with pytest.raises(CodecError, match="out of range"):
        codec.encode(btf, u, 256)
    e64 = btf.add(T.Enum64("big", 8, [("TOP", (1 << 64) - 1)]))
    assert codec.decode(btf, e64, codec.encode(btf, e64, "TOP")) == (1 << 64) - 1


def test_bitfields(btf):
    i32, u8, _, u64 = ints(btf)
    boolean = btf.add(T.Int("_Bool", 1, BTF_INT_BOOL, 0, 8))
    color = btf.add(T.Enum("color", 4, [("RED", 1), ("BLUE", 3)]))
    legacy = btf.add(T.Int("int", 4, BTF_INT_SIGNED, 0, 5))       # kflag=0 style: 5 bits
    s = btf.add(T.Struct("bits", 16, [
        T.Member("lo", u8, 0, 3),
        T.Member("neg", i32, 3, 7),                 # signed, straddles a byte boundary
        T.Member("flag", boolean, 10, 1),
        T.Member("", i32, 11, 2),                   # unnamed padding bitfield
        T.Member("color", color, 13, 2),
        T.Member("wide", u64, 15, 40),
        T.Member("old", legacy, 64),
        T.Member("tail", u8, 96),
    ]))
    c = codec.compile(btf, s)
    assert c.struct_format is None
    assert c.field_names == ["lo", "neg", "flag", "color", "wide", "old", "tail"]
    value = {"lo": 5, "neg": -33, "flag": True, "color": "BLUE", "wide": (1 << 40) - 2,
             "old": -16, "tail": 200}
    raw = c.encode(value)
    assert c.decode(raw) == dict(value, color=3)
    expect = 5 | (-33 & 0x7F) << 3 | 1 << 10 | 3 << 13 | ((1 << 40) - 2) << 15
    assert int.from_bytes(raw[:8], "little") == expect
    assert raw[8] == 0x10 and raw[12] == 200       # -16 in 5 bits = 0b10000
    assert c.decode(c.encode({"neg": 63}))["neg"] == 63
    for name, bad in (("lo", 8), ("neg", 64), ("neg", -65), ("old", 16)):
        with pytest.raises(CodecError, match="bitfield"):
            c.encode({name: bad})
    assert c.decode(c.encode(dict(c.decode(raw), lo=1))) == dict(value, lo=1, color=3)


def test_nested_arrays_and_anonymous_members(btf):
    i32, u8, char, _ = ints(btf)
    inner = btf.add(T.Struct("point", 8, [T.Member("x", i32, 0), T.Member("y", i32, 32)]))
    row = btf.add(T.Array("", i32, i32, 3))
    grid = btf.add(T.Array("", row, i32, 2))
    name = btf.add(T.Array("", char, i32, 8))
    raw_bytes = btf.add(T.Array("", u8, i32, 4))
    anon = btf.add(T.Union("", 4, [T.Member("as_int", i32, 0), T.Member("as_bytes", raw_bytes, 0)]))
    outer = btf.add(T.Struct("outer", 4 + 8 + 24 + 8 + 8, [
        T.Member("", anon, 0),
        T.Member("pos", inner, 32),
        T.Member("grid", grid, 96),
        T.Member("name", name, 288),
        T.Member("points", btf.add(T.Pointer("", inner)), 352),
    ]))
    c = codec.compile(btf, outer)
    assert c.field_names == ["as_int", "as_bytes", "pos", "grid", "name", "points"]
    assert c.struct_format is None
    raw = c.encode({"as_int": 0x01020304, "pos": {"x": 1, "y": -2},
                    "grid": [[1, 2, 3], [4, 5]], "name": b"ab\0cd", "points": 0xdead})
    got = c.decode(raw)
    assert got == {"as_int": 0x01020304, "as_bytes": [4, 3, 2, 1], "pos": {"x": 1, "y": -2},
                   "grid": [[1, 2, 3], [4, 5, 0]], "name": b"ab", "points": 0xdead}
    assert c.decode(c.encode({"as_bytes": b"\x01\0\0\0"}))["as_int"] == 1
    assert c.encode({}) == bytes(c.size)
    with pytest.raises(CodecError, match="items do not fit"):
        c.encode({"grid": [[0]] * 3})
    with pytest.raises(CodecError, match="needs a dict"):
        c.encode({"pos": [1, 2]})
    with pytest.raises(CodecError, match="needs a list"):
        c.encode({"grid": 5})
    point = codec.compile(btf, inner)
    assert point.struct_format == "<ii" and point.encode(bytes(8)) == bytes(8)


def test_char_arrays(btf):
    i32 = btf.add(T.Int("int", 4, BTF_INT_SIGNED, 0, 32))
    for elem in (T.Int("char", 1, BTF_INT_SIGNED, 0, 8), T.Int("xchar", 1, BTF_INT_CHAR, 0, 8)):
        arr = btf.add(T.Array("", btf.add(T.Const("", btf.add(elem))), i32, 4))
        c = codec.compile(btf, arr)
        assert c.struct_format == "<4s"
        assert c.decode(b"ab\0c") == b"ab" and c.decode(b"abcd") == b"abcd"
        assert c.encode("ab") == b"ab\0\0" and c.encode(b"abcd") == b"abcd"
    u8s = btf.add(T.Array("", btf.add(T.Int("unsigned char", 1, 0, 0, 8)), i32, 4))
    assert codec.decode(btf, u8s, b"ab\0c") == [97, 98, 0, 99]
    assert codec.encode(btf, u8s, b"ab") == b"ab\0\0"


def test_member_past_the_struct_is_malformed(btf):
    i32 = btf.add(T.Int("int", 4, BTF_INT_SIGNED, 0, 32))
    bad = btf.add(T.Struct("bad", 4, [T.Member("x", i32, 0), T.Member("y", i32, 32)]))
    with pytest.raises(ObjectError, match="member 'y' ends at byte 8, past the 4-byte struct"):
        codec.compile(btf, bad)
    bits = btf.add(T.Struct("bits", 1, [T.Member("b", i32, 6, 4)]))
    with pytest.raises(ObjectError, match="member 'b' ends at byte 2"):
        codec.compile(btf, bits)


def test_struct_format_with_padding(btf):
    i32, u8, _, u64 = ints(btf)
    s = btf.add(T.Struct("padded", 24, [T.Member("a", u8, 0), T.Member("b", u64, 64),
                                        T.Member("c", i32, 128)]))
    c = codec.compile(btf, s)
    assert c.struct_format == "<B7xQi4x" and struct.calcsize(c.struct_format) == 24
    raw = c.encode({"a": 1, "b": 2, "c": -3})
    assert struct.unpack(c.struct_format, raw) == (1, 2, -3)
    assert c.decode(raw) == {"a": 1, "b": 2, "c": -3}


def test_datasec_and_var(btf):
    i32, _, char, _ = ints(btf)
    pid = btf.add(T.Var("target_pid", btf.add(T.Const("", i32)), 1))
    comm = btf.add(T.Var("comm", btf.add(T.Array("", char, i32, 4)), 1))
    sec = btf.add(T.Datasec(".rodata", 0, [T.VarSecinfo(pid, 0, 4), T.VarSecinfo(comm, 4, 4)]))
    c = codec.compile(btf, sec)
    assert c.size == 8 and c.field_names == ["target_pid", "comm"]
    raw = c.encode({"target_pid": 7, "comm": "sh"})
    assert raw == struct.pack("<i", 7) + b"sh\0\0"
    assert codec.decode(btf, pid, raw) == 7


def test_types_without_values(btf):
    i32 = btf.add(T.Int("int", 4, BTF_INT_SIGNED, 0, 32))
    proto = btf.add(T.FuncProto("", i32, []))
    for tid in (0, proto, btf.add(T.Func("f", proto)), btf.add(T.Fwd("opaque"))):
        with pytest.raises(ObjectError, match="cannot encode/decode"):
            codec.compile(btf, tid)


def test_vmlinux_structs_compile():
    try:
        with open("/sys/kernel/btf/vmlinux", "rb") as f:
            vmlinux = BTF.parse(f.read())
    except OSError:
        pytest.skip("no vmlinux BTF")
    for name in ("task_struct", "sk_buff", "bpf_attr"):
        tid = vmlinux.find(name)[0]
        c = codec.compile(vmlinux, tid)
        assert c.size == vmlinux.size_of(tid)
        value = c.decode(bytes(c.size))
        assert c.encode(value) == bytes(c.size)
