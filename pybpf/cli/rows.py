"""``load``'s output: event records as table rows or JSON lines, fast.

The record type of each event map is found once (``RecordTypes``: the struct
the BTF names for the map, else the object's own struct whose size matches the
record, else ``--type``); for it a formatter is compiled once from BTF
(``compile_formatter``): one ``struct.unpack_from`` of the record and one
``%``-format of the whole line, generated as Python source.  ``RowPrinter``
collects the lines of one poll and writes them in one ``write`` of bytes.

Table cells fit their type: integer columns are as wide as the type's largest
value (20 for a u64 nanosecond timestamp), enums print by name, nested structs
become ``outer.inner`` columns, arrays print as ``[a,b]``, and strings have
control characters escaped so a row stays one line.
"""
from __future__ import annotations

import functools
import struct
import sys
import time
from itertools import repeat
from typing import IO, Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

from .. import uapi
from ..btf import BTF
from ..btf.codec import jsonable
from ..btf import codec as C
from ..btf import types as T
from ..errors import BPFError
from ..btf.pytypes import layout_format
from ..obj.records import hint, record_type

_STR_WIDTH = 16          # widest padding given to a string column
_CONTROL = {i: f"\\x{i:02x}" for i in range(32)}
_CONTROL.update({9: "\\t", 10: "\\n", 13: "\\r", 127: "\\x7f"})


def text(raw: bytes) -> str:
    """A C string's bytes as one line of text: cut at NUL, invalid UTF-8 and
    control characters escaped."""
    s = raw.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")
    return s if s.isprintable() else s.translate(_CONTROL)


def _inline_text(v: str) -> str:
    """``text(v)`` as an expression (no Python call per string: the hot path)."""
    return (f"(_s if (_s := {v}.split(b'\\0', 1)[0].decode('utf-8', 'backslashreplace'))"
            f".isprintable() else _s.translate(_CONTROL))")


def _inline_jtext(v: str) -> str:
    """``_jtext(v)`` as an expression."""
    return f"_enc({v}.split(b'\\0', 1)[0].decode('utf-8', 'replace'))"


def _jtext(raw: bytes) -> str:
    from json.encoder import encode_basestring_ascii
    return encode_basestring_ascii(raw.split(b"\0", 1)[0].decode(errors="replace"))


def cell(value: Any) -> str:
    """Any decoded value as a compact table cell."""
    if isinstance(value, (bytes, bytearray)):
        return text(bytes(value))
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={cell(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(cell(v) for v in value) + "]"
    return str(value)


def _is_struct(node: C._Record) -> bool:
    """Whether a record's byte-aligned members follow each other (a struct, not a union)."""
    pos = 0
    for _, off, sub in node.fields:
        if isinstance(sub, C._Node):
            if off < pos:
                return False
            pos = off + sub.size
    return True


def _zero_width(node: Any) -> int:
    """The width of a zero value's cell (arrays, unions: a column width to start from)."""
    return min(len(cell(node.read(bytes(node.size), 0))), 2 * _STR_WIDTH)


def _int_width(node: C._Int) -> int:
    return len(str(node.lo if node.signed else node.hi))


class _Gen:
    """Source of one formatter: format items, the line's %-pieces and their arguments."""

    def __init__(self, as_json: bool):
        self.as_json = as_json
        self.items: List[Tuple[int, int, str]] = []   # (offset, size, struct item)
        self.pos = 0
        self.env: Dict[str, Any] = {"_text": text, "_jtext": _jtext, "_cell": cell,
                                    "_CONTROL": _CONTROL, "_jsonable": jsonable}
        if as_json:                 # json only for --json (its import costs a start ~2 ms)
            import json
            from json.encoder import encode_basestring_ascii
            self.env.update(_enc=encode_basestring_ascii, _json=json.dumps)
        self.columns: List[Tuple[str, int]] = []      # (name, width) for the table
        self.fallbacks = 0

    def const(self, value: Any) -> str:
        name = f"_c{len(self.env)}"
        self.env[name] = value
        return name

    def take(self, off: int, size: int, fmt: Optional[str], count: int = 1) -> Optional[str]:
        """Reserve ``count`` struct items at ``off``; the source of the first value's
        index, or None when they cannot join the single unpack (overlap, no format)."""
        if fmt is None or off < self.pos:
            return None
        index = len(self.items)
        for k in range(count):
            self.items.append((off + k * size, size, fmt))
        self.pos = off + size * count
        return str(index)

    def fallback(self, off: int, node: Any) -> str:
        """A value read by its codec node (no struct item): from ``buf`` at ``o + off``."""
        self.fallbacks += 1
        read = self.const(node.read)
        return f"{read}(buf, o + {off})"

    # ---------------------------------------------------------------- leaves

    def leaf(self, off: int, node: Any) -> Tuple[str, str, int]:
        """(%-piece, argument source, table width) of one value."""
        j = self.as_json
        if isinstance(node, (C._Int, C._Scalar, C._Chars, C._Raw)):
            i = self.take(off, node.size, node.fmt)
            if i is not None:
                v = f"v[{i}]"
                if isinstance(node, C._Chars):
                    return ("%s", _inline_jtext(v), 0) if j else \
                        ("%-{w}s", _inline_text(v), min(node.size, _STR_WIDTH))
                if isinstance(node, C._Raw):
                    return ('"%s"' if j else "%-{w}s", f"{v}.hex()", 2 * node.size)
                if isinstance(node, C._Bool):
                    return ("%s", f"('true' if {v} else 'false')", 0) if j else \
                        ("%-{w}s", f"('True' if {v} else 'False')", 5)
                if isinstance(node, C._Enum) and not j:
                    names = self.const({val: n for n, val in reversed(
                        list(node.by_name.items()))})
                    width = max([len(n) for n in node.by_name] + [_int_width(node)])
                    return "%-{w}s", f"{names}.get({v}, {v})", width
                if isinstance(node, C._Int):
                    return ("%d", v, 0) if j else ("%-{w}d", v, _int_width(node))
                return ("%s", f"_json({v})", 0) if j else ("%-{w}s", f"repr({v})", 12)
        if isinstance(node, C._Array) and isinstance(node.elem, (C._Int, C._Chars)) \
                and not isinstance(node.elem, (C._Enum, C._Bool)):
            i = self.take(off, node.elem.size, node.elem.fmt, node.nelems)
            if i is not None:
                n = node.nelems
                sl = f"v[{i}:{int(i) + n}]"
                if isinstance(node.elem, C._Chars):
                    each = "_jtext" if j else "_text"
                    return ("%s" if j else "%-{w}s",
                            f"'[' + ', '.join(map({each}, {sl})) + ']'" if j else
                            f"'[' + ','.join(map(_text, {sl})) + ']'", _zero_width(node))
                return ("%s" if j else "%-{w}s", f"'[' + ', '.join(map(str, {sl})) + ']'"
                        if j else f"'[' + ','.join(map(str, {sl})) + ']'", _zero_width(node))
        value = self.fallback(off, node)
        return ("%s", f"_json(_jsonable({value}))", 0) if j else ("%-{w}s",
                                                                  f"_cell({value})",
                                                                  _zero_width(node))

    # ---------------------------------------------------------------- records

    def record(self, node: Any, off: int, prefix: str, pieces: List[str],
               args: List[str]) -> None:
        """The fields of a struct: flattened to dotted columns (table) or nested (JSON)."""
        for k, (name, foff, sub) in enumerate(node.fields):
            if self.as_json:
                pieces.append((", " if k else "") + self.env["_json"](name).replace("%", "%%")
                              + ": ")
            if isinstance(sub, C._Bitfield):
                value = self.fallback(off, sub)
                piece, arg, width = ("%d", value, 0) if self.as_json else \
                    ("%-{w}d", value, len(str(sub.mask)) + sub.signed)
            elif isinstance(sub, C._Record) and _is_struct(sub):
                if self.as_json:
                    pieces.append("{")
                    self.record(sub, off + foff, "", pieces, args)
                    pieces.append("}")
                else:
                    self.record(sub, off + foff, f"{prefix}{name}.", pieces, args)
                continue
            else:
                piece, arg, width = self.leaf(off + foff, sub)
            if not self.as_json:
                column = prefix + name
                width = max(width, len(column))
                self.columns.append((column, width))
                piece = piece.replace("{w}", str(width))
                pieces.append(piece + " ")
            else:
                pieces.append(piece)
            args.append(arg)


class Formatter:
    """The compiled lines of one record type: ``row(buf, prefix)`` for one record
    (a buffer starting at it), ``rows(buffer, offsets, prefix)`` for many records
    of ``buffer`` (one list comprehension, ``struct`` unpacking in C); ``columns``
    are the table's (name, width)."""

    def __init__(self, row: Callable[[Any, str], str],
                 rows: Callable[[Any, Iterable[int], str], List[str]],
                 columns: List[Tuple[str, int]], size: int):
        self.row, self.rows, self.columns, self.size = row, rows, columns, size


def compile_formatter(btf: BTF, type_id: int, as_json: bool, source: str = "") -> Formatter:
    """The formatter of records of ``type_id``.  In table mode the line's
    ``prefix`` is the time column; in JSON mode the opening ``{"time": ...,
    "map": ..., `` part."""
    comp = C.compile(btf, type_id)
    node = comp._node
    gen = _Gen(as_json)
    pieces: List[str] = []
    args: List[str] = []
    if isinstance(node, C._Record):
        gen.record(node, 0, "", pieces, args)
    else:
        piece, arg, width = gen.leaf(0, node)
        if as_json:
            pieces += ['"value": ', piece]
        else:
            gen.columns.append(("value", max(width, 5)))
            pieces.append(piece.replace("{w}", str(max(width, 5))) + " ")
        args.append(arg)
    fmt = "".join(pieces)
    if as_json:
        fmt = "%s" + fmt + "}\n"
    else:
        last = fmt.rfind("%-")          # the last column is not padded
        if last >= 0:
            end = last + 2
            while fmt[end].isdigit():
                end += 1
            fmt = fmt[:last + 1] + fmt[end:]
        fmt = "%s " + fmt.rstrip(" ") + "\n"
    struct_fmt = layout_format(gen.items, comp.size, btf.type_name(type_id))
    gen.env.update(_unpack=struct.Struct(struct_fmt).unpack_from, _fmt=fmt, _repeat=repeat,
                   _zip=zip, _map=map)
    line = f"_fmt % (prefix, {', '.join(args)})"
    values = "_map(_unpack, _repeat(buffer), offsets)"
    each = f"for o, v in _zip(offsets, {values})" if gen.fallbacks else f"for v in {values}"
    body = (f"def row(buf, prefix):\n    o = 0\n    v = _unpack(buf)\n    return {line}\n"
            f"def rows(buffer, offsets, prefix):\n"
            f"    buf = buffer\n    return [{line} {each}]\n")
    exec(compile(body, f"<pybpf rows {source or btf.type_name(type_id)}>", "exec"), gen.env)
    return Formatter(gen.env["row"], gen.env["rows"], gen.columns, comp.size)


class RecordTypes:
    """Which BTF type the records of each event map are, and the hint when unknown."""

    def __init__(self, obj: Any, type_name: Optional[str] = None):
        self.btf: Optional[BTF] = obj.btf
        btf = self.btf
        self.forced: Optional[int] = None
        self.by_map: Dict[str, int] = {}
        if btf is None:
            if type_name:
                raise BPFError("--type needs BTF in the object (build with clang -g)")
            return
        if type_name:
            ids = [i for i in btf.find(type_name) if isinstance(btf[i], (T.Struct, T.Union))]
            if not ids:
                raise BPFError(f"no struct or union {type_name!r} in the object's BTF; "
                               + hint(type_name))
            self.forced = ids[0]
            return
        for m in obj.spec.maps:
            rid = record_type(obj.spec, m)
            if rid is not None:
                self.by_map[m.name] = rid

    @functools.cached_property
    def candidates(self) -> List[int]:
        """The object's own named structs (not the kernel's: tracepoint contexts and
        the like), "event"-named first: the fallback when BTF says nothing better.
        Computed only when needed: it looks every struct up in vmlinux BTF."""
        btf = self.btf
        if btf is None or self.forced is not None:
            return []
        found = [i for i in range(btf.start_id, len(btf))
                 if isinstance(btf[i], T.Struct) and btf[i].name
                 and not _is_kernel_struct(btf[i].name)]
        found.sort(key=lambda i: "event" not in btf[i].name.lower())
        return found

    def known(self, source: str) -> Optional[int]:
        """The type of ``source``'s records when known before any arrives."""
        if self.forced is not None:
            return self.forced
        if source in self.by_map:
            return self.by_map[source]
        return self.candidates[0] if len(self.candidates) == 1 else None

    def for_record(self, source: str, size: int, slack: int) -> Optional[int]:
        """The type of a ``size``-byte record of ``source`` (perf samples come padded
        by up to ``slack`` bytes)."""
        if self.btf is None:
            return None
        rid = self.known(source)
        if rid is not None and (self.forced is not None or
                                0 <= size - self.btf.size_of(rid) <= slack):
            return rid
        match = [i for i in self.candidates if 0 <= size - self.btf.size_of(i) <= slack]
        return match[0] if match else None


def _is_kernel_struct(name: str) -> bool:
    try:
        from ..btf import kernel
        return bool(kernel.vmlinux().find(name, uapi.BTF_KIND_STRUCT))
    except (BPFError, OSError):
        return False


class RowPrinter:
    """Formats records to ``out`` (a text stream; its binary buffer is written
    directly when it has one), one table row or JSON line each, written per batch."""

    def __init__(self, out: IO[str], as_json: bool, types: RecordTypes):
        self.out, self.as_json, self.types = out, as_json, types
        self._bin = getattr(out, "buffer", None)
        self._lines: List[str] = []
        self._fmt: Dict[Tuple[str, int, int], Optional[Formatter]] = {}
        self._heads: Dict[Tuple[str, Optional[int]], str] = {}
        self._header_done = False
        self._hinted: Set[str] = set()
        self._second = -1
        self._stamp = ""
        first = next(iter(types.by_map.values()), None)
        if first is None:
            first = types.known("")
        if not as_json and first is not None and types.btf is not None:
            self._header(compile_formatter(types.btf, first, False).columns)
            self.flush()                  # the header shows before the first record

    def _header(self, columns: List[Tuple[str, int]]) -> None:
        self._header_done = True
        cells = ["TIME    "] + [n.upper().ljust(w) for n, w in columns]
        self._lines.append(" ".join(cells).rstrip() + "\n")

    def _formatter(self, source: str, size: int, slack: int) -> Optional[Formatter]:
        key = (source, size, slack)
        if key not in self._fmt:
            rid = self.types.for_record(source, size, slack)
            fmt = None
            if rid is not None:
                assert self.types.btf is not None
                fmt = compile_formatter(self.types.btf, rid, self.as_json, source)
                if not self.as_json and not self._header_done:
                    self._header(fmt.columns)
            elif source not in self._hinted:
                self._hinted.add(source)
                print(f"pybpf: {source}: no struct of {size} bytes in the object's BTF, "
                      f"printing records as hex; {hint()}", file=sys.stderr)
            self._fmt[key] = fmt
        return self._fmt[key]

    def _prefix(self, source: str, cpu: Optional[int]) -> str:
        """The start of this moment's lines: the time column, or the JSON head."""
        now = time.time()
        if self.as_json:
            head = self._heads.get((source, cpu))
            if head is None:
                import json
                head = '{"time": %.6f, "map": ' + json.dumps(source).replace("%", "%%") + \
                    (f', "cpu": {cpu}' if cpu is not None else "") + ", "
                self._heads[(source, cpu)] = head
            return head % now
        if int(now) != self._second:
            self._second = int(now)
            self._stamp = time.strftime("%H:%M:%S", time.localtime(now))
        return self._stamp

    def _hex(self, prefix: str, data: Any) -> str:
        hexed = bytes(data).hex()
        if self.as_json:
            return f'{prefix}"data": "{hexed}"}}\n'
        if not self._header_done:
            self._header([("data", 0)])
        return f"{prefix} {hexed}\n"

    def record(self, source: str, data: memoryview, cpu: Optional[int] = None,
               slack: int = 0) -> None:
        """Format one record of map ``source``."""
        key = (source, len(data), slack)
        fmt = self._fmt[key] if key in self._fmt else self._formatter(*key)
        prefix = self._prefix(source, cpu)
        self._lines.append(self._hex(prefix, data) if fmt is None else fmt.row(data, prefix))
        if len(self._lines) >= 4096:
            self.flush()

    def batch(self, source: str, batch: Any) -> None:
        """Format every record of a ring buffer pass (a ``RecordBatch``), run by run."""
        prefix = self._prefix(source, None)
        buffer = batch.buffer
        for off, count, stride, length in batch.runs:
            key = (source, length, 0)
            fmt = self._fmt[key] if key in self._fmt else self._formatter(*key)
            offsets = range(off, off + count * stride, stride)
            if fmt is None:
                self._lines.extend(self._hex(prefix, buffer[o:o + length]) for o in offsets)
            else:
                self._lines.extend(fmt.rows(buffer, offsets, prefix))
        if len(self._lines) >= 4096:
            self.flush()

    def flush(self) -> None:
        """Write the lines collected so far."""
        if not self._lines:
            return
        chunk = "".join(self._lines)
        self._lines.clear()
        if self._bin is not None:
            self.out.flush()
            self._bin.write(chunk.encode("utf-8", "backslashreplace"))
            self._bin.flush()
        else:
            self.out.write(chunk)
            self.out.flush()
