"""Memory-ordering primitives: the machine code of every CPU, disassembled by
LLVM, and the ones this CPU can run, run."""
from __future__ import annotations

import ctypes
import shutil
import subprocess

import pytest

from pybpf.events import barriers

# (llvm-mc triple and flags, the instructions of each primitive)
EXPECTED = {
    "x86_64": (["-triple=x86_64"], {
        "load_acquire": ["movq (%rdi), %rax", "retq"],
        "store_release": ["movq %rsi, (%rdi)", "retq"],
        "store_release32": ["movl %esi, (%rdi)", "retq"],
        "read_fence": ["lfence", "retq"],
        "recheck_fence": ["mfence", "retq"],
        "full_fence": ["mfence", "retq"]}),
    "aarch64": (["-triple=aarch64"], {
        "load_acquire": ["ldar x0, [x0]", "ret"],
        "store_release": ["stlr x1, [x0]", "ret"],
        "store_release32": ["stlr w1, [x0]", "ret"],
        "read_fence": ["dmb ishld", "ret"],
        "recheck_fence": None,
        "full_fence": ["dmb ish", "ret"]}),
    "riscv64": (["-triple=riscv64", "-mattr=+a"], {
        "load_acquire": ["lr.d.aq a0, (a0)", "ret"],
        "store_release": ["amoswap.d.rl zero, a1, (a0)", "ret"],
        "store_release32": ["amoswap.w.rl zero, a1, (a0)", "ret"],
        "read_fence": ["fence r, r", "ret"],
        "recheck_fence": None,
        "full_fence": ["fence rw, rw", "ret"]}),
    "ppc64le": (["-triple=powerpc64le"], {
        "load_acquire": ["ld 3, 0(3)", "lwsync", "blr"],
        "store_release": ["lwsync", "std 4, 0(3)", "blr"],
        "store_release32": ["lwsync", "stw 4, 0(3)", "blr"],
        "read_fence": ["lwsync", "blr"],
        "recheck_fence": ["sync", "blr"],
        "full_fence": ["sync", "blr"]}),
    "loongarch64": (["-triple=loongarch64"], {
        "load_acquire": ["ld.d $a0, $a0, 0", "dbar 0", "ret"],
        "store_release": ["dbar 0", "st.d $a1, $a0, 0", "ret"],
        "store_release32": ["dbar 0", "st.w $a1, $a0, 0", "ret"],
        "read_fence": ["dbar 0", "ret"],
        "recheck_fence": ["dbar 0", "ret"],
        "full_fence": ["dbar 0", "ret"]}),
}


def disassemble(code: bytes, flags) -> list:
    mc = shutil.which("llvm-mc-16") or shutil.which("llvm-mc")
    if mc is None:
        pytest.fail("llvm-mc not found: run 'make deps' (package llvm-16)")
    out = subprocess.run([mc, "--disassemble", *flags], input=" ".join(hex(b) for b in code),
                         capture_output=True, text=True, check=True)
    assert "invalid" not in out.stderr, out.stderr
    return [" ".join(line.split()) for line in out.stdout.splitlines()
            if line.strip() and not line.strip().startswith(".")]


@pytest.mark.parametrize("machine", sorted(EXPECTED))
def test_machine_code_is_what_it_says(machine):
    flags, want = EXPECTED[machine]
    code = barriers.ARCH_CODE[machine]
    for name in code._fields:
        got = getattr(code, name)
        if want[name] is None:
            assert got is None, name
        else:
            assert disassemble(got, flags) == want[name], (machine, name)


def test_every_architecture_is_covered():
    assert set(barriers.ARCH_CODE) == set(EXPECTED)


def test_rcsc_cpus_need_one_fence_per_batch():
    """arm64 and riscv64: a release store then an acquire load are ordered, so the
    read fence is the only fence of a consumer's pass."""
    for machine in ("aarch64", "riscv64"):
        assert barriers.ARCH_CODE[machine].recheck_fence is None
    for machine in ("x86_64", "ppc64le", "loongarch64"):
        assert barriers.ARCH_CODE[machine].recheck_fence is not None


def _check_accesses(order: barriers.Ordering) -> None:
    words = (ctypes.c_uint64 * 4)(1, 2, 3, 4)
    base = ctypes.addressof(words)
    view = memoryview(words).cast("B").cast("Q")
    load = order.loader(view, 2, base + 16)
    store = order.storer(view, 1, base + 8)
    assert load() == 3
    store(0xFEEDFACE_CAFEBEEF)
    assert list(words) == [1, 0xFEEDFACE_CAFEBEEF, 3, 4]
    assert order.load_acquire(base + 8) == 0xFEEDFACE_CAFEBEEF
    order.store_release(base + 24, 2**64 - 1)
    assert words[3] == 2**64 - 1
    halves = memoryview(words).cast("B").cast("I")
    order.store32(halves, 1, base, 0x8000_0010)       # the upper half of words[0] only
    assert words[0] == 0x8000_0010_0000_0001
    order.store_release32(base, 7)
    assert words[0] == 0x8000_0010_0000_0007
    for fence in (order.read_fence, order.recheck_fence, order.fence):
        if fence is not None:
            fence()


def test_this_cpus_code_runs():
    if barriers.MACHINE not in barriers.ARCH_CODE:
        pytest.skip(f"no machine code for {barriers.MACHINE}")
    native = barriers.select_ordering()
    assert native.kind == "cpu-instruction" and native.tso == barriers.TSO
    _check_accesses(native)
    weak = barriers.from_code(barriers.ARCH_CODE[barriers.MACHINE], tso=False)
    assert weak.read_fence is not None
    _check_accesses(weak)


def test_x86_64_uses_plain_accesses_and_one_fence():
    if barriers.MACHINE != "x86_64":
        pytest.skip("x86-64 only")
    order = barriers.ORDER
    assert order.tso and order.read_fence is None and order.recheck_fence is not None
    words = (ctypes.c_uint64 * 1)(5)
    view = memoryview(words).cast("B").cast("Q")
    # a memoryview item access (no ctypes call): a bound method of the view itself
    assert order.loader(view, 0, 0).func == view.__getitem__


def test_fallbacks_without_machine_code():
    """An unknown CPU gets membarrier (or, refused, a syscall) around plain accesses."""
    order = barriers.select_ordering("vax", tso=False)
    assert order.kind in ("membarrier", "syscall-only")
    assert order.read_fence is order.recheck_fence is order.fence
    _check_accesses(order)
    fence = barriers.membarrier_fence()
    if fence is not None:
        fence()
        _check_accesses(barriers.fenced(fence, tso=True, kind="membarrier"))


def test_no_executable_page_falls_back(monkeypatch):
    def refuse(*args):
        raise OSError(1, "mprotect(PROT_EXEC)")
    monkeypatch.setattr(barriers._CodePage, "__init__", refuse)
    assert barriers.select_ordering().kind in ("membarrier", "syscall-only")
