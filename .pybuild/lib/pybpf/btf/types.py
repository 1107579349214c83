"""The BTF type model: one small class per ``BTF_KIND_*``, no I/O.

Types refer to each other by type id (``int``, 0 is void), never by object,
so a type table can be parsed lazily, split across a base (vmlinux) and a
module, and encoded back unchanged.  Names are ``str`` ("" for anonymous).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, List, Tuple

from ..uapi import (BTF_KIND_ARRAY, BTF_KIND_CONST, BTF_KIND_DATASEC, BTF_KIND_DECL_TAG,
                    BTF_KIND_ENUM, BTF_KIND_ENUM64, BTF_KIND_FLOAT, BTF_KIND_FUNC,
                    BTF_KIND_FUNC_PROTO, BTF_KIND_FWD, BTF_KIND_INT, BTF_KIND_PTR,
                    BTF_KIND_RESTRICT, BTF_KIND_STRUCT, BTF_KIND_TYPE_TAG,
                    BTF_KIND_TYPEDEF, BTF_KIND_UNION, BTF_KIND_UNKN, BTF_KIND_VAR,
                    BTF_KIND_VOLATILE, BTF_INT_BOOL, BTF_INT_CHAR, BTF_INT_SIGNED)


@dataclass
class Type:
    name: str = ""
    kind: ClassVar[int] = BTF_KIND_UNKN


@dataclass
class Void(Type):
    """Type id 0."""


@dataclass
class Int(Type):
    size: int = 0
    encoding: int = 0       # BTF_INT_SIGNED | BTF_INT_CHAR | BTF_INT_BOOL
    offset: int = 0         # bit offset (legacy bitfield encoding)
    bits: int = 0
    kind: ClassVar[int] = BTF_KIND_INT

    @property
    def signed(self) -> bool:
        return bool(self.encoding & BTF_INT_SIGNED)

    @property
    def is_char(self) -> bool:
        return bool(self.encoding & BTF_INT_CHAR)

    @property
    def is_bool(self) -> bool:
        return bool(self.encoding & BTF_INT_BOOL)


@dataclass
class _Ref(Type):
    """A kind whose only payload is the id of another type."""

    type: int = 0


@dataclass
class Pointer(_Ref):
    kind: ClassVar[int] = BTF_KIND_PTR


@dataclass
class Typedef(_Ref):
    kind: ClassVar[int] = BTF_KIND_TYPEDEF


@dataclass
class Volatile(_Ref):
    kind: ClassVar[int] = BTF_KIND_VOLATILE


@dataclass
class Const(_Ref):
    kind: ClassVar[int] = BTF_KIND_CONST


@dataclass
class Restrict(_Ref):
    kind: ClassVar[int] = BTF_KIND_RESTRICT


@dataclass
class TypeTag(_Ref):
    attr: bool = False       # the kind_flag: an __attribute__, not a btf_type_tag
    kind: ClassVar[int] = BTF_KIND_TYPE_TAG


@dataclass
class Array(Type):
    type: int = 0           # element type
    index_type: int = 0
    nelems: int = 0
    kind: ClassVar[int] = BTF_KIND_ARRAY


@dataclass
class Member:
    name: str
    type: int
    bit_offset: int          # from the start of the struct
    bitfield_size: int = 0   # 0: not a bitfield


@dataclass
class Struct(Type):
    size: int = 0
    members: List[Member] = field(default_factory=list)
    kind: ClassVar[int] = BTF_KIND_STRUCT


@dataclass
class Union(Struct):
    kind: ClassVar[int] = BTF_KIND_UNION


@dataclass
class Enum(Type):
    size: int = 4
    values: List[Tuple[str, int]] = field(default_factory=list)
    signed: bool = False     # the kind_flag
    kind: ClassVar[int] = BTF_KIND_ENUM


@dataclass
class Enum64(Enum):
    size: int = 8
    kind: ClassVar[int] = BTF_KIND_ENUM64


@dataclass
class Fwd(Type):
    is_union: bool = False   # the kind_flag
    kind: ClassVar[int] = BTF_KIND_FWD


@dataclass
class Func(Type):
    type: int = 0            # its FuncProto
    linkage: int = 0         # btf_func_linkage
    kind: ClassVar[int] = BTF_KIND_FUNC


@dataclass
class Param:
    name: str
    type: int


@dataclass
class FuncProto(Type):
    return_type: int = 0
    params: List[Param] = field(default_factory=list)
    kind: ClassVar[int] = BTF_KIND_FUNC_PROTO


@dataclass
class Var(Type):
    type: int = 0
    linkage: int = 0         # btf_var_linkage
    kind: ClassVar[int] = BTF_KIND_VAR


@dataclass
class VarSecinfo:
    type: int                # a Var (or a Func for .ksyms)
    offset: int
    size: int


@dataclass
class Datasec(Type):
    size: int = 0
    vars: List[VarSecinfo] = field(default_factory=list)
    kind: ClassVar[int] = BTF_KIND_DATASEC


@dataclass
class Float(Type):
    size: int = 0
    kind: ClassVar[int] = BTF_KIND_FLOAT


@dataclass
class DeclTag(Type):
    type: int = 0
    component_idx: int = -1  # -1: the tag is on the type itself
    attr: bool = False       # the kind_flag: an __attribute__, not a btf_decl_tag
    kind: ClassVar[int] = BTF_KIND_DECL_TAG


#: kind number -> class, for parsers and encoders.
KIND_CLASSES = {cls.kind: cls for cls in (
    Int, Pointer, Array, Struct, Union, Enum, Fwd, Typedef, Volatile, Const, Restrict,
    Func, FuncProto, Var, Datasec, Float, DeclTag, TypeTag, Enum64)}

#: kinds that only qualify another type (skipped when resolving to the real type).
QUALIFIER_KINDS = frozenset({BTF_KIND_TYPEDEF, BTF_KIND_VOLATILE, BTF_KIND_CONST,
                             BTF_KIND_RESTRICT, BTF_KIND_TYPE_TAG})
