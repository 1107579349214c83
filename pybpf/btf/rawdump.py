"""BTF -> the text of ``bpftool btf dump ... format raw``: one line per type,
one indented line per member / parameter / enumerator / section variable.

Pure: no kernel calls.
"""
from __future__ import annotations

from typing import Iterator, List

from ..uapi import btf_kind, enum_name
from . import types as T
from .cdump import enum_literal
from .spec import BTF

_INT_ENCODINGS = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}
_LINKAGE = {0: "static", 1: "global", 2: "extern"}     # btf_func_linkage = btf_var_linkage


def kind_name(t: T.Type) -> str:
    """"STRUCT", "FUNC_PROTO"...: the BTF_KIND_* name without its prefix."""
    try:
        return enum_name(btf_kind, t.kind)[len("BTF_KIND_"):]
    except ValueError:
        return "UNKN"


def _q(name: str) -> str:
    return f"'{name or '(anon)'}'"


def type_lines(btf: BTF, type_id: int) -> List[str]:
    """The raw-format lines of one type."""
    t = btf[type_id]
    head = f"[{type_id}] {kind_name(t)} {_q(t.name)}"
    if isinstance(t, T.Int):
        return [f"{head} size={t.size} bits_offset={t.offset} nr_bits={t.bits} "
                f"encoding={_INT_ENCODINGS.get(t.encoding, 'UNKN')}"]
    if isinstance(t, T.Array):
        return [f"{head} type_id={t.type} index_type_id={t.index_type} nr_elems={t.nelems}"]
    if isinstance(t, T.Struct):
        lines = [f"{head} size={t.size} vlen={len(t.members)}"]
        for m in t.members:
            extra = f" bitfield_size={m.bitfield_size}" if m.bitfield_size else ""
            lines.append(f"\t{_q(m.name)} type_id={m.type} bits_offset={m.bit_offset}{extra}")
        return lines
    if isinstance(t, T.Enum):
        lines = [f"{head} encoding={'SIGNED' if t.signed else 'UNSIGNED'} size={t.size} "
                 f"vlen={len(t.values)}"]
        lines.extend(f"\t{_q(name)} val={enum_literal(t, value)}" for name, value in t.values)
        return lines
    if isinstance(t, T.Fwd):
        return [f"{head} fwd_kind={'union' if t.is_union else 'struct'}"]
    if isinstance(t, T.Func):
        return [f"{head} type_id={t.type} linkage={_LINKAGE.get(t.linkage, '(unknown)')}"]
    if isinstance(t, T.FuncProto):
        lines = [f"{head} ret_type_id={t.return_type} vlen={len(t.params)}"]
        lines.extend(f"\t{_q(p.name)} type_id={p.type}" for p in t.params)
        return lines
    if isinstance(t, T.Var):
        return [f"{head} type_id={t.type}, linkage={_LINKAGE.get(t.linkage, '(unknown)')}"]
    if isinstance(t, T.Datasec):
        lines = [f"{head} size={t.size} vlen={len(t.vars)}"]
        for v in t.vars:
            target = btf[v.type]
            lines.append(f"\ttype_id={v.type} offset={v.offset} size={v.size} "
                         f"({kind_name(target)} {_q(target.name)})")
        return lines
    if isinstance(t, T.Float):
        return [f"{head} size={t.size}"]
    if isinstance(t, T.DeclTag):
        return [f"{head} type_id={t.type} component_idx={t.component_idx}"]
    ref = t.type if isinstance(t, T._Ref) else 0     # ptr, typedef, qualifiers, type tag
    return [f"{head} type_id={ref}"]


def dump_raw(btf: BTF) -> Iterator[str]:
    """Every line of the raw dump of ``btf``'s own types (not its base's)."""
    for type_id in range(btf.start_id, len(btf)):
        yield from type_lines(btf, type_id)
