"""USDT without the kernel: .note.stapsdt parsing (on the built test targets, Debian's
python3.11, and structurally malformed notes), the .stapsdt.base adjustment and
address -> file offset translation, argument specs of x86-64, arm64, riscv64 and
s390x, and the struct __bpf_usdt_spec layout against libbpf's <bpf/usdt.bpf.h>."""
from __future__ import annotations

import os
import shutil
import struct

import pytest
from elftools.elf.elffile import ELFFile

from conftest import built
from pybpf import uapi
from pybpf.obj import usdt as un
from pybpf.errors import ObjectError
from pybpf.obj.uprobe import Segment
from pybpf.obj.usdt import ARG_CONST, ARG_REG, ARG_REG_DEREF, ARG_SIB, ArgError, ArgSpec, Note, parse_args, parse_notes

# ------------------------------------------------------------------ notes, structurally


def note(provider: bytes = b"prov", name: bytes = b"probe", args: bytes = b"-4@%edi",
         pc: int = 0x1130, base: int = 0x2004, sema: int = 0, *, owner: bytes = b"stapsdt\0",
         ntype: int = 3, addr: str = "<QQQ", desc: bytes = b"", align: int = 4,
         namesz: int = -1, descsz: int = -1) -> bytes:
    """One ELF note as a linker writes it (sizes may be made to lie)."""
    body = desc or struct.pack(addr, pc, base, sema) + provider + b"\0" + name + b"\0" + \
        args + b"\0"
    head = struct.pack("<III", len(owner) if namesz < 0 else namesz,
                       len(body) if descsz < 0 else descsz, ntype)

    def pad(b: bytes) -> bytes:
        return b + bytes(-len(b) % align)
    return head + pad(owner) + pad(body)


def test_parse_notes_fields_and_order():
    data = note(pc=0x401320, base=0x40201C, sema=0) + \
        note(b"p2", b"n2", b"8@%rax 4@$5", pc=0x401400, sema=0x404038) + \
        note(b"p3", b"noargs", b"")
    got = parse_notes(data)
    assert got == [
        Note("prov", "probe", "-4@%edi", 0x401320, 0x40201C, 0, 0),
        Note("p2", "n2", "8@%rax 4@$5", 0x401400, 0x2004, 0x404038, len(note())),
        Note("p3", "noargs", "", 0x1130, 0x2004, 0, len(note()) + len(note(b"p2", b"n2",
                                                                         b"8@%rax 4@$5"))),
    ]


def test_parse_notes_32bit_big_endian_and_8_aligned():
    be = struct.pack(">III", 8, 4 * 3 + 6, 3) + b"stapsdt\0" + \
        struct.pack(">III", 0x8000, 0x9000, 0xA000) + b"a\0b\0c\0" + b"\0\0"
    assert parse_notes(be, addr_size=4, little_endian=False) == \
        [Note("a", "b", "c", 0x8000, 0x9000, 0xA000, 0)]
    data = note(b"x", b"y", b"1@$1", align=8) + note(b"x", b"z", b"", align=8)
    assert [n.name for n in parse_notes(data, align=8)] == ["y", "z"]


def test_args_starting_with_colon_mean_none():
    assert parse_notes(note(args=b":legacy"))[0].args == ""


@pytest.mark.parametrize("data, offset, message", [
    (note()[:10], 0, "truncated note header"),
    (note() + b"\0" * 5, len(note()), "truncated note header"),
    (note(namesz=400), 0, "name size 400 and description size"),
    (note(descsz=4000), 0, "description size 4000 run past the end"),
    (note(owner=b"GNU\0"), 0, "owner b'GNU' is not 'stapsdt'"),
    (note(ntype=1), 0, "note type 1 is not NT_STAPSDT"),
    (note(desc=b"\1" * 26), 0, "shorter than three addresses"),
    (note(desc=struct.pack("<QQQ", 1, 2, 3) + b"provider-without-nul"), 0,
     "provider is not NUL-terminated"),
    (note(desc=struct.pack("<QQQ", 1, 2, 3) + b"p\0\0args\0"), 0,
     "probe name missing or empty"),
    (note(desc=struct.pack("<QQQ", 1, 2, 3) + b"p\0name-without-nul"), 0,
     "probe name is not NUL-terminated"),
    (note(desc=struct.pack("<QQQ", 1, 2, 3) + b"p\0n\0"), 0, "argument string missing"),
    (note(desc=struct.pack("<QQQ", 1, 2, 3) + b"p\0n\0-4@%eax"), 0,
     "argument string of p:n is not NUL-terminated"),
    (note() + note(ntype=7), len(note()), "note type 7"),
])
def test_malformed_notes_name_the_fault(data, offset, message):
    with pytest.raises(ObjectError, match=message) as e:
        parse_notes(data)
    assert e.value.section == ".note.stapsdt" and e.value.offset == offset


def test_empty_section_has_no_notes():
    assert parse_notes(b"") == []


# ------------------------------------------------------------------ addresses

SEGS = [Segment(0x400000, 0x1000, 0, False), Segment(0x401000, 0x800, 0x1000, True),
        Segment(0x403E00, 0x300, 0x2E00, False)]


def test_resolve_note_translates_to_file_offsets():
    p = un.resolve_note(Note("p", "n", "", 0x401320, 0x40201C, 0x404038, 0), 0x40201C,
                        SEGS, "bin")
    assert (p.address, p.offset, p.semaphore, p.semaphore_offset) == \
        (0x401320, 0x1320, 0x404038, 0x3038)


@pytest.mark.parametrize("base, recorded, want", [
    (0x40201C, 0x40201C, 0x401320),     # not prelinked
    (0x40301C, 0x40201C, 0x402320 - 0x1000 + 0x1000),
    (0x40201C, 0, 0x401320),            # no base recorded: no adjustment
    (0, 0x40201C, 0x401320),            # no .stapsdt.base section
])
def test_stapsdt_base_adjustment(base, recorded, want):
    segs = [Segment(0x401000, 0x2000, 0x1000, True)]
    p = un.resolve_note(Note("p", "n", "", 0x401320, recorded, 0, 0), base, segs, "bin")
    assert p.address == want and p.offset == want - 0x400000


@pytest.mark.parametrize("pc, sema, message", [
    (0x500000, 0, "address 0x500000 is in no loadable segment"),
    (0x400100, 0, "is in a segment of bin that is not executable"),
    (0x401100, 0x600000, "semaphore address 0x600000 is in no file-backed"),
    (0x401100, 0x401200, "semaphore address 0x401200 is in an executable segment"),
])
def test_resolve_note_refuses_bad_addresses(pc, sema, message):
    with pytest.raises(ObjectError, match=message) as e:
        un.resolve_note(Note("p", "n", "", pc, 0, sema, 0x40), 0, SEGS, "bin")
    assert e.value.offset == 0x40


# ------------------------------------------------------------------ the built targets


def _file_byte(path: str, offset: int) -> int:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(1)[0]


def _symbol_offset(path: str, name: str) -> int:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        sym = elf.get_section_by_name(".symtab").get_symbol_by_name(name)[0]
        sec = elf.get_section(sym["st_shndx"])
        return sym["st_value"] - sec["sh_addr"] + sec["sh_offset"]


@pytest.mark.parametrize("binary, shared", [("usdt_target", False), ("usdt_target_pie", True)])
def test_probes_of_the_test_target(binary, shared):
    path = str(built(binary))
    pf = un.read_probes(path)
    assert (pf.machine, pf.elf_class, pf.little_endian, pf.shared) == ("x86_64", 64, True,
                                                                      shared)
    names = [p.full_name for p in pf.probes]
    assert sorted(names) == sorted(["pybpf:regs", "pybpf:mem", "pybpf:consts", "pybpf:multi",
                                    "pybpf:multi", "pybpf:multi", "pybpf:guarded"])
    for p in pf.probes:
        assert _file_byte(path, p.offset) == 0x90, p          # the probe's nop
    consts = pf.find("pybpf", "consts")[0]
    assert consts.args == "-4@$42 -4@$-7 1@$-56 -2@$-300 2@$-1 -1@$-1"
    assert consts.semaphore == 0 and consts.semaphore_offset == 0
    multi = pf.find("pybpf", "multi")
    assert [m.args for m in multi] == ["-4@$1 -4@%edi", "-4@$2 -4@%edi", "-4@$1 -4@%edi"]
    assert len({m.offset for m in multi}) == 3
    guarded = pf.find("pybpf", "guarded")[0]
    assert guarded.semaphore_offset == _symbol_offset(path, "pybpf_guarded_semaphore")
    assert pf.find("pybpf", "nope") == []


def test_probes_of_the_shared_library():
    path = str(built("libusdt_target.so"))
    pf = un.read_probes(path)
    assert pf.shared and [(p.full_name, p.args) for p in pf.probes] == \
        [("pybpf_lib:fire", "-8@%rdi -2@%si")]
    fire = pf.probes[0]
    assert _file_byte(path, fire.offset) == 0x90
    assert fire.semaphore_offset == _symbol_offset(path, "pybpf_lib_fire_semaphore")


def test_probes_of_debian_python():
    path = "/usr/bin/python3.11"
    if not os.path.exists(path):
        pytest.skip("Debian's /usr/bin/python3.11 is not installed")
    pf = un.read_probes(path)
    entry = pf.find("python", "function__entry")
    assert len(entry) == 1 and entry[0].semaphore and entry[0].semaphore_offset
    assert _file_byte(path, entry[0].offset) == 0x90
    assert [a.size for a in parse_args(entry[0].args, "x86_64")] == [8, 8, 4]


def test_a_binary_without_probes_and_a_relocatable_object():
    with pytest.raises(ObjectError, match="ELF type ET_REL has no USDT probes"):
        un.read_probes(str(built("usdt_args.bpf.o")))
    assert un.read_probes("/bin/true").probes == []


def _corrupt_copy(tmp_path, patch) -> str:
    src = str(built("usdt_target"))
    dst = str(tmp_path / f"usdt_target_bad_{os.getpid()}")
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        elf = ELFFile(f)
        sec = elf.get_section_by_name(".note.stapsdt")
        off = sec["sh_offset"]
        patch(f, off)
    return dst


def test_corrupt_note_in_a_file(tmp_path):
    def lie(f, off):           # the first note's descsz runs past the section
        f.seek(off + 4)
        f.write(struct.pack("<I", 0x7FFF0000))
    with pytest.raises(ObjectError, match=r"description size 2147418112 run past the end.*"
                                          r"section \.note\.stapsdt, offset 0x0"):
        un.read_probes(_corrupt_copy(tmp_path, lie))

    def owner(f, off):
        f.seek(off + 12)
        f.write(b"stapsdX")
    with pytest.raises(ObjectError, match="owner b'stapsdX'"):
        un.read_probes(_corrupt_copy(tmp_path, owner))


@pytest.mark.parametrize("fields, message", [
    ({"sh_size": 1 << 62}, r"\.note\.stapsdt of 4611686018427387904 bytes at file offset "
                           r"0x[0-9a-f]+ runs past the end of the file"),
    ({"sh_size": (1 << 64) - 8}, "of 18446744073709551608 bytes at file offset"),
    ({"sh_offset": (1 << 63) - 8}, "bytes at file offset 0x7ffffffffffffff8 runs past"),
    ({"sh_flags": 0x802}, r"\.note\.stapsdt is compressed \(SHF_COMPRESSED\)")])
def test_note_section_header_lies_refused_before_reading(tmp_path, fields, message):
    from hostile import set_shdr
    raw = set_shdr(built("usdt_target").read_bytes(), ".note.stapsdt", **fields)
    path = tmp_path / f"usdt_lying_{os.getpid()}"
    path.write_bytes(raw)
    with pytest.raises(ObjectError, match=message):
        un.read_probes(str(path))


def test_read_probes_missing_file():
    with pytest.raises(ObjectError, match="cannot open /nonexistent"):
        un.read_probes("/nonexistent/usdt")


# ------------------------------------------------------------------ argument specs

X86 = [
    ("-4@%edi", ArgSpec(ARG_REG, 4, True, 0, "edi", 112)),
    ("8@%rax", ArgSpec(ARG_REG, 8, False, 0, "rax", 80)),
    ("-2@%ax", ArgSpec(ARG_REG, 2, True, 0, "ax", 80)),
    ("1@%al", ArgSpec(ARG_REG, 1, False, 0, "al", 80)),
    ("-1@%sil", ArgSpec(ARG_REG, 1, True, 0, "sil", 104)),
    ("4@%r9d", ArgSpec(ARG_REG, 4, False, 0, "r9d", 64)),
    ("2@%r15w", ArgSpec(ARG_REG, 2, False, 0, "r15w", 0)),
    ("1@%r8b", ArgSpec(ARG_REG, 1, False, 0, "r8b", 72)),
    ("8@%rip", ArgSpec(ARG_REG, 8, False, 0, "rip", 128)),
    ("8@%rsp", ArgSpec(ARG_REG, 8, False, 0, "rsp", 152)),
    ("-4@$5", ArgSpec(ARG_CONST, 4, True, 5)),
    ("4@$-9", ArgSpec(ARG_CONST, 4, False, -9)),
    ("8@$18446744073709551615", ArgSpec(ARG_CONST, 8, False, (1 << 64) - 1)),
    ("8@-8(%rbp)", ArgSpec(ARG_REG_DEREF, 8, False, -8, "rbp", 32)),
    ("8@16(%rsp)", ArgSpec(ARG_REG_DEREF, 8, False, 16, "rsp", 152)),
    ("-4@-1204(%rbp)", ArgSpec(ARG_REG_DEREF, 4, True, -1204, "rbp", 32)),
    ("-1@(%rdi)", ArgSpec(ARG_REG_DEREF, 1, True, 0, "rdi", 112)),
    ("2@ 4 ( %rdi )", ArgSpec(ARG_REG_DEREF, 2, False, 4, "rdi", 112)),
    ("1@-96(%rbp,%rax,8)", ArgSpec(ARG_SIB, 1, False, -96, "rbp", 32, "rax", 80, 3)),
    ("-4@(%rbx,%rcx,4)", ArgSpec(ARG_SIB, 4, True, 0, "rbx", 40, "rcx", 88, 2)),
    ("8@16(%rsp,%rdx)", ArgSpec(ARG_SIB, 8, False, 16, "rsp", 152, "rdx", 96, 0)),
    ("2@(%r12,%r13)", ArgSpec(ARG_SIB, 2, False, 0, "r12", 24, "r13", 16, 0)),
]
ARM64 = [
    ("-4@x0", ArgSpec(ARG_REG, 4, True, 0, "x0", 0)),
    ("8@x30", ArgSpec(ARG_REG, 8, False, 0, "x30", 240)),
    ("8@sp", ArgSpec(ARG_REG, 8, False, 0, "sp", 248)),
    ("8@[sp, 16]", ArgSpec(ARG_REG_DEREF, 8, False, 16, "sp", 248)),
    ("-4@[x29, -20]", ArgSpec(ARG_REG_DEREF, 4, True, -20, "x29", 232)),
    ("-2@[x1]", ArgSpec(ARG_REG_DEREF, 2, True, 0, "x1", 8)),
    ("4@5", ArgSpec(ARG_CONST, 4, False, 5)),
    ("-8@-3", ArgSpec(ARG_CONST, 8, True, -3)),
]
RISCV64 = [
    ("-4@a0", ArgSpec(ARG_REG, 4, True, 0, "a0", 80)),
    ("8@ra", ArgSpec(ARG_REG, 8, False, 0, "ra", 8)),
    ("8@sp", ArgSpec(ARG_REG, 8, False, 0, "sp", 16)),
    ("8@s11", ArgSpec(ARG_REG, 8, False, 0, "s11", 216)),
    ("8@t6", ArgSpec(ARG_REG, 8, False, 0, "t6", 248)),
    ("8@8(sp)", ArgSpec(ARG_REG_DEREF, 8, False, 8, "sp", 16)),
    ("-8@-88(s0)", ArgSpec(ARG_REG_DEREF, 8, True, -88, "s0", 64)),
    ("4@5", ArgSpec(ARG_CONST, 4, False, 5)),
]
S390X = [
    ("-2@-28(%r15)", ArgSpec(ARG_REG_DEREF, 2, True, -28, "%r15", 136)),
    ("-8@%r0", ArgSpec(ARG_REG, 8, True, 0, "%r0", 16)),
    ("4@71", ArgSpec(ARG_CONST, 4, False, 71)),
]


def _same(got: ArgSpec, want: ArgSpec) -> bool:
    return got == want.replace(text=got.text)


@pytest.mark.parametrize("arch, text, want", [("x86_64", t, w) for t, w in X86]
                         + [("aarch64", t, w) for t, w in ARM64]
                         + [("riscv64", t, w) for t, w in RISCV64]
                         + [("s390x", t, w) for t, w in S390X])
def test_arg_spec_tables(arch, text, want):
    got = parse_args(text, arch)
    assert len(got) == 1 and _same(got[0], want), got
    assert got[0].text == text.strip()
    assert got[0].bitshift == 64 - 8 * want.size


def test_arg_string_with_many_args_and_spacing():
    text = "  -4@-1204(%rbp) -4@%edi -8@-1216(%rbp) -8@%r8 -4@$5 -8@%r9 8@%rdx 8@%r10 " \
           "-4@$-9 -2@%cx -2@%ax -1@%sil  "
    got = parse_args(text, "x86_64")
    assert [a.text for a in got] == text.split()
    assert [(a.kind, a.size, a.signed) for a in got][:5] == [
        (ARG_REG_DEREF, 4, True), (ARG_REG, 4, True), (ARG_REG_DEREF, 8, True),
        (ARG_REG, 8, True), (ARG_CONST, 4, True)]
    assert parse_args("", "x86_64") == [] and parse_args("   ", "aarch64") == []
    assert [a.reg for a in parse_args("-4@[sp, 96] 8@x4 4@[x2]", "aarch64")] == \
        ["sp", "x4", "x2"]


@pytest.mark.parametrize("arch, text, message", [
    ("x86_64", "-4@%xyz", r"argument #0 '-4@%xyz': unknown x86_64 register 'xyz'"),
    ("x86_64", "-4@%eax 3@%ebx", r"argument #1 '3@%ebx': size 3 is not 1, 2, 4 or 8"),
    ("x86_64", "16@%rax", "size 16"),
    ("x86_64", "-4@counter(%rip)", r"argument #0 '-4@counter\(%rip\)': not a x86_64 USDT"),
    ("x86_64", "%eax", "not a x86_64 USDT argument spec"),
    ("x86_64", "4@$0x10", "not a x86_64 USDT argument spec"),
    ("x86_64", "1@(%rbp,%rax,3)", "scale 3 is not 1, 2, 4 or 8"),
    ("x86_64", "1@(%rbp,%foo,2)", "unknown x86_64 register 'foo'"),
    ("x86_64", "8@$18446744073709551616", "does not fit 64 bits"),
    ("x86_64", " ".join(["4@$1"] * 13), "more than 12 arguments"),
    # past int()'s 4300 digits: still an ArgError, not int()'s ValueError
    ("x86_64", "4@$" + "9" * 5000, r"argument #0 '4@\$9{37}'\.\.\. \(5003 characters\): "
                                   "a number too long for 64 bits"),
    ("x86_64", "4@-" + "1" * 5000 + "(%rsp)", r"\(5009 characters\): a number too long"),
    ("aarch64", "9" * 5000 + "@x1", r"\(5003 characters\): a number too long"),
    ("aarch64", "-4@w0", "unknown aarch64 register 'w0'"),
    ("aarch64", "8@x31", "unknown aarch64 register 'x31'"),
    ("aarch64", "8@[sp, #16]", "not a aarch64 USDT argument spec"),
    ("riscv64", "8@pc", "unknown riscv64 register 'pc'"),
    ("riscv64", "8@8(%sp)", "not a riscv64"),
    ("s390x", "8@%r16", "unknown s390x register '%r16'"),
    ("mips", "4@5", "USDT arguments of mips binaries are not supported"),
])
def test_bad_arg_specs_name_the_argument(arch, text, message):
    with pytest.raises(ArgError, match=message):
        parse_args(text, arch)


# ------------------------------------------------------------------ the BPF side's layout


def test_packed_spec_matches_usdt_bpf_h_layout():
    """Offsets of struct __bpf_usdt_spec / __bpf_usdt_arg_spec in the BTF of an object
    built against <bpf/usdt.bpf.h>, and our packing of each field."""
    import pybpf
    obj = pybpf.BPFObject.open(str(built("usdt_args.bpf.o")))
    btf = obj.btf
    spec = btf[btf.find_one("__bpf_usdt_spec", uapi.BTF_KIND_STRUCT)]
    arg = btf[btf.find_one("__bpf_usdt_arg_spec", uapi.BTF_KIND_STRUCT)]
    assert spec.size == un.SPEC_SIZE and arg.size == un.ARG_SPEC_SIZE
    offs = {m.name: m.bit_offset // 8 for m in spec.members}
    assert offs == {"args": 0, "usdt_cookie": 192, "arg_cnt": 200}
    aoffs = {m.name: m.bit_offset // 8 for m in arg.members}
    assert aoffs == {"val_off": 0, "arg_type": 8, "reg_off": 12, "arg_signed": 14,
                     "arg_bitshift": 15}
    args = parse_args("-4@-1204(%rbp) 1@$-56 8@%rdx", "x86_64")
    raw = un.pack_spec(args, cookie=0xDEADBEEF)
    assert len(raw) == un.SPEC_SIZE
    assert struct.unpack_from("<QIh?b", raw, 0) == ((1 << 64) - 1204, ARG_REG_DEREF, 32, True,
                                                   32)
    assert struct.unpack_from("<QIh?b", raw, 16) == ((1 << 64) - 56, ARG_CONST, 0, False, 56)
    assert struct.unpack_from("<QIh?b", raw, 32) == (0, ARG_REG, 96, False, 0)
    assert raw[48:192] == bytes(144)
    assert struct.unpack_from("<Qh", raw, 192) == (0xDEADBEEF, 3)
    with pytest.raises(ValueError, match="15 USDT arguments"):
        un.pack_spec(args * 5)


def test_sib_packing_as_libbpf_bitfields():
    """libbpf 1.6 packs SIB into arg_type's word: type:8, idx_reg_off:12, scale:4."""
    (a,) = parse_args("1@-96(%rbp,%rax,8)", "x86_64")
    word = struct.unpack_from("<I", a.pack(), 8)[0]
    assert (word & 0xFF, word >> 8 & 0xFFF, word >> 20 & 0xF) == (ARG_SIB, 80, 3)


# ------------------------------------------------------------------ /proc/PID/maps

MAPS = """\
00400000-00401000 r--p 00000000 08:01 123 /opt/app
00401000-00402000 r-xp 00001000 08:01 123 /opt/app
7f00aa000000-7f00aa001000 r--p 00000000 08:01 456 /opt/lib/libx.so
7f00aa001000-7f00aa003000 r-xp 00001000 08:01 456 /opt/lib/libx.so
7f00aa003000-7f00aa004000 rw-p 00003000 08:01 456 /opt/lib/libx.so
7f00ab000000-7f00ab001000 rw-p 00000000 00:00 0
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
"""


def test_runtime_addresses_from_proc_maps():
    maps = un.executable_mappings(MAPS, "/opt/lib/libx.so")
    assert maps == [un.Mapping(0x7F00AA001000, 0x7F00AA003000, 0x1000)]
    assert un.runtime_address(0x110F, maps) == 0x7F00AA00110F
    assert un.runtime_address(0x2FFF, maps) == 0x7F00AA002FFF
    assert un.runtime_address(0x3000, maps) is None and un.runtime_address(0x10, maps) is None
    assert un.executable_mappings(MAPS, "/opt/other") == []


# ------------------------------------------------------------------ python -m pybpf usdt


def test_cli_lists_probe_sites(capsys):
    from pybpf.cli.main import main
    path = str(built("usdt_target"))
    assert main(["usdt", path, "pybpf:m*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}: x86_64 executable, 4 of 7 probe sites"
    assert out[1].split() == ["PROBE", "ADDRESS", "OFFSET", "SEMAPHORE", "ARGS"]
    assert [line.split()[0] for line in out[2:]] == ["pybpf:mem"] + ["pybpf:multi"] * 3
    assert out[3].split()[4:] == ["-4@$1", "-4@%edi"]


def test_cli_json_and_no_match(capsys):
    import json
    from pybpf.cli.main import main
    lib = str(built("libusdt_target.so"))
    assert main(["usdt", lib, "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    pf = un.read_probes(lib)
    assert row["offset"] == pf.probes[0].offset and row["semaphore_offset"] == \
        pf.probes[0].semaphore_offset
    assert row["arg_specs"] == [
        {"spec": "-8@%rdi", "kind": "reg", "size": 8, "signed": True, "reg": "rdi"},
        {"spec": "-2@%si", "kind": "reg", "size": 2, "signed": True, "reg": "si"}]
    assert main(["usdt", lib, "nothing:*"]) == 1
    assert "no USDT probe matching 'nothing:*'" in capsys.readouterr().err
