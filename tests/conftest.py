"""Shared fixtures: where the built objects are, and the kernel-test gate.

Kernel tests call ``require_kernel()`` (or use the ``kernel`` fixture).  They
skip when not root, unless PYBPF_REQUIRE_KERNEL=1 (as CI sets), in which case
a test that cannot reach the kernel fails instead of skipping.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import pathlib
import shutil
import tempfile
from contextlib import contextmanager
from typing import Dict, Iterator, Set

import pytest

from pybpf.errors import has_bpf_capabilities

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"

# The kernel BTF index cache of this run (and of the CLI processes tests start) is
# its own, removed at the end: tests neither read nor leave files in ~/.cache.
if "PYBPF_CACHE_DIR" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="pybpf-test-cache-")
    os.environ["PYBPF_CACHE_DIR"] = os.path.join(_CACHE, "pybpf")
    atexit.register(shutil.rmtree, _CACHE, True)


def require_kernel() -> None:
    if os.geteuid() == 0 and has_bpf_capabilities():
        return
    if os.environ.get("PYBPF_REQUIRE_KERNEL") == "1":
        pytest.fail("PYBPF_REQUIRE_KERNEL=1 but not running as root with CAP_BPF, "
                    "CAP_PERFMON and CAP_SYS_ADMIN")
    pytest.skip("kernel test: needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)")


def skip_missing_feature(reason: str) -> None:
    """Skip for a kernel feature this machine lacks, even under PYBPF_REQUIRE_KERNEL.

    The reason must name the missing feature (e.g. CONFIG_KPROBES)."""
    pytest.skip(f"kernel feature missing: {reason}")


def built(name: str) -> pathlib.Path:
    """Path of build/NAME, failing with the command to run when it is missing."""
    path = BUILD / name
    if not path.exists():
        pytest.fail(f"{path} missing: run 'make' first")
    return path


def build_stamps() -> Dict[str, int]:
    """build/'s entries and their mtimes: what a wheel build must leave alone."""
    return {p.name: p.stat().st_mtime_ns for p in BUILD.iterdir()} if BUILD.exists() else {}


def assert_build_left_alone(before: Dict[str, int]) -> None:
    """No entry that setuptools makes appeared in build/ and none there changed.
    Other entries may appear: another lane of CI runs beside these tests."""
    after = build_stamps()
    made = [n for n in after if n not in before and
            (n in ("lib", "scripts") or n.startswith(("bdist.", "temp.", "lib."))
             or n.endswith(".egg-info"))]
    assert not made, f"the wheel build wrote into build/: {made}"
    assert {n: after.get(n) for n in before} == before, "the wheel build changed build/"


@pytest.fixture
def kernel() -> None:
    require_kernel()


@pytest.fixture(params=["native", "weak"])
def ordering(request, monkeypatch):
    """Run a test twice: with this CPU's ordering, and with the protocol of a weakly
    ordered CPU (acquire loads, release stores and read fences called as machine
    code), executed with this CPU's own instructions."""
    from pybpf.events import barriers
    if request.param == "weak":
        code = barriers.ARCH_CODE.get(barriers.MACHINE)
        if code is None:
            pytest.skip(f"no machine code for {barriers.MACHINE} to simulate a weak CPU with")
        monkeypatch.setattr(barriers, "ORDER",
                            barriers.from_code(code, tso=False, kind="simulated-weak"))
    return request.param


@pytest.fixture(params=["cpython", "pypy"])
def fast_paths(request, monkeypatch):
    """Run a test through the ring buffer's CPython fast paths and through its PyPy
    ones (both plain Python, chosen by interpreter): they must agree everywhere."""
    from pybpf.events import ringbuf, ringmem
    pypy = request.param == "pypy"
    monkeypatch.setattr(ringbuf, "PYPY", pypy)
    monkeypatch.setattr(ringbuf, "_uniform",
                        ringbuf._uniform_loop if pypy else ringbuf._uniform_view)
    if not pypy:                # CPython's walk slices the words: a memoryview of them
        monkeypatch.setattr(ringmem, "words_of", lambda data, words: words)
    return request.param


def _affinity_libc(cpus: Set[int]) -> None:
    """sched_setaffinity(2) through libc, for interpreters without os.sched_setaffinity (PyPy)."""
    mask = (ctypes.c_ulong * 16)()
    for cpu in cpus:
        mask[cpu // 64] |= 1 << (cpu % 64)
    if ctypes.CDLL(None, use_errno=True).sched_setaffinity(0, ctypes.sizeof(mask), mask):
        raise OSError(ctypes.get_errno(), "sched_setaffinity")


def _affinity_get() -> Set[int]:
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    mask = (ctypes.c_ulong * 16)()
    if ctypes.CDLL(None, use_errno=True).sched_getaffinity(0, ctypes.sizeof(mask), mask):
        raise OSError(ctypes.get_errno(), "sched_getaffinity")
    return {i * 64 + b for i, word in enumerate(mask) for b in range(64) if word >> b & 1}


@contextmanager
def on_cpu(cpu: int) -> Iterator[None]:
    """Run the block pinned to ``cpu`` (the caller's CPU is where test runs and
    syscall-triggered programs run)."""
    old = _affinity_get()
    setter = getattr(os, "sched_setaffinity", None)
    pin = (lambda cpus: setter(0, cpus)) if setter else _affinity_libc
    pin({cpu})
    try:
        yield
    finally:
        pin(old)


def parseable_objects() -> list:
    """Names of the built objects that open (some are malformed on purpose)."""
    from pybpf.errors import ObjectError
    from pybpf.obj.spec import parse_object
    names = []
    for path in sorted(BUILD.glob("*.bpf.o")):
        try:
            parse_object(str(path))
        except ObjectError:
            continue
        names.append(path.name)
    return names



@contextmanager
def ring_with_producer(size: int, name: str) -> Iterator[tuple]:
    """A BPF_MAP_TYPE_RINGBUF map of ``size`` bytes and a hand-driven producer on it:
    (map fd, Producer), both closed afterwards (kernel tests only)."""
    from pybpf import uapi
    from pybpf.kernel import syscall
    from pybpf.study.producer import Producer
    require_kernel()
    with syscall.map_create(uapi.BPF_MAP_TYPE_RINGBUF, 0, 0, size, name=name) as fd, \
            Producer(fd.fd) as prod:
        yield fd.fd, prod
