"""Reading a .BTF blob: header checks, one fast scan for type offsets, lazy decoding.

The scan only records where each type record starts (and checks that every
record has a known kind and fits in the section); a record becomes a
``types.Type`` object only when ``TypeReader.read`` is asked for it.
"""
from __future__ import annotations

import struct
import sys
from array import array
from typing import Callable, Dict, NamedTuple, Sequence, Tuple, Type, Union

from ..errors import ObjectError
from ..limits import BTF_MAX_NAME_OFFSET, BTF_MAX_TYPE
from ..uapi import (BTF_HEADER_SIZE, BTF_INFO_KFLAG_SHIFT, BTF_INFO_KIND_MASK,
                    BTF_INFO_KIND_SHIFT, BTF_INFO_VLEN_MASK, BTF_KIND_ARRAY, BTF_KIND_CONST,
                    BTF_KIND_DATASEC, BTF_KIND_DECL_TAG, BTF_KIND_ENUM, BTF_KIND_ENUM64,
                    BTF_KIND_FLOAT, BTF_KIND_FUNC, BTF_KIND_FUNC_PROTO, BTF_KIND_FWD,
                    BTF_KIND_INT, BTF_KIND_PTR, BTF_KIND_RESTRICT, BTF_KIND_STRUCT,
                    BTF_KIND_TYPE_TAG, BTF_KIND_TYPEDEF, BTF_KIND_UNION, BTF_KIND_UNKN,
                    BTF_KIND_VAR,
                    BTF_KIND_VOLATILE, BTF_MAGIC, BTF_VERSION)
from . import types as T
from .strtab import Blob, StringTable

_LAYOUT = struct.Struct("<BBH")         # struct btf_layout
#: sizeof(struct btf_header) since kernel 7.1 (layout_off, layout_len after str_len)
LAYOUT_HEADER_SIZE = 32
_MAX_TYPES = BTF_MAX_TYPE       # ids are 20 bits in the kernel

#: Per kind: (fixed words after the 3-word btf_type, words per vlen item).
RECORD_SHAPE: Dict[int, Tuple[int, int]] = {
    BTF_KIND_INT: (1, 0), BTF_KIND_PTR: (0, 0), BTF_KIND_ARRAY: (3, 0),
    BTF_KIND_STRUCT: (0, 3), BTF_KIND_UNION: (0, 3), BTF_KIND_ENUM: (0, 2),
    BTF_KIND_FWD: (0, 0), BTF_KIND_TYPEDEF: (0, 0), BTF_KIND_VOLATILE: (0, 0),
    BTF_KIND_CONST: (0, 0), BTF_KIND_RESTRICT: (0, 0), BTF_KIND_FUNC: (0, 0),
    BTF_KIND_FUNC_PROTO: (0, 2), BTF_KIND_VAR: (1, 0), BTF_KIND_DATASEC: (0, 3),
    BTF_KIND_FLOAT: (0, 0), BTF_KIND_DECL_TAG: (1, 0), BTF_KIND_TYPE_TAG: (0, 0),
    BTF_KIND_ENUM64: (0, 3),
}
#: Kinds whose kind_flag means something; elsewhere it must be 0.
_KFLAG_KINDS = frozenset({BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_ENUM, BTF_KIND_FWD,
                          BTF_KIND_ENUM64, BTF_KIND_DECL_TAG, BTF_KIND_TYPE_TAG})
#: Kinds that carry a vlen (FUNC's is its linkage); elsewhere it must be 0.
_VLEN_KINDS = frozenset({BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_ENUM, BTF_KIND_ENUM64,
                         BTF_KIND_FUNC_PROTO, BTF_KIND_DATASEC, BTF_KIND_FUNC})
_RESERVED_INFO_BITS = 0x60FF0000


class Header(NamedTuple):
    hdr_len: int
    type_off: int      # from the end of the header, as in the file
    type_len: int
    str_off: int
    str_len: int
    layout_off: int = 0     # the kind layout section (kernel 7.1; 0/0: absent)
    layout_len: int = 0


def check_preamble(data: Blob, section: str, what: str, min_hdr_len: int) -> int:
    """The 8 bytes .BTF and .BTF.ext start with (magic, version, flags, hdr_len),
    checked; returns hdr_len."""
    size = len(data)
    if size < 8:
        raise ObjectError(f"{what} too short for a header ({size} bytes)", section, 0)
    hdr_len: int
    magic, version, flags, hdr_len = struct.unpack_from("<HBBI", data)
    if magic == 0x9FEB:
        raise ObjectError(f"big-endian {what} is not supported", section, 0)
    if magic != BTF_MAGIC:
        raise ObjectError(f"bad {what} magic {magic:#06x} (want {BTF_MAGIC:#06x})", section, 0)
    if version != BTF_VERSION:
        raise ObjectError(f"unsupported {what} version {version}", section, 2)
    if flags:
        raise ObjectError(f"unsupported {what} flags {flags:#x}", section, 3)
    if hdr_len < min_hdr_len or hdr_len > size:
        raise ObjectError(f"bad {what} header length {hdr_len} (section is {size} bytes)",
                          section, 4)
    return hdr_len


def parse_header(data: Blob, section: str, split: bool) -> Header:
    """Check a btf_header and the section layout it describes, as the kernel does.

    The header is ``hdr_len`` bytes: the 24-byte original, or 32 with the kind
    layout section (``layout_off``/``layout_len``, kernel 7.1); a shorter
    header reads the fields it lacks as 0, a longer one must be zero past
    the 32 bytes known here."""
    size = len(data)
    hdr_len = check_preamble(data, section, "BTF", BTF_HEADER_SIZE)
    if any(data[LAYOUT_HEADER_SIZE:hdr_len]):
        raise ObjectError(f"unknown non-zero fields in BTF header (past byte "
                          f"{LAYOUT_HEADER_SIZE} of {hdr_len})", section,
                          LAYOUT_HEADER_SIZE)
    fields = data[8:min(hdr_len, LAYOUT_HEADER_SIZE)].ljust(LAYOUT_HEADER_SIZE - 8,
                                                                b"\0")
    type_off, type_len, str_off, str_len, layout_off, layout_len = struct.unpack("<6I", fields)
    body = size - hdr_len
    if type_off % 4 or type_len % 4:
        raise ObjectError(f"BTF type section ({type_off} + {type_len}) is not 4-byte aligned",
                          section, hdr_len + type_off)
    if type_off + type_len > body or str_off + str_len > body:
        raise ObjectError(f"BTF sections (types {type_off} + {type_len}, strings {str_off}"
                          f" + {str_len}) run past the end of the data ({body} bytes)",
                          section, 8)
    if type_off + type_len > str_off and str_off + str_len > type_off and str_len:
        raise ObjectError("BTF type and string sections overlap", section, 8)
    strs = hdr_len + str_off               # checked in place: no copy of the section
    if str_len - 1 > BTF_MAX_NAME_OFFSET or (str_len and data[strs + str_len - 1] != 0) \
            or (not split and (not str_len or data[strs] != 0)):
        raise ObjectError("invalid BTF string section (must start and end with NUL)",
                          section, hdr_len + str_off)
    if layout_len or layout_off:
        check_layout(data, hdr_len, (type_off, type_len), (str_off, str_len),
                     (layout_off, layout_len), section)
    return Header(hdr_len, type_off, type_len, str_off, str_len, layout_off, layout_len)


def check_layout(data: Blob, hdr_len: int, types: Tuple[int, int], strs: Tuple[int, int],
                 layout: Tuple[int, int], section: str) -> None:
    """The kind layout section: one ``struct btf_layout`` (info_sz, elem_sz,
    flags) per kind, indexed by kind.  It must lie in the data, aligned and
    apart from the type and string sections, and agree with every kind this
    parser knows (a record of a kind it does not know is still refused by
    ``scan``)."""
    off, length = layout
    where = hdr_len + off
    if off % 4 or length % _LAYOUT.size:
        raise ObjectError(f"BTF layout section ({off} + {length}) is not 4-byte aligned or "
                          f"not a whole number of {_LAYOUT.size}-byte entries", section, 24)
    if not length:
        raise ObjectError(f"BTF layout section at offset {off} is empty", section, 24)
    if off + length > len(data) - hdr_len:
        raise ObjectError(f"BTF layout section ({off} + {length}) runs past the end of the "
                          f"data ({len(data) - hdr_len} bytes)", section, 24)
    for name, (o, n) in (("type", types), ("string", strs)):
        if n and off < o + n and o < off + length:
            raise ObjectError(f"BTF layout section ({off} + {length}) overlaps the {name} "
                              f"section ({o} + {n})", section, 24)
    for kind, (info_sz, elem_sz, _flags) in enumerate(_LAYOUT.iter_unpack(
            data[where:where + length])):
        shape = RECORD_SHAPE.get(kind, (0, 0) if kind == BTF_KIND_UNKN else None)
        if shape is not None and (info_sz, elem_sz) != (4 * shape[0], 4 * shape[1]):
            raise ObjectError(f"BTF layout of kind {kind}: info_sz {info_sz}, elem_sz "
                              f"{elem_sz}; this kind has {4 * shape[0]} and {4 * shape[1]}",
                              section, where + _LAYOUT.size * kind)


def words(buf: Union[bytes, memoryview]) -> Sequence[int]:
    """The type section as native u32 words (zero-copy on little-endian hosts)."""
    if sys.byteorder == "little":
        return memoryview(buf).cast("I")
    out = array("I", bytes(buf))
    out.byteswap()
    return out


def scan(w: Sequence[int], section: str, sec_offset: int) -> "array[int]":
    """Word offsets of every type record, in id order (4 bytes each, not an int object
    each: vmlinux has ~126k records).

    This is the one loop over all ~126k vmlinux types, so it does as little as
    possible per record: the record length depends only on the info word, and
    the few hundred distinct info words get their length (and their check)
    computed once, in ``step_of``.
    """
    steps: Dict[int, int] = {}

    def step_of(info: int, off: int) -> int:
        kind = (info >> BTF_INFO_KIND_SHIFT) & BTF_INFO_KIND_MASK
        shape = RECORD_SHAPE.get(kind)
        where = sec_offset + 4 * off
        if shape is None:
            raise ObjectError(f"unknown BTF kind {kind}", section, where)
        if info & _RESERVED_INFO_BITS:
            raise ObjectError(f"reserved bits set in BTF info {info:#010x}", section, where)
        vlen = info & BTF_INFO_VLEN_MASK
        if info >> BTF_INFO_KFLAG_SHIFT and kind not in _KFLAG_KINDS:
            raise ObjectError(f"kind_flag set on BTF kind {kind}", section, where)
        if vlen and kind not in _VLEN_KINDS:
            raise ObjectError(f"vlen {vlen} on BTF kind {kind}", section, where)
        fixed, per_item = shape
        steps[info] = step = 3 + fixed + per_item * vlen
        return step

    info_words = w[1:]               # info_words[off] is the info of the record at off
    offsets = array("I")
    append = offsets.append
    off = 0
    try:
        while True:
            info = info_words[off]
            append(off)
            try:
                off += steps[info]
            except KeyError:
                off += step_of(info, off)
    except IndexError:
        pass
    if off != len(w):        # the last record overflows, or a stub of one is left over
        last = offsets[-1] if off > len(w) else off
        raise ObjectError("a BTF type record runs past the end of the type section",
                          section, sec_offset + 4 * last)
    if len(offsets) > _MAX_TYPES:
        raise ObjectError(f"too many BTF types ({len(offsets)})", section, sec_offset)
    return offsets


class TypeReader:
    """Decodes the record at a word offset into a ``types.Type``, checking it.

    ``ref_limit`` is the number of type ids that exist (base included): any
    reference at or past it is malformed.
    """

    def __init__(self, w: Sequence[int], strtab: StringTable, section: str,
                 sec_offset: int, ref_limit: int):
        self.w = w
        self.strtab = strtab
        self.section = section
        self.sec_offset = sec_offset
        self.ref_limit = ref_limit

    def read(self, off: int) -> T.Type:
        w = self.w
        try:
            info = w[off + 1]
            kind = (info >> BTF_INFO_KIND_SHIFT) & BTF_INFO_KIND_MASK
            name = self.strtab.get(w[off], self.sec_offset + 4 * off)
            return _DECODERS[kind](self, off, name, info >> BTF_INFO_KFLAG_SHIFT,
                                   info & BTF_INFO_VLEN_MASK, w[off + 2])
        except (IndexError, KeyError):
            # a scan only yields record starts: this offset came from a record index
            # stored on disk (pybpf.btf.cache) that does not match the blob
            raise self.error("no BTF type record starts here (the record index from "
                             "the cache does not match the blob)", off) from None

    def error(self, message: str, off: int) -> ObjectError:
        return ObjectError(message, self.section, self.sec_offset + 4 * off)

    def ref(self, type_id: int, off: int) -> int:
        if type_id >= self.ref_limit:
            raise self.error(f"reference to type id {type_id}, but there are only"
                             f" {self.ref_limit} types", off)
        return type_id

    def name(self, name_off: int, off: int) -> str:
        return self.strtab.get(name_off, self.sec_offset + 4 * off)

    # one method per kind; `off` is the record's word offset, `st` its size_type word

    def int_(self, off: int, name: str, kflag: int, vlen: int, st: int) -> T.Int:
        data = self.w[off + 3]
        encoding, bit_off, bits = (data >> 24) & 0x0F, (data >> 16) & 0xFF, data & 0xFF
        if st not in (1, 2, 4, 8, 16) or bits > 128 or bit_off + bits > 8 * st \
                or data & 0xF0000000:
            raise self.error(f"invalid BTF int {name!r}: size {st}, bit offset {bit_off},"
                             f" bits {bits}", off)
        return T.Int(name, st, encoding, bit_off, bits)

    def ref_kind(self, off: int, name: str, kflag: int, vlen: int, st: int) -> T.Type:
        cls = _REF_CLASSES[(self.w[off + 1] >> BTF_INFO_KIND_SHIFT) & BTF_INFO_KIND_MASK]
        return cls(name, self.ref(st, off))

    def type_tag(self, off: int, name: str, kflag: int, vlen: int, st: int) -> T.TypeTag:
        return T.TypeTag(name, self.ref(st, off), bool(kflag))

    def array(self, off: int, name: str, kflag: int, vlen: int, st: int) -> T.Array:
        w = self.w
        return T.Array(name, self.ref(w[off + 3], off), self.ref(w[off + 4], off), w[off + 5])

    def struct(self, off: int, name: str, kflag: int, vlen: int, st: int) -> T.Struct:
        w, members = self.w, []
        for item in range(off + 3, off + 3 + 3 * vlen, 3):
            bit_off = w[item + 2]
            size = 0
            if kflag:
                size, bit_off = bit_off >> 24, bit_off & 0xFFFFFF
            members.append(T.Member(self.name(w[item], item), self.ref(w[item + 1], item),
                                    bit_off, size))
        cls = T.Union if (w[off + 1] >> BTF_INFO_KIND_SHIFT) & BTF_INFO_KIND_MASK \
            == BTF_KIND_UNION else T.Struct
        return cls(name, st, members)

    def enum_size(self, off: int, st: int) -> None:
        if st not in (1, 2, 4, 8):          # the kernel's check: a power of two up to 8
            raise self.error(f"invalid BTF enum size {st}", off)

    def enum(self, off: int, name: str, kflag: int, vlen: int, st: int) -> T.Enum:
        self.enum_size(off, st)
        w, values = self.w, []
        for item in range(off + 3, off + 3 + 2 * vlen, 2):
            val = w[item + 1]
            if kflag and val & 0x80000000:
                val -= 1 << 32
            values.append((self.name(w[item], item), val))
        return T.Enum(name, st, values, bool(kflag))

    def enum64(self, off: int, name: str, kflag: int, vlen: int, st: int) -> T.Enum64:
        self.enum_size(off, st)
        w, values = self.w, []
        for item in range(off + 3, off + 3 + 3 * vlen, 3):
            val = w[item + 2] << 32 | w[item + 1]
            if kflag and val >> 63:
                val -= 1 << 64
            values.append((self.name(w[item], item), val))
        return T.Enum64(name, st, values, bool(kflag))

    def fwd(self, off: int, name: str, kflag: int, vlen: int, st: int) -> T.Fwd:
        return T.Fwd(name, bool(kflag))

    def func(self, off: int, name: str, kflag: int, vlen: int, st: int) -> T.Func:
        return T.Func(name, self.ref(st, off), vlen)

    def func_proto(self, off: int, name: str, kflag: int, vlen: int, st: int) -> T.FuncProto:
        w = self.w
        params = [T.Param(self.name(w[item], item), self.ref(w[item + 1], item))
                  for item in range(off + 3, off + 3 + 2 * vlen, 2)]
        return T.FuncProto(name, self.ref(st, off), params)

    def var(self, off: int, name: str, kflag: int, vlen: int, st: int) -> T.Var:
        return T.Var(name, self.ref(st, off), self.w[off + 3])

    def datasec(self, off: int, name: str, kflag: int, vlen: int, st: int) -> T.Datasec:
        w = self.w
        secinfos = [T.VarSecinfo(self.ref(w[item], item), w[item + 1], w[item + 2])
                    for item in range(off + 3, off + 3 + 3 * vlen, 3)]
        return T.Datasec(name, st, secinfos)

    def float_(self, off: int, name: str, kflag: int, vlen: int, st: int) -> T.Float:
        if st not in (2, 4, 8, 12, 16):
            raise self.error(f"invalid BTF float size {st}", off)
        return T.Float(name, st)

    def decl_tag(self, off: int, name: str, kflag: int, vlen: int, st: int) -> T.DeclTag:
        idx = self.w[off + 3]
        if idx & 0x80000000:
            idx -= 1 << 32
        return T.DeclTag(name, self.ref(st, off), idx, bool(kflag))


_REF_CLASSES: Dict[int, Type[T._Ref]] = {
    BTF_KIND_PTR: T.Pointer, BTF_KIND_TYPEDEF: T.Typedef, BTF_KIND_VOLATILE: T.Volatile,
    BTF_KIND_CONST: T.Const, BTF_KIND_RESTRICT: T.Restrict}

_DECODERS: Dict[int, Callable[..., T.Type]] = {
    BTF_KIND_INT: TypeReader.int_, BTF_KIND_PTR: TypeReader.ref_kind,
    BTF_KIND_ARRAY: TypeReader.array, BTF_KIND_STRUCT: TypeReader.struct,
    BTF_KIND_UNION: TypeReader.struct, BTF_KIND_ENUM: TypeReader.enum,
    BTF_KIND_FWD: TypeReader.fwd, BTF_KIND_TYPEDEF: TypeReader.ref_kind,
    BTF_KIND_VOLATILE: TypeReader.ref_kind, BTF_KIND_CONST: TypeReader.ref_kind,
    BTF_KIND_RESTRICT: TypeReader.ref_kind, BTF_KIND_FUNC: TypeReader.func,
    BTF_KIND_FUNC_PROTO: TypeReader.func_proto, BTF_KIND_VAR: TypeReader.var,
    BTF_KIND_DATASEC: TypeReader.datasec, BTF_KIND_FLOAT: TypeReader.float_,
    BTF_KIND_DECL_TAG: TypeReader.decl_tag, BTF_KIND_TYPE_TAG: TypeReader.type_tag,
    BTF_KIND_ENUM64: TypeReader.enum64,
}
