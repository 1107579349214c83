"""profile against a CPU-bound C child built here with gcc -g: its own
function names must show up in the sampled stacks, in call order."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tooltest import ToolRun, records
from pybpf.obj.symbols import ElfSymbols, KernelSymbols, ProcessSymbols, parse_maps

SPIN_C = r"""
volatile unsigned long sink;
void pybpf_spin_inner(void) { for (int i = 0; i < 1000; i++) sink += i * 7; }
void pybpf_spin_outer(void) { for (;;) pybpf_spin_inner(); }
int main(void) { pybpf_spin_outer(); return 0; }
"""


@pytest.fixture(scope="module")
def spin_binary(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to build the profile test's CPU-bound child")
    d = tmp_path_factory.mktemp(f"pybpf-spin-{os.getpid()}")
    (d / "spin.c").write_text(SPIN_C)
    exe = d / "pybpf-spin"
    subprocess.run(["gcc", "-g", "-O0", "-fno-omit-frame-pointer",
                    "-mno-omit-leaf-frame-pointer", "-o", str(exe), str(d / "spin.c")],
                   check=True)
    return str(exe)


def test_elf_and_process_symbols(spin_binary):
    syms = ElfSymbols(spin_binary)
    names = {f.name for f in syms.funcs}
    assert {"main", "pybpf_spin_inner", "pybpf_spin_outer"} <= names
    inner = next(f for f in syms.funcs if f.name == "pybpf_spin_inner")
    assert syms.name(inner.start) == "pybpf_spin_inner"
    assert syms.name(inner.end - 1) == "pybpf_spin_inner"
    maps = parse_maps("55d0c0000000-55d0c0001000 r-xp 00001000 08:01 12 /bin/x (deleted)\n"
                      "55d0c0002000-55d0c0003000 rw-p 00000000 08:01 12 /bin/x\n"
                      "7ffd0000-7ffe0000 r-xp 00000000 00:00 0 [vdso]\n")
    assert [(m.start, m.offset, m.path) for m in maps] == [(0x55d0c0000000, 0x1000, "/bin/x")]
    proc = ProcessSymbols(os.getpid())
    assert proc.name(1) == "[unknown]"


def test_kallsyms_parsing(tmp_path):
    path = tmp_path / "kallsyms"
    path.write_text("ffffffff81000000 T _stext\nffffffff81000100 t helper\n"
                    "ffffffff81000200 D some_data\nffffffffc0000000 t mod_fn\t[loop]\n"
                    "0000000000000000 T hidden\n")
    k = KernelSymbols(str(path))
    assert k.addrs == [0xffffffff81000000, 0xffffffff81000100, 0xffffffffc0000000]
    assert k.name(0xffffffff81000150) == "helper"
    assert k.name(0xffffffffc0000010) == "mod_fn [loop]"
    assert k.name(0x1000) == "[unknown]"


def test_live_kallsyms(kernel):
    k = KernelSymbols()
    assert k.addrs and k.addrs == sorted(k.addrs), "root reads /proc/kallsyms addresses"
    i = k.names.index("schedule")
    assert k.name(k.addrs[i] + 1) == "schedule"


def test_profile_finds_the_childs_functions(kernel, spin_binary):
    child = subprocess.Popen([spin_binary])
    try:
        run = ToolRun("profile", "-p", str(child.pid), "-F", "199", "-f", json_output=False)
        # let the child burn CPU while sampled: done once its CPU time grew by 1 s
        start = _cpu_seconds(child.pid)
        while _cpu_seconds(child.pid) - start < 1.0:
            time.sleep(0.1)
        out = run.stop()
    finally:
        child.kill()
        child.wait()
    lines = [line.rsplit(" ", 1) for line in out.splitlines()]
    assert lines and all(int(n) > 0 for _, n in lines)
    stacks = {frames: int(n) for frames, n in lines}
    total = sum(stacks.values())
    assert total >= 100                  # ~199 Hz over 1 s of its CPU
    chained = sum(n for frames, n in stacks.items()
                  if ";main;pybpf_spin_outer;pybpf_spin_inner" in frames)
    assert chained >= total * 0.8, stacks
    assert all(frames.startswith("pybpf-spin;") for frames in stacks), stacks


def test_profile_json_kernel_only(kernel, spin_binary):
    child = subprocess.Popen([spin_binary])
    try:
        run = ToolRun("profile", "-p", str(child.pid), "-K", "-F", "99")
        start = _cpu_seconds(child.pid)
        while _cpu_seconds(child.pid) - start < 0.5:
            time.sleep(0.1)
        recs = records(run.stop())
    finally:
        child.kill()
        child.wait()
    assert recs and all(r["pid"] == child.pid and r["user"] == [] for r in recs)
    assert sum(r["count"] for r in recs) >= 20


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
