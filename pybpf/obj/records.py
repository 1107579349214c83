"""Which BTF struct an event map's records are, as far as the object's BTF says.

clang puts a struct into the object's BTF only when something the BTF describes
names it: a map's key or value (``__type(value, struct event)``), a global
variable (by value, or through a pointer: the anchor idiom
``const struct event *unused __attribute__((unused));``), a function signature,
or a CO-RE access.  ``bpf_ringbuf_reserve()`` / ``bpf_perf_event_output()``
never name it, so without one of these the record type is absent: ``hint()``
says how to make it visible.
"""
from __future__ import annotations

from typing import List, Optional, Set, Tuple

from .. import uapi
from ..btf import BTF
from ..btf import types as T
from .spec import MapSpec, ObjectSpec

EVENT_MAP_TYPES = frozenset({uapi.BPF_MAP_TYPE_RINGBUF, uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY})

#: datasecs whose variables are map definitions or externs, not the object's globals
_NOT_GLOBALS = frozenset({".maps", ".ksyms", ".kconfig"})

def hint(struct_name: str = "") -> str:
    """How to put a record struct into the object's BTF (for messages)."""
    name = struct_name or "event"
    return (f"to make it visible in BTF, add to the BPF C: 'const struct {name} *unused "
            f"__attribute__((unused));'" + ("" if struct_name else
                                           " (with your record struct's name for event)"))


def _struct_of(btf: BTF, type_id: int, through_pointer: bool) -> Optional[int]:
    """The struct/union ``type_id`` is (or points to), through typedefs and qualifiers."""
    tid = btf.resolve(type_id)
    t = btf[tid]
    if through_pointer and isinstance(t, T.Pointer):
        tid = btf.resolve(t.type)
        t = btf[tid]
    return tid if isinstance(t, T.Struct) else None


def anchored_structs(spec: ObjectSpec) -> Tuple[List[int], List[int]]:
    """Named structs the object's global variables point to (the anchor idiom),
    and those they hold by value, each in id order."""
    btf = spec.btf
    pointed: Set[int] = set()
    held: Set[int] = set()
    if btf is None:
        return [], []
    for type_id in range(btf.start_id, len(btf)):
        t = btf[type_id]
        if isinstance(t, T.Datasec) and t.name not in _NOT_GLOBALS:
            for vsi in t.vars:
                var = btf[vsi.type]
                if not isinstance(var, T.Var):
                    continue
                sid = _struct_of(btf, var.type, through_pointer=False)
                if sid is not None:
                    held.add(sid)
                else:
                    sid = _struct_of(btf, var.type, through_pointer=True)
                    if sid is not None:
                        pointed.add(sid)
    return (sorted(i for i in pointed if btf[i].name),
            sorted(i for i in held if btf[i].name))


def record_type(spec: ObjectSpec, m: MapSpec) -> Optional[int]:
    """The BTF type id of ``m``'s records, when the object's BTF tells it.

    A struct value declared on the map itself wins; then the struct a global
    pointer anchors, else one a global holds, else one another map holds (a
    per-CPU scratch slot the event is built in); among several, the one whose
    name says "event"."""
    btf = spec.btf
    if btf is None or m.type not in EVENT_MAP_TYPES:
        return None
    if m.btf_value_type_id:
        sid = _struct_of(btf, m.btf_value_type_id, through_pointer=False)
        if sid is not None:
            return sid
    values: Set[int] = set()
    for other in spec.maps:
        if other.btf_value_type_id and not other.is_global_data:
            sid = _struct_of(btf, other.btf_value_type_id, through_pointer=False)
            if sid is not None and btf[sid].name:
                values.add(sid)
    for group in anchored_structs(spec) + (sorted(values),):
        if len(group) > 1:
            group = [i for i in group if "event" in btf[i].name.lower()]
        if len(group) == 1:
            return group[0]
    return None
