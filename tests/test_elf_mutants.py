"""pybpf.obj.elf on synthetic ELF64 objects: every check, with the exact fault.

The objects are built byte by byte here (also used by test_relocate_mutants.py):

``Obj`` holds sections (``Sec``) and symbols; ``build()`` lays them out as
header, section data (each 8-aligned, in order), .shstrtab, then the section
header table; every field can be set to lie (sizes, offsets, links, entry sizes).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

SHDR = struct.Struct("<IIQQQQIIQQ")
SYM = struct.Struct("<IBBHQQ")
REL = struct.Struct("<QQ")

SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS, SHT_REL = 1, 2, 3, 8, 9
SHF_WRITE, SHF_ALLOC, SHF_EXEC = 1, 2, 4

MOV_R0_0 = bytes([0xB7, 0, 0, 0, 0, 0, 0, 0])
EXIT = bytes([0x95, 0, 0, 0, 0, 0, 0, 0])


@dataclass
class Sec:
    """One section; ``size``/``offset``/``name_off`` None: the true values."""

    name: str
    type: int
    flags: int = 0
    data: bytes = b""
    link: int = 0
    info: int = 0
    align: int = 8
    entsize: int = 0
    size: Optional[int] = None
    offset: Optional[int] = None
    name_off: Optional[int] = None


def sym(name_off: int, info: int = 0, other: int = 0, shndx: int = 0, value: int = 0,
        size: int = 0) -> bytes:
    return SYM.pack(name_off, info, other, shndx, value, size)


def rel(offset: int, sym_idx: int, rtype: int) -> bytes:
    return REL.pack(offset, sym_idx << 32 | rtype)


def strtab(*names: str) -> Tuple[bytes, List[int]]:
    """A string table starting with "\\0" and the offset of each name."""
    out = bytearray(b"\0")
    offs = []
    for n in names:
        offs.append(len(out))
        out += n.encode() + b"\0"
    return bytes(out), offs


@dataclass
class Obj:
    sections: List[Sec] = field(default_factory=list)
    machine: int = 247
    eclass: int = 2
    data_enc: int = 1
    shstrndx: Optional[int] = None
    shnum: Optional[int] = None
    shentsize: int = 64
    null: Optional[Sec] = None      # section 0's header, all zero by default
    shstrtab_tail: bytes = b""      # bytes right after .shstrtab's data, outside it
    unterminated_shstrtab: bool = False

    def index(self, name: str) -> int:
        return 1 + [s.name for s in self.sections].index(name)

    def build(self) -> bytes:
        names = bytearray(b"\0")
        name_offs = []
        for s in self.sections + [Sec(".shstrtab", SHT_STRTAB)]:
            name_offs.append(len(names))
            names += s.name.encode() + b"\0"
        if self.unterminated_shstrtab:
            names = names[:-1]
        out = bytearray(64)
        offsets = []
        for s in self.sections:
            out += b"\0" * (-len(out) % 8)
            offsets.append(len(out))
            if s.type != SHT_NOBITS:
                out += s.data
        out += b"\0" * (-len(out) % 8)
        shstr_off = len(out)
        out += names + self.shstrtab_tail
        out += b"\0" * (-len(out) % 8)
        shoff = len(out)
        null = self.null or Sec("", 0, align=0)
        headers = [SHDR.pack(0, null.type, null.flags, 0, null.offset or 0, null.size or 0,
                             null.link, null.info, null.align, null.entsize)]
        for s, off, noff in zip(self.sections, offsets, name_offs):
            headers.append(SHDR.pack(
                noff if s.name_off is None else s.name_off, s.type, s.flags, 0,
                off if s.offset is None else s.offset,
                len(s.data) if s.size is None else s.size, s.link, s.info, s.align,
                s.entsize))
        headers.append(SHDR.pack(name_offs[-1], SHT_STRTAB, 0, 0, shstr_off, len(names),
                                 0, 0, 1, 0))
        for h in headers:
            out += h
        shnum = len(headers) if self.shnum is None else self.shnum
        shstrndx = len(headers) - 1 if self.shstrndx is None else self.shstrndx
        ident = b"\x7fELF" + bytes([self.eclass, self.data_enc, 1, 0]) + bytes(8)
        order = "<" if self.data_enc == 1 else ">"
        out[:64] = ident + struct.pack(order + "HHIQQQIHHHHHH", 1, self.machine, 1, 0, 0, shoff, 0,
                                       64, 0, 0, self.shentsize, shnum, shstrndx)
        return bytes(out)


def basic(**kw: object) -> Obj:
    """.text (2 insns, one function), .data (8 bytes), .strtab, .symtab (null,
    prog, var, a section symbol), .rel.text (one R_BPF_64_64 at 0 against var)."""
    text = Sec(".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXEC, MOV_R0_0 + EXIT)
    data = Sec(".data", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, bytes(range(8)))
    strs, (prog, var) = strtab("prog", "var")
    strtab_sec = Sec(".strtab", SHT_STRTAB, data=strs, align=1)
    syms = (sym(0) + sym(prog, 1 << 4 | 2, 0, 1, 0, 16) + sym(var, 1 << 4 | 1, 0, 2, 0, 8)
            + sym(0, 3, 0, 1))
    symtab = Sec(".symtab", SHT_SYMTAB, data=syms, link=3, info=1, entsize=24)
    rels = Sec(".rel.text", SHT_REL, data=rel(0, 2, 1), link=4, info=1, entsize=16)
    obj = Obj([text, data, strtab_sec, symtab, rels])
    for k, v in kw.items():
        setattr(obj, k, v)
    return obj


def section(obj: Obj, name: str) -> Sec:
    return obj.sections[obj.index(name) - 1]


# ---------------------------------------------------------------- the tests

import os       # noqa: E402
import stat     # noqa: E402
import subprocess  # noqa: E402
import sys      # noqa: E402

import pytest   # noqa: E402

from pybpf.errors import ObjectError   # noqa: E402
from pybpf.obj import elf               # noqa: E402


def _fault(raw: bytes, name: str = "") -> ObjectError:
    with pytest.raises(ObjectError) as info:
        elf.read_elf(raw, name)
    return info.value


def _shdr_at(raw: bytes, index: int) -> int:
    return struct.unpack_from("<Q", raw, 40)[0] + 64 * index


def test_basic_object_decoded_exactly():
    raw = basic().build()
    obj = elf.read_elf(raw, "x.o")
    assert obj.path == "x.o"
    assert [(s.index, s.name, s.type, s.flags, s.size, s.align) for s in obj.sections] == [
        (0, "", 0, 0, 0, 0), (1, ".text", 1, 6, 16, 8), (2, ".data", 1, 3, 8, 8),
        (3, ".strtab", 0, 0, 10, 1), (4, ".symtab", 2, 0, 96, 8),
        (5, ".rel.text", 9, 0, 16, 8), (6, ".shstrtab", 0, 0, 49, 1)]
    assert obj.sections[1].data == MOV_R0_0 + EXIT
    assert obj.sections[2].data == bytes(range(8))
    assert obj.sections[3].data == b"\0prog\0var\0"
    assert [(s.index, s.name, s.value, s.size, s.type, s.bind, s.visibility, s.shndx)
            for s in obj.symbols] == [(0, "", 0, 0, 0, 0, 0, 0),
                                      (1, "prog", 0, 16, 2, 1, 0, 1),
                                      (2, "var", 0, 8, 1, 1, 0, 2),
                                      (3, "", 0, 0, 3, 0, 0, 1)]
    assert list(obj.relocs) == [1]
    [r] = obj.relocs[1]
    assert (r.offset, r.sym.index, r.type) == (0, 2, elf.R_BPF_64_64)
    assert obj.sections[1].is_exec and not obj.sections[2].is_exec


def test_bytes_bytearray_memoryview_and_default_name(tmp_path):
    raw = basic().build()
    for src in (raw, bytearray(raw), memoryview(raw)):
        obj = elf.read_elf(src)
        assert obj.path == "<bytes>" and len(obj.sections) == 7
    path = tmp_path / "o.o"
    path.write_bytes(raw)
    assert elf.read_elf(str(path)).path == str(path)
    assert elf.read_elf(str(path), "ignored").path == str(path)


def test_is_exec_needs_progbits_and_execinstr():
    mk = lambda t, f: elf.Section(1, "s", t, f, 8, 8, bytes(8))  # noqa: E731
    assert mk(elf.SHT_PROGBITS, elf.SHF_EXECINSTR).is_exec
    assert mk(elf.SHT_PROGBITS, elf.SHF_EXECINSTR | elf.SHF_ALLOC).is_exec
    assert not mk(elf.SHT_PROGBITS, elf.SHF_ALLOC | elf.SHF_WRITE).is_exec
    assert not mk(elf.SHT_NOBITS, elf.SHF_EXECINSTR).is_exec
    assert not mk(0, elf.SHF_EXECINSTR).is_exec


def test_section_lookup_first_of_a_name_and_rebuilt_on_change():
    o = basic()
    o.sections.append(Sec(".data", SHT_PROGBITS, SHF_ALLOC, b"second.."))
    obj = elf.read_elf(o.build())
    assert obj.section(".data").index == 2           # the first one
    assert obj.section(".nope") is None
    extra = elf.Section(7, ".extra", 1, 0, 0, 1, b"")
    obj.sections.append(extra)
    assert obj.section(".extra") is extra             # index rebuilt
    obj.sections.pop()
    obj.sections.pop()
    assert obj.section(".extra") is None and obj.section(".shstrtab") is None
    assert obj.section(".data").index == 2


def test_section_at_bounds():
    obj = elf.read_elf(basic().build())
    assert obj.section_at(0).index == 0
    assert obj.section_at(6).name == ".shstrtab"
    for bad in (-1, 7):
        with pytest.raises(ObjectError) as info:
            obj.section_at(bad)
        assert str(info.value) == f"section index {bad} out of range"


def test_object_size_limit_exact(monkeypatch, tmp_path):
    raw = basic().build()
    monkeypatch.setattr(elf, "MAX_OBJECT_SIZE", len(raw))
    assert len(elf.read_elf(raw).sections) == 7
    path = tmp_path / "o.o"
    path.write_bytes(raw)
    assert len(elf.read_elf(str(path)).sections) == 7
    monkeypatch.setattr(elf, "MAX_OBJECT_SIZE", len(raw) - 1)
    e = _fault(raw, "n.o")
    assert str(e) == (f"n.o: {len(raw)} bytes, larger than the {len(raw) - 1} bytes an "
                      "object may have")
    with pytest.raises(ObjectError) as info:
        elf.read_elf(str(path))
    assert str(info.value) == (f"cannot read {path}: {len(raw)} bytes, larger than the "
                               f"{len(raw) - 1} bytes an object may have")


# ---------------------------------------------------------------- reading files

def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_read_regular_file_exact_and_closes(tmp_path):
    path = tmp_path / "f"
    data = os.urandom(3 << 20 | 5)         # several 1 MiB chunks and a tail
    path.write_bytes(data)
    before = _open_fds()
    for _ in range(5):
        assert elf.read_regular_file(str(path), len(data)) == data
    assert elf.read_regular_file(str(path), len(data) + 1) == data
    with pytest.raises(ObjectError) as info:
        elf.read_regular_file(str(path), len(data) - 1)
    assert str(info.value) == (f"cannot read {path}: {len(data)} bytes, larger than the "
                               f"{len(data) - 1} bytes an object may have")
    empty = tmp_path / "e"
    empty.write_bytes(b"")
    assert elf.read_regular_file(str(empty), 0) == b""
    assert _open_fds() == before


def test_read_regular_file_growing_past_the_limit():
    """/proc files are regular with st_size 0: the limit holds while reading."""
    before = _open_fds()
    text = elf.read_regular_file("/proc/self/status", 1 << 16)
    assert text.startswith(b"Name:")
    for limit in (0, 1, 10, 100):
        with pytest.raises(ObjectError) as info:
            elf.read_regular_file("/proc/self/status", limit)
        assert str(info.value) == (f"cannot read /proc/self/status: larger than the {limit} "
                                   "bytes an object may have")
    assert _open_fds() == before


def test_read_regular_file_exact_limit_while_reading():
    """/proc/version: st_size 0, stable content: the limit is exact while reading too."""
    with open("/proc/version", "rb") as f:
        content = f.read()
    assert elf.read_regular_file("/proc/version", len(content)) == content
    with pytest.raises(ObjectError) as info:
        elf.read_regular_file("/proc/version", len(content) - 1)
    assert str(info.value) == (f"cannot read /proc/version: larger than the "
                               f"{len(content) - 1} bytes an object may have")


def test_read_error_is_an_object_error():
    before = _open_fds()
    with pytest.raises(ObjectError) as info:
        elf.read_regular_file("/proc/self/mem", 100)       # EIO at address 0
    assert str(info.value) == "cannot read /proc/self/mem: Input/output error"
    with pytest.raises(ObjectError) as info:
        elf.read_regular_file("/nonexistent/x.o", 100)
    assert str(info.value) == "cannot read /nonexistent/x.o: No such file or directory"
    assert _open_fds() == before


def test_open_flags(monkeypatch, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    seen = []
    real = os.open

    def spy(p, flags, *a):
        seen.append(flags)
        return real(p, flags, *a)

    monkeypatch.setattr(os, "open", spy)
    assert elf.read_regular_file(str(path), 3) == b"abc"
    assert seen == [os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY]


def _block_device(tmp_path: "os.PathLike[str]") -> Optional[str]:
    """A block device node: made here (CAP_MKNOD), else any one under /dev."""
    blk = os.path.join(tmp_path, "blk")
    try:
        os.mknod(blk, stat.S_IFBLK | 0o600, os.makedev(7, 0))
        return blk
    except PermissionError:                    # no CAP_MKNOD (unprivileged run)
        pass
    for name in sorted(os.listdir("/dev")):
        path = os.path.join("/dev", name)
        if stat.S_ISBLK(os.lstat(path).st_mode):
            return path
    return None


def test_special_files_named_by_kind(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = [(str(tmp_path), "a directory"), (str(fifo), "a FIFO"),
             ("/dev/null", "a character device")]
    blk = _block_device(tmp_path)
    if blk is not None:
        cases.append((blk, "a block device"))
    before = _open_fds()
    for path, kind in cases:
        with pytest.raises(ObjectError) as info:
            elf.read_regular_file(path, 100)
        assert str(info.value) == f"cannot read {path}: not a regular file ({kind})"
    assert _open_fds() == before


# ---------------------------------------------------------------- the headers

def test_magic_class_machine_and_byte_order():
    e = _fault(b"\x7fELG" + basic().build()[4:], "m.o")
    assert (str(e), e.offset) == ("m.o: not an ELF file (bad magic) (offset 0x0)", 0)
    e = _fault(basic(eclass=1).build())
    assert (str(e), e.offset) == \
        ("<bytes>: ELF class 32, BPF objects are 64-bit (offset 0x4)", 4)
    for machine in (62, 246, 248):
        e = _fault(basic(machine=machine).build())
        assert e.offset == 18 and "not EM_BPF" in str(e)
    assert "e_machine EM_X86_64, not EM_BPF" in str(_fault(basic(machine=62).build()))
    assert "e_machine 246, not EM_BPF" in str(_fault(basic(machine=246).build()))
    e = _fault(basic(data_enc=2).build())
    assert (str(e), e.offset) == ("<bytes>: object byte order does not match this host "
                                  "(build with -target bpfel) (offset 0x5)", 5)


def test_short_header():
    raw = basic().build()
    for n in (0, 10, 63):
        with pytest.raises(ObjectError) as info:
            elf._section_table(raw[:n], "p", "<")
        assert (str(info.value), info.value.offset) == \
            (f"p: {n} bytes, too short for an ELF header (offset 0x0)", 0)
    e = _fault(raw[:63])
    assert (str(e), e.offset) == ("<bytes>: 63 bytes, too short for an ELF header (offset 0x0)", 0)
    head = bytearray(raw[:64])
    struct.pack_into("<Q", head, 40, 0)          # no section headers at all
    assert elf._section_table(bytes(head), "p", "<") == []
    assert str(_fault(bytes(head))) == "<bytes>: no .symtab (was the object stripped?)"


def test_section_header_table_bounds():
    raw = basic().build()
    n = 7
    shoff = struct.unpack_from("<Q", raw, 40)[0]
    assert shoff + n * 64 == len(raw)
    assert len(elf._section_table(raw, "p", "<")) == n
    e = _fault(raw[:-1])
    assert (str(e), e.offset) == (f"<bytes>: {n} section headers at {shoff:#x} run past "
                                  f"the end of the file ({len(raw) - 1} bytes) (offset 0x3c)",
                                  60)
    one = bytearray(raw)
    struct.pack_into("<H", one, 60, 1)                 # only the null section
    assert len(elf._section_table(bytes(one), "p", "<")) == 1
    struct.pack_into("<Q", one, 40, len(raw) - 64)     # the last header: still inside
    assert len(elf._section_table(bytes(one), "p", "<")) == 1
    struct.pack_into("<Q", one, 40, len(raw) - 63)
    e = _fault(bytes(one))
    assert (str(e), e.offset) == (f"<bytes>: section header table at {len(raw) - 63:#x} is "
                                  f"past the end of the file ({len(raw)} bytes) (offset 0x28)",
                                  40)
    for size in (0, 56, 65):
        e = _fault(basic(shentsize=size).build())
        assert (str(e), e.offset) == (f"<bytes>: section header size {size}, not 64 "
                                      "(offset 0x3a)", 58)


def test_section_count_in_section_zero():
    o = basic(shnum=0, null=Sec("", 0, size=7, align=0))
    obj = elf.read_elf(o.build())
    assert [s.name for s in obj.sections][-1] == ".shstrtab" and len(obj.sections) == 7
    o = basic(shnum=0, null=Sec("", 0, size=8, align=0))
    e = _fault(o.build())
    assert e.offset == 60 and "8 section headers at" in str(e)


def test_section_names_through_shn_xindex():
    o = basic(shstrndx=0xFFFF, null=Sec("", 0, link=6, align=0))
    obj = elf.read_elf(o.build())
    assert [s.name for s in obj.sections] == ["", ".text", ".data", ".strtab", ".symtab",
                                              ".rel.text", ".shstrtab"]
    # 0xfffe is a plain (out of range) index: no names at all
    e = _fault(basic(shstrndx=0xFFFE, null=Sec("", 0, link=6, align=0)).build())
    assert str(e) == ("section #1: name offset 1 is past its string table (0 bytes) "
                      f"(section #1, offset {_shdr_at(basic().build(), 1):#x})")


@pytest.mark.parametrize("shstrndx", [0, 7])
def test_section_names_missing(shstrndx):
    raw = basic().build()
    shstr_off, shstr_size = struct.unpack_from("<QQ", raw, _shdr_at(raw, 6) + 24)
    # section 0 pointing at the names does not make them the names
    o = basic(shstrndx=shstrndx, null=Sec("", 0, offset=shstr_off, size=shstr_size, align=0))
    e = _fault(o.build())
    assert (e.section, e.offset) == ("#1", _shdr_at(raw, 1))
    assert str(e).startswith("section #1: name offset 1 is past its string table (0 bytes)")


def test_section_name_strings():
    o = basic()
    section(o, ".data").name_off = 10 ** 6
    raw = o.build()
    e = _fault(raw)
    assert (e.section, e.offset) == ("#2", _shdr_at(raw, 2))
    assert str(e) == ("section #2: name offset 1000000 is past its string table (49 bytes) "
                      f"(section #2, offset {_shdr_at(raw, 2):#x})")
    o = basic()
    section(o, ".data").name_off = 48           # the last NUL: an empty name
    obj = elf.read_elf(o.build())
    assert obj.sections[2].name == ""
    o = basic()
    section(o, ".data").name_off = 49           # one past the table
    e = _fault(o.build())
    assert "name offset 49 is past its string table (49 bytes)" in str(e)
    # a table whose last name has no NUL, while the file's next byte is one
    o = basic(unterminated_shstrtab=True, shstrtab_tail=b"\0")
    e = _fault(o.build())
    assert e.section == "#6" and "section #6: name offset 39 is past its string table " \
        "(48 bytes)" in str(e)


def test_unknown_section_types_and_nobits():
    o = basic()
    o.sections.append(Sec(".bss", SHT_NOBITS, SHF_ALLOC | SHF_WRITE, size=1 << 40,
                          offset=1 << 50))
    o.sections.append(Sec(".note", 7, 0, b"abcd"))
    obj = elf.read_elf(o.build())
    bss, note = obj.sections[6], obj.sections[7]
    assert (bss.type, bss.size, bss.data) == (elf.SHT_NOBITS, 1 << 40, b"")
    assert (note.type, note.data) == (0, b"abcd")
    # section 0 with lying offset/size holds no data
    obj = elf.read_elf(basic(null=Sec("", 0, offset=1 << 50, size=1 << 50, align=0)).build())
    assert obj.sections[0].data == b"" and obj.sections[0].size == 1 << 50


def test_section_data_bounds():
    o = basic()
    raw = o.build()
    off, size = struct.unpack_from("<QQ", raw, _shdr_at(raw, 2) + 24)
    ok = basic()
    section(ok, ".data").offset = len(raw) - 8          # the file's last 8 bytes
    raw_ok = ok.build()
    assert elf.read_elf(raw_ok).sections[2].data == raw_ok[-8:]
    bad = basic()
    section(bad, ".data").offset = len(raw) - 7
    e = _fault(bad.build())
    assert (str(e), e.section, e.offset) == (
        f"<bytes>: section data past the end of the file (section .data, offset "
        f"{len(raw) - 7:#x})", ".data", len(raw) - 7)
    bad = basic()
    section(bad, ".data").size = len(raw)
    e = _fault(bad.build())
    assert (e.section, e.offset) == (".data", off)
    nameless = basic()
    section(nameless, ".data").name_off = 0
    section(nameless, ".data").offset = 1 << 40
    e = _fault(nameless.build())
    assert (e.section, e.offset) == ("#2", 1 << 40)


@pytest.mark.parametrize("name,kind,want", [(".symtab", "symbol table", 24),
                                            (".rel.text", "relocation section", 16)])
def test_entry_sizes(name, kind, want):
    for entsize, extra in ((want - 1, 0), (want + 1, 0), (0, 0), (want, 1), (want, want - 1)):
        o = basic()
        s = section(o, name)
        s.entsize = entsize
        s.data += bytes(extra)
        e = _fault(o.build())
        assert (str(e), e.section) == (
            f"<bytes>: {kind} of {len(s.data)} bytes in entries of {entsize} (want entries "
            f"of {want}) (section {name})", name)
    o = basic()
    section(o, name).name_off = 0
    section(o, name).entsize = 1
    assert _fault(o.build()).section == f"#{o.index(name)}"


def test_symtab_string_table_link():
    for link, ok in ((0, False), (6, True), (7, False), (1 << 20, False)):
        o = basic()
        section(o, ".symtab").link = link
        if ok:          # .shstrtab as the symbol names: offsets land elsewhere, still valid
            obj = elf.read_elf(o.build())
            assert obj.symbols[1].name == ".text"
            continue
        e = _fault(o.build())
        assert (str(e), e.section) == (f"<bytes>: the symbol table's string table is section "
                                       f"{link} (section .symtab)", ".symtab")


def test_no_symtab_and_the_last_symtab_wins():
    o = basic()
    section(o, ".symtab").type = SHT_PROGBITS
    section(o, ".rel.text").link = 0
    assert str(_fault(o.build())) == "<bytes>: no .symtab (was the object stripped?)"
    o = basic()
    section(o, ".rel.text").data = b""
    strs, (a,) = strtab("second")
    o.sections.append(Sec(".symtab2", SHT_SYMTAB, data=sym(0) + sym(a, 0x12, 0, 1),
                          link=7, entsize=24))
    o.sections.append(Sec(".strtab2", SHT_STRTAB, data=strs, align=1))
    obj = elf.read_elf(o.build())
    assert [s.name for s in obj.symbols] == ["", "second"]
    assert obj.relocs == {1: []}


def test_symbols_decoded():
    o = basic()
    strs, offs = strtab("a", "b", "c", "d", "e", "f", "g", "h")
    section(o, ".strtab").data = strs
    section(o, ".symtab").data = b"".join([
        sym(0),
        sym(offs[0], 0x14, 1, 1, 0x1234, 9),       # STT_FILE, STB_GLOBAL, INTERNAL
        sym(offs[1], 0x30, 2, 2),                  # STT_NOTYPE, bind 3, HIDDEN
        sym(offs[2], 0x21, 3, 0xFFF1, 5),          # OBJECT, WEAK, PROTECTED, SHN_ABS
        sym(offs[3], 0xA2, 0x6, 0xFFF2),           # FUNC, GNU_UNIQUE, high bits + HIDDEN
        sym(offs[4], 0x03, 0x4, 6),                # SECTION, LOCAL, high bits + DEFAULT
        sym(offs[5], 0x1F, 0x5, 0),                # type 15, INTERNAL with a high bit
        sym(offs[0], 0x10, 0, 1),                  # the name "a" again (cached)
    ])
    obj = elf.read_elf(o.build())
    assert [(s.index, s.name, s.value, s.size, s.type, s.bind, s.visibility, s.shndx)
            for s in obj.symbols] == [
        (0, "", 0, 0, 0, 0, 0, 0),
        (1, "a", 0x1234, 9, -1, 1, 2, 1),
        (2, "b", 0, 0, 0, -1, 2, 2),
        (3, "c", 5, 0, 1, 2, 0, 0xFFF1),
        (4, "d", 0, 0, 2, -1, 2, 0xFFF2),
        (5, "e", 0, 0, 3, 0, 0, 6),
        (6, "f", 0, 0, -1, 1, 2, 0),
        (7, "a", 0, 0, 0, 1, 0, 1)]


@pytest.mark.parametrize("shndx", [7, 0xFFF0, 0xFFF3, 0xFFFF])
def test_symbol_section_past_the_last(shndx):
    o = basic()
    strs, (a,) = strtab("bad")
    section(o, ".strtab").data += strs[1:]
    section(o, ".symtab").data += sym(len(b"\0prog\0var\0"), 0x11, 0, shndx)
    e = _fault(o.build())
    assert (str(e), e.section, e.offset) == (
        f"symbol 'bad' in section {shndx}, past the last (section .symtab, offset 0x60)",
        ".symtab", 4 * 24)


def test_symbol_name_faults():
    o = basic()
    section(o, ".symtab").data += sym(10)         # == len(.strtab)
    e = _fault(o.build())
    assert (str(e), e.section, e.offset) == (
        "symbol #4: name offset 10 is past its string table (10 bytes) "
        "(section .symtab, offset 0x60)", ".symtab", 96)
    o = basic()
    section(o, ".strtab").data = b"\0prog\0var"      # the last name unterminated
    e = _fault(o.build())
    assert (e.section, e.offset) == (".symtab", 48)
    assert "symbol #2: name offset 6 is past its string table (9 bytes)" in str(e)


def test_relocation_targets():
    for info in (0, 7, 1 << 20):
        o = basic()
        section(o, ".rel.text").info = info
        e = _fault(o.build())
        assert (str(e), e.section) == (f"<bytes>: relocation section targets section {info} "
                                       "(section .rel.text)", ".rel.text")
    # a target that is not SHF_ALLOC (debug info, .BTF): skipped, garbage and all
    o = basic()
    section(o, ".text").flags = elf.SHF_EXECINSTR
    section(o, ".rel.text").data = rel(1 << 40, 1 << 20, 77)
    obj = elf.read_elf(o.build())
    assert obj.relocs == {}
    # relocations of the last section
    o = basic()
    o.sections.append(Sec(".rel.data", SHT_REL, data=rel(4, 1, 10), link=4, info=2,
                          entsize=16))
    obj = elf.read_elf(o.build())
    assert sorted(obj.relocs) == [1, 2]
    [r] = obj.relocs[2]
    assert (r.offset, r.sym.name, r.type) == (4, "prog", elf.R_BPF_64_32)


def test_relocation_records():
    o = basic()
    section(o, ".rel.text").data = (rel(0, 2, 1) + rel(8, 3, 10) + rel(15, 1, 0xFFFFFFFF)
                                    + rel(3, 0, 0x80000000))
    obj = elf.read_elf(o.build())
    assert [(r.offset, r.sym.index, r.type) for r in obj.relocs[1]] == [
        (0, 2, 1), (8, 3, 10), (15, 1, 0xFFFFFFFF), (3, 0, 0x80000000)]
    o = basic()
    section(o, ".rel.text").data = rel(0, 2, 1) + rel(8, 4, 1)
    e = _fault(o.build())
    assert (str(e), e.section, e.offset) == (
        "relocation names symbol 4, the symbol table has 4 (section .rel.text, offset 0x10)",
        ".rel.text", 16)
    o = basic()
    section(o, ".rel.text").data = rel(0, 2, 1) + rel(16, 2, 1)
    e = _fault(o.build())
    assert (str(e), e.section, e.offset) == (
        "relocation offset 0x10 past the end of .text (section .rel.text, offset 0x10)",
        ".rel.text", 16)


def test_header_fields_each_named():
    raw = basic().build()

    def with_bytes(at: int, value: bytes) -> bytes:
        return raw[:at] + value + raw[at + len(value):]
    cases = [
        (with_bytes(4, b"\x00"), "t.o: invalid ELF class 0 (offset 0x4)", 4),
        (with_bytes(4, b"\x03"), "t.o: invalid ELF class 3 (offset 0x4)", 4),
        (with_bytes(5, b"\x00"), "t.o: invalid ELF data encoding 0 (offset 0x5)", 5),
        (with_bytes(5, b"\x07"), "t.o: invalid ELF data encoding 7 (offset 0x5)", 5),
        (with_bytes(16, struct.pack("<H", 2)),
         "t.o: e_type 2, not ET_REL (a relocatable object, as clang -c makes) (offset 0x10)",
         16),
        (with_bytes(16, struct.pack("<H", 3)),
         "t.o: e_type 3, not ET_REL (a relocatable object, as clang -c makes) (offset 0x10)",
         16),
        (with_bytes(18, struct.pack("<H", 0xBEEF)), "t.o: e_machine 48879, not EM_BPF "
         "(offset 0x12)", 18),
    ]
    for data, message, offset in cases:
        e = _fault(data, "t.o")
        assert (str(e), e.offset, e.section, e.__cause__) == (message, offset, None, None)
    # EM_NONE, which LLVM wrote before BPF had a number, is a BPF object (as for libbpf)
    assert len(elf.read_elf(with_bytes(18, b"\x00\x00")).sections) == 7


def test_object_reading_needs_no_pyelftools():
    """Decoding a BPF object leaves pyelftools unimported (the ~20 ms of every start)."""
    code = ("import sys; from pybpf.obj import elf; "
            f"elf.read_elf({basic().build()!r}); "
            "print(sorted(m for m in sys.modules if m.startswith('elftools')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.strip() == "[]"
    assert "EM_X86_64" in str(_fault(basic(machine=62).build()))   # named by pyelftools


def test_constants_are_the_elf_specs():
    """Our ELF numbers against pyelftools' tables of the ELF specification."""
    from elftools.elf import constants, enums
    from elftools.elf.structs import ELFStructs
    assert elf.EM_BPF == enums.ENUM_E_MACHINE["EM_BPF"] == 247
    for name in ("SHT_NULL", "SHT_PROGBITS", "SHT_SYMTAB", "SHT_NOBITS", "SHT_REL"):
        assert getattr(elf, name) == enums.ENUM_SH_TYPE_BASE[name], name
    for name in ("SHF_WRITE", "SHF_ALLOC", "SHF_EXECINSTR"):
        assert getattr(elf, name) == getattr(constants.SH_FLAGS, name), name
    for name in ("SHN_UNDEF", "SHN_ABS", "SHN_COMMON"):
        assert getattr(elf, name) == enums.ENUM_ST_SHNDX[name], name
    assert elf.SHN_XINDEX == 0xFFFF
    for name in ("STT_NOTYPE", "STT_OBJECT", "STT_FUNC", "STT_SECTION"):
        assert getattr(elf, name) == enums.ENUM_ST_INFO_TYPE[name], name
    for name in ("STB_LOCAL", "STB_GLOBAL", "STB_WEAK"):
        assert getattr(elf, name) == enums.ENUM_ST_INFO_BIND[name], name
    for name in ("STV_DEFAULT", "STV_INTERNAL", "STV_HIDDEN"):
        assert getattr(elf, name) == enums.ENUM_ST_VISIBILITY[name], name
    assert elf._HIDDEN_VIS == (1, 2)
    assert (elf.R_BPF_64_64, elf.R_BPF_64_32) == (enums.ENUM_RELOC_TYPE_BPF["R_BPF_64_64"],
                                                  enums.ENUM_RELOC_TYPE_BPF["R_BPF_64_32"])
    s = ELFStructs(little_endian=True, elfclass=64)
    s.create_basic_structs()
    s.create_advanced_structs()
    assert (elf.SHDR_SIZE, elf.SYM_SIZE, elf.REL_SIZE) == (
        s.Elf_Shdr.sizeof(), s.Elf_Sym.sizeof(), s.Elf_Rel.sizeof())
    assert elf._SHT_KNOWN == {1, 2, 8, 9}
    assert elf._SYM_TYPES == {0: 0, 1: 1, 2: 2, 3: 3} and elf._SYM_BINDS == {0: 0, 1: 1, 2: 2}


def test_relocations_of_a_writable_only_section_skipped():
    """Only SHF_ALLOC targets are relocated: SHF_WRITE or SHF_EXECINSTR alone are not."""
    for flags in (elf.SHF_WRITE, elf.SHF_EXECINSTR, elf.SHF_WRITE | elf.SHF_EXECINSTR):
        o = basic()
        section(o, ".text").flags = flags
        section(o, ".rel.text").data = rel(1 << 40, 1 << 20, 77)
        assert elf.read_elf(o.build()).relocs == {}


def test_clang_object_layout():
    """clang puts .strtab at index 1, as both the section and the symbol names."""
    import io
    from elftools.elf.elffile import ELFFile
    from conftest import built
    raw = built("exec.bpf.o").read_bytes()
    assert struct.unpack_from("<H", raw, 62) == (1,)
    obj = elf.read_elf(raw)
    ref = ELFFile(io.BytesIO(raw))
    assert [s.name for s in obj.sections] == [s.name for s in ref.iter_sections()]
    assert ref.get_section_by_name(".symtab")["sh_link"] == 1
    assert [s.name for s in obj.symbols] == \
        [s.name for s in ref.get_section_by_name(".symtab").iter_symbols()]
    code = obj.section("tp/sched/sched_process_exec").index
    rel = ref.get_section_by_name(".reltp/sched/sched_process_exec")
    assert [(r.offset, r.sym.index, r.type) for r in obj.relocs[code]] == \
        [(r["r_offset"], r["r_info_sym"], r["r_info_type"]) for r in rel.iter_relocations()]
