"""Making object BTF acceptable to older kernels, as libbpf does before BPF_BTF_LOAD.

``probe_features()`` asks the running kernel (one tiny BTF load per feature,
once per process); ``sanitize(btf, features)`` returns a copy in which every
kind the kernel lacks is replaced by one it knows, keeping every type id.  The
substitutions are libbpf's (bpf_object__sanitize_btf), so that programs, maps
and func_info keep pointing at the same ids:

=====================  ==================================================
missing feature        substitution
=====================  ==================================================
datasec                VAR -> INT (1 byte); DATASEC -> STRUCT, "." and "?"
                       in its name -> "_", one member per variable
qmark_datasec          a leading "?" of a DATASEC name -> "_"
decl_tag               DECL_TAG -> INT (1 byte)
func                   FUNC_PROTO -> ENUM (params as enumerators), FUNC -> TYPEDEF
func_global            global FUNC -> static FUNC
float                  FLOAT -> anonymous empty STRUCT of the same size
type_tag               TYPE_TAG -> anonymous CONST
enum64                 ENUM64 -> UNION of 1-byte placeholder ints; ENUM loses
                       its signedness flag
=====================  ==================================================

Beyond libbpf, a DECL_TAG whose target was rewritten (e.g. on a parameter of a
FUNC that became a TYPEDEF) becomes an INT too, so that any one missing
feature yields BTF the kernel accepts.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

from ..uapi import BTF_FUNC_GLOBAL, BTF_FUNC_STATIC, BTF_INT_SIGNED, BTF_VAR_STATIC
from ..record import FrozenRecord
from . import types as T
from .spec import BTF

ENUM64_PLACEHOLDER = "enum64_placeholder"


class Features(FrozenRecord):
    """What the kernel's BTF loader accepts (all True: a current kernel)."""

    _fields = ("btf", "func", "func_global", "datasec", "qmark_datasec", "float", "decl_tag",
               "type_tag", "enum64")
    __slots__ = _fields
    btf: bool
    func: bool
    func_global: bool
    datasec: bool
    qmark_datasec: bool
    float: bool
    decl_tag: bool
    type_tag: bool
    enum64: bool

    def __init__(self, btf: bool = True, func: bool = True, func_global: bool = True,
                 datasec: bool = True, qmark_datasec: bool = True, float: bool = True,
                 decl_tag: bool = True, type_tag: bool = True, enum64: bool = True) -> None:
        self._init(btf, func, func_global, datasec, qmark_datasec, float, decl_tag, type_tag,
                   enum64)

    def complete(self) -> bool:
        return all(getattr(self, name) for name in self._fields)


# ---------------------------------------------------------------- probing

def _with_int(build: Callable[[BTF, int], object]) -> BTF:
    btf = BTF()
    build(btf, btf.add(T.Int("int", 4, BTF_INT_SIGNED, 0, 32)))
    return btf


def _func(linkage: int) -> Callable[[BTF, int], None]:
    def build(btf: BTF, i32: int) -> None:
        btf.add(T.Func("x", btf.add(T.FuncProto("", i32, [T.Param("a", i32)])), linkage))
    return build


def _datasec(name: str) -> Callable[[BTF, int], None]:
    def build(btf: BTF, i32: int) -> None:
        var = btf.add(T.Var("x", i32, BTF_VAR_STATIC))
        btf.add(T.Datasec(name, 4, [T.VarSecinfo(var, 0, 4)]))
    return build


#: feature -> a minimal BTF that only loads when the kernel has it.
PROBES: Dict[str, Callable[[], BTF]] = {
    "btf": lambda: _with_int(lambda btf, i32: None),
    "func": lambda: _with_int(_func(BTF_FUNC_STATIC)),
    "func_global": lambda: _with_int(_func(BTF_FUNC_GLOBAL)),
    "datasec": lambda: _with_int(_datasec(".data")),
    "qmark_datasec": lambda: _with_int(_datasec("?.data")),
    "float": lambda: _with_int(lambda btf, i32: btf.add(T.Float("float", 4))),
    "decl_tag": lambda: _with_int(lambda btf, i32: btf.add(
        T.DeclTag("tag", btf.add(T.Var("x", i32, BTF_VAR_STATIC)), -1))),
    "type_tag": lambda: _with_int(lambda btf, i32: btf.add(
        T.Pointer("", btf.add(T.TypeTag("tag", i32))))),
    "enum64": lambda: _with_int(lambda btf, i32: btf.add(
        T.Enum64("e", 8, [("A", 1 << 40)]))),
}

# ---------------------------------------------------------------- rewriting

def sanitize(btf: BTF, features: Features) -> BTF:
    """A copy of ``btf`` the kernel with ``features`` accepts, with the same type ids
    (a placeholder int may be appended for ENUM64)."""
    out = btf.copy()
    placeholder = 0
    rewritten = set()
    for type_id in range(out.start_id, len(out)):
        t = out[type_id]
        new: Optional[T.Type] = None
        if isinstance(t, T.Var) and not features.datasec or \
                isinstance(t, T.DeclTag) and not features.decl_tag:
            new = T.Int(t.name, 1, 0, 0, 8)
        elif isinstance(t, T.Datasec) and not features.datasec:
            name = t.name.replace(".", "_").replace("?", "_")
            new = T.Struct(name, t.size, [T.Member(out[v.type].name, v.type, 8 * v.offset)
                                          for v in t.vars])
        elif isinstance(t, T.Datasec) and not features.qmark_datasec \
                and t.name.startswith("?"):
            t.name = "_" + t.name[1:]
        elif isinstance(t, T.FuncProto) and not features.func:
            new = T.Enum(t.name, 4, [(p.name, p.type) for p in t.params])
        elif isinstance(t, T.Func) and not features.func:
            new = T.Typedef(t.name, t.type)
        elif isinstance(t, T.Func) and not features.func_global:
            t.linkage = BTF_FUNC_STATIC
        elif isinstance(t, T.Float) and not features.float:
            new = T.Struct("", t.size, [])
        elif isinstance(t, T.TypeTag) and not features.type_tag:
            new = T.Const("", t.type)
        elif isinstance(t, T.Enum64) and not features.enum64:
            if not placeholder:
                placeholder = out.add(T.Int(ENUM64_PLACEHOLDER, 1, 0, 0, 8))
            new = T.Union(t.name, t.size, [T.Member(name, placeholder, 0)
                                           for name, _ in t.values])
        elif isinstance(t, T.Enum) and not features.enum64 and t.signed:
            t.signed = False
            t.values = [(name, value & 0xFFFFFFFF) for name, value in t.values]
        if new is not None:
            out[type_id] = new
            rewritten.add(type_id)
    for type_id in range(out.start_id, len(out)):
        t = out[type_id]
        if isinstance(t, T.DeclTag) and t.type in rewritten:
            out[type_id] = T.Int(t.name, 1, 0, 0, 8)      # its target is gone
    return out
