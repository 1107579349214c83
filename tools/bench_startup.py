#!/usr/bin/env python3
"""Benchmark: what starting pybpf costs, against bpftool and a bare interpreter, and
how open + load grow with an object's size.

Whole processes, run in turn (A B C D A B C D ...) so a noisy machine slows all of
them alike; each child's own CPU time and peak RSS come from wait4(2):

  load      python -m pybpf load build/exec.bpf.o --duration 0.01   (attach, detach, exit)
  bpftool   bpftool prog loadall build/exec.bpf.o PINDIR            (the reference)
  pass      python -c pass                                           (the interpreter alone)
  import    python -c 'import pybpf'

Then, in this process: parsing vmlinux BTF and looking names up in it; open and
open+load of generated objects with 1, 10 and 100
programs, and with 10, 100 and 1000 CO-RE relocations (10 per program; built with
clang against build/vmlinux.h; needs root for the load).

    python3 tools/bench_startup.py [--rounds 7]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
OBJ = os.path.join(BUILD, "exec.bpf.o")


def run_child(argv: Sequence[str]) -> Tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def processes(rounds: int) -> None:
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    pins = f"/sys/fs/bpf/pybpf-bench-startup-{os.getpid()}"
    py = sys.executable
    commands: Dict[str, List[str]] = {
        "load": [py, "-m", "pybpf", "load", OBJ, "--duration", "0.01"],
        "bpftool": [bpftool, "prog", "loadall", OBJ, pins],
        "pass": [py, "-c", "pass"],
        "import": [py, "-c", "import pybpf"],
    }
    samples: Dict[str, List[Tuple[float, float, float]]] = {k: [] for k in commands}
    for name, argv in commands.items():       # warm-up: caches, bytecode
        run_child(argv)
        if name == "bpftool":
            shutil.rmtree(pins, ignore_errors=True)
    for _ in range(rounds):
        for name, argv in commands.items():
            samples[name].append(run_child(argv))
            if name == "bpftool":
                subprocess.run(["rm", "-rf", pins], check=False)
    med = {k: tuple(statistics.median(s[i] for s in v) for i in range(3))
           for k, v in samples.items()}
    print(f"whole processes, median of {rounds} (same run, in turn)")
    print(f"{'':10} {'wall s':>8} {'CPU s':>8} {'peak MiB':>9}")
    for name, (wall, cpu, rss) in med.items():
        print(f"{name:10} {wall:8.3f} {cpu:8.3f} {rss:9.1f}")
    load, ref, bare, imp = med["load"], med["bpftool"], med["pass"], med["import"]
    print(f"load / bpftool: CPU {load[1] / ref[1]:.1f}x, peak RSS {load[2] / ref[2]:.1f}x")
    print(f"load beyond the interpreter: CPU +{load[1] - bare[1]:.3f} s, "
          f"RSS +{load[2] - bare[2]:.1f} MiB   (targets: whole process <= 0.100 s CPU, "
          f"<= 30 MiB)")
    print(f"import pybpf beyond the interpreter: CPU +{(imp[1] - bare[1]) * 1000:.1f} ms "
          f"(target <= 30 ms)")


PROGS_SRC = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
"""
CORE_SRC = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
char LICENSE[] SEC("license") = "GPL";
"""
#: ten distinct task_struct fields: one program reads each once (ten CO-RE
#: relocations; clang merges reads of the same field within a program)
FIELDS = ("pid", "tgid", "prio", "static_prio", "normal_prio", "flags", "exit_code",
          "exit_signal", "pdeath_signal", "rt_priority")


def generated(tmp: str, kind: str, n: int) -> str:
    """A BPF object with ``n`` programs (kind "progs") or ``n`` CO-RE relocations."""
    src = os.path.join(tmp, f"{kind}{n}.bpf.c")
    with open(src, "w") as f:
        if kind == "progs":
            f.write(PROGS_SRC)
            for i in range(n):
                f.write(f'SEC("tp/syscalls/sys_enter_getpid")\n'
                        f"int p{i}(void *ctx) {{ return {i % 2}; }}\n")
        else:
            f.write(CORE_SRC)
            for i in range(n // len(FIELDS)):
                reads = "".join(f"    sum += BPF_CORE_READ(t, {name});\n" for name in FIELDS)
                f.write(f'SEC("tp/syscalls/sys_enter_getpid")\nint r{i}(void *ctx)\n{{\n'
                        "    struct task_struct *t = (void *)bpf_get_current_task();\n"
                        f"    long sum = 0;\n{reads}    return sum & 1;\n}}\n")
    out = src[:-2] + ".o"
    arch = {"x86_64": "x86", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", f"-D__TARGET_ARCH_{arch}",
                    f"-I{BUILD}", "-c", src, "-o", out], check=True)
    return out


def scaling(rounds: int) -> None:
    sys.path.insert(0, ROOT)
    import pybpf
    from pybpf.btf import kernel
    kernel.vmlinux()                      # parsed once per process: not part of a load
    print("\nopen and open+load in this process, median CPU ms (user + system: the "
          "verifier's time too)")
    print(f"{'object':22} {'open':>8} {'open+load':>10}")
    with tempfile.TemporaryDirectory(prefix="pybpf-bench-") as tmp:
        for kind, sizes in (("progs", (1, 10, 100)), ("core", (10, 100, 1000))):
            for n in sizes:
                path = generated(tmp, kind, n)
                opens, loads = [], []
                for _ in range(rounds):
                    t0 = time.process_time()
                    with pybpf.BPFObject.open(path) as obj:
                        t1 = time.process_time()
                        obj.load()
                        t2 = time.process_time()
                    opens.append(t1 - t0)
                    loads.append(t2 - t0)
                what = f"{n} programs" if kind == "progs" else f"{n} CO-RE relocations"
                print(f"{what:22} {statistics.median(opens) * 1e3:8.1f} "
                      f"{statistics.median(loads) * 1e3:10.1f}")


#: names looked up in vmlinux BTF ("file" ends many other strings: its lookup builds the
#: name index, the others search the packed name offsets)
LOOKUPS = ("task_struct", "sk_buff", "file", "pt_regs", "trace_event_raw_sys_enter",
           "no_such_type_here")


def vmlinux_lookups(rounds: int) -> None:
    """Parse the kernel's BTF and look names up in it, in this process: with the
    on-disk index (what every process after the first gets) and without it."""
    sys.path.insert(0, ROOT)
    from pybpf.btf import BTF, cache, kernel
    path = kernel.vmlinux_path()
    data = kernel._read(path)
    key = cache.key(data, kernel._is_sysfs(path))
    BTF.parse(data, section="vmlinux", cache_key=key)        # stores the index once
    for label, cache_key in (("with the cached index", key), ("scanned, no cache", None)):
        parses, finds = [], []
        for _ in range(rounds):
            t0 = time.process_time()
            btf = BTF.parse(data, section="vmlinux", cache_key=cache_key)
            t1 = time.process_time()
            for name in LOOKUPS:
                btf.find(name)
            finds.append((time.process_time() - t1) / len(LOOKUPS))
            parses.append(t1 - t0)
        print(f"\nvmlinux BTF ({len(btf) - 1} types, {len(data) >> 20} MiB), {label}, median "
              f"CPU: parse {statistics.median(parses) * 1e3:.1f} ms; a name lookup, mean of "
              f"{', '.join(LOOKUPS)} on a fresh parse: {statistics.median(finds) * 1e3:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    processes(args.rounds)
    vmlinux_lookups(max(3, args.rounds // 2))
    scaling(max(3, args.rounds // 2))


if __name__ == "__main__":
    main()
