"""Tiny hand-assembled BPF producers for ring buffers and perf buffers.

They need no compiler and no loader, so the ``ringbuf-layout`` scenario, the
tests and ``tools/bench_ringbuf.py`` can drive a real kernel producer anywhere.
Every program is a ``BPF_PROG_TYPE_SOCKET_FILTER`` run with
``BPF_PROG_TEST_RUN``; what it writes comes from a one-slot *parameter* array
map that Python fills before each run::

    struct param {              /* value of key 0 */
        u32 len;                /* payload length (output) */
        u32 unused;
        u64 flags;              /* bpf_ringbuf_* flags; bpf_perf_event_output's
                                   (index) flags, BPF_F_CURRENT_CPU by default */
        u64 seq;                /* counter bumped atomically by the seq producer */
        u64 pad;
        u8  payload[MAX_PAYLOAD];
    };

Programs: ``output`` (``bpf_ringbuf_output(rb, payload, len, flags)``),
``reserve`` (``bpf_ringbuf_reserve(rb, SIZE)``, copy, then submit or discard:
SIZE is baked in, the verifier wants a constant), ``seq`` (a 16-byte record
``{u64 ktime_ns, u64 seq}`` per run: the benchmark's producer), and
``perf_output`` (``bpf_perf_event_output(ctx, pb, flags, payload, len)``).
"""
from __future__ import annotations

import struct
from typing import Dict, List, Optional

from ..kernel import syscall
from .. import uapi
from ..asm.insn import Insn
from ..kernel.syscall import Fd

MAX_PAYLOAD = 2048
PARAM_HDR = 32
PARAM_SIZE = PARAM_HDR + MAX_PAYLOAD
_PARAM = struct.Struct("<IIQQQ")
_TEST_PACKET = bytes(64)  # socket-filter test runs need at least an Ethernet header

# ------------------------------------------------------------------ a minimal assembler

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)
_SIZE = {1: uapi.BPF_B, 2: uapi.BPF_H, 4: uapi.BPF_W, 8: uapi.BPF_DW}


class Asm:
    """Straight-line BPF with forward labels; ``bytes(asm)`` resolves jumps."""

    def __init__(self) -> None:
        self._insns: List[Insn] = []
        self._jumps: Dict[int, str] = {}  # insn index -> target label
        self._labels: Dict[str, int] = {}

    def _emit(self, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> "Asm":
        self._insns.append(Insn(code, dst, src, off, imm))
        return self

    def mov(self, dst: int, imm: int) -> "Asm":
        return self._emit(uapi.BPF_ALU64 | uapi.BPF_MOV | uapi.BPF_K, dst, imm=imm)

    def movr(self, dst: int, src: int) -> "Asm":
        return self._emit(uapi.BPF_ALU64 | uapi.BPF_MOV | uapi.BPF_X, dst, src)

    def add(self, dst: int, imm: int) -> "Asm":
        return self._emit(uapi.BPF_ALU64 | uapi.BPF_ADD | uapi.BPF_K, dst, imm=imm)

    def ldx(self, size: int, dst: int, src: int, off: int) -> "Asm":
        return self._emit(uapi.BPF_LDX | uapi.BPF_MEM | _SIZE[size], dst, src, off)

    def stx(self, size: int, dst: int, off: int, src: int) -> "Asm":
        return self._emit(uapi.BPF_STX | uapi.BPF_MEM | _SIZE[size], dst, src, off)

    def st(self, size: int, dst: int, off: int, imm: int) -> "Asm":
        return self._emit(uapi.BPF_ST | uapi.BPF_MEM | _SIZE[size], dst, off=off, imm=imm)

    def fetch_add64(self, dst: int, off: int, src: int) -> "Asm":
        """src = atomic_fetch_add((u64 *)(dst + off), src)."""
        return self._emit(uapi.BPF_STX | uapi.BPF_ATOMIC | uapi.BPF_DW, dst, src, off,
                          uapi.BPF_ADD | 0x01)  # BPF_FETCH

    def ld_map(self, dst: int, map_fd: int) -> "Asm":
        self._emit(uapi.BPF_LD | uapi.BPF_IMM | uapi.BPF_DW, dst, uapi.BPF_PSEUDO_MAP_FD,
                   imm=map_fd)
        return self._emit(0)

    def call(self, helper: int) -> "Asm":
        return self._emit(uapi.BPF_JMP | uapi.BPF_CALL, imm=helper)

    def jmp(self, op: int, dst: int, imm: int, label: str) -> "Asm":
        self._jumps[len(self._insns)] = label
        return self._emit(uapi.BPF_JMP | op | uapi.BPF_K, dst, imm=imm)

    def label(self, name: str) -> "Asm":
        self._labels[name] = len(self._insns)
        return self

    def exit(self) -> "Asm":
        return self._emit(uapi.BPF_JMP | uapi.BPF_EXIT)

    def __bytes__(self) -> bytes:
        return b"".join(
            (ins._replace(off=self._labels[self._jumps[idx]] - idx - 1)
             if idx in self._jumps else ins).encode()
            for idx, ins in enumerate(self._insns))


def _lookup_param(asm: Asm, param_fd: int) -> Asm:
    """r0 = &param[0], or exit(0) when the lookup fails (it cannot)."""
    return (asm.st(4, R10, -4, 0).movr(R2, R10).add(R2, -4).ld_map(R1, param_fd)
            .call(uapi.BPF_FUNC_map_lookup_elem).jmp(uapi.BPF_JEQ, R0, 0, "out"))


def _epilogue(asm: Asm) -> Asm:
    return asm.mov(R0, 0).label("out").exit()


# ------------------------------------------------------------------ the producer

class Producer:
    """One parameter map plus the programs that write into one ring or perf map.

    ``map_fd`` is the target map: a ``BPF_MAP_TYPE_RINGBUF`` for ``output`` /
    ``reserve`` / ``seq``, a ``BPF_MAP_TYPE_PERF_EVENT_ARRAY`` for ``perf_output``.
    The target fd is borrowed; the producer owns its parameter map and programs.
    """

    def __init__(self, map_fd: int):
        self.map_fd = map_fd
        self._param = syscall.map_create(uapi.BPF_MAP_TYPE_ARRAY, 4, PARAM_SIZE, 1,
                                         name="rb_param")
        self._progs: Dict[object, Fd] = {}

    # -- programs (loaded lazily, cached) ----------------------------------------

    def _load(self, key: object, asm: Asm, name: str) -> int:
        fd = self._progs.get(key)
        if fd is None:
            fd, _ = syscall.prog_load(uapi.BPF_PROG_TYPE_SOCKET_FILTER, bytes(asm), "GPL",
                                      name=name)
            self._progs[key] = fd
        return fd.fd

    def _output_prog(self) -> int:
        asm = _lookup_param(Asm(), self._param.fd)
        (asm.ldx(4, R3, R0, 0).jmp(uapi.BPF_JGT, R3, MAX_PAYLOAD, "out")
            .ldx(8, R4, R0, 8).movr(R2, R0).add(R2, PARAM_HDR).ld_map(R1, self.map_fd)
            .call(uapi.BPF_FUNC_ringbuf_output))
        return self._load("output", _epilogue(asm), "rb_output")

    def _reserve_prog(self, size: int, discard: bool) -> int:
        asm = _lookup_param(Asm(), self._param.fd)
        (asm.movr(R6, R0).ld_map(R1, self.map_fd).mov(R2, size).mov(R3, 0)
            .call(uapi.BPF_FUNC_ringbuf_reserve).jmp(uapi.BPF_JEQ, R0, 0, "out"))
        for off in range(0, size - size % 8, 8):          # copy the payload, 8 bytes at a time
            asm.ldx(8, R1, R6, PARAM_HDR + off).stx(8, R0, off, R1)
        for off in range(size - size % 8, size):
            asm.ldx(1, R1, R6, PARAM_HDR + off).stx(1, R0, off, R1)
        asm.movr(R1, R0).ldx(8, R2, R6, 8)
        asm.call(uapi.BPF_FUNC_ringbuf_discard if discard else uapi.BPF_FUNC_ringbuf_submit)
        return self._load(("reserve", size, discard), _epilogue(asm), "rb_reserve")

    def _seq_prog(self) -> int:
        asm = _lookup_param(Asm(), self._param.fd)
        (asm.movr(R6, R0).ld_map(R1, self.map_fd).mov(R2, 16).mov(R3, 0)
            .call(uapi.BPF_FUNC_ringbuf_reserve).jmp(uapi.BPF_JEQ, R0, 0, "out")
            .movr(R7, R0).mov(R1, 1).fetch_add64(R6, 16, R1).stx(8, R7, 8, R1)
            .call(uapi.BPF_FUNC_ktime_get_ns).stx(8, R7, 0, R0)
            .movr(R1, R7).ldx(8, R2, R6, 8).call(uapi.BPF_FUNC_ringbuf_submit))
        return self._load("seq", _epilogue(asm), "rb_seq")

    def _perf_prog(self) -> int:
        asm = Asm().movr(R6, R1)
        _lookup_param(asm, self._param.fd)
        (asm.ldx(4, R5, R0, 0).jmp(uapi.BPF_JGT, R5, MAX_PAYLOAD, "out")
            .ldx(8, R3, R0, 8).movr(R4, R0).add(R4, PARAM_HDR).movr(R1, R6)
            .ld_map(R2, self.map_fd).call(uapi.BPF_FUNC_perf_event_output))
        return self._load("perf", _epilogue(asm), "pb_output")

    # -- running -----------------------------------------------------------------

    def _set(self, payload: bytes = b"", flags: int = 0, seq: Optional[int] = None) -> None:
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"payload longer than {MAX_PAYLOAD} bytes")
        if seq is None:
            cur = syscall.map_lookup(self._param.fd, bytes(4), PARAM_SIZE)
            seq = _PARAM.unpack_from(cur)[3] if cur else 0
        value = _PARAM.pack(len(payload), 0, flags, seq, 0) + payload
        syscall.map_update(self._param.fd, bytes(4), value.ljust(PARAM_SIZE, b"\0"))

    @staticmethod
    def _run(prog_fd: int, repeat: int = 1) -> None:
        syscall.prog_test_run(prog_fd, _TEST_PACKET, repeat=repeat)

    def output(self, payload: bytes, flags: int = 0) -> None:
        """One ``bpf_ringbuf_output()`` record."""
        self._set(payload, flags)
        self._run(self._output_prog())

    def reserve(self, payload: bytes, discard: bool = False, flags: int = 0) -> None:
        """``bpf_ringbuf_reserve()`` + copy + ``bpf_ringbuf_submit()`` (or ``_discard()``)."""
        self._set(payload, flags)
        self._run(self._reserve_prog(len(payload), discard))

    def seq(self, count: int, flags: int = uapi.BPF_RB_NO_WAKEUP,
            start: Optional[int] = None) -> None:
        """``count`` records ``{u64 ktime_ns, u64 seq}``, seq counting on from the last."""
        self._set(b"", flags, seq=start)
        prog = self._seq_prog()
        while count > 0:  # test_run's repeat is a u32
            step = min(count, 1 << 30)
            self._run(prog, step)
            count -= step

    def perf_output(self, payload: bytes, flags: int = uapi.BPF_F_CURRENT_CPU) -> None:
        """One ``bpf_perf_event_output()`` sample (on the CPU this thread runs on)."""
        self._set(payload, flags)
        self._run(self._perf_prog())

    def close(self) -> None:
        for fd in self._progs.values():
            fd.close()
        self._progs.clear()
        self._param.close()

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
