#!/usr/bin/env python3
"""Benchmark: in-process open + load + attach (+ close) of an object, pybpf vs libbpf.

libbpf.so is driven through ctypes (benchmark only: pybpf never uses it).  Both
run in this process, interleaved, so the ratio is fair on a noisy machine.
Also measures the first load in a fresh process (import + open + load + attach).

    python3 tools/bench_load.py [build/exec.bpf.o] [--rounds 20]
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pybpf  # noqa: E402


def pybpf_cycle(path: str) -> "tuple[float, float]":
    """(open+load+attach seconds, close seconds)."""
    t0 = time.perf_counter()
    obj = pybpf.BPFObject.open(path)
    obj.load()
    obj.attach()
    t1 = time.perf_counter()
    obj.close()
    return t1 - t0, time.perf_counter() - t1


class Libbpf:
    def __init__(self) -> None:
        name = ctypes.util.find_library("bpf")
        if not name:
            raise OSError("libbpf.so not found (apt-get install libbpf-dev)")
        lib = ctypes.CDLL(name, use_errno=True)
        vp = ctypes.c_void_p
        for fn, res, args in [("bpf_object__open_file", vp, [ctypes.c_char_p, vp]),
                              ("bpf_object__load", ctypes.c_int, [vp]),
                              ("bpf_object__next_program", vp, [vp, vp]),
                              ("bpf_program__attach", vp, [vp]),
                              ("bpf_link__destroy", ctypes.c_int, [vp]),
                              ("bpf_object__close", None, [vp]),
                              ("libbpf_get_error", ctypes.c_long, [vp]),
                              ("libbpf_set_print", vp, [vp])]:
            f = getattr(lib, fn)
            f.restype, f.argtypes = res, args
        lib.libbpf_set_print(None)
        self.lib = lib

    def cycle(self, path: str) -> "tuple[float, float]":
        lib = self.lib
        t0 = time.perf_counter()
        obj = lib.bpf_object__open_file(path.encode(), None)
        if not obj or lib.libbpf_get_error(obj):
            raise OSError("libbpf: open failed")
        links = []
        try:
            if lib.bpf_object__load(obj):
                raise OSError("libbpf: load failed")
            prog = lib.bpf_object__next_program(obj, None)
            while prog:
                link = lib.bpf_program__attach(prog)
                if not link or lib.libbpf_get_error(link):
                    raise OSError("libbpf: attach failed")
                links.append(link)
                prog = lib.bpf_object__next_program(obj, prog)
            t1 = time.perf_counter()
        finally:
            for link in links:
                lib.bpf_link__destroy(link)
            lib.bpf_object__close(obj)
        return t1 - t0, time.perf_counter() - t1


FRESH = """
import time, sys
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
import pybpf
t1 = time.perf_counter()
with pybpf.BPFObject.open({path!r}) as obj:
    obj.load(); obj.attach()
    t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def fresh_process(path: str, runs: int) -> "tuple[float, float]":
    imports, loads = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", FRESH.format(root=ROOT, path=path)],
                             capture_output=True, text=True, check=True).stdout.split()
        imports.append(float(out[0]))
        loads.append(float(out[1]))
    return statistics.median(imports), statistics.median(loads)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("object", nargs="?", default=os.path.join(ROOT, "build", "exec.bpf.o"))
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--fresh", type=int, default=5, help="fresh-process runs")
    args = ap.parse_args()
    path = os.path.abspath(args.object)
    try:
        ref = Libbpf()
    except OSError as e:
        print(f"reference unavailable: {e}")
        ref = None
    pybpf_cycle(path)                          # warm: kernel BTF parsed, probes cached
    if ref:
        ref.cycle(path)
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(pybpf_cycle(path))
        if ref:
            theirs.append(ref.cycle(path))
    print(f"object: {os.path.relpath(path, ROOT)}  rounds: {args.rounds} (median, ms)")
    print(f"{'warm':32} {'open+load+attach':>18} {'close':>8}")
    p = [statistics.median(x[i] for x in ours) for i in (0, 1)]
    print(f"{'pybpf':32} {p[0] * 1e3:18.2f} {p[1] * 1e3:8.2f}")
    if ref:
        lb = [statistics.median(x[i] for x in theirs) for i in (0, 1)]
        print(f"{'libbpf (ctypes)':32} {lb[0] * 1e3:18.2f} {lb[1] * 1e3:8.2f}")
        print(f"{'ratio pybpf/libbpf':32} {p[0] / lb[0]:18.2f} {p[1] / lb[1]:8.2f}"
              "   (target <= 2.0)")
    imp, first = fresh_process(path, args.fresh)
    print(f"{'fresh process: import pybpf':32} {imp * 1e3:8.2f} ms")
    print(f"{'fresh process: first load':32} {first * 1e3:8.2f} ms   (target <= 150)")
    print(f"{'fresh process: import + load':32} {(imp + first) * 1e3:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
