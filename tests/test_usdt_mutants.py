"""USDT notes and argument specs, the cases the mutants showed untested (no root):
exact messages and edges of note parsing, every x86-64 register against the kernel's
struct pt_regs, the 64-bit value and offset ranges, scales, big-endian packing,
12-argument specs, ELF files patched structurally (other machines, a non-NOTE
section, a section past the end of the file, no PT_LOAD, a prelinked base),
unreadable and non-ELF files, and /proc/PID/maps edge lines."""
from __future__ import annotations

import os
import shutil
import struct

import pytest
from elftools.elf.elffile import ELFFile

from conftest import built
from pybpf.errors import ObjectError
from pybpf.obj import usdt as un
from pybpf.obj.usdt import ARG_CONST, ARG_REG, ARG_REG_DEREF, ARG_SIB, ArgError, ArgSpec, \
    parse_args, parse_notes

from test_usdt_notes import MAPS, note

ADDRS = struct.pack("<QQQ", 1, 2, 3)


# ------------------------------------------------------------------ notes


@pytest.mark.parametrize("desc, message", [
    (ADDRS + b"p\0", r"^USDT note: description of 26 bytes is shorter than three addresses "
                     r"and three strings \(section \.note\.stapsdt, offset 0x0\)$"),
    (ADDRS + b"p\0n", r"^USDT note: probe name is not NUL-terminated"),
    (ADDRS + b"pp\0", r"^USDT note: provider 'pp': probe name missing or empty"),
    (ADDRS + b"p\0n\0", r"^USDT note: probe p:n: argument string missing"),
])
def test_description_edges(desc, message):
    with pytest.raises(ObjectError, match=message):
        parse_notes(note(desc=desc))


def test_truncated_header_message():
    with pytest.raises(ObjectError, match=r"^USDT note: truncated note header \(5 of 12 "
                       r"bytes\) \(section \.note\.stapsdt, offset 0x40\)$"):
        parse_notes(note() + bytes(5))
    assert len(note()) == 0x40


def test_a_note_that_ends_exactly_at_the_section_end():
    """The last note's padding may be missing; its description may end at the end."""
    data = note(args=b"8@%rax")                  # 24 + 5 + 6 + 7 = 42: two bytes of padding
    assert len(data) == 12 + 8 + 44
    got = parse_notes(data[:-2])
    assert [(n.name, n.args) for n in got] == [("probe", "8@%rax")]
    with pytest.raises(ObjectError, match=r"name size 8 and description size 42 run past "
                       r"the end of the section \(61 bytes\)"):
        parse_notes(data[:-3])


def test_note_alignment_other_than_8_is_4():
    data = note(b"x", b"y", b"1@$1") + note(b"x", b"z", b"")
    for align in (0, 1, 4, 16):
        assert [n.name for n in parse_notes(data, align=align)] == ["y", "z"]


def test_address_size_must_be_4_or_8():
    with pytest.raises(ObjectError, match=r"^USDT notes: address size 2 is neither 4 nor 8 "
                       r"\(section \.note\.other\)$"):
        parse_notes(b"", addr_size=2, section=".note.other")


def test_the_fault_names_the_section_given():
    with pytest.raises(ObjectError) as e:
        parse_notes(note(ntype=9), section=".note.x")
    assert (e.value.section, e.value.offset) == (".note.x", 0)


# ------------------------------------------------------------------ argument specs

# x86-64 spelling -> the kernel's struct pt_regs member
_PT_REGS = {"rbp": "bp", "rbx": "bx", "rax": "ax", "rcx": "cx", "rdx": "dx", "rsi": "si",
            "rdi": "di", "rip": "ip", "rsp": "sp"}


def test_every_x86_64_register_against_the_kernel_pt_regs():
    from pybpf.btf import kernel
    vmlinux = kernel.vmlinux()
    pt_regs = vmlinux[vmlinux.find("pt_regs")[0]]
    offs = {m.name: m.bit_offset // 8 for m in pt_regs.members if m.name}
    for names, off in un._X86_64_ROWS:
        full = names.split()[0]
        assert offs[_PT_REGS.get(full, full)] == off, full
        for name in names.split():
            (spec,) = parse_args(f"8@%{name}", "x86_64")
            assert spec.reg_off == off, name
    assert len(un.X86_64_REGS) == 66


def test_register_tables_of_the_other_architectures():
    assert un.AARCH64_REGS == {**{f"x{i}": 8 * i for i in range(31)}, "sp": 248}
    assert un.RISCV64_REGS == dict(zip(
        "ra sp gp tp t0 t1 t2 s0 s1 a0 a1 a2 a3 a4 a5 a6 a7 s2 s3 s4 s5 s6 s7 s8 s9 s10 s11 "
        "t3 t4 t5 t6".split(), range(8, 256, 8)))
    assert un.S390X_REGS == {f"%r{i}": 16 + 8 * i for i in range(16)}


@pytest.mark.parametrize("text, want", [
    ("8@$-9223372036854775808", ArgSpec(ARG_CONST, 8, False, -(1 << 63))),
    ("8@9223372036854775807(%rbp)", ArgSpec(ARG_REG_DEREF, 8, False, (1 << 63) - 1, "rbp", 32)),
    ("8@-9223372036854775808(%rbp)", ArgSpec(ARG_REG_DEREF, 8, False, -(1 << 63), "rbp", 32)),
    ("-2@(%rbp,%rax,2)", ArgSpec(ARG_SIB, 2, True, 0, "rbp", 32, "rax", 80, 1)),
    ("4@8(%rbp,%rax,1)", ArgSpec(ARG_SIB, 4, False, 8, "rbp", 32, "rax", 80, 0)),
    ("8@-16(%rsp,%rsi,4)", ArgSpec(ARG_SIB, 8, False, -16, "rsp", 152, "rsi", 104, 2)),
])
def test_value_ranges_and_scales(text, want):
    (got,) = parse_args(text, "x86_64")
    assert got == ArgSpec(**{**want.__dict__, "text": text})


@pytest.mark.parametrize("text, message", [
    ("8@$-9223372036854775809", r"^argument #0 '8@\$-9223372036854775809': "
                                r"-9223372036854775809 does not fit 64 bits$"),
    ("8@9223372036854775808(%rbp)", r"^argument #0 '8@9223372036854775808\(%rbp\)': offset "
                                    r"9223372036854775808 does not fit 64 bits$"),
    ("8@9223372036854775808(%rbp,%rax,2)", "offset 9223372036854775808 does not fit"),
    ("8@-9223372036854775809(%rbp)", "-9223372036854775809 does not fit 64 bits"),
    ("-4@%eax junk 4@$1", r"^argument #1 'junk': not a x86_64 USDT argument spec "
                          r"\(SIZE@LOCATION\)$"),
    ("4@$1 " * 13, r"^more than 12 arguments in '4@\$1 4@\$1 "),
    ("0@%eax", "size 0 is not 1, 2, 4 or 8"),
    ("-3@%eax", r"^argument #0 '-3@%eax': size 3 is not"),
    ("1@(%rbp,%rax,16)", r"^argument #0 '1@\(%rbp,%rax,16\)': scale 16 is not 1, 2, 4 or 8$"),
    ("1@(%rbp,%rax,0)", "scale 0 is not"),
])
def test_bad_specs_exact_messages(text, message):
    with pytest.raises(ArgError, match=message):
        parse_args(text, "x86_64")


def test_unsupported_architecture_message():
    with pytest.raises(ArgError, match=r"^USDT arguments of ppc64le binaries are not supported "
                       r"\(supported: x86_64, aarch64, riscv64, s390x\)$"):
        parse_args("4@5", "ppc64le")


def test_twelve_arguments_fill_the_spec():
    args = parse_args(" ".join(f"-8@$-{i}" for i in range(1, 13)), "x86_64")
    assert len(args) == 12
    raw = un.pack_spec(args, cookie=-1)
    assert len(raw) == un.SPEC_SIZE == 208
    assert [struct.unpack_from("<q", raw, 16 * i)[0] for i in range(12)] == \
        [-i for i in range(1, 13)]
    assert raw[192:200] == b"\xff" * 8 and struct.unpack_from("<h", raw, 200) == (12,)
    assert raw[202:] == bytes(6)
    with pytest.raises(ValueError, match=r"^13 USDT arguments \(at most 12\)$"):
        un.pack_spec(args + args[:1])


def test_cookie_and_value_above_2_63_pack_unsigned():
    (a,) = parse_args("8@$18446744073709551615", "x86_64")
    raw = un.pack_spec([a], cookie=(1 << 64) - 2)
    assert raw[:8] == b"\xff" * 8 and raw[192:200] == b"\xfe" + b"\xff" * 7


def test_big_endian_packing():
    """A big-endian BPF side (s390x): every field big-endian; SIB bitfields from the
    word's high bits (reserved:8, idx_reg_off:12, scale:4, type:8)."""
    (sib,) = parse_args("1@-96(%rbp,%rax,8)", "x86_64")
    raw = sib.pack("big")
    assert struct.unpack(">QIh?b", raw) == ((1 << 64) - 96, ARG_SIB | 3 << 8 | 80 << 12, 32,
                                            False, 56)
    assert raw[8:12] == bytes([0x00, 0x05, 0x03, ARG_SIB])
    little = sib.pack("little")
    assert little == sib.pack() and little[8:12] == bytes([ARG_SIB, 80, 0x30, 0])
    (deref,) = parse_args("-2@-28(%r15)", "s390x")
    assert deref.pack("big") == struct.pack(">QIh?b", (1 << 64) - 28, ARG_REG_DEREF, 136, True,
                                            48)
    spec = un.pack_spec([deref], cookie=0x0102030405060708, byteorder="big")
    assert spec[:16] == deref.pack("big") and spec[16:192] == bytes(176)
    assert spec[192:] == bytes(range(1, 9)) + b"\x00\x01" + bytes(6)
    assert un.pack_spec([deref], 5, "little")[192:202] == struct.pack("<Qh", 5, 1)


# ------------------------------------------------------------------ files, patched


def _patched(tmp_path, patch, src: str = "usdt_target") -> str:
    dst = str(tmp_path / f"{src}_patched_{os.getpid()}")
    shutil.copyfile(str(built(src)), dst)
    with open(dst, "r+b") as f:
        elf = ELFFile(f)
        hdr = elf.header
        names = [s.name for s in elf.iter_sections()]
        shdr = {n: hdr["e_shoff"] + i * hdr["e_shentsize"] for i, n in enumerate(names)}
        phdrs = [(hdr["e_phoff"] + i * hdr["e_phentsize"], seg["p_type"])
                 for i, seg in enumerate(elf.iter_segments())]
        patch(f, shdr, phdrs)
    return dst


def _poke(f, at: int, fmt: str, value: int) -> None:
    f.seek(at)
    f.write(struct.pack(fmt, value))


@pytest.mark.parametrize("number, machine", [(183, "aarch64"), (243, "riscv64"),
                                             (22, "s390x"), (62, "x86_64"), (9999, "EM_9999")])
def test_machine_names(tmp_path, number, machine):
    path = _patched(tmp_path, lambda f, s, p: _poke(f, 18, "<H", number))
    pf = un.read_probes(path)
    assert pf.machine == machine and len(pf.probes) == 7


def test_note_section_must_be_sht_note(tmp_path):
    path = _patched(tmp_path, lambda f, s, p: _poke(f, s[".note.stapsdt"] + 4, "<I", 1))
    with pytest.raises(ObjectError, match=r"^.*_patched_\d+: \.note\.stapsdt is SHT_PROGBITS, "
                       r"not SHT_NOTE \(section \.note\.stapsdt\)$"):
        un.read_probes(path)


def test_note_section_past_the_end_of_the_file(tmp_path):
    size = os.path.getsize(str(built("usdt_target")))
    path = _patched(tmp_path, lambda f, s, p: _poke(f, s[".note.stapsdt"] + 24, "<Q",
                                                       size - 16))
    with pytest.raises(ObjectError, match=r"\.note\.stapsdt of \d+ bytes at file offset "
                       f"{size - 16:#x} runs past the end of the file"):
        un.read_probes(path)


def test_no_loadable_segment(tmp_path):
    def patch(f, s, phdrs):
        for at, kind in phdrs:
            if kind == "PT_LOAD":
                _poke(f, at, "<I", 0x6474E551)          # PT_GNU_STACK
    with pytest.raises(ObjectError, match=r"_patched_\d+: no PT_LOAD program headers to place "
                       "USDT probes in$"):
        un.read_probes(_patched(tmp_path, patch))


def test_a_prelinked_base_moves_every_probe(tmp_path):
    orig = un.read_probes(str(built("usdt_target")))
    with open(str(built("usdt_target")), "rb") as f:
        base = ELFFile(f).get_section_by_name(".stapsdt.base")["sh_addr"]
    path = _patched(tmp_path, lambda f, s, p: _poke(f, s[".stapsdt.base"] + 16, "<Q",
                                                       base + 0x10))
    moved = un.read_probes(path)
    assert [p.address for p in moved.probes] == [p.address + 0x10 for p in orig.probes]
    assert [p.offset for p in moved.probes] == [p.offset + 0x10 for p in orig.probes]
    assert [p.semaphore_offset for p in moved.probes] == \
        [p.semaphore_offset for p in orig.probes]


def test_files_that_are_no_elf(tmp_path):
    text = tmp_path / f"not_elf_{os.getpid()}"
    text.write_bytes(b"#!/bin/sh\necho hi\n" * 10)
    with pytest.raises(ObjectError, match=f"^{text} is not a valid ELF file: "):
        un.read_probes(str(text))
    with pytest.raises(ObjectError, match=f"^cannot open {tmp_path}: Is a directory$"):
        un.read_probes(str(tmp_path))


def test_a_changed_file_is_read_again(tmp_path):
    path = tmp_path / f"usdt_copy_{os.getpid()}"
    shutil.copyfile(str(built("usdt_target")), str(path))
    assert len(un.read_probes(str(path)).probes) == 7
    shutil.copyfile("/bin/true", str(path))
    os.utime(str(path), ns=(1, 1))
    assert un.read_probes(str(path)).probes == []


# ------------------------------------------------------------------ /proc/PID/maps


def test_maps_lines_with_spaces_bad_numbers_and_order():
    text = MAPS + (
        "7f00bb002000-7f00bb003000 r-xp 00002000 08:01 9 /opt/my lib/a b.so\n"
        "7f00bb000000-7f00bb001000 r-xp 00000000 08:01 9 /opt/my lib/a b.so\n"
        "zzzz-7f00bb001000 r-xp 00000000 08:01 9 /opt/my lib/a b.so\n"
        "7f00bb004000-7f00bb005000 r-xp 0000zz00 08:01 9 /opt/my lib/a b.so\n"
        "7f00bb005000-7f00bb006000 r-xp 00005000 08:01 9\n")
    maps = un.executable_mappings(text, "/opt/my lib/a b.so")
    assert maps == [un.Mapping(0x7F00BB000000, 0x7F00BB001000, 0),
                    un.Mapping(0x7F00BB002000, 0x7F00BB003000, 0x2000)]
    assert un.runtime_address(0x2000, maps) == 0x7F00BB002000
    assert un.runtime_address(0, maps) == 0x7F00BB000000
    assert un.runtime_address(0x1000, maps) is None
    lib = un.executable_mappings(MAPS, "/opt/lib/libx.so")
    assert un.runtime_address(0x1000, lib) == 0x7F00AA001000
