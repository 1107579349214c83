"""Writing a ``BTF`` back to a .BTF blob: header + type records + deduplicated strings."""
from __future__ import annotations

import struct
import sys
from array import array
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import ObjectError
from ..uapi import (BTF_HEADER_SIZE, BTF_INFO_KFLAG_SHIFT, BTF_INFO_KIND_SHIFT, BTF_MAGIC,
                    BTF_MAX_VLEN, BTF_VERSION)
from . import types as T
from .parse import LAYOUT_HEADER_SIZE, RECORD_SHAPE
from .strtab import StringTableBuilder

_U32 = 0xFFFFFFFF


def encode_btf(types: Sequence[T.Type], start_id: int, strings_start: int,
               section: Optional[str], extra_strings: Iterable[str] = (), layout: bool = False
               ) -> Tuple[bytes, Dict[str, int]]:
    """The blob of ``types`` (ids from ``start_id``; a split BTF's strings from
    ``strings_start``), and the offsets of ``extra_strings`` (added to its string
    section).  ``section`` names the BTF in errors.

    ``layout``: also write the kind layout section (one ``struct btf_layout``
    per known kind, first: 4-byte entries keep the types aligned with no gap
    between sections) and the 32-byte header naming it, as kernel 7.1 has it."""
    strs = StringTableBuilder(strings_start)
    extra = {s: strs.add(s) for s in extra_strings}
    out = array("I")
    for type_id, t in enumerate(types, start_id):
        try:
            out.extend(_ENCODERS[type(t)](t, strs))
        except (OverflowError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ObjectError(f"cannot encode BTF type {type_id} ({t!r}): {exc}",
                              section) from None
    if sys.byteorder != "little":
        out.byteswap()
    types_blob, str_blob = out.tobytes(), strs.encode()
    if not layout:
        header = struct.pack("<HBBIIIII", BTF_MAGIC, BTF_VERSION, 0, BTF_HEADER_SIZE,
                             0, len(types_blob), len(types_blob), len(str_blob))
        return header + types_blob + str_blob, extra
    table = b"".join(struct.pack("<BBH", 4 * RECORD_SHAPE.get(k, (0, 0))[0],
                                 4 * RECORD_SHAPE.get(k, (0, 0))[1], 0)
                     for k in range(max(RECORD_SHAPE) + 1))
    header = struct.pack("<HBBIIIIIII", BTF_MAGIC, BTF_VERSION, 0, LAYOUT_HEADER_SIZE,
                         len(table), len(types_blob), len(table) + len(types_blob),
                         len(str_blob), 0, len(table))
    return header + table + types_blob + str_blob, extra


def _head(t: T.Type, strs: StringTableBuilder, vlen: int, kflag: bool, size_type: int
          ) -> List[int]:
    if not 0 <= vlen <= BTF_MAX_VLEN:
        raise ValueError(f"{vlen} items, at most {BTF_MAX_VLEN} fit")
    info = t.kind << BTF_INFO_KIND_SHIFT | int(bool(kflag)) << BTF_INFO_KFLAG_SHIFT | vlen
    return [strs.add(t.name), info, size_type]


def _int(t: T.Int, strs: StringTableBuilder) -> List[int]:
    if not (0 <= t.encoding <= 0xF and 0 <= t.offset <= 0xFF and 0 <= t.bits <= 0xFF):
        raise ValueError("int encoding/offset/bits out of range")
    return _head(t, strs, 0, False, t.size) + [t.encoding << 24 | t.offset << 16 | t.bits]


def _ref(t: T._Ref, strs: StringTableBuilder) -> List[int]:
    return _head(t, strs, 0, getattr(t, "attr", False), t.type)


def _array(t: T.Array, strs: StringTableBuilder) -> List[int]:
    return _head(t, strs, 0, False, 0) + [t.type, t.index_type, t.nelems]


def _struct(t: T.Struct, strs: StringTableBuilder) -> List[int]:
    bitfields = any(m.bitfield_size for m in t.members)
    words = _head(t, strs, len(t.members), bitfields, t.size)
    for m in t.members:
        if bitfields and not (0 <= m.bit_offset <= 0xFFFFFF and 0 <= m.bitfield_size <= 0xFF):
            raise ValueError(f"member {m.name!r}: bit offset/bitfield size out of range")
        words += [strs.add(m.name), m.type, m.bitfield_size << 24 | m.bit_offset]
    return words


def _enum(t: T.Enum, strs: StringTableBuilder) -> List[int]:
    words = _head(t, strs, len(t.values), t.signed, t.size)
    for name, value in t.values:
        words += [strs.add(name), value & _U32]
    return words


def _enum64(t: T.Enum64, strs: StringTableBuilder) -> List[int]:
    words = _head(t, strs, len(t.values), t.signed, t.size)
    for name, value in t.values:
        value &= (1 << 64) - 1
        words += [strs.add(name), value & _U32, value >> 32]
    return words


def _fwd(t: T.Fwd, strs: StringTableBuilder) -> List[int]:
    return _head(t, strs, 0, t.is_union, 0)


def _func(t: T.Func, strs: StringTableBuilder) -> List[int]:
    return _head(t, strs, t.linkage, False, t.type)


def _func_proto(t: T.FuncProto, strs: StringTableBuilder) -> List[int]:
    words = _head(t, strs, len(t.params), False, t.return_type)
    for p in t.params:
        words += [strs.add(p.name), p.type]
    return words


def _var(t: T.Var, strs: StringTableBuilder) -> List[int]:
    return _head(t, strs, 0, False, t.type) + [t.linkage]


def _datasec(t: T.Datasec, strs: StringTableBuilder) -> List[int]:
    words = _head(t, strs, len(t.vars), False, t.size)
    for v in t.vars:
        words += [v.type, v.offset, v.size]
    return words


def _float(t: T.Float, strs: StringTableBuilder) -> List[int]:
    return _head(t, strs, 0, False, t.size)


def _decl_tag(t: T.DeclTag, strs: StringTableBuilder) -> List[int]:
    return _head(t, strs, 0, t.attr, t.type) + [t.component_idx & _U32]


_ENCODERS: Dict[type, Callable[..., List[int]]] = {
    T.Int: _int, T.Pointer: _ref, T.Array: _array, T.Struct: _struct, T.Union: _struct,
    T.Enum: _enum, T.Fwd: _fwd, T.Typedef: _ref, T.Volatile: _ref, T.Const: _ref,
    T.Restrict: _ref, T.Func: _func, T.FuncProto: _func_proto, T.Var: _var,
    T.Datasec: _datasec, T.Float: _float, T.DeclTag: _decl_tag, T.TypeTag: _ref,
    T.Enum64: _enum64,
}
