#!/usr/bin/env python3
"""Ring buffer drain benchmark: pybpf against libbpf, in C and through ctypes.

A hand-assembled BPF producer (pybpf.study.producer, run by BPF_PROG_TEST_RUN
with repeat=N, BPF_RB_NO_WAKEUP) fills a ring with N records {u64 ts, u64 seq}
(16 bytes of payload, 24 in the ring); each consumer then drains it, timed.
The task: decode every record as {u64 ts, u64 seq} and add up seq; every
total is checked, so no consumer can skip records.  Each consumer does it in
its own idiom: the ctypes reference gets each record as a typed ctypes struct
(``cast(...).contents``) and reads ``.seq``; pybpf's per-record consumers
unpack ts and seq into Python ints; the bulk consumer gets typed columns
(zero-copy strided views) and sums the seq column in C, with no Python code per
record — what a bulk path is for.  "pybpf bulk, ts too" also reduces the ts
column (max), so both fields of every record become Python ints in C; "pybpf
rows" hands every record to Python as a tuple (the rows floor below bounds it).

Consumers:
  ctypes callback  libbpf's ring_buffer__consume calling a ctypes callback per
                   record, wrapped as bcc's Python does (table.py ringbuf_cb_),
                   the record read with ctypes.cast(data, POINTER(Event)).contents.
                   The reference: ratios are against it, in the same run.
  pybpf callback   RingBuffer(map, cb): cb(memoryview) per record, struct.unpack.
  pybpf batch      RingBuffer(map, cb, batch=True): cb(RecordBatch) once per pass,
                   batch.unpack(EVENT) decodes every record (unpack_from, in C).
  pybpf bulk       RingBuffer(map, cb, columns=ColumnLayout("QQ", ["ts", "seq"])):
                   cb(cols) per run of records; sum(cols.seq) in C.
  pybpf bulk, ts too  the same, plus max(cols.ts).
  pybpf rows       RingBuffer(map, cb, struct="<QQ"): tuples from iter_unpack run
                   over the mapping ("8x" skips the header in the format), summed
                   by a Python loop.
  libbpf C         tools/rb_consumer.c built with gcc -lbpf into build/.

Then end-to-end latency, bpf_ktime_get_ns() at submit to the Python callback,
at ~1k and ~100k events/s (producer in a forked process, default wakeups).

PyPy: the throughput tables are then printed again from a PyPy run of this
script (reference included), unless --no-pypy.

    python3 tools/bench_ringbuf.py [--records N] [--rounds R] [--no-latency]
                                   [--cpu N] [--cpu-time] [--pypy PATH | --no-pypy]
"""
from __future__ import annotations

import argparse
import ctypes
import errno
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pybpf.events import barriers
from pybpf.kernel import syscall
from pybpf import uapi
from pybpf.events.ringbuf import Columns, ColumnLayout, RecordBatch, RingBuffer  # noqa: E402
from pybpf.study.producer import Producer  # noqa: E402

EVENT = struct.Struct("<QQ")        # {u64 ts, u64 seq}
#: ratios to the ctypes reference pybpf must reach (issue 8: set on CPython, the default
#: interpreter; a PyPy run prints its ratios against the same figures, marked as such)
TARGETS = {"pybpf callback": 6.0, "pybpf batch": 20.0, "pybpf bulk": 100.0,
           "pybpf callback (bare)": 1.0}
LAYOUT = ColumnLayout("QQ", names=["ts", "seq"])

Drain = Callable[[], Tuple[int, float, int]]   # -> (records, seconds, seq total)

#: what a drain is timed with: wall time, or with --cpu-time the process's CPU time
#: (steadier on a shared machine: time other processes take is not counted)
clock = time.perf_counter


# ------------------------------------------------------------------ pybpf consumers

def _make(fd: int, kind: str):
    """A RingBuffer of the given kind and the function reading (and resetting) its total."""
    acc = {"total": 0}

    if kind == "callback":
        def on_event(data):
            ts, seq = EVENT.unpack(data)
            acc["total"] += seq
        rb = RingBuffer(fd, on_event)
    elif kind == "batch":
        def on_batch(batch: RecordBatch):
            total = 0
            for ts, seq in batch.unpack(EVENT):
                total += seq
            acc["total"] += total
        rb = RingBuffer(fd, on_batch, batch=True)
    elif kind == "bulk":
        def on_columns(cols: Columns):
            acc["total"] += sum(cols.seq)
        rb = RingBuffer(fd, on_columns, columns=LAYOUT)
    elif kind == "bulk-ts":
        def on_both(cols: Columns):
            acc["total"] += sum(cols.seq)
            acc["ts"] = max(acc.get("ts", 0), max(cols.ts))
        rb = RingBuffer(fd, on_both, columns=LAYOUT)
    elif kind == "rows":
        def on_rows(rows):
            total = 0
            for ts, seq in rows:
                total += seq
            acc["total"] += total
        rb = RingBuffer(fd, on_rows, struct="<QQ")
    elif kind == "count":
        def on_any(data):
            acc["total"] += 1
        rb = RingBuffer(fd, on_any)
    else:
        raise ValueError(kind)

    def drain() -> Tuple[int, float, int]:
        acc["total"] = 0
        t0 = clock()
        n = rb.consume()
        return n, clock() - t0, acc["total"]
    return drain, rb


# ------------------------------------------------------------------ libbpf through ctypes

class Event(ctypes.Structure):
    _fields_ = [("ts", ctypes.c_uint64), ("seq", ctypes.c_uint64)]


_SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


def bcc_wrap(callback):
    """bcc's RingBuf callback wrapper (bcc/table.py, ringbuf_cb_), as bcc users get it."""
    def ringbuf_cb_(ctx, data, size):
        try:
            ret = callback(ctx, data, size)
            try:
                ret = int(ret)
            except Exception:
                ret = 0
        except IOError as e:
            if e.errno == errno.EPIPE:
                sys.exit()
            raise e
        return ret
    return ringbuf_cb_


class Libbpf:
    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libbpf.so.1")
        self.lib.ring_buffer__new.restype = ctypes.c_void_p
        self.lib.ring_buffer__new.argtypes = [ctypes.c_int, _SAMPLE_FN, ctypes.c_void_p,
                                              ctypes.c_void_p]
        self.lib.ring_buffer__consume.argtypes = [ctypes.c_void_p]
        self.lib.ring_buffer__free.argtypes = [ctypes.c_void_p]
        self._keep: List[object] = []

    def consumer(self, fd: int, kind: str) -> Tuple[Drain, Callable[[], None]]:
        acc = {"total": 0}
        if kind == "bcc":
            def on_event(ctx, data, size):
                e = ctypes.cast(data, ctypes.POINTER(Event)).contents
                acc["total"] += e.seq
            fn = _SAMPLE_FN(bcc_wrap(on_event))
        else:  # "count": the bare trampoline, no wrapper, no data access
            def on_any(ctx, data, size):
                acc["total"] += 1
                return 0
            fn = _SAMPLE_FN(on_any)
        self._keep.append(fn)
        rb = self.lib.ring_buffer__new(fd, fn, None, None)
        if not rb:
            raise OSError(ctypes.get_errno(), "ring_buffer__new")

        def drain() -> Tuple[int, float, int]:
            acc["total"] = 0
            t0 = clock()
            n = self.lib.ring_buffer__consume(rb)
            return n, clock() - t0, acc["total"]
        return drain, lambda: self.lib.ring_buffer__free(rb)


# ------------------------------------------------------------------ libbpf in C

def build_c_consumer() -> Tuple[Optional[Path], str]:
    gcc = shutil.which("gcc")
    if gcc is None:
        return None, "gcc not found"
    if not Path("/usr/include/bpf/libbpf.h").exists():
        return None, "libbpf-dev not installed (apt-get install libbpf-dev)"
    out = ROOT / "build" / "rb_consumer"
    out.parent.mkdir(exist_ok=True)
    src = ROOT / "tools" / "rb_consumer.c"
    res = subprocess.run([gcc, "-O2", "-Wall", "-o", str(out), str(src), "-lbpf"],
                         capture_output=True, text=True)
    if res.returncode:
        return None, f"gcc failed: {res.stderr.strip()[:300]}"
    return out, ""


def c_consumer(binary: Path, fd: int) -> Tuple[Drain, Callable[[], None]]:
    cpu = ["cpu"] if clock is time.process_time else []
    proc = subprocess.Popen([str(binary), str(fd)] + cpu, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, pass_fds=[fd], text=True, bufsize=1)

    def drain() -> Tuple[int, float, int]:
        proc.stdin.write("go\n")
        proc.stdin.flush()
        n, ns, total, _ = proc.stdout.readline().split()
        return int(n), int(ns) / 1e9, int(total)

    def close() -> None:
        proc.stdin.close()
        proc.wait()
    return drain, close


# ------------------------------------------------------------------ throughput

def throughput(records: int, ring_size: int, rounds: int, minimal: bool) -> None:
    with syscall.map_create(uapi.BPF_MAP_TYPE_RINGBUF, 0, 0, ring_size, name="bench_rb") as m, \
            Producer(m.fd) as prod:
        consumers: Dict[str, Drain] = {}
        closers: List[Callable[[], None]] = []
        skipped: List[str] = []
        try:
            lib = Libbpf()
        except OSError as e:
            lib = None
            skipped.append(f"libbpf through ctypes: {e}")
        ref = "ctypes callback"
        if minimal:
            kinds = [("ctypes callback (bare)", "lib", "count"),
                     ("pybpf callback (bare)", "py", "count")]
            ref = "ctypes callback (bare)"
        else:
            kinds = [("ctypes callback", "lib", "bcc"), ("pybpf callback", "py", "callback"),
                     ("pybpf batch", "py", "batch"), ("pybpf bulk", "py", "bulk"),
                     ("pybpf bulk, ts too", "py", "bulk-ts"), ("pybpf rows", "py", "rows"),
                     ("libbpf C", "c", None)]
        binary, why = build_c_consumer() if not minimal else (None, "")
        if not minimal and binary is None:
            skipped.append(f"libbpf C consumer: {why}")
        for name, where, kind in kinds:
            if where == "lib" and lib is not None:
                consumers[name], close = lib.consumer(m.fd, kind)
                closers.append(close)
            elif where == "py":
                consumers[name], rb = _make(m.fd, kind)
                closers.append(rb.close)
            elif where == "c" and binary is not None:
                consumers[name], close = c_consumer(binary, m.fd)
                closers.append(close)
        try:
            rates: Dict[str, List[float]] = {name: [] for name in consumers}
            want_seq = records * (records - 1) // 2
            order = list(consumers.items())
            for rnd in range(rounds + 1):            # round 0 warms the mappings up
                turn = rnd % len(order)              # each round starts one consumer later
                for name, drain in order[turn:] + order[:turn]:
                    prod.seq(records, start=0)
                    n, dt, total = drain()
                    want = records if name.endswith("(bare)") else want_seq
                    if n != records or total != want:
                        raise SystemExit(f"{name}: drained {n} records, total {total}; "
                                         f"expected {records}, {want}")
                    if rnd:
                        rates[name].append(records / dt)
        finally:
            for close in closers:
                close()
    print(f"\nworkload: {'count records only' if minimal else 'decode {u64 ts, u64 seq}, sum seq (checked)'}; "
          f"median of {rounds} drains of {records} records ({records * 24 >> 20} MiB in a "
          f"{ring_size >> 20} MiB ring); a ratio is the median of the rounds' own ratios")
    base = rates.get(ref)
    print(f"  {'consumer':28s} {'records/s':>12s} {'vs ' + ref:>28s} {'target':>8s}")
    for name, rs in rates.items():
        med = statistics.median(rs)
        ratio = paired_ratio(rs, base) if base else None
        target = TARGETS.get(name)
        mark = "" if target is None or ratio is None else \
            f"{target:>5g}x {'met' if ratio >= target else 'MISSED'}" + \
            (" (CPython's target)" if platform.python_implementation() == "PyPy" else "")
        shown = f"{ratio:10.1f}x" if ratio is not None else "n/a"
        print(f"  {name:28s} {med / 1e6:10.2f} M {shown:>28s} {mark:>12s}")
    if not minimal:
        rate = rows_floor(records)
        ref_rate = statistics.median(base) if base else 0.0
        print(f"  {'(' + platform.python_implementation() + ' floor for rows)':28s} {rate / 1e6:10.2f} M {rate / ref_rate if ref_rate else 0:27.1f}x"
              "   <- the rows user loop over iter_unpack of a bytes copy, no ring")
    for line in skipped:
        print(f"  (skipped: {line})")


def paired_ratio(rates: List[float], ref: List[float]) -> float:
    """The median over rounds of a consumer's rate over the reference's in the same
    round: a shared machine's speed drifts between rounds more than within one."""
    return statistics.median(r / b for r, b in zip(rates, ref))


def rows_floor(records: int) -> float:
    """Records/s of the bulk consumer's own loop over a private copy: what no
    library can beat with tuples handed to Python code."""
    whole = struct.Struct("<8xQQ")
    t0 = time.monotonic_ns()           # values like the ring's: no small cached ints
    blob = b"".join(whole.pack(t0 + 80 * i, i) for i in range(records))
    best = 0.0
    for _ in range(3):
        total = 0
        t0 = clock()
        for ts, seq in whole.iter_unpack(blob):
            total += seq
        best = max(best, records / (clock() - t0))
    return best


# ------------------------------------------------------------------ latency

def latency(rate: int, seconds: float) -> None:
    """Producer in a forked child at ``rate`` events/s; p50/p99 of submit -> callback."""
    with syscall.map_create(uapi.BPF_MAP_TYPE_RINGBUF, 0, 0, 1 << 22, name="lat_rb") as m:
        lat: List[int] = []
        clock = time.monotonic_ns      # CLOCK_MONOTONIC, as bpf_ktime_get_ns()

        def on_event(data):
            lat.append(clock() - EVENT.unpack(data)[0])
        with RingBuffer(m.fd, on_event) as rb:
            burst = max(1, rate // 1000)            # one burst per millisecond
            period = burst / rate
            pid = os.fork()
            if pid == 0:                             # the producer
                code = 0
                try:
                    with Producer(m.fd) as prod:
                        prod.seq(1, flags=0)
                        end = time.monotonic() + seconds
                        nxt = time.monotonic()
                        while nxt < end:
                            nxt += period
                            pause = nxt - time.monotonic()
                            if pause > 0:
                                time.sleep(pause)
                            prod.seq(burst, flags=0)
                except BaseException:
                    code = 1
                os._exit(code)
            done = 0
            while not done:
                rb.poll(timeout_ms=100)
                done = os.waitpid(pid, os.WNOHANG)[0]
            rb.consume()
    lat = lat[1:]   # the warm-up record
    if not lat:
        print(f"  {rate:>7d}/s: no events")
        return
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] / 1000  # noqa: E731
    print(f"  {rate:>7d}/s target, {len(lat) / seconds:>9.0f}/s seen: "
          f"p50 {q(0.50):8.1f} us   p99 {q(0.99):8.1f} us   max {lat[-1] / 1000:8.1f} us")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ring-mib", type=int, default=16)
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--latency-seconds", type=float, default=2.0)
    parser.add_argument("--cpu", type=int, default=None,
                        help="pin the benchmark (and the C consumer) to this CPU")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time each drain by the consuming process's CPU time, not wall time")
    parser.add_argument("--pypy", default=default_pypy(),
                        help="PyPy to run the throughput tables under too, after this "
                             "interpreter's (default: build/pypy-venv, else pypy3 on PATH)")
    parser.add_argument("--no-pypy", dest="pypy", action="store_const", const="")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_ringbuf: needs root (BPF maps and programs)", file=sys.stderr)
        return 1
    if args.cpu is not None:
        pin(args.cpu)
    if args.cpu_time:
        global clock
        clock = time.process_time
    ring = args.ring_mib << 20
    if args.records * 24 > ring:
        print(f"bench_ringbuf: {args.records} records do not fit a {args.ring_mib} MiB ring",
              file=sys.stderr)
        return 1
    print(f"pybpf ring buffer benchmark: {platform.python_implementation()} "
          f"{platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, kernel {platform.release()}, "
          f"ordering={barriers.ORDER.kind}, timed by {'CPU' if args.cpu_time else 'wall'} time")
    throughput(args.records, ring, args.rounds, minimal=False)
    throughput(args.records, ring, args.rounds, minimal=True)
    if not args.no_latency:
        print("\nend-to-end latency, bpf_ktime_get_ns() at submit -> pybpf callback "
              "(producer in another process, default adaptive wakeups):")
        for rate in (1_000, 100_000):
            latency(rate, args.latency_seconds)
    if args.pypy and platform.python_implementation() != "PyPy":
        print(f"\n==== the same under {args.pypy} (the reference runs under PyPy too)",
              flush=True)
        cmd = [args.pypy, __file__, "--no-pypy", "--no-latency", "--records", str(args.records),
               "--rounds", str(args.rounds), "--ring-mib", str(args.ring_mib)]
        if args.cpu_time:
            cmd.append("--cpu-time")
        return subprocess.call(cmd)
    return 0


def pin(cpu: int) -> None:
    """Run this process (and the children it starts) on ``cpu`` only."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
        return
    mask = (ctypes.c_uint64 * 16)()         # PyPy has no os.sched_setaffinity: libc's
    mask[cpu // 64] = 1 << (cpu % 64)
    if ctypes.CDLL(None, use_errno=True).sched_setaffinity(0, ctypes.sizeof(mask), mask):
        raise OSError(ctypes.get_errno(), f"sched_setaffinity(CPU {cpu})")


def default_pypy() -> str:
    """The PyPy the CI tests with (``make test-pypy``'s venv), else pypy3 on PATH, else ""."""
    venv = ROOT / "build" / "pypy-venv" / "bin" / "python"
    return str(venv) if venv.exists() else shutil.which("pypy3") or ""


if __name__ == "__main__":
    sys.exit(main())
