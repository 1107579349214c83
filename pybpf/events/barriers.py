"""Acquire loads, release stores and fences for memory shared with the kernel.

The BPF rings are shared with producers (or consumers) on other CPUs through
plain memory, so every access to a *position* needs ordering:

* **acquire** when reading the other side's position (``producer_pos``,
  ``data_head``; a user ring's ``consumer_pos``) before reading the bytes it
  covers;
* **release** when storing our own position (``consumer_pos``, ``data_tail``;
  a user ring's ``producer_pos`` and record headers) after our reads (or
  writes) of the bytes it gives back;
* between walking a ring's record headers and reading the payloads they
  cover, a **read fence** (the kernel commits a record by clearing the BUSY
  bit of its header after writing the payload; libbpf reads every header
  with an acquire load, pybpf walks a whole batch of headers, then fences
  once);
* after publishing our position and before re-reading the producer's to
  decide whether to sleep, **store-load** ordering: the lost-wakeup re-check.

Python has none of these, so each CPU gets them as tiny functions of machine
code, written to one executable page at import and called through ctypes
(:class:`ArchCode`, :data:`ARCH_CODE`).  Per batch of records that means:

=========== ================== ============ ================== ==============
CPU         acquire load       read fence   release store      re-check
=========== ================== ============ ================== ==============
x86-64      plain ``mov``      none (TSO)   plain ``mov``      ``mfence``
arm64       ``ldar``           ``dmb ishld`` ``stlr``          none: RCsc [1]
riscv64     ``lr.d.aq``        ``fence r,r`` ``amoswap.d.rl``  none: RCsc [1]
ppc64le     ``ld; lwsync``     ``lwsync``   ``lwsync; std``    ``sync``
loongarch64 ``ld.d; dbar 0``   ``dbar 0``   ``dbar 0; st.d``   ``dbar 0``
=========== ================== ============ ================== ==============

[1] arm64 and RISC-V order a release store before a *later acquire load*
(their acquire/release are sequentially consistent, "RCsc"), so re-reading
``producer_pos`` with an acquire load after publishing with a release store
needs no fence.  So on x86-64, arm64 and riscv64 a consumer issues exactly one
fence per batch; POWER and LoongArch have no acquire/release instructions,
and there (as in the kernel's own ``smp_load_acquire``) each is a fence.

On TSO CPUs the positions are read and written through memoryviews: an
aligned 8-byte memoryview item is a single ``mov`` (CPython copies it with a
fixed-size ``memcpy``), and calling code would only cost time.  Where no
executable page can be had (W^X policies) or the CPU is unknown, plain
accesses are wrapped in the strongest fence at hand:
``membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)``, which the kernel documents
as a full barrier for the caller.  :data:`ORDER` is the ordering in use and
``ORDER.kind`` says which.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import struct
from functools import partial
from typing import Any, Callable, Dict, Optional

from ..kernel import syscall
from .. import uapi
from ..record import FrozenRecord

MACHINE = os.uname().machine
#: CPUs whose plain loads/stores already have acquire/release semantics.
TSO = MACHINE in ("x86_64", "i386", "i686", "s390x")

_libc = ctypes.CDLL(None, use_errno=True)


def _words(*insns: int) -> bytes:
    return struct.pack(f"<{len(insns)}I", *insns)


class ArchCode(FrozenRecord):
    """The primitives of one CPU as machine code, each a function ending in a return.

    Signatures (the platform's C calling convention): ``u64 load_acquire(u64 *p)``,
    ``void store_release(u64 *p, u64 v)``, ``void store_release32(u32 *p, u32 v)``,
    ``void fence(void)`` for the three fences.  ``recheck_fence`` is None where a
    release store and a later acquire load are already ordered.
    """
    _fields = ("load_acquire", "store_release", "store_release32", "read_fence",
               "recheck_fence", "full_fence")
    __slots__ = _fields
    load_acquire: bytes
    store_release: bytes
    store_release32: bytes
    read_fence: bytes
    recheck_fence: Optional[bytes]
    full_fence: bytes

    def __init__(self, load_acquire: bytes, store_release: bytes,
                 store_release32: bytes, read_fence: bytes,
                 recheck_fence: Optional[bytes], full_fence: bytes) -> None:
        self._init(load_acquire, store_release, store_release32, read_fence, recheck_fence,
                   full_fence)


_RISCV_RET = 0x00008067                         # jalr zero, 0(ra)
_PPC_LWSYNC, _PPC_SYNC, _PPC_BLR = 0x7C2004AC, 0x7C0004AC, 0x4E800020
_LA_DBAR, _LA_RET = 0x38720000, 0x4C000020      # dbar 0; jirl zero, ra, 0

ARCH_CODE: Dict[str, ArchCode] = {
    "x86_64": ArchCode(
        load_acquire=bytes.fromhex("488b07c3"),          # mov rax, [rdi]; ret
        store_release=bytes.fromhex("488937c3"),         # mov [rdi], rsi; ret
        store_release32=bytes.fromhex("8937c3"),         # mov [rdi], esi; ret
        read_fence=bytes.fromhex("0faee8c3"),            # lfence; ret
        recheck_fence=bytes.fromhex("0faef0c3"),         # mfence; ret
        full_fence=bytes.fromhex("0faef0c3")),           # mfence; ret
    "aarch64": ArchCode(
        load_acquire=_words(0xC8DFFC00, 0xD65F03C0),     # ldar x0, [x0]; ret
        store_release=_words(0xC89FFC01, 0xD65F03C0),    # stlr x1, [x0]; ret
        store_release32=_words(0x889FFC01, 0xD65F03C0),  # stlr w1, [x0]; ret
        read_fence=_words(0xD50339BF, 0xD65F03C0),       # dmb ishld; ret
        recheck_fence=None,
        full_fence=_words(0xD5033BBF, 0xD65F03C0)),      # dmb ish; ret
    # lr.d.aq is a load for permissions (its faults are load faults), so it may
    # read the read-only producer page; no store-conditional follows it.
    "riscv64": ArchCode(
        load_acquire=_words(0x1405352F, _RISCV_RET),     # lr.d.aq a0, (a0); ret
        store_release=_words(0x0AB5302F, _RISCV_RET),    # amoswap.d.rl zero, a1, (a0); ret
        store_release32=_words(0x0AB5202F, _RISCV_RET),  # amoswap.w.rl zero, a1, (a0); ret
        read_fence=_words(0x0220000F, _RISCV_RET),       # fence r, r; ret
        recheck_fence=None,
        full_fence=_words(0x0330000F, _RISCV_RET)),      # fence rw, rw; ret
    "ppc64le": ArchCode(
        load_acquire=_words(0xE8630000, _PPC_LWSYNC, _PPC_BLR),   # ld 3, 0(3); lwsync; blr
        store_release=_words(_PPC_LWSYNC, 0xF8830000, _PPC_BLR),  # lwsync; std 4, 0(3); blr
        store_release32=_words(_PPC_LWSYNC, 0x90830000, _PPC_BLR),  # lwsync; stw 4, 0(3); blr
        read_fence=_words(_PPC_LWSYNC, _PPC_BLR),
        recheck_fence=_words(_PPC_SYNC, _PPC_BLR),
        full_fence=_words(_PPC_SYNC, _PPC_BLR)),
    "loongarch64": ArchCode(
        load_acquire=_words(0x28C00084, _LA_DBAR, _LA_RET),   # ld.d $a0, $a0, 0; dbar 0; ret
        store_release=_words(_LA_DBAR, 0x29C00085, _LA_RET),  # dbar 0; st.d $a1, $a0, 0; ret
        store_release32=_words(_LA_DBAR, 0x29800085, _LA_RET),  # dbar 0; st.w $a1, $a0, 0; ret
        read_fence=_words(_LA_DBAR, _LA_RET),
        recheck_fence=_words(_LA_DBAR, _LA_RET),
        full_fence=_words(_LA_DBAR, _LA_RET)),
}

_LOAD = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)
_STORE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64)
_STORE32 = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32)
_FENCE = ctypes.CFUNCTYPE(None)


class Ordering(FrozenRecord):
    """The ordering primitives in use.

    ``tso``: plain accesses are acquire/release, :meth:`loader` / :meth:`storer`
    then use memoryviews and ``read_fence`` is None.  ``recheck_fence`` is None
    where the ISA orders a release store before a later acquire load.
    """
    _fields = ("kind", "tso", "load_acquire", "store_release", "store_release32", "read_fence",
               "recheck_fence", "fence")
    __slots__ = _fields
    kind: str
    tso: bool
    load_acquire: Callable[[int], int]
    store_release: Callable[[int, int], None]
    store_release32: Callable[[int, int], None]
    read_fence: Optional[Callable[[], object]]
    recheck_fence: Optional[Callable[[], object]]
    fence: Callable[[], object]

    def __init__(self, kind: str, tso: bool, load_acquire: Callable[[int], int],
                 store_release: Callable[[int, int], None],
                 store_release32: Callable[[int, int], None],
                 read_fence: Optional[Callable[[], object]],
                 recheck_fence: Optional[Callable[[], object]],
                 fence: Callable[[], object]) -> None:
        self._init(kind, tso, load_acquire, store_release, store_release32, read_fence,
                   recheck_fence, fence)

    def loader(self, view: memoryview, index: int, addr: int) -> Callable[[], int]:
        """An acquire load of the u64 ``view[index]``, which lives at ``addr``."""
        if self.tso:
            return partial(view.__getitem__, index)
        return partial(self.load_acquire, addr)

    def storer(self, view: memoryview, index: int, addr: int) -> Callable[[int], None]:
        """A release store to the u64 ``view[index]``, which lives at ``addr``."""
        if self.tso:
            return partial(view.__setitem__, index)
        return partial(self.store_release, addr)

    def store32(self, words: memoryview, index: int, base: int, value: int) -> None:
        """Release store of the u32 ``words[index]`` (``base``: address of words[0])."""
        if self.tso:
            words[index] = value
        else:
            self.store_release32(base + 4 * index, value)


class _CodePage:
    """One executable page holding functions; kept alive by the functions made from it."""

    def __init__(self, pieces: Dict[str, bytes]):
        self.page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.offsets = {}
        pos = 0
        for name, code in pieces.items():
            self.offsets[name] = pos
            self.page[pos:pos + len(code)] = code
            pos += (len(code) + 15) & ~15
        self.addr = ctypes.addressof(ctypes.c_char.from_buffer(self.page))
        mprotect = _libc.mprotect
        mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        if mprotect(self.addr, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
            raise OSError(ctypes.get_errno(), "mprotect(PROT_EXEC)")

    def function(self, name: str, proto: Any) -> Any:
        func = proto(self.addr + self.offsets[name])
        func._page = self   # the page stays mapped as long as a function lives
        return func


def from_code(code: ArchCode, tso: bool, kind: str = "cpu-instruction") -> Ordering:
    """An Ordering calling ``code`` (raises OSError where no executable page can be had)."""
    pieces = {"load_acquire": code.load_acquire, "store_release": code.store_release,
              "store_release32": code.store_release32, "read_fence": code.read_fence,
              "full_fence": code.full_fence}
    if code.recheck_fence is not None:
        pieces["recheck_fence"] = code.recheck_fence
    page = _CodePage(pieces)
    return Ordering(
        kind=kind, tso=tso,
        load_acquire=page.function("load_acquire", _LOAD),
        store_release=page.function("store_release", _STORE),
        store_release32=page.function("store_release32", _STORE32),
        read_fence=None if tso else page.function("read_fence", _FENCE),
        recheck_fence=(None if code.recheck_fence is None
                       else page.function("recheck_fence", _FENCE)),
        fence=page.function("full_fence", _FENCE))


def fenced(fence: Callable[[], object], tso: bool, kind: str) -> Ordering:
    """Plain accesses wrapped in a full ``fence``: for CPUs without code of their own."""
    def load_acquire(addr: int) -> int:
        value = ctypes.c_uint64.from_address(addr).value
        fence()
        return value

    def store_release(addr: int, value: int) -> None:
        fence()
        ctypes.c_uint64.from_address(addr).value = value

    def store_release32(addr: int, value: int) -> None:
        fence()
        ctypes.c_uint32.from_address(addr).value = value

    return Ordering(kind=kind, tso=tso, load_acquire=load_acquire, store_release=store_release,
                    store_release32=store_release32, read_fence=None if tso else fence,
                    recheck_fence=fence, fence=fence)


def membarrier_fence() -> Optional[Callable[[], None]]:
    """``membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)``, once registered; None if refused."""
    nr = syscall.NR_MEMBARRIER
    if nr is None or _libc.syscall(nr, uapi.MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) != 0:
        return None
    call = _libc.syscall
    return lambda: call(nr, uapi.MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0)


def select_ordering(machine: str = MACHINE, tso: bool = TSO) -> Ordering:
    """The best ordering this CPU and process allow."""
    code = ARCH_CODE.get(machine)
    if code is not None:
        try:
            return from_code(code, tso)
        except OSError:
            pass
    fence = membarrier_fence()
    if fence is not None:
        return fenced(fence, tso, "membarrier")
    # Nothing better exists: a syscall is not an architectural fence, but it
    # is the strongest ordering Python can ask for here.
    return fenced(os.getppid, tso, "syscall-only")


ORDER = select_ordering()
