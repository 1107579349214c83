"""struct_ops maps, the pure part: what ``.struct_ops`` sections declare and how
their values are laid out for the kernel (no kernel calls).

Each variable of a ``.struct_ops`` / ``.struct_ops.link`` DATASEC is one
``BPF_MAP_TYPE_STRUCT_OPS`` map whose BTF type is the BPF-side struct (e.g.
``struct tcp_congestion_ops``); relocations in the section bind its
function-pointer members to programs.  ``?.struct_ops`` / ``?.struct_ops.link``
maps are not created unless asked for (libbpf's autocreate off).

At load, :func:`kernel_layout` finds the kernel's ``struct bpf_struct_ops_<type>``
(the map value) and its ``data`` member (the kernel struct) in a kernel BTF, and
:func:`build_value` matches members by name as libbpf does: data members are
copied to their kernel offsets (a member the kernel lacks must be zero, sizes
must agree), function pointers become :class:`Slot` records that receive the
program fds (:func:`value_with_fds`).
"""
from __future__ import annotations

import struct
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple

from .. import uapi
from ..btf import BTF
from ..btf import types as T
from ..btf.corematch import essential_name
from .elf import SHN_UNDEF, SHT_NOBITS, ElfObject, Section
from ..errors import ObjectError
from ..asm.insn import INSN_SIZE
from ..record import Record

#: section name (without a leading "?") -> map flags
SECTION_FLAGS = {".struct_ops": 0, ".struct_ops.link": uapi.BPF_F_LINK}
#: the kernel names the map value of struct_ops type X "struct bpf_struct_ops_X"
VALUE_PREFIX = "bpf_struct_ops_"


def is_struct_ops_section(name: str) -> bool:
    """``.struct_ops``, ``.struct_ops.link`` and their ``?`` (not autocreated) forms."""
    return (name[1:] if name.startswith("?") else name) in SECTION_FLAGS


class StructOpsSpec(Record):
    """One struct_ops variable: its BPF-side type and initial value."""

    _fields = ("name", "section", "type_id", "type_name", "offset", "data", "declared", "progs",
               "autocreate")
    __slots__ = _fields
    name: str                   # the variable, i.e. the map name
    section: str                # ".struct_ops", "?.struct_ops.link", ...
    type_id: int                # BPF-side struct in the object's BTF
    type_name: str              # as written, flavor included ("tcp_congestion_ops___v2")
    offset: int                 # of the variable in its section
    data: bytearray             # BPF-side value; function pointer slots are zero
    #: member index -> program bound by the object's relocations
    declared: Dict[int, str]
    #: member index -> program bound now (starts as ``declared``; users may change it)
    progs: Dict[int, str]
    autocreate: bool

    def __init__(self, name: str, section: str, type_id: int, type_name: str,
                 offset: int, data: bytearray,
                 declared: Optional[Dict[int, str]] = None,
                 progs: Optional[Dict[int, str]] = None, autocreate: bool = True) -> None:
        self.name = name
        self.section = section
        self.type_id = type_id
        self.type_name = type_name
        self.offset = offset
        self.data = data
        self.declared = {} if declared is None else declared
        self.progs = {} if progs is None else progs
        self.autocreate = autocreate

    @property
    def flags(self) -> int:
        """The map flags its section implies (BPF_F_LINK for .struct_ops.link)."""
        return SECTION_FLAGS[self.section.lstrip("?")]

    @property
    def is_link(self) -> bool:
        """Registered through a BPF link rather than a map update."""
        return bool(self.flags & uapi.BPF_F_LINK)

    @property
    def kernel_type_name(self) -> str:
        """The kernel struct to look for: the BPF-side name without its ___flavor."""
        return essential_name(self.type_name)


def collect(elf: ElfObject, btf: Optional[BTF],
            programs: Mapping[Tuple[int, int], Tuple[str, int]]) -> List[StructOpsSpec]:
    """Every struct_ops variable of the object.

    ``programs`` maps (section index, first instruction slot) of each program to
    its (name, program type): relocations must name struct_ops programs."""
    out: List[StructOpsSpec] = []
    for sec in elf.sections:
        if not is_struct_ops_section(sec.name):
            continue
        if btf is None:
            raise ObjectError("struct_ops maps need BTF: build with clang -g",
                              section=sec.name)
        if sec.type == SHT_NOBITS:
            raise ObjectError("a struct_ops section must hold data (PROGBITS)",
                              section=sec.name)
        found = _section_maps(btf, sec)
        _bind_programs(elf, btf, sec, found, programs)
        out.extend(found)
    return out


def _section_maps(btf: BTF, sec: Section) -> List[StructOpsSpec]:
    ids = btf.find(sec.name, uapi.BTF_KIND_DATASEC)
    if not ids:
        raise ObjectError(f"no DATASEC {sec.name!r} in BTF", section=sec.name)
    datasec = btf[ids[0]]
    assert isinstance(datasec, T.Datasec)
    out = []
    for vsi in datasec.vars:
        var = btf[vsi.type]
        if not isinstance(var, T.Var):
            raise ObjectError(f"DATASEC entry of kind {var.kind} is not a variable",
                              section=sec.name, offset=vsi.offset)
        type_id = btf.resolve(var.type)
        t = btf[type_id]
        if not isinstance(t, T.Struct) or isinstance(t, T.Union):
            raise ObjectError(f"struct_ops variable {var.name!r} is "
                              f"{btf.type_name(var.type)}, not a struct",
                              section=sec.name, offset=vsi.offset)
        if not t.name:
            raise ObjectError(f"struct_ops variable {var.name!r} has an anonymous struct "
                              "type", section=sec.name, offset=vsi.offset)
        if vsi.offset + t.size > len(sec.data):
            raise ObjectError(f"struct_ops variable {var.name!r} ({t.size} bytes at "
                              f"{vsi.offset:#x}) is past the end of the section",
                              section=sec.name, offset=vsi.offset)
        out.append(StructOpsSpec(var.name, sec.name, type_id, t.name, vsi.offset,
                                 bytearray(sec.data[vsi.offset:vsi.offset + t.size]),
                                 autocreate=not sec.name.startswith("?")))
    return out


def _bind_programs(elf: ElfObject, btf: BTF, sec: Section, maps: List[StructOpsSpec],
                   programs: Mapping[Tuple[int, int], Tuple[str, int]]) -> None:
    """Function-pointer relocations -> StructOpsSpec.progs, as libbpf collects them."""
    rel_sec = f".rel{sec.name}"
    for rel in elf.relocs.get(sec.index, []):
        owner = next((m for m in maps if m.offset <= rel.offset < m.offset + len(m.data)),
                     None)
        if owner is None:
            raise ObjectError("relocation outside every struct_ops variable",
                              section=rel_sec, offset=rel.offset)
        where = f"struct_ops {owner.name!r}"
        sym = rel.sym
        if sym.shndx == SHN_UNDEF or sym.shndx >= len(elf.sections):
            raise ObjectError(f"{where}: relocation against {sym.name!r}, which is not "
                              "a function of this object", section=rel_sec,
                              offset=rel.offset)
        if sym.value % INSN_SIZE:
            raise ObjectError(f"{where}: relocation target {sym.name!r} at {sym.value:#x} "
                              "is not at an instruction boundary", section=rel_sec,
                              offset=rel.offset)
        moff = rel.offset - owner.offset
        struct_t = btf[owner.type_id]
        assert isinstance(struct_t, T.Struct)
        index = next((i for i, m in enumerate(struct_t.members)
                      if m.bit_offset == moff * 8 and not m.bitfield_size), None)
        if index is None:
            raise ObjectError(f"{where}: no member of struct {owner.type_name} starts at "
                              f"offset {moff}", section=rel_sec, offset=rel.offset)
        member = struct_t.members[index]
        if not is_func_pointer(btf, member.type):
            raise ObjectError(f"{where}: member {member.name!r} "
                              f"({btf.type_name(member.type)}) is not a function pointer",
                              section=rel_sec, offset=rel.offset)
        found = programs.get((sym.shndx, sym.value // INSN_SIZE))
        if found is None:
            raise ObjectError(f"{where}: member {member.name!r} points to "
                              f"{sym.name or 'a symbol'!r} in section "
                              f"{elf.sections[sym.shndx].name!r}, which is not a program",
                              section=rel_sec, offset=rel.offset)
        prog_name, prog_type = found
        if prog_type != uapi.BPF_PROG_TYPE_STRUCT_OPS:
            raise ObjectError(f"{where}: member {member.name!r} points to program "
                              f"{prog_name!r}, which is not a SEC(\"struct_ops\") program",
                              section=rel_sec, offset=rel.offset)
        owner.declared[index] = owner.progs[index] = prog_name


def is_func_pointer(btf: BTF, type_id: int) -> bool:
    """A pointer (through typedefs and qualifiers) to a function prototype."""
    t = btf[btf.resolve(type_id)]
    return isinstance(t, T.Pointer) and isinstance(btf[btf.resolve(t.type)], T.FuncProto)


# ------------------------------------------------------------------ kernel layout


class KernelLayout(NamedTuple):
    """Where the kernel keeps one struct_ops type."""

    btf: BTF                    # the kernel BTF holding it (vmlinux, or a module's)
    module: Optional[str]       # None: vmlinux
    type_id: int                # the kernel struct, e.g. tcp_congestion_ops
    value_type_id: int          # struct bpf_struct_ops_<type>: the map value
    value_size: int
    data_offset: int            # of the kernel struct inside the value


def kernel_layout(type_name: str,
                  kernel_btfs: Iterable[Tuple[Optional[str], BTF]]) -> KernelLayout:
    """Find struct ``type_name`` and its ``bpf_struct_ops_<type_name>`` value type in
    the first kernel BTF that has the struct (vmlinux first, then modules)."""
    searched = []
    for module, kbtf in kernel_btfs:
        searched.append(module or "vmlinux")
        own = [i for i in kbtf.find(type_name, uapi.BTF_KIND_STRUCT)
               if module is None or i >= kbtf.start_id]
        if not own:
            continue
        type_id = own[0]
        where = f"struct {type_name} in {module or 'vmlinux'} BTF"
        values = kbtf.find(VALUE_PREFIX + type_name, uapi.BTF_KIND_STRUCT)
        if not values:
            raise ObjectError(f"{where} is not a struct_ops type: there is no struct "
                              f"{VALUE_PREFIX}{type_name} (the kernel registers no "
                              "struct_ops of this type)")
        vtype = kbtf[values[0]]
        assert isinstance(vtype, T.Struct)
        data = next((m for m in vtype.members if m.type == type_id), None)
        if data is None:
            raise ObjectError(f"struct {VALUE_PREFIX}{type_name} has no member of type "
                              f"struct {type_name}")
        return KernelLayout(kbtf, module, type_id, values[0], vtype.size,
                            data.bit_offset // 8)
    raise ObjectError(f"struct_ops type struct {type_name} is not in the kernel's BTF "
                      f"(searched {', '.join(searched) or 'nothing'})")


class Slot(NamedTuple):
    """A function-pointer member that receives a program fd."""

    member: str
    kernel_index: int           # the program's expected_attach_type
    offset: int                 # in the kernel value
    program: str


class KernelValue(Record):
    """The kernel map value of one struct_ops map, before the program fds."""

    _fields = ("layout", "image", "slots")
    __slots__ = _fields
    layout: KernelLayout
    image: bytes                # data members copied, function pointers zero
    slots: List[Slot]

    def __init__(self, layout: KernelLayout, image: bytes, slots: List[Slot]) -> None:
        self.layout = layout
        self.image = image
        self.slots = slots


def build_value(spec: StructOpsSpec, btf: BTF, layout: KernelLayout) -> KernelValue:
    """Match the BPF-side members with the kernel struct's, by name (libbpf's
    ``bpf_map__init_kern_struct_ops``)."""
    kbtf = layout.btf
    kstruct = kbtf[layout.type_id]
    struct_t = btf[spec.type_id]
    assert isinstance(kstruct, T.Struct) and isinstance(struct_t, T.Struct)
    kmembers = {m.name: (i, m) for i, m in enumerate(kstruct.members) if m.name}
    image = bytearray(layout.value_size)
    slots: List[Slot] = []
    where = f"struct_ops {spec.name!r} (struct {spec.type_name})"
    for index, member in enumerate(struct_t.members):
        off = member.bit_offset // 8
        size = btf.size_of(member.type)
        raw = bytes(spec.data[off:off + size])
        prog = spec.progs.get(index)
        found = kmembers.get(member.name)
        if found is None:
            if any(raw) or prog is not None:
                what = f"is bound to program {prog!r}" if prog else "is not zero"
                raise ObjectError(f"{where}: member {member.name!r} is not in the "
                                  f"kernel's struct {kstruct.name} and {what}",
                                  section=spec.section)
            continue
        kindex, kmember = found
        if member.bitfield_size or kmember.bitfield_size:
            raise ObjectError(f"{where}: member {member.name!r} is a bitfield: not "
                              "supported", section=spec.section)
        kind, kkind = btf.kind_of(btf.resolve(member.type)), \
            kbtf.kind_of(kbtf.resolve(kmember.type))
        if kind != kkind:
            raise ObjectError(f"{where}: member {member.name!r} is "
                              f"{btf.type_name(member.type)} here but "
                              f"{kbtf.type_name(kmember.type)} in the kernel",
                              section=spec.section)
        koff = layout.data_offset + kmember.bit_offset // 8
        if kind == uapi.BTF_KIND_PTR:
            if any(raw):
                raise ObjectError(f"{where}: pointer member {member.name!r} holds "
                                  f"{int.from_bytes(raw, 'little'):#x}: pointers can only "
                                  "be bound to programs", section=spec.section)
            if prog is None:
                continue
            if not is_func_pointer(kbtf, kmember.type):
                raise ObjectError(f"{where}: kernel member {member.name!r} is not a "
                                  "function pointer", section=spec.section)
            slots.append(Slot(member.name, kindex, koff, prog))
            continue
        ksize = kbtf.size_of(kmember.type)
        if ksize != size:
            raise ObjectError(f"{where}: member {member.name!r} is {size} bytes here, "
                              f"{ksize} in the kernel", section=spec.section)
        image[koff:koff + size] = raw
    return KernelValue(layout, bytes(image), slots)


def value_with_fds(value: KernelValue, fds: Mapping[str, int]) -> bytes:
    """The map value with each slot's program fd (``fds``: program name -> fd)."""
    image = bytearray(value.image)
    for slot in value.slots:
        struct.pack_into("<Q", image, slot.offset, fds[slot.program])
    return bytes(image)
