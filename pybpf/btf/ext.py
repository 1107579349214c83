"""Parsing .BTF.ext: per-program func_info, line_info and CO-RE relocation records.

Layout (libbpf's ``struct btf_ext_header``): magic, version, flags, hdr_len, then
(off, len) pairs for func_info and line_info, and for core_relo when hdr_len is
at least 32.  Each info section is ``u32 rec_size`` followed by blocks of
``{u32 sec_name_off; u32 num_info; rec_size bytes * num_info}``.  Records larger
than the struct known here are read for their known prefix, as libbpf does.
Instruction offsets stay in bytes, as in the file.
"""
from __future__ import annotations

import struct
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple

from ..errors import ObjectError
from ..asm.insn import INSN_SIZE
from ..uapi import BTF_EXT_HEADER_CORE_SIZE, BTF_EXT_HEADER_MIN_SIZE
from .parse import check_preamble
from ..record import Record
from .spec import BTF



class FuncInfo(NamedTuple):
    insn_off: int        # bytes from the start of the ELF section
    type_id: int         # a BTF FUNC


class LineInfo(NamedTuple):
    insn_off: int
    file_name: str
    line: str            # the source line text
    line_num: int
    col: int


class CoreRelo(NamedTuple):
    insn_off: int
    type_id: int
    access_str: str      # "0:1:2" accessor spec
    kind: int            # bpf_core_relo_kind


_FUNC_INFO = struct.Struct("<II")
_LINE_INFO = struct.Struct("<IIII")
_CORE_RELO = struct.Struct("<IIII")
_BLOCK = struct.Struct("<II")


class BTFExt(Record):
    """The records of a .BTF.ext section, keyed by the ELF section of each program.

    ``*_rec_size`` are the record sizes found in the file (0: section absent).
    """

    _fields = ("func_info", "line_info", "core_relos", "func_info_rec_size",
               "line_info_rec_size", "core_relo_rec_size")
    __slots__ = _fields
    func_info: Dict[str, List[FuncInfo]]
    line_info: Dict[str, List[LineInfo]]
    core_relos: Dict[str, List[CoreRelo]]
    func_info_rec_size: int
    line_info_rec_size: int
    core_relo_rec_size: int

    def __init__(self, func_info: Optional[Dict[str, List[FuncInfo]]] = None,
                 line_info: Optional[Dict[str, List[LineInfo]]] = None,
                 core_relos: Optional[Dict[str, List[CoreRelo]]] = None,
                 func_info_rec_size: int = 0, line_info_rec_size: int = 0,
                 core_relo_rec_size: int = 0) -> None:
        self.func_info = {} if func_info is None else func_info
        self.line_info = {} if line_info is None else line_info
        self.core_relos = {} if core_relos is None else core_relos
        self.func_info_rec_size = func_info_rec_size
        self.line_info_rec_size = line_info_rec_size
        self.core_relo_rec_size = core_relo_rec_size

    @classmethod
    def parse(cls, data: bytes, btf: BTF, section: str = ".BTF.ext") -> "BTFExt":
        """Parse .BTF.ext against its .BTF (whose strings it names); ObjectError if malformed."""
        data = bytes(data)
        hdr_len = check_preamble(data, section, ".BTF.ext", BTF_EXT_HEADER_MIN_SIZE)
        fields = struct.unpack_from("<IIII", data, 8)
        if hdr_len >= BTF_EXT_HEADER_CORE_SIZE:
            fields += struct.unpack_from("<II", data, 24)
        reader = _InfoReader(data, hdr_len, btf, section)
        ext = cls()
        ext.func_info_rec_size, ext.func_info = reader.read_info(
            "func_info", fields[0], fields[1], _FUNC_INFO,
            lambda insn, tid: FuncInfo(insn, reader.type_id(tid)))
        ext.line_info_rec_size, ext.line_info = reader.read_info(
            "line_info", fields[2], fields[3], _LINE_INFO,
            lambda insn, fname, line, line_col: LineInfo(
                insn, reader.string(fname), reader.string(line), line_col >> 10,
                line_col & 0x3FF))
        if len(fields) == 6:
            ext.core_relo_rec_size, ext.core_relos = reader.read_info(
                "core_relo", fields[4], fields[5], _CORE_RELO,
                lambda insn, tid, access, kind: CoreRelo(
                    insn, reader.type_id(tid), reader.string(access), kind))
        return ext


class _InfoReader:
    """Walks the info sections of one .BTF.ext blob; ``where`` tracks the offset for errors."""

    def __init__(self, data: bytes, hdr_len: int, btf: BTF, section: str):
        self.data, self.hdr_len, self.btf, self.section = data, hdr_len, btf, section
        self.where = 0

    def error(self, message: str) -> ObjectError:
        return ObjectError(message, self.section, self.where)

    def string(self, off: int) -> str:
        if off >= self.btf._strtab.size:
            raise self.error(f"string offset {off} is past the .BTF string section")
        return self.btf._strtab.get(off, None)

    def type_id(self, type_id: int) -> int:
        if type_id >= len(self.btf):
            raise self.error(f"type id {type_id} does not exist in .BTF ({len(self.btf)} types)")
        return type_id

    def read_info(self, what: str, off: int, length: int, rec: struct.Struct,
                make: Callable[..., NamedTuple]) -> Tuple[int, Dict[str, List[Any]]]:
        if not length:
            return 0, {}
        data, start = self.data, self.hdr_len + off
        end = start + length
        self.where = start
        if off % 4:
            raise self.error(f".BTF.ext {what} is not 4-byte aligned")
        if end > len(data) or length < 4:
            raise self.error(f".BTF.ext {what} ({off} + {length}) is out of bounds")
        rec_size, = struct.unpack_from("<I", data, start)
        if rec_size < rec.size or rec_size % 4:
            raise self.error(f".BTF.ext {what} record size {rec_size} is invalid"
                             f" (at least {rec.size}, a multiple of 4)")
        out: Dict[str, List[Any]] = {}
        pos = start + 4
        while pos < end:
            self.where = pos
            if end - pos < _BLOCK.size:
                raise self.error(f".BTF.ext {what}: truncated block header")
            name_off, count = _BLOCK.unpack_from(data, pos)
            sec_name = self.string(name_off)
            if not count:
                raise self.error(f".BTF.ext {what} of {sec_name!r} has no records")
            pos += _BLOCK.size
            if count * rec_size > end - pos:
                raise self.error(f".BTF.ext {what} of {sec_name!r}: {count} records of"
                                 f" {rec_size} bytes run past the end")
            records = out.setdefault(sec_name, [])
            for rec_pos in range(pos, pos + count * rec_size, rec_size):
                self.where = rec_pos
                records.append(make(*rec.unpack_from(data, rec_pos)))
            pos += count * rec_size
        return rec_size, out


def pack_func_info(records: Iterable[FuncInfo]) -> bytes:
    """``struct bpf_func_info`` array for BPF_PROG_LOAD (insn_off in instructions).

    ``records`` must already have insn_off relative to the loaded program."""
    return b"".join(_FUNC_INFO.pack(r.insn_off // INSN_SIZE, r.type_id) for r in records)


def pack_line_info(records: Iterable[LineInfo], str_off: Callable[[str], int]) -> bytes:
    """``struct bpf_line_info`` array; ``str_off`` maps a string to its offset in the loaded BTF."""
    return b"".join(_LINE_INFO.pack(r.insn_off // INSN_SIZE, str_off(r.file_name),
                                    str_off(r.line), r.line_num << 10 | (r.col & 0x3FF))
                    for r in records)
