"""BPF instructions: decode, encode and patch in place, plus a disassembler.

A program's code is a ``bytearray`` of 8-byte slots in host (little-endian on
every BPF target pybpf runs on) order: ``u8 code; u8 dst:4, src:4; s16 off;
s32 imm``.  ``ld_imm64`` takes two slots, the second holding the high 32 bits
of the immediate.  Functions take the slot index, not a byte offset.
"""
from __future__ import annotations

import struct
from typing import Iterator, NamedTuple, Union

from .. import uapi

INSN_SIZE = 8
#: instruction bytes: an object's code, or a copy being patched.
_Buf = Union[bytes, bytearray, memoryview]
_INSN = struct.Struct("<BBhi")
LD_IMM64 = uapi.BPF_LD | uapi.BPF_IMM | uapi.BPF_DW
CALL = uapi.BPF_JMP | uapi.BPF_CALL
EXIT = uapi.BPF_JMP | uapi.BPF_EXIT


class Insn(NamedTuple):
    code: int
    dst: int
    src: int
    off: int
    imm: int

    @property
    def cls(self) -> int:
        return self.code & 0x07

    def encode(self) -> bytes:
        return _INSN.pack(self.code, (self.src << 4) | self.dst, self.off, self.imm)


def decode(buf: _Buf, idx: int) -> Insn:
    code, regs, off, imm = _INSN.unpack_from(buf, idx * INSN_SIZE)
    return Insn(code, regs & 0xF, regs >> 4, off, imm)


def count(buf: _Buf) -> int:
    return len(buf) // INSN_SIZE


def iterate(buf: _Buf) -> Iterator[Insn]:
    for code, regs, off, imm in _INSN.iter_unpack(buf):
        yield Insn(code, regs & 0xF, regs >> 4, off, imm)


def set_imm(buf: bytearray, idx: int, imm: int) -> None:
    struct.pack_into("<i", buf, idx * INSN_SIZE + 4, _s32(imm))


def set_off(buf: bytearray, idx: int, off: int) -> None:
    struct.pack_into("<h", buf, idx * INSN_SIZE + 2, off)


def set_src(buf: bytearray, idx: int, src: int) -> None:
    pos = idx * INSN_SIZE + 1
    buf[pos] = (buf[pos] & 0x0F) | (src << 4)


def set_code(buf: bytearray, idx: int, code: int) -> None:
    buf[idx * INSN_SIZE] = code


def imm64(buf: _Buf, idx: int) -> int:
    """The 64-bit immediate of the ld_imm64 at idx."""
    lo: int = struct.unpack_from("<I", buf, idx * INSN_SIZE + 4)[0]
    hi: int = struct.unpack_from("<I", buf, (idx + 1) * INSN_SIZE + 4)[0]
    return (hi << 32) | lo


def set_imm64(buf: bytearray, idx: int, value: int) -> None:
    value &= (1 << 64) - 1
    struct.pack_into("<I", buf, idx * INSN_SIZE + 4, value & 0xFFFFFFFF)
    struct.pack_into("<I", buf, (idx + 1) * INSN_SIZE + 4, value >> 32)


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def is_subprog_call(ins: Insn) -> bool:
    return ins.code == CALL and ins.src == uapi.BPF_PSEUDO_CALL


# ------------------------------------------------------------------ disassembler

_ALU_OPS = {uapi.BPF_ADD: "+=", uapi.BPF_SUB: "-=", uapi.BPF_MUL: "*=", uapi.BPF_DIV: "/=",
            uapi.BPF_OR: "|=", uapi.BPF_AND: "&=", uapi.BPF_LSH: "<<=", uapi.BPF_RSH: ">>=",
            uapi.BPF_MOD: "%=", uapi.BPF_XOR: "^=", uapi.BPF_MOV: "=", uapi.BPF_ARSH: "s>>="}
_JMP_OPS = {uapi.BPF_JEQ: "==", uapi.BPF_JGT: ">", uapi.BPF_JGE: ">=", uapi.BPF_JSET: "&",
            uapi.BPF_JNE: "!=", uapi.BPF_JSGT: "s>", uapi.BPF_JSGE: "s>=", uapi.BPF_JLT: "<",
            uapi.BPF_JLE: "<=", uapi.BPF_JSLT: "s<", uapi.BPF_JSLE: "s<="}
_SIZES = {uapi.BPF_W: "u32", uapi.BPF_H: "u16", uapi.BPF_B: "u8", uapi.BPF_DW: "u64"}


def _helper_name(imm: int) -> str:
    name = uapi.func_name(imm)
    return f"bpf_{name}" if name else f"helper#{imm}"


def disasm_one(buf: _Buf, idx: int) -> str:
    """One instruction in the kernel verifier's C-like notation."""
    ins = decode(buf, idx)
    cls, op = ins.cls, ins.code & 0xF0
    if ins.code == LD_IMM64:
        if idx + 1 >= count(buf):
            return f"r{ins.dst} = <ld_imm64 missing its second slot>"
        return f"r{ins.dst} = {imm64(buf, idx):#x} ll" + (
            f" (pseudo {ins.src})" if ins.src else "")
    if cls in (uapi.BPF_ALU, uapi.BPF_ALU64):
        reg = "r" if cls == uapi.BPF_ALU64 else "w"
        rhs = f"{reg}{ins.src}" if ins.code & uapi.BPF_X else str(ins.imm)
        if op == uapi.BPF_NEG:
            return f"{reg}{ins.dst} = -{reg}{ins.dst}"
        if op == uapi.BPF_END:
            return f"{reg}{ins.dst} = {'be' if ins.code & uapi.BPF_X else 'le'}{ins.imm} {reg}{ins.dst}"
        return f"{reg}{ins.dst} {_ALU_OPS.get(op, '?=')} {rhs}"
    if cls in (uapi.BPF_JMP, uapi.BPF_JMP32):
        if ins.code == EXIT:
            return "exit"
        if ins.code == CALL:
            if ins.src == uapi.BPF_PSEUDO_CALL:
                return f"call pc{ins.imm:+d}"
            if ins.src == uapi.BPF_PSEUDO_KFUNC_CALL:
                return f"call kfunc#{ins.imm}"
            return f"call {_helper_name(ins.imm)}"
        if op == uapi.BPF_JA:
            return f"goto pc{(ins.imm if cls == uapi.BPF_JMP32 else ins.off):+d}"
        reg = "r" if cls == uapi.BPF_JMP else "w"
        rhs = f"{reg}{ins.src}" if ins.code & uapi.BPF_X else str(ins.imm)
        return f"if {reg}{ins.dst} {_JMP_OPS.get(op, '?')} {rhs} goto pc{ins.off:+d}"
    size = _SIZES[ins.code & 0x18]
    mode = ins.code & 0xE0
    if cls == uapi.BPF_LDX:
        return f"r{ins.dst} = *({size} *)(r{ins.src} {ins.off:+d})"
    if cls == uapi.BPF_STX and mode == uapi.BPF_ATOMIC:
        return f"lock *({size} *)(r{ins.dst} {ins.off:+d}) op{ins.imm:#x} r{ins.src}"
    if cls == uapi.BPF_STX:
        return f"*({size} *)(r{ins.dst} {ins.off:+d}) = r{ins.src}"
    if cls == uapi.BPF_ST:
        return f"*({size} *)(r{ins.dst} {ins.off:+d}) = {ins.imm}"
    return f"r0 = *({size} *)skb[{ins.imm}]"


def disasm(buf: _Buf) -> Iterator[str]:
    """``"idx: text"`` per instruction, skipping the second ld_imm64 slot."""
    idx, n = 0, count(buf)
    while idx < n:
        yield f"{idx:4d}: {disasm_one(buf, idx)}"
        idx += 2 if buf[idx * INSN_SIZE] == LD_IMM64 else 1
