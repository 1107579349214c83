"""ELF reading for BPF objects: sections, symbols and relocations (no kernel).

A BPF object is a small relocatable ELF file of a few fixed-size tables, and a
loader must distrust every field of it: this module decodes the header, section
table, symbols and relocations with ``struct`` after checking what a BPF loader
relies on (class, byte order, type, machine, indices and offsets in range), and
turns every fault into an :class:`~pybpf.errors.ObjectError` that names the
section and offset, so nothing else in pybpf has to distrust the file.
pyelftools, which reads host binaries for uprobes, USDT and stacks
(``obj.uprobe``, ``obj.usdt``, ``obj.symbols``), is imported here only to name a
foreign ``e_machine``: the start of every ``load`` does without its ~20 ms import.
"""
from __future__ import annotations

import os
import struct
import sys
from typing import Dict, List, Optional, Tuple, Union

from .. import limits
from ..errors import ObjectError
from ..files import open_regular
from ..record import Record

ELFMAG = b"\x7fELF"
EI_CLASS, EI_DATA = 4, 5                     # e_ident bytes
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2
ET_REL = 1
EM_NONE, EM_BPF = 0, 247
SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_NOBITS, SHT_REL = 0, 1, 2, 8, 9
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHF_COMPRESSED = 0x800          # data starts with an Elf_Chdr, then zlib/zstd
SHN_UNDEF, SHN_ABS, SHN_COMMON, SHN_XINDEX = 0, 0xFFF1, 0xFFF2, 0xFFFF
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION = 0, 1, 2, 3
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STV_DEFAULT, STV_INTERNAL, STV_HIDDEN = 0, 1, 2
#: visibilities libbpf treats as hidden (STV_INTERNAL is a stronger STV_HIDDEN)
_HIDDEN_VIS = (STV_INTERNAL, STV_HIDDEN)
R_BPF_64_64, R_BPF_64_32 = 1, 10     # the relocation types code uses

#: the sizes of Elf64_Shdr, Elf64_Sym and Elf64_Rel: any other entry size is a lie
SHDR_SIZE, SYM_SIZE, REL_SIZE = 64, 24, 16
MAX_OBJECT_SIZE = limits.MAX_OBJECT_SIZE

_SHT_KNOWN = frozenset({SHT_PROGBITS, SHT_SYMTAB, SHT_NOBITS, SHT_REL})


class Section(Record):
    """One ELF section: its header's fields and its bytes."""

    _fields = ("index", "name", "type", "flags", "size", "align", "data")
    __slots__ = _fields
    index: int
    name: str
    type: int            # SHT_*; other types than the ones above are 0
    flags: int
    size: int
    align: int
    data: bytes          # b"" for SHT_NOBITS (.bss)

    def __init__(self, index: int, name: str, type: int, flags: int, size: int, align: int,
                 data: bytes) -> None:
        self.index = index
        self.name = name
        self.type = type
        self.flags = flags
        self.size = size
        self.align = align
        self.data = data

    @property
    def is_exec(self) -> bool:
        return self.type == SHT_PROGBITS and bool(self.flags & SHF_EXECINSTR)


class Symbol(Record):
    """One entry of the symbol table."""

    _fields = ("index", "name", "value", "size", "type", "bind", "visibility", "shndx")
    __slots__ = _fields
    index: int
    name: str
    value: int
    size: int
    type: int            # STT_*
    bind: int            # STB_*
    visibility: int      # STV_*
    shndx: int           # section index, or SHN_UNDEF / SHN_ABS / SHN_COMMON

    def __init__(self, index: int, name: str, value: int, size: int, type: int, bind: int,
                 visibility: int, shndx: int) -> None:
        self.index = index
        self.name = name
        self.value = value
        self.size = size
        self.type = type
        self.bind = bind
        self.visibility = visibility
        self.shndx = shndx


class Reloc(Record):
    """One Elf64_Rel entry, its symbol resolved."""

    _fields = ("offset", "sym", "type")
    __slots__ = _fields
    offset: int          # byte offset in the target section
    sym: Symbol
    type: int            # R_BPF_*

    def __init__(self, offset: int, sym: Symbol, type: int) -> None:
        self.offset = offset
        self.sym = sym
        self.type = type


class ElfObject(Record):
    """A BPF object's sections, symbols and relocations (by target section index)."""

    _fields = ("path", "sections", "symbols", "relocs")
    __slots__ = _fields + ("_by_name", "_indexed")
    path: str
    sections: List[Section]
    symbols: List[Symbol]
    relocs: Dict[int, List[Reloc]]      # target shndx -> relocs
    _by_name: Dict[str, Section]        # section(): name -> first section of that name
    _indexed: int                       # how many sections _by_name indexes (-1: none)

    def __init__(self, path: str, sections: List[Section], symbols: List[Symbol],
                 relocs: Optional[Dict[int, List[Reloc]]] = None) -> None:
        self.path = path
        self.sections = sections
        self.symbols = symbols
        self.relocs = {} if relocs is None else relocs
        self._by_name = {}              # built by the first section() call
        self._indexed = -1

    def section(self, name: str) -> Optional[Section]:
        """The first section named ``name`` (by an index, rebuilt when sections change)."""
        if self._indexed != len(self.sections):
            self._by_name = {}
            for sec in reversed(self.sections):
                self._by_name[sec.name] = sec
            self._indexed = len(self.sections)
        return self._by_name.get(name)

    def section_at(self, index: int) -> Section:
        if not 0 <= index < len(self.sections):
            raise ObjectError(f"section index {index} out of range")
        return self.sections[index]


_SYM_TYPES = {t: t for t in (STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION)}
_SYM_BINDS = {b: b for b in (STB_LOCAL, STB_GLOBAL, STB_WEAK)}


def read_elf(source: Union[str, "os.PathLike[str]", bytes, bytearray, memoryview],
             name: str = "") -> ElfObject:
    """Parse a BPF ELF object from a path or bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = bytes(source)
        path = name or "<bytes>"
        if len(raw) > MAX_OBJECT_SIZE:
            raise ObjectError(f"{path}: {len(raw)} bytes, larger than the {MAX_OBJECT_SIZE}"
                              " bytes an object may have")
    else:
        path = str(source)
        raw = read_regular_file(path, MAX_OBJECT_SIZE)
    return _read(raw, path)


def read_regular_file(path: str, limit: int, what: str = "") -> bytes:
    """The bytes of the regular file at ``path`` (:func:`open_regular`), at most
    ``limit``; errors say ``cannot read WHAT PATH``."""
    name = f"{what} {path}" if what else path
    fd = open_regular(path, lambda why, _errno: ObjectError(f"cannot read {name}: {why}"))
    try:
        st_size = os.fstat(fd).st_size
        if st_size > limit:
            raise ObjectError(f"cannot read {name}: {st_size} bytes, larger than the "
                              f"{limit} bytes an object may have")
        chunks: List[bytes] = []
        size = 0
        while True:         # to the end, which a file still being written may move
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ObjectError(f"cannot read {name}: larger than the {limit} bytes an "
                                  "object may have")
        return b"".join(chunks)
    except OSError as e:
        raise ObjectError(f"cannot read {name}: {e.strerror}") from None
    finally:
        os.close(fd)


def _section_table(raw: bytes, path: str, order: str) -> List[Tuple[int, ...]]:
    """The raw section headers (``_SHDR`` tuples), checked to lie inside the file
    with 64-byte entries before any is read (an entry size of 0 would repeat one
    header forever, a count from section 0 may claim 2**64)."""
    if len(raw) < 64:
        raise ObjectError(f"{path}: {len(raw)} bytes, too short for an ELF header", offset=0)
    shoff, = struct.unpack_from(order + "Q", raw, 40)
    shentsize, shnum = struct.unpack_from(order + "HH", raw, 58)
    if not shoff:
        return []
    if shentsize != SHDR_SIZE:
        raise ObjectError(f"{path}: section header size {shentsize}, not {SHDR_SIZE}",
                          offset=58)
    if shoff > len(raw) - SHDR_SIZE:
        raise ObjectError(f"{path}: section header table at {shoff:#x} is past the end of "
                          f"the file ({len(raw)} bytes)", offset=40)
    if not shnum:               # 0xff00 sections or more: the count is in section 0
        shnum, = struct.unpack_from(order + "Q", raw, shoff + 32)
    if shnum * SHDR_SIZE > len(raw) - shoff:
        raise ObjectError(f"{path}: {shnum} section headers at {shoff:#x} run past the end "
                          f"of the file ({len(raw)} bytes)", offset=60)
    shdr = struct.Struct(order + "IIQQQQIIQQ")
    return [shdr.unpack_from(raw, shoff + i * SHDR_SIZE) for i in range(shnum)]


def _cstring(table: bytes, off: int, what: str, section: str, where: int) -> str:
    end = table.find(b"\0", off)
    if off >= len(table) or end < 0:
        raise ObjectError(f"{what}: name offset {off} is past its string table "
                          f"({len(table)} bytes)", section=section, offset=where)
    return table[off:end].decode("utf-8", "surrogateescape")   # as BTF names (btf.strtab)


def _machine_name(machine: int) -> str:
    """``EM_X86_64`` for 62, as pyelftools names machines (the number if it cannot)."""
    from elftools.elf.enums import ENUM_E_MACHINE
    return next((name for name, value in ENUM_E_MACHINE.items()
                 if value == machine and name != "_default_"), str(machine))


def _check_header(raw: bytes, path: str) -> str:
    """The struct byte order of a 64-bit relocatable BPF object of this host's byte
    order (ObjectError naming the field otherwise).  As libbpf, e_machine may also
    be EM_NONE, which LLVM wrote for BPF before it had a number."""
    if raw[:4] != ELFMAG:
        raise ObjectError(f"{path}: not an ELF file (bad magic)", offset=0)
    if len(raw) < 64:
        raise ObjectError(f"{path}: {len(raw)} bytes, too short for an ELF header", offset=0)
    eclass, data = raw[EI_CLASS], raw[EI_DATA]
    if eclass == ELFCLASS32:
        raise ObjectError(f"{path}: ELF class 32, BPF objects are 64-bit", offset=EI_CLASS)
    if eclass != ELFCLASS64:
        raise ObjectError(f"{path}: invalid ELF class {eclass}", offset=EI_CLASS)
    if data not in (ELFDATA2LSB, ELFDATA2MSB):
        raise ObjectError(f"{path}: invalid ELF data encoding {data}", offset=EI_DATA)
    host_little = sys.byteorder == "little"
    if (data == ELFDATA2LSB) != host_little:
        raise ObjectError(f"{path}: object byte order does not match this host "
                          f"(build with -target {'bpfel' if host_little else 'bpfeb'})",
                          offset=EI_DATA)
    order = "<" if host_little else ">"
    e_type, machine = struct.unpack_from(order + "HH", raw, 16)
    if e_type != ET_REL:
        raise ObjectError(f"{path}: e_type {e_type}, not ET_REL (a relocatable object, as "
                          "clang -c makes)", offset=16)
    if machine not in (EM_BPF, EM_NONE):
        raise ObjectError(f"{path}: e_machine {_machine_name(machine)}, not EM_BPF", offset=18)
    return order


def _read(raw: bytes, path: str) -> ElfObject:
    order = _check_header(raw, path)
    headers = _section_table(raw, path, order)
    shoff, = struct.unpack_from(order + "Q", raw, 40)
    shstrndx, = struct.unpack_from(order + "H", raw, 62)
    if shstrndx == SHN_XINDEX and headers:
        shstrndx = headers[0][6]             # sh_link of section 0
    names = b""
    if 0 < shstrndx < len(headers):
        name_hdr = headers[shstrndx]
        names = raw[name_hdr[4]:name_hdr[4] + name_hdr[5]]
    sections: List[Section] = []
    symtab: Optional[int] = None
    rel_targets: Dict[int, int] = {}
    for index, (name_off, sh_type, flags, _, off, size, link, info, align, entsize) \
            in enumerate(headers):
        name = _cstring(names, name_off, f"section #{index}", f"#{index}",
                        shoff + index * SHDR_SIZE) if index else ""
        kind = sh_type if sh_type in _SHT_KNOWN else 0
        if sh_type in (SHT_NULL, SHT_NOBITS):
            data = b""
        else:
            if off + size > len(raw):
                raise ObjectError(f"{path}: section data past the end of the file",
                                  section=name or f"#{index}", offset=off)
            data = raw[off:off + size]
        sections.append(Section(index, name, kind, flags, size, align, data))
        if kind in (SHT_SYMTAB, SHT_REL):
            want = SYM_SIZE if kind == SHT_SYMTAB else REL_SIZE
            if entsize != want or size % want:
                what = "symbol table" if kind == SHT_SYMTAB else "relocation section"
                raise ObjectError(f"{path}: {what} of {size} bytes in entries of {entsize}"
                                  f" (want entries of {want})", section=name or f"#{index}")
        if kind == SHT_SYMTAB:
            if not 0 < link < len(headers):
                raise ObjectError(f"{path}: the symbol table's string table is section "
                                  f"{link}", section=name)
            symtab = index
        elif kind == SHT_REL:
            rel_targets[index] = info
    if symtab is None:
        raise ObjectError(f"{path}: no .symtab (was the object stripped?)")
    symbols = _read_symbols(sections[symtab].data, sections[headers[symtab][6]].data,
                            len(sections), order)
    obj = ElfObject(path, sections, symbols)
    for index, target in rel_targets.items():
        sec = sections[index]
        if not 0 < target < len(sections):
            raise ObjectError(f"{path}: relocation section targets section {target}",
                              section=sec.name)
        if not sections[target].flags & SHF_ALLOC:
            continue        # debug info and .BTF: nothing a loader relocates
        obj.relocs[target] = _read_relocs(sec, sections[target], symbols, order)
    return obj


def _read_symbols(data: bytes, names: bytes, nsections: int, order: str) -> List[Symbol]:
    """Elf64_Sym records (unpacked in bulk: a table of 40k symbols takes milliseconds)."""
    out = []
    cache: Dict[int, str] = {}
    sym = struct.Struct(order + "IBBHQQ")
    for index, (name_off, info, other, shndx, value, size) in enumerate(sym.iter_unpack(data)):
        name = cache.get(name_off)
        if name is None:
            name = cache[name_off] = _cstring(names, name_off, f"symbol #{index}",
                                              ".symtab", index * SYM_SIZE)
        if shndx not in (SHN_UNDEF, SHN_ABS, SHN_COMMON) and not shndx < nsections:
            raise ObjectError(f"symbol {name!r} in section {shndx}, past the last",
                              section=".symtab", offset=index * SYM_SIZE)
        out.append(Symbol(index, name, value, size, _SYM_TYPES.get(info & 0xF, -1),
                          _SYM_BINDS.get(info >> 4, -1),
                          STV_HIDDEN if other & 0x3 in _HIDDEN_VIS else STV_DEFAULT, shndx))
    return out


def _read_relocs(relsec: Section, target: Section, symbols: List[Symbol],
                 order: str) -> List[Reloc]:
    """Elf64_Rel records of one relocation section, checked against ``target``."""
    out = []
    for n, (offset, info) in enumerate(struct.iter_unpack(order + "QQ", relsec.data)):
        sym_idx, where = info >> 32, n * REL_SIZE
        if not sym_idx < len(symbols):
            raise ObjectError(f"relocation names symbol {sym_idx}, the symbol table has "
                              f"{len(symbols)}", section=relsec.name, offset=where)
        if offset >= target.size:
            raise ObjectError(f"relocation offset {offset:#x} past the end of "
                              f"{target.name}", section=relsec.name, offset=where)
        out.append(Reloc(offset, symbols[sym_idx], info & 0xFFFFFFFF))
    return out
