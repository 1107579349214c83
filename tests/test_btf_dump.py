"""BTF as text: bpftool's raw format, and C headers (vmlinux.h) that clang compiles
with the same sizes and offsets, that build every bpf/*.bpf.c, and whose exec
snoop behaves as the bpftool-built one."""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time
from typing import Dict, List

import pytest

from pybpf.btf import BTF
from pybpf.btf import types as T
from pybpf.btf.cdump import CDumper, dump_header, is_packed, align_of
from pybpf.btf.rawdump import dump_raw
from pybpf.obj.elf import read_elf
from pybpf.errors import ObjectError
from pybpf.uapi import BTF_INT_BOOL, BTF_INT_SIGNED

from conftest import BUILD, ROOT, built

CLANG = shutil.which("clang")
BPFTOOL = shutil.which("bpftool") or ("/usr/sbin/bpftool"
                                      if os.path.exists("/usr/sbin/bpftool") else None)
VMLINUX = "/sys/kernel/btf/vmlinux"
needs_clang = pytest.mark.skipif(CLANG is None, reason="clang (a build-time tool) missing")


def object_btf(path: pathlib.Path) -> BTF:
    return BTF.parse(read_elf(str(path)).section(".BTF").data)


def compiles(source: str, tmp_path: pathlib.Path, extra: str = "") -> None:
    """clang -fsyntax-only for the BPF target; fails the test with clang's errors."""
    src = tmp_path / "t.c"
    src.write_text(source + extra)
    res = subprocess.run([CLANG, "-target", "bpf", "-fsyntax-only", "-Wall", "-Werror",
                          "-Wno-unused-function", "-Wno-pragma-clang-attribute", str(src)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[:4000] + "\n----\n" + source[:3000]


# ------------------------------------------------------------------ raw format

def test_raw_dump_equals_bpftool_on_every_object():
    if BPFTOOL is None:
        pytest.skip("bpftool (a test-time reference) missing")
    objs = sorted(BUILD.glob("*.bpf.o"))
    assert len(objs) >= 20
    for obj in objs:
        want = subprocess.run([BPFTOOL, "btf", "dump", "file", str(obj), "format", "raw"],
                              capture_output=True, text=True, check=True).stdout
        got = "".join(line + "\n" for line in dump_raw(object_btf(obj)))
        assert got == want, obj.name


def test_raw_dump_of_every_kind():
    btf = BTF()
    i = btf.add(T.Int("int", 4, BTF_INT_SIGNED, 0, 32))
    s = btf.add(T.Struct("s", 8, [T.Member("a", i, 0), T.Member("b", i, 32, 3)]))
    e = btf.add(T.Enum64("e", 8, [("NEG", -1), ("BIG", 1 << 40)], signed=True))
    tag = btf.add(T.TypeTag("user", i))
    btf.add(T.DeclTag("dt", s, 1))
    var = btf.add(T.Var("v", tag, 1))
    btf.add(T.Datasec(".data", 4, [T.VarSecinfo(var, 0, 4)]))
    btf.add(T.FuncProto("", i, [T.Param("x", e), T.Param("", 0)]))
    assert list(dump_raw(btf)) == [
        "[1] INT 'int' size=4 bits_offset=0 nr_bits=32 encoding=SIGNED",
        "[2] STRUCT 's' size=8 vlen=2",
        "\t'a' type_id=1 bits_offset=0",
        "\t'b' type_id=1 bits_offset=32 bitfield_size=3",
        "[3] ENUM64 'e' encoding=SIGNED size=8 vlen=2",
        "\t'NEG' val=-1LL",
        "\t'BIG' val=1099511627776ULL",
        "[4] TYPE_TAG 'user' type_id=1",
        "[5] DECL_TAG 'dt' type_id=2 component_idx=1",
        "[6] VAR 'v' type_id=4, linkage=global",
        "[7] DATASEC '.data' size=4 vlen=1",
        "\ttype_id=6 offset=0 size=4 (VAR 'v')",
        "[8] FUNC_PROTO '(anon)' ret_type_id=1 vlen=2",
        "\t'x' type_id=3",
        "\t'(anon)' type_id=0",
    ]


# ------------------------------------------------------------------ C: small BTF

@pytest.fixture
def layout_btf() -> BTF:
    """Types whose C spelling is hard: bitfields, padding, packing, alignment gaps,
    anonymous members, cycles through pointers, function pointers, tags, collisions."""
    b = BTF()
    i32 = b.add(T.Int("int", 4, BTF_INT_SIGNED, 0, 32))
    u8 = b.add(T.Int("unsigned char", 1, 0, 0, 8))
    u16 = b.add(T.Int("short unsigned int", 2, 0, 0, 16))
    u64 = b.add(T.Int("long long unsigned int", 8, 0, 0, 64))
    char = b.add(T.Int("char", 1, BTF_INT_SIGNED, 0, 8))
    boolean = b.add(T.Int("_Bool", 1, BTF_INT_BOOL, 0, 8))
    idx = b.add(T.Int("__ARRAY_SIZE_TYPE__", 4, 0, 0, 32))
    # typedef chain: u32_t -> __u32 -> unsigned int
    uint = b.add(T.Int("unsigned int", 4, 0, 0, 32))
    u32 = b.add(T.Typedef("__u32", uint))
    u32_t = b.add(T.Typedef("u32_t", u32))
    # a linked list (cycle through a pointer) and two structs pointing at each other
    node = b.add(T.Struct("node", 16, []))
    node_ptr = b.add(T.Pointer("", node))
    b[node].members = [T.Member("next", node_ptr, 0), T.Member("val", i32, 64)]
    a = b.add(T.Struct("a", 8, []))
    bb = b.add(T.Struct("b", 16, []))
    b[a].members = [T.Member("to_b", b.add(T.Pointer("", bb)), 0)]
    b[bb].members = [T.Member("to_a", b.add(T.Pointer("", a)), 0),
                     T.Member("embedded_a", a, 64)]
    # bitfields with a gap, and a member after them
    b.add(T.Struct("bits", 16, [
        T.Member("f1", uint, 0, 3), T.Member("f2", uint, 3, 7), T.Member("f3", u64, 10, 40),
        T.Member("flag", boolean, 50, 1), T.Member("after", u16, 96)]))
    # packed: an int at offset 1, size 5
    b.add(T.Struct("packed", 5, [T.Member("c", u8, 0), T.Member("i", i32, 8)]))
    # "aligned(64)": the second member 64 bytes in, size 128
    b.add(T.Struct("aligned", 128, [T.Member("x", i32, 0), T.Member("y", u64, 512)]))
    # anonymous union and struct members, an anonymous enum member
    anon_s = b.add(T.Struct("", 8, [T.Member("lo", uint, 0), T.Member("hi", uint, 32)]))
    anon_u = b.add(T.Union("", 8, [T.Member("", anon_s, 0), T.Member("all", u64, 0)]))
    anon_e = b.add(T.Enum("", 4, [("MODE_A", 0), ("MODE_B", 7)]))
    b.add(T.Struct("with_anon", 16, [T.Member("", anon_u, 0), T.Member("mode", anon_e, 64),
                                     T.Member("tail", u32_t, 96)]))
    # enums: signed, 64-bit, one byte, a top-level anonymous one
    b.add(T.Enum("sgn", 4, [("S_NEG", -5), ("S_POS", 5)], signed=True))
    b.add(T.Enum64("wide", 8, [("W_BIG", 1 << 40), ("W_ONE", 1)]))
    b.add(T.Enum64("wide_small", 8, [("WS_ONE", 1)]))
    b.add(T.Enum("tiny", 1, [("T0", 0), ("T1", 255)]))
    b.add(T.Enum("", 4, [("ANON_CONST", 1234)]))
    # name collisions: a second struct "node", a second enumerator "S_POS"
    b.add(T.Struct("node", 4, [T.Member("other", i32, 0)]))
    b.add(T.Enum("sgn2", 4, [("S_POS", 6)]))
    # function prototypes, pointers to them, arrays of them, varargs
    proto = b.add(T.FuncProto("", i32, [T.Param("x", i32), T.Param("p", node_ptr)]))
    varargs = b.add(T.FuncProto("", 0, [T.Param("fmt", b.add(T.Pointer("", b.add(
        T.Const("", char))))), T.Param("", 0)]))
    fn_ptr = b.add(T.Pointer("", proto))
    b.add(T.Typedef("handler_t", fn_ptr))
    b.add(T.Typedef("logger_t", b.add(T.Pointer("", varargs))))
    fn_arr = b.add(T.Array("", fn_ptr, idx, 4))
    arr3 = b.add(T.Array("", i32, idx, 3))
    const_ptr = b.add(T.Const("", b.add(T.Pointer("", char))))
    tagged = b.add(T.Pointer("", b.add(T.TypeTag("user", char))))
    b.add(T.Struct("ops", 64, [
        T.Member("table", fn_arr, 0), T.Member("arr_ptr", b.add(T.Pointer("", arr3)), 256),
        T.Member("name", const_ptr, 320), T.Member("ubuf", tagged, 384),
        T.Member("vol", b.add(T.Volatile("", i32)), 448),
        T.Member("flex", b.add(T.Array("", u8, idx, 0)), 480 + 0)]))
    b.add(T.DeclTag("hot", b.find_one("ops"), -1))
    b.add(T.DeclTag("member_tag", b.find_one("ops"), 1))
    b.add(T.Fwd("opaque", False))
    b.add(T.Fwd("opaque_u", True))
    b.add(T.Var("ignored_var", i32, 1))
    return b


SIZES = {"struct node": 16, "struct a": 8, "struct b": 16, "struct bits": 16,
         "struct packed": 5, "struct aligned": 128, "struct with_anon": 16,
         "struct node___2": 4, "enum tiny": 1, "enum wide": 8, "enum wide_small": 8,
         "enum sgn": 4, "struct ops": 64, "handler_t": 8}
OFFSETS = {("struct node", "val"): 8, ("struct b", "embedded_a"): 8,
           ("struct bits", "after"): 12, ("struct packed", "i"): 1,
           ("struct aligned", "y"): 64, ("struct with_anon", "mode"): 8,
           ("struct with_anon", "hi"): 4, ("struct with_anon", "tail"): 12,
           ("struct ops", "arr_ptr"): 32, ("struct ops", "name"): 40,
           ("struct ops", "vol"): 56, ("struct ops", "flex"): 60}


def static_asserts(sizes: Dict[str, int], offsets: Dict[tuple, int]) -> str:
    lines = [f"_Static_assert(sizeof({t}) == {n}, \"{t}\");" for t, n in sizes.items()]
    lines += [f"_Static_assert(__builtin_offsetof({t}, {m}) == {n}, \"{t}.{m}\");"
              for (t, m), n in offsets.items()]
    return "\n" + "\n".join(lines) + "\n"


@needs_clang
def test_small_btf_compiles_with_its_sizes_and_offsets(layout_btf, tmp_path):
    header = dump_header(layout_btf, "__T_H__")
    extra = static_asserts(SIZES, OFFSETS) + (
        "enum { CHECK_S = S_NEG + S_POS + S_POS___2 + ANON_CONST + MODE_B + W_BIG };\n"
        "_Static_assert(W_BIG == 1099511627776ULL, \"enum64\");\n"
        "_Static_assert(S_NEG == -5, \"signed\");\n"
        "struct bits bits_check = { .f1 = 7, .f2 = 127, .flag = 1 };\n"
        "handler_t h; logger_t lg; struct opaque *o; union opaque_u *ou;\n"
        "int use(struct ops *p) { return p->table[0](1, 0) + (*p->arr_ptr)[2]; }\n")
    compiles(header, tmp_path, extra)
    # what the header says, beyond compiling
    assert "struct packed {\n\tunsigned char c;\n\tint i;\n} __attribute__((packed));" in header
    assert "} __attribute__((mode(byte)));" in header            # enum tiny
    assert "int (*table[4])(int, struct node *);" in header
    assert 'int (*arr_ptr)[3] __btf_decl_tag("member_tag");' in header
    assert '} __btf_decl_tag("hot");' in header
    assert "char * const name;" in header
    assert 'char __btf_type_tag("user") *ubuf;' in header
    assert "typedef void (*logger_t)(const char *, ...);" in header
    assert "struct node___2 {" in header and "\tS_POS___2 = 6," in header
    assert "ignored_var" not in header
    assert "#pragma clang attribute push (__attribute__((preserve_access_index))" in header
    # a struct is defined before it is embedded; pointers only need a forward decl
    assert header.index("struct a {") < header.index("struct b {")
    assert header.index("struct b;") < header.index("struct a {")
    assert header.count("struct node {") == 1


def test_packed_and_alignment_detection(layout_btf):
    b = layout_btf
    assert is_packed(b, b[b.find_one("packed")])
    assert not is_packed(b, b[b.find_one("aligned")])
    assert align_of(b, b.find_one("aligned")) == 8
    assert align_of(b, b.find_one("packed")) == 1


def test_padding_and_bitfields_text(layout_btf):
    header = CDumper(layout_btf).dump()
    bits = header[header.index("struct bits {"):]
    bits = bits[:bits.index("};") + 2]
    assert bits == ("struct bits {\n\tunsigned int f1: 3;\n\tunsigned int f2: 7;\n"
                    "\tlong long unsigned int f3: 40;\n\t_Bool flag: 1;\n\tint: 32;\n"
                    "\tshort unsigned int after;\n};")
    aligned = header[header.index("struct aligned {"):]
    assert aligned.startswith("struct aligned {\n\tint x;\n" + "\tlong: 64;\n" * 7 +
                              "\tlong long unsigned int y;\n" + "\tlong: 64;\n" * 7 + "};")


def test_a_struct_that_contains_itself_is_refused():
    b = BTF()
    s = b.add(T.Struct("loop", 8, []))
    b[s].members = [T.Member("self", s, 0)]
    with pytest.raises(ObjectError, match="contains itself by value"):
        CDumper(b).dump()


@pytest.mark.parametrize("name, size, bit, message", [
    ("flowi4", 56, 4286578752, r"BTF type 2 \(struct flowi4\): member 'a' at bit 4286578752 "
                               r"lies past its 56 bytes"),
    ("wide", 0xFFFFFFFF, 0, r"BTF type 2 \(struct wide\): a gap of 4294967291 bytes between "
                            r"members, more than the 1048576"),
])
def test_members_past_the_struct_and_huge_gaps_are_refused(name, size, bit, message):
    """Padding is a line per 64 bits: a member offset of 2^32 bits (a corrupted
    object) or a 4 GiB empty struct would be millions of lines, not a header."""
    b = BTF()
    i = b.add(T.Int("int", 4, 0, 0, 32))
    b.add(T.Struct(name, size, [T.Member("a", i, bit)]))
    with pytest.raises(ObjectError, match=message):
        dump_header(b, "G")


def test_a_flexible_array_at_the_end_is_no_gap():
    b = BTF()
    i = b.add(T.Int("int", 4, 0, 0, 32))
    tail = b.add(T.Array("", i, i, 0))
    b.add(T.Struct("flex", 4, [T.Member("n", i, 0), T.Member("items", tail, 32)]))
    assert "int items[0];" in dump_header(b, "G")


def test_a_typedef_loop_is_refused():
    b = BTF()
    first = b.add(T.Typedef("a_t", 0))
    b[first].type = b.add(T.Typedef("b_t", b.add(T.Const("", first))))
    with pytest.raises(ObjectError, match="nested too deeply"):
        CDumper(b).dump()


def test_dump_is_deterministic(layout_btf):
    assert CDumper(layout_btf).dump() == CDumper(layout_btf).dump()


@needs_clang
def test_every_object_btf_compiles_as_c(tmp_path):
    """Program BTF (maps' anonymous structs, DATASECs skipped, kernel context types)."""
    for obj in sorted(BUILD.glob("*.bpf.o")):
        compiles(dump_header(object_btf(obj), "__OBJ_H__"), tmp_path)


# ------------------------------------------------------------------ C: vmlinux.h

@pytest.fixture(scope="module")
def our_vmlinux_h():
    if not os.access(VMLINUX, os.R_OK):
        pytest.skip(f"{VMLINUX} not readable (kernel without CONFIG_DEBUG_INFO_BTF)")
    from pybpf.btf import kernel
    tmp = tempfile.mkdtemp(prefix=f"pybpf-vmlinux-{os.getpid()}-")
    path = pathlib.Path(tmp, "vmlinux.h")
    path.write_text(dump_header(kernel.vmlinux()))
    yield path
    shutil.rmtree(tmp)


def test_vmlinux_h_equals_bpftool_format_c():
    """The same types, names (___N), order, padding and spelling as bpftool 7.1's
    vmlinux.h, but for what newer libbpf does too: 1-byte enums get
    mode(byte), empty records are written {}."""
    if BPFTOOL is None or not os.access(VMLINUX, os.R_OK):
        pytest.skip("bpftool (a test-time reference) or vmlinux BTF missing")
    from pybpf.btf import kernel
    theirs = subprocess.run([BPFTOOL, "btf", "dump", "file", VMLINUX, "format", "c"],
                            capture_output=True, text=True, check=True).stdout
    start = theirs.index("#endif\n\n", theirs.index("#pragma clang attribute push")) + 8
    body = re.sub(r"\{\n\t*\}", "{}", theirs[start:theirs.rindex("#ifndef BPF_NO_PRESERVE")])
    ours = CDumper(kernel.vmlinux()).dump()
    assert ours.count(" __attribute__((mode(byte)))") >= 1
    assert ours.replace(" __attribute__((mode(byte)))", "") == body


def _build(include: pathlib.Path, names: List[str]) -> str:
    """Build bpf/NAME.bpf.c into ``include`` with the Makefile's own rules and flags
    (per-object compilers and options included), against ``include``/vmlinux.h."""
    res = subprocess.run(["make", "-s", "-j2", f"BUILD={include}", "-o", str(include / "vmlinux.h")]
                         + [str(include / n) for n in names], cwd=ROOT, capture_output=True,
                         text=True)
    return res.stderr if res.returncode else ""


@needs_clang
def test_every_bpf_program_builds_against_our_vmlinux_h(our_vmlinux_h):
    """All of bpf/*.bpf.c, two builds at a time, and the code is the code that
    bpftool's vmlinux.h gives (instructions equal, section by section)."""
    include = our_vmlinux_h.parent
    sources = sorted((ROOT / "bpf").glob("*.bpf.c"))
    assert len(sources) >= 20
    assert _build(include, [s.name.replace(".c", ".o") for s in sources]) == ""
    differ: List[str] = []
    for src in sources:
        name = src.name.replace(".c", ".o")
        ours, theirs = read_elf(str(include / name)), read_elf(str(built(name)))
        for sec in theirs.sections:
            if sec.is_exec and ours.section(sec.name).data != sec.data:
                differ.append(f"{name}:{sec.name}")
    assert not differ


@needs_clang
def test_exec_snoop_built_against_our_header_reports_execs(kernel, our_vmlinux_h):
    import pybpf
    include = our_vmlinux_h.parent
    obj_path = include / "exec.bpf.o"
    assert _build(include, [obj_path.name]) == ""
    probe = include / f"probe-{os.getpid()}"
    shutil.copy("/bin/true", probe)
    seen: List[str] = []
    with pybpf.BPFObject.open(str(obj_path)) as obj:
        obj.load()
        obj.attach()
        rb = pybpf.RingBuffer(obj.maps["rb"], lambda d: seen.append(
            bytes(d[20:532]).split(b"\0", 1)[0].decode()))
        subprocess.run([str(probe)], check=True)
        deadline = time.monotonic() + 10
        while str(probe) not in seen and time.monotonic() < deadline:
            rb.poll(timeout_ms=100)
        rb.close()
    assert str(probe) in seen
