#!/usr/bin/env python3
"""CPU cost of the pybpf event tools at 10k and 100k events/s.

A C load generator (tools/tool_loadgen.c, built here with gcc) makes the
events at a fixed rate: failed open()s (opensnoop), kill(pid, 0) (killsnoop),
failed execve()s in vfork children (execsnoop -x), vfork children exiting
(exitsnoop), reset loopback TCP connections (tcpstates, tcplife; "sent" is
then the expected count).  biosnoop is not driven (block I/O at these rates
needs a real device).  Each tool runs as users run it (``python -m pybpf tool NAME
-c pybpf-loadgen --json``, its output read by this script) and, as the
reference in the same run, the same BPF object loaded with the same filters is
drained by libbpf in C (tools/tool_drain.c: ring_buffer__poll, counting).  The
CPU time of the consumer process between "tracing" and "drained" is reported,
with the events each received and the CPU per event received (the ratio is
pybpf's per-event cost over libbpf's); where the generator cannot reach the rate
(fork-bound modes) the achieved rate is shown.

usage: python3 tools/bench_tools.py [--seconds S] [--rates 10000,100000] [TOOL ...]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Tuple

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pybpf.tools import common  # noqa: E402

COMM = "pybpf-loadgen"
#: tool -> (load generator mode, events per operation, tool options, the same
#: filters as globals)
CASES: Dict[str, Tuple[str, int, List[str], Dict[str, object]]] = {
    "opensnoop": ("open", 1, [], {}),
    "killsnoop": ("kill", 1, [], {}),
    "execsnoop": ("exec", 1, ["-x"], {"targ_failed": True}),
    "exitsnoop": ("exit", 1, [], {}),
    # a reset loopback connection: ~6 state changes, one session (the client's)
    "tcpstates": ("tcp", 6, [], {}),
    "tcplife": ("tcp", 1, [], {}),
}


def build(tmp: str) -> Tuple[str, str]:
    gen = os.path.join(tmp, COMM)
    drain = os.path.join(tmp, "tool_drain")
    subprocess.run(["gcc", "-O2", "-o", gen, str(ROOT / "tools" / "tool_loadgen.c")], check=True)
    subprocess.run(["gcc", "-O2", "-o", drain, str(ROOT / "tools" / "tool_drain.c"), "-lbpf"],
                   check=True)
    return gen, drain


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(proc: subprocess.Popen) -> None:
    while True:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"consumer ended early: {proc.stderr.read()}")
        if line.startswith("Tracing"):
            return


def generate(gen: str, mode: str, rate: int, seconds: float) -> Tuple[int, float]:
    p = subprocess.Popen([gen, mode, str(rate), str(seconds)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate("go\n")
    n, secs = out.split()
    return int(n), float(secs)


def settle(counter: List[int]) -> None:
    """Until the consumer has stopped receiving (drained)."""
    last, still = -1, 0
    while still < 3:
        time.sleep(0.1)
        still = still + 1 if counter[0] == last else 0
        last = counter[0]


def lost(stderr: str) -> int:
    """The tool's "N event(s) lost" count."""
    for line in stderr.splitlines():
        if "event(s) lost" in line:
            return int(line.split("pybpf: ", 1)[1].split()[0])
    return 0


def run_pybpf(tool: str, opts: List[str], gen: str, mode: str, rate: int,
              seconds: float) -> Tuple[float, int, int, int, float]:
    proc = subprocess.Popen([sys.executable, "-m", "pybpf", "tool", tool, "-c", COMM, "--json",
                             *opts], cwd=str(ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_ready(proc)
    count = [0]

    def reader() -> None:
        for _ in proc.stdout:
            count[0] += 1
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    c0 = cpu_seconds(proc.pid)
    sent, secs = generate(gen, mode, rate, seconds)
    settle(count)
    used = cpu_seconds(proc.pid) - c0
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    proc.wait()
    t.join()
    return used, count[0], lost(err), sent, secs


def run_reference(tool: str, rodata: Dict[str, object], drain: str, gen: str, mode: str,
                  rate: int, seconds: float) -> Tuple[float, int, int]:
    args = argparse.Namespace(pid=0, comm=COMM)
    with common.open_tool(tool, args, **rodata) as obj:
        common.load_and_attach(obj)
        fd = obj.maps["events"].fd
        proc = subprocess.Popen([drain, str(fd)], pass_fds=[fd], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        wait_ready(proc)
        c0 = cpu_seconds(proc.pid)
        generate(gen, mode, rate, seconds)
        time.sleep(0.3)
        used = cpu_seconds(proc.pid) - c0
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate()
        dropped = obj.bss["events_dropped"]
    return used, int(out.strip() or 0), dropped


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--rates", default="10000,100000")
    p.add_argument("tools", nargs="*", default=list(CASES))
    a = p.parse_args()
    rates = [int(r) for r in a.rates.split(",")]
    with tempfile.TemporaryDirectory(prefix="pybpf-bench-tools-") as tmp:
        gen, drain = build(tmp)
        print(f"{'tool':<10} {'target/s':>9} {'sent/s':>8} {'pybpf got':>9} {'lost':>6} "
              f"{'pybpf CPU':>9} {'libbpf got':>10} {'lost':>6} {'libbpf CPU':>10} "
              f"{'us/ev pybpf':>11} {'libbpf':>6} {'ratio':>6}")
        for tool in a.tools:
            mode, per_op, opts, rodata = CASES[tool]
            for rate in rates:
                used, got, drops, sent, secs = run_pybpf(tool, opts, gen, mode,
                                                         rate // per_op, a.seconds)
                sent *= per_op
                ref_used, ref_got, ref_drops = run_reference(tool, rodata, drain, gen, mode,
                                                             rate // per_op, a.seconds)
                pct, ref_pct = 100 * used / secs, 100 * ref_used / secs
                per = 1e6 * used / got if got else 0.0
                ref_per = 1e6 * ref_used / ref_got if ref_got else 0.0
                ratio = f"{per / ref_per:.1f}x" if ref_per > 0 else "inf"
                print(f"{tool:<10} {rate:>9} {sent / secs:>8.0f} {got:>9} {drops:>6} "
                      f"{pct:>8.1f}% {ref_got:>10} {ref_drops:>6} {ref_pct:>9.1f}% "
                      f"{per:>11.1f} {ref_per:>6.1f} {ratio:>6}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
