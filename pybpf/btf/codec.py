"""Python values <-> bytes, driven by BTF: for map keys/values, globals and events.

``compile(btf, type_id)`` walks the type once and returns a ``Codec`` made of
small per-type nodes; ``decode``/``encode`` are one-shot conveniences.

Mapping: integers, enums and pointers -> ``int`` (bitfields included), bool
ints -> ``bool``, floats -> ``float``, ``char`` arrays -> ``bytes`` cut at the
first NUL, other arrays -> ``list``, structs/unions/datasecs -> ``dict`` by
member name (members of anonymous struct/union members are lifted into the
parent, as C spells them).  Values are little-endian, as on bpfel.
"""
from __future__ import annotations

import struct
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple, Union, cast

from ..errors import BPFError, ObjectError
from ..limits import MAX_RESOLVE_DEPTH, Budget
from . import types as T
from .spec import BTF, POINTER_SIZE

_MAX_DEPTH = MAX_RESOLVE_DEPTH
#: Python values one decode may build beyond one per byte (zero-size members, empty lists).
_SPARE_VALUES = 1 << 16
#: fields one compile may lay out (anonymous members lifted into their parent included).
_MAX_FIELDS = 1 << 17


#: what the codecs read from: any bytes-like buffer.
_Buf = Union[bytes, bytearray, memoryview]


class CodecError(BPFError, ValueError):
    """A value does not fit its BTF type (or a buffer is too short for it)."""


class _Node:
    """Reads/writes one type at a byte offset.  ``fmt`` is its single ``struct``
    format item when it has one (scalars, char arrays), else None."""

    size: int = 0
    fmt: Optional[str] = None
    values: int = 1          # Python objects one read() builds

    def read(self, buf: _Buf, off: int) -> Any:
        raise NotImplementedError

    def write(self, out: bytearray, off: int, value: Any) -> None:
        raise NotImplementedError


class _Scalar(_Node):
    def __init__(self, fmt: str, size: int, what: str) -> None:
        self.fmt, self.size, self.what = fmt, size, what
        self._st = struct.Struct("<" + fmt)

    def read(self, buf: _Buf, off: int) -> Any:
        return self._st.unpack_from(buf, off)[0]

    def write(self, out: bytearray, off: int, value: Any) -> None:
        try:
            self._st.pack_into(out, off, value)
        except struct.error as exc:
            raise CodecError(f"cannot store {value!r} as {self.what}: {exc}") from None


class _Int(_Node):
    """Integers of any size (1..16 bytes), range-checked on write."""

    def __init__(self, size: int, signed: bool, what: str) -> None:
        self.size, self.signed, self.what = size, signed, what
        self.lo = -(1 << (8 * size - 1)) if signed else 0
        self.hi = (1 << (8 * size - 1)) - 1 if signed else (1 << 8 * size) - 1
        if size in _INT_FMT:
            self.fmt = _INT_FMT[size].lower() if signed else _INT_FMT[size]
            self._st = struct.Struct("<" + self.fmt)

    def read(self, buf: _Buf, off: int) -> Any:
        if self.fmt:
            return self._st.unpack_from(buf, off)[0]
        return int.from_bytes(buf[off:off + self.size], "little", signed=self.signed)

    def write(self, out: bytearray, off: int, value: Any) -> None:
        value = self.check(value)
        out[off:off + self.size] = value.to_bytes(self.size, "little", signed=self.signed)

    def check(self, value: Any) -> int:
        if isinstance(value, bool):
            value = int(value)
        elif not isinstance(value, int):
            raise CodecError(f"{self.what} needs an int, not {type(value).__name__}"
                             f" ({value!r})")
        if not self.lo <= value <= self.hi:
            raise CodecError(f"{value} out of range for {self.what}"
                             f" [{self.lo}, {self.hi}]")
        return cast(int, value)   # an int by now (bools were converted)


_INT_FMT = {1: "B", 2: "H", 4: "I", 8: "Q"}


class _Enum(_Int):
    """An enum: decodes to int; encodes an int or an enumerator's name."""

    def __init__(self, size: int, signed: bool, what: str,
                 values: Sequence[Tuple[str, int]]) -> None:
        super().__init__(size, signed, what)
        self.by_name = dict(values)

    def check(self, value: Any) -> int:
        if isinstance(value, str):
            if value not in self.by_name:
                raise CodecError(f"{value!r} is not an enumerator of {self.what}")
            value = self.by_name[value]
            if not self.signed and value < 0:
                value &= self.hi
        return super().check(value)


class _Bool(_Int):
    def read(self, buf: _Buf, off: int) -> Any:
        return bool(super().read(buf, off))


class _Raw(_Node):
    """Bytes kept as they are (long double, and other types with no Python value)."""

    def __init__(self, size: int, what: str) -> None:
        self.size, self.what, self.fmt = size, what, f"{size}s"

    def read(self, buf: _Buf, off: int) -> Any:
        return bytes(buf[off:off + self.size])

    def write(self, out: bytearray, off: int, value: Any) -> None:
        if not isinstance(value, (bytes, bytearray)) or len(value) != self.size:
            raise CodecError(f"{self.what} needs {self.size} bytes, not {value!r}")
        out[off:off + self.size] = value


class _Chars(_Node):
    """char[N]: bytes up to the first NUL; writes bytes or str of at most N bytes."""

    def __init__(self, size: int, what: str) -> None:
        self.size, self.what, self.fmt = size, what, f"{size}s"

    def read(self, buf: _Buf, off: int) -> Any:
        raw = bytes(buf[off:off + self.size])
        nul = raw.find(b"\0")
        return raw if nul < 0 else raw[:nul]

    def write(self, out: bytearray, off: int, value: Any) -> None:
        if isinstance(value, str):
            value = value.encode()
        if not isinstance(value, (bytes, bytearray)):
            raise CodecError(f"{self.what} needs bytes or str, not {type(value).__name__}")
        if len(value) > self.size:
            raise CodecError(f"{len(value)} bytes do not fit in {self.what}")
        out[off:off + self.size] = bytes(value).ljust(self.size, b"\0")


class _Array(_Node):
    def __init__(self, elem: _Node, nelems: int, what: str) -> None:
        self.elem, self.nelems, self.what = elem, nelems, what
        self.size = elem.size * nelems
        self.values = 1 + nelems * elem.values

    def read(self, buf: _Buf, off: int) -> Any:
        step, read = self.elem.size, self.elem.read
        return [read(buf, off + i * step) for i in range(self.nelems)]

    def write(self, out: bytearray, off: int, value: Any) -> None:
        if isinstance(value, (bytes, bytearray)) and self.elem.size == 1:
            value = list(value)
        if isinstance(value, (str, bytes, bytearray, dict)) or not hasattr(value, "__len__"):
            raise CodecError(f"{self.what} needs a list, not {type(value).__name__}")
        if len(value) > self.nelems:
            raise CodecError(f"{len(value)} items do not fit in {self.what}")
        step = self.elem.size
        for i, item in enumerate(value):
            self.elem.write(out, off + i * step, item)


class _Bitfield:
    """A bitfield member, read and written inside its struct's bytes."""

    def __init__(self, bit_offset: int, bits: int, node: _Int) -> None:
        self.byte, self.shift = bit_offset // 8, bit_offset % 8
        self.nbytes = (self.shift + bits + 7) // 8
        self.bits, self.mask, self.node = bits, (1 << bits) - 1, node
        self.signed = node.signed

    def read(self, buf: _Buf, off: int) -> Any:
        start = off + self.byte
        raw = int.from_bytes(buf[start:start + self.nbytes], "little")
        value = (raw >> self.shift) & self.mask
        if self.signed and value >> (self.bits - 1):
            value -= 1 << self.bits
        return bool(value) if isinstance(self.node, _Bool) else value

    def write(self, out: bytearray, off: int, value: Any) -> None:
        value = self.node.check(value)
        lo = -(1 << (self.bits - 1)) if self.signed else 0
        hi = (1 << (self.bits - 1)) - 1 if self.signed else self.mask
        if not lo <= value <= hi:
            raise CodecError(f"{value} does not fit in a {self.bits}-bit"
                             f" {'signed' if self.signed else 'unsigned'} bitfield [{lo}, {hi}]")
        start = off + self.byte
        raw = int.from_bytes(out[start:start + self.nbytes], "little")
        raw = raw & ~(self.mask << self.shift) | (value & self.mask) << self.shift
        out[start:start + self.nbytes] = raw.to_bytes(self.nbytes, "little")


class _Record(_Node):
    """struct, union or datasec: named fields at byte offsets (or bitfields)."""

    def __init__(self, size: int, fields: List[Tuple[str, int, Any]], what: str) -> None:
        self.size, self.fields, self.what = size, fields, what
        self.values = 1 + sum(node.values if isinstance(node, _Node) else 1
                              for _, _, node in fields)
        self.names = [name for name, _, _ in fields]
        self.by_name = {name: (off, node) for name, off, node in fields}
        self.struct_format = self._layout()
        self._st = struct.Struct(self.struct_format) if self.struct_format else None
        self._cut = [i for i, (_, _, node) in enumerate(fields) if isinstance(node, _Chars)]
        self._bools = [i for i, (_, _, node) in enumerate(fields) if isinstance(node, _Bool)]

    def _layout(self) -> Optional[str]:
        """A ``struct`` format for the whole record when each field is one item
        at increasing offsets (no bitfields, unions or nested records)."""
        items, pos = ["<"], 0
        for _, off, node in self.fields:
            if not isinstance(node, _Node) or node.fmt is None or off < pos:
                return None
            items.append(f"{off - pos}x" if off > pos else "")
            items.append(node.fmt)
            pos = off + node.size
        if pos > self.size:
            return None
        items.append(f"{self.size - pos}x" if self.size > pos else "")
        return "".join(items)

    def row(self, values: Sequence[Any]) -> Dict[str, Any]:
        """The dict of one record unpacked with ``struct_format``."""
        if self._cut or self._bools:
            values = list(values)
            for i in self._cut:
                values[i] = values[i].split(b"\0", 1)[0]
            for i in self._bools:
                values[i] = bool(values[i])
        return dict(zip(self.names, values))

    def read(self, buf: _Buf, off: int) -> Any:
        if self._st is not None:
            return self.row(self._st.unpack_from(buf, off))
        return {name: node.read(buf, off + foff) for name, foff, node in self.fields}

    def write(self, out: bytearray, off: int, value: Any) -> None:
        if not isinstance(value, dict):
            raise CodecError(f"{self.what} needs a dict, not {type(value).__name__}")
        for name, item in value.items():
            try:
                foff, node = self.by_name[name]
            except KeyError:
                raise CodecError(f"{self.what} has no member {name!r} (members:"
                                 f" {', '.join(self.names)})") from None
            node.write(out, off + foff, item)


class Codec:
    """The compiled codec of one BTF type."""

    def __init__(self, node: _Node, name: str) -> None:
        self._node = node
        self.name = name
        self.size: int = node.size
        record = isinstance(node, _Record)
        self.field_names: Optional[List[str]] = list(cast(_Record, node).names) if record else None
        #: ``struct`` format of the whole value (char arrays come out NUL-padded), or None.
        self.struct_format: Optional[str] = cast(_Record, node).struct_format if record else \
            ("<" + node.fmt if node.fmt else None)

    def decode(self, buf: _Buf) -> Any:
        if len(buf) < self.size:
            raise CodecError(f"{len(buf)} bytes are too few for {self.name} ({self.size} bytes)")
        return self._node.read(buf, 0)

    def encode(self, value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray)) and len(value) == self.size \
                and not isinstance(self._node, (_Chars, _Raw, _Array)):
            return bytes(value)
        out = bytearray(self.size)
        self._node.write(out, 0, value)
        return bytes(out)

    def decode_many(self, buf: _Buf) -> Iterator[Any]:
        """Decode back-to-back records filling ``buf`` (a multiple of ``size``)."""
        if self.size == 0 or len(buf) % self.size:
            raise CodecError(f"{len(buf)} bytes are not a whole number of {self.name}"
                             f" ({self.size} bytes)")
        node = self._node
        if isinstance(node, _Record) and node._st is not None:
            return map(node.row, node._st.iter_unpack(buf))
        return (node.read(buf, off) for off in range(0, len(buf), self.size))

    def __repr__(self) -> str:
        return f"<Codec {self.name} size={self.size}>"


def compile(btf: BTF, type_id: int) -> Codec:
    """Build the codec of ``type_id`` (ObjectError if it has no value, e.g. a func)."""
    return Codec(_Compiler(btf).node(type_id, 0), btf.type_name(type_id))


def decode(btf: BTF, type_id: int, data: _Buf) -> Any:
    return compile(btf, type_id).decode(data)


def encode(btf: BTF, type_id: int, value: Any) -> bytes:
    return compile(btf, type_id).encode(value)


class _Compiler:
    """Builds the nodes of one type graph: each type once (shared by every path to
    it), refusing types that contain themselves, nest deeper than the kernel
    follows, or would decode into more values than they have bytes."""

    def __init__(self, btf: BTF):
        self.btf = btf
        self.done: Dict[int, _Node] = {}
        self.active: Set[int] = set()       # types being built: met again, a cycle
        self.fields = Budget(_MAX_FIELDS, "laying out struct members", btf.section)

    def fail(self, type_id: int, why: str) -> ObjectError:
        return ObjectError(f"cannot encode/decode {self.btf.type_name(type_id)}: {why}",
                           self.btf.section)

    def enter(self, type_id: int, depth: int) -> None:
        if type_id in self.active:
            raise self.fail(type_id, f"type [{type_id}] contains itself")
        if depth > _MAX_DEPTH:
            raise self.fail(type_id, f"types nested deeper than {_MAX_DEPTH}")
        self.active.add(type_id)

    def node(self, type_id: int, depth: int) -> _Node:
        found = self.done.get(type_id)
        if found is not None:
            return found
        self.enter(type_id, depth)
        try:
            node = self.build(type_id, depth)
        finally:
            self.active.discard(type_id)
        if node.values > node.size + _SPARE_VALUES:
            raise self.fail(type_id, f"{node.size} bytes would decode into {node.values}"
                            f" values (members or elements of size 0?)")
        self.done[type_id] = node
        return node

    def build(self, type_id: int, depth: int) -> _Node:
        btf = self.btf
        tid = btf.resolve(type_id)
        t = btf[tid]
        what = btf.type_name(type_id)
        if isinstance(t, T.Var):
            return self.node(t.type, depth + 1)
        if isinstance(t, T.Int):
            if t.offset or t.bits != 8 * t.size:       # legacy bitfield int, used alone
                raise self.fail(type_id, "an int with a bit offset is only valid in a struct")
            return (_Bool if t.is_bool else _Int)(t.size, t.signed, what)
        if isinstance(t, T.Enum):
            return _Enum(t.size, t.signed, what, t.values)
        if isinstance(t, T.Pointer):
            return _Int(POINTER_SIZE, False, what)
        if isinstance(t, T.Float):
            fmt = {2: "e", 4: "f", 8: "d"}.get(t.size)
            return _Scalar(fmt, t.size, what) if fmt else _Raw(t.size, what)
        if isinstance(t, T.Array):
            btf.size_of(tid)                            # refuses sizes past u32
            elem = btf[btf.resolve(t.type)]
            if isinstance(elem, T.Int) and elem.size == 1 and (elem.is_char or
                                                                elem.name == "char"):
                return _Chars(t.nelems, what)
            return _Array(self.node(t.type, depth + 1), t.nelems, what)
        if isinstance(t, T.Struct):          # and Union
            fields: List[Tuple[str, int, Any]] = []
            self.members(t, 0, fields, depth)
            for name, off, node in fields:
                end = off + node.size if isinstance(node, _Node) else node.byte + node.nbytes
                if end > t.size:
                    raise self.fail(type_id, f"member {name!r} ends at byte {end}, past the"
                                    f" {t.size}-byte {type(t).__name__.lower()}")
            return _Record(t.size, fields, what)
        if isinstance(t, T.Datasec):
            fields = []
            for v in t.vars:
                var = btf[v.type]
                if isinstance(var, T.Var):
                    self.fields.spend()
                    fields.append((var.name, v.offset, self.node(var.type, depth + 1)))
            size = max([t.size] + [off + n.size for _, off, n in fields])
            return _Record(size, fields, what)
        raise self.fail(type_id, f"{type(t).__name__.lower()} has no value")

    def members(self, t: T.Struct, base_bits: int, fields: List[Tuple[str, int, Any]],
                depth: int) -> None:
        """Append the fields of ``t`` (at ``base_bits``), lifting anonymous records."""
        btf = self.btf
        for m in t.members:
            self.fields.spend()
            bit_offset = base_bits + m.bit_offset
            tid = btf.resolve(m.type)
            target = btf[tid]
            if not m.name:
                if isinstance(target, T.Struct):
                    self.enter(tid, depth + 1)
                    try:
                        self.members(target, bit_offset, fields, depth + 1)
                    finally:
                        self.active.discard(tid)
                continue                          # unnamed padding bitfield
            bits = m.bitfield_size
            if not bits and isinstance(target, T.Int) and \
                    (target.offset or target.bits != 8 * target.size):
                bit_offset, bits = bit_offset + target.offset, target.bits
            if bits or bit_offset % 8:
                node = self.node(m.type, depth + 1) if not isinstance(target, T.Int) else \
                    (_Bool if target.is_bool else _Int)(target.size, target.signed,
                                                        btf.type_name(m.type))
                if not isinstance(node, _Int):
                    raise self.fail(m.type, f"bitfield {m.name!r} is not an integer")
                fields.append((m.name, 0, _Bitfield(bit_offset, bits or 8 * node.size, node)))
            else:
                fields.append((m.name, bit_offset // 8, self.node(m.type, depth + 1)))


def jsonable(value: Any) -> Any:
    """A decoded value as JSON data: char arrays as text (cut at the first NUL),
    structs as dicts, arrays (lists or tuples) as lists, the rest as is."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).split(b"\0", 1)[0].decode(errors="replace")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value

