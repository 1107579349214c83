#!/usr/bin/env python3
"""Benchmark: CO-RE relocation of objects against the kernel's vmlinux BTF.

Three pybpf numbers per object set:
  cold   - relocate with a freshly parsed vmlinux (name index and candidate
           caches empty; the parse itself is reported separately),
  warm   - relocate again with the same vmlinux (caches filled),
  parse  - BTF.parse of /sys/kernel/btf/vmlinux.
Reference, in the same run: ``bpftool gen min_core_btf``, which runs libbpf's
CO-RE engine over the same objects against the same vmlinux (a whole process:
exec + parse + relocate + write a small BTF), printed as a ratio.

    python3 tools/bench_core.py [build/exec.bpf.o build/core_task.bpf.o ...] [--rounds 10]
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from elftools.elf.elffile import ELFFile  # noqa: E402

from pybpf.btf import BTF, BTFExt, core  # noqa: E402

VMLINUX = "/sys/kernel/btf/vmlinux"


def load_relos(path: str):
    """[(code, relos, local btf)] per program section with CO-RE relocations."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        btf = BTF.parse(elf.get_section_by_name(".BTF").data())
        ext = BTFExt.parse(elf.get_section_by_name(".BTF.ext").data(), btf)
        return [(bytes(elf.get_section_by_name(sec).data()), relos, btf)
                for sec, relos in ext.core_relos.items()]


def relocate_all(work, vmlinux: BTF) -> int:
    count = 0
    for code, relos, btf in work:
        core.relocate(bytearray(code), relos, btf, [vmlinux])
        count += len(relos)
    return count


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("objects", nargs="*")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    objects = args.objects or [os.path.join(ROOT, "build", "exec.bpf.o")] + sorted(
        p for p in glob.glob(os.path.join(ROOT, "build", "core_*.bpf.o")))
    with open(VMLINUX, "rb") as f:
        blob = f.read()
    work = [w for path in objects for w in load_relos(path)]
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    tmp = tempfile.mkdtemp(prefix="pybpf-bench-core-")
    parse, cold, warm, ref = [], [], [], []
    try:
        for _ in range(args.rounds):
            t, vmlinux = timed(lambda: BTF.parse(blob))
            parse.append(t)
            t, n = timed(lambda: relocate_all(work, vmlinux))
            cold.append(t)
            warm.append(timed(lambda: relocate_all(work, vmlinux))[0])
            if os.path.exists(bpftool):
                cmd = [bpftool, "gen", "min_core_btf", VMLINUX, os.path.join(tmp, "min.btf")]
                ref.append(timed(lambda: subprocess.run(cmd + objects, check=True,
                                                        capture_output=True))[0])
    finally:
        shutil.rmtree(tmp)
    ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    print(f"{len(objects)} objects, {n} CO-RE relocations, {args.rounds} rounds (medians)")
    print(f"  parse vmlinux BTF          {ms(parse):8.2f} ms")
    print(f"  relocate, cold caches      {ms(cold):8.2f} ms   ({ms(cold) * 1000 / n:.0f} us/relo)")
    print(f"  relocate, warm caches      {ms(warm):8.2f} ms   ({ms(warm) * 1000 / n:.0f} us/relo)")
    if ref:
        total = ms(parse) + ms(cold)
        print(f"  bpftool gen min_core_btf   {ms(ref):8.2f} ms   (libbpf, whole process)")
        print(f"  ratio pybpf parse+cold / bpftool: {total / ms(ref):.2f}")


if __name__ == "__main__":
    main()
