"""BTF -> C declarations: what ``bpftool btf dump ... format c`` writes (vmlinux.h).

Pure: no kernel calls.  The algorithm is the one of libbpf's btf_dump, in two
passes over the types:

1. *ordering* (:meth:`CDumper._order`): a depth-first walk that puts each named
   type that needs a top-level declaration into an emit queue after every type
   it *strongly* depends on (a member embedded by value, an array element, a
   typedef's target).  A struct or union reached through a pointer is a *weak*
   dependency: it only needs a forward declaration, which breaks the cycles of
   self-referencing structs.  Unnamed enums nobody references (the kernel's
   constant lists) are queued too; other anonymous types are written inline.
2. *emission* (:meth:`CDumper._emit`): writes the queue in order, emitting a
   forward declaration (``struct foo;``) the first time a struct is needed
   before its definition, and a typedef the first time it is needed through a
   pointer.

Layout is reproduced from offsets alone, like libbpf: gaps become explicit
``long: 64;`` style padding, a struct whose members or size are not naturally
aligned gets ``__attribute__((packed))``, bitfields keep their widths, enums
of 1 or 8 bytes get ``mode(byte)`` / ``mode(word)``.  Names used by several
distinct types get ``___N`` suffixes (CO-RE ignores such suffixes), in the
struct/union/enum tag namespace and in the identifier namespace (typedefs,
enumerators) separately, as C has them.  Type tags and declaration tags become
``btf_type_tag`` / ``btf_decl_tag`` attributes through macros that expand to
nothing on compilers without them.  VAR, DATASEC and FUNC are not written.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Set, Tuple

from ..errors import ObjectError
from . import types as T
from .spec import BTF, POINTER_SIZE

_NOT, _ING, _DONE = 0, 1, 2             # order / emit states
_BLOCKED_TYPEDEFS = frozenset({"__builtin_va_list"})   # compiler built-ins
_U64 = (1 << 64) - 1
_MODIFIERS = (T.Const, T.Volatile, T.Restrict, T.TypeTag)   # qualify a type in place
_PADS = (("long", 8 * POINTER_SIZE), ("int", 32), ("short", 16), ("char", 8))

TYPE_TAG_MACRO = "__btf_type_tag"
DECL_TAG_MACRO = "__btf_decl_tag"

PRELUDE = f"""#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
#endif

#ifndef {TYPE_TAG_MACRO}
#if __has_attribute(btf_type_tag)
#define {TYPE_TAG_MACRO}(x) __attribute__((btf_type_tag(x)))
#else
#define {TYPE_TAG_MACRO}(x)
#endif
#endif

#ifndef {DECL_TAG_MACRO}
#if __has_attribute(btf_decl_tag)
#define {DECL_TAG_MACRO}(x) __attribute__((btf_decl_tag(x)))
#else
#define {DECL_TAG_MACRO}(x)
#endif
#endif

"""

POSTLUDE = """#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

"""


def dump_header(btf: BTF, guard: str = "__VMLINUX_H__",
                ids: Optional[Iterable[int]] = None) -> str:
    """A whole header, as bpftool writes vmlinux.h: include guard, the
    ``preserve_access_index`` pragma around every record, the types ``ids``
    (default: all) and every type they need."""
    body = CDumper(btf).dump(ids)
    return (f"#ifndef {guard}\n#define {guard}\n\n{PRELUDE}{body}{POSTLUDE}"
            f"#endif /* {guard} */\n")


def align_of(btf: BTF, type_id: int, cache: Optional[Dict[int, int]] = None,
             depth: int = 0) -> int:
    """Natural alignment of a type as libbpf computes it from BTF (1 for a
    struct that must be packed); ``cache`` remembers answers across calls."""
    if cache is not None:
        known = cache.get(type_id)
        if known is None:
            known = cache[type_id] = _align_of(btf, type_id, cache, depth)
        return known
    return _align_of(btf, type_id, None, depth)


def _align_of(btf: BTF, type_id: int, cache: Optional[Dict[int, int]], depth: int) -> int:
    if depth > 64:
        raise ObjectError(f"BTF type {type_id}: type chain too long (a loop?)", btf.section)
    t = btf[type_id]
    if isinstance(t, (T.Int, T.Enum, T.Float)):
        return max(1, min(POINTER_SIZE, t.size))
    if isinstance(t, T.Pointer):
        return POINTER_SIZE
    if isinstance(t, (T._Ref, T.Array)):          # typedef, qualifiers, type tags
        return align_of(btf, t.type, cache, depth + 1)
    if isinstance(t, T.Struct):
        best = 1
        for m in t.members:
            a = align_of(btf, m.type, cache, depth + 1)
            best = max(best, a)
            if not m.bitfield_size and m.bit_offset % (8 * a):
                return 1
        return 1 if t.size % best else best
    if isinstance(t, T.Void):
        return 1
    raise ObjectError(f"BTF type {type_id} ({btf.type_name(type_id)}) has no alignment",
                      btf.section)


def enum_literal(t: T.Enum, value: int) -> str:
    """An enumerator's value as C (and bpftool's raw dump) spells it: by the
    enum's signedness, with LL/ULL for 64-bit enums."""
    if isinstance(t, T.Enum64):
        value &= _U64
        return f"{value - (1 << 64)}LL" if t.signed and value >> 63 else f"{value}ULL"
    return str(value if t.signed else value & 0xFFFFFFFF)


def is_packed(btf: BTF, t: T.Struct, cache: Optional[Dict[int, int]] = None) -> bool:
    """True when a struct's layout needs ``__attribute__((packed))``: a
    non-bitfield member off its natural alignment, or a size that is not a
    multiple of the largest member alignment."""
    best = 1
    for m in t.members:
        a = align_of(btf, m.type, cache)
        if not m.bitfield_size and m.bit_offset % (8 * a):
            return True
        best = max(best, a)
    return bool(t.size % best)


class CDumper:
    """Writes C declarations for the types of one BTF (and its base)."""

    def __init__(self, btf: BTF):
        self.btf = btf
        n = len(btf)
        self._order_state = bytearray(n)
        self._emit_state = bytearray(n)
        self._fwd_done = bytearray(n)
        self._referenced = bytearray(n)
        self._queue: List[int] = []
        self._names: Dict[int, str] = {}
        self._tag_counts: Dict[str, int] = {}
        self._ident_counts: Dict[str, int] = {}
        self._decl_tags: Dict[int, Dict[int, List[str]]] = {}
        self._align: Dict[int, int] = {}
        self._out: List[str] = []

    # ------------------------------------------------------------------ driver

    def dump(self, ids: Optional[Iterable[int]] = None) -> str:
        """C declarations of ``ids`` (default every type) and of all they need."""
        btf = self.btf
        self._index()
        try:        # vmlinux needs less than 200 frames: only a loop goes deeper
            for type_id in (ids if ids is not None else range(1, len(btf))):
                self._order(type_id, False)
            for type_id in self._queue:
                self._emit(type_id, 0)
        except RecursionError:
            raise ObjectError("BTF types nested too deeply to write as C (a typedef or "
                              "qualifier loop?)", btf.section) from None
        out, self._out = "".join(self._out), []
        self._queue = []
        return out

    def _index(self) -> None:
        """Mark referenced types; collect decl tags by (type, component)."""
        btf = self.btf
        ref = self._referenced
        for type_id in range(1, len(btf)):
            t = btf[type_id]
            if isinstance(t, T.Struct):
                for m in t.members:
                    ref[m.type] = 1
            elif isinstance(t, T.FuncProto):
                ref[t.return_type] = 1
                for p in t.params:
                    ref[p.type] = 1
            elif isinstance(t, T.Array):
                ref[t.type] = ref[t.index_type] = 1
            elif isinstance(t, T.Datasec):
                for v in t.vars:
                    ref[v.type] = 1
            elif isinstance(t, (T._Ref, T.Func, T.Var, T.DeclTag)):
                ref[t.type] = 1
            if isinstance(t, T.DeclTag):
                text = f"__attribute__(({t.name}))" if t.attr else \
                    f'{DECL_TAG_MACRO}("{_c_string(t.name)}")'
                self._decl_tags.setdefault(t.type, {}).setdefault(
                    t.component_idx, []).append(text)

    # ------------------------------------------------------------------ pass 1: order

    def _order(self, type_id: int, through_ptr: bool) -> bool:
        """Queue what ``type_id`` needs; True when it is a strong dependency (its
        definition must come first), False when a forward declaration will do."""
        state = self._order_state
        if state[type_id] == _DONE:
            return True
        t = self.btf[type_id]
        if state[type_id] == _ING:
            if isinstance(t, T.Struct) and through_ptr and t.name:
                return False
            raise ObjectError(f"BTF type {type_id} ({self.btf.type_name(type_id)}) "
                              "contains itself by value: not expressible in C",
                              self.btf.section)
        if isinstance(t, (T.Void, T.Int, T.Float)):
            state[type_id] = _DONE
            return False
        if isinstance(t, T.Pointer):
            return self._order(t.type, True)
        if isinstance(t, T.Array):
            return self._order(t.type, False)
        if isinstance(t, T.Struct):
            if through_ptr and t.name:
                return False
            state[type_id] = _ING
            for m in t.members:
                self._order(m.type, False)
            if t.name:
                self._queue.append(type_id)
            state[type_id] = _DONE
            return True
        if isinstance(t, (T.Enum, T.Fwd)):
            if t.name or not self._referenced[type_id]:
                self._queue.append(type_id)
            state[type_id] = _DONE
            return True
        if isinstance(t, T.Typedef):
            strong = self._order(t.type, through_ptr)
            if through_ptr and not strong:
                return False
            self._queue.append(type_id)
            state[type_id] = _DONE
            return True
        if isinstance(t, _MODIFIERS):
            return self._order(t.type, through_ptr)
        if isinstance(t, T.FuncProto):
            strong = self._order(t.return_type, through_ptr)
            for p in t.params:
                strong = self._order(p.type, through_ptr) or strong
            return strong
        state[type_id] = _DONE          # func, var, datasec, decl tag: not written
        return False

    # ------------------------------------------------------------------ pass 2: emit

    def _emit(self, type_id: int, cont_id: int) -> None:
        """Write ``type_id`` (a top-level definition when ``cont_id`` is 0) after
        the forward declarations its definition needs."""
        est = self._emit_state
        if est[type_id] == _DONE:
            return
        t = self.btf[type_id]
        top = cont_id == 0
        if est[type_id] == _ING:
            if self._fwd_done[type_id]:
                return
            if isinstance(t, T.Struct):
                if type_id == cont_id or not t.name:
                    return
                self._put(f"{self._tag_kw(t)} {self._tag_name(type_id)};\n\n")
                self._fwd_done[type_id] = 1
            elif isinstance(t, T.Typedef):
                self._emit_typedef(type_id, t)
                self._fwd_done[type_id] = 1
            return
        if isinstance(t, T.Enum):
            if top:
                self._put(self._enum_body(type_id, t, 0) + ";\n\n")
            est[type_id] = _DONE
        elif isinstance(t, T.Fwd):
            self._put(f"{'union' if t.is_union else 'struct'} {self._tag_name(type_id)};\n\n")
            est[type_id] = _DONE
        elif isinstance(t, (T.Pointer, T.Array) + _MODIFIERS):
            self._emit(t.type, cont_id)
        elif isinstance(t, T.Typedef):
            est[type_id] = _ING
            self._emit(t.type, type_id)
            if not self._fwd_done[type_id]:
                self._emit_typedef(type_id, t)
            est[type_id] = _DONE
        elif isinstance(t, T.Struct):
            est[type_id] = _ING
            if top or not t.name:
                inner = cont_id if not t.name else type_id
                for m in t.members:
                    self._emit(m.type, inner)
            elif not self._fwd_done[type_id] and type_id != cont_id:
                self._put(f"{self._tag_kw(t)} {self._tag_name(type_id)};\n\n")
                self._fwd_done[type_id] = 1
            if top:
                self._put(self._struct_body(type_id, t, 0) + ";\n\n")
                est[type_id] = _DONE
            else:
                est[type_id] = _NOT
        elif isinstance(t, T.FuncProto):
            self._emit(t.return_type, cont_id)
            for p in t.params:
                self._emit(p.type, cont_id)
        else:
            est[type_id] = _DONE

    def _put(self, text: str) -> None:
        self._out.append(text)

    def _emit_typedef(self, type_id: int, t: T.Typedef) -> None:
        if t.name in _BLOCKED_TYPEDEFS:
            return
        tags = self._tags_of(type_id, -1)
        self._put(f"typedef {self.decl(t.type, self._ident_name(type_id), 0)}{tags};\n\n")

    # ------------------------------------------------------------------ names

    def _unique(self, type_id: int, counts: Dict[str, int]) -> str:
        name = self._names.get(type_id)
        if name is None:
            name = self.btf[type_id].name
            if name:
                n = counts[name] = counts.get(name, 0) + 1
                if n > 1:
                    name = f"{name}___{n}"
            self._names[type_id] = name
        return name

    def _tag_name(self, type_id: int) -> str:
        """struct/union/enum tag, unique among tags."""
        return self._unique(type_id, self._tag_counts)

    def _ident_name(self, type_id: int) -> str:
        """typedef name, unique among identifiers."""
        return self._unique(type_id, self._ident_counts)

    @staticmethod
    def _tag_kw(t: T.Struct) -> str:
        return "union" if isinstance(t, T.Union) else "struct"

    def _tags_of(self, type_id: int, component: int) -> str:
        return "".join(" " + tag for tag in self._decl_tags.get(type_id, {}).get(component, ()))

    # ------------------------------------------------------------------ bodies

    def _struct_body(self, type_id: int, t: T.Struct, lvl: int) -> str:
        btf = self.btf
        packed = not isinstance(t, T.Union) and is_packed(btf, t, self._align)
        name = self._tag_name(type_id) if t.name else ""
        lines = [f"{self._tag_kw(t)}{' ' + name if name else ''} {{"]
        pad = "\t" * (lvl + 1)
        off, prev_bitfield = 0, False
        for idx, m in enumerate(t.members):
            bits, m_off = self._bitfield(m)
            align = 1 if packed else align_of(btf, m.type, self._align)
            if m_off > 8 * t.size:      # the kernel's "Member exceeds struct_size"
                raise ObjectError(f"BTF type {type_id} ({btf.type_name(type_id)}): member "
                                  f"{m.name or idx!r} at bit {m_off} lies past its "
                                  f"{t.size} bytes", btf.section)
            if not isinstance(t, T.Union):
                self._check_gap(type_id, off, m_off)
                lines.extend(_padding(off, m_off, align, prev_bitfield and bits != 0, pad))
            text = self.decl(m.type, m.name, lvl + 1)
            if bits:
                text += f": {bits}"
                off = m_off + bits
            else:
                off = m_off + 8 * max(0, btf.size_of(m.type))
            prev_bitfield = bool(bits)
            lines.append(f"{pad}{text}{self._tags_of(type_id, idx)};")
        if not isinstance(t, T.Union):
            self._check_gap(type_id, off, 8 * t.size)
            lines.extend(_padding(off, 8 * t.size,
                                  1 if packed else align_of(btf, type_id, self._align),
                                  False, pad))
        close = "\t" * lvl + "}" if len(lines) > 1 else "}"
        if packed:
            close += " __attribute__((packed))"
        body = "\n".join(lines) + "\n" if len(lines) > 1 else lines[0]
        return body + close + self._tags_of(type_id, -1)

    def _check_gap(self, type_id: int, cur: int, nxt: int) -> None:
        """Padding is written a bitfield of at most 64 bits a line: a gap of more than
        MAX_PADDING_BITS (no compiler leaves one) would be millions of lines."""
        if nxt - cur > MAX_PADDING_BITS:
            raise ObjectError(f"BTF type {type_id} ({self.btf.type_name(type_id)}): a gap "
                              f"of {(nxt - cur) // 8} bytes between members, more than "
                              f"the {MAX_PADDING_BITS // 8} bytes of padding a C header "
                              "is written with", self.btf.section)

    def _bitfield(self, m: T.Member) -> Tuple[int, int]:
        """(bit width or 0, bit offset) of a member, legacy int bitfields included."""
        if m.bitfield_size:
            return m.bitfield_size, m.bit_offset
        target = self.btf[self.btf.resolve(m.type)]
        if isinstance(target, T.Int) and (target.offset or target.bits != 8 * target.size):
            return target.bits, m.bit_offset + target.offset
        return 0, m.bit_offset

    def _enum_body(self, type_id: int, t: T.Enum, lvl: int) -> str:
        name = self._tag_name(type_id) if t.name else ""
        head = f"enum{' ' + name if name else ''}"
        if not t.values:
            return head
        pad = "\t" * (lvl + 1)
        lines = [head + " {"]
        wide = isinstance(t, T.Enum64)
        for vname, value in t.values:
            n = self._ident_counts[vname] = self._ident_counts.get(vname, 0) + 1
            vname = f"{vname}___{n}" if n > 1 else vname
            lines.append(f"{pad}{vname} = {enum_literal(t, value)},")
        close = "\t" * lvl + "}"
        if t.size == 1:
            close += " __attribute__((mode(byte)))"
        elif t.size == 2:
            close += " __attribute__((mode(HI)))"
        elif t.size == 8 and not (wide and any((v & _U64) >> 32 for _, v in t.values)):
            close += " __attribute__((mode(word)))"    # nothing forces 64 bits otherwise
        return "\n".join(lines) + "\n" + close

    # ------------------------------------------------------------------ declarators

    def decl(self, type_id: int, inner: str, lvl: int) -> str:
        """The C declaration of ``inner`` (a name, or "" for a type name) with type
        ``type_id``; anonymous structs/unions/enums are written inline at ``lvl``."""
        prefix: List[str] = []          # const/volatile on the base type
        suffix: List[str] = []          # type tags on the base type
        modified: Set[str] = set()      # declarators that start with a pointer qualifier
        for _ in range(256):
            t = self.btf[type_id]
            if isinstance(t, T.Pointer):        # spaced as libbpf: "* const p", "* (*f)(void)"
                inner = "*" + (" " + inner if inner[:1] == "(" or inner in modified else inner)
                target = self.btf[_skip_mods(self.btf, t.type)]
                if isinstance(target, (T.Array, T.FuncProto)):
                    inner = f"({inner})"
                type_id = t.type
            elif isinstance(t, _MODIFIERS):
                word = _modifier(t)
                if isinstance(self.btf[_skip_mods(self.btf, t.type)], T.Pointer):
                    inner = f"{word} {inner}" if inner else word
                    modified.add(inner)
                elif isinstance(t, T.TypeTag):
                    suffix.insert(0, word)
                else:
                    prefix.append(word)
                type_id = t.type
            elif isinstance(t, T.Array):
                inner = f"{inner}[{t.nelems}]"
                type_id = t.type
            elif isinstance(t, T.FuncProto):
                params = [("..." if not p.type else self.decl(p.type, "", lvl))
                          for p in t.params]
                inner = f"{inner}({', '.join(params) or 'void'})"
                type_id = t.return_type
            else:
                base = self._base(type_id, t, lvl)
                words = [*dict.fromkeys(prefix), base, *suffix]
                if inner:
                    words.append(inner)
                return " ".join(words)
        raise ObjectError(f"BTF type {type_id}: declarator chain too long (a loop?)",
                          self.btf.section)

    def _base(self, type_id: int, t: T.Type, lvl: int) -> str:
        if isinstance(t, T.Void):
            return "void"
        if isinstance(t, T.Struct):
            return self._struct_body(type_id, t, lvl) if not t.name else \
                f"{self._tag_kw(t)} {self._tag_name(type_id)}"
        if isinstance(t, T.Enum):
            return self._enum_body(type_id, t, lvl) if not t.name else \
                f"enum {self._tag_name(type_id)}"
        if isinstance(t, T.Fwd):
            return f"{'union' if t.is_union else 'struct'} {self._tag_name(type_id)}"
        if isinstance(t, T.Typedef):
            return self._ident_name(type_id)
        if isinstance(t, (T.Int, T.Float)):
            return t.name
        raise ObjectError(f"BTF type {type_id} ({type(t).__name__}) cannot be the base of "
                          "a C declaration", self.btf.section)


def _modifier(t: T.Type) -> str:
    if isinstance(t, T.TypeTag):
        return f"__attribute__(({t.name}))" if t.attr else \
            f'{TYPE_TAG_MACRO}("{_c_string(t.name)}")'
    return "const" if isinstance(t, T.Const) else \
        "volatile" if isinstance(t, T.Volatile) else "restrict"


def _skip_mods(btf: BTF, type_id: int) -> int:
    """Skip const/volatile/restrict/type tags (not typedefs)."""
    for _ in range(64):
        t = btf[type_id]
        if not isinstance(t, _MODIFIERS):
            return type_id
        type_id = t.type
    raise ObjectError(f"BTF type {type_id}: qualifier chain too long (a loop?)", btf.section)


def _c_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


#: the widest gap between members (or before a struct's end) written as padding
MAX_PADDING_BITS = 8 << 20


def _padding(cur: int, nxt: int, nxt_align: int, in_bitfield: bool, pad: str) -> List[str]:
    """Anonymous bitfields filling the bits [cur, nxt) so that the next member
    lands at ``nxt`` whatever the compiler's natural alignment would do."""
    out: List[str] = []
    if cur >= nxt:
        return out
    new, pad_bits, pad_type = cur, 8, "char"
    for pad_type, pad_bits in _PADS:
        new = -(-cur // pad_bits) * pad_bits
        if new <= nxt:
            break
    if cur < new <= nxt:
        if in_bitfield or (new == nxt and -(-cur // (8 * nxt_align)) * 8 * nxt_align != new) \
                or (new != nxt and nxt - new <= new - cur):
            out.append(f"{pad}{pad_type}: {new - cur if in_bitfield else 0};")
        cur = new
    while cur != nxt:
        bits = min(nxt - cur, pad_bits)
        if bits == pad_bits:
            out.append(f"{pad}{pad_type}: {pad_bits};")
            cur += bits
            continue
        for small_type, small_bits in reversed(_PADS):
            if small_bits >= bits:
                out.append(f"{pad}{small_type}: {bits};")
                cur += bits
                break
    return out
