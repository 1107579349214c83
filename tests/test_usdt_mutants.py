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
    assert got == want.replace(text=text)


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
    assert un.pack_spec([], -1, "big")[192:202] == b"\xff" * 8 + bytes(2)


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
    with pytest.raises(ObjectError, match=f"^cannot open {tmp_path}: not a regular file "
                                          r"\(a directory\)$"):
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


# ------------------------------------------------------------------ pybpf.link.usdt, no kernel

from types import SimpleNamespace  # noqa: E402

from pybpf import uapi  # noqa: E402
from pybpf.errors import AttachError, BPFError  # noqa: E402
from pybpf.link import usdt as lu  # noqa: E402


def _maps(specs=(uapi.BPF_MAP_TYPE_ARRAY, 4, un.SPEC_SIZE), ips=(8, 4), max_entries=3):
    return {lu.SPECS_MAP: SimpleNamespace(type=specs[0], key_size=specs[1],
                                          value_size=specs[2], max_entries=max_entries),
            lu.IP_MAP: SimpleNamespace(type=uapi.BPF_MAP_TYPE_HASH, key_size=ips[0],
                                       value_size=ips[1])}


def test_manager_checks_the_header_maps():
    good = _maps()
    assert lu.UsdtManager(good).maps() == (good[lu.SPECS_MAP], good[lu.IP_MAP])
    for drop in (lu.SPECS_MAP, lu.IP_MAP):
        maps = {k: v for k, v in good.items() if k != drop}
        with pytest.raises(AttachError, match=r"^the object has no __bpf_usdt_specs / "
                           r"__bpf_usdt_ip_to_spec_id maps: USDT programs must #include "
                           r"<bpf/usdt\.bpf\.h>$"):
            lu.UsdtManager(maps).maps()
    for specs in ((uapi.BPF_MAP_TYPE_HASH, 4, 208), (2, 8, 208), (2, 4, 200)):
        with pytest.raises(AttachError, match=r"^map __bpf_usdt_specs: want an array of "
                           r"208-byte struct __bpf_usdt_spec values by int key \(as "
                           r"<bpf/usdt\.bpf\.h> declares it\), found type "
                           f"{specs[0]} key {specs[1]} value {specs[2]}$"):
            lu.UsdtManager(_maps(specs=specs)).maps()
    for ips in ((4, 4), (8, 8)):
        with pytest.raises(AttachError, match=r"^map __bpf_usdt_ip_to_spec_id: want long keys "
                           f"and int values, found key {ips[0]} value {ips[1]}$"):
            lu.UsdtManager(_maps(ips=ips)).maps()


def test_spec_ids_are_allocated_below_the_limit_and_reused_last_freed_first():
    m = lu.UsdtManager(_maps())
    assert [m.allocate(3) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(AttachError, match=r"^all 3 USDT spec ids of __bpf_usdt_specs are in use "
                       r"\(raise BPF_USDT_MAX_SPEC_CNT or its max_entries\)$") as e:
        m.allocate(3)
    assert e.value.errno == errno_mod.E2BIG
    m.release([0, 2])
    assert [m.allocate(3), m.allocate(3)] == [2, 0]
    with pytest.raises(AttachError):
        m.allocate(3)
    assert lu.UsdtManager({}).allocate(1) == 0


class _FakeLink:
    def __init__(self, fd):
        self._fd, self.closed = fd, False

    @property
    def fd(self):
        return self._fd

    def close(self):
        self.closed = True

    def info(self):
        return ("info", self._fd)


def test_usdt_link_bookkeeping():
    manager = lu.UsdtManager(_maps())
    deleted = []
    link = lu.UsdtLink(manager, "usdt /x:p:n")
    assert repr(link) == "<UsdtLink usdt /x:p:n 0 site(s) 0 link(s)>" and link.sites == []
    with pytest.raises(BPFError, match=r"^USDT link usdt /x:p:n is closed$") as e:
        link.fd
    assert e.value.errno == errno_mod.EBADF
    with pytest.raises(BPFError, match="is closed"):
        link.info()
    a, b = _FakeLink(11), _FakeLink(12)
    link.links = [a, b]
    link.spec_ids = [manager.allocate(3), manager.allocate(3)]
    link.sites = [None, None, None]
    assert (link.fd, link.info(), link.closed, link.multi) == (11, ("info", 11), False, False)
    assert repr(link) == "<UsdtLink usdt /x:p:n 3 site(s) 2 link(s)>"
    with pytest.raises(AttachError, match=r"^pinning USDT link usdt /x:p:n at /sys/fs/bpf/x: a "
                       r"USDT attachment is several kernel objects plus pybpf state; pin the "
                       r"program instead$") as e:
        link.pin("/sys/fs/bpf/x")
    assert e.value.errno == errno_mod.EOPNOTSUPP
    link.ip_keys = [b"k1", b"k2"]
    link._ip_map = SimpleNamespace(loaded=False, fd=-1)    # its object is closed: skipped
    link.detach()
    assert link.closed and a.closed and b.closed and link.links == [] and link.spec_ids == []
    assert link.ip_keys == [] and deleted == []
    assert repr(link) == "<UsdtLink usdt /x:p:n 3 site(s) closed>"
    assert manager.allocate(3) == 1 and manager.allocate(3) == 0
    with pytest.raises(BPFError, match="is closed"):
        link.fd
    a.closed = False
    link.links = [a]
    link.close()                                # a second close does nothing
    assert not a.closed


def test_usdt_link_close_deletes_its_ip_keys(monkeypatch):
    deleted = []
    monkeypatch.setattr(lu.syscall, "map_delete", lambda fd, key: deleted.append((fd, key)))
    link = lu.UsdtLink(lu.UsdtManager(_maps()), "d")
    link.ip_keys = [b"k1", b"k2"]
    link._ip_map = SimpleNamespace(loaded=True, fd=77)
    link.close()
    assert deleted == [(77, b"k1"), (77, b"k2")]


def test_where_the_probe_is():
    assert lu._where("a:b:c", {}) == ("a", "b", "c")
    assert lu._where("a:b:c", {"binary": "/x", "provider": "p", "name": "n"}) == \
        ("/x", "p", "n")
    for opts, missing in (({"provider": "p"}, "binary, name"), ({"name": "n"}, "binary, provider"),
                          ({"binary": "b", "name": "n"}, "provider")):
        with pytest.raises(AttachError, match=r"^USDT attach needs binary=, provider= and name= "
                           rf"\(missing {missing}\)$"):
            lu._where("a:b:c", opts)
    with pytest.raises(AttachError, match=r"^USDT programs need a target: "
                       r"SEC\(\"usdt/BINARY:PROVIDER:NAME\"\) or attach\(binary=, provider=, "
                       r"name=\)$"):
        lu._where("", {})
    with pytest.raises(AttachError, match=r"^USDT target 'a:b' must be BINARY:PROVIDER:NAME$"):
        lu._where("a:b", {})


def test_read_refuses_other_machines_and_bad_files(tmp_path):
    pf = lu._read(str(built("usdt_target")))
    assert len(pf.probes) == 7
    path = _patched(tmp_path, lambda f, s, p: _poke(f, 18, "<H", 183))
    with pytest.raises(AttachError, match=rf"^USDT: {path} is a 64-bit little-endian aarch64 "
                       r"binary; this is x86_64$"):
        lu._read(path)
    path = _patched(tmp_path, lambda f, s, p: _poke(f, 4, "<B", 1))     # ELFCLASS32
    with pytest.raises(AttachError, match=r"^USDT: "):
        lu._read(path)
    path = _patched(tmp_path, lambda f, s, p: _poke(f, 5, "<B", 2))     # big-endian header
    with pytest.raises(AttachError, match=r"^USDT: "):
        lu._read(path)
    with pytest.raises(AttachError, match=r"^USDT: cannot open /nonexistent/x: No such file"):
        lu._read("/nonexistent/x")


def test_runtime_ips_of_an_executable_and_a_library_mapped_here():
    import ctypes
    exe = un.read_probes(str(built("usdt_target")))
    assert lu._runtime_ips(exe, exe.probes, -1) == [p.address for p in exe.probes]
    lib = un.read_probes(str(built("libusdt_target.so")))
    with pytest.raises(AttachError, match=r"position-independent\) without BPF cookies "
                       r"\(kernel < 5\.15\) needs pid= to find where it is mapped$") as e:
        lu._runtime_ips(lib, lib.probes, -1)
    assert e.value.errno == errno_mod.EOPNOTSUPP
    with pytest.raises(AttachError, match=rf"^USDT pybpf_lib:fire: .*libusdt_target\.so offset "
                       rf"{lib.probes[0].offset:#x} is not mapped executable in process "
                       rf"{os.getpid()}$") as e:
        lu._runtime_ips(lib, lib.probes, os.getpid())
    assert e.value.errno == errno_mod.ESRCH
    with pytest.raises(AttachError, match=r"^reading /proc/0/maps: No such file"):
        lu._runtime_ips(lib, lib.probes, 0)            # only a negative pid means none
    with pytest.raises(AttachError, match=r"^reading /proc/999999999/maps: No such file") as e:
        lu._runtime_ips(lib, lib.probes, 999999999)
    assert e.value.errno == errno_mod.ENOENT
    handle = ctypes.CDLL(str(built("libusdt_target.so")))
    with open("/proc/self/maps") as f:
        maps = un.executable_mappings(f.read(), os.path.realpath(str(built(
            "libusdt_target.so"))))
    (ip,) = lu._runtime_ips(lib, lib.probes, os.getpid())
    assert ip == maps[0].start - maps[0].offset + lib.probes[0].offset
    assert ctypes.string_at(ip, 1) == b"\x90"               # the probe's nop, in memory
    del handle


def _usdt_prog(manager=None):
    return SimpleNamespace(usdt_manager=manager, expected_attach_type=0, name="p")


def test_attach_refusals_before_the_kernel(tmp_path, monkeypatch):
    path = str(built("usdt_target"))
    with pytest.raises(AttachError, match=r"^USDT programs attach through their object \(no "
                       r"USDT state\)$"):
        lu.attach_usdt(_usdt_prog(), f"{path}:pybpf:consts", {})
    with pytest.raises(AttachError, match=rf"^no USDT probe pybpf:nope in {path} \(it has "
                       r"pybpf:consts, pybpf:guarded, pybpf:mem, pybpf:multi, pybpf:regs\)$") as e:
        lu.attach_usdt(_usdt_prog(), f"{path}:pybpf:nope", {})
    assert e.value.errno == errno_mod.ENOENT
    bad = _patched(tmp_path, _bad_args)
    with pytest.raises(AttachError, match=r"^USDT pybpf:consts at 0x[0-9a-f]+ in .*: argument #0 "
                       r"'-4@%zz': unknown x86_64 register 'zz'$"):
        lu.attach_usdt(_usdt_prog(), f"{bad}:pybpf:consts", {})
    monkeypatch.setattr(lu, "_REF_CTR_FORMAT", f"/nonexistent/{os.getpid()}")
    with pytest.raises(AttachError, match=rf"^USDT pybpf:guarded in {path} has a semaphore, and "
                       r"this kernel cannot count it \(no uprobe ref_ctr_offset, kernel < "
                       r"4\.20\)$") as e:
        lu.attach_usdt(_usdt_prog(), f"{path}:pybpf:guarded", {})
    assert e.value.errno == errno_mod.EOPNOTSUPP
    with pytest.raises(AttachError, match="through their object"):
        lu.attach_usdt(_usdt_prog(), f"{path}:pybpf:consts", {})      # no semaphore: fine


def _bad_args(f, shdr, phdrs):
    f.seek(0)
    raw = f.read()
    at = raw.index(b"-4@$42 -4@$-7")
    f.seek(at)
    f.write(b"-4@%zz")


def test_uprobe_multi_probe_decisions(monkeypatch):
    probe = lu.has_uprobe_multi_link.__wrapped__
    monkeypatch.setattr(lu.syscall, "prog_load",
                        lambda *a, **k: (_ for _ in ()).throw(BPFError("no", errno_mod.EINVAL)))
    assert probe() is False
    from pybpf.errors import BPFPermissionError
    monkeypatch.setattr(lu.syscall, "prog_load", lambda *a, **k: (_ for _ in ()).throw(
        BPFPermissionError("perm", errno_mod.EPERM)))
    with pytest.raises(BPFPermissionError):
        probe()

    class Prog:
        fd = 5

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return None

    seen = []

    def loaded(ptype, code, lic, expected_attach_type=0):
        seen.append((ptype, bytes(code), lic, expected_attach_type))
        return Prog(), ""
    monkeypatch.setattr(lu.syscall, "prog_load", loaded)

    def answers(*errnos):
        it = iter(errnos)

        def link_create(fd, target, attach_type, uprobe_multi):
            seen.append((target, attach_type, uprobe_multi["cnt"], uprobe_multi["pid"]))
            e = next(it)
            if e is None:
                return SimpleNamespace(close=lambda: None)
            raise BPFError("x", e)
        monkeypatch.setattr(lu.syscall, "link_create", link_create)

    answers(errno_mod.EBADF, errno_mod.EINVAL)
    assert probe() is True
    assert seen[0][0] == uapi.BPF_PROG_TYPE_KPROBE and seen[0][2] == "GPL"
    assert seen[0][3] == uapi.BPF_TRACE_UPROBE_MULTI
    assert seen[0][1] == bytes.fromhex("b700000000000000") + bytes.fromhex("9500000000000000")
    assert seen[1:] == [(0, uapi.BPF_TRACE_UPROBE_MULTI, 1, 0),
                        (0, uapi.BPF_TRACE_UPROBE_MULTI, 1, 0xFFFFFFFF)]
    for errs in ((errno_mod.EINVAL, errno_mod.EINVAL), (errno_mod.EBADF, errno_mod.EBADF),
                 (errno_mod.EBADF, errno_mod.ESRCH), (None,), (errno_mod.EBADF, None)):
        answers(*errs)
        assert probe() is False, errs


def test_load_attach_type_asks_the_kernel_when_unset(monkeypatch):
    monkeypatch.setattr(lu, "has_uprobe_multi_link", lambda: True)
    assert lu.load_attach_type(SimpleNamespace(uprobe_multi=None)) == \
        uapi.BPF_TRACE_UPROBE_MULTI
    monkeypatch.setattr(lu, "has_uprobe_multi_link", lambda: False)
    assert lu.load_attach_type(SimpleNamespace(uprobe_multi=None)) == 0
    assert lu.load_attach_type(SimpleNamespace(uprobe_multi=True)) == \
        uapi.BPF_TRACE_UPROBE_MULTI


import errno as errno_mod  # noqa: E402


# ------------------------------------------------------------------ attach, for real


def test_kernel_features_here(kernel):
    assert lu.has_uprobe_multi_link.__wrapped__() is True
    assert lu.has_bpf_cookie() is True


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("multi", [True, False], ids=["uprobe_multi", "perf_uprobe"])
def test_attach_writes_the_exact_specs(kernel, multi):
    from pybpf import BPFObject
    from pybpf.kernel import syscall
    path = str(built("usdt_target"))
    pf = un.read_probes(path)
    with BPFObject.open(str(built("usdt_args.bpf.o"))) as obj:
        prog = obj.programs["usdt_record"]
        prog.uprobe_multi = multi
        obj.load()
        before = _fd_count()
        link = prog.attach(binary=path, provider="pybpf", name="multi", pid=-7, cookie=-2)
        sites = pf.find("pybpf", "multi")
        assert link.sites == sites and link.multi is multi
        assert link.ip_keys == [] and link._ip_map is None          # BPF cookies here
        assert len(link.links) == (1 if multi else 3)
        assert link.desc == f"usdt {path}:pybpf:multi"
        specs = obj.maps["__bpf_usdt_specs"]
        texts = list(dict.fromkeys(s.args for s in sites))
        assert link.spec_ids == [0, 1]
        for spec_id, text in zip(link.spec_ids, texts):
            raw = syscall.map_lookup(specs.fd, struct.pack("<i", spec_id), un.SPEC_SIZE)
            assert raw == un.pack_spec(parse_args(text, "x86_64"), cookie=-2)
        assert link in prog.links
        link.close()
        assert _fd_count() == before
        again = prog.attach(binary=path, provider="pybpf", name="consts")
        assert again.spec_ids == [1]                   # the last one freed comes first
        raw = syscall.map_lookup(specs.fd, struct.pack("<i", 1), un.SPEC_SIZE)
        assert raw == un.pack_spec(parse_args(pf.find("pybpf", "consts")[0].args, "x86_64"))


def test_a_failed_site_rolls_everything_back(kernel, monkeypatch):
    from pybpf import BPFObject
    path = str(built("usdt_target"))
    monkeypatch.setattr(LiveHostCookie, "has_bpf_cookie", lambda self: False)
    with BPFObject.open(str(built("usdt_args.bpf.o"))) as obj:
        prog = obj.programs["usdt_record"]
        prog.uprobe_multi = False
        obj.load()
        real = lu.attach_uprobe
        made = []

        def flaky(p, target, opts):
            if made:
                raise AttachError("second site refused")
            assert opts["cookie"] == 0 and opts["pid"] == -1     # no BPF cookies: none
            made.append(real(p, target, opts))
            return made[-1]
        monkeypatch.setattr(lu, "attach_uprobe", flaky)
        before = _fd_count()
        with pytest.raises(AttachError, match="second site refused$"):
            prog.attach(binary=path, provider="pybpf", name="multi")
        assert made[0].closed and _fd_count() == before
        assert list(obj.maps["__bpf_usdt_ip_to_spec_id"].keys()) == []
        monkeypatch.setattr(lu, "attach_uprobe", real)
        link = prog.attach(binary=path, provider="pybpf", name="multi")
        assert sorted(link.spec_ids) == [0, 1]          # the refused attach gave its ids back
        ips = dict(obj.maps["__bpf_usdt_ip_to_spec_id"].items())
        sites = un.read_probes(path).find("pybpf", "multi")
        ids = dict(zip(dict.fromkeys(s.args for s in sites), link.spec_ids))
        assert ips == {s.address: ids[s.args] for s in sites}
        link.close()
        assert list(obj.maps["__bpf_usdt_ip_to_spec_id"].keys()) == []


def test_pid_zero_means_this_process(kernel, monkeypatch):
    from pybpf import BPFObject
    path = str(built("usdt_target"))
    seen = []
    real = lu.attach_uprobe

    def spy(p, target, opts):
        seen.append(opts)
        return real(p, target, opts)
    monkeypatch.setattr(lu, "attach_uprobe", spy)
    with BPFObject.open(str(built("usdt_args.bpf.o"))) as obj:
        prog = obj.programs["usdt_record"]
        prog.uprobe_multi = False
        obj.load()
        with prog.attach(binary=path, provider="pybpf", name="consts", pid=0):
            with prog.attach(binary=path, provider="pybpf", name="consts", pid=-9):
                pass
    site = un.read_probes(path).find("pybpf", "consts")[0]
    assert [(o["pid"], o["offset"], o["ref_ctr_offset"], o["binary"]) for o in seen] == \
        [(os.getpid(), site.offset, 0, path), (-1, site.offset, 0, path)]
    assert [o["cookie"] for o in seen] == [0, 1]          # the spec ids


from pybpf.kernel.host import LiveHost as LiveHostCookie  # noqa: E402


def test_no_stapsdt_base_section_means_no_adjustment(tmp_path):
    orig = un.read_probes(str(built("usdt_target")))

    def rename(f, shdr, phdrs):
        elf = ELFFile(f)
        names = elf.get_section(elf.header["e_shstrndx"])["sh_offset"]
        at = names + elf.get_section_by_name(".stapsdt.base")["sh_name"]
        f.seek(at)
        assert f.read(14) == b".stapsdt.base\0"
        f.seek(at + 12)
        f.write(b"X")
    moved = un.read_probes(_patched(tmp_path, rename))
    assert [(p.address, p.offset) for p in moved.probes] == \
        [(p.address, p.offset) for p in orig.probes]


def test_owner_without_its_nul_and_argspec_defaults():
    with pytest.raises(ObjectError, match=r"owner b'stapsdtX' is not 'stapsdt'"):
        parse_notes(note(owner=b"stapsdtX"))
    a = ArgSpec(ARG_REG, 4, True)
    assert (a.val_off, a.reg, a.reg_off, a.index_reg, a.index_reg_off, a.scale_shift,
            a.text) == (0, "", 0, "", 0, 0, "")
