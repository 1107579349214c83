"""pybpf.obj.relocate on synthetic objects: call offsets, callbacks, map and global
data references, every refusal with its section and offset, and func_info /
line_info rebased per program (on the built loader_subprogs.bpf.o)."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import pytest

from pybpf import uapi
from pybpf.asm import insn as I
from pybpf.btf.ext import BTFExt, FuncInfo, LineInfo
from pybpf.errors import ObjectError
from pybpf.obj import elf as elf_mod
from pybpf.obj.relocate import LinkedProgram, Linker
from pybpf.obj.spec import FuncSpec, parse_object

from conftest import built
from test_elf_mutants import (SHF_ALLOC, SHF_EXEC, SHF_WRITE, SHT_PROGBITS, SHT_REL,
                              SHT_STRTAB, SHT_SYMTAB, Obj, Sec, rel, strtab, sym)

LD, CALL, EXIT, MOV = 0x18, 0x85, 0x95, 0xB7
GLOBAL_FUNC, LOCAL_FUNC, GLOBAL_OBJ, SECTION = 0x12, 0x02, 0x11, 0x03
PROG, TEXT, DATA, FOO, RODATA = 1, 2, 3, 4, 5      # section indices of code_object()


def ins(code: int, src: int = 0, imm: int = 0, dst: int = 0, off: int = 0) -> bytes:
    return I.Insn(code, dst, src, off, imm).encode()


def ld(src: int = 0, imm: int = 0, hi: int = 0) -> bytes:
    return ins(LD, src, imm, dst=1) + ins(0, imm=hi)


def code_object(prog: bytes, text: bytes = b"", syms: Sequence[Tuple] = (),
                prog_rels: Sequence[Tuple[int, int, int]] = (),
                text_rels: Sequence[Tuple[int, int, int]] = (), sec: str = "xdp",
                prog_size: int = 0) -> bytes:
    """Sections: 1 ``sec``, 2 .text, 3 .data, 4 .foo, 5 .rodata, 6 .strtab,
    7 .symtab, 8 .rel``sec``, 9 .rel.text.  Symbol 1 is ``prog`` (the whole of
    ``sec``), then ``syms`` as (name, info, shndx, value, size) from index 2."""
    all_syms = [("prog", GLOBAL_FUNC, PROG, 0, prog_size or len(prog))] + list(syms)
    strs, offs = strtab(*[s[0] for s in all_syms])
    table = sym(0) + b"".join(sym(o if s[0] else 0, s[1], 0, s[2], s[3], s[4])
                              for o, s in zip(offs, all_syms))
    sections = [Sec(sec, SHT_PROGBITS, SHF_ALLOC | SHF_EXEC, prog),
                Sec(".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXEC, text),
                Sec(".data", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, bytes(range(32))),
                Sec(".foo", SHT_PROGBITS, SHF_ALLOC, bytes(16)),
                Sec(".rodata", SHT_PROGBITS, SHF_ALLOC, bytes(range(100, 116))),
                Sec(".strtab", SHT_STRTAB, data=strs, align=1),
                Sec(".symtab", SHT_SYMTAB, data=table, link=6, info=1, entsize=24),
                Sec(".rel" + sec, SHT_REL, data=b"".join(rel(*r) for r in prog_rels),
                    link=7, info=PROG, entsize=16),
                Sec(".rel.text", SHT_REL, data=b"".join(rel(*r) for r in text_rels),
                    link=7, info=TEXT, entsize=16)]
    return Obj(sections).build()


def decoded(code: bytes) -> List[Tuple[int, int, int]]:
    return [(i.code, i.src, i.imm) for i in I.iterate(code)]


def linked(raw: bytes, fds=None, **kw) -> Tuple[Linker, LinkedProgram]:
    spec = parse_object(raw)
    linker = Linker(spec, {".data": 41, ".rodata": 42} if fds is None else fds, **kw)
    return linker, linker.link(spec.programs[0])


def fault(raw: bytes, fds=None) -> ObjectError:
    with pytest.raises(ObjectError) as info:
        linked(raw, fds)
    return info.value


# ---------------------------------------------------------------- calls and callbacks

# .text: f2 (slots 0-1), f1 (2-3: calls f2 by its imm only), cb (4-5)
TEXT_CODE = ins(MOV, imm=7) + ins(EXIT) + ins(CALL, 1, -3) + ins(EXIT) + ins(MOV, imm=9) \
    + ins(EXIT)
TEXT_SYMS = [("f2", LOCAL_FUNC, TEXT, 0, 16), ("f1", LOCAL_FUNC, TEXT, 16, 16),
             ("cb", LOCAL_FUNC, TEXT, 32, 16), ("", SECTION, TEXT, 0, 0)]   # symbols 2-5


def test_calls_and_callback_placed_and_rebased():
    # prog: call f1 (R_BPF_64_32, imm -1), r1 = &cb (.text section symbol + 32), exit
    prog = ins(CALL, 1, -1) + ld(imm=32) + ins(EXIT)
    raw = code_object(prog, TEXT_CODE, TEXT_SYMS, [(0, 3, 10), (8, 5, 1)])
    linker, lp = linked(raw)
    assert linker.calls[PROG] == {0: (TEXT, 2), 1: (TEXT, 4)}
    assert linker.calls[TEXT] == {2: (TEXT, 0)}
    assert [(f.name, base) for f, base in lp.placed] == [("prog", 0), ("f1", 4), ("cb", 6),
                                                          ("f2", 8)]
    assert decoded(lp.insns) == [(CALL, 1, 3), (LD, uapi.BPF_PSEUDO_FUNC, 4), (0, 0, 0),
                                 (EXIT, 0, 0), (CALL, 1, 3), (EXIT, 0, 0), (MOV, 0, 9),
                                 (EXIT, 0, 0), (MOV, 0, 7), (EXIT, 0, 0)]
    assert [lp.origin(s) for s in range(11)] == [
        (PROG, 0), (PROG, 1), (PROG, 2), (PROG, 3), (TEXT, 2), (TEXT, 3), (TEXT, 4),
        (TEXT, 5), (TEXT, 0), (TEXT, 1), None]
    assert lp.func_info == [] and lp.line_info == []
    # the section's code is relocated once and kept: a second link gives the same
    assert linker.link(linker.spec.programs[0]).insns == lp.insns


def test_call_relocation_of_both_types_and_of_the_symbol_value():
    for rtype in (elf_mod.R_BPF_64_32, elf_mod.R_BPF_64_64):
        prog = ins(CALL, 1, -1) + ins(EXIT)
        _, lp = linked(code_object(prog, TEXT_CODE, TEXT_SYMS, [(0, 4, rtype)]))   # cb
        assert [(f.name, b) for f, b in lp.placed] == [("prog", 0), ("cb", 2)]
        assert decoded(lp.insns)[0] == (CALL, 1, 1)
    # against the section symbol: imm carries the slot (value 0 + imm 3 + 1 = 4)
    prog = ins(CALL, 1, 3) + ins(EXIT)
    _, lp = linked(code_object(prog, TEXT_CODE, TEXT_SYMS, [(0, 5, 10)]))
    assert [(f.name, b) for f, b in lp.placed] == [("prog", 0), ("cb", 2)]


def test_call_into_the_middle_of_a_function():
    """A call target inside a function: that function is placed, the offset kept."""
    prog = ins(CALL, 1, -1) + ins(EXIT)
    text = ins(MOV, imm=1) + ins(MOV, imm=2) + ins(MOV, imm=3) + ins(EXIT)
    syms = [("g", LOCAL_FUNC, TEXT, 0, 32), ("", SECTION, TEXT, 0, 0)]
    _, lp = linked(code_object(prog, text, syms, [(0, 2, 10)]))
    assert [(f.name, b) for f, b in lp.placed] == [("prog", 0), ("g", 2)]
    assert decoded(lp.insns)[0] == (CALL, 1, 1)
    # against the section symbol with imm 1: slot 2, inside g
    prog = ins(CALL, 1, 1) + ins(EXIT)
    _, lp = linked(code_object(prog, text, syms, [(0, 3, 10)]))
    assert [(f.name, b) for f, b in lp.placed] == [("prog", 0), ("g", 2)]
    assert decoded(lp.insns)[0] == (CALL, 1, 3)         # 2 + 2 - 0 - 0 - 1


def test_calls_in_the_program_section_without_relocation():
    """Static subprograms in the program's own section, called by imm only, and a
    callback by imm (ld_imm64 src=BPF_PSEUDO_FUNC) too; shared callees placed once."""
    prog = (ins(CALL, 1, 4) + ld(uapi.BPF_PSEUDO_FUNC, 4) + ins(CALL, 1, 2) + ins(EXIT)
            + ins(MOV, imm=5) + ins(EXIT) + ins(CALL, 1, -3) + ins(EXIT))
    # prog = slots 0-4; s1 = slots 5-6; s2 = slots 7-8 (calls s1)
    syms = [("s1", GLOBAL_FUNC, PROG, 40, 16), ("s2", GLOBAL_FUNC, PROG, 56, 16)]
    linker, lp = linked(code_object(prog, b"", syms, prog_size=40))
    assert linker.calls[PROG] == {0: (PROG, 5), 1: (PROG, 6), 3: (PROG, 6), 7: (PROG, 5)}
    spec = linker.spec
    assert spec.function_at(PROG, 6).name == "s1"
    # the calls at 0 (-> 5: s1 start) and 1, 3 (-> 6: inside s1)
    assert [(f.name, b) for f, b in lp.placed] == [("prog", 0), ("s1", 5)]
    assert decoded(lp.insns) == [(CALL, 1, 4), (LD, 4, 4), (0, 0, 0), (CALL, 1, 2),
                                 (EXIT, 0, 0), (MOV, 0, 5), (EXIT, 0, 0)]


def test_subprogram_placed_after_what_reaches_it_in_order():
    """Breadth first, as libbpf: a callee of a callee comes after the first callees,
    and a shared one only once; the call offsets point at the copies."""
    prog = ins(CALL, 1, -1) + ins(CALL, 1, -1) + ins(EXIT)
    text = (ins(CALL, 1, 2) + ins(EXIT)          # a (0-1): calls slot 0+2+1 = 3, in b
            + ins(MOV, imm=2) + ins(EXIT)        # b (2-3)
            + ins(MOV, imm=3) + ins(EXIT))       # c (4-5)
    syms = [("a", LOCAL_FUNC, TEXT, 0, 16), ("b", LOCAL_FUNC, TEXT, 16, 16),
            ("c", LOCAL_FUNC, TEXT, 32, 16)]
    _, lp = linked(code_object(prog, text, syms, [(0, 2, 10), (8, 4, 10)]))
    assert [(f.name, b) for f, b in lp.placed] == [("prog", 0), ("a", 3), ("c", 5),
                                                   ("b", 7)]
    assert decoded(lp.insns) == [(CALL, 1, 2), (CALL, 1, 3), (EXIT, 0, 0),
                                 (CALL, 1, 4), (EXIT, 0, 0),       # 7 + 1 - 3 - 1
                                 (MOV, 0, 3), (EXIT, 0, 0), (MOV, 0, 2), (EXIT, 0, 0)]


# ---------------------------------------------------------------- global data

def test_global_data_references():
    data_syms = [("var", GLOBAL_OBJ, DATA, 8, 8), ("ro", GLOBAL_OBJ, RODATA, 4, 4),
                 ("", SECTION, DATA, 0, 0)]
    prog = ld(imm=3) + ld(imm=0) + ld(imm=5) + ins(MOV) + ins(EXIT)
    raw = code_object(prog, b"", data_syms, [(0, 2, 1), (16, 3, 1), (32, 4, 1)])
    _, lp = linked(raw)
    V = uapi.BPF_PSEUDO_MAP_VALUE
    assert decoded(lp.insns) == [(LD, V, 41), (0, 0, 11), (LD, V, 42), (0, 0, 4),
                                 (LD, V, 41), (0, 0, 5), (MOV, 0, 0), (EXIT, 0, 0)]
    # a map without an fd (not created): -1, as libbpf's placeholder
    _, lp = linked(raw, {".rodata": 42})
    assert decoded(lp.insns)[0] == (LD, V, -1)
    assert decoded(lp.insns)[2] == (LD, V, 42)


def test_global_data_that_no_map_holds():
    raw = code_object(ld(imm=0) + ins(EXIT), b"", [("var", GLOBAL_OBJ, DATA, 8, 8)],
                      [(0, 2, 1)])
    spec = parse_object(raw)
    spec.maps = [m for m in spec.maps if m.name != ".data"]
    with pytest.raises(ObjectError) as info:
        Linker(spec, {})
    assert (str(info.value), info.value.section, info.value.offset) == (
        "reference to 'var' in '.data', which no map holds (section xdp, offset 0x0)",
        "xdp", 0)


# ---------------------------------------------------------------- refusals

def test_odd_sized_code_section():
    raw = code_object(ins(MOV) + ins(EXIT) + bytes(4), prog_size=16)
    e = fault(raw)
    assert (str(e), e.section) == ("size 20 is not a multiple of 8 (section xdp)", "xdp")
    raw = code_object(ins(MOV) + ins(EXIT), ins(MOV) + ins(EXIT) + bytes(7),
                      [("t", LOCAL_FUNC, TEXT, 0, 16)])
    e = fault(raw)
    assert (str(e), e.section) == ("size 23 is not a multiple of 8 (section .text)", ".text")


@pytest.mark.parametrize("offset", [4, 9, 15])
def test_misaligned_relocation(offset):
    raw = code_object(ld() + ins(EXIT), b"", [("var", GLOBAL_OBJ, DATA, 0, 8)],
                      [(0, 2, 1), (offset, 2, 1)])
    e = fault(raw)
    assert (str(e), e.section, e.offset) == (
        f"relocation not on an instruction boundary (section xdp, offset {offset:#x})",
        "xdp", offset)


def test_relocation_against_a_special_section():
    for shndx in (elf_mod.SHN_ABS, elf_mod.SHN_COMMON):
        raw = code_object(ld() + ins(EXIT), b"", [("abs", GLOBAL_OBJ, shndx, 0, 8)],
                          [(0, 2, 1)])
        e = fault(raw)
        assert (str(e), e.offset) == (f"relocation against symbol 'abs' in special section "
                                      f"{shndx:#x} (section xdp, offset 0x0)", 0)


def test_call_relocations_that_are_not_bpf_to_bpf():
    syms = TEXT_SYMS + [("var", GLOBAL_OBJ, DATA, 0, 8)]         # var is symbol 6
    for prog, target in ((ins(CALL, 0, -1) + ins(EXIT), 3),     # a helper call
                         (ins(CALL, 2, -1) + ins(EXIT), 3),     # a kfunc call
                         (ins(MOV) + ins(CALL, 1, -1) + ins(EXIT), 6)):   # into .data
        at = 8 if prog[:1] == bytes([MOV]) else 0
        raw = code_object(prog, TEXT_CODE, syms, [(at, target, 10)])
        e = fault(raw)
        name = "var" if target == 6 else "f1"
        assert (str(e), e.section, e.offset) == (
            f"call relocation against {name!r} is not a bpf-to-bpf call "
            f"(section xdp, offset {at:#x})", "xdp", at)


def test_relocation_on_the_wrong_instruction():
    syms = [("var", GLOBAL_OBJ, DATA, 0, 8)] + TEXT_SYMS       # var = 2, f1 = 4
    cases = [
        (ins(MOV) + ins(EXIT), (0, 2, 1), MOV),                # not an ld_imm64
        (ld() + ins(EXIT), (0, 2, 10), LD),                    # ld_imm64 of type 10
        (ld() + ins(EXIT), (0, 2, 2), LD),                     # an unknown type
        (ins(CALL, 1, -1) + ins(EXIT), (0, 4, 3), CALL),       # a call of type 3
        (ins(MOV) + ins(EXIT) + ins(LD, imm=0), (16, 2, 1), LD),   # ld_imm64 cut short
    ]
    for prog, r, code in cases:
        raw = code_object(prog, TEXT_CODE, syms, [r])
        e = fault(raw)
        name = "f1" if r[1] == 4 else "var"
        assert (str(e), e.section, e.offset) == (
            f"relocation of type {r[2]} against {name!r} on instruction {code:#04x}, "
            f"expected ld_imm64 (section xdp, offset {r[0]:#x})", "xdp", r[0])
    # the last two slots are a whole ld_imm64: fine
    raw = code_object(ins(EXIT) + ld(imm=2), b"", [("var", GLOBAL_OBJ, DATA, 8, 8)],
                      [(8, 2, 1)])
    _, lp = linked(raw)
    assert decoded(lp.insns)[1:] == [(LD, uapi.BPF_PSEUDO_MAP_VALUE, 41), (0, 0, 10)]


def test_relocation_against_another_section():
    raw = code_object(ld() + ins(EXIT), b"", [("foo", GLOBAL_OBJ, FOO, 0, 8)], [(0, 2, 1)])
    e = fault(raw)
    assert (str(e), e.offset) == (
        "relocation against 'foo' in section '.foo', which is neither code, .maps nor "
        "global data (section xdp, offset 0x0)", 0)


# ---------------------------------------------------------------- .maps (real objects)

def _exec_reloc():
    spec = parse_object(str(built("exec.bpf.o")))
    prog = spec.programs[0]
    rels = spec.elf.relocs[prog.func.shndx]
    maps_idx = spec.elf.section(".maps").index
    i, r = next((i, r) for i, r in enumerate(rels) if r.sym.shndx == maps_idx)
    return spec, prog, rels, i, r


def test_map_reference_by_symbol_value_plus_imm():
    spec, prog, rels, i, r = _exec_reloc()
    fds = {m.name: 50 + n for n, m in enumerate(spec.maps)}
    slot = r.offset // 8
    lp = Linker(spec, fds).link(prog)
    rb = next(m for m in spec.maps if m.name == "rb")
    assert r.sym.value == rb.btf_var_offset
    assert decoded(lp.insns)[slot] == (LD, uapi.BPF_PSEUDO_MAP_FD, fds["rb"])
    # the same map reached through a symbol before it plus an imm
    code = spec.elf.sections[prog.func.shndx]
    moved = r.sym.replace(value=r.sym.value - 8)
    rels[i] = elf_mod.Reloc(r.offset, moved, r.type)
    data = bytearray(code.data)
    I.set_imm(data, slot, 8)
    spec.elf.sections[prog.func.shndx] = code.replace(data=bytes(data))
    lp = Linker(spec, fds).link(prog)
    assert decoded(lp.insns)[slot] == (LD, uapi.BPF_PSEUDO_MAP_FD, fds["rb"])
    # no fd handed in: -1
    lp = Linker(spec, {}).link(prog)
    assert decoded(lp.insns)[slot] == (LD, uapi.BPF_PSEUDO_MAP_FD, -1)


def test_map_reference_matching_no_map():
    spec, prog, rels, i, r = _exec_reloc()
    rels[i] = elf_mod.Reloc(r.offset, r.sym.replace(value=r.sym.value + 1), r.type)
    with pytest.raises(ObjectError) as info:
        Linker(spec, {})
    assert (str(info.value), info.value.section, info.value.offset) == (
        f"reference to 'rb' matches no map in .maps (section {prog.section}, offset "
        f"{r.offset:#x})", prog.section, r.offset)


# ---------------------------------------------------------------- LinkedProgram


def _line(off: int, n: int) -> LineInfo:
    return LineInfo(off, "f.c", f"line {n}", n, 1)


def test_origin_and_source_line():
    a, b = FuncSpec("a", 3, 10, 4, True), FuncSpec("b", 5, 2, 3, False)
    lp = LinkedProgram(None, bytearray(), [(a, 0), (b, 4)],       # type: ignore[arg-type]
                       line_info=[(0, _line(0, 1)), (2, _line(16, 2)), (4, _line(0, 9))])
    assert [lp.origin(s) for s in range(8)] == [(3, 10), (3, 11), (3, 12), (3, 13), (5, 2),
                                                (5, 3), (5, 4), None]
    assert [lp.source_line(s).line_num for s in range(7)] == [1, 1, 2, 2, 9, 9, 9]
    lp = LinkedProgram(None, bytearray(), [(a, 0)],                # type: ignore[arg-type]
                       line_info=[(2, _line(16, 2))])
    assert lp.source_line(1) is None and lp.source_line(2).line_num == 2
    assert LinkedProgram(None, bytearray(), []).source_line(0) is None  # type: ignore


# ---------------------------------------------------------------- func_info / line_info

def _subprogs():
    spec = parse_object(str(built("loader_subprogs.bpf.o")))
    return spec, next(p for p in spec.programs if p.name == "on_getppid")


def _expected_ext(spec, lp):
    funcs, lines = [], []
    for func, base in lp.placed:
        name = spec.elf.sections[func.shndx].name
        start, end = func.start * 8, (func.start + func.count) * 8
        funcs += [(base, r.type_id) for r in spec.ext.func_info[name] if r.insn_off == start]
        lines += [(base + (ln.insn_off - start) // 8, ln)
                  for ln in spec.ext.line_info[name] if start <= ln.insn_off < end]
    return sorted(funcs), sorted(lines, key=lambda x: x[0])


def test_func_and_line_info_rebased():
    spec, prog = _subprogs()
    lp = Linker(spec, {}).link(prog)
    names = [f.name for f, _ in lp.placed]
    assert names[0] == "on_getppid" and {"twice", "scaled", "add_index"} <= set(names)
    funcs, lines = _expected_ext(spec, lp)
    assert lp.func_info == funcs and len(funcs) == len(lp.placed)
    assert lp.line_info == lines
    assert [s for s, _ in lp.func_info] == sorted(b for _, b in lp.placed)
    starts = {b for _, b in lp.placed}
    assert starts <= {s for s, _ in lp.line_info}
    # every line of every placed function, not one more
    assert len(lines) == sum(
        sum(1 for ln in spec.ext.line_info[spec.elf.sections[f.shndx].name]
            if f.start * 8 <= ln.insn_off < (f.start + f.count) * 8) for f, _ in lp.placed)


def _with_ext(spec, func_info=None, line_info=None):
    spec.ext = BTFExt(func_info if func_info is not None else spec.ext.func_info,
                      line_info if line_info is not None else spec.ext.line_info,
                      spec.ext.core_relos, spec.ext.func_info_rec_size,
                      spec.ext.line_info_rec_size, spec.ext.core_relo_rec_size)


def test_func_info_missing_for_one_function_drops_all_func_info():
    spec, prog = _subprogs()
    lp0 = Linker(spec, {}).link(prog)
    twice = next(f for f, _ in lp0.placed if f.name == "twice")
    fi = {k: [r for r in v if not (k == ".text" and r.insn_off == twice.start * 8)]
          for k, v in spec.ext.func_info.items()}
    _with_ext(spec, func_info=fi)
    lp = Linker(spec, {}).link(prog)
    assert lp.func_info == [] and lp.line_info == lp0.line_info and lp.line_info


def test_first_func_info_record_of_an_offset_wins_and_unsorted_lines_sorted():
    spec, prog = _subprogs()
    lp0 = Linker(spec, {}).link(prog)
    fi = {k: v + [FuncInfo(r.insn_off, 999) for r in v] for k, v in spec.ext.func_info.items()}
    li = {k: list(reversed(v)) for k, v in spec.ext.line_info.items()}
    _with_ext(spec, func_info=fi, line_info=li)
    lp = Linker(spec, {}).link(prog)
    assert lp.func_info == lp0.func_info
    assert [s for s, _ in lp.line_info] == [s for s, _ in lp0.line_info]
    assert sorted(lp.line_info, key=lambda x: (x[0], x[1].insn_off)) == \
        sorted(lp0.line_info, key=lambda x: (x[0], x[1].insn_off))


def test_line_info_missing_at_a_function_start_drops_all_line_info():
    spec, prog = _subprogs()
    lp0 = Linker(spec, {}).link(prog)
    twice = next(f for f, _ in lp0.placed if f.name == "twice")
    li = {k: [r for r in v if not (k == ".text" and r.insn_off == twice.start * 8)]
          for k, v in spec.ext.line_info.items()}
    _with_ext(spec, line_info=li)
    lp = Linker(spec, {}).link(prog)
    assert lp.line_info == [] and lp.func_info == lp0.func_info and lp.func_info
    # no line_info at all for the section of a placed function: likewise
    _with_ext(spec, line_info={k: v for k, v in li.items() if k != ".text"})
    assert Linker(spec, {}).link(prog).line_info == []


def test_no_ext_sections_at_all():
    spec, prog = _subprogs()
    _with_ext(spec, func_info={}, line_info={})
    lp = Linker(spec, {}).link(prog)
    assert lp.func_info == [] and lp.line_info == [] and len(lp.placed) > 1
    spec.ext = None
    lp = Linker(spec, {}).link(prog)
    assert lp.func_info == [] and lp.line_info == [] and len(lp.placed) > 1


# ---------------------------------------------------------------- more places

def test_call_relocation_against_a_function_of_section_one():
    """Section index 1 is a valid target (0 < shndx)."""
    prog = ins(CALL, 1, -1) + ins(EXIT) + ins(MOV, imm=4) + ins(EXIT)
    syms = [("other", GLOBAL_FUNC, PROG, 16, 16)]
    raw = code_object(prog, b"", syms, [(0, 2, 10)], prog_size=16)
    _, lp = linked(raw)
    assert [(f.name, b) for f, b in lp.placed] == [("prog", 0), ("other", 2)]
    assert decoded(lp.insns) == [(CALL, 1, 1), (EXIT, 0, 0), (MOV, 0, 4), (EXIT, 0, 0)]


def test_special_section_symbol_refused_with_that_many_sections():
    """A symbol in SHN_ABS is refused even when the object has 0xfff1 sections or more."""
    raw = code_object(ld() + ins(EXIT), b"", [("abs", GLOBAL_OBJ, elf_mod.SHN_ABS, 0, 8)],
                      [(0, 2, 1)])
    spec = parse_object(raw)
    sections = spec.elf.sections
    sections += [elf_mod.Section(i, f".pad{i}", 0, 0, 0, 1, b"")
                 for i in range(len(sections), elf_mod.SHN_ABS)]
    assert len(spec.elf.sections) == elf_mod.SHN_ABS
    with pytest.raises(ObjectError, match="in special section 0xfff1"):
        Linker(spec, {})


def test_arena_references():
    spec = parse_object(str(built("loader_arena.bpf.o")))
    prog = spec.programs[0]
    shndx = prog.func.shndx
    arena = spec.elf.section(".addr_space.1").index
    fds = {"arena": 61, ".bss": 62}
    code = Linker(spec, fds, externs=_kfuncs("bpf_arena_alloc_pages")).code[shndx]
    refs = [r for r in spec.elf.relocs[shndx] if r.sym.shndx == arena]
    assert refs
    raw_code = spec.elf.sections[shndx].data
    for r in refs:
        slot = r.offset // 8
        imm = I.decode(raw_code, slot).imm
        assert I.decode(code, slot).src == uapi.BPF_PSEUDO_MAP_VALUE
        assert (I.decode(code, slot).imm, I.decode(code, slot + 1).imm) == \
            (61, r.sym.value + imm)
    spec.maps = [m for m in spec.maps if m.arena is None]
    with pytest.raises(ObjectError, match="in '.addr_space.1', which no map holds"):
        Linker(spec, fds, externs=_kfuncs("bpf_arena_alloc_pages"))


def test_kconfig_reference_without_a_map_fd():
    from pybpf.obj import externs
    spec = parse_object(str(built("extern_kconfig.bpf.o")))
    prog = spec.programs[0]
    kc = [r for r in spec.elf.relocs[prog.func.shndx] if r.sym.shndx == 0
          and r.sym.name == "LINUX_KERNEL_VERSION"]
    assert kc
    res = externs.Resolution(kconfig=bytes(4096))
    slot = kc[0].offset // 8
    with_fd = Linker(spec, {".kconfig": 77, ".bss": 3}, externs=res).code[prog.func.shndx]
    without = Linker(spec, {".bss": 3}, externs=res).code[prog.func.shndx]
    assert I.decode(with_fd, slot).imm == 77
    assert I.decode(without, slot).imm == -1


def _kfuncs(*names: str):
    from pybpf.obj import externs
    return externs.Resolution(ksyms={n: externs.KsymTarget(btf_id=100 + i)
                                     for i, n in enumerate(names)})


def _exceptions():
    spec = parse_object(str(built("loader_exceptions.bpf.o")))
    return spec, {p.name: p for p in spec.programs}


def test_exception_callback_appended_last_once():
    spec, progs = _exceptions()
    linker = Linker(spec, {}, externs=_kfuncs("bpf_throw"))
    lp = linker.link(progs["throw_long"])
    assert [f.name for f, _ in lp.placed] == ["throw_long", "check_len", "catch_all"]
    assert len(lp.func_info) == 3
    assert [f.name for f, _ in linker.link(progs["throw_plain"]).placed] == ["throw_plain"]
    # again: the tags are read once and the same result comes out
    assert [f.name for f, _ in linker.link(progs["throw_long"]).placed] == \
        ["throw_long", "check_len", "catch_all"]


def test_exception_callback_that_is_also_called():
    """throw_long calling catch_all itself: placed once, where the call put it."""
    spec, progs = _exceptions()
    prog = progs["throw_long"]
    shndx = prog.func.shndx
    rels = spec.elf.relocs[shndx]
    i, r = next((i, r) for i, r in enumerate(rels) if r.offset == 0)
    catch = next(s for s in spec.elf.symbols if s.name == "catch_all")
    rels[i] = elf_mod.Reloc(0, catch, r.type)
    code = bytearray(spec.elf.sections[shndx].data)
    I.set_imm(code, 0, -1)
    spec.elf.sections[shndx] = spec.elf.sections[shndx].replace(data=bytes(code))
    lp = Linker(spec, {}, externs=_kfuncs("bpf_throw")).link(prog)
    assert [f.name for f, _ in lp.placed] == ["throw_long", "catch_all"]


# ---------------------------------------------------------------- CO-RE per section

def test_core_relocations_of_programs_not_loaded_left_out(monkeypatch):
    from pybpf.btf import core
    from pybpf.btf.ext import CoreRelo
    calls = []

    def spy(code, relos, local, targets=None, **kw):
        calls.append((bytes(code[:8]), [r.insn_off for r in relos], kw["cands"]))
        return [f"result {len(calls)}"]

    monkeypatch.setattr(core, "relocate", spy)
    # xdp: prog (0-1), other (2-3); .text: f (0-1)
    prog = ins(MOV, imm=1) + ins(EXIT) + ins(MOV, imm=2) + ins(EXIT)
    raw = code_object(prog, ins(MOV, imm=3) + ins(EXIT),
                      [("other", GLOBAL_FUNC, PROG, 16, 16), ("f", LOCAL_FUNC, TEXT, 0, 16)],
                      prog_size=16)
    spec = parse_object(raw)
    relo = lambda off: CoreRelo(off, 1, "0", 0)   # noqa: E731
    spec.ext = BTFExt(core_relos={"xdp": [relo(o) for o in (0, 8, 16, 24)],
                                  ".text": [relo(0), relo(8)],
                                  "nosuch": [relo(0)]})
    linker = Linker(spec, {}, not_loaded=["prog"])
    assert [(c[0][4], c[1]) for c in calls] == [(1, [16, 24]), (3, [0, 8])]
    assert calls[0][2] is calls[1][2] and calls[0][2] == {}
    assert linker.core_results == {PROG: ["result 1"], TEXT: ["result 2"]}
    calls.clear()
    linker = Linker(spec, {}, not_loaded=["other"])
    assert [c[1] for c in calls] == [[0, 8], [0, 8]]
    calls.clear()
    linker = Linker(spec, {}, not_loaded=["prog", "other"])
    assert [c[1] for c in calls] == [[0, 8]] and list(linker.core_results) == [TEXT]
    calls.clear()
    Linker(spec, {})
    assert [c[1] for c in calls] == [[0, 8, 16, 24], [0, 8]]
