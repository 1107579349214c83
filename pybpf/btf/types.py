"""The BTF type model: one small class per ``BTF_KIND_*``, no I/O.

Types refer to each other by type id (``int``, 0 is void), never by object,
so a type table can be parsed lazily, split across a base (vmlinux) and a
module, and encoded back unchanged.  Names are ``str`` ("" for anonymous).

Plain classes with written-out ``__init__`` (not dataclasses: generating the
methods of two dozen dataclasses costs more than the rest of ``import``);
:class:`~pybpf.record.Record` gives them a dataclass's ``repr``, ``==`` and ``replace``
from ``_fields``; they keep a ``__dict__`` (``BTF`` copies types through it).
"""
from __future__ import annotations

from typing import ClassVar, List, Optional, Tuple

from ..record import Record
from ..uapi import (BTF_KIND_ARRAY, BTF_KIND_CONST, BTF_KIND_DATASEC, BTF_KIND_DECL_TAG,
                    BTF_KIND_ENUM, BTF_KIND_ENUM64, BTF_KIND_FLOAT, BTF_KIND_FUNC,
                    BTF_KIND_FUNC_PROTO, BTF_KIND_FWD, BTF_KIND_INT, BTF_KIND_PTR,
                    BTF_KIND_RESTRICT, BTF_KIND_STRUCT, BTF_KIND_TYPE_TAG,
                    BTF_KIND_TYPEDEF, BTF_KIND_UNION, BTF_KIND_UNKN, BTF_KIND_VAR,
                    BTF_KIND_VOLATILE, BTF_INT_BOOL, BTF_INT_CHAR, BTF_INT_SIGNED)


class Type(Record):
    """A BTF type (the base of one class per kind)."""

    kind: ClassVar[int] = BTF_KIND_UNKN
    _fields: ClassVar[Tuple[str, ...]] = ("name",)

    def __init__(self, name: str = "") -> None:
        self.name = name


class Void(Type):
    """Type id 0."""


class Int(Type):
    """BTF_KIND_INT."""

    kind: ClassVar[int] = BTF_KIND_INT
    _fields = ("name", "size", "encoding", "offset", "bits")

    def __init__(self, name: str = "", size: int = 0, encoding: int = 0, offset: int = 0,
                 bits: int = 0) -> None:
        self.name = name
        self.size = size
        self.encoding = encoding    # BTF_INT_SIGNED | BTF_INT_CHAR | BTF_INT_BOOL
        self.offset = offset        # bit offset (legacy bitfield encoding)
        self.bits = bits

    @property
    def signed(self) -> bool:
        return bool(self.encoding & BTF_INT_SIGNED)

    @property
    def is_char(self) -> bool:
        return bool(self.encoding & BTF_INT_CHAR)

    @property
    def is_bool(self) -> bool:
        return bool(self.encoding & BTF_INT_BOOL)


class _Ref(Type):
    """A kind whose only payload is the id of another type."""

    _fields: ClassVar[Tuple[str, ...]] = ("name", "type")

    def __init__(self, name: str = "", type: int = 0) -> None:
        self.name = name
        self.type = type


class Pointer(_Ref):
    """BTF_KIND_PTR."""

    kind: ClassVar[int] = BTF_KIND_PTR


class Typedef(_Ref):
    """BTF_KIND_TYPEDEF."""

    kind: ClassVar[int] = BTF_KIND_TYPEDEF


class Volatile(_Ref):
    """BTF_KIND_VOLATILE."""

    kind: ClassVar[int] = BTF_KIND_VOLATILE


class Const(_Ref):
    """BTF_KIND_CONST."""

    kind: ClassVar[int] = BTF_KIND_CONST


class Restrict(_Ref):
    """BTF_KIND_RESTRICT."""

    kind: ClassVar[int] = BTF_KIND_RESTRICT


class TypeTag(_Ref):
    """BTF_KIND_TYPE_TAG."""

    kind: ClassVar[int] = BTF_KIND_TYPE_TAG
    _fields = ("name", "type", "attr")

    def __init__(self, name: str = "", type: int = 0, attr: bool = False) -> None:
        self.name = name
        self.type = type
        self.attr = attr        # the kind_flag: an __attribute__, not a btf_type_tag


class Array(Type):
    """BTF_KIND_ARRAY."""

    kind: ClassVar[int] = BTF_KIND_ARRAY
    _fields = ("name", "type", "index_type", "nelems")

    def __init__(self, name: str = "", type: int = 0, index_type: int = 0,
                 nelems: int = 0) -> None:
        self.name = name
        self.type = type            # element type
        self.index_type = index_type
        self.nelems = nelems


class Member(Record):
    """One member of a struct or union."""

    _fields = ("name", "type", "bit_offset", "bitfield_size")

    def __init__(self, name: str, type: int, bit_offset: int, bitfield_size: int = 0) -> None:
        self.name = name
        self.type = type
        self.bit_offset = bit_offset        # from the start of the struct
        self.bitfield_size = bitfield_size  # 0: not a bitfield


class Struct(Type):
    """BTF_KIND_STRUCT."""

    kind: ClassVar[int] = BTF_KIND_STRUCT
    _fields = ("name", "size", "members")

    def __init__(self, name: str = "", size: int = 0,
                 members: Optional[List[Member]] = None) -> None:
        self.name = name
        self.size = size
        self.members: List[Member] = [] if members is None else members


class Union(Struct):
    """BTF_KIND_UNION."""

    kind: ClassVar[int] = BTF_KIND_UNION


class Enum(Type):
    """BTF_KIND_ENUM."""

    kind: ClassVar[int] = BTF_KIND_ENUM
    _fields = ("name", "size", "values", "signed")

    def __init__(self, name: str = "", size: int = 4,
                 values: Optional[List[Tuple[str, int]]] = None, signed: bool = False) -> None:
        self.name = name
        self.size = size
        self.values: List[Tuple[str, int]] = [] if values is None else values
        self.signed = signed        # the kind_flag


class Enum64(Enum):
    """BTF_KIND_ENUM64."""

    kind: ClassVar[int] = BTF_KIND_ENUM64

    def __init__(self, name: str = "", size: int = 8,
                 values: Optional[List[Tuple[str, int]]] = None, signed: bool = False) -> None:
        super().__init__(name, size, values, signed)


class Fwd(Type):
    """BTF_KIND_FWD."""

    kind: ClassVar[int] = BTF_KIND_FWD
    _fields = ("name", "is_union")

    def __init__(self, name: str = "", is_union: bool = False) -> None:
        self.name = name
        self.is_union = is_union    # the kind_flag


class Func(Type):
    """BTF_KIND_FUNC."""

    kind: ClassVar[int] = BTF_KIND_FUNC
    _fields = ("name", "type", "linkage")

    def __init__(self, name: str = "", type: int = 0, linkage: int = 0) -> None:
        self.name = name
        self.type = type            # its FuncProto
        self.linkage = linkage      # btf_func_linkage


class Param(Record):
    """One parameter of a function prototype."""

    _fields = ("name", "type")

    def __init__(self, name: str, type: int) -> None:
        self.name = name
        self.type = type


class FuncProto(Type):
    """BTF_KIND_FUNC_PROTO."""

    kind: ClassVar[int] = BTF_KIND_FUNC_PROTO
    _fields = ("name", "return_type", "params")

    def __init__(self, name: str = "", return_type: int = 0,
                 params: Optional[List[Param]] = None) -> None:
        self.name = name
        self.return_type = return_type
        self.params: List[Param] = [] if params is None else params


class Var(Type):
    """BTF_KIND_VAR."""

    kind: ClassVar[int] = BTF_KIND_VAR
    _fields = ("name", "type", "linkage")

    def __init__(self, name: str = "", type: int = 0, linkage: int = 0) -> None:
        self.name = name
        self.type = type
        self.linkage = linkage      # btf_var_linkage


class VarSecinfo(Record):
    """One variable of a DATASEC."""

    _fields = ("type", "offset", "size")

    def __init__(self, type: int, offset: int, size: int) -> None:
        self.type = type            # a Var (or a Func for .ksyms)
        self.offset = offset
        self.size = size


class Datasec(Type):
    """BTF_KIND_DATASEC."""

    kind: ClassVar[int] = BTF_KIND_DATASEC
    _fields = ("name", "size", "vars")

    def __init__(self, name: str = "", size: int = 0,
                 vars: Optional[List[VarSecinfo]] = None) -> None:
        self.name = name
        self.size = size
        self.vars: List[VarSecinfo] = [] if vars is None else vars


class Float(Type):
    """BTF_KIND_FLOAT."""

    kind: ClassVar[int] = BTF_KIND_FLOAT
    _fields = ("name", "size")

    def __init__(self, name: str = "", size: int = 0) -> None:
        self.name = name
        self.size = size


class DeclTag(Type):
    """BTF_KIND_DECL_TAG."""

    kind: ClassVar[int] = BTF_KIND_DECL_TAG
    _fields = ("name", "type", "component_idx", "attr")

    def __init__(self, name: str = "", type: int = 0, component_idx: int = -1,
                 attr: bool = False) -> None:
        self.name = name
        self.type = type
        self.component_idx = component_idx  # -1: the tag is on the type itself
        self.attr = attr        # the kind_flag: an __attribute__, not a btf_decl_tag


#: kind number -> class, for parsers and encoders.
KIND_CLASSES = {cls.kind: cls for cls in (
    Int, Pointer, Array, Struct, Union, Enum, Fwd, Typedef, Volatile, Const, Restrict,
    Func, FuncProto, Var, Datasec, Float, DeclTag, TypeTag, Enum64)}

#: kinds that only qualify another type (skipped when resolving to the real type).
QUALIFIER_KINDS = frozenset({BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST,
                             BTF_KIND_RESTRICT, BTF_KIND_TYPE_TAG})
