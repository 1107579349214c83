"""Relocation and linking of program code (pure: map fds come in as numbers).

Per executable section, once: CO-RE relocations, then ELF relocations (map
references, global data, calls to subprograms).  Per program: its own code
followed by every subprogram it reaches, appended as libbpf does, with call
offsets, func_info and line_info rebased to the program's instruction slots.
"""
from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple, cast

from . import externs as externs_mod
from ..asm import insn as I
from .. import uapi
from ..btf import BTF, LineInfo
from .elf import R_BPF_64_32, R_BPF_64_64, SHN_UNDEF, Reloc
from ..errors import ObjectError
from .exception_cb import ExceptionTags, find_exception_callback
from ..record import Record
from .spec import ARENA_SEC, FuncSpec, MapSpec, ObjectSpec, ProgramSpec, is_data_section

if TYPE_CHECKING:
    from ..btf.core import Result

Slot = Tuple[int, int]      # (section index, instruction slot within it)


class LinkedProgram(Record):
    """A program's final code plus what maps each slot back to its source."""

    _fields = ("spec", "insns", "placed", "func_info", "line_info")
    __slots__ = _fields
    spec: ProgramSpec
    insns: bytearray
    placed: List[Tuple[FuncSpec, int]]              # (function, first slot in insns)
    func_info: List[Tuple[int, int]]                # (slot, type id)
    line_info: List[Tuple[int, LineInfo]]

    def __init__(self, spec: ProgramSpec, insns: bytearray,
                 placed: List[Tuple[FuncSpec, int]],
                 func_info: Optional[List[Tuple[int, int]]] = None,
                 line_info: Optional[List[Tuple[int, LineInfo]]] = None) -> None:
        self.spec = spec
        self.insns = insns
        self.placed = placed
        self.func_info = [] if func_info is None else func_info
        self.line_info = [] if line_info is None else line_info

    def origin(self, slot: int) -> Optional[Slot]:
        """The (section, slot) a loaded instruction came from."""
        for func, base in self.placed:
            if base <= slot < base + func.count:
                return func.shndx, func.start + slot - base
        return None

    def source_line(self, slot: int) -> Optional[LineInfo]:
        best = None
        for at, line in self.line_info:
            if at <= slot:
                best = line
            else:
                break
        return best


class Linker:
    """Holds the relocated code of every executable section of one object."""

    def __init__(self, spec: ObjectSpec, map_fds: Dict[str, int],
                 core_targets: Optional[Sequence[BTF]] = None,
                 externs: Optional[externs_mod.Resolution] = None,
                 not_loaded: Sequence[str] = ()):
        """``not_loaded``: programs load() skips (autoload off); as in libbpf, their
        own CO-RE relocations are not applied, so they cannot fail the load."""
        self.spec = spec
        self._not_loaded = [p.func for p in spec.programs if p.name in set(not_loaded)]
        self._externs = externs
        self.code: Dict[int, bytearray] = {}
        self.calls: Dict[int, Dict[int, Slot]] = {}     # shndx -> {slot: target}
        self.core_results: Dict[int, List[Result]] = {}
        self._maps_by_offset = {m.btf_var_offset: m for m in spec.maps if not m.is_global_data
                                and m.struct_ops is None}
        self._data_maps = {m.name: m for m in spec.maps if m.is_global_data}
        self._data_maps.update((ARENA_SEC, m) for m in spec.maps if m.arena is not None)
        self._fds = map_fds
        self._call_slots: Dict[int, List[int]] = {}     # shndx -> sorted slots of calls
        self._ext_index: Dict[str, Tuple[Dict[int, int], List[int], List[LineInfo]]] = {}
        self._exception_tags: Optional[ExceptionTags] = None
        shndx: Optional[int]
        execs = {sec.name: sec.index for sec in spec.elf.sections if sec.is_exec and sec.size}
        for shndx in execs.values():
            self._copy(shndx)
        if spec.ext is not None:
            # CO-RE first, over the sections in .BTF.ext order with one candidate
            # cache for the whole object, as libbpf's bpf_object__relocate_core;
            # relocations of programs not loaded are not applied (libbpf)
            from ..btf import core
            cands: core.Candidates = {}
            for name, relos in spec.ext.core_relos.items():
                shndx = execs.get(name)
                if shndx is None:
                    continue
                relos = [r for r in relos if not any(
                    f.shndx == shndx and f.start <= r.insn_off // I.INSN_SIZE < f.start + f.count
                    for f in self._not_loaded)]
                if relos:
                    self.core_results[shndx] = core.relocate(
                        self.code[shndx], relos, cast(BTF, spec.btf),   # .BTF.ext needs .BTF
                        core_targets, cands=cands)
        for shndx in execs.values():
            self._prepare(shndx)

    # -------------------------------------------------------------- per section

    def _copy(self, shndx: int) -> None:
        sec = self.spec.elf.sections[shndx]
        if sec.size % I.INSN_SIZE:
            raise ObjectError(f"size {sec.size} is not a multiple of 8", section=sec.name)
        self.code[shndx] = bytearray(sec.data)

    def _prepare(self, shndx: int) -> None:
        code = self.code[shndx]
        calls: Dict[int, Slot] = {}
        for rel in self.spec.elf.relocs.get(shndx, []):
            self._apply(code, shndx, rel, calls)
        for slot, ins in enumerate(I.iterate(code)):
            if slot not in calls and (I.is_subprog_call(ins) or (
                    ins.code == I.LD_IMM64 and ins.src == uapi.BPF_PSEUDO_FUNC)):
                calls[slot] = (shndx, slot + ins.imm + 1)
        self.calls[shndx] = calls
        self._call_slots[shndx] = sorted(calls)

    def _apply(self, code: bytearray, shndx: int, rel: Reloc, calls: Dict[int, Slot]) -> None:
        elf = self.spec.elf
        sec_name = elf.sections[shndx].name
        if rel.offset % I.INSN_SIZE:
            raise ObjectError("relocation not on an instruction boundary", section=sec_name,
                              offset=rel.offset)
        slot = rel.offset // I.INSN_SIZE
        ins = I.decode(code, slot)
        sym = rel.sym
        if sym.shndx == SHN_UNDEF:
            externs_mod.relocate(code, slot, rel, self.spec.externs, self._externs,
                                 self._fds.get(externs_mod.KCONFIG_SEC, -1), sec_name)
            return
        if not 0 < sym.shndx < len(elf.sections):
            raise ObjectError(f"relocation against symbol {sym.name!r} in special section "
                              f"{sym.shndx:#x}", section=sec_name, offset=rel.offset)
        target = elf.sections[sym.shndx]
        if ins.code == I.CALL and rel.type in (R_BPF_64_32, R_BPF_64_64):
            if ins.src != uapi.BPF_PSEUDO_CALL or not target.is_exec:
                raise ObjectError(f"call relocation against {sym.name!r} is not a "
                                  "bpf-to-bpf call", section=sec_name, offset=rel.offset)
            calls[slot] = (sym.shndx, sym.value // I.INSN_SIZE + ins.imm + 1)
            return
        if ins.code != I.LD_IMM64 or rel.type != R_BPF_64_64 or slot + 1 >= I.count(code):
            raise ObjectError(f"relocation of type {rel.type} against {sym.name!r} on "
                              f"instruction {ins.code:#04x}, expected ld_imm64",
                              section=sec_name, offset=rel.offset)
        if target.is_exec:                          # callback: &some_function
            I.set_src(code, slot, uapi.BPF_PSEUDO_FUNC)
            calls[slot] = (sym.shndx, (sym.value + ins.imm) // I.INSN_SIZE)
        elif target.name == ".maps":
            spec = self._maps_by_offset.get(sym.value + ins.imm)
            if spec is None:
                raise ObjectError(f"reference to {sym.name!r} matches no map in .maps",
                                  section=sec_name, offset=rel.offset)
            I.set_src(code, slot, uapi.BPF_PSEUDO_MAP_FD)
            I.set_imm(code, slot, self._fd(spec))
        elif is_data_section(target) or target.name == ARENA_SEC:
            spec = self._data_maps.get(target.name)
            if spec is None:
                raise ObjectError(f"reference to {sym.name!r} in {target.name!r}, which "
                                  "no map holds", section=sec_name, offset=rel.offset)
            I.set_src(code, slot, uapi.BPF_PSEUDO_MAP_VALUE)
            I.set_imm(code, slot + 1, sym.value + ins.imm)
            I.set_imm(code, slot, self._fd(spec))
        else:
            raise ObjectError(f"relocation against {sym.name!r} in section {target.name!r}, "
                              "which is neither code, .maps nor global data",
                              section=sec_name, offset=rel.offset)

    def _fd(self, spec: MapSpec) -> int:
        return self._fds.get(spec.name, -1)

    # -------------------------------------------------------------- per program

    def link(self, prog: ProgramSpec) -> LinkedProgram:
        out = bytearray()
        placed: List[Tuple[FuncSpec, int]] = []
        where: Dict[Tuple[int, int], int] = {}

        def place(func: FuncSpec) -> int:
            base = len(out) // I.INSN_SIZE
            code = self.code[func.shndx]
            out.extend(code[func.start * I.INSN_SIZE:(func.start + func.count) * I.INSN_SIZE])
            placed.append((func, base))
            where[(func.shndx, func.start)] = base
            return base

        # nothing calls the exception callback: it is appended last, as libbpf does
        # (checked only for the programs being loaded, as in libbpf)
        if self._exception_tags is None:
            self._exception_tags = ExceptionTags.of(self.spec.btf)
        cb = find_exception_callback(self.spec.elf, self._exception_tags,
                                     self.spec.functions, prog.name, prog.section)
        place(prog.func)
        i = 0
        while i < len(placed) or cb is not None:
            if i == len(placed):        # every call placed: then the callback
                if (cast(FuncSpec, cb).shndx, cast(FuncSpec, cb).start) not in where:
                    place(cast(FuncSpec, cb))
                cb = None
                continue
            func, base = placed[i]
            i += 1
            calls, slots = self.calls.get(func.shndx, {}), self._call_slots.get(func.shndx, [])
            first = bisect.bisect_left(slots, func.start)
            last = bisect.bisect_left(slots, func.start + func.count)
            for slot in slots[first:last]:          # the calls made by this function
                tsh, tslot = calls[slot]
                callee = self.spec.function_at(tsh, tslot)
                cbase = where.get((callee.shndx, callee.start))
                if cbase is None:
                    cbase = place(callee)
                at = base + slot - func.start
                I.set_imm(out, at, cbase + tslot - callee.start - at - 1)
        linked = LinkedProgram(prog, out, placed)
        self._rebase_ext(linked)
        return linked

    def _rebase_ext(self, linked: LinkedProgram) -> None:
        """func_info / line_info of every placed function, in loaded slots.

        The kernel wants one func_info per function and a line_info at each
        function start; if the object lacks either, none is passed."""
        ext = self.spec.ext
        if ext is None:
            return
        funcs: List[Tuple[int, int]] = []
        lines: List[Tuple[int, LineInfo]] = []
        funcs_complete = lines_complete = True
        for func, base in linked.placed:
            name = self.spec.elf.sections[func.shndx].name
            start, end = func.start * I.INSN_SIZE, (func.start + func.count) * I.INSN_SIZE
            func_types, line_offs, line_recs = self._ext_of(name)
            type_id = func_types.get(start)
            if type_id is not None:
                funcs.append((base, type_id))
            funcs_complete = funcs_complete and type_id is not None
            li = line_recs[bisect.bisect_left(line_offs, start):
                           bisect.bisect_left(line_offs, end)]
            if li and li[0].insn_off == start:
                lines.extend((base + (ln.insn_off - start) // I.INSN_SIZE, ln) for ln in li)
            else:
                lines_complete = False
        linked.func_info = sorted(funcs) if funcs_complete else []
        linked.line_info = sorted(lines, key=lambda x: x[0]) if lines_complete else []

    def _ext_of(self, section: str) -> Tuple[Dict[int, int], List[int], List[LineInfo]]:
        """func_info of a section by instruction offset (the first record of each),
        and its line_info sorted by offset (with the offsets, for bisecting)."""
        found = self._ext_index.get(section)
        if found is None:
            ext = self.spec.ext
            funcs: Dict[int, int] = {}
            for rec in ext.func_info.get(section, []) if ext else []:
                funcs.setdefault(rec.insn_off, rec.type_id)
            lines = sorted(ext.line_info.get(section, []) if ext else [],
                           key=lambda ln: ln.insn_off)
            found = self._ext_index[section] = (funcs, [ln.insn_off for ln in lines], lines)
        return found
