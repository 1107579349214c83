"""ELF reading for BPF objects: sections, symbols and relocations (no kernel).

pyelftools does the ELF decoding; this module checks what a BPF loader relies
on (machine, class, byte order, indices and offsets in range) and turns every
fault into an :class:`~pybpf.errors.ObjectError` that names the section and
offset, so nothing else in pybpf has to distrust the file.
"""
from __future__ import annotations

import io
import os
import stat
import struct
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Union

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from . import limits
from .errors import ObjectError

EM_BPF = 247
SHT_PROGBITS, SHT_SYMTAB, SHT_NOBITS, SHT_REL = 1, 2, 8, 9
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHN_UNDEF, SHN_ABS, SHN_COMMON = 0, 0xFFF1, 0xFFF2
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION = 0, 1, 2, 3
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STV_DEFAULT, STV_HIDDEN = 0, 2
R_BPF_64_64, R_BPF_64_32 = 1, 10     # the relocation types code uses

#: the sizes of Elf64_Shdr, Elf64_Sym and Elf64_Rel: any other entry size is a lie
SHDR_SIZE, SYM_SIZE, REL_SIZE = 64, 24, 16
MAX_OBJECT_SIZE = limits.MAX_OBJECT_SIZE

_SHT = {"SHT_PROGBITS": SHT_PROGBITS, "SHT_SYMTAB": SHT_SYMTAB, "SHT_NOBITS": SHT_NOBITS,
        "SHT_REL": SHT_REL}


@dataclass
class Section:
    index: int
    name: str
    type: int            # SHT_*; other types than the ones above are 0
    flags: int
    size: int
    align: int
    data: bytes          # b"" for SHT_NOBITS (.bss)

    @property
    def is_exec(self) -> bool:
        return self.type == SHT_PROGBITS and bool(self.flags & SHF_EXECINSTR)


@dataclass
class Symbol:
    index: int
    name: str
    value: int
    size: int
    type: int            # STT_*
    bind: int            # STB_*
    visibility: int      # STV_*
    shndx: int           # section index, or SHN_UNDEF / SHN_ABS / SHN_COMMON


@dataclass
class Reloc:
    offset: int          # byte offset in the target section
    sym: Symbol
    type: int            # R_BPF_*


@dataclass
class ElfObject:
    path: str
    sections: List[Section]
    symbols: List[Symbol]
    relocs: Dict[int, List[Reloc]] = field(default_factory=dict)  # target shndx -> relocs

    _by_name: Dict[str, Section] = field(default_factory=dict, repr=False, compare=False)
    _indexed: int = field(default=-1, repr=False, compare=False)

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


_SYM_TYPES = {"STT_NOTYPE": STT_NOTYPE, "STT_OBJECT": STT_OBJECT, "STT_FUNC": STT_FUNC,
              "STT_SECTION": STT_SECTION}
_SYM_BINDS = {"STB_LOCAL": STB_LOCAL, "STB_GLOBAL": STB_GLOBAL, "STB_WEAK": STB_WEAK}
_SPECIAL_SHNDX = {"SHN_UNDEF": SHN_UNDEF, "SHN_ABS": SHN_ABS, "SHN_COMMON": SHN_COMMON}


def read_elf(source: Union[str, bytes, "io.BufferedIOBase"], name: str = "") -> ElfObject:
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
    try:
        return _read(raw, path)
    except ObjectError:
        raise
    except (ELFError, Exception) as e:  # pyelftools raises many kinds on bad input
        raise ObjectError(f"{path}: malformed ELF: {e}") from e


_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def read_regular_file(path: str, limit: int) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed), at most ``limit``.

    Opened with O_NONBLOCK and checked with fstat before the first read, so a
    FIFO, a device or a directory is refused at once (ObjectError), never read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as e:
        raise ObjectError(f"cannot read {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((what for test, what in _FILE_KINDS if test(st.st_mode)), "special")
            raise ObjectError(f"cannot read {path}: not a regular file ({kind})")
        if st.st_size > limit:
            raise ObjectError(f"cannot read {path}: {st.st_size} bytes, larger than the "
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
                raise ObjectError(f"cannot read {path}: larger than the {limit} bytes an "
                                  "object may have")
        return b"".join(chunks)
    except OSError as e:
        raise ObjectError(f"cannot read {path}: {e.strerror}") from None
    finally:
        os.close(fd)


def _check_tables(raw: bytes, path: str, order: str) -> None:
    """The section header table lies inside the file with 64-byte entries, before
    pyelftools walks it (an entry size of 0 would repeat one header forever)."""
    if len(raw) < 64:
        raise ObjectError(f"{path}: {len(raw)} bytes, too short for an ELF header", offset=0)
    shoff, = struct.unpack_from(order + "Q", raw, 40)
    shentsize, shnum = struct.unpack_from(order + "HH", raw, 58)
    if not shoff and not shnum:
        return
    if shentsize != SHDR_SIZE:
        raise ObjectError(f"{path}: section header size {shentsize}, not {SHDR_SIZE}",
                          offset=58)
    if shoff > len(raw) - SHDR_SIZE:
        raise ObjectError(f"{path}: section header table at {shoff:#x} is past the end of "
                          f"the file ({len(raw)} bytes)", offset=40)
    if not shnum:               # more than 0xff00 sections: the count is in section 0
        shnum, = struct.unpack_from(order + "Q", raw, shoff + 32)
    if shnum * SHDR_SIZE > len(raw) - shoff:
        raise ObjectError(f"{path}: {shnum} section headers at {shoff:#x} run past the end "
                          f"of the file ({len(raw)} bytes)", offset=60)


def _read(raw: bytes, path: str) -> ElfObject:
    if raw[:4] != b"\x7fELF":
        raise ObjectError(f"{path}: not an ELF file (bad magic)", offset=0)
    elf = ELFFile(io.BytesIO(raw))
    if elf.elfclass != 64:
        raise ObjectError(f"{path}: ELF class {elf.elfclass}, BPF objects are 64-bit", offset=4)
    if elf["e_machine"] not in ("EM_BPF", EM_BPF):
        raise ObjectError(f"{path}: e_machine {elf['e_machine']}, not EM_BPF", offset=18)
    host_little = sys.byteorder == "little"
    if elf.little_endian != host_little:
        raise ObjectError(f"{path}: object byte order does not match this host "
                          f"(build with -target {'bpfel' if host_little else 'bpfeb'})",
                          offset=5)
    _check_tables(raw, path, "<" if host_little else ">")
    sections: List[Section] = []
    symtab = None
    for index, sec in enumerate(elf.iter_sections()):
        sh_type = _SHT.get(sec["sh_type"], 0)
        size = sec["sh_size"]
        if sh_type == SHT_NOBITS:
            data = b""
        else:
            off = sec["sh_offset"]
            if sec["sh_type"] != "SHT_NULL" and off + size > len(raw):
                raise ObjectError(f"{path}: section data past the end of the file",
                                  section=sec.name or f"#{index}", offset=off)
            data = raw[off:off + size] if sec["sh_type"] != "SHT_NULL" else b""
        sections.append(Section(index, sec.name, sh_type, sec["sh_flags"], size,
                                sec["sh_addralign"], data))
        if sh_type in (SHT_SYMTAB, SHT_REL) and \
                sec["sh_entsize"] != (SYM_SIZE if sh_type == SHT_SYMTAB else REL_SIZE):
            raise ObjectError(f"{path}: entry size {sec['sh_entsize']} of a "
                              f"{'symbol table' if sh_type == SHT_SYMTAB else 'relocation section'}"
                              f" (want {SYM_SIZE if sh_type == SHT_SYMTAB else REL_SIZE})",
                              section=sec.name or f"#{index}")
        if sh_type == SHT_SYMTAB:
            symtab = sec
    if symtab is None:
        raise ObjectError(f"{path}: no .symtab (was the object stripped?)")
    symbols = _read_symbols(symtab, len(sections))
    obj = ElfObject(path, sections, symbols)
    for index, sec in enumerate(elf.iter_sections()):
        if _SHT.get(sec["sh_type"]) == SHT_REL:
            target = sec["sh_info"]
            if not 0 < target < len(sections):
                raise ObjectError(f"{path}: relocation section targets section {target}",
                                  section=sec.name)
            if not sections[target].flags & SHF_ALLOC:
                continue        # debug info and .BTF: nothing a loader relocates
            obj.relocs[target] = _read_relocs(sec, sections[target], symbols)
    return obj


def _read_symbols(symtab, nsections: int) -> List[Symbol]:
    out = []
    for index, sym in enumerate(symtab.iter_symbols()):
        shndx = sym["st_shndx"]
        shndx = _SPECIAL_SHNDX.get(shndx, shndx) if isinstance(shndx, str) else shndx
        if shndx not in (SHN_UNDEF, SHN_ABS, SHN_COMMON) and not 0 <= shndx < nsections:
            raise ObjectError(f"symbol {sym.name!r} in section {shndx}, past the last",
                              section=".symtab", offset=index * 24)
        info = sym["st_info"]
        out.append(Symbol(index, sym.name, sym["st_value"], sym["st_size"],
                          _SYM_TYPES.get(info["type"], -1), _SYM_BINDS.get(info["bind"], -1),
                          STV_HIDDEN if sym["st_other"]["visibility"] == "STV_HIDDEN"
                          else STV_DEFAULT, shndx))
    return out


def _read_relocs(relsec, target: Section, symbols: List[Symbol]) -> List[Reloc]:
    out = []
    for n, rel in enumerate(relsec.iter_relocations()):
        sym_idx, offset = rel["r_info_sym"], rel["r_offset"]
        where = n * relsec["sh_entsize"]
        if not 0 <= sym_idx < len(symbols):
            raise ObjectError(f"relocation names symbol {sym_idx}, the symbol table has "
                              f"{len(symbols)}", section=relsec.name, offset=where)
        if offset >= target.size:
            raise ObjectError(f"relocation offset {offset:#x} past the end of "
                              f"{target.name}", section=relsec.name, offset=where)
        out.append(Reloc(offset, symbols[sym_idx], rel["r_info_type"]))
    return out
