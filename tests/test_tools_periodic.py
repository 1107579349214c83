"""syscount and runqlat against workloads with known counts: a child making
an exact number of system calls, sleepers and CPU hogs sharing one CPU."""
from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from tooltest import ToolRun, matching, records
from pybpf.tools.syscall_names import syscall_name

pytestmark = pytest.mark.usefixtures("kernel")

# a child that waits for a line, makes exactly N getppid() and M failing close(), waits again
CHILD = r"""
import os, sys
sys.stdin.readline()
for _ in range(int(sys.argv[1])):
    os.getppid()
for _ in range(int(sys.argv[2])):
    try:
        os.close(987654)
    except OSError:
        pass
print("done", flush=True)
sys.stdin.readline()
"""


def _with_child(n: int, m: int, *tool_opts: str):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(n), str(m)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        run = ToolRun("syscount", "-p", str(child.pid), *tool_opts)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "done\n"
        recs = records(run.stop())
    finally:
        child.stdin.close()
        child.wait()
    return child.pid, recs


def test_syscall_names_table():
    assert syscall_name(59, "x86_64") == "execve"
    assert syscall_name(221, "aarch64") == "execve"
    assert syscall_name(462, "x86_64") == "mseal"
    assert syscall_name(100000, "x86_64") == "[100000]"


def test_syscount_counts_per_syscall():
    _, recs = _with_child(1000, 7, "-T", "0")
    by_name = {r["syscall"]: r for r in recs}
    assert by_name["getppid"]["count"] == 1000
    assert by_name["close"]["count"] >= 7


def test_syscount_errno_filter_and_latency():
    _, recs = _with_child(300, 7, "-e", "EBADF", "-L")
    by_name = {r["syscall"]: r for r in recs}
    assert by_name["close"]["count"] == 7
    assert "getppid" not in by_name
    assert 0 < by_name["close"]["max_ns"] <= by_name["close"]["total_ns"]
    assert errno.EBADF == 9


def test_syscount_per_process():
    pid, recs = _with_child(500, 0, "-P", "-L")
    assert [r["pid"] for r in recs] == [pid]
    assert recs[0]["count"] >= 500 and recs[0]["total_ns"] > 0
    assert recs[0]["comm"].startswith("python")


def test_syscount_interval_and_count_end_by_themselves():
    run = ToolRun("syscount", "-T", "3", "0.3", "2", json_output=False)
    out = run.wait()
    blocks = [b for b in out.split("\n\n") if b.strip()]
    assert len(blocks) == 2
    for block in blocks:
        lines = block.splitlines()
        assert lines[0].startswith("[") and lines[1].split() == ["SYSCALL", "COUNT"]
        assert 1 <= len(lines[2:]) <= 3


SLEEPER = r"""
import sys, time
sys.stdin.readline()
for _ in range(int(sys.argv[1])):
    time.sleep(0.002)
print("done", flush=True)
sys.stdin.readline()
"""
HOG = "while True: pass\n"
ON_CPU0 = ["taskset", "-c", "0", sys.executable, "-c"]     # every interpreter, PyPy too


def test_runqlat_sleepers_and_hogs():
    sleeper = subprocess.Popen(ON_CPU0 + [SLEEPER, "200"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    hogs = []
    try:
        run = ToolRun("runqlat", "-P", "-u")
        hogs = [subprocess.Popen(ON_CPU0 + [HOG]) for _ in range(2)]
        sleeper.stdin.write("go\n")
        sleeper.stdin.flush()
        assert sleeper.stdout.readline() == "done\n"
        recs = records(run.stop())
    finally:
        for h in hogs:
            h.kill()
            h.wait()
        sleeper.stdin.close()
        sleeper.wait()
    assert all(r["unit"] == "usecs" for r in recs)
    mine = matching(recs, pid=sleeper.pid)
    assert len(mine) == 1 and mine[0]["count"] >= 200, [(r["pid"], r["count"]) for r in recs]
    assert mine[0]["sum"] > 0
    # two hogs on one CPU: each waits a time slice of the other (>= ~0.7 ms)
    for h in hogs:
        hist = matching(recs, pid=h.pid)
        assert len(hist) == 1
        assert any(b["low"] >= 256 and b["count"] for b in hist[0]["buckets"]), hist


def test_runqlat_text_histogram():
    run = ToolRun("runqlat", "-m", "0.5", "1", json_output=False)
    out = run.wait()
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if "distribution" in line)
    assert lines[head].split() == ["msecs", ":", "count", "distribution"]
    assert lines[head + 1].split()[:3] == ["0", "->", "1"]
    assert all(line.rstrip().endswith("|") for line in lines[head + 1:] if line)


def test_runqlat_pid_filter():
    sleeper = subprocess.Popen(ON_CPU0 + [SLEEPER, "50"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        run = ToolRun("runqlat", "-P", "-p", str(sleeper.pid))
        sleeper.stdin.write("go\n")
        sleeper.stdin.flush()
        assert sleeper.stdout.readline() == "done\n"
        recs = records(run.stop())
    finally:
        sleeper.stdin.close()
        sleeper.wait()
    assert [r["pid"] for r in recs] == [sleeper.pid]
    assert recs[0]["count"] >= 50
