"""The object model: what a BPF ELF object declares, with no kernel calls.

``ObjectSpec.parse(elf, btf, ext)`` turns sections and symbols into program,
function and map specs (BTF-defined ``.maps``, global data sections).  Like
aya-obj or cilium/ebpf's CollectionSpec, everything here is pure data and can
be inspected and tested without root.
"""
from __future__ import annotations

import bisect
import mmap
import os
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple, Union, cast

from .. import uapi
from ..btf import BTF, BTFExt
from ..btf import types as T
from .elf import (SHF_WRITE, SHT_NOBITS, SHT_PROGBITS, STB_LOCAL, STT_FUNC, STT_OBJECT,
                  STV_HIDDEN, ElfObject, Section, read_elf)
from ..errors import ObjectError
from .externs import KCONFIG_SEC, KSYMS_SEC, Externs, collect as collect_externs
from ..asm.insn import INSN_SIZE
from .map_rules import (LIBBPF_PIN_BY_NAME as LIBBPF_PIN_BY_NAME,  # noqa: F401 (re-exported)
                        LIBBPF_PIN_NONE as LIBBPF_PIN_NONE)
from .map_rules import check_pinning, datasec_is_mmapable, internal_map_name, ringbuf_size
from ..limits import BTF_MAX_SIZE, check_value_size
from ..record import Record
from .sections import SecDef, find_sec_def

if TYPE_CHECKING:
    from .struct_ops import StructOpsSpec

#: the ELF section of __arena globals (clang's address_space(1)), libbpf's ARENA_SEC
ARENA_SEC = ".addr_space.1"

#: .maps struct members that carry a number as the size of an array type
_NUMERIC_MAP_FIELDS = ("type", "max_entries", "map_flags", "numa_node", "key_size",
                       "value_size", "pinning", "map_extra")


class FuncSpec(Record):
    """A function (program or subprogram) in an executable section."""

    _fields = ("name", "shndx", "start", "count", "is_global")
    __slots__ = _fields
    name: str
    shndx: int
    start: int          # first instruction slot within its section
    count: int          # number of slots
    is_global: bool

    def __init__(self, name: str, shndx: int, start: int, count: int, is_global: bool) -> None:
        self.name = name
        self.shndx = shndx
        self.start = start
        self.count = count
        self.is_global = is_global


class ProgramSpec(Record):
    """A program: its entry function, its SEC() name and what that name attaches to."""

    _fields = ("name", "section", "func", "sec_def", "attach_target")
    __slots__ = _fields
    name: str
    section: str
    func: FuncSpec
    sec_def: Optional[SecDef]
    attach_target: str

    def __init__(self, name: str, section: str, func: FuncSpec,
                 sec_def: Optional[SecDef], attach_target: str) -> None:
        self.name = name
        self.section = section
        self.func = func
        self.sec_def = sec_def
        self.attach_target = attach_target

    @property
    def sec_name(self) -> str:
        """The SEC() name without libbpf's leading '?' (autoload off by default)."""
        return without_qmark(self.section)

    @property
    def autoload(self) -> bool:
        """False for SEC("?...") programs: load() skips them unless enabled."""
        return not self.section.startswith("?")


class MapSpec(Record):
    """A map as the object declares it (a BTF ``.maps`` entry or a global data section)."""

    _fields = ("name", "type", "key_size", "value_size", "max_entries", "flags", "numa_node",
               "pinning", "map_extra", "btf_key_type_id", "btf_value_type_id", "inner",
               "init_slots", "section", "initial", "btf_var_offset", "values_offset",
               "struct_ops", "arena")
    __slots__ = _fields
    name: str                   # as in the source ("rb", ".rodata")
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    numa_node: int
    pinning: int
    map_extra: int
    btf_key_type_id: int
    btf_value_type_id: int
    inner: Optional["MapSpec"]              # map-in-map template
    init_slots: Dict[int, str]              # index -> symbol (values)
    # global data sections only:
    section: Optional[Section]
    initial: bytes
    btf_var_offset: int         # offset of this map's definition in .maps
    values_offset: int          # offset of its 'values' member (-1: none)
    struct_ops: Optional[StructOpsSpec]     # BPF_MAP_TYPE_STRUCT_OPS maps only
    # an ARENA map holding the object's __arena globals: their section
    arena: Optional[Section]

    def __init__(self, name: str, type: int, key_size: int = 0, value_size: int = 0,
                 max_entries: int = 0, flags: int = 0, numa_node: int = 0,
                 pinning: int = LIBBPF_PIN_NONE, map_extra: int = 0,
                 btf_key_type_id: int = 0, btf_value_type_id: int = 0,
                 inner: Optional["MapSpec"] = None,
                 init_slots: Optional[Dict[int, str]] = None,
                 section: Optional[Section] = None, initial: bytes = b"",
                 btf_var_offset: int = 0, values_offset: int = -1,
                 struct_ops: Optional[StructOpsSpec] = None,
                 arena: Optional[Section] = None) -> None:
        self.name = name
        self.type = type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.flags = flags
        self.numa_node = numa_node
        self.pinning = pinning
        self.map_extra = map_extra
        self.btf_key_type_id = btf_key_type_id
        self.btf_value_type_id = btf_value_type_id
        self.inner = inner
        self.init_slots = {} if init_slots is None else init_slots
        self.section = section
        self.initial = initial
        self.btf_var_offset = btf_var_offset
        self.values_offset = values_offset
        self.struct_ops = struct_ops
        self.arena = arena

    @property
    def is_global_data(self) -> bool:
        return self.section is not None

    @property
    def readonly(self) -> bool:
        return bool(self.flags & uapi.BPF_F_RDONLY_PROG)


class ObjectSpec(Record):
    """A whole object: its ELF, BTF and BTF.ext, functions, programs, maps and externs."""

    _fields = ("name", "elf", "btf", "ext", "license", "kern_version", "functions", "programs",
               "maps", "externs")
    __slots__ = _fields + ("_starts",)
    name: str                   # object name: file name without extension, '.' -> '_'
    elf: ElfObject
    btf: Optional[BTF]
    ext: Optional[BTFExt]
    license: str
    kern_version: int
    functions: List[FuncSpec]
    programs: List[ProgramSpec]
    maps: List[MapSpec]
    externs: Externs            # __kconfig / __ksym / kfuncs
    _starts: List[Tuple[int, int]]      # function_at() cache: (shndx, start) of functions

    def __init__(self, name: str, elf: ElfObject, btf: Optional[BTF],
                 ext: Optional[BTFExt], license: str, kern_version: int,
                 functions: List[FuncSpec], programs: List[ProgramSpec],
                 maps: List[MapSpec], externs: Optional[Externs] = None) -> None:
        self.name = name
        self.elf = elf
        self.btf = btf
        self.ext = ext
        self.license = license
        self.kern_version = kern_version
        self.functions = functions
        self.programs = programs
        self.maps = maps
        self.externs = Externs() if externs is None else externs
        self._starts = []

    @classmethod
    def parse(cls, elf: ElfObject, btf: Optional[BTF], ext: Optional[BTFExt]) -> "ObjectSpec":
        name = os.path.basename(elf.path).split(".")[0] or "obj"
        if btf is not None:
            fixup_datasecs(elf, btf)
            mark_hidden_static(elf, btf)
        functions = _functions(elf)
        programs = _programs(elf, functions)
        externs = collect_externs(elf, btf)
        maps = _btf_maps(elf, btf) + _data_maps(elf, btf, name) + _kconfig_map(externs) \
            + _struct_ops_maps(elf, btf, programs)
        return cls(name, elf, btf, ext, _license(elf), _version(elf), functions,
                   programs, maps, externs)

    def function_at(self, shndx: int, slot: int) -> FuncSpec:
        """The function whose code holds instruction ``slot`` of section ``shndx``."""
        if len(self._starts) != len(self.functions):     # functions are in this order
            self._starts = [(f.shndx, f.start) for f in self.functions]
        at = bisect.bisect_right(self._starts, (shndx, slot))
        if at:
            func = self.functions[at - 1]
            if func.shndx == shndx and func.start <= slot < func.start + func.count:
                return func
        sec = self.elf.section_at(shndx)
        raise ObjectError(f"no function contains instruction {slot}", section=sec.name,
                          offset=slot * INSN_SIZE)


def _functions(elf: ElfObject) -> List[FuncSpec]:
    out = []
    for sym in elf.symbols:
        if sym.type != STT_FUNC or not 0 < sym.shndx < len(elf.sections):
            continue
        sec = elf.sections[sym.shndx]
        if not sec.is_exec:
            continue
        size = sym.size or (sec.size - sym.value)
        if sym.value % INSN_SIZE or size % INSN_SIZE or sym.value + size > sec.size or not size:
            raise ObjectError(f"function {sym.name!r} at {sym.value:#x}+{size:#x} is not "
                              "a whole number of instructions inside its section",
                              section=sec.name, offset=sym.value)
        out.append(FuncSpec(sym.name, sym.shndx, sym.value // INSN_SIZE, size // INSN_SIZE,
                            sym.bind != STB_LOCAL))
    out.sort(key=lambda f: (f.shndx, f.start))
    with_code = {f.shndx for f in out}
    code_by_name: Dict[str, int] = {}
    for sec in elf.sections:
        if not (sec.is_exec and sec.size):
            continue
        if sec.index not in with_code:
            raise ObjectError("executable section holds code but no function symbol: its "
                              "programs would be dropped", section=sec.name)
        # .BTF.ext (func/line info, CO-RE) names code sections: a name must be one section
        first = code_by_name.setdefault(sec.name, sec.index)
        if first != sec.index:
            raise ObjectError(f"executable sections {first} and {sec.index} have the same "
                              "name: .BTF.ext records could not tell them apart",
                              section=sec.name)
    return out


def without_qmark(section: str) -> str:
    """libbpf reads SEC("?NAME") as SEC("NAME") with autoload off."""
    return section[1:] if section.startswith("?") else section


def _programs(elf: ElfObject, functions: List[FuncSpec]) -> List[ProgramSpec]:
    out = []
    for func in functions:
        sec = elf.sections[func.shndx]
        if sec.name == ".text":
            continue
        if not func.is_global:
            raise ObjectError(f"program {func.name!r} is static: BPF programs must be "
                              "global functions", section=sec.name,
                              offset=func.start * INSN_SIZE)
        sec_def, target = find_sec_def(without_qmark(sec.name))
        out.append(ProgramSpec(func.name, sec.name, func, sec_def, target))
    return out


def _struct_ops_maps(elf: ElfObject, btf: Optional[BTF],
                     programs: List[ProgramSpec]) -> List[MapSpec]:
    """One BPF_MAP_TYPE_STRUCT_OPS map per .struct_ops / .struct_ops.link variable;
    its value size becomes the kernel's at load (see :mod:`pybpf.obj.struct_ops`)."""
    if not any(".struct_ops" in sec.name for sec in elf.sections):
        return []           # (collect() checks the names exactly; most objects have none)
    from .struct_ops import collect as collect_struct_ops
    where = {(p.func.shndx, p.func.start): (p.name, p.sec_def.prog_type if p.sec_def else 0)
             for p in programs}
    return [MapSpec(so.name, uapi.BPF_MAP_TYPE_STRUCT_OPS, 4, len(so.data), 1, so.flags,
                    struct_ops=so)
            for so in collect_struct_ops(elf, btf, where)]


def _license(elf: ElfObject) -> str:
    sec = elf.section("license")
    if sec is None:
        return ""
    return sec.data.split(b"\0", 1)[0].decode(errors="replace")


def _version(elf: ElfObject) -> int:
    sec = elf.section("version")
    if sec is None or len(sec.data) != 4:
        return 0
    return int.from_bytes(sec.data, "little")


def mark_hidden_static(elf: ElfObject, btf: BTF) -> None:
    """``__hidden`` global functions are verified as static subprograms, as libbpf
    does: the verifier checks a global function alone, without its caller's
    argument values, so BTF must call these static."""
    hidden = {s.name for s in elf.symbols if s.type == STT_FUNC and s.bind != STB_LOCAL
              and s.visibility == STV_HIDDEN}
    for name in hidden:
        for type_id in btf.find(name, uapi.BTF_KIND_FUNC):
            cast(T.Func, btf[type_id]).linkage = uapi.BTF_FUNC_STATIC


# ------------------------------------------------------------------ BTF-defined maps

def _btf_maps(elf: ElfObject, btf: Optional[BTF]) -> List[MapSpec]:
    if elf.section("maps") is not None:       # refused by libbpf 1.0+, even beside .maps
        raise ObjectError("legacy 'maps' section (struct bpf_map_def) is not "
                          "supported: declare maps in SEC(\".maps\") with BTF",
                          section="maps")
    sec = elf.section(".maps")
    if sec is None:
        return []
    if btf is None:
        raise ObjectError("the object has .maps but no .BTF: build with clang -g",
                          section=".maps")
    datasec = _datasec(btf, ".maps")
    if datasec is None:
        raise ObjectError("no DATASEC '.maps' in BTF", section=".BTF")
    out = []
    for vsi in datasec.vars:
        var = btf[vsi.type]
        if not isinstance(var, T.Var):
            raise ObjectError(f"'.maps' entry of kind {var.kind} is not a variable",
                              section=".BTF")
        spec = _map_from_btf(btf, var.name, var.type)
        spec.btf_var_offset = vsi.offset
        out.append(spec)
    _init_slots(elf, sec, out)
    _place_arena_globals(elf, out)
    return out


def _place_arena_globals(elf: ElfObject, maps: List[MapSpec]) -> None:
    """Bind the __arena globals (section .addr_space.1) to the object's one ARENA
    map, as libbpf does: a second ARENA map, or __arena globals without one, or
    an arena too small for them, is refused."""
    arenas = [m for m in maps if m.type == uapi.BPF_MAP_TYPE_ARENA]
    if len(arenas) > 1:
        raise ObjectError(f"map {arenas[1].name!r}: only one ARENA map per object is "
                          f"supported (map {arenas[0].name!r} is also one)", section=".maps")
    sec = elf.section(ARENA_SEC)
    if sec is None or not sec.size:
        return
    if not arenas:
        raise ObjectError("__arena global variables need an ARENA map declared in "
                          "SEC(\".maps\")", section=ARENA_SEC)
    arenas[0].arena = sec
    check_arena_size(arenas[0])


def check_arena_size(spec: MapSpec) -> None:
    """The arena (max_entries pages) must hold the __arena globals."""
    assert spec.arena is not None
    page = mmap.PAGESIZE
    have = spec.max_entries * page
    if -(-spec.arena.size // page) * page > have:
        raise ObjectError(f"ARENA map {spec.name!r} ({have} bytes) is too small to hold "
                          f"the __arena global variables ({spec.arena.size} bytes)",
                          section=ARENA_SEC)


def _datasec(btf: BTF, name: str) -> Optional[T.Datasec]:
    ids = btf.find(name, uapi.BTF_KIND_DATASEC)
    return cast(T.Datasec, btf[ids[0]]) if ids else None


def _map_from_btf(btf: BTF, name: str, type_id: int, inner: bool = False) -> MapSpec:
    struct = btf[btf.resolve(type_id)]
    if not isinstance(struct, T.Struct):
        raise ObjectError(f"map {name!r}: definition is {btf.type_name(type_id)}, "
                          "not a struct", section=".maps")
    spec = MapSpec(name, uapi.BPF_MAP_TYPE_UNSPEC)
    for member in struct.members:
        if member.name in _NUMERIC_MAP_FIELDS:
            value = _btf_number(btf, member.type, name, member.name)
            setattr(spec, {"type": "type", "map_flags": "flags"}.get(member.name, member.name),
                    value)
        elif member.name in ("key", "value"):
            ptr = btf[btf.resolve(member.type)]
            if not isinstance(ptr, T.Pointer):
                raise ObjectError(f"map {name!r}: __type({member.name}, ...) is not a "
                                  "pointer", section=".maps")
            size = btf.size_of(ptr.type)
            _set_size(spec, member.name, size, name)
            setattr(spec, f"btf_{member.name}_type_id", ptr.type)
        elif member.name == "values":
            if inner:               # libbpf too: the template of an inner map ends there
                raise ObjectError(f"map {name!r}: an inner map cannot hold 'values' "
                                  "(multi-level map-in-map is not supported)", section=".maps")
            spec.inner = _inner_map(btf, member.type, name)
            spec.values_offset = member.bit_offset // 8
        else:
            raise ObjectError(f"map {name!r}: unknown map definition field "
                              f"{member.name!r}", section=".maps")
    if spec.type == uapi.BPF_MAP_TYPE_UNSPEC:
        raise ObjectError(f"map {name!r}: no map type", section=".maps")
    if any(m.name == "pinning" for m in struct.members):
        check_pinning(name, spec.pinning, inner)
    if spec.type in (uapi.BPF_MAP_TYPE_RINGBUF, uapi.BPF_MAP_TYPE_USER_RINGBUF):
        spec.max_entries = ringbuf_size(spec.max_entries)
    if spec.values_offset >= 0:     # prog arrays and map-in-maps hold 4-byte fds / ids
        spec.key_size = spec.key_size or 4
        spec.value_size = spec.value_size or 4
    return spec


def _set_size(spec: MapSpec, which: str, size: int, name: str) -> None:
    attr = f"{which}_size"
    old = getattr(spec, attr)
    if old and old != size:
        raise ObjectError(f"map {name!r}: {attr}={old} conflicts with the {which} type's "
                          f"size {size}", section=".maps")
    setattr(spec, attr, size)


def _btf_number(btf: BTF, type_id: int, map_name: str, field_name: str) -> int:
    """__uint(name, N) is ``int (*name)[N]``; __ulong(name, N) is an enum with value N."""
    t = btf[btf.resolve(type_id)]
    if isinstance(t, T.Pointer):
        arr = btf[btf.resolve(t.type)]
        if isinstance(arr, T.Array):
            return arr.nelems
    if isinstance(t, T.Enum) and t.values:
        return t.values[0][1]
    raise ObjectError(f"map {map_name!r}: field {field_name!r} is "
                      f"{btf.type_name(type_id)}, expected __uint()/__ulong()",
                      section=".maps")


def _inner_map(btf: BTF, type_id: int, name: str) -> Optional[MapSpec]:
    """__array(values, struct inner) for map-in-map; None for prog arrays."""
    arr = btf[btf.resolve(type_id)]
    if not isinstance(arr, T.Array):
        raise ObjectError(f"map {name!r}: 'values' is not an array", section=".maps")
    ptr = btf[btf.resolve(arr.type)]
    if not isinstance(ptr, T.Pointer):
        raise ObjectError(f"map {name!r}: 'values' elements are not pointers", section=".maps")
    target = btf[btf.resolve(ptr.type)]
    if isinstance(target, T.FuncProto):
        return None
    return _map_from_btf(btf, f"{name}.inner", ptr.type, inner=True)


def _init_slots(elf: ElfObject, sec: Section, maps: List[MapSpec]) -> None:
    """Initial values of map-in-map / prog arrays: relocations inside .maps."""
    by_offset = sorted(maps, key=lambda m: m.btf_var_offset)
    starts = [m.btf_var_offset for m in by_offset]
    for rel in elf.relocs.get(sec.index, []):
        at = bisect.bisect_right(starts, rel.offset)
        owner = by_offset[at - 1] if at else None
        if owner is None or owner.values_offset < 0:
            raise ObjectError("relocation outside any map's 'values'", section=".rel.maps",
                              offset=rel.offset)
        index = (rel.offset - owner.btf_var_offset - owner.values_offset) // 8
        if index < 0 or index >= max(owner.max_entries, 1):
            raise ObjectError(f"map {owner.name!r}: initial value slot {index} out of range",
                              section=".rel.maps", offset=rel.offset)
        owner.init_slots[index] = rel.sym.name


def fixup_datasecs(elf: ElfObject, btf: BTF) -> None:
    """Fill DATASEC sizes and non-static variable offsets from the ELF, as libbpf does.

    clang leaves them to the loader in .o files; the kernel wants them exact and
    the variables sorted by offset."""
    offsets = {s.name: s.value for s in elf.symbols if s.type == STT_OBJECT}
    hidden = {s.name for s in elf.symbols if s.type == STT_OBJECT and s.bind != STB_LOCAL
              and s.visibility == STV_HIDDEN}
    for type_id in range(btf.start_id, len(btf)):
        t = btf[type_id]
        if not isinstance(t, T.Datasec):
            continue
        sec = elf.section(t.name)
        if sec is None:
            if t.name in (KCONFIG_SEC, KSYMS_SEC):
                continue        # .kconfig / .ksyms externs have no ELF section
            raise ObjectError(f"BTF DATASEC {t.name!r} has no ELF section", section=".BTF")
        t.size = sec.size
        for vsi in t.vars:
            var = btf[vsi.type]
            if not isinstance(var, T.Var):
                raise ObjectError(f"DATASEC {t.name!r} holds a {type(var).__name__}, not a "
                                  "variable", section=".BTF")
            if var.linkage != uapi.BTF_VAR_STATIC:
                if var.name not in offsets:
                    raise ObjectError(f"BTF variable {var.name!r} has no ELF symbol",
                                      section=t.name)
                vsi.offset = offsets[var.name]
                if var.name in hidden:      # __hidden: static to BTF, as in libbpf
                    var.linkage = uapi.BTF_VAR_STATIC
            if vsi.offset + vsi.size > sec.size:
                raise ObjectError(f"variable at {vsi.offset:#x}+{vsi.size} past the end "
                                  f"of {t.name}", section=".BTF")
        t.vars.sort(key=lambda v: v.offset)


# ------------------------------------------------------------------ global data

_DATA_PREFIXES = (".data", ".rodata", ".bss")


def is_data_section(sec: Section) -> bool:
    """.data, .rodata, .bss and their .data.NAME / .rodata.NAME variants."""
    if sec.type not in (SHT_PROGBITS, SHT_NOBITS) or sec.is_exec:
        return False
    return any(sec.name == p or sec.name.startswith(p + ".") for p in _DATA_PREFIXES)


def _data_maps(elf: ElfObject, btf: Optional[BTF], obj_name: str) -> List[MapSpec]:
    out = []
    for sec in elf.sections:
        if not is_data_section(sec) or not sec.size:
            continue
        check_value_size(sec.name, sec.size)
        readonly = sec.name.startswith(".rodata")
        flags = uapi.BPF_F_RDONLY_PROG if readonly else 0
        if readonly and sec.flags & SHF_WRITE:
            flags &= ~uapi.BPF_F_RDONLY_PROG
        datasec = _datasec(btf, sec.name) if btf is not None else None
        value_id = cast(BTF, btf).find(sec.name, uapi.BTF_KIND_DATASEC)[0] if datasec else 0
        if datasec_is_mmapable(btf, value_id):
            flags |= uapi.BPF_F_MMAPABLE
        out.append(MapSpec(sec.name, uapi.BPF_MAP_TYPE_ARRAY, 4, sec.size, 1, flags,
                           btf_value_type_id=value_id, section=sec,
                           initial=sec.data if sec.type != SHT_NOBITS else bytes(sec.size)))
    return out


def _kconfig_map(externs: Externs) -> List[MapSpec]:
    """libbpf's .kconfig map: read-only global data holding the __kconfig externs."""
    if not externs.kconfig_size:
        return []
    sec = externs.kconfig_section()
    check_value_size(sec.name, sec.size)
    return [MapSpec(sec.name, uapi.BPF_MAP_TYPE_ARRAY, 4, sec.size, 1,
                    uapi.BPF_F_MMAPABLE | uapi.BPF_F_RDONLY_PROG,
                    btf_value_type_id=externs.kconfig_btf_id, section=sec,
                    initial=bytes(sec.size))]


def kernel_map_name(obj_name: str, spec: MapSpec) -> str:
    """The name the kernel sees: libbpf's internal map name for global data
    (``biolaten.bss``, ``.rodata.str1.1``), the definition's name otherwise."""
    if not spec.is_global_data:
        return spec.name[:uapi.BPF_OBJ_NAME_LEN - 1]
    return internal_map_name(obj_name, spec.name)


def data_variables(btf: Optional[BTF], spec: MapSpec,
                   elf: ElfObject) -> Dict[str, Tuple[int, int, int]]:
    """name -> (offset, size, btf type id or 0) of the variables in a data section."""
    assert spec.section is not None
    return section_variables(btf, spec.section, elf)


def section_variables(btf: Optional[BTF], sec: Section,
                      elf: ElfObject) -> Dict[str, Tuple[int, int, int]]:
    """name -> (offset, size, btf type id or 0) of the variables of one section,
    from its DATASEC, else from the ELF symbols."""
    out: Dict[str, Tuple[int, int, int]] = {}
    datasec = _datasec(btf, sec.name) if btf is not None else None
    if datasec is not None:
        btf = cast(BTF, btf)     # the DATASEC is one of its types
        for n, vsi in enumerate(datasec.vars):
            var = btf[vsi.type]
            if not isinstance(var, T.Var):
                raise ObjectError(f"entry #{n} of DATASEC {sec.name!r} is "
                                  f"{btf.type_name(vsi.type)} (kind {var.kind}), not a "
                                  "variable", section=".BTF")
            out[var.name] = (vsi.offset, vsi.size, var.type)
        return out
    for sym in elf.symbols:
        if sym.shndx == sec.index and sym.type == STT_OBJECT:
            out[sym.name] = (sym.value, sym.size, 0)
    return out


def parse_object(source: Union[str, bytes, "os.PathLike[str]"], name: str = "") -> ObjectSpec:
    """ELF + BTF + BTF.ext -> ObjectSpec, no kernel calls."""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    elf = read_elf(source, name)
    btf_sec = elf.section(".BTF")
    if btf_sec is not None and btf_sec.size > BTF_MAX_SIZE:
        raise ObjectError(f".BTF is {btf_sec.size} bytes: the kernel loads at most "
                          f"{BTF_MAX_SIZE}", section=".BTF")
    btf = BTF.parse(btf_sec.data, validate=True) if btf_sec is not None else None
    ext_sec = elf.section(".BTF.ext")
    ext = BTFExt.parse(ext_sec.data, btf) if ext_sec is not None and btf is not None else None
    return ObjectSpec.parse(elf, btf, ext)
