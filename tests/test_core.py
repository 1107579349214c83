"""CO-RE relocations (pybpf.btf.core), without the kernel.

Two halves: the compiled bpf/core_*.bpf.c objects relocated against this
machine's vmlinux BTF, checked against offsets/sizes/values computed here
by walking the kernel BTF independently; and hand-built local/target BTFs
for what clang 14 can't emit or a single kernel can't show (enum64 locals,
TYPE_MATCHES, ambiguity, flavors in the target, signed bitfields, size
adjustment, malformed relocations).
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

import pytest
from elftools.elf.elffile import ELFFile

from conftest import built
from pybpf.asm import insn as I
from pybpf import uapi
from pybpf.btf import BTF, BTFExt, CoreRelo, core
from pybpf.btf import types as T
from pybpf.btf.corematch import essential_name
from pybpf.errors import ObjectError
from pybpf.uapi import bpf_core_relo_kind as K

VMLINUX = "/sys/kernel/btf/vmlinux"


# ------------------------------------------------------------------ helpers

@pytest.fixture(scope="module")
def vmlinux() -> BTF:
    if not os.path.exists(VMLINUX):
        pytest.skip("kernel feature missing: CONFIG_DEBUG_INFO_BTF (no /sys/kernel/btf/vmlinux)")
    with open(VMLINUX, "rb") as f:
        return BTF.parse(f.read(), section="vmlinux")


def load_object(name: str) -> Tuple[BTF, Dict[str, List[CoreRelo]], Dict[str, bytearray]]:
    with open(built(name), "rb") as f:
        elf = ELFFile(f)
        btf = BTF.parse(elf.get_section_by_name(".BTF").data())
        ext = BTFExt.parse(elf.get_section_by_name(".BTF.ext").data(), btf)
        code = {sec: bytearray(elf.get_section_by_name(sec).data()) for sec in ext.core_relos}
    return btf, ext.core_relos, code


def relocate_object(name: str, target: BTF):
    """{section: (original code, patched code, results)}"""
    btf, relos, code = load_object(name)
    out = {}
    for sec, sec_relos in relos.items():
        orig = bytes(code[sec])
        out[sec] = (orig, code[sec], core.relocate(code[sec], sec_relos, btf, [target]))
    return out


def insn_value(buf, idx: int) -> int:
    """The relocatable operand of the instruction at idx."""
    ins = I.decode(buf, idx)
    if ins.code == I.LD_IMM64:
        return I.imm64(buf, idx)
    if ins.cls in (uapi.BPF_LDX, uapi.BPF_ST, uapi.BPF_STX):
        return ins.off
    return ins.imm & 0xFFFFFFFF


def struct_id(btf: BTF, name: str) -> int:
    ids = btf.find(name, uapi.BTF_KIND_STRUCT) or btf.find(name, uapi.BTF_KIND_UNION)
    assert len(ids) == 1, (name, ids)
    return ids[0]


def find_member(btf: BTF, type_id: int, name: str) -> Optional[Tuple[int, T.Member]]:
    """(bit offset, member) of a field, looking into anonymous members too."""
    t = btf[btf.resolve(type_id)]
    for m in t.members:
        if m.name == name:
            return m.bit_offset, m
        if not m.name and isinstance(btf[btf.resolve(m.type)], T.Struct):
            inner = find_member(btf, m.type, name)
            if inner:
                return m.bit_offset + inner[0], inner[1]
    return None


def bit_offset_of(btf: BTF, struct: str, *path) -> Tuple[int, int]:
    """(bit offset, type id) of struct.a.b[3].c, computed by walking the BTF."""
    tid, bits = struct_id(btf, struct), 0
    for step in path:
        if isinstance(step, int):
            arr = btf[btf.resolve(tid)]
            assert isinstance(arr, T.Array)
            tid = arr.type
            bits += step * btf.size_of(tid) * 8
        else:
            off, m = find_member(btf, tid, step)
            bits += off
            tid = m.type
    return bits, tid


def offsetof(btf: BTF, struct: str, *path) -> int:
    bits, _ = bit_offset_of(btf, struct, *path)
    assert bits % 8 == 0
    return bits // 8


def sizeof_field(btf: BTF, struct: str, *path) -> int:
    return btf.size_of(bit_offset_of(btf, struct, *path)[1])


def by_access(results) -> Dict[Tuple[str, str], List[core.Result]]:
    out: Dict[Tuple[str, str], List[core.Result]] = {}
    for r in results:
        out.setdefault((r.kind_name, r.access), []).append(r)
    return out


def check(results, code, expected: Dict[Tuple[str, str], int]) -> None:
    """Every expected relocation exists, resolved to the value, and the code holds it."""
    got = by_access(results)
    for key, want in expected.items():
        assert key in got, f"no relocation {key}; have {sorted(got)}"
        for r in got[key]:
            assert not r.poisoned, r
            assert r.new == want, (key, r.new, want)
            assert insn_value(code, r.insn) == want & (0xFFFFFFFF if want < 1 << 32 else ~0), key


# ------------------------------------------------------------------ compiled objects vs vmlinux

def test_exec_object_tracepoint_field(vmlinux):
    (orig, code, results), = relocate_object("exec.bpf.o", vmlinux).values()
    want = offsetof(vmlinux, "trace_event_raw_sched_process_exec", "__data_loc_filename")
    check(results, code, {("byte_off", "struct trace_event_raw_sched_process_exec"
                                       ".__data_loc_filename"): want})


def test_task_fields_through_local_flavor(vmlinux):
    objs = relocate_object("core_task.bpf.o", vmlinux)
    orig, code, results = objs["raw_tp/sys_enter"]
    t = "struct task_struct___local"
    rlim_cur = offsetof(vmlinux, "signal_struct", "rlim", 7, "rlim_cur")
    check(results, code, {
        ("byte_off", f"{t}.pid"): offsetof(vmlinux, "task_struct", "pid"),
        ("byte_off", f"{t}.tgid"): offsetof(vmlinux, "task_struct", "tgid"),
        ("byte_off", f"{t}.comm"): offsetof(vmlinux, "task_struct", "comm"),
        ("byte_off", f"{t}.comm[2]"): offsetof(vmlinux, "task_struct", "comm") + 2,
        ("byte_off", f"{t}.real_parent"): offsetof(vmlinux, "task_struct", "real_parent"),
        ("byte_off", f"{t}.signal"): offsetof(vmlinux, "task_struct", "signal"),
        # the local rlimit lists rlim_max first: matching is by name, not position
        ("byte_off", "struct signal_struct___local.rlim[7].rlim_cur"): rlim_cur,
        ("byte_off", "struct signal_struct___local.rlim[7].rlim_max"): rlim_cur + 8,
        ("byte_sz", f"{t}.pid"): 4,
        ("byte_sz", f"{t}.comm"): sizeof_field(vmlinux, "task_struct", "comm"),
        ("byte_sz", f"{t}.real_parent"): 8,
        ("signed", f"{t}.pid"): 1,
        ("signed", f"{t}.in_execve"): 0,
        ("field_exists", f"{t}.pid"): 1,
        ("field_exists", f"{t}.no_such_field"): 0,
        ("field_exists", "struct task_struct___bad.pid"): 0,    # void * vs int: incompatible
    })
    # the guarded read of the missing field is poisoned (dead code for the verifier)
    missing, = by_access(results)[("byte_off", f"{t}.no_such_field")]
    assert missing.poisoned and core.is_poisoned(code, missing.insn)
    assert not core.is_poisoned(orig, missing.insn)
    assert sum(core.is_poisoned(code, i) for i in range(len(code) // 8)) == 1


def test_task_bitfield_shifts(vmlinux):
    """in_execve is a 1-bit field of task_struct: recompute the load and the shifts."""
    results = relocate_object("core_task.bpf.o", vmlinux)["raw_tp/sys_enter"][2]
    bit, tid = bit_offset_of(vmlinux, "task_struct", "in_execve")
    _, member = find_member(vmlinux, struct_id(vmlinux, "task_struct"), "in_execve")
    assert member.bitfield_size == 1
    load = vmlinux.size_of(tid)                    # unsigned int: a 4-byte load suffices
    start = bit // 8 // load * load
    assert start * 8 <= bit and bit + 1 <= (start + load) * 8
    got = {k[0]: rs[0].new for k, rs in by_access(results).items()
           if k[1] == "struct task_struct___local.in_execve"}
    assert got["byte_off"] == start
    assert got["byte_sz"] == load
    assert got["lshift_u64"] == 64 - (bit + 1 - start * 8)
    assert got["rshift_u64"] == 63
    # a u64 loaded from `start` and shifted left then right yields exactly that bit
    word = 1 << (bit - start * 8)
    assert ((word << got["lshift_u64"]) & (2 ** 64 - 1)) >> got["rshift_u64"] == 1


def test_types_and_enums(vmlinux):
    (orig, code, results), = relocate_object("core_types.bpf.o", vmlinux).values()

    def enumval(enum: str, name: str) -> int:
        ids = vmlinux.find(enum, uapi.BTF_KIND_ENUM) + vmlinux.find(enum, uapi.BTF_KIND_ENUM64)
        return dict(vmlinux[ids[0]].values)[name] & (2 ** 64 - 1)

    task = struct_id(vmlinux, "task_struct")
    pid_t, = vmlinux.find("pid_t", uapi.BTF_KIND_TYPEDEF)
    local_flavor = by_access(results)[("local_type_id", "struct task_struct___local")][0]
    check(results, code, {
        ("enumval_value", "enum bpf_map_type::BPF_MAP_TYPE_RINGBUF"):
            enumval("bpf_map_type", "BPF_MAP_TYPE_RINGBUF"),
        ("enumval_value", "enum bpf_map_type___local::BPF_MAP_TYPE_RINGBUF___local"):
            enumval("bpf_map_type", "BPF_MAP_TYPE_RINGBUF"),
        # kernel ENUM64s (clang 14 describes them locally as truncated 8-byte ENUMs)
        ("enumval_value", "enum blake2b_iv::BLAKE2B_IV0"): enumval("blake2b_iv", "BLAKE2B_IV0"),
        ("enumval_value", "enum perf_callchain_context::PERF_CONTEXT_MAX"):
            enumval("perf_callchain_context", "PERF_CONTEXT_MAX"),
        ("enumval_exists", "enum bpf_map_type::BPF_MAP_TYPE_RINGBUF"): 1,
        ("enumval_exists", "enum bpf_map_type___local::BPF_MAP_TYPE_RINGBUF___local"): 1,
        ("enumval_exists", "enum bpf_map_type___local::BPF_MAP_TYPE_NO_SUCH___local"): 0,
        ("type_exists", "struct task_struct"): 1,
        ("type_exists", "struct task_struct___local"): 1,
        ("type_exists", "struct pybpf_no_such_type"): 0,
        ("type_exists", "pid_t"): 1,
        ("type_exists", "enum bpf_map_type"): 1,
        ("type_size", "struct task_struct"): vmlinux.size_of(task),
        ("type_size", "struct task_struct___local"): vmlinux.size_of(task),
        ("type_size", "struct pybpf_no_such_type"): 0,
        ("type_size", "pid_t"): vmlinux.size_of(pid_t),
        ("type_size", "struct list_head"): vmlinux.size_of(struct_id(vmlinux, "list_head")),
        ("target_type_id", "struct task_struct"): task,
        ("target_type_id", "struct task_struct___local"): task,
        ("target_type_id", "struct pybpf_no_such_type"): 0,
        ("local_type_id", "struct task_struct___local"): local_flavor.type_id,
        ("byte_off", "struct sk_buff___local.len"): offsetof(vmlinux, "sk_buff", "len"),
        # dev and pkt_type live in anonymous unions/structs of the kernel's sk_buff
        ("byte_off", "struct sk_buff___local.dev"): offsetof(vmlinux, "sk_buff", "dev"),
        ("byte_off", "struct sk_buff___local.cb[5]"): offsetof(vmlinux, "sk_buff", "cb") + 5,
        ("byte_sz", "struct sk_buff___local.pkt_type"): 1,
    })
    assert enumval("blake2b_iv", "BLAKE2B_IV0") > 1 << 32       # really needs 64 bits
    assert not any(r.poisoned for r in results)
    bit, _ = bit_offset_of(vmlinux, "sk_buff", "pkt_type")
    shifts = {k[0]: rs[0].new for k, rs in by_access(results).items()
              if k[1] == "struct sk_buff___local.pkt_type"}
    assert shifts["byte_off"] == bit // 8
    assert shifts["lshift_u64"] == 64 - (bit % 8 + 3) and shifts["rshift_u64"] == 61


def test_direct_loads_change_width(vmlinux):
    (orig, code, results), = relocate_object("core_direct.bpf.o", vmlinux).values()
    flags, = by_access(results)[("byte_off", "struct task_struct___direct.flags")]
    assert I.decode(orig, flags.insn).code == uapi.BPF_LDX | uapi.BPF_MEM | uapi.BPF_DW
    assert I.decode(code, flags.insn) == I.Insn(
        uapi.BPF_LDX | uapi.BPF_MEM | uapi.BPF_W, I.decode(orig, flags.insn).dst,
        I.decode(orig, flags.insn).src, offsetof(vmlinux, "task_struct", "flags"), 0)
    check(results, code, {
        ("byte_off", "struct task_struct___direct.pid"): offsetof(vmlinux, "task_struct", "pid"),
        ("byte_off", "struct task_struct.real_parent"):
            offsetof(vmlinux, "task_struct", "real_parent"),
    })


def test_poison_object(vmlinux):
    objs = relocate_object("core_poison.bpf.o", vmlinux)
    orig, code, (missing,) = objs["raw_tp/sys_enter"]
    assert missing.poisoned and core.is_poisoned(code, missing.insn)
    assert "task_struct" in missing.reason
    msg = core.poison_message(missing, "got = BPF_CORE_READ(t, pybpf_no_such_field);")
    for part in ("struct task_struct___poison.pybpf_no_such_field", "byte_off",
                 "bpf_core_field_exists()", "BPF_CORE_READ(t, pybpf_no_such_field)",
                 f"insn #{missing.insn}"):
        assert part in msg, (part, msg)
    orig, code, (wide,) = objs["tp_btf/sched_process_exec"]
    assert wide.poisoned and core.is_poisoned(code, wide.insn)
    assert "4 bytes in the target, 8 locally" in wide.reason


def test_relocate_is_deterministic_and_idempotent_on_copies(vmlinux):
    """Two runs over fresh copies give identical code (caches don't change results)."""
    first = relocate_object("core_task.bpf.o", vmlinux)
    second = relocate_object("core_task.bpf.o", vmlinux)
    for sec in first:
        assert first[sec][1] == second[sec][1]
        assert [str(r) for r in first[sec][2]] == [str(r) for r in second[sec][2]]


# ------------------------------------------------------------------ hand-built BTF

SIGNED = uapi.BTF_INT_SIGNED


class Types:
    """A BTF under construction, with the usual integers pre-added."""

    def __init__(self):
        self.btf = BTF()
        self.int = self.add(T.Int("int", 4, SIGNED, 0, 32))
        self.uint = self.add(T.Int("unsigned int", 4, 0, 0, 32))
        self.u64 = self.add(T.Int("unsigned long long", 8, 0, 0, 64))
        self.s64 = self.add(T.Int("long long", 8, SIGNED, 0, 64))
        self.char = self.add(T.Int("char", 1, uapi.BTF_INT_CHAR, 0, 8))
        self.u16 = self.add(T.Int("unsigned short", 2, 0, 0, 16))

    def add(self, t: T.Type) -> int:
        return self.btf.add(t)

    def struct(self, name: str, size: int, *members, union: bool = False) -> int:
        """members: (name, type id, bit offset[, bitfield size])"""
        cls = T.Union if union else T.Struct
        return self.add(cls(name, size, [T.Member(*m) for m in members]))

    def ptr(self, to: int) -> int:
        return self.add(T.Pointer("", to))

    def array(self, elem: int, n: int) -> int:
        return self.add(T.Array("", elem, self.int, n))


def mov(imm: int, dst: int = 1, alu64: bool = True) -> bytes:
    cls = uapi.BPF_ALU64 if alu64 else uapi.BPF_ALU
    return I.Insn(cls | uapi.BPF_MOV | uapi.BPF_K, dst, 0, 0, imm).encode()


def ldx(off: int, size: int = uapi.BPF_W, dst: int = 1, src: int = 2) -> bytes:
    return I.Insn(uapi.BPF_LDX | uapi.BPF_MEM | size, dst, src, off, 0).encode()


def stx(off: int, size: int = uapi.BPF_W) -> bytes:
    return I.Insn(uapi.BPF_STX | uapi.BPF_MEM | size, 2, 1, off, 0).encode()


def st(off: int, imm: int, size: int = uapi.BPF_W) -> bytes:
    return I.Insn(uapi.BPF_ST | uapi.BPF_MEM | size, 2, 0, off, imm).encode()


def ld_imm64(value: int, dst: int = 1) -> bytes:
    value &= 2 ** 64 - 1
    return (I.Insn(I.LD_IMM64, dst, 0, 0, I._s32(value)).encode()
            + I.Insn(0, 0, 0, 0, I._s32(value >> 32)).encode())


EXIT = I.Insn(I.EXIT, 0, 0, 0, 0).encode()


def run(local: BTF, targets, code: bytes, relos, **kw):
    buf = bytearray(code)
    relos = [CoreRelo(*r) if isinstance(r, tuple) else r for r in relos]
    return buf, core.relocate(buf, relos, local, targets, **kw)


def relo(slot: int, type_id: int, access: str, kind: K) -> CoreRelo:
    return CoreRelo(slot * 8, type_id, access, kind)


def test_essential_name():
    assert essential_name("task_struct___local") == "task_struct"
    assert essential_name("foo___v1___v2") == "foo___v1"
    assert essential_name("__u32") == "__u32"
    assert essential_name("a____b") == "a____b"          # no X___Y with X, Y != '_'
    assert essential_name("foo___") == "foo___"
    assert essential_name("a___b") == "a"


@pytest.fixture
def pair():
    """A local `struct foo___mine {int a; u64 b;}` and a target `struct foo` with
    the same fields in another order, one of them inside an anonymous union."""
    loc = Types()
    lfoo = loc.struct("foo___mine", 16, ("a", loc.int, 0), ("b", loc.u64, 64))
    tgt = Types()
    anon = tgt.struct("", 8, ("b", tgt.u64, 0), ("b_alias", tgt.s64, 0), union=True)
    tfoo = tgt.struct("foo", 32, ("pad", tgt.u64, 0), ("", anon, 64), ("a", tgt.int, 128))
    return loc, lfoo, tgt, tfoo


def test_field_offsets_through_anonymous_members(pair):
    loc, lfoo, tgt, tfoo = pair
    code = mov(0) + mov(8) + ldx(8, uapi.BPF_DW) + EXIT
    buf, res = run(loc.btf, [tgt.btf], code, [
        relo(0, lfoo, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET),
        relo(1, lfoo, "0:1", K.BPF_CORE_FIELD_BYTE_OFFSET),
        relo(2, lfoo, "0:1", K.BPF_CORE_FIELD_BYTE_OFFSET),
    ])
    assert [r.new for r in res] == [16, 8, 8]
    assert I.decode(buf, 0).imm == 16 and I.decode(buf, 1).imm == 8 and I.decode(buf, 2).off == 8
    assert res[1].target == "[8] struct foo.b (0:1:0 @ offset 8)"
    assert res[0].access == "struct foo___mine.a" and res[0].orig == 0
    assert res[0].spec == "[7] struct foo___mine.a (0:0 @ offset 0)"


def test_array_accessors_and_root_index():
    loc = Types()
    larr = loc.array(loc.int, 4)
    lin = loc.struct("inner", 16, ("v", larr, 0))
    linarr = loc.array(lin, 3)
    lout = loc.struct("outer", 48, ("x", linarr, 0))
    tgt = Types()
    tarr = tgt.array(tgt.int, 8)
    tin = tgt.struct("inner", 40, ("pad", tgt.u64, 0), ("v", tarr, 64))
    tinarr = tgt.array(tin, 2)                   # only 2 elements in the target
    tout = tgt.struct("outer", 96, ("pad", tgt.u64, 0), ("x", tinarr, 64))
    code = mov(28) + mov(1) + mov(2 * 48 + 16) + mov(16) + mov(16) + EXIT
    buf, res = run(loc.btf, [tgt.btf], code, [
        relo(0, lout, "0:0:1:0:3", K.BPF_CORE_FIELD_BYTE_OFFSET),  # x[1].v[3]
        relo(1, lout, "0:0:2:0:3", K.BPF_CORE_FIELD_EXISTS),        # x[2]: out of target bounds
        relo(2, lout, "2:0:1", K.BPF_CORE_FIELD_BYTE_OFFSET),       # p[2].x[1]
        relo(3, lout, "0:0:1:0", K.BPF_CORE_FIELD_BYTE_SIZE),       # sizeof x[1].v
        relo(4, lout, "0:0:1", K.BPF_CORE_FIELD_BYTE_SIZE),         # sizeof x[1] (array elem)
    ])
    assert res[0].new == 8 + 40 + 8 + 3 * 4
    assert res[0].access == "struct outer.x[1].v[3]"
    assert res[1].new == 0 and not res[1].poisoned
    assert res[2].new == 2 * 96 + 8 + 40 and res[2].access == "struct outer[2].x[1]"
    assert res[3].new == 32 and res[4].new == 40


def test_flexible_array_in_target():
    loc = Types()
    larr = loc.array(loc.int, 0)
    lfoo = loc.struct("flex", 4, ("n", loc.int, 0), ("data", larr, 32))
    tgt = Types()
    tarr = tgt.array(tgt.int, 0)
    tfoo = tgt.struct("flex", 8, ("pad", tgt.int, 0), ("n", tgt.int, 32), ("data", tarr, 64))
    buf, res = run(loc.btf, [tgt.btf], mov(4 + 5 * 4) + EXIT,
                   [relo(0, lfoo, "0:1:5", K.BPF_CORE_FIELD_BYTE_OFFSET)])
    assert res[0].new == 8 + 5 * 4


def test_missing_field_poisons_ld_imm64_both_slots(pair):
    loc, lfoo, tgt, tfoo = pair
    lbar = loc.struct("foo", 4, ("nope", loc.int, 0))
    code = ld_imm64(0) + mov(1) + EXIT
    buf, res = run(loc.btf, [tgt.btf], code, [
        relo(0, lbar, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET),
        relo(2, lbar, "0:0", K.BPF_CORE_FIELD_EXISTS),
    ])
    assert res[0].poisoned and core.is_poisoned(buf, 0) and core.is_poisoned(buf, 1)
    assert I.decode(buf, 0) == I.Insn(I.CALL, 0, 0, 0, core.POISON_IMM)
    assert res[1].new == 0 and I.decode(buf, 2).imm == 0
    assert res[0].reason == "[8] struct foo has no field 'nope'"
    assert "poisoned" in str(res[0])


def test_poison_reasons_name_what_failed():
    loc = Types()
    lfoo = loc.struct("foo", 16, ("p", loc.ptr(loc.int), 0), ("arr", loc.array(loc.int, 4), 64))
    tgt = Types()
    tgt.struct("foo", 16, ("p", tgt.int, 0), ("arr", tgt.array(tgt.int, 2), 64))     # [8]
    tgt.struct("foo___v2", 16, ("p", tgt.ptr(tgt.int), 0), ("arr", tgt.int, 64))     # [10]
    buf, res = run(loc.btf, [tgt.btf], mov(8 + 3 * 4) + EXIT,
                   [relo(0, lfoo, "0:1:3", K.BPF_CORE_FIELD_BYTE_OFFSET)])
    assert res[0].reason == ("[8] index 3 is out of bounds of int[2]; [10] field 'arr' of "
                             "struct foo___v2 is int, incompatible with the local int[4]")
    only_int = Types()
    only_int.struct("foo", 16, ("p", only_int.int, 0))
    buf, res = run(loc.btf, [only_int.btf], mov(8) + EXIT,
                   [relo(0, lfoo, "0:0", K.BPF_CORE_FIELD_BYTE_SIZE)])
    assert res[0].reason == "[7] field 'p' of struct foo is int, incompatible with the local int *"
    assert res[0].reason in core.poison_message(res[0])


def test_missing_type_values():
    loc = Types()
    lt = loc.struct("nowhere", 4, ("x", loc.int, 0))
    lenum = loc.add(T.Enum("nowhere_e", 4, [("A", 1)]))
    tgt = Types()
    kinds = [(lt, "0", K.BPF_CORE_TYPE_EXISTS), (lt, "0", K.BPF_CORE_TYPE_SIZE),
             (lt, "0", K.BPF_CORE_TYPE_ID_TARGET), (lt, "0", K.BPF_CORE_TYPE_MATCHES),
             (lt, "0:0", K.BPF_CORE_FIELD_EXISTS), (lenum, "0", K.BPF_CORE_ENUMVAL_EXISTS),
             (lt, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET), (lenum, "0", K.BPF_CORE_ENUMVAL_VALUE),
             (lt, "0:0", K.BPF_CORE_FIELD_BYTE_SIZE), (lt, "0:0", K.BPF_CORE_FIELD_SIGNED),
             (lt, "0:0", K.BPF_CORE_FIELD_LSHIFT_U64), (lt, "0:0", K.BPF_CORE_FIELD_RSHIFT_U64),
             (lt, "0", K.BPF_CORE_TYPE_ID_LOCAL)]
    # the compiler's values for the local types: exists 1, size 4, ...
    code = mov(1) + mov(4) + mov(0) + mov(1) + mov(1) + mov(1) + mov(0) * 6 + mov(lt) + EXIT
    buf, res = run(loc.btf, [tgt.btf], code,
                   [relo(i, tid, acc, kind) for i, (tid, acc, kind) in enumerate(kinds)])
    assert [r.new for r in res[:6]] == [0] * 6 and not any(r.poisoned for r in res[:6])
    assert all(r.poisoned for r in res[6:12])
    assert "no type named 'nowhere'" in res[6].reason
    assert res[12].new == lt and not res[12].poisoned


def test_bitfields_signed_and_straddling():
    loc = Types()
    lbf = loc.struct("bf", 8, ("s", loc.int, 0, 5), ("w", loc.uint, 5, 3))
    tgt = Types()
    # s: signed 7 bits at bit 29 (crosses the 4-byte boundary: needs an 8-byte load)
    # w: unsigned short, 4 bits at bit 50
    tbf = tgt.struct("bf", 16, ("s", tgt.int, 29, 7), ("w", tgt.u16, 50, 4))
    access = {"s": "0:0", "w": "0:1"}
    kinds = [K.BPF_CORE_FIELD_BYTE_OFFSET, K.BPF_CORE_FIELD_BYTE_SIZE, K.BPF_CORE_FIELD_SIGNED,
             K.BPF_CORE_FIELD_LSHIFT_U64, K.BPF_CORE_FIELD_RSHIFT_U64]
    # only signedness and the right shift of a bitfield are checked against the code
    local = {("s", K.BPF_CORE_FIELD_SIGNED): 1, ("s", K.BPF_CORE_FIELD_RSHIFT_U64): 59,
             ("w", K.BPF_CORE_FIELD_SIGNED): 0, ("w", K.BPF_CORE_FIELD_RSHIFT_U64): 61}
    relos, code = [], b""
    for name in ("s", "w"):
        for kind in kinds:
            relos.append(relo(len(relos), lbf, access[name], kind))
            code += mov(local.get((name, kind), 99))
    buf, res = run(loc.btf, [tgt.btf], code + EXIT, relos)
    s = [r.new for r in res[:5]]
    w = [r.new for r in res[5:]]
    assert s == [0, 8, 1, 64 - (29 + 7), 64 - 7]
    assert w == [6, 2, 0, 64 - (50 + 4 - 48), 64 - 4]
    # the shifts extract the field from a little-endian load of byte_sz bytes at byte_off
    raw = (0b1011011 << 29) | (0b1001 << 50)
    for (off, size, signed, lsh, rsh), want in ((s, 0b1011011 - 128), (w, 0b1001)):
        val = ((raw >> (8 * off)) & ((1 << 8 * size) - 1)) << lsh & (2 ** 64 - 1)
        if signed and val >> 63:
            val -= 1 << 64
        assert val >> rsh == want


def test_bitfield_right_shift_is_validated():
    loc = Types()
    lbf = loc.struct("bf", 4, ("s", loc.int, 0, 5))
    tgt = Types()
    tgt.struct("bf", 4, ("s", tgt.int, 3, 5))
    with pytest.raises(ObjectError, match="holds 60, expected 59"):
        run(loc.btf, [tgt.btf], mov(60) + EXIT, [relo(0, lbf, "0:0", K.BPF_CORE_FIELD_RSHIFT_U64)])
    buf, res = run(loc.btf, [tgt.btf], mov(123) + EXIT,      # lshift of a bitfield is not
                   [relo(0, lbf, "0:0", K.BPF_CORE_FIELD_LSHIFT_U64)])
    assert res[0].new == 64 - 8 and res[0].orig == 123


def test_bitfield_that_no_load_covers():
    loc = Types()
    lbf = loc.struct("bf", 8, ("x", loc.u64, 0, 10))
    tgt = Types()
    tbf = tgt.struct("bf", 16, ("x", tgt.u64, 60, 10))
    with pytest.raises(ObjectError, match="64-bit load"):
        run(loc.btf, [tgt.btf], mov(0) + EXIT,
            [relo(0, lbf, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET)])


def test_load_store_width_adjustment():
    loc = Types()
    lfoo = loc.struct("foo", 24, ("u", loc.u64, 0), ("s", loc.s64, 64),
                      ("p", loc.ptr(loc.int), 128))
    tgt = Types()
    tfoo = tgt.struct("foo", 16, ("s", tgt.int, 0), ("u", tgt.uint, 32),
                      ("p", tgt.ptr(tgt.int), 64))
    code = ldx(0, uapi.BPF_DW) + stx(0, uapi.BPF_DW) + st(0, 7, uapi.BPF_DW) \
        + ldx(8, uapi.BPF_DW) + ldx(16, uapi.BPF_DW) + EXIT
    buf, res = run(loc.btf, [tgt.btf], code, [
        relo(0, lfoo, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET),
        relo(1, lfoo, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET),
        relo(2, lfoo, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET),
        relo(3, lfoo, "0:1", K.BPF_CORE_FIELD_BYTE_OFFSET),
        relo(4, lfoo, "0:2", K.BPF_CORE_FIELD_BYTE_OFFSET),
    ])
    for slot, cls in ((0, uapi.BPF_LDX), (1, uapi.BPF_STX), (2, uapi.BPF_ST)):
        ins = I.decode(buf, slot)
        assert ins.code == cls | uapi.BPF_MEM | uapi.BPF_W and ins.off == 4, slot
    assert I.decode(buf, 2).imm == 7
    assert res[3].poisoned and core.is_poisoned(buf, 3)        # signed: narrowing changes it
    assert I.decode(buf, 4) == I.Insn(uapi.BPF_LDX | uapi.BPF_MEM | uapi.BPF_DW, 1, 2, 8, 0)


def test_load_width_must_match_local_field():
    loc = Types()
    lfoo = loc.struct("foo", 8, ("u", loc.u64, 0))
    tgt = Types()
    tfoo = tgt.struct("foo", 4, ("u", tgt.uint, 0))
    with pytest.raises(ObjectError, match="accesses 2 bytes of a 8-byte field"):
        run(loc.btf, [tgt.btf], ldx(0, uapi.BPF_H) + EXIT,
            [relo(0, lfoo, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET)])


def test_offset_too_big_for_insn():
    loc = Types()
    lfoo = loc.struct("foo", 4, ("x", loc.int, 0))
    tgt = Types()
    big = tgt.array(tgt.char, 40000)
    tfoo = tgt.struct("foo", 40004, ("pad", big, 0), ("x", tgt.int, 320000))
    with pytest.raises(ObjectError, match="does not fit the 16-bit offset"):
        run(loc.btf, [tgt.btf], ldx(0) + EXIT,
            [relo(0, lfoo, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET)])
    buf, res = run(loc.btf, [tgt.btf], mov(0) + EXIT,
                   [relo(0, lfoo, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET)])
    assert I.decode(buf, 0).imm == 40000


def test_ambiguous_candidates_are_an_error(pair):
    loc, lfoo, tgt, tfoo = pair
    tgt.struct("foo___v2", 8, ("a", tgt.int, 32))       # another flavor, a elsewhere
    with pytest.raises(ObjectError) as err:
        run(loc.btf, [tgt.btf], mov(0) + EXIT,
            [relo(0, lfoo, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET)],
            describe=lambda idx: f"prog demo insn {idx} (demo.c:12)")
    msg = str(err.value)
    for part in ("ambiguous", "struct foo___mine.a", "struct foo.a", "struct foo___v2.a",
                 "demo.c:12", "relocation #0"):
        assert part in msg, (part, msg)


def test_agreeing_flavors_and_candidate_pruning(pair):
    loc, lfoo, tgt, tfoo = pair
    # foo___v2 agrees on `a` but has no `b`: fine for `a`; after relocation #0
    # prunes to the candidates that matched, `b` still resolves
    tgt.struct("foo___v2", 24, ("pad", tgt.u64, 0), ("pad2", tgt.u64, 64), ("a", tgt.int, 128))
    buf, res = run(loc.btf, [tgt.btf], mov(0) + mov(8) + EXIT, [
        relo(0, lfoo, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET),
        relo(1, lfoo, "0:1", K.BPF_CORE_FIELD_BYTE_OFFSET),
    ])
    assert [r.new for r in res] == [16, 8]
    # and the other way round: a relocation only one flavor satisfies
    loc2 = Types()
    l2 = loc2.struct("foo", 8, ("b", loc2.u64, 0))
    buf, res = run(loc2.btf, [tgt.btf], mov(0) + EXIT,
                   [relo(0, l2, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET)])
    assert res[0].new == 8 and "struct foo.b" in res[0].target


def test_candidates_pruned_by_earlier_relocations(pair):
    """libbpf keeps, per local type, only the candidates that matched so far: a
    flavor that lacks `a` can't make a later relocation of `b` ambiguous."""
    loc, lfoo, tgt, tfoo = pair
    tgt.struct("foo___v3", 32, ("b", tgt.u64, 192))        # no `a`, `b` elsewhere
    buf, res = run(loc.btf, [tgt.btf], mov(0) + mov(8) + EXIT, [
        relo(0, lfoo, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET),
        relo(1, lfoo, "0:1", K.BPF_CORE_FIELD_BYTE_OFFSET),
    ])
    assert [r.new for r in res] == [16, 8]
    with pytest.raises(ObjectError, match="ambiguous"):     # without the first: ambiguous
        run(loc.btf, [tgt.btf], mov(8) + EXIT,
            [relo(0, lfoo, "0:1", K.BPF_CORE_FIELD_BYTE_OFFSET)])


def test_type_id_target_ambiguity_between_duplicates():
    loc = Types()
    lfoo = loc.struct("dup", 4, ("x", loc.int, 0))
    tgt = Types()
    tgt.struct("dup", 4, ("x", tgt.int, 0))
    tgt.struct("dup", 4, ("x", tgt.int, 0))
    code = mov(1) + mov(4) + EXIT
    buf, res = run(loc.btf, [tgt.btf], code, [relo(0, lfoo, "0", K.BPF_CORE_TYPE_EXISTS),
                                              relo(1, lfoo, "0", K.BPF_CORE_TYPE_SIZE)])
    assert [r.new for r in res] == [1, 4]          # same answers: no ambiguity
    with pytest.raises(ObjectError, match="ambiguous"):
        run(loc.btf, [tgt.btf], mov(0) + EXIT, [relo(0, lfoo, "0", K.BPF_CORE_TYPE_ID_TARGET)])


def test_incompatible_field_types():
    loc = Types()
    lp = loc.ptr(loc.int)
    le = loc.add(T.Enum("color", 4, [("RED", 0)]))
    lfoo = loc.struct("foo", 24, ("p", lp, 0), ("e", le, 64), ("i", loc.int, 96),
                      ("arr", loc.array(loc.int, 2), 128))
    tgt = Types()
    te = tgt.add(T.Enum64("shade", 8, [("RED", 0)]))       # enum named differently
    tfoo = tgt.struct("foo", 32, ("p", tgt.int, 0), ("e", te, 64), ("i", tgt.u64, 128),
                      ("arr", tgt.array(tgt.char, 8), 192))
    code = mov(1) * 4 + EXIT
    buf, res = run(loc.btf, [tgt.btf], code,
                   [relo(i, lfoo, f"0:{i}", K.BPF_CORE_FIELD_EXISTS) for i in range(4)])
    # pointer vs int: no; enum names differ: no; ints of any size: yes; int[] vs char[]: yes
    assert [r.new for r in res] == [0, 0, 1, 1]


def test_enum64_local_and_target_values():
    loc = Types()
    l64 = loc.add(T.Enum64("wide", 8, [("W_BIG", 0x1234_5678_9ABC_DEF0), ("W_NEG", -2)],
                           signed=True))
    l32 = loc.add(T.Enum("narrow___v", 4, [("N_A___x", 3), ("N_GONE", 4)], signed=False))
    tgt = Types()
    tgt.add(T.Enum("wide", 8, [("W_NEG", -5), ("W_BIG", 7)], signed=True))       # now 32-bit
    tgt.add(T.Enum64("narrow", 8, [("N_A", 0xFFFF_FFFF_0000_0001)], signed=False))
    code = ld_imm64(0x1234_5678_9ABC_DEF0) + mov(-2) + ld_imm64(3) + mov(1) + mov(3) + EXIT
    buf, res = run(loc.btf, [tgt.btf], code, [
        relo(0, l64, "0", K.BPF_CORE_ENUMVAL_VALUE),
        relo(2, l64, "1", K.BPF_CORE_ENUMVAL_VALUE),
        relo(3, l32, "0", K.BPF_CORE_ENUMVAL_VALUE),
        relo(5, l32, "1", K.BPF_CORE_ENUMVAL_EXISTS),
    ])
    assert I.imm64(buf, 0) == 7
    assert I.decode(buf, 2).imm == -5
    assert I.imm64(buf, 3) == 0xFFFF_FFFF_0000_0001
    assert res[3].new == 0
    assert res[0].access == "enum wide::W_BIG"
    assert res[2].spec == "[8] enum narrow___v::N_A___x = 3"
    # a value the 32-bit immediate can't hold is an error, not a silent truncation
    with pytest.raises(ObjectError, match="does not fit the 32-bit immediate"):
        run(loc.btf, [tgt.btf], mov(3) + EXIT, [relo(0, l32, "0", K.BPF_CORE_ENUMVAL_VALUE)])


def test_clang14_truncated_enum64_local_value():
    """clang < 15 writes a 64-bit enum as an 8-byte ENUM with the low 32 bits."""
    loc = Types()
    l = loc.add(T.Enum("iv", 8, [("IV0", 0xF3BCC908)], signed=False))
    tgt = Types()
    tgt.add(T.Enum64("iv", 8, [("IV0", 0x6A09E667F3BCC908)], signed=False))
    buf, res = run(loc.btf, [tgt.btf], ld_imm64(0x6A09E667F3BCC908) + EXIT,
                   [relo(0, l, "0", K.BPF_CORE_ENUMVAL_VALUE)])
    assert I.imm64(buf, 0) == 0x6A09E667F3BCC908
    with pytest.raises(ObjectError, match="expected"):
        run(loc.btf, [tgt.btf], ld_imm64(0x6A09E667_00000001) + EXIT,
            [relo(0, l, "0", K.BPF_CORE_ENUMVAL_VALUE)])


def test_signed_enum_bitfield_and_field_signedness():
    loc = Types()
    le = loc.add(T.Enum("mode", 4, [("M", -1)], signed=True))
    lfoo = loc.struct("foo", 8, ("m", le, 0), ("c", loc.char, 32))
    tgt = Types()
    te = tgt.add(T.Enum("mode", 4, [("M", -1)], signed=True))
    tfoo = tgt.struct("foo", 8, ("c", tgt.char, 0), ("m", te, 32, 4))
    buf, res = run(loc.btf, [tgt.btf], mov(1) + mov(0) + mov(32) + EXIT, [
        relo(0, lfoo, "0:0", K.BPF_CORE_FIELD_SIGNED),
        relo(1, lfoo, "0:1", K.BPF_CORE_FIELD_SIGNED),
        relo(2, lfoo, "0:0", K.BPF_CORE_FIELD_RSHIFT_U64),
    ])
    assert [r.new for r in res] == [1, 0, 60]


def test_type_size_and_compat_rules():
    loc = Types()
    fp_l = loc.add(T.FuncProto("", loc.int, [T.Param("a", loc.ptr(loc.int))]))
    cb_l = loc.add(T.Typedef("cb_t", loc.ptr(fp_l)))
    td_l = loc.add(T.Typedef("u32_t", loc.uint))
    arr_l = loc.add(T.Typedef("buf_t", loc.array(loc.char, 4)))
    bf_l = loc.add(T.Typedef("weird_t", loc.add(T.Int("weird", 4, 0, 3, 5))))
    tgt = Types()
    fp_t = tgt.add(T.FuncProto("", tgt.u64, [T.Param("x", tgt.ptr(tgt.u16))]))
    tgt.add(T.Typedef("cb_t", tgt.ptr(fp_t)))
    tgt.add(T.Typedef("u32_t", tgt.u64))
    tgt.add(T.Typedef("buf_t", tgt.array(tgt.char, 16)))
    tgt.add(T.Typedef("weird_t", tgt.uint))
    code = mov(1) * 4 + mov(8) + mov(4) + mov(4) + EXIT
    buf, res = run(loc.btf, [tgt.btf], code, [
        relo(0, cb_l, "0", K.BPF_CORE_TYPE_EXISTS),      # func protos: same arity, compat
        relo(1, td_l, "0", K.BPF_CORE_TYPE_EXISTS),
        relo(2, arr_l, "0", K.BPF_CORE_TYPE_EXISTS),     # array length is ignored
        relo(3, bf_l, "0", K.BPF_CORE_TYPE_EXISTS),      # legacy bitfield int: never
        relo(4, cb_l, "0", K.BPF_CORE_TYPE_SIZE),
        relo(5, td_l, "0", K.BPF_CORE_TYPE_SIZE),
        relo(6, arr_l, "0", K.BPF_CORE_TYPE_SIZE),
    ])
    assert [r.new for r in res] == [1, 1, 1, 0, 8, 8, 16]


def test_type_matches_rules():
    loc, tgt = Types(), Types()
    cases = []   # (name, local id, expected)

    def case(name, lmake, tmake, want):
        lid = lmake(loc, name)
        tmake(tgt, name)
        cases.append((name, lid, want))

    S = lambda *m: (lambda ts, n: ts.struct(n, 16, *[(a, getattr(ts, b), o) for a, b, o in m]))
    case("same", S(("a", "int", 0)), S(("a", "int", 0), ("b", "u64", 64)), 1)
    case("extra_local", S(("a", "int", 0), ("z", "int", 32)), S(("a", "int", 0)), 0)
    case("sign", S(("a", "int", 0)), S(("a", "uint", 0)), 0)
    case("size", S(("a", "int", 0)), S(("a", "s64", 0)), 0)
    # ints also need equal names; same name, other signedness or size: no match either
    tgt.uint_named_int = tgt.add(T.Int("int", 4, 0, 0, 32))
    tgt.wide_int = tgt.add(T.Int("int", 8, SIGNED, 0, 64))
    loc.uint_named_int = loc.wide_int = loc.int
    case("sign_same_name", S(("a", "int", 0)), S(("a", "uint_named_int", 0)), 0)
    case("size_same_name", S(("a", "int", 0)), S(("a", "wide_int", 0)), 0)
    case("moved", S(("a", "int", 0)), S(("x", "u64", 0), ("a", "int", 64)), 1)
    case("kind", S(("a", "int", 0)),
         lambda ts, n: ts.struct(n, 16, ("a", ts.int, 0), union=True), 0)
    # behind a pointer, a struct matches a fwd of the same name, and only the name counts
    case("ptr_fwd",
         lambda ts, n: ts.struct(n, 8, ("p", ts.ptr(ts.struct("inner", 4, ("q", ts.int, 0))), 0)),
         lambda ts, n: ts.struct(n, 8, ("p", ts.ptr(ts.add(T.Fwd("inner"))), 0)), 1)
    case("ptr_fwd_union",
         lambda ts, n: ts.struct(n, 8, ("p", ts.ptr(ts.struct("inner2", 4, ("q", ts.int, 0))), 0)),
         lambda ts, n: ts.struct(n, 8, ("p", ts.ptr(ts.add(T.Fwd("inner2", is_union=True))), 0)),
         0)
    case("arr", lambda ts, n: ts.struct(n, 8, ("a", ts.array(ts.int, 2), 0)),
         lambda ts, n: ts.struct(n, 8, ("a", ts.array(ts.int, 3), 0)), 0)
    case("enum_names", lambda ts, n: ts.add(T.Enum(n, 4, [("E_A", 1), ("E_B___x", 2)])),
         lambda ts, n: ts.add(T.Enum64(n, 4, [("E_B", 9), ("E_A", 8), ("E_C", 7)])), 1)
    case("enum_missing", lambda ts, n: ts.add(T.Enum(n, 4, [("F_A", 1), ("F_Z", 2)])),
         lambda ts, n: ts.add(T.Enum(n, 4, [("F_A", 1), ("F_B", 2)])), 0)
    case("member_enum_renamed",
         lambda ts, n: ts.struct(n, 4, ("e", ts.add(T.Enum("e_one", 4, [("H_A", 1)])), 0)),
         lambda ts, n: ts.struct(n, 4, ("e", ts.add(T.Enum("e_two", 4, [("H_A", 1)])), 0)), 0)
    case("enum_size", lambda ts, n: ts.add(T.Enum(n, 4, [("G_A", 1)])),
         lambda ts, n: ts.add(T.Enum(n, 8, [("G_A", 1)])), 0)
    fp = lambda ret, *params: (lambda ts, n: ts.add(T.Typedef(n, ts.ptr(ts.add(T.FuncProto(
        "", getattr(ts, ret), [T.Param("", getattr(ts, p)) for p in params]))))))
    case("fn_same", fp("int", "u64", "int"), fp("int", "u64", "int"), 1)
    case("fn_arity", fp("int", "u64"), fp("int", "u64", "int"), 0)
    case("fn_ret", fp("int", "u64"), fp("uint", "u64"), 0)

    code = b"".join(mov(1) for _ in cases) + EXIT
    buf, res = run(loc.btf, [tgt.btf], code,
                   [relo(i, lid, "0", K.BPF_CORE_TYPE_MATCHES)
                    for i, (_, lid, _) in enumerate(cases)])
    got = {name: r.new for (name, _, _), r in zip(cases, res)}
    assert got == {name: want for name, _, want in cases}


def test_candidates_from_modules_only_when_main_has_none():
    loc = Types()
    lfoo = loc.struct("modtype", 4, ("x", loc.int, 0))
    lbar = loc.struct("both", 4, ("x", loc.int, 0))
    main = Types()
    main.struct("both", 8, ("pad", main.int, 0), ("x", main.int, 32))
    module = BTF(base=main.btf, section="mod_demo")
    module.add(T.Struct("modtype", 8, [T.Member("y", 1, 0), T.Member("x", 1, 32)]))
    module.add(T.Struct("both", 12, [T.Member("pad", 3, 0), T.Member("x", 1, 64)]))
    buf, res = run(loc.btf, [main.btf, module], mov(0) + mov(0) + EXIT, [
        relo(0, lfoo, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET),
        relo(1, lbar, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET),
    ])
    assert [r.new for r in res] == [4, 4]
    assert res[0].target.endswith("in mod_demo") and "in mod_demo" not in res[1].target


def test_flavored_names_in_split_target():
    loc = Types()
    lfoo = loc.struct("thing", 4, ("x", loc.int, 0))
    main = Types()
    module = BTF(base=main.btf, section="mod")
    module.add(T.Struct("thing___v7", 8, [T.Member("y", 1, 0), T.Member("x", 1, 32)]))
    buf, res = run(loc.btf, [main.btf, module], mov(0) + EXIT,
                   [relo(0, lfoo, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET)])
    assert res[0].new == 4 and "thing___v7" in res[0].target


def test_flavored_names_in_parsed_strings():
    """Flavors are found in a parsed BTF's string section, not only in added types."""
    loc = Types()
    lfoo = loc.struct("xyz___a", 4, ("x", loc.int, 0))
    tgt = Types()
    tgt.struct("xyz___b", 8, ("y", tgt.int, 0), ("x", tgt.int, 32))
    tgt.struct("xyz___b___c", 4, ("x", tgt.int, 0))      # essential name xyz___b: not a candidate
    parsed = BTF.parse(tgt.btf.encode())
    buf, res = run(loc.btf, [parsed], mov(0) + EXIT,
                   [relo(0, lfoo, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET)])
    assert res[0].new == 4


def test_insn_base_and_describe(pair):
    loc, lfoo, tgt, tfoo = pair
    buf, res = run(loc.btf, [tgt.btf], mov(0) + EXIT,
                   [relo(10, lfoo, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET)],
                   insn_base=10, describe=lambda i: f"handler+{i}")
    assert res[0].insn == 0 and res[0].where == "handler+0" and I.decode(buf, 0).imm == 16


@pytest.mark.parametrize("code, relos, message", [
    (mov(0) + EXIT, [(4, 7, "0:0", 0)], "not an instruction of this program"),
    (mov(0) + EXIT, [(16, 7, "0:0", 0)], "not an instruction of this program"),
    (mov(0) + EXIT, [(0, 7, "0:x", 0)], "bad access string"),
    (mov(0) + EXIT, [(0, 7, "", 0)], "bad access string"),
    (mov(0) + EXIT, [(0, 7, "0:9", 0)], "has no member #9"),
    (mov(0) + EXIT, [(0, 7, "0:1", 8)], "expected '0'"),
    (mov(0) + EXIT, [(0, 7, "0:0", 99)], "unknown kind 99"),
    (mov(0) + EXIT, [(0, 999, "0:0", 0)], "type id 999 is not in the local BTF"),
    (mov(5) + EXIT, [(0, 7, "0:0", 0)], "holds 5, expected 0"),
    (ldx(4) + EXIT, [(0, 7, "0:0", 0)], "has offset 4, expected 0"),
    (mov(31) + EXIT, [(0, 7, "0:0", 5)], "holds 31, expected 32"),    # rshift is validated
    (I.Insn(I.CALL, 0, 0, 0, 1).encode() + EXIT, [(0, 7, "0:0", 0)], "can't relocate"),
    (I.Insn(uapi.BPF_ALU64 | uapi.BPF_ADD | uapi.BPF_X, 1, 2, 0, 0).encode() + EXIT,
     [(0, 7, "0:0", 0)], "no immediate operand"),
    (I.Insn(I.LD_IMM64, 1, 1, 0, 0).encode() + mov(0) + EXIT, [(0, 7, "0:0", 0)],
     "unexpected form"),
    (ld_imm64(0), [(0, 7, "0:0:1", 0)], "neither a struct/union nor an array"),
    (mov(0) + EXIT, [(0, 7, "0:0", 5)], None),                 # rshift on a non-bitfield: fine
])
def test_malformed_relocations(pair, code, relos, message):
    loc, lfoo, tgt, tfoo = pair
    relos = [CoreRelo(*r) for r in relos]
    if message is None:
        buf, res = run(loc.btf, [tgt.btf], mov(32) + EXIT, relos)
        assert res[0].new == 32
        return
    with pytest.raises(ObjectError, match=message):
        run(loc.btf, [tgt.btf], code, relos)


def test_anonymous_local_type_is_refused():
    loc = Types()
    anon = loc.struct("", 4, ("x", loc.int, 0))
    tgt = Types()
    with pytest.raises(ObjectError, match="anonymous"):
        run(loc.btf, [tgt.btf], mov(0) + EXIT, [relo(0, anon, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET)])
    buf, res = run(loc.btf, [tgt.btf], mov(anon) + EXIT,
                   [relo(0, anon, "0", K.BPF_CORE_TYPE_ID_LOCAL)])
    assert res[0].new == anon


def test_poison_message_for_types_and_enums():
    loc = Types()
    le = loc.add(T.Enum("gone", 4, [("G", 1)]))
    tgt = Types()
    buf, res = run(loc.btf, [tgt.btf], ld_imm64(1) + EXIT,
                   [relo(0, le, "0", K.BPF_CORE_ENUMVAL_VALUE)])
    msg = core.poison_message(res[0])
    assert "enum gone::G" in msg and "bpf_core_enum_value_exists()" in msg
    assert res[0].orig == 1 and res[0].poisoned


def test_candidate_lookup_is_cached(pair, monkeypatch):
    """One target-BTF search per local type per relocate() call, and across calls."""
    loc, lfoo, tgt, tfoo = pair
    calls = []
    real = tgt.btf.find
    monkeypatch.setattr(tgt.btf, "find", lambda *a: calls.append(a) or real(*a))
    relos = [relo(0, lfoo, "0:0", K.BPF_CORE_FIELD_BYTE_OFFSET),
             relo(1, lfoo, "0:1", K.BPF_CORE_FIELD_BYTE_OFFSET)]
    run(loc.btf, [tgt.btf], mov(0) + mov(8) + EXIT, relos)
    assert len(calls) == 1
    run(loc.btf, [tgt.btf], mov(0) + mov(8) + EXIT, relos)
    assert len(calls) == 1
