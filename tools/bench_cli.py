#!/usr/bin/env python3
"""How fast ``python -m pybpf load`` prints records (table and --json) to a pipe.

Producer: build/bench_cli.bpf.o writes ``batch_cnt`` 64-byte exec-snoop-like
records (u64 ts, u32 pid, u32 seq, char comm[16], char path[32]) per getpgid()
of the producer process.

1. Formatting, in this process: the ring is filled with N records, then drained
   into a pipe (read by ``cat > /dev/null``) by the CLI's printer
   (pybpf/cli/rows.py) and by the formatter it replaced (a dict per record
   through the BTF codec, str.ljust cells, one write + flush per row: kept here
   only, as the reference); rows/s and the ratio.
2. End to end: ``python -m pybpf load`` in a subprocess, stdout a pipe this
   process reads, while a child calls getpgid() at a fixed rate; rows/s received.

Rates are wall-clock and per CPU-second of the consumer (on a shared machine the
wall clock measures the neighbours too).  Run as root after ``make``:
``python3 tools/bench_cli.py [--records N] [--rounds R] [--rate R] [--seconds S]``.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, TextIO

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pybpf import BPFObject, RingBuffer  # noqa: E402
from pybpf.btf import codec  # noqa: E402
from pybpf.cli.rows import RecordTypes, RowPrinter  # noqa: E402

OBJ = os.path.join(ROOT, "build", "bench_cli.bpf.o")
BATCH = 256


# ------------------------------------------------------------------ the old formatter (reference)

class OldPrinter:
    """The CLI's formatter before pybpf/cli/rows.py: decode to a dict, then format."""

    def __init__(self, out: TextIO, as_json: bool, btf: Any, type_id: int):
        self.out, self.as_json = out, as_json
        self.comp = codec.compile(btf, type_id)
        self.columns: Optional[List[str]] = None
        self.widths: Dict[str, int] = {}

    @staticmethod
    def _cell(value: Any) -> str:
        if isinstance(value, (bytes, bytearray)):
            return value.split(b"\0", 1)[0].decode(errors="replace")
        return str(value)

    def _jsonable(self, value: Any) -> Any:
        if isinstance(value, (bytes, bytearray)):
            return self._cell(value)
        if isinstance(value, dict):
            return {k: self._jsonable(v) for k, v in value.items()}
        return value

    def record(self, source: str, data: memoryview) -> None:
        value = self.comp.decode(bytes(data[:self.comp.size]))
        now = time.time()
        if self.as_json:
            obj = {"time": round(now, 6), "map": source}
            obj.update(self._jsonable(value))
            self.out.write(json.dumps(obj) + "\n")
        else:
            if self.columns is None:
                self.columns = list(value)
                for name, v in value.items():
                    self.widths[name] = 7 if isinstance(v, int) else 16
                self.widths[self.columns[-1]] = 0
            stamp = time.strftime("%H:%M:%S", time.localtime(now))
            cells = [self._cell(value.get(c, "")).ljust(self.widths[c]) for c in self.columns]
            self.out.write(" ".join([stamp] + cells).rstrip() + "\n")
        self.out.flush()

    def flush(self) -> None:
        self.out.flush()


# ------------------------------------------------------------------ 1. formatting in process

def _sink() -> "tuple[TextIO, subprocess.Popen]":
    cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert cat.stdin is not None
    return io.TextIOWrapper(cat.stdin, encoding="utf-8", write_through=False), cat


def _fill(obj: BPFObject, records: int) -> None:
    for _ in range(records // BATCH):
        os.getpgid(0)
    assert obj.bss["dropped"] == 0, "ring too small for the batch"


def bench_formatters(records: int, rounds: int) -> Dict[str, float]:
    rates: Dict[str, float] = {}
    with BPFObject.open(OBJ) as obj:
        obj.rodata["batch_cnt"] = BATCH
        obj.load()
        obj.attach()
        obj.bss["producer_tgid"] = os.getpid()
        types = RecordTypes(obj)
        type_id = types.by_map["events"]
        for mode in ("table", "json"):
            for impl in ("pybpf", "old"):
                best = best_cpu = 0.0
                for _ in range(rounds):
                    out, cat = _sink()
                    printer: Any = RowPrinter(out, mode == "json", types) if impl == "pybpf" \
                        else OldPrinter(out, mode == "json", obj.btf, type_id)
                    _fill(obj, records)
                    if impl == "pybpf":      # as the CLI reads rings: a batch per pass
                        rb = RingBuffer(obj.maps["events"],
                                        lambda batch: printer.batch("events", batch),
                                        batch=True)
                    else:
                        rb = RingBuffer(obj.maps["events"],
                                        lambda data: printer.record("events", data))
                    t0, c0 = time.perf_counter(), time.process_time()
                    n = rb.consume()
                    printer.flush()
                    elapsed = time.perf_counter() - t0
                    cpu = time.process_time() - c0
                    rb.close()
                    out.close()
                    cat.wait()
                    assert n == records // BATCH * BATCH, n
                    best = max(best, n / elapsed)
                    best_cpu = max(best_cpu, n / cpu)
                rates[f"{impl} {mode}"] = best
                rates[f"{impl} {mode} cpu"] = best_cpu
    return rates


# ------------------------------------------------------------------ 2. the CLI end to end

_PRODUCER = """
import os, sys, time
rate, seconds, batch = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
sys.stdin.readline()
period, calls, t0 = batch / rate, 0, time.monotonic()
while time.monotonic() - t0 < seconds:
    os.getpgid(0)
    calls += 1
    delay = t0 + calls * period - time.monotonic()
    if delay > 0:
        time.sleep(delay)
print(calls * batch, flush=True)
"""


def bench_cli(as_json: bool, rate: float, seconds: float) -> Dict[str, float]:
    producer = subprocess.Popen([sys.executable, "-c", _PRODUCER, str(rate), str(seconds),
                                 str(BATCH)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
    cmd = [sys.executable, "-m", "pybpf", "load", OBJ, "--set",
           f"producer_tgid={producer.pid}", "--set", f"batch_cnt={BATCH}",
           "--duration", str(seconds + 3)] + (["--json"] if as_json else [])
    loader = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=ROOT))
    assert loader.stderr is not None and loader.stdout is not None
    line = loader.stderr.readline().decode()
    assert "reading" in line, line + loader.stderr.read().decode()
    producer.stdin.write("go\n")
    producer.stdin.flush()
    rows, first, last = 0, 0.0, 0.0
    for chunk in iter(lambda: loader.stdout.read1(1 << 16), b""):
        now = time.perf_counter()
        if not first:
            first = now
        rows += chunk.count(b"\n")
        last = now
    _, status, usage = os.wait4(loader.pid, 0)
    loader.returncode = os.waitstatus_to_exitcode(status)
    produced = int(producer.communicate()[0])
    if not as_json:
        rows -= 1                           # the header
    cpu = usage.ru_utime + usage.ru_stime   # the loader's whole run, start-up included
    return {"rows": rows, "produced": produced,
            "rows/s": rows / (last - first) if last > first else 0.0,
            "rows/cpu-s": rows / cpu if cpu else 0.0}


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000, help="records per drain")
    ap.add_argument("--rounds", type=int, default=3, help="drains per formatter (best kept)")
    ap.add_argument("--rate", type=float, default=300_000, help="producer records/s")
    ap.add_argument("--seconds", type=float, default=3.0, help="producer run time")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_cli: needs root", file=sys.stderr)
        return 1
    rates = bench_formatters(args.records, args.rounds)
    print(f"1. formatting {args.records} records of 64 bytes into a pipe (best of "
          f"{args.rounds}):")
    for mode in ("table", "json"):
        new, old = rates[f"pybpf {mode}"], rates[f"old {mode}"]
        new_cpu, old_cpu = rates[f"pybpf {mode} cpu"], rates[f"old {mode} cpu"]
        print(f"   {mode:5}  pybpf {new:9,.0f} rows/s ({new_cpu:9,.0f} per CPU-s)   old "
              f"formatter {old:9,.0f} rows/s ({old_cpu:9,.0f} per CPU-s)   ratio "
              f"{new / old:4.1f}x ({new_cpu / old_cpu:4.1f}x)")
    print(f"2. python -m pybpf load to a pipe, producer at {args.rate:,.0f} records/s for "
          f"{args.seconds:g}s:")
    for as_json in (False, True):
        r = bench_cli(as_json, args.rate, args.seconds)
        print(f"   {'json' if as_json else 'table':5}  {r['rows/s']:10,.0f} rows/s   "
              f"({r['rows/cpu-s']:,.0f} per CPU-s of the loader, start-up included; "
              f"{r['rows']:,} of {r['produced']:,} records printed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
