"""``BTF``: a type table (optionally split on top of a base such as vmlinux).

Types are decoded lazily: ``BTF.parse`` scans the blob once for the offset of
every record and the name offset of every type (cheap enough for the 126k
types of vmlinux), and ``btf[id]`` decodes one record on first use, then
returns the same mutable object every time (the loader fixes DATASEC sizes and
offsets in place before ``encode()``).

Errors: an id that does not exist raises ``KeyError``; a record that turns out
to be malformed when decoded raises ``ObjectError`` naming section and offset.
``BTF.parse(..., validate=True)`` (or ``validate()``) decodes every record up
front, so that all malformations surface at parse time.
"""
from __future__ import annotations

import mmap
import struct
from array import array
from bisect import bisect_left, bisect_right
from operator import itemgetter
from typing import (Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar,
                    Union as _U, cast)

from ..errors import ObjectError
from ..limits import MAX_RESOLVE_DEPTH, U32_MAX
from ..uapi import BTF_INFO_KIND_MASK, BTF_INFO_KIND_SHIFT
from . import types as T
from .encode import encode_btf
from .parse import TypeReader, parse_header, scan, words
from .strtab import Blob, StringTable

VOID = T.Void()
POINTER_SIZE = 8          # BPF is a 64-bit target
_SCANS_BEFORE_INDEX = 12  # name lookups answered by scanning before building the index
_MAX_CHAIN = MAX_RESOLVE_DEPTH   # longest typedef/qualifier/array chain followed (the kernel's)
_Item = TypeVar("_Item")
_SPELL_STEPS = 64         # types a type_name() spelling visits before it writes "..."
_U32 = struct.Struct("=I")    # one packed name offset (native order, as ``array("I")``)
_GATHER = 8192            # name offsets gathered per step (bounds the temporary tuple)
MIN_CACHED_BLOB = 256 * 1024    # smaller blobs are scanned: hashing would cost more
_Hashed = Tuple["array[int]", "array[int]", "array[int]"]
_ByHash = Optional[_Hashed]


class BTF:
    """A BTF type table. ``BTF()`` is an empty one (void only) to ``add`` types to."""

    def __init__(self, base: Optional["BTF"] = None, section: str = ".BTF"):
        self.base = base
        self.section = section
        self.start_id = len(base) if base is not None else 1
        self._types: Dict[int, T.Type] = {}     # own types by index: decoded or added
        self._count = 0                          # own types: parsed records, then added
        self._reader: Optional[TypeReader] = None
        self._offsets: Sequence[int] = ()        # word offset of each parsed record
        self._name_offs = b""                    # name_off of each parsed record, packed u32
        self._first: Optional[Dict[int, int]] = None   # name_off -> first / last index
        self._last: Dict[int, int] = {}
        #: own types ordered by the hash of their names: (record indexes, hashes, the
        #: name_off of each record); for big BTF parsed with the on-disk cache
        #: (pybpf.btf.cache.Index)
        self._by_hash: _ByHash = None
        self._scans = 0                                 # lookups made before the index
        self._added_names: Dict[str, List[int]] = {}
        self._containing: Dict[str, List[str]] = {}   # names_containing's string part
        self._strtab: StringTable = StringTable(b"" if base is not None else b"\0",
                                                base._strtab if base is not None else None,
                                                section)

    # ------------------------------------------------------------------ parsing

    @classmethod
    def parse(cls, data: _U[Blob, bytearray, memoryview], base: Optional["BTF"] = None,
              section: str = ".BTF", validate: bool = False,
              cache_key: Optional[bytes] = None) -> "BTF":
        """Parse a .BTF blob (a split one on top of ``base``).

        The header, section layout, every record's kind and extent, and every
        type's name offset are checked here; the rest of each record when it
        is first decoded, or here too with ``validate=True``.  ``cache_key``: take
        the record index from the on-disk cache (:mod:`pybpf.btf.cache`) under
        this key, or store it there, for big blobs such as the kernel's.
        """
        if not isinstance(data, (bytes, mmap.mmap)):   # a mapping is read in place
            data = bytes(data)
        hdr = parse_header(data, section, split=base is not None)
        tstart, sstart = hdr.hdr_len + hdr.type_off, hdr.hdr_len + hdr.str_off
        w = words(memoryview(data)[tstart:tstart + hdr.type_len])
        btf = cls(base, section)
        btf._strtab = StringTable(data, btf._strtab.base, section, sstart, hdr.str_len)
        offsets, names, btf._by_hash = _record_index(data, w, btf, tstart, cache_key)
        btf._offsets = offsets
        btf._count = len(offsets)
        btf._reader = TypeReader(w, btf._strtab, section, tstart, btf.start_id + len(offsets))
        btf._name_offs = names.tobytes()
        if validate:
            btf.validate()
        return btf

    def validate(self) -> None:
        """Decode every record now, raising ObjectError for the first bad one."""
        for type_id in range(self.start_id, len(self)):
            self[type_id]

    # ------------------------------------------------------------------ access

    def __len__(self) -> int:
        return self.start_id + self._count

    def __getitem__(self, type_id: int) -> T.Type:
        try:
            index = type_id - self.start_id
            t = self._types.get(index)
        except TypeError:
            raise KeyError(f"no BTF type id {type_id!r} (there are {len(self)})") from None
        if t is not None:
            return t
        if 0 <= index < len(self._offsets) and isinstance(index, int):
            # a record not decoded yet: the blob was parsed, so there is a reader
            t = self._types[index] = cast(TypeReader, self._reader).read(self._offsets[index])
            return t
        if index < 0:
            if type_id == 0:
                return VOID
            if type_id > 0 and self.base is not None:
                return self.base[type_id]
        raise KeyError(f"no BTF type id {type_id!r} (there are {len(self)})")

    def __setitem__(self, type_id: int, t: T.Type) -> None:
        """Replace one of this BTF's own types (sanitizing changes a type's kind).

        ``find`` knows the new name; a parsed type keeps answering to its old
        name too, so replace parsed types only in a ``copy()``."""
        index = type_id - self.start_id if isinstance(type_id, int) else -1
        if not 0 <= index < self._count or not isinstance(t, T.Type) \
                or isinstance(t, T.Void):
            raise KeyError(f"cannot set BTF type id {type_id!r} to {t!r}")
        old = self._types.get(index)
        if old is not None and type_id in self._added_names.get(old.name, ()):
            self._added_names[old.name].remove(type_id)
        self._types[index] = t
        self._added_names.setdefault(t.name, []).append(type_id)

    def __iter__(self) -> Iterator[T.Type]:
        """Every type of this BTF (not its base), in id order from ``start_id``."""
        return (self[type_id] for type_id in range(self.start_id, len(self)))

    def kind_of(self, type_id: int) -> int:
        """The BTF_KIND_* of a type, without decoding it."""
        index = type_id - self.start_id
        if 0 <= index < len(self._offsets) and index not in self._types:
            info = cast(TypeReader, self._reader).w[self._offsets[index] + 1]
            return (info >> BTF_INFO_KIND_SHIFT) & BTF_INFO_KIND_MASK
        return self[type_id].kind

    def add(self, t: T.Type) -> int:
        """Append a type; returns its new id."""
        if not isinstance(t, T.Type) or isinstance(t, T.Void):
            raise TypeError(f"cannot add {t!r} to BTF")
        self._types[self._count] = t
        self._count += 1
        type_id = len(self) - 1
        self._added_names.setdefault(t.name, []).append(type_id)
        return type_id

    def copy(self) -> "BTF":
        """A deep copy of this BTF's own types (same ids, same base)."""
        new = BTF(self.base, self.section)
        for t in self:
            new.add(_copy_type(t))
        return new

    def encode(self, layout: bool = False) -> bytes:
        """The .BTF blob (of a split BTF: only its own types and strings); ``layout``
        adds the kind layout section of kernel 7.1's header."""
        return self.encode_with_strings((), layout)[0]

    def encode_with_strings(self, strings: Iterable[str], layout: bool = False
                            ) -> Tuple[bytes, Dict[str, int]]:
        """Like ``encode``, with ``strings`` also in the string section; returns their
        offsets too (line_info names its file and source line by string offset)."""
        return encode_btf(list(self), self.start_id, self._strtab.start, self.section,
                          strings, layout)

    # ------------------------------------------------------------------ lookup

    def find(self, name: str, kind: Optional[int] = None) -> List[int]:
        """Ids of every type named ``name`` (of BTF_KIND ``kind`` if given), base first.

        Names are those as parsed or added; renaming a type object in place
        does not move it in this index.
        """
        ids = self.base.find(name, kind) if self.base is not None else []
        own: List[int] = []
        if self._by_hash is not None:
            own = self._ids_by_hash(name)
        elif self._name_offs:
            offsets = self._strtab.offsets_of(name)
            for name_off in offsets:
                own.extend(self._ids_with_name_off(name_off))
            if len(offsets) > 1:       # the same string stored twice: merge in id order
                own.sort()
        added = self._added_names.get(name)
        if added:
            own = sorted(set(own).union(added)) if own else sorted(added)
        if kind is not None:
            own = [type_id for type_id in own if self.kind_of(type_id) == kind]
        return ids + own

    def _ids_by_hash(self, name: str) -> List[int]:
        """Own parsed types named ``name``: a binary search by the name's hash, each
        candidate's name then compared (ids ascend: the order is stable)."""
        from .cache import name_hash
        order, hashes, names = cast(_Hashed, self._by_hash)
        raw = name.encode("utf-8", "surrogateescape")
        h = name_hash(raw)
        lo = bisect_left(hashes, h)
        hi = bisect_right(hashes, h, lo)
        strings, start = self._strtab, self.start_id
        return [start + index for index in order[lo:hi] if strings.raw(names[index]) == raw]

    def _ids_with_name_off(self, name_off: int) -> List[int]:
        if self._first is None:
            # A load looks up a handful of names: searching the packed name offsets
            # at C speed (well under 1 ms on vmlinux) beats building the index
            # (~20 ms) until there have been a dozen lookups.
            self._scans += 1
            if self._scans <= _SCANS_BEFORE_INDEX:
                return self._scan_ids(name_off)
            names, start = array("I", self._name_offs), self.start_id
            self._last = dict(zip(names, range(start, start + len(names))))
            names.reverse()
            self._first = dict(zip(names, range(start + len(names) - 1, start - 1, -1)))
        first = self._first.get(name_off)
        if first is None:
            return []
        ids, last, start = [first], self._last[name_off], self.start_id
        while ids[-1] != last:     # duplicates: C-speed searches between first and last
            ids.append(self._next_with_name_off(name_off, ids[-1] - start + 1) + start)
        return ids

    def _scan_ids(self, name_off: int) -> List[int]:
        ids: List[int] = []
        index = self._next_with_name_off(name_off, 0)
        while index >= 0:
            ids.append(self.start_id + index)
            index = self._next_with_name_off(name_off, index + 1)
        return ids

    def _next_with_name_off(self, name_off: int, index: int) -> int:
        """The first own type index >= ``index`` named by ``name_off``; -1 if none."""
        needle, names = _U32.pack(name_off), self._name_offs
        pos = names.find(needle, 4 * index)
        while pos > 0 and pos % 4:      # straddles two entries: not a match
            pos = names.find(needle, pos + 1)
        return pos // 4 if pos >= 0 else -1

    def names_containing(self, fragment: str) -> List[str]:
        """Distinct names containing ``fragment`` in this BTF (not its base): every
        string of its string section (type and member names alike) and the names
        of added types.  For lookups by pattern, such as CO-RE's "task_struct___v2"
        flavors; confirm each with ``find``."""
        if not fragment:
            return []
        strings = self._containing.get(fragment)
        if strings is None:
            strings = self._containing[fragment] = self._strtab.containing(fragment)
        names = strings + [name for name in self._added_names if fragment in name]
        return list(dict.fromkeys(names))

    def find_one(self, name: str, kind: Optional[int] = None) -> int:
        """The id of the one type named ``name``; KeyError if none, ObjectError if several."""
        ids = self.find(name, kind)
        what = name if kind is None else f"{name} (kind {kind})"
        if not ids:
            raise KeyError(f"no BTF type {what}")
        if len(ids) > 1:
            raise ObjectError(f"{len(ids)} BTF types named {what}: ids {ids[:8]}",
                              self.section)
        return ids[0]

    # ------------------------------------------------------------------ type algebra

    def resolve(self, type_id: int) -> int:
        """Skip typedef/const/volatile/restrict/type_tag."""
        for _ in range(_MAX_CHAIN):
            if self.kind_of(type_id) not in T.QUALIFIER_KINDS:
                return type_id
            type_id = cast(T._Ref, self[type_id]).type
        raise ObjectError(f"BTF type {type_id}: qualifier chain too long (a loop?)",
                          self.section)

    def size_of(self, type_id: int) -> int:
        """Byte size of a type, through typedefs/qualifiers/vars and arrays."""
        scale, tid = 1, type_id
        for _ in range(_MAX_CHAIN):
            t = self[tid]
            if isinstance(t, (T.Int, T.Struct, T.Enum, T.Float, T.Datasec)):
                return self._fits(type_id, scale * t.size)
            if isinstance(t, T.Pointer):
                return self._fits(type_id, scale * POINTER_SIZE)
            if isinstance(t, T.Array):
                scale *= t.nelems
                if scale > U32_MAX:      # zero-size elements: checked when one is reached
                    scale = U32_MAX + 1
                tid = t.type
            elif t.kind in T.QUALIFIER_KINDS or isinstance(t, T.Var):
                tid = cast("T._Ref | T.Var", t).type
            else:
                raise ObjectError(f"BTF type {type_id} ({self.type_name(type_id)}) has no size",
                                  self.section)
        raise ObjectError(f"BTF type {type_id}: type chain too long (a loop?)", self.section)

    def _fits(self, type_id: int, size: int) -> int:
        """A size as the kernel computes it: one that overflows u32 is malformed."""
        if size > U32_MAX:
            raise ObjectError(f"BTF type {type_id} ({self.type_name(type_id)}) is larger than"
                              f" {U32_MAX} bytes", self.section)
        return size

    def type_name(self, type_id: int) -> str:
        """C-like spelling for messages: "struct task_struct", "char[16]", "int *".

        Bounded (a loop or a prototype made of itself is cut with "...")."""
        return _spell(self, type_id, "", 0, [_SPELL_STEPS])


def _record_index(data: Blob, w: Sequence[int], btf: BTF, tstart: int,
                  cache_key: Optional[bytes]) -> Tuple["array[int]", "array[int]", "_ByHash"]:
    """The word offset and the name_off of every record of ``btf``'s blob ``data``
    (type section ``w`` at ``tstart``), checked, and with a ``cache_key`` the
    types ordered by the hash of their names (and the CO-RE flavor strings known):
    from the on-disk cache when the blob is big enough to gain from it (an index
    is stored only once checked, under the key of the very blob it was checked on)."""
    if cache_key is None or len(data) < MIN_CACHED_BLOB:
        return _checked_index(w, btf, tstart) + (None,)
    from . import cache
    index = cache.load(cache_key, len(w))
    if index is None:
        index = cache.index_of(*_checked_index(w, btf, tstart), btf._strtab)
        cache.store(cache_key, index)
    from .corematch import FLAVOR_SEP
    btf._containing[FLAVOR_SEP] = [btf._strtab.get(off) for off in index.flavored]
    return index.offsets, index.names, (index.by_hash, index.hashes, index.names)


def _checked_index(w: Sequence[int], btf: BTF, tstart: int) -> Tuple["array[int]", "array[int]"]:
    """``scan``'s record offsets and every record's name_off, each inside the strings."""
    offsets = scan(w, btf.section, tstart)
    names = _name_offsets(w, offsets)
    size = btf._strtab.size
    if names and max(names) >= size:
        bad = next(i for i, n in enumerate(names) if n >= size)
        raise ObjectError(f"name offset {names[bad]} of type {btf.start_id + bad}"
                          f" is past the string section ({size} bytes)",
                          btf.section, tstart + 4 * offsets[bad])
    return offsets, names


def _name_offsets(w: Sequence[int], offsets: Sequence[int]) -> "array[int]":
    """The name_off word of every record, gathered at C speed a slice at a time."""
    names = array("I")
    for i in range(0, len(offsets), _GATHER):
        chunk = offsets[i:i + _GATHER]
        got = itemgetter(*chunk)(w)
        names.extend((got,) if len(chunk) == 1 else got)
    return names


def _flat_copy(item: _Item) -> _Item:
    """A copy of a dataclass whose fields are ints and strs (or of a tuple)."""
    if isinstance(item, tuple):
        return item
    out = object.__new__(type(item))
    out.__dict__.update(item.__dict__)
    return out


def _copy_type(t: T.Type) -> T.Type:
    """A deep copy of one type: the type and each item of its lists (members, params,
    vars, enumerators) are flat, so this is linear and ~10x cheaper than deepcopy."""
    out = _flat_copy(t)
    for name, value in t.__dict__.items():
        if isinstance(value, list):
            setattr(out, name, [_flat_copy(item) for item in value])
    return out


_TAGGED = {T.Struct: "struct", T.Union: "union", T.Enum: "enum", T.Enum64: "enum"}
_QUALIFIER_WORDS = {T.Const: "const", T.Volatile: "volatile", T.Restrict: "restrict"}


def _spell(btf: BTF, type_id: int, decl: str, depth: int, steps: List[int]) -> str:
    """C declarator spelling: ``decl`` is what has been wrapped around this type so far;
    ``steps[0]`` is what is left of the visits all the branches of one spelling share."""
    steps[0] -= 1
    if depth > _MAX_CHAIN or steps[0] < 0:
        return "..." + decl
    t = btf[type_id]
    cls = type(t)
    if cls in _QUALIFIER_WORDS:
        word = _QUALIFIER_WORDS[cls]
        ref = cast(T._Ref, t).type
        if isinstance(btf[ref], T.Pointer):         # a const pointer: "char *const"
            return _spell(btf, ref, word + decl, depth + 1, steps)
        return f"{word} " + _spell(btf, ref, decl, depth + 1, steps)
    if isinstance(t, T.Pointer):
        pointee = btf[t.type]
        decl = decl.lstrip()
        decl = f"(*{decl})" if isinstance(pointee, (T.Array, T.FuncProto)) else f" *{decl}"
        return _spell(btf, t.type, decl, depth + 1, steps)
    if isinstance(t, T.Array):
        return _spell(btf, t.type, f"{decl}[{t.nelems}]", depth + 1, steps)
    if isinstance(t, T.FuncProto):
        params = []
        for p in t.params:
            if steps[0] <= 0:                   # the rest of a long list: one "..."
                params.append("...")
                break
            params.append("..." if p.type == 0 and not p.name else
                          _spell(btf, p.type, "", depth + 1, steps))
        return _spell(btf, t.return_type, f"{decl}({', '.join(params) or 'void'})",
                      depth + 1, steps)
    if isinstance(t, T.TypeTag):
        return _spell(btf, t.type, decl, depth + 1, steps)
    if isinstance(t, T.Void):
        base = "void"
    elif cls in _TAGGED:
        base = f"{_TAGGED[cls]} {t.name or '(anon)'}"
    elif isinstance(t, T.Fwd):
        base = f"{'union' if t.is_union else 'struct'} {t.name}"
    else:                       # int, float, typedef, func, var, datasec, decl_tag
        base = t.name or f"(anon kind {t.kind})"
    return f"{base} {decl}" if decl.startswith("(") else base + decl
