#!/usr/bin/env python3
"""Benchmark: attaching and detaching USDT probes, pybpf vs libbpf, in the same run.

The probes of build/usdt_target and its library (9 sites of 6 probes, two with
semaphores) and, where installed, 4 probes of /usr/bin/python3.11, attached to a
waiting child by build/usdt_args.bpf.o's usdt_record: pybpf with one uprobe-multi
link per probe and with one perf-event uprobe per site, libbpf (libbpf.so through
ctypes, benchmark only; Debian's 1.1 attaches perf-event uprobes) the same way.
Rounds are interleaved so the ratios are fair on a noisy machine.  Needs root.

    python3 tools/bench_usdt.py [--rounds 20]
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Tuple, Union

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pybpf  # noqa: E402

BUILD = os.path.join(ROOT, "build")
OBJ = os.path.join(BUILD, "usdt_args.bpf.o")
Probe = Tuple[str, str, str]


def probes() -> List[Probe]:
    target, lib = os.path.join(BUILD, "usdt_target"), os.path.join(BUILD, "libusdt_target.so")
    out = [(target, "pybpf", n) for n in ("consts", "regs", "mem", "multi", "guarded")]
    out.append((lib, "pybpf_lib", "fire"))
    if os.path.exists("/usr/bin/python3.11"):
        out += [("/usr/bin/python3.11", "python", n) for n in
                ("function__entry", "function__return", "line", "gc__start")]
    return out


class _UsdtOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("usdt_cookie", ctypes.c_uint64)]


class Libbpf:
    """libbpf's object, loaded once; attach_all()/detach() per round."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("bpf")
        if not name:
            raise OSError("libbpf.so not found (apt-get install libbpf-dev)")
        lib = ctypes.CDLL(name, use_errno=True)
        vp, cp, ci = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        for fn, res, args in [
                ("bpf_object__open_file", vp, [cp, vp]), ("bpf_object__load", ci, [vp]),
                ("bpf_object__find_program_by_name", vp, [vp, cp]),
                ("bpf_program__set_autoload", ci, [vp, ctypes.c_bool]),
                ("bpf_program__attach_usdt", vp, [vp, ci, cp, cp, cp, vp]),
                ("bpf_link__destroy", ci, [vp]), ("bpf_object__close", None, [vp]),
                ("libbpf_get_error", ctypes.c_long, [vp]), ("libbpf_set_print", vp, [vp])]:
            f = getattr(lib, fn)
            f.restype, f.argtypes = res, args
        lib.libbpf_set_print(None)
        self.lib = lib
        self.obj = lib.bpf_object__open_file(OBJ.encode(), None)
        # libbpf 1.1 predates SEC("usdt.s")
        lib.bpf_program__set_autoload(
            lib.bpf_object__find_program_by_name(self.obj, b"usdt_sleepable"), False)
        if lib.bpf_object__load(self.obj):
            raise OSError("libbpf: load failed")
        self.prog = lib.bpf_object__find_program_by_name(self.obj, b"usdt_record")
        self.links: List[int] = []

    def attach_all(self, pid: int) -> None:
        opts = _UsdtOpts(ctypes.sizeof(_UsdtOpts), 0)
        for binary, provider, name in probes():
            link = self.lib.bpf_program__attach_usdt(self.prog, pid, binary.encode(),
                                                     provider.encode(), name.encode(),
                                                     ctypes.addressof(opts))
            if not link or self.lib.libbpf_get_error(link):
                raise OSError(f"libbpf: attach {provider}:{name} failed")
            self.links.append(link)

    def detach(self) -> None:
        for link in self.links:
            self.lib.bpf_link__destroy(link)
        self.links = []

    def close(self) -> None:
        self.lib.bpf_object__close(self.obj)


class Pybpf:
    """pybpf's object, loaded once for uprobe-multi links or for perf-event uprobes."""

    def __init__(self, multi: bool) -> None:
        self.obj = pybpf.BPFObject.open(OBJ)
        for prog in self.obj.programs.values():
            prog.uprobe_multi = multi
        self.obj.load()
        self.links: List[pybpf.link.usdt.UsdtLink] = []

    def attach_all(self, pid: int) -> None:
        prog = self.obj.programs["usdt_record"]
        for binary, provider, name in probes():
            self.links.append(prog.attach(binary=binary, provider=provider, name=name,
                                          pid=pid))

    def detach(self) -> None:
        for link in self.links:
            link.close()
        self.links = []

    def close(self) -> None:
        self.obj.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    child = subprocess.Popen([os.path.join(BUILD, "usdt_target"), "1", "wait"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    sides: Dict[str, Union[Libbpf, Pybpf]] = {"libbpf": Libbpf(), "pybpf uprobe-multi": Pybpf(True),
                                "pybpf perf uprobes": Pybpf(False)}
    times: Dict[str, Tuple[List[float], List[float]]] = {k: ([], []) for k in sides}
    try:
        for _ in range(args.rounds):
            for key, side in sides.items():
                t0 = time.perf_counter()
                side.attach_all(child.pid)
                t1 = time.perf_counter()
                side.detach()
                times[key][0].append(t1 - t0)
                times[key][1].append(time.perf_counter() - t1)
    finally:
        for side in sides.values():
            side.close()
        child.communicate(b"go\n")
    n = len(probes())
    print(f"{n} probes, {args.rounds} rounds, median milliseconds per round")
    print(f"{'':22} {'attach':>8} {'detach':>8} {'attach vs libbpf':>17}")
    base = statistics.median(times["libbpf"][0])
    for key, (att, det) in times.items():
        a, d = statistics.median(att), statistics.median(det)
        print(f"{key:22} {a * 1e3:8.2f} {d * 1e3:8.2f} {a / base:16.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
