#!/usr/bin/env python3
"""bpftool's verbs in pure Python against bpftool itself, in the same run (root).

    python3 tools/bench_verbs.py [--entries N]

Times (best of 3, wall clock, each command a fresh process as a user runs it):
vmlinux.h (btf dump format c), the raw dump of vmlinux, ``prog list``,
``map dump`` of a hash map with N struct values, and ``feature probe``
(pybpf without its per-boot cache).  Ratios are bpftool / pybpf (above 1:
pybpf is faster).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

import pybpf  # noqa: E402

VMLINUX = "/sys/kernel/btf/vmlinux"


def best(cmd: List[str], runs: int = 3, env: Optional[Dict[str, str]] = None) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10000)
    args = parser.parse_args()
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    py = [sys.executable, "-m", "pybpf"]
    cache = tempfile.mkdtemp(prefix=f"pybpf-bench-{os.getpid()}-")
    env = dict(os.environ, PYBPF_CACHE_DIR=cache)
    rows: List[Tuple[str, float, float]] = []
    rows.append(("btf dump vmlinux format c",
                 best(py + ["btf", "dump", "file", VMLINUX, "format", "c"]),
                 best([bpftool, "btf", "dump", "file", VMLINUX, "format", "c"])))
    rows.append(("btf dump vmlinux format raw",
                 best(py + ["btf", "dump", "file", VMLINUX]),
                 best([bpftool, "btf", "dump", "file", VMLINUX, "format", "raw"])))
    obj_path = os.path.join(ROOT, "build", "loader_maps.bpf.o")
    pin = f"/sys/fs/bpf/pybpf-bench-{os.getpid()}"
    with pybpf.BPFObject.open(obj_path, pin_root=pin) as obj:
        obj.maps["points"].max_entries = args.entries
        obj.load()
        points = obj.maps["points"]
        for i in range(args.entries):
            points[i] = {"x": i, "y": -i, "tag": b"bench"}
        mid = str(points.info().id)
        rows.append(("prog list -j", best(py + ["prog", "list", "-j"]),
                     best([bpftool, "prog", "list", "-j"])))
        rows.append((f"map dump -j ({args.entries} entries)",
                     best(py + ["map", "dump", "id", mid, "-j"]),
                     best([bpftool, "map", "dump", "id", mid, "-j"])))
    for name in os.listdir(pin):
        os.unlink(os.path.join(pin, name))
    os.rmdir(pin)
    rows.append(("feature probe (uncached)",
                 best(py + ["feature", "--json", "--no-cache"], runs=1, env=env),
                 best([bpftool, "feature", "probe", "kernel", "--json"], runs=1)))
    rows.append(("feature probe (cached)", best(py + ["feature", "--json"], env=env),
                 best([bpftool, "feature", "probe", "kernel", "--json"], runs=1)))
    shutil.rmtree(cache)
    print(f"{'what':38} {'pybpf s':>9} {'bpftool s':>10} {'ratio':>7}")
    for what, ours, theirs in rows:
        print(f"{what:38} {ours:9.3f} {theirs:10.3f} {theirs / ours:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
