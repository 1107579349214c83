"""pybpf's USDT specs against libbpf's, in the same run: the same object attached to the
same probes (usdt_target, its library, python3.11) by libbpf (libbpf.so through ctypes,
test-time only) and by pybpf must leave the same struct __bpf_usdt_spec values under
the same spec ids in __bpf_usdt_specs."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
from typing import Iterator, List, Tuple

import pytest

from conftest import built
from pybpf import BPFObject
from pybpf.obj import usdt as usdt_notes
from pybpf.kernel import syscall

Probe = Tuple[str, str, str, int]          # binary, provider, name, usdt cookie


class _UsdtOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("usdt_cookie", ctypes.c_uint64)]


class Libbpf:
    """The few libbpf calls this comparison needs."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("bpf")
        if not name:
            pytest.skip("libbpf.so not found (apt-get install libbpf-dev)")
        lib = ctypes.CDLL(name, use_errno=True)
        vp, cp, ci = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        for fn, res, args in [
                ("bpf_object__open_file", vp, [cp, vp]), ("bpf_object__load", ci, [vp]),
                ("bpf_object__find_program_by_name", vp, [vp, cp]),
                ("bpf_object__find_map_by_name", vp, [vp, cp]), ("bpf_map__fd", ci, [vp]),
                ("bpf_program__attach_usdt", vp, [vp, ci, cp, cp, cp, vp]),
                ("bpf_program__set_autoload", ci, [vp, ctypes.c_bool]),
                ("bpf_link__destroy", ci, [vp]), ("bpf_object__close", None, [vp]),
                ("libbpf_get_error", ctypes.c_long, [vp]), ("libbpf_set_print", vp, [vp])]:
            f = getattr(lib, fn)
            f.restype, f.argtypes = res, args
        lib.libbpf_set_print(None)
        self.lib = lib

    def specs(self, obj_path: str, prog_name: str, pid: int, probes: List[Probe],
              count: int) -> List[bytes]:
        """Attach prog_name to every probe, return the first count spec map values."""
        lib = self.lib
        obj = lib.bpf_object__open_file(obj_path.encode(), None)
        assert obj and not lib.libbpf_get_error(obj)
        links = []
        try:
            # libbpf 1.1 predates SEC("usdt.s") (1.3)
            sleepable = lib.bpf_object__find_program_by_name(obj, b"usdt_sleepable")
            assert lib.bpf_program__set_autoload(sleepable, False) == 0
            assert lib.bpf_object__load(obj) == 0
            prog = lib.bpf_object__find_program_by_name(obj, prog_name.encode())
            for binary, provider, name, cookie in probes:
                opts = _UsdtOpts(ctypes.sizeof(_UsdtOpts), cookie)
                link = lib.bpf_program__attach_usdt(prog, pid, binary.encode(),
                                                    provider.encode(), name.encode(),
                                                    ctypes.addressof(opts))
                assert link and not lib.libbpf_get_error(link), (binary, provider, name)
                links.append(link)
            fd = lib.bpf_map__fd(lib.bpf_object__find_map_by_name(obj, b"__bpf_usdt_specs"))
            return [syscall.map_lookup(fd, i.to_bytes(4, "little"), usdt_notes.SPEC_SIZE)
                    for i in range(count)]
        finally:
            for link in links:
                lib.bpf_link__destroy(link)
            lib.bpf_object__close(obj)


def pybpf_specs(obj_path: str, prog_name: str, pid: int, probes: List[Probe],
                count: int) -> List[bytes]:
    with BPFObject.open(obj_path) as obj:
        obj.load()
        prog = obj.programs[prog_name]
        for binary, provider, name, cookie in probes:
            prog.attach(binary=binary, provider=provider, name=name, pid=pid, cookie=cookie)
        specs = obj.maps["__bpf_usdt_specs"]
        return [syscall.map_lookup(specs.fd, i.to_bytes(4, "little"), usdt_notes.SPEC_SIZE)
                for i in range(count)]


@pytest.fixture
def target_child(kernel) -> Iterator[subprocess.Popen]:
    child = subprocess.Popen([str(built("usdt_target")), "1", "wait"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    yield child
    child.communicate(b"go\n")


def test_same_specs_as_libbpf(target_child):
    lib = str(built("libusdt_target.so"))
    probes: List[Probe] = [(str(built(b)), "pybpf", n, c) for c, (b, n) in enumerate(
        [("usdt_target", "consts"), ("usdt_target", "regs"), ("usdt_target", "mem"),
         ("usdt_target", "multi"), ("usdt_target", "guarded"),
         ("usdt_target_pie", "mem"), ("usdt_target_pie", "multi")], 1)]
    probes.append((lib, "pybpf_lib", "fire", 99))
    python = os.path.exists("/usr/bin/python3.11")
    if python:
        probes += [("/usr/bin/python3.11", "python", n, 1000 + i) for i, n in enumerate(
            ["function__entry", "line", "gc__start", "import__find__load__done"])]
    # distinct argument strings per attachment: one spec id each
    count = sum(len({s.args for s in usdt_notes.read_probes(b).find(p, n)})
                for b, p, n, _ in probes)
    obj = str(built("usdt_args.bpf.o"))
    want = Libbpf().specs(obj, "usdt_record", target_child.pid, probes, count)
    got = pybpf_specs(obj, "usdt_record", target_child.pid, probes, count)
    assert all(w is not None for w in want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"spec id {i}: pybpf {g.hex()} libbpf {w.hex()}"
    assert count == (14 if python else 10)
