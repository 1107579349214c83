"""CO-RE patching (pybpf.btf.core) at its edges, on hand-built BTF: the exact
values patched into each instruction form, the immediate and offset range
checks at their boundaries, the checks that the instruction holds the local
value, load/store width changes to every size, poisoning next to other
instructions, error and poison texts in full, and where candidates come from
(default kernel targets, modules, flavors in parsed and split string sections)."""
from __future__ import annotations

import struct
from typing import Tuple, get_args, get_origin

import pytest

from test_core import EXIT, Types, ld_imm64, ldx, mov, relo, run, st, stx
from pybpf import uapi
from pybpf.asm import insn as I
from pybpf.btf import BTF, CoreRelo, core, kernel
from pybpf.btf import types as T
from pybpf.errors import ObjectError
from pybpf.uapi import bpf_core_relo_kind as K

OFF = K.BPF_CORE_FIELD_BYTE_OFFSET
VALUE = K.BPF_CORE_ENUMVAL_VALUE
POISON = bytes([I.CALL, 0, 0, 0]) + (195896080).to_bytes(4, "little")


def enum_pair(local_value: int, target_value: int, *, target64: bool = True,
              target_signed: bool = False) -> Tuple[Types, int, Types]:
    """A local ENUM64 ``e`` with E = local_value and a target with E = target_value."""
    loc = Types()
    le = loc.add(T.Enum64("e", 8, [("E", local_value)], signed=local_value < 0))
    tgt = Types()
    cls = T.Enum64 if target64 else T.Enum
    tgt.add(cls("e", 8 if target64 else 4, [("E", target_value)], signed=target_signed))
    return loc, le, tgt


def error(local: BTF, targets, code: bytes, relos, **kw) -> str:
    with pytest.raises(ObjectError) as info:
        run(local, targets, code, relos, **kw)
    return str(info.value)


# ------------------------------------------------------------------ the poison call

def test_poison_call_bytes_and_is_poisoned():
    assert core.POISON_IMM == 0xBAD2310 == 195896080
    loc = Types()
    lfoo = loc.struct("foo", 8, ("a", loc.int, 0), ("b", loc.int, 32))
    tgt = Types()
    tgt.struct("foo", 4, ("a", tgt.int, 0))
    code = mov(7) + ldx(4) + mov(9) + EXIT
    buf, res = run(loc.btf, [tgt.btf], code, [relo(1, lfoo, "0:1", OFF)])
    assert bytes(buf) == mov(7) + POISON + mov(9) + EXIT
    assert [core.is_poisoned(buf, i) for i in range(4)] == [False, True, False, False]
    assert res[0].poisoned and res[0].reason == "[7] struct foo has no field 'b'"
    assert (res[0].orig, res[0].new) == (4, 0)        # as `pybpf check --json` shows them
    # an ld_imm64: both slots, and nothing after them
    buf, res = run(loc.btf, [tgt.btf], mov(7) + mov(8) + ld_imm64(4) + mov(9) + EXIT,
                   [relo(2, lfoo, "0:1", OFF)])
    assert bytes(buf) == mov(7) + mov(8) + POISON + POISON + mov(9) + EXIT
    assert [core.is_poisoned(buf, i) for i in range(6)] == [False, False, True, True, False, False]


def test_poisoned_ld_imm64_missing_its_second_slot_stays_in_the_buffer():
    loc = Types()
    lfoo = loc.struct("foo", 8, ("b", loc.int, 0))
    tgt = Types()
    tgt.struct("foo", 4, ("a", tgt.int, 0))
    code = mov(1) + ld_imm64(0)[:8]
    buf, res = run(loc.btf, [tgt.btf], code, [relo(1, lfoo, "0:0", OFF)])
    assert bytes(buf) == mov(1) + POISON and res[0].poisoned and res[0].new == 0


# ------------------------------------------------------------------ texts

def test_result_str_and_defaults():
    loc = Types()
    lfoo = loc.struct("foo", 8, ("a", loc.int, 0), ("b", loc.int, 32))
    tgt = Types()
    tfoo = tgt.struct("foo", 12, ("x", tgt.int, 0), ("a", tgt.int, 64))
    buf, res = run(loc.btf, [tgt.btf], mov(0) + mov(lfoo) + mov(4) + EXIT, [
        relo(0, lfoo, "0:0", OFF), relo(1, lfoo, "0", K.BPF_CORE_TYPE_ID_LOCAL),
        relo(2, lfoo, "0:1", OFF)])
    assert str(res[0]) == ("relo #0 <byte_off> [7] struct foo.a (0:0 @ offset 0) at insn #0: "
                           "0 -> 8 via [7] struct foo.a (0:1 @ offset 8)")
    assert str(res[1]) == "relo #1 <local_type_id> [7] struct foo at insn #1: 7 -> 7"
    assert str(res[2]) == ("relo #2 <byte_off> [7] struct foo.b (0:1 @ offset 4) at insn #2: "
                           "poisoned ([7] struct foo has no field 'b')")
    assert res[0].kind_name == "byte_off" and res[1].kind_name == "local_type_id"
    assert (res[1].target, res[1].reason, res[1].poisoned) == ("", "", False)
    assert (res[0].reason, res[0].poisoned, res[0].where) == ("", False, "insn #0")
    assert (res[2].orig, res[2].insn, res[2].index) == (4, 2, 2)


def test_poison_messages_in_full():
    loc = Types()
    lfoo = loc.struct("foo", 8, ("a", loc.int, 0))
    le = loc.add(T.Enum("gone", 4, [("G", 1)]))
    tgt = Types()
    tgt.struct("foo", 4, ("z", tgt.int, 0))
    buf, res = run(loc.btf, [tgt.btf], ldx(0) + mov(1) + EXIT,
                   [relo(0, lfoo, "0:0", OFF), relo(1, le, "0", VALUE)],
                   describe=lambda i: f"prog p insn {i}")
    assert core.poison_message(res[0]) == (
        "CO-RE relocation #0 (byte_off) for field `struct foo.a` could not be applied: "
        "[7] struct foo has no field 'a'. The instruction at prog p insn 0 was poisoned and "
        "the verifier reached it; guard the access with bpf_core_field_exists() or adjust "
        "the local type.")
    assert core.poison_message(res[1], "   x = GONE;  ") == (
        "CO-RE relocation #1 (enumval_value) for enum value `enum gone::G` could not be "
        "applied: the target has no type named 'gone' (or a ___flavor of it). The "
        "instruction at prog p insn 1 was poisoned and the verifier reached it; guard the "
        "access with bpf_core_enum_value_exists() or adjust the local type.\n    x = GONE;")
    fake = core.Result(3, 0, K.BPF_CORE_TYPE_SIZE, 7, "struct foo", "struct foo", "[7]", 0, 0,
                       True, "", "why", "insn #0")
    assert core.poison_message(fake, "") == (
        "CO-RE relocation #3 (type_size) for type `struct foo` could not be applied: why. "
        "The instruction at insn #0 was poisoned and the verifier reached it; guard the "
        "access with bpf_core_type_exists() or adjust the local type.")




def test_why_missing_lists_three_candidates_then_counts():
    loc = Types()
    lfoo = loc.struct("foo", 4, ("a", loc.int, 0))
    for n, tail in ((3, ""), (4, "; and 1 more candidates"), (6, "; and 3 more candidates")):
        tgt = Types()
        ids = [tgt.struct("foo" if i == 0 else f"foo___v{i}", 4, ("z", tgt.int, 0))
               for i in range(n)]
        buf, res = run(loc.btf, [tgt.btf], ldx(0) + EXIT, [relo(0, lfoo, "0:0", OFF)])
        names = ["foo" if i == 0 else f"foo___v{i}" for i in range(n)]
        want = "; ".join(f"[{tid}] struct {nm} has no field 'a'"
                         for tid, nm in zip(ids[:3], names[:3])) + tail
        assert res[0].reason == want


def test_relocation_error_text_in_full():
    loc = Types()
    lfoo = loc.struct("foo", 8, ("a", loc.int, 0))
    tgt = Types()
    tgt.struct("foo", 8, ("a", tgt.int, 32))
    msg = error(loc.btf, [tgt.btf], mov(5) + EXIT, [relo(0, lfoo, "0:0", OFF)])
    assert msg == ("CO-RE relocation #0 <byte_off> [7] struct foo.a (0:0 @ offset 0) "
                   "(access '0:0') at insn #0: instruction 'r1 = 5' holds 5, expected 0")
    assert error(loc.btf, [tgt.btf], mov(0) + EXIT, [CoreRelo(0, lfoo, "0:0", 99)]) == \
        "CO-RE relocation #0 at insn #0: unknown kind 99"
    assert error(loc.btf, [tgt.btf], mov(0) + EXIT, [CoreRelo(0, 99, "0:0", 0)]) == \
        "CO-RE relocation #0 (byte_off) at insn #0: type id 99 is not in the local BTF"
    assert error(loc.btf, [tgt.btf], mov(0) + EXIT, [CoreRelo(12, lfoo, "0:0", 0)]) == \
        "CO-RE relocation #0: instruction offset 12 is not an instruction of this program"


@pytest.mark.parametrize("insn_off, base, ok", [
    (0, 0, True), (8, 0, True), (16, 0, False), (4, 0, False), (15, 0, False),
    (8, 1, True), (16, 1, True), (0, 1, False), (24, 1, False),
])
def test_instruction_slot_bounds(insn_off, base, ok):
    loc = Types()
    lfoo = loc.struct("foo", 4, ("a", loc.int, 0))
    tgt = Types()
    tgt.struct("foo", 8, ("x", tgt.int, 0), ("a", tgt.int, 32))
    relos = [CoreRelo(insn_off, lfoo, "0:0", OFF)]
    if ok:
        buf, res = run(loc.btf, [tgt.btf], mov(0) + mov(0), relos, insn_base=base)
        slot = insn_off // 8 - base
        assert res[0].insn == slot and I.decode(buf, slot).imm == 4
        assert I.decode(buf, 1 - slot).imm == 0
    else:
        assert error(loc.btf, [tgt.btf], mov(0) + mov(0), relos, insn_base=base) == (
            f"CO-RE relocation #0: instruction offset {insn_off} is not an instruction of "
            f"this program")


# ------------------------------------------------------------------ ALU immediates

@pytest.mark.parametrize("target, signed, target64, alu64, imm", [
    (0x7FFFFFFF, False, True, True, 0x7FFFFFFF),
    (0x80000000, False, True, False, -(1 << 31)),       # bit 31: fits a 32-bit ALU op
    (0xFFFFFFFF, False, True, False, -1),
    (-1, True, True, True, -1),                         # sign-extended back by ALU64
    (-(1 << 31), True, True, True, -(1 << 31)),
    (-(1 << 31), True, True, False, -(1 << 31)),
    (0x80000000, False, False, True, -(1 << 31)),       # a 32-bit enum value is an s32
    (-5, True, False, False, -5),
])
def test_alu_immediates_that_fit(target, signed, target64, alu64, imm):
    loc, le, tgt = enum_pair(3, target, target64=target64, target_signed=signed)
    buf, res = run(loc.btf, [tgt.btf], mov(3, alu64=alu64) + EXIT, [relo(0, le, "0", VALUE)])
    assert I.decode(buf, 0).imm == imm and not res[0].poisoned
    assert res[0].new == target & (2 ** 64 - 1) if target64 else True
    assert res[0].orig == 3


@pytest.mark.parametrize("target, signed, alu64", [
    (0x80000000, False, True), (0xFFFFFFFF, False, True), (1 << 32, False, False),
    (1 << 32, False, True), (-(1 << 31) - 1, True, True), (-(1 << 31) - 1, True, False),
    (1 << 63, False, True), (1 << 62, False, True),
])
def test_alu_immediates_that_do_not_fit(target, signed, alu64):
    loc, le, tgt = enum_pair(3, target, target_signed=signed)
    msg = error(loc.btf, [tgt.btf], mov(3, alu64=alu64) + EXIT, [relo(0, le, "0", VALUE)])
    want = f"value {target & (2 ** 64 - 1):#x} does not fit the 32-bit immediate of "
    assert want in msg, msg


def test_alu_holds_the_widened_local_value():
    # -1 locally is the u64 0xffff...ff: an s32 immediate of -1 holds it
    loc, le, tgt = enum_pair(-1, 9)
    buf, res = run(loc.btf, [tgt.btf], mov(-1) + EXIT, [relo(0, le, "0", VALUE)])
    assert I.decode(buf, 0).imm == 9 and res[0].orig == -1 and res[0].new == 9
    loc, le, tgt = enum_pair(-2, 9)
    buf, res = run(loc.btf, [tgt.btf], mov(-2, alu64=False) + EXIT, [relo(0, le, "0", VALUE)])
    assert I.decode(buf, 0).imm == 9 and res[0].orig == -2
    for wrong in (-3, 2, 0x7FFFFFFE):
        msg = error(loc.btf, [tgt.btf], mov(wrong) + EXIT, [relo(0, le, "0", VALUE)])
        assert msg.endswith(f"holds {wrong}, expected {(1 << 64) - 2}"), msg


@pytest.mark.parametrize("code", [
    uapi.BPF_ALU | uapi.BPF_END | uapi.BPF_K,            # BPF_TO_LE (0)
    uapi.BPF_ALU | uapi.BPF_END | uapi.BPF_X,            # BPF_TO_BE (8)
    uapi.BPF_ALU64 | uapi.BPF_END,                       # bswap
    uapi.BPF_ALU64 | uapi.BPF_MOV | uapi.BPF_X,
    uapi.BPF_ALU | uapi.BPF_ADD | uapi.BPF_X,
])
def test_alu_forms_without_an_immediate(code):
    loc = Types()
    lfoo = loc.struct("foo", 4, ("a", loc.int, 0))
    tgt = Types()
    tgt.struct("foo", 4, ("a", tgt.int, 0))
    msg = error(loc.btf, [tgt.btf], I.Insn(code, 1, 0, 0, 0).encode() + EXIT,
                [relo(0, lfoo, "0:0", OFF)])
    assert msg.endswith("has no immediate operand to relocate"), msg


def test_alu_forms_with_an_immediate():
    loc = Types()
    lfoo = loc.struct("foo", 4, ("a", loc.int, 0))
    tgt = Types()
    tgt.struct("foo", 8, ("x", tgt.int, 0), ("a", tgt.int, 32))
    for code in (uapi.BPF_ALU64 | uapi.BPF_ADD | uapi.BPF_K, uapi.BPF_ALU | uapi.BPF_MOV,
                 uapi.BPF_ALU64 | uapi.BPF_LSH | uapi.BPF_K):
        buf, res = run(loc.btf, [tgt.btf], I.Insn(code, 3, 0, 0, 0).encode() + EXIT,
                       [relo(0, lfoo, "0:0", OFF)])
        assert I.decode(buf, 0) == I.Insn(code, 3, 0, 0, 4)


def test_unvalidated_values_keep_what_the_instruction_held():
    loc = Types()
    lbf = loc.struct("bf", 8, ("x", loc.uint, 3, 5))
    tgt = Types()
    tgt.struct("bf", 16, ("x", tgt.uint, 70, 5))
    tid = tgt.struct("bf___2", 4, ("y", tgt.int, 0))
    # bitfield byte offsets are not checked against the instruction: the compiler chose
    buf, res = run(loc.btf, [tgt.btf], ldx(3) + mov(77) + ld_imm64(0x1234_5678_9) + EXIT, [
        relo(0, lbf, "0:0", OFF), relo(1, lbf, "0:0", OFF),
        relo(2, lbf, "0", K.BPF_CORE_TYPE_ID_TARGET)])
    assert I.decode(buf, 0).off == 8 and res[0].orig == 3 and res[0].new == 8
    assert I.decode(buf, 1).imm == 8 and res[1].orig == 77
    assert I.imm64(buf, 2) == 7 and res[2].orig == 0x1234_5678_9 and res[2].new == 7
    assert tid == 8


# ------------------------------------------------------------------ loads, stores

def test_offset_boundary_of_16_bits():
    loc = Types()
    lfoo = loc.struct("foo", 2, ("pad", loc.char, 0), ("x", loc.char, 8))
    for pad, ok in ((0x7FFF, True), (0x8000, False), (0x7FFE, True)):
        tgt = Types()
        tgt.struct("foo", pad + 1, ("pad", tgt.array(tgt.char, pad), 0),
                   ("x", tgt.char, 8 * pad))
        code = ldx(1, uapi.BPF_B) + EXIT
        if ok:
            buf, res = run(loc.btf, [tgt.btf], code, [relo(0, lfoo, "0:1", OFF)])
            assert I.decode(buf, 0).off == pad and res[0].orig == 1 and res[0].new == pad
        else:
            msg = error(loc.btf, [tgt.btf], code, [relo(0, lfoo, "0:1", OFF)])
            assert msg.endswith(f"offset {pad} does not fit the 16-bit offset of "
                                f"'r1 = *(u8 *)(r2 +1)'"), msg


def test_store_and_load_offsets_patched_in_place():
    loc = Types()
    lfoo = loc.struct("foo", 16, ("a", loc.int, 0), ("b", loc.int, 32))
    tgt = Types()
    tgt.struct("foo", 24, ("b", tgt.int, 0), ("x", tgt.u64, 64), ("a", tgt.int, 128))
    code = ldx(4) + stx(0) + st(4, -7) + EXIT
    buf, res = run(loc.btf, [tgt.btf], code, [
        relo(0, lfoo, "0:1", OFF), relo(1, lfoo, "0:0", OFF), relo(2, lfoo, "0:1", OFF)])
    assert bytes(buf) == ldx(0) + stx(16) + st(0, -7) + EXIT
    assert [(r.orig, r.new) for r in res] == [(4, 0), (0, 16), (4, 0)]
    msg = error(loc.btf, [tgt.btf], stx(8) + EXIT, [relo(0, lfoo, "0:1", OFF)])
    assert msg.endswith("has offset 8, expected 4"), msg


@pytest.mark.parametrize("local, target, size, new_size", [
    ("char", "u16", uapi.BPF_B, uapi.BPF_H),
    ("u16", "uint", uapi.BPF_H, uapi.BPF_W),
    ("uint", "u64", uapi.BPF_W, uapi.BPF_DW),
    ("u64", "char", uapi.BPF_DW, uapi.BPF_B),
    ("u64", "u16", uapi.BPF_DW, uapi.BPF_H),
    ("u16", "char", uapi.BPF_H, uapi.BPF_B),
])
def test_width_changes_to_every_size(local, target, size, new_size):
    loc = Types()
    lt = getattr(loc, local)
    lfoo = loc.struct("foo", 16, ("pad", loc.u64, 0), ("v", lt, 64))
    tgt = Types()
    tt = getattr(tgt, target)
    tgt.struct("foo", 16, ("v", tt, 0))
    code = ldx(8, size) + stx(8, size) + st(8, 5, size) + EXIT
    relos = [relo(i, lfoo, "0:1", OFF) for i in range(3)]
    buf, res = run(loc.btf, [tgt.btf], code, relos)
    assert bytes(buf) == ldx(0, new_size) + stx(0, new_size) + st(0, 5, new_size) + EXIT
    assert not any(r.poisoned for r in res)


def test_width_changes_that_cannot_be_made():
    loc = Types()
    lfoo = loc.struct("foo", 8, ("v", loc.u64, 0), ("s", loc.s64, 0))
    tgt = Types()
    wide = tgt.add(T.Int("unsigned __int128", 16, 0, 0, 128))
    tgt.struct("foo", 16, ("v", wide, 0), ("s", tgt.int, 0))
    msg = error(loc.btf, [tgt.btf], ldx(0, uapi.BPF_DW) + EXIT, [relo(0, lfoo, "0:0", OFF)])
    assert msg.endswith("the target field is 16 bytes: no load/store has that width"), msg
    msg = error(loc.btf, [tgt.btf], ldx(0, uapi.BPF_W) + EXIT, [relo(0, lfoo, "0:0", OFF)])
    assert msg.endswith("instruction accesses 4 bytes of a 8-byte field"), msg
    buf, res = run(loc.btf, [tgt.btf], ldx(0, uapi.BPF_DW) + EXIT, [relo(0, lfoo, "0:1", OFF)])
    assert res[0].poisoned and bytes(buf) == POISON + EXIT
    assert res[0].reason == ("the field is 4 bytes in the target, 8 locally, and only pointers "
                             "and unsigned integers can be loaded or stored with another width")


def test_same_width_signed_fields_are_not_resized():
    loc = Types()
    lfoo = loc.struct("foo", 16, ("s", loc.int, 0), ("e", loc.s64, 64))
    tgt = Types()
    tgt.struct("foo", 16, ("e", tgt.s64, 0), ("s", tgt.int, 64))
    buf, res = run(loc.btf, [tgt.btf], ldx(0) + ldx(8, uapi.BPF_DW) + EXIT,
                   [relo(0, lfoo, "0:0", OFF), relo(1, lfoo, "0:1", OFF)])
    assert bytes(buf) == ldx(8) + ldx(0, uapi.BPF_DW) + EXIT
    assert not any(r.poisoned for r in res)


# ------------------------------------------------------------------ ld_imm64

def test_ld_imm64_field_offset():
    loc = Types()
    lfoo = loc.struct("foo", 8, ("a", loc.int, 0), ("b", loc.int, 32))
    tgt = Types()
    tgt.struct("foo", 16, ("b", tgt.int, 96))
    buf, res = run(loc.btf, [tgt.btf], mov(0) + ld_imm64(4) + EXIT, [relo(1, lfoo, "0:1", OFF)])
    assert bytes(buf) == mov(0) + ld_imm64(12) + EXIT
    assert (res[0].orig, res[0].new) == (4, 12)


@pytest.mark.parametrize("held", [
    0x1122_3344_5566_7789, 0x1122_3344_5566_7788 ^ (1 << 40), 0x1122_3344_5566_7788 ^ (1 << 63),
    0x1122_3344_5566_7788 ^ (1 << 32), 0x1122_3344_5566_7788 ^ (1 << 31), 0x5566_7788,
])
def test_ld_imm64_must_hold_all_64_bits(held):
    loc, le, tgt = enum_pair(0x1122_3344_5566_7788, 5)
    msg = error(loc.btf, [tgt.btf], ld_imm64(held) + EXIT, [relo(0, le, "0", VALUE)])
    assert msg.endswith(f"holds {held:#x}, expected 0x1122334455667788"), msg
    buf, res = run(loc.btf, [tgt.btf], ld_imm64(0x1122_3344_5566_7788) + EXIT,
                   [relo(0, le, "0", VALUE)])
    assert bytes(buf) == ld_imm64(5) + EXIT


@pytest.mark.parametrize("held, ok", [
    (0xFFFF_FFFF_F3BC_C908, True), (0x0000_0001_F3BC_C908, True), (0xF3BC_C909, False),
    (0xF3BC_C90A, False), (0x73BC_C908, False), (0xF3BC_C908 ^ (1 << 16), False),
])
def test_ld_imm64_of_a_clang14_truncated_enum_checks_the_low_half(held, ok):
    loc = Types()
    le = loc.add(T.Enum("iv", 8, [("IV0", 0xF3BCC908)], signed=False))
    tgt = Types()
    tgt.add(T.Enum64("iv", 8, [("IV0", 0x6A09E667F3BCC908)], signed=False))
    if ok:
        buf, res = run(loc.btf, [tgt.btf], ld_imm64(held) + EXIT, [relo(0, le, "0", VALUE)])
        assert bytes(buf) == ld_imm64(0x6A09E667F3BCC908) + EXIT and res[0].orig == held
    else:
        msg = error(loc.btf, [tgt.btf], ld_imm64(held) + EXIT, [relo(0, le, "0", VALUE)])
        assert f"holds {held:#x}, expected" in msg, msg


def test_ld_imm64_of_a_type_size_checks_all_bits():
    loc = Types()
    le = loc.add(T.Enum("e32", 4, [("A", 1)]))
    tgt = Types()
    tgt.add(T.Enum("e32", 8, [("A", 1)]))
    buf, res = run(loc.btf, [tgt.btf], ld_imm64(4) + EXIT, [relo(0, le, "0", K.BPF_CORE_TYPE_SIZE)])
    assert bytes(buf) == ld_imm64(8) + EXIT
    msg = error(loc.btf, [tgt.btf], ld_imm64(1 << 32 | 4) + EXIT,
                [relo(0, le, "0", K.BPF_CORE_TYPE_SIZE)])
    assert msg.endswith("holds 0x100000004, expected 0x4"), msg


@pytest.mark.parametrize("first, second", [
    (I.Insn(I.LD_IMM64, 1, 0, 1, 0), I.Insn(0, 0, 0, 0, 0)),
    (I.Insn(I.LD_IMM64, 1, 2, 0, 0), I.Insn(0, 0, 0, 0, 0)),
    (I.Insn(I.LD_IMM64, 1, 0, 0, 0), I.Insn(1, 0, 0, 0, 0)),
    (I.Insn(I.LD_IMM64, 1, 0, 0, 0), I.Insn(0, 1, 0, 0, 0)),
    (I.Insn(I.LD_IMM64, 1, 0, 0, 0), I.Insn(0, 0, 1, 0, 0)),
    (I.Insn(I.LD_IMM64, 1, 0, 0, 0), I.Insn(0, 0, 0, 1, 0)),
])
def test_ld_imm64_of_an_unexpected_form(first, second):
    loc = Types()
    lfoo = loc.struct("foo", 4, ("a", loc.int, 0))
    tgt = Types()
    tgt.struct("foo", 4, ("a", tgt.int, 0))
    msg = error(loc.btf, [tgt.btf], mov(0) + first.encode() + second.encode() + EXIT,
                [relo(1, lfoo, "0:0", OFF)])
    assert msg.endswith("ld_imm64 at insn #1 has an unexpected form"), msg
    # the second slot's immediate is free
    buf, res = run(loc.btf, [tgt.btf], ld_imm64(0) + EXIT, [relo(0, lfoo, "0:0", OFF)])
    assert bytes(buf) == ld_imm64(0) + EXIT


def test_ld_imm64_without_its_second_slot():
    loc = Types()
    lfoo = loc.struct("foo", 4, ("a", loc.int, 0))
    tgt = Types()
    tgt.struct("foo", 4, ("a", tgt.int, 0))
    msg = error(loc.btf, [tgt.btf], mov(0) + ld_imm64(0)[:8], [relo(1, lfoo, "0:0", OFF)])
    assert msg.endswith("ld_imm64 at insn #1 has an unexpected form"), msg
    msg = error(loc.btf, [tgt.btf], ld_imm64(0)[:8], [relo(0, lfoo, "0:0", OFF)])
    assert msg.endswith("ld_imm64 at insn #0 has an unexpected form"), msg


# ------------------------------------------------------------------ candidates

def test_ambiguity_texts():
    loc = Types()
    lfoo = loc.struct("foo", 8, ("a", loc.int, 0))
    tgt = Types()
    tgt.struct("foo", 8, ("a", tgt.int, 32))
    tgt.struct("foo___v2", 8, ("a", tgt.int, 0))
    msg = error(loc.btf, [tgt.btf], mov(0) + EXIT, [relo(0, lfoo, "0:0", OFF)])
    assert msg.endswith("ambiguous: candidates [7] struct foo.a (0:0 @ offset 4) and [8] "
                        "struct foo___v2.a (0:0 @ offset 0) give 4 and 0"), msg
    # same answer (exists), other offsets: still ambiguous
    msg = error(loc.btf, [tgt.btf], mov(1) + EXIT,
                [relo(0, lfoo, "0:0", K.BPF_CORE_FIELD_EXISTS)])
    assert msg.endswith("give 1 and 1"), msg


def test_candidate_cache_is_the_callers():
    loc = Types()
    lfoo = loc.struct("foo", 8, ("a", loc.int, 0))
    tgt = Types()
    t1 = tgt.struct("foo", 8, ("a", tgt.int, 32))
    t2 = tgt.struct("foo___v2", 8, ("b", tgt.int, 0))
    for name in core.__all__:
        assert hasattr(core, name), name
    assert get_origin(core.Candidates) is dict and get_args(core.Candidates)[0] is int
    cands: core.Candidates = {}
    buf, res = run(loc.btf, [tgt.btf], mov(0) + EXIT, [relo(0, lfoo, "0:0", OFF)], cands=cands)
    assert cands == {lfoo: [(tgt.btf, t1)]} and (t1, t2) == (7, 8)
    # a pruned cache is used as it is
    cands[lfoo] = []
    buf, res = run(loc.btf, [tgt.btf], mov(0) + EXIT, [relo(0, lfoo, "0:0", OFF)], cands=cands)
    assert res[0].poisoned and "no type named 'foo'" in res[0].reason


def test_no_targets_at_all():
    loc = Types()
    lfoo = loc.struct("foo", 8, ("a", loc.int, 0))
    buf, res = run(loc.btf, [], ldx(0) + mov(1) + EXIT,
                   [relo(0, lfoo, "0:0", OFF), relo(1, lfoo, "0", K.BPF_CORE_TYPE_EXISTS)])
    assert res[0].poisoned and res[1].new == 0 and I.decode(buf, 1).imm == 0


@pytest.fixture
def fake_kernel(tmp_path, monkeypatch):
    """/sys/kernel/btf stand-in: vmlinux with `struct both`, modules with more."""
    vm = Types()
    vm.struct("both", 8, ("pad", vm.int, 0), ("x", vm.int, 32))
    vm_blob = vm.btf.encode()
    (tmp_path / "vmlinux").write_bytes(vm_blob)
    base = BTF.parse(vm_blob)
    for name, struct_name, size in (("mod_a", "modonly", 12), ("mod_b", "other", 16)):
        mod = BTF(base)
        mod.add(T.Struct(struct_name, size, [T.Member("y", 1, 0), T.Member("x", 1, 8 * size - 32)]))
        (tmp_path / name).write_bytes(mod.encode())
    monkeypatch.setenv(kernel.VMLINUX_ENV, str(tmp_path / "vmlinux"))
    monkeypatch.setattr(kernel, "SYSFS_BTF", str(tmp_path))
    kernel.clear_cache()
    yield tmp_path
    kernel.clear_cache()


def test_default_targets_are_the_kernel_and_its_modules(fake_kernel):
    loc = Types()
    lboth = loc.struct("both", 4, ("x", loc.int, 0))
    lmod = loc.struct("modonly", 4, ("x", loc.int, 0))
    lother = loc.struct("other", 4, ("x", loc.int, 0))
    lnone = loc.struct("nowhere", 4, ("x", loc.int, 0))
    buf, res = run(loc.btf, None, mov(0) * 4 + EXIT, [
        relo(0, lboth, "0:0", OFF), relo(1, lmod, "0:0", OFF), relo(2, lother, "0:0", OFF),
        relo(3, lnone, "0:0", OFF)])
    assert [I.decode(buf, i).imm for i in range(3)] == [4, 8, 12]
    vm = str(fake_kernel / "vmlinux")
    assert res[0].target == "[7] struct both.x (0:1 @ offset 4)"
    assert res[1].target == f"[8] struct modonly.x (0:1 @ offset 8) in {fake_kernel / 'mod_a'}"
    assert res[2].target.endswith(f"in {fake_kernel / 'mod_b'}")
    assert res[3].poisoned and kernel.vmlinux().section == vm


def test_modules_are_searched_after_the_first_target():
    loc = Types()
    lfoo = loc.struct("foo", 4, ("x", loc.int, 0))
    main = Types()
    mods = []
    for size in (8, 12):
        mod = BTF(base=main.btf, section=f"mod{size}")
        if size == 12:
            mod.add(T.Struct("foo", size, [T.Member("y", 1, 0), T.Member("x", 1, 64)]))
        mods.append(mod)
    buf, res = run(loc.btf, [main.btf] + mods, mov(0) + EXIT, [relo(0, lfoo, "0:0", OFF)])
    assert I.decode(buf, 0).imm == 8 and res[0].target.endswith(" in mod12")


# ------------------------------------------------------------------ flavors

def split_with_strings(base: BTF, strings: bytes, types: bytes) -> BTF:
    head = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return BTF.parse(head + types + strings, base=base, section="mod_raw", validate=True)


def struct_rec(name_off: int, size: int, member_name: int, member_type: int, bit_off: int
               ) -> bytes:
    return struct.pack("<IIIIII", name_off, uapi.BTF_KIND_STRUCT << 24 | 1, size,
                       member_name, member_type, bit_off)


def test_flavor_whose_name_is_in_the_base_strings():
    """Module BTF reuses vmlinux strings: a module's `struct thing___v2` may be
    named by an offset into the base's string section."""
    vm = Types()
    vm.add(T.Typedef("thing___v2", vm.int))             # the string, but no struct
    vm.add(T.Int("x", 4, 0, 0, 32))
    base = BTF.parse(vm.btf.encode())
    name = base._strtab.offsets_of("thing___v2")[0]
    x = base._strtab.offsets_of("x")[0]
    mod = split_with_strings(base, b"", struct_rec(name, 8, x, 1, 32))
    loc = Types()
    lthing = loc.struct("thing", 4, ("x", loc.int, 0))
    buf, res = run(loc.btf, [base, mod], mov(0) + EXIT, [relo(0, lthing, "0:0", OFF)])
    assert I.decode(buf, 0).imm == 4 and "struct thing___v2.x" in res[0].target


def test_flavors_at_the_edges_of_a_string_section():
    base = Types()
    basex = BTF.parse(base.btf.encode())
    x = basex._strtab.offsets_of("int")[0]
    # a split string section that starts with "___" and then has the flavor
    strings = b"___lead___x\0thing___v3\0"
    mod = split_with_strings(basex, strings, struct_rec(basex._strtab.size + 12, 8, x, 1, 32))
    loc = Types()
    lthing = loc.struct("thing", 4, ("int", loc.int, 0))
    buf, res = run(loc.btf, [basex, mod], mov(0) + EXIT, [relo(0, lthing, "0:0", OFF)])
    assert I.decode(buf, 0).imm == 4 and "thing___v3" in res[0].target
    assert core._flavors(mod)["thing"] == ["thing___v3"]
    assert core._flavors(mod)["___lead"] == ["___lead___x"]
    # the first string after the leading NUL is a flavor
    tgt = Types()
    tgt.btf = BTF()
    lead = tgt.add(T.Struct("lead___v1", 4, [T.Member("int", 2, 0)]))
    tgt.add(T.Int("int", 4, 0, 0, 32))
    parsed = BTF.parse(tgt.btf.encode())
    assert parsed._strtab.offsets_of("lead___v1") == [1]     # right after the leading NUL
    loc = Types()
    llead = loc.struct("lead", 4, ("int", loc.int, 0))
    buf, res = run(loc.btf, [parsed], mov(1) + EXIT,
                   [relo(0, llead, "0", K.BPF_CORE_TYPE_EXISTS)])
    assert res[0].new == 1 and res[0].target.startswith(f"[{lead}] struct lead___v1")
    assert core._flavors(parsed) == {"lead": ["lead___v1"]}
    assert core._flavors(parsed) is core._flavors(parsed)       # indexed once
