"""Python source for BTF types: one class per struct/union, an ``IntEnum`` per enum.

``PyTypes(btf)`` turns BTF types into the text of typed Python classes (pure
code generation, no I/O), for skeletons (:mod:`pybpf.obj.skeleton`):

- ints and pointers -> ``int``, bool -> ``bool``, floats -> ``float``, enums ->
  their ``IntEnum`` class (unknown values become pseudo-members), ``char[N]`` ->
  ``bytes`` cut at the first NUL, other arrays -> ``List[...]``, nested structs ->
  their class, bitfields -> ``int``; members of anonymous struct/union members are
  lifted into the parent, as C spells them;
- a struct class decodes a record with one ``struct.unpack_from`` of its whole
  layout (nested structs and arrays inlined; bitfields are read as their storage
  bytes and extracted after; a union is read as bytes and decoded by its class);
- ``Cls.size``, ``Cls.from_buffer(buf, offset=0)``, ``__slots__`` named after the
  members, keyword ``__init__``, ``__eq__`` and ``__repr__``.

Names are Python-safe and stable: the same BTF gives the same text.
"""
from __future__ import annotations

import builtins
import keyword
import re
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

from ..errors import ObjectError
from . import types as T
from .spec import BTF, POINTER_SIZE
from .strtab import shown

_MAX_DEPTH = 64
_INT_FMT = {1: "b", 2: "h", 4: "i", 8: "q"}
_FLOAT_FMT = {2: "e", 4: "f", 8: "d"}
#: names the generated module defines or imports itself
RESERVED = frozenset({"_b64", "_enum", "_struct", "_t", "_zlib", "_pybpf", "_OBJECT",
                      "annotations"})
#: class attributes of generated struct classes: members with these names get a "_"
_CLASS_ATTRS = frozenset({"size", "from_buffer", "_from_values", "_nvalues", "_layout"})


def identifier(name: str, taken: Sequence[str] = ()) -> str:
    """``name`` as a Python identifier: odd characters (anything but ASCII letters,
    digits and ``_``: not every Unicode ``\\w`` may stand in an identifier, and Python
    NFKC-folds the others) -> ``_``, keywords, builtins and ``taken`` names get a
    trailing ``_``."""
    ident = re.sub(r"\W", "_", name, flags=re.ASCII) or "_"
    if ident[0].isdigit():
        ident = "_" + ident
    if ident.startswith("__"):             # would be name-mangled inside a class
        ident = "_" + ident.lstrip("_")
    while keyword.iskeyword(ident) or ident in taken or ident in RESERVED \
            or hasattr(builtins, ident):
        ident += "_"
    return ident


def doc_text(text: str) -> str:
    """``text`` (a name from the object) as it may stand inside a generated docstring:
    backslashes, quotes, control characters and what UTF-8 cannot encode (the
    surrogates of undecodable bytes: shown as ``\\udcff``, for a class's docstring
    must encode) escaped, so it neither ends the string nor breaks the module."""
    return repr(shown(text))[1:-1].replace('"', '\\"')


def _index(base: str, k: int) -> str:
    """The tuple index ``base + k`` as source (folded when base is a literal)."""
    if base.isdigit():
        return str(int(base) + k)
    return base if k == 0 else f"{base} + {k}"


class Val:
    """How one value is laid out and rebuilt: ``items`` are its ``struct`` format
    items with their byte offsets (one tuple value each), ``expr(v, base)`` the
    source that rebuilds it from the unpacked tuple ``v`` starting at ``base``."""

    def __init__(self, items: List[Tuple[int, int, str]], pytype: str,
                 expr: Callable[[str, str], str], default: str, plain: bool = False,
                 mutable: bool = False):
        self.items = items          # (offset, size, format item)
        self.pytype = pytype
        self.expr = expr
        self.default = default      # source of a zero value
        self.plain = plain          # expr is just v[base] (arrays of it are slices)
        self.mutable = mutable      # the zero value is a new object each time (list, record)

    @property
    def nvalues(self) -> int:
        return len(self.items)

    @property
    def size(self) -> int:
        return max((off + size for off, size, _ in self.items), default=0)


def _shift(items: List[Tuple[int, int, str]], by: int) -> List[Tuple[int, int, str]]:
    return [(off + by, size, fmt) for off, size, fmt in items]


def layout_format(items: List[Tuple[int, int, str]], size: int, what: str) -> str:
    """One ``struct`` format (little-endian, explicit padding) for ``items``."""
    out, pos = ["<"], 0
    for off, isize, fmt in items:
        if off < pos:
            raise ObjectError(f"{what}: members overlap at byte {off}", ".BTF")
        if off > pos:
            out.append(f"{off - pos}x")
        out.append(fmt)
        pos = off + isize
    if pos > size:
        raise ObjectError(f"{what}: members end at byte {pos}, past its {size} bytes", ".BTF")
    if size > pos:
        out.append(f"{size - pos}x")
    return "".join(out)


class _Bits:
    """A bitfield member: ``bits`` bits at ``bit_offset`` from the record start."""

    def __init__(self, name: str, bit_offset: int, bits: int, signed: bool,
                 pytype: str, wrap: str):
        self.name, self.bit_offset, self.bits = name, bit_offset, bits
        self.signed, self.pytype, self.wrap = signed, pytype, wrap

    @property
    def first(self) -> int:
        return self.bit_offset // 8

    @property
    def end(self) -> int:
        return (self.bit_offset + self.bits + 7) // 8


class _Slot:
    """A run of struct items in a record's layout: one member's, an anonymous
    union's bytes, or a bitfield storage unit; ``start`` is its first tuple index."""

    def __init__(self, offset: int, order: int, items: List[Tuple[int, int, str]]):
        self.offset, self.order, self.items = offset, order, items
        self.start = -1


def _first_byte(m: _Bits) -> int:
    return m.first


def _at(val: Val, start: int) -> Callable[[str, str], str]:
    """``val``'s expression with its values starting at tuple index ``base + start``."""
    return lambda v, b: val.expr(v, _index(b, start))


def _lifted_expr(cls_name: str, start: int, attr: str) -> Callable[[str, str], str]:
    return lambda v, b: f"{cls_name}.from_buffer({v}[{_index(b, start)}]).{attr}"


class PyClass:
    """The generated source of one class, and what a parent needs to inline it."""

    def __init__(self, name: str, source: str, val: Val,
                 attrs: Optional[Dict[str, Tuple[str, str, str, bool]]] = None):
        self.name, self.source, self.val = name, source, val
        #: C member name -> (attribute, annotation, zero value source, zero is mutable)
        self.attrs: Dict[str, Tuple[str, str, str, bool]] = attrs or {}


class _Lifted:
    """A member of an anonymous union member, read through the union's class."""

    def __init__(self, offset: int, cls: PyClass, member: str):
        self.offset, self.cls, self.member = offset, cls, member


Member = Union[Val, _Bits, _Lifted]


class PyTypes:
    """Generates classes on demand; ``source()`` is every class made, dependencies first."""

    def __init__(self, btf: BTF, taken: Sequence[str] = ()):
        self.btf = btf
        self.classes: Dict[int, PyClass] = {}
        self._order: List[int] = []
        self._names: Set[str] = set(taken)
        self._pending: Dict[int, str] = {}     # type id -> class name being built
        self._hint: Dict[int, str] = {}        # anonymous type id -> name from its context

    # ------------------------------------------------------------------ public

    def val(self, type_id: int, hint: str = "", depth: int = 0) -> Val:
        """The layout of ``type_id`` (classes are generated for the records it holds)."""
        if depth > _MAX_DEPTH:
            raise self._fail(type_id, "types nested too deeply (a loop?)")
        btf = self.btf
        tid = btf.resolve(type_id)
        t = btf[tid]
        if isinstance(t, T.Var):
            return self.val(t.type, hint or t.name, depth + 1)
        if isinstance(t, T.Int):
            return self._int(t, type_id)
        if isinstance(t, T.Enum):
            enum_name = self._enum(tid, self._typedef_name(type_id) or hint)
            fmt = _INT_FMT.get(t.size)
            if fmt is None:
                raise self._fail(type_id, f"{t.size}-byte enum")
            fmt = fmt if t.signed else fmt.upper()
            return Val([(0, t.size, fmt)], enum_name, lambda v, b: f"{enum_name}({v}[{b}])",
                       f"{enum_name}(0)")
        if isinstance(t, T.Pointer):
            return Val([(0, POINTER_SIZE, "Q")], "int", _plain, "0", plain=True)
        if isinstance(t, T.Float):
            fmt = _FLOAT_FMT.get(t.size)
            if fmt is None:        # long double: its bytes
                return Val([(0, t.size, f"{t.size}s")], "bytes", _plain, "b''", plain=True)
            return Val([(0, t.size, fmt)], "float", _plain, "0.0", plain=True)
        if isinstance(t, T.Array):
            return self._array(t, type_id, hint, depth)
        if isinstance(t, T.Union):
            cls = self.record(tid, self._typedef_name(type_id) or hint, depth)
            return Val([(0, t.size, f"{t.size}s")], cls.name,
                       lambda v, b: f"{cls.name}.from_buffer({v}[{b}])", f"{cls.name}()",
                       mutable=True)
        if isinstance(t, T.Struct):
            cls = self.record(tid, self._typedef_name(type_id) or hint, depth)
            return Val(list(cls.val.items), cls.name, cls.val.expr, f"{cls.name}()",
                       mutable=True)
        raise self._fail(type_id, f"{type(t).__name__.lower()} has no value")

    def source(self) -> str:
        """Every generated class, in definition order."""
        return "\n\n".join(self.classes[i].source for i in self._order)

    # ------------------------------------------------------------------ scalars

    def _int(self, t: T.Int, type_id: int) -> Val:
        if t.offset or t.bits != 8 * t.size:
            raise self._fail(type_id, "an int with a bit offset is only valid in a struct")
        if t.is_bool:
            return Val([(0, t.size, "?" if t.size == 1 else _INT_FMT[t.size].upper())],
                       "bool", (lambda v, b: f"{v}[{b}]") if t.size == 1 else
                       (lambda v, b: f"bool({v}[{b}])"), "False", plain=t.size == 1)
        fmt = _INT_FMT.get(t.size)
        if fmt is not None:
            return Val([(0, t.size, fmt if t.signed else fmt.upper())], "int", _plain, "0",
                       plain=True)
        signed = t.signed
        return Val([(0, t.size, f"{t.size}s")], "int",
                   lambda v, b: f"int.from_bytes({v}[{b}], 'little', signed={signed})", "0")

    def _array(self, t: T.Array, type_id: int, hint: str, depth: int) -> Val:
        btf = self.btf
        elem_t = btf[btf.resolve(t.type)]
        n = t.nelems
        if isinstance(elem_t, T.Int) and elem_t.size == 1 and (elem_t.is_char or
                                                                elem_t.name == "char"):
            return Val([(0, n, f"{n}s")], "bytes",
                       lambda v, b: f"{v}[{b}].split(b'\\0', 1)[0]", "b''")
        elem = self.val(t.type, hint, depth + 1)
        esize = btf.size_of(t.type)
        items = [it for k in range(n) for it in _shift(elem.items, k * esize)]
        pytype = f"_t.List[{elem.pytype}]"
        default = f"[{elem.default} for _ in range({n})]"
        if elem.plain:
            return Val(items, pytype,
                       lambda v, b: f"list({v}[{b}:{_index(b, n)}])", default, mutable=True)
        per, var = elem.nvalues, f"_k{depth}"

        def expr(v: str, b: str) -> str:
            inner = elem.expr(v, f"{b} + {var} * {per}" if per != 1 else f"{b} + {var}")
            return f"[{inner} for {var} in range({n})]"
        return Val(items, pytype, expr, default, mutable=True)

    def _typedef_name(self, type_id: int) -> str:
        """The name of the typedef ``type_id`` is (through qualifiers), else ''."""
        btf = self.btf
        for _ in range(_MAX_DEPTH):
            t = btf[type_id]
            if isinstance(t, T.Typedef):
                return t.name
            if t.kind not in T.QUALIFIER_KINDS:
                return ""
            assert isinstance(t, T._Ref)
            type_id = t.type
        return ""

    def _fail(self, type_id: int, why: str) -> ObjectError:
        return ObjectError(f"cannot generate a Python type for "
                           f"{self.btf.type_name(type_id)}: {why}", self.btf.section)

    def _class_name(self, type_id: int, hint: str) -> str:
        t = self.btf[type_id]
        name = identifier(t.name or hint or f"anon{type_id}", sorted(self._names))
        self._names.add(name)
        return name

    # ------------------------------------------------------------------ enums

    def _enum(self, type_id: int, hint: str) -> str:
        if type_id in self.classes:
            return self.classes[type_id].name
        t = self.btf[type_id]
        assert isinstance(t, T.Enum)
        name = self._class_name(type_id, hint)
        lines = [f"class {name}(_enum.IntEnum):",
                 f'    """{"enum " + doc_text(t.name) if t.name else "an anonymous enum"}'
                 f' ({t.size} bytes); unknown values are pseudo-members."""', ""]
        used: List[str] = []
        for ename, value in t.values:
            ident = identifier(ename, used + ["name", "value"])
            if ident.startswith("_"):
                ident = "m" + ident
            used.append(ident)
            lines.append(f"    {ident} = {value}")
        lines += ["",
                  "    @classmethod",
                  f"    def _missing_(cls, value: object) -> _t.Optional[{name!r}]:",
                  "        if not isinstance(value, int):",
                  "            return None",
                  "        member = int.__new__(cls, value)",
                  "        member._name_ = str(value)",
                  "        member._value_ = value",
                  "        return member"]
        self.classes[type_id] = PyClass(name, "\n".join(lines), Val([], name, _plain, ""))
        self._order.append(type_id)
        return name

    # ------------------------------------------------------------------ records

    def record(self, type_id: int, hint: str = "", depth: int = 0) -> PyClass:
        """The class of struct/union ``type_id`` (generated once)."""
        if type_id in self.classes:
            return self.classes[type_id]
        if type_id in self._pending:
            raise self._fail(type_id, "a struct that contains itself")
        t = self.btf[type_id]
        assert isinstance(t, T.Struct)
        name = self._class_name(type_id, hint)
        self._pending[type_id] = name
        try:
            cls = (self._union if isinstance(t, T.Union) else self._struct)(
                type_id, t, name, depth)
        finally:
            del self._pending[type_id]
        self.classes[type_id] = cls
        self._order.append(type_id)
        return cls

    def _members(self, t: T.Struct, owner: str, base_bits: int, depth: int,
                 out: List[Tuple[str, Member]], anon: List[int]) -> None:
        """(name, Val at its offset | _Bits | _Lifted) for every member, the members
        of anonymous structs and unions lifted."""
        btf = self.btf
        for m in t.members:
            bit_offset = base_bits + m.bit_offset
            target_id = btf.resolve(m.type)
            target = btf[target_id]
            if not m.name:
                if isinstance(target, T.Union):
                    anon[0] += 1
                    cls = self.record(target_id, f"{owner}_anon{anon[0]}", depth + 1)
                    if bit_offset % 8:
                        raise self._fail(target_id, "an unaligned anonymous union")
                    for sub in _field_names(btf, target):
                        out.append((sub, _Lifted(bit_offset // 8, cls, sub)))
                elif isinstance(target, T.Struct):
                    self._members(target, owner, bit_offset, depth + 1, out, anon)
                continue                      # an unnamed padding bitfield
            bits = m.bitfield_size
            if not bits and isinstance(target, T.Int) and \
                    (target.offset or target.bits != 8 * target.size):
                bit_offset, bits = bit_offset + target.offset, target.bits
            if bits or bit_offset % 8:
                if isinstance(target, T.Enum):
                    cls_name = self._enum(target_id, f"{owner}_{m.name}")
                    out.append((m.name, _Bits(m.name, bit_offset, bits or 8 * target.size,
                                              target.signed, cls_name, cls_name)))
                elif isinstance(target, T.Int):
                    out.append((m.name, _Bits(m.name, bit_offset, bits or 8 * target.size,
                                              target.signed,
                                              "bool" if target.is_bool else "int",
                                              "bool" if target.is_bool else "")))
                else:
                    raise self._fail(m.type, f"bitfield {m.name!r} is not an integer")
                continue
            val = self.val(m.type, f"{owner}_{m.name}", depth + 1)
            out.append((m.name, Val(_shift(val.items, bit_offset // 8), val.pytype,
                                    val.expr, val.default, val.plain, val.mutable)))

    def _struct(self, type_id: int, t: T.Struct, name: str, depth: int) -> PyClass:
        members: List[Tuple[str, Member]] = []
        self._members(t, name, 0, depth, members, [0])
        slots: List[_Slot] = []
        of_member: Dict[int, _Slot] = {}           # id(member Val) -> its slot
        of_union: Dict[int, _Slot] = {}            # anonymous union offset -> its bytes
        for order, (_, m) in enumerate(members):
            if isinstance(m, Val):
                of_member[id(m)] = _Slot(m.items[0][0] if m.items else 0, order, m.items)
                slots.append(of_member[id(m)])
            elif isinstance(m, _Lifted) and m.offset not in of_union:
                size = m.cls.val.items[0][1]
                of_union[m.offset] = _Slot(m.offset, order, [(m.offset, size, f"{size}s")])
                slots.append(of_union[m.offset])
        # the storage of the bitfields: runs of overlapping bytes, one item each
        chunks: List[List[int]] = []
        for m in sorted((m for _, m in members if isinstance(m, _Bits)), key=_first_byte):
            if chunks and m.first < chunks[-1][1]:
                chunks[-1][1] = max(chunks[-1][1], m.end)
            else:
                chunks.append([m.first, m.end])
        of_chunk = [(first, end, _Slot(first, -1, [(first, end - first,
                                                   _uint_fmt(end - first))]))
                    for first, end in chunks]
        slots += [slot for _, _, slot in of_chunk]
        slots.sort(key=lambda slot: (slot.offset, slot.order))
        items: List[Tuple[int, int, str]] = []
        for slot in slots:
            slot.start = len(items)
            items.extend(slot.items)
        fmt = layout_format(items, t.size, f"struct {t.name or name}")
        taken: List[str] = []
        fields: List[Tuple[str, str, Callable[[str, str], str], str, bool]] = []
        for cname, m in members:
            attr = identifier(cname, taken + sorted(_CLASS_ATTRS))
            taken.append(attr)
            if isinstance(m, Val):
                fields.append((attr, m.pytype, _at(m, of_member[id(m)].start), m.default,
                               m.mutable))
            elif isinstance(m, _Bits):
                first, end, slot = next(c for c in of_chunk if c[0] <= m.first < c[1])
                fields.append((attr, m.pytype, _bits_expr(m, slot.start, first, end),
                               _bits_zero(m), False))
            else:
                sub_attr, sub_type, sub_default, sub_mutable = m.cls.attrs[m.member]
                fields.append((attr, sub_type,
                               _lifted_expr(m.cls.name, of_union[m.offset].start, sub_attr),
                               sub_default, sub_mutable))
        src = _class_source(name, f"struct {doc_text(t.name)}" if t.name else "an anonymous struct",
                            t.size, fmt, len(items), fields)
        return PyClass(name, src, Val(items, name,
                                      lambda v, b: f"{name}._from_values({v}, {b})",
                                      f"{name}()", mutable=True),
                       {c: (f[0], f[1], f[3], f[4]) for (c, _), f in zip(members, fields)})

    def _union(self, type_id: int, t: T.Struct, name: str, depth: int) -> PyClass:
        """A union: every member decoded from the same bytes, each with its own format."""
        members: List[Tuple[str, Member]] = []
        self._members(t, name, 0, depth, members, [0])
        taken: List[str] = []
        fields: List[Tuple[str, str, int, Callable[[str, str], str], str, bool]] = []
        formats: List[str] = []
        for cname, m in members:
            attr = identifier(cname, taken + sorted(_CLASS_ATTRS))
            taken.append(attr)
            if isinstance(m, Val):
                fmt = layout_format(m.items, t.size, f"union {t.name or name}.{cname}")
                formats.append(fmt)
                fields.append((attr, m.pytype, len(formats) - 1, m.expr, m.default,
                               m.mutable))
            elif isinstance(m, _Bits):
                width = m.end - m.first
                fmt = layout_format([(m.first, width, _uint_fmt(width))], t.size,
                                    f"union {t.name or name}.{cname}")
                formats.append(fmt)
                fields.append((attr, m.pytype, len(formats) - 1,
                               _bits_expr(m, 0, m.first, m.end), _bits_zero(m), False))
            else:
                raise self._fail(type_id, "an anonymous union inside a union")
        what = f"union {doc_text(t.name)}" if t.name else "an anonymous union"
        lines = _class_head(name, what, t.size, [(f[0], f[1]) for f in fields])
        lines.append("    _layout: _t.ClassVar[_t.Tuple[_struct.Struct, ...]] = (")
        lines += [f"        _struct.Struct({fmt!r})," for fmt in formats]
        lines.append("    )")
        lines += _init_lines([(f[0], f[1], f[4], f[5]) for f in fields])
        lines += ["", "    @classmethod",
                  f"    def from_buffer(cls, buf: _t.Any, offset: int = 0) -> {name!r}:",
                  f'        """Decode one {name} from ``buf`` at ``offset``."""',
                  "        self = object.__new__(cls)"]
        for attr, _, k, expr, _, _ in fields:
            lines.append(f"        v = cls._layout[{k}].unpack_from(buf, offset)")
            lines.append(f"        self.{attr} = {expr('v', '0')}")
        lines.append("        return self")
        lines += _dunder_lines(name, [f[0] for f in fields])
        return PyClass(name, "\n".join(lines),
                       Val([(0, t.size, f"{t.size}s")], name,
                           lambda v, b: f"{name}.from_buffer({v}[{b}])", f"{name}()",
                           mutable=True),
                       {c: (f[0], f[1], f[4], f[5]) for (c, _), f in zip(members, fields)})


def _plain(v: str, b: str) -> str:
    return f"{v}[{b}]"


def _uint_fmt(width: int) -> str:
    return {1: "B", 2: "H", 4: "I", 8: "Q"}.get(width, f"{width}s")


def _bits_expr(m: _Bits, idx: int, cfirst: int, cend: int) -> Callable[[str, str], str]:
    shift = m.bit_offset - 8 * cfirst
    mask = (1 << m.bits) - 1
    as_int = cend - cfirst in (1, 2, 4, 8)

    def expr(v: str, b: str) -> str:
        raw = f"{v}[{_index(b, idx)}]"
        if not as_int:
            raw = f"int.from_bytes({raw}, 'little')"
        value = f"({raw} >> {shift}) & {mask:#x}" if shift else f"{raw} & {mask:#x}"
        if m.signed:
            value = f"(({value}) ^ {1 << (m.bits - 1):#x}) - {1 << (m.bits - 1):#x}"
        return f"{m.wrap}({value})" if m.wrap else value
    return expr


def _field_names(btf: BTF, t: T.Struct) -> List[str]:
    """Member names of ``t`` as C reaches them (anonymous structs flattened)."""
    out: List[str] = []
    for m in t.members:
        if m.name:
            out.append(m.name)
        else:
            target = btf[btf.resolve(m.type)]
            if isinstance(target, T.Struct):
                out.extend(_field_names(btf, target))
    return out


def _class_head(name: str, what: str, size: int, fields: List[Tuple[str, str]]) -> List[str]:
    slots = ", ".join(repr(a) for a, _ in fields) + ("," if len(fields) == 1 else "")
    lines = [f"class {name}:",
             f'    """{what} ({size} bytes)."""', "",
             f"    __slots__ = ({slots})",
             f"    size: _t.ClassVar[int] = {size}"]
    lines += [f"    {a}: {p}" for a, p in fields]
    return lines


def _bits_zero(m: _Bits) -> str:
    return f"{m.wrap}(0)" if m.wrap else "0"


def _init_lines(fields: List[Tuple[str, str, str, bool]]) -> List[str]:
    """A keyword-only ``__init__``: every member defaults to zero."""
    if not fields:
        return ["", "    def __init__(self) -> None:", "        pass"]
    args, body = [], []
    for attr, pytype, default, mutable in fields:
        if mutable:
            args.append(f"{attr}: _t.Optional[{pytype}] = None")
            body.append(f"        self.{attr} = {default} if {attr} is None else {attr}")
        else:
            args.append(f"{attr}: {pytype} = {default}")
            body.append(f"        self.{attr} = {attr}")
    return ["", f"    def __init__(self, *, {', '.join(args)}) -> None:"] + body


def _dunder_lines(name: str, attrs: List[str]) -> List[str]:
    comma = "," if len(attrs) == 1 else ""
    tup = "(" + ", ".join(f"self.{a}" for a in attrs) + comma + ")"
    other = "(" + ", ".join(f"other.{a}" for a in attrs) + comma + ")"
    reprs = ", ".join(f"{a}={{self.{a}!r}}" for a in attrs)
    return ["", "    def __eq__(self, other: object) -> bool:",
            f"        if not isinstance(other, {name}):",
            "            return NotImplemented",
            f"        return {tup} == {other}",
            "", "    def __repr__(self) -> str:",
            f'        return f"{name}({reprs})"']


def _class_source(name: str, what: str, size: int, fmt: str, nvalues: int,
                  fields: List[Tuple[str, str, Callable[[str, str], str], str, bool]]) -> str:
    lines = _class_head(name, what, size, [(f[0], f[1]) for f in fields])
    lines += [f"    _layout: _t.ClassVar[_struct.Struct] = _struct.Struct({fmt!r})",
              f"    _nvalues: _t.ClassVar[int] = {nvalues}"]
    lines += _init_lines([(f[0], f[1], f[3], f[4]) for f in fields])
    lines += ["", "    @classmethod",
              f"    def from_buffer(cls, buf: _t.Any, offset: int = 0) -> {name!r}:",
              f'        """Decode one {name} from ``buf`` (bytes, memoryview...) at ``offset``."""',
              "        v = cls._layout.unpack_from(buf, offset)",
              "        self = object.__new__(cls)"]
    lines += [f"        self.{f[0]} = {f[2]('v', '0')}" for f in fields]
    lines.append("        return self")
    lines += ["", "    @classmethod",
              f"    def _from_values(cls, v: _t.Sequence[_t.Any], i: int) -> {name!r}:",
              "        self = object.__new__(cls)"]
    lines += [f"        self.{f[0]} = {f[2]('v', 'i')}" for f in fields]
    lines.append("        return self")
    lines += _dunder_lines(name, [f[0] for f in fields])
    return "\n".join(lines)
