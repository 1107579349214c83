"""CO-RE matching: accessor specs, candidate rules and relocated values.

The semantics are those of libbpf's ``relo_core.c`` (the kernel runs the same
code): a relocation's access string is parsed against the local BTF into a
*spec* (one accessor per named field or array index, plus the raw indices and
the bit offset they add up to); each target candidate is then matched
accessor by accessor, by field *name*, descending into anonymous members.
From a local and a target spec we compute the value the compiler put in the
instruction and the value the target needs.  No I/O here, no instructions:
``core.py`` drives this and patches the code.
"""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Dict, List, NamedTuple, Optional, Tuple, cast

from ..uapi import (BTF_INT_SIGNED, BTF_KIND_ARRAY, BTF_KIND_ENUM, BTF_KIND_ENUM64,
                    BTF_KIND_FLOAT, BTF_KIND_FUNC_PROTO, BTF_KIND_FWD, BTF_KIND_INT,
                    BTF_KIND_PTR, BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_UNKN,
                    bpf_core_relo_kind as K)
from ..record import Record
from . import types as T

if TYPE_CHECKING:
    from .spec import BTF

FIELD_KINDS = frozenset({K.BPF_CORE_FIELD_BYTE_OFFSET, K.BPF_CORE_FIELD_BYTE_SIZE,
                         K.BPF_CORE_FIELD_EXISTS, K.BPF_CORE_FIELD_SIGNED,
                         K.BPF_CORE_FIELD_LSHIFT_U64, K.BPF_CORE_FIELD_RSHIFT_U64})
TYPE_KINDS = frozenset({K.BPF_CORE_TYPE_ID_LOCAL, K.BPF_CORE_TYPE_ID_TARGET,
                        K.BPF_CORE_TYPE_EXISTS, K.BPF_CORE_TYPE_MATCHES,
                        K.BPF_CORE_TYPE_SIZE})
ENUMVAL_KINDS = frozenset({K.BPF_CORE_ENUMVAL_EXISTS, K.BPF_CORE_ENUMVAL_VALUE})

#: libbpf's short names, used in messages.
KIND_NAMES: Dict[int, str] = {
    K.BPF_CORE_FIELD_BYTE_OFFSET: "byte_off", K.BPF_CORE_FIELD_BYTE_SIZE: "byte_sz",
    K.BPF_CORE_FIELD_EXISTS: "field_exists", K.BPF_CORE_FIELD_SIGNED: "signed",
    K.BPF_CORE_FIELD_LSHIFT_U64: "lshift_u64", K.BPF_CORE_FIELD_RSHIFT_U64: "rshift_u64",
    K.BPF_CORE_TYPE_ID_LOCAL: "local_type_id", K.BPF_CORE_TYPE_ID_TARGET: "target_type_id",
    K.BPF_CORE_TYPE_EXISTS: "type_exists", K.BPF_CORE_TYPE_MATCHES: "type_matches",
    K.BPF_CORE_TYPE_SIZE: "type_size", K.BPF_CORE_ENUMVAL_EXISTS: "enumval_exists",
    K.BPF_CORE_ENUMVAL_VALUE: "enumval_value",
}

MAX_SPEC_LEN = 64      # libbpf's BPF_CORE_SPEC_MAX_LEN
MAX_DEPTH = 32         # recursion bound of the compatibility checks
_MAX_INDEX = 0x7FFFFFFF                  # an access index is a C int (libbpf: sscanf %d)
_MAX_INDEX_DIGITS = len(str(_MAX_INDEX))
#: named members one struct may expose through its anonymous members, all levels together
_MAX_MEMBER_HITS = 1 << 17

_COMPOSITE = (BTF_KIND_STRUCT, BTF_KIND_UNION)
_ANY_ENUM = (BTF_KIND_ENUM, BTF_KIND_ENUM64)
_KEYWORDS: Dict[int, str] = {
    BTF_KIND_STRUCT: "struct ", BTF_KIND_UNION: "union ", BTF_KIND_ENUM: "enum ",
    BTF_KIND_ENUM64: "enum ", BTF_KIND_FWD: "struct "}


class CoreError(ValueError):
    """A malformed or unsatisfiable relocation; core.py names the relocation."""


class Poison(Exception):
    """No target value exists: the instruction gets poisoned."""


def shorten(text: str, limit: int = 80) -> str:
    """``text`` for a message: cut after ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


#: what separates a CO-RE flavor from the essential name: ``task_struct___v2``
FLAVOR_SEP = "___"


def essential_name(name: str) -> str:
    """The name without its flavor: ``foo___v2`` -> ``foo``.

    The flavor starts at the last ``X___Y`` where neither X nor Y is an
    underscore, so ``__u32`` or ``a____b`` keep their name."""
    if FLAVOR_SEP not in name:
        return name
    for i in range(len(name) - 5, -1, -1):
        if (name[i] != "_" and name[i + 1] == "_" and name[i + 2] == "_"
                and name[i + 3] == "_" and name[i + 4] != "_"):
            return name[:i + 1]
    return name


def kind_family(kind: int) -> int:
    """Kinds CO-RE treats as one: enum and enum64."""
    return BTF_KIND_ENUM if kind == BTF_KIND_ENUM64 else kind


def c_name(btf: "BTF", type_id: int) -> str:
    """``struct foo``, ``enum bar``, ``u32``, ``struct <anon>``."""
    t = btf[type_id]
    if t.kind == BTF_KIND_FWD and cast(T.Fwd, t).is_union:
        return "union " + (t.name or "<anon>")
    return _KEYWORDS.get(t.kind, "") + (t.name or "<anon>")


# ------------------------------------------------------------------ specs

class Accessor(Record):
    """One step of a CO-RE access string: a member, an enumerator or an array index."""

    _fields = ("type_id", "idx", "name")
    __slots__ = _fields
    type_id: int            # struct/union holding a named field, enum, or array element type
    idx: int                # member, enumerator or array index
    name: Optional[str]     # field or enumerator name; None for an array index

    def __init__(self, type_id: int, idx: int, name: Optional[str]) -> None:
        self.type_id = type_id
        self.idx = idx
        self.name = name


class Spec(Record):
    """A CO-RE relocation's access, resolved in one BTF: its root type, its accessors,
    the raw access string and the bit offset it reaches."""

    _fields = ("btf", "root_id", "kind", "accessors", "raw", "bit_offset")
    __slots__ = _fields
    btf: "BTF"
    root_id: int
    kind: int
    accessors: List[Accessor]
    raw: List[int]
    bit_offset: int

    def __init__(self, btf: "BTF", root_id: int, kind: int,
                 accessors: Optional[List[Accessor]] = None,
                 raw: Optional[List[int]] = None, bit_offset: int = 0) -> None:
        self.btf = btf
        self.root_id = root_id
        self.kind = kind
        self.accessors = [] if accessors is None else accessors
        self.raw = [] if raw is None else raw
        self.bit_offset = bit_offset


def _resolved(btf: "BTF", type_id: int) -> Tuple[int, T.Type]:
    rid = btf.resolve(type_id)
    return rid, btf[rid]


def _is_flex(btf: "BTF", parent: Accessor, arr: T.Array) -> bool:
    """A zero-length array that is the last member of its struct."""
    if parent.name is None or arr.nelems > 0:
        return False
    holder = btf[parent.type_id]
    return isinstance(holder, T.Struct) and parent.idx == len(holder.members) - 1


def parse_spec(btf: "BTF", root_id: int, access: str, kind: int) -> Spec:
    """The local spec of a relocation (libbpf's bpf_core_parse_spec)."""
    spec = Spec(btf, root_id, kind)
    if not access or access[0] == ":":
        raise CoreError(f"bad access string {access!r}")
    if kind in TYPE_KINDS:
        if access != "0":
            raise CoreError(f"type relocation with access string {access!r} (expected '0')")
        return spec
    parts = access.split(":")
    if not all(p.isdigit() and p.isascii() for p in parts):
        raise CoreError(f"bad access string {shorten(access)!r}")
    if len(parts) > MAX_SPEC_LEN:
        raise CoreError(f"access string {shorten(access)!r} nests deeper than {MAX_SPEC_LEN}")
    if any(len(p) > _MAX_INDEX_DIGITS or int(p) > _MAX_INDEX for p in parts):
        raise CoreError(f"access string {shorten(access)!r} has an index past {_MAX_INDEX}")
    spec.raw = raw = [int(p) for p in parts]
    tid, t = _resolved(btf, root_id)
    first = raw[0]
    if kind in ENUMVAL_KINDS:
        if not isinstance(t, T.Enum) or len(raw) > 1 or first >= len(t.values):
            raise CoreError(f"enum value access {access!r} does not name an enumerator "
                            f"of {c_name(btf, tid)}")
        spec.accessors.append(Accessor(tid, first, t.values[first][0]))
        return spec
    if kind not in FIELD_KINDS:
        raise CoreError(f"unknown relocation kind {kind}")
    spec.accessors.append(Accessor(tid, first, None))
    spec.bit_offset = first * btf.size_of(tid) * 8
    for pos, idx in enumerate(raw[1:], 1):
        tid, t = _resolved(btf, tid)
        if isinstance(t, T.Struct):
            if idx >= len(t.members):
                raise CoreError(f"access {access!r}: {c_name(btf, tid)} has no member #{idx}")
            m = t.members[idx]
            spec.bit_offset += m.bit_offset
            if m.name:
                spec.accessors.append(Accessor(tid, idx, m.name))
            tid = m.type
        elif isinstance(t, T.Array):
            elem, _ = _resolved(btf, t.type)
            if not _is_flex(btf, spec.accessors[-1], t) and idx >= t.nelems:
                raise CoreError(f"access {access!r}: index {idx} out of bounds "
                                f"of array [{t.nelems}]")
            spec.accessors.append(Accessor(elem, idx, None))
            spec.bit_offset += idx * btf.size_of(elem) * 8
            tid = elem
        else:
            raise CoreError(f"access {access!r} (at #{pos}) goes through "
                            f"{c_name(btf, tid)}, neither a struct/union nor an array")
    return spec


def access_expr(spec: Spec) -> str:
    """The spec as a C expression: ``struct task_struct.comm[2]``."""
    btf = spec.btf
    out = [c_name(btf, spec.root_id)]
    if spec.kind in ENUMVAL_KINDS and spec.accessors:
        return f"{out[0]}::{spec.accessors[0].name}"
    for i, acc in enumerate(spec.accessors):
        if acc.name is not None:
            out.append("." + acc.name)
        elif i > 0 or acc.idx > 0:
            out.append(f"[{acc.idx}]")
    return "".join(out)


def format_spec(spec: Spec) -> str:
    """libbpf's notation: ``[7] struct task_struct.pid (0:64 @ offset 2344)``."""
    head = f"[{spec.root_id}] {access_expr(spec)}"
    if spec.kind in ENUMVAL_KINDS and spec.accessors:
        return f"{head} = {enum_value(spec)}"
    if spec.kind not in FIELD_KINDS:
        return head
    raw = ":".join(map(str, spec.raw))
    byte, bit = divmod(spec.bit_offset, 8)
    return f"{head} ({raw} @ offset {byte}{'.%d' % bit if bit else ''})"


# ------------------------------------------------------------------ compatibility rules

def _kind_compat(a: T.Type, b: T.Type) -> bool:
    return a.kind == b.kind or (a.kind in _ANY_ENUM and b.kind in _ANY_ENUM)


def _names_match(local: str, target: str) -> bool:
    """Equal up to flavors; an anonymous target only matches an anonymous local."""
    if not target:
        return not local
    return essential_name(local) == essential_name(target)


def types_are_compat(lbtf: "BTF", lid: int, tbtf: "BTF", tid: int, level: int = MAX_DEPTH,
                     memo: Optional[Dict[Tuple[int, int], bool]] = None) -> bool:
    """Type-based relocations (exists/size/id): the rules of bpf_core_types_are_compat.

    ``memo`` holds the answers for pairs already compared, so that prototypes
    sharing parameter types are compared once per pair, not once per path."""
    memo = {} if memo is None else memo
    known = memo.get((lid, tid))
    if known is None:
        known = memo[(lid, tid)] = _types_are_compat(lbtf, lid, tbtf, tid, level, memo)
    return known


def _types_are_compat(lbtf: "BTF", lid: int, tbtf: "BTF", tid: int, level: int,
                      memo: Dict[Tuple[int, int], bool]) -> bool:
    if not _kind_compat(lbtf[lid], tbtf[tid]):
        return False
    for _ in range(MAX_DEPTH):
        lid, lt = _resolved(lbtf, lid)
        tid, tt = _resolved(tbtf, tid)
        if not _kind_compat(lt, tt):
            return False
        k = lt.kind
        if k in (BTF_KIND_UNKN, BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_FWD) or k in _ANY_ENUM:
            return True
        if k == BTF_KIND_INT:
            return cast(T.Int, lt).offset == 0 and cast(T.Int, tt).offset == 0
        if k in (BTF_KIND_PTR, BTF_KIND_ARRAY):
            lid, tid = cast("T.Pointer | T.Array", lt).type, cast("T.Pointer | T.Array", tt).type
            continue
        if k == BTF_KIND_FUNC_PROTO:
            lf, tf = cast(T.FuncProto, lt), cast(T.FuncProto, tt)
            if len(lf.params) != len(tf.params):
                return False
            if lf.params and level <= 0:
                raise CoreError("function prototypes nest too deep")
            for lp, tp in zip(lf.params, tf.params):
                if not types_are_compat(lbtf, lbtf.resolve(lp.type), tbtf,
                                        tbtf.resolve(tp.type), level - 1, memo):
                    return False
            lid, tid = lf.return_type, tf.return_type
            continue
        return False
    raise CoreError("types nest too deep")


def fields_are_compat(lbtf: "BTF", lid: int, tbtf: "BTF", tid: int) -> bool:
    """Field relocations: the member types must be compatible (bpf_core_fields_are_compat)."""
    for _ in range(MAX_DEPTH):
        lid, lt = _resolved(lbtf, lid)
        tid, tt = _resolved(tbtf, tid)
        if lt.kind in _COMPOSITE and tt.kind in _COMPOSITE:
            return True
        if not _kind_compat(lt, tt):
            return False
        k = lt.kind
        if k in (BTF_KIND_PTR, BTF_KIND_FLOAT):
            return True
        if k == BTF_KIND_FWD or k in _ANY_ENUM:
            return not lt.name or not tt.name or essential_name(lt.name) == essential_name(tt.name)
        if k == BTF_KIND_INT:
            return cast(T.Int, lt).offset == 0 and cast(T.Int, tt).offset == 0
        if k == BTF_KIND_ARRAY:
            lid, tid = cast(T.Array, lt).type, cast(T.Array, tt).type
            continue
        return False
    raise CoreError("array types nest too deep")


def types_match(lbtf: "BTF", lid: int, tbtf: "BTF", tid: int, behind_ptr: bool = False,
                level: int = MAX_DEPTH,
                memo: Optional[Dict[Tuple[int, int, bool], bool]] = None) -> bool:
    """TYPE_MATCHES: the stricter rules of libbpf's __bpf_core_types_match.

    Same kinds (a struct/union behind a pointer may match a fwd of the same
    flavor, enum may match enum64), ints of the same size and signedness,
    arrays of the same length, enums whose local enumerators all exist by
    name in a target of the same size, structs whose local members all exist
    by name with matching types, prototypes with matching arguments.  ``memo``:
    the answers for (local, target, behind_ptr) already compared."""
    memo = {} if memo is None else memo
    key = (lid, tid, behind_ptr)
    known = memo.get(key)
    if known is None:
        known = memo[key] = _types_match(lbtf, lid, tbtf, tid, behind_ptr, level, memo)
    return known


def _types_match(lbtf: "BTF", lid: int, tbtf: "BTF", tid: int, behind_ptr: bool,
                 level: int, memo: Dict[Tuple[int, int, bool], bool]) -> bool:
    if level <= 0:
        raise CoreError("types nest too deep for a match")
    for _ in range(MAX_DEPTH):
        lid, lt = _resolved(lbtf, lid)
        tid, tt = _resolved(tbtf, tid)
        if not _names_match(lt.name, tt.name):
            return False
        lk, tk = lt.kind, tt.kind
        if lk == BTF_KIND_UNKN:
            return tk == BTF_KIND_UNKN
        if lk == BTF_KIND_FWD:
            if behind_ptr and tk in _COMPOSITE:
                return (tk == BTF_KIND_UNION) == cast(T.Fwd, lt).is_union
            return tk == BTF_KIND_FWD and cast(T.Fwd, lt).is_union == cast(T.Fwd, tt).is_union
        if lk in _ANY_ENUM:
            return tk in _ANY_ENUM and _enums_match(cast(T.Enum, lt), cast(T.Enum, tt))
        if lk in _COMPOSITE:
            if behind_ptr:
                if lk == tk:
                    return True
                return tk == BTF_KIND_FWD and (lk == BTF_KIND_UNION) == cast(T.Fwd, tt).is_union
            return lk == tk and _composites_match(lbtf, cast(T.Struct, lt), tbtf,
                                                  cast(T.Struct, tt), behind_ptr, level, memo)
        if lk != tk:
            return False
        if lk == BTF_KIND_INT:
            li, ti = cast(T.Int, lt), cast(T.Int, tt)
            return li.size == ti.size and li.signed == ti.signed
        if lk == BTF_KIND_PTR:
            behind_ptr = True
            lid, tid = cast(T.Pointer, lt).type, cast(T.Pointer, tt).type
            continue
        if lk == BTF_KIND_ARRAY:
            la, ta = cast(T.Array, lt), cast(T.Array, tt)
            if la.nelems != ta.nelems:
                return False
            lid, tid = la.type, ta.type
            continue
        if lk == BTF_KIND_FUNC_PROTO:
            lf, tf = cast(T.FuncProto, lt), cast(T.FuncProto, tt)
            if len(lf.params) != len(tf.params):
                return False
            for lp, tp in zip(lf.params, tf.params):
                if not types_match(lbtf, lp.type, tbtf, tp.type, behind_ptr, level - 1, memo):
                    return False
            lid, tid = lf.return_type, tf.return_type
            continue
        return False
    raise CoreError("types nest too deep for a match")


def _enums_match(lt: T.Enum, tt: T.Enum) -> bool:
    if lt.size != tt.size or len(lt.values) > len(tt.values):
        return False
    targets = {essential_name(n) for n, _ in tt.values}
    return all(essential_name(n) in targets for n, _ in lt.values)


def _composites_match(lbtf: "BTF", lt: T.Struct, tbtf: "BTF", tt: T.Struct, behind_ptr: bool,
                      level: int, memo: Dict[Tuple[int, int, bool], bool]) -> bool:
    if len(lt.members) > len(tt.members):
        return False
    by_name: Dict[str, List[T.Member]] = {}
    for tm in tt.members:
        by_name.setdefault(essential_name(tm.name), []).append(tm)
    for lm in lt.members:
        if not any(types_match(lbtf, lm.type, tbtf, tm.type, behind_ptr, level - 1, memo)
                   for tm in by_name.get(essential_name(lm.name), ())):
            return False
    return True


# ------------------------------------------------------------------ matching a target

class _MemberHit(NamedTuple):
    path: Tuple[int, ...]   # raw indices from the struct down to the member
    bit_offset: int         # from the start of the searched struct
    owner: int              # struct/union holding the member
    idx: int                # index in owner
    type: int               # the member's type


# target BTF -> struct id -> field name -> hits in depth-first order.  A BTF
# never changes once parsed, so this lives as long as the BTF does.
_MEMBER_INDEX: "weakref.WeakKeyDictionary[BTF, Dict[int, Dict[str, List[_MemberHit]]]]" = \
    weakref.WeakKeyDictionary()


def _member_index(btf: "BTF", struct_id: int) -> Dict[str, List[_MemberHit]]:
    per_btf = _MEMBER_INDEX.get(btf)
    if per_btf is None:
        per_btf = _MEMBER_INDEX[btf] = {}
    index = per_btf.get(struct_id)
    if index is None:
        index = {}
        _index_members(btf, struct_id, (), 0, index, 0, [_MAX_MEMBER_HITS])
        per_btf[struct_id] = index
    return index


def _index_members(btf: "BTF", sid: int, path: Tuple[int, ...], base: int,
                   out: Dict[str, List[_MemberHit]], depth: int, left: List[int]) -> None:
    """Named members of sid, descending into anonymous struct/union members;
    ``left[0]``: the members all levels together may still visit."""
    for i, m in enumerate(cast(T.Struct, btf[sid]).members):
        left[0] -= 1
        if left[0] < 0:
            raise CoreError(f"{c_name(btf, sid)} exposes more than {_MAX_MEMBER_HITS} members"
                            " through its anonymous members")
        if m.name:
            out.setdefault(m.name, []).append(
                _MemberHit(path + (i,), base + m.bit_offset, sid, i, m.type))
        elif depth < MAX_DEPTH:
            sub, st = _resolved(btf, m.type)
            if st.kind in _COMPOSITE:
                _index_members(btf, sub, path + (i,), base + m.bit_offset, out, depth + 1,
                               left)


def _match_member(local: Spec, acc: Accessor, tbtf: "BTF", tid: int, targ: Spec
                  ) -> Tuple[Optional[int], str]:
    """Append the target accessor for a named local field: (the field's type id, "")
    or (None, why not)."""
    member = cast(T.Struct, local.btf[acc.type_id]).members[acc.idx]
    if tbtf[tid].kind not in _COMPOSITE:
        return None, f"{tbtf.type_name(tid)} has no fields (looking for {member.name!r})"
    hits = _member_index(tbtf, tid).get(member.name, ())
    for hit in hits:
        if len(targ.raw) + len(hit.path) > MAX_SPEC_LEN:
            raise CoreError(f"target access to {member.name!r} nests deeper than {MAX_SPEC_LEN}")
        if fields_are_compat(local.btf, member.type, tbtf, hit.type):
            targ.raw.extend(hit.path)
            targ.bit_offset += hit.bit_offset
            targ.accessors.append(Accessor(hit.owner, hit.idx, member.name))
            return hit.type, ""
    if hits:
        return None, (f"field {member.name!r} of {tbtf.type_name(tid)} is "
                      f"{tbtf.type_name(hits[0].type)}, incompatible with the local "
                      f"{local.btf.type_name(member.type)}")
    return None, f"{tbtf.type_name(tid)} has no field {member.name!r}"


def match(local: Spec, tbtf: "BTF", tid: int) -> Tuple[Optional[Spec], str]:
    """(the target spec of candidate tid, "") or (None, why it does not match)."""
    kind = local.kind
    targ = Spec(tbtf, tid, kind)
    if kind in TYPE_KINDS:
        if kind == K.BPF_CORE_TYPE_MATCHES:
            if types_match(local.btf, local.root_id, tbtf, tid):
                return targ, ""
            return None, f"{tbtf.type_name(tid)} does not match the local type"
        if types_are_compat(local.btf, local.root_id, tbtf, tid):
            return targ, ""
        return None, f"{tbtf.type_name(tid)} is incompatible with the local type"
    if kind in ENUMVAL_KINDS:
        rid, t = _resolved(tbtf, tid)
        if t.kind not in _ANY_ENUM:
            return None, f"{tbtf.type_name(tid)} is not an enum"
        want = essential_name(cast(str, local.accessors[0].name))  # enumval accessors are named
        for i, (name, _) in enumerate(cast(T.Enum, t).values):
            if essential_name(name) == want:
                targ.accessors.append(Accessor(rid, i, name))
                targ.raw.append(i)
                return targ, ""
        return None, f"{tbtf.type_name(rid)} has no enumerator {want!r}"
    for pos, acc in enumerate(local.accessors):
        tid, t = _resolved(tbtf, tid)
        if acc.name is not None:
            found, why = _match_member(local, acc, tbtf, tid, targ)
            if found is None:
                return None, why
            tid = found
            continue
        if pos > 0:
            if t.kind != BTF_KIND_ARRAY:
                return None, f"{targ.accessors[-1].name or 'the element'} is " \
                             f"{tbtf.type_name(tid)}, not an array"
            arr = cast(T.Array, t)
            if not _is_flex(tbtf, targ.accessors[-1], arr) and acc.idx >= arr.nelems:
                return None, f"index {acc.idx} is out of bounds of {tbtf.type_name(tid)}"
            tid = tbtf.resolve(arr.type)
        if len(targ.raw) >= MAX_SPEC_LEN:
            raise CoreError(f"target access nests deeper than {MAX_SPEC_LEN}")
        targ.accessors.append(Accessor(tid, acc.idx, None))
        targ.raw.append(acc.idx)
        targ.bit_offset += acc.idx * tbtf.size_of(tid) * 8
    return targ, ""


# ------------------------------------------------------------------ values

class Value(Record):
    """What one spec says the instruction should hold."""
    _fields = ("value", "mem_size", "mem_type", "validate")
    __slots__ = _fields
    value: int
    mem_size: int           # size of a non-bitfield field loaded/stored directly (0: n/a)
    mem_type: int           # its resolved type, to decide whether resizing the access is safe
    validate: bool          # whether the compiler's value must equal the local value

    def __init__(self, value: int, mem_size: int = 0, mem_type: int = 0,
                 validate: bool = True) -> None:
        self.value = value
        self.mem_size = mem_size
        self.mem_type = mem_type
        self.validate = validate


def enum_value(spec: Spec) -> int:
    """The enumerator's value, as the 64-bit pattern the instruction holds.

    As libbpf (``btf_enum.val`` is an ``__s32`` widened to ``__u64``): a
    32-bit enum value is always sign-extended, whether or not the BTF marks
    the enum signed (BTF older than kernel 6.0 has no signedness flag, and
    there ``(u64)-4095`` reads 0xfffff001).  An ENUM64 value is its 64 bits.
    clang < 15 writes 64-bit enums as BTF_KIND_ENUM with values truncated to
    32 bits; core.py compares only the low 32 bits of such local values."""
    acc = spec.accessors[0]
    t = spec.btf[acc.type_id]
    bits = 64 if t.kind == BTF_KIND_ENUM64 else 32
    v: int = cast(T.Enum, t).values[acc.idx][1] & ((1 << bits) - 1)
    if bits == 32 and v >> 31:
        v -= 1 << 32
    return v & (2 ** 64 - 1)


def field_value(spec: Optional[Spec], kind: int) -> Value:
    """libbpf's bpf_core_calc_field_relo; raises Poison when the field is missing."""
    if kind == K.BPF_CORE_FIELD_EXISTS:
        return Value(1 if spec else 0)
    if spec is None:
        raise Poison("field not found")
    btf = spec.btf
    acc = spec.accessors[-1]
    if acc.name is None:        # the access ends with an array index (or is the root)
        size = btf.size_of(acc.type_id)
        if kind == K.BPF_CORE_FIELD_BYTE_OFFSET:
            return Value(spec.bit_offset // 8, size, acc.type_id)
        if kind == K.BPF_CORE_FIELD_BYTE_SIZE:
            return Value(size)
        raise CoreError(f"relocation {KIND_NAMES[kind]} can't be applied to an array element")
    member = cast(T.Struct, btf[acc.type_id]).members[acc.idx]
    ftype, mt = _resolved(btf, member.type)
    bit_off, bit_sz = spec.bit_offset, member.bitfield_size
    bitfield = bit_sz > 0
    if bitfield:
        # the smallest naturally aligned load (of at least the field's type) holding all bits
        byte_sz = getattr(mt, "size", 0)
        if byte_sz not in (1, 2, 4, 8):
            raise CoreError(f"bitfield {member.name!r} of {c_name(btf, ftype)}")
        byte_off = bit_off // 8 // byte_sz * byte_sz
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise CoreError("bitfield can't be read with a 64-bit load")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        byte_sz = btf.size_of(ftype)
        byte_off = bit_off // 8
        bit_sz = byte_sz * 8
    # bitfield offsets and sizes depend on the compiler's choice of load: don't validate them
    if kind == K.BPF_CORE_FIELD_BYTE_OFFSET:
        if bitfield:
            return Value(byte_off, validate=False)
        return Value(byte_off, byte_sz, ftype)
    if kind == K.BPF_CORE_FIELD_BYTE_SIZE:
        return Value(byte_sz, validate=not bitfield)
    if kind == K.BPF_CORE_FIELD_SIGNED:
        signed = (mt.kind in _ANY_ENUM and cast(T.Enum, mt).signed) or (
            mt.kind == BTF_KIND_INT and bool(cast(T.Int, mt).encoding & BTF_INT_SIGNED))
        return Value(int(signed))
    if kind == K.BPF_CORE_FIELD_LSHIFT_U64:    # little endian: bits to the top of a u64
        return Value(64 - (bit_off + bit_sz - byte_off * 8), validate=not bitfield)
    if kind == K.BPF_CORE_FIELD_RSHIFT_U64:
        return Value(64 - bit_sz)
    raise CoreError(f"unknown field relocation kind {kind}")


def type_value(spec: Optional[Spec], kind: int) -> Value:
    """Type-based kinds; a missing type gives 0 (never poisons)."""
    if spec is None:
        return Value(0)
    if kind == K.BPF_CORE_TYPE_ID_TARGET:   # ids change when objects are linked
        return Value(spec.root_id, validate=False)
    if kind in (K.BPF_CORE_TYPE_EXISTS, K.BPF_CORE_TYPE_MATCHES):
        return Value(1)
    if kind == K.BPF_CORE_TYPE_SIZE:
        return Value(spec.btf.size_of(spec.root_id))
    raise CoreError(f"unexpected type relocation kind {kind}")


def enumval_value(spec: Optional[Spec], kind: int) -> Value:
    if kind == K.BPF_CORE_ENUMVAL_EXISTS:
        return Value(1 if spec else 0)
    if spec is None:
        raise Poison("enumerator not found")
    return Value(enum_value(spec))


def value_of(spec: Optional[Spec], kind: int) -> Value:
    if kind in FIELD_KINDS:
        return field_value(spec, kind)
    if kind in TYPE_KINDS:
        return type_value(spec, kind)
    return enumval_value(spec, kind)


def resize_is_safe(lbtf: "BTF", ltype: int, tbtf: "BTF", ttype: int) -> bool:
    """Whether a direct load/store may change width to the target field's size:
    only pointers (kernel pointers may be 32-bit) and unsigned integers, which
    zero-extend to the same value."""
    lt, tt = lbtf[ltype], tbtf[ttype]
    if lt.kind == BTF_KIND_PTR and tt.kind == BTF_KIND_PTR:
        return True
    return (lt.kind == BTF_KIND_INT and tt.kind == BTF_KIND_INT
            and not cast(T.Int, lt).signed and not cast(T.Int, tt).signed)
