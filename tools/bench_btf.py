#!/usr/bin/env python3
"""BTF speed: lazy parse + lookups against an eager full decode, in the same run.

    python3 tools/bench_btf.py [PATH_TO_BTF]     (default /sys/kernel/btf/vmlinux)

Each figure is the best of several runs; ratios are reference / pybpf (higher
is better for pybpf).
"""
from __future__ import annotations

import os
import sys
import time
from typing import Callable, Dict, List, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pybpf.btf import BTF, codec  # noqa: E402
from pybpf.btf import types as T  # noqa: E402

NAMES = ["task_struct", "sk_buff", "file", "inode", "mm_struct", "cred", "pt_regs",
         "bpf_prog", "sock", "net_device", "cgroup", "dentry", "page", "list_head",
         "trace_event_raw_sched_process_exec", "bpf_map", "super_block", "seq_file",
         "xdp_md", "__sk_buff"]


def best(fn: Callable[[], object], runs: int = 5) -> Tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def eager(data: bytes) -> Tuple[BTF, Dict[str, List[int]]]:
    """The naive reference: decode every type into an object, then index names."""
    btf = BTF.parse(data, validate=True)
    index: Dict[str, List[int]] = {}
    for type_id in range(1, len(btf)):
        index.setdefault(btf[type_id].name, []).append(type_id)
    return btf, index


def lazy_first_find(data: bytes) -> BTF:
    btf = BTF.parse(data)
    btf.find("task_struct")
    return btf


def row(what: str, ours: float, ref: float) -> None:
    print(f"  {what:<38} {ours * 1e3:9.2f} ms  {ref * 1e3:9.2f} ms  x{ref / ours:7.1f}")


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "/sys/kernel/btf/vmlinux"
    with open(path, "rb") as f:
        data = f.read()
    print(f"{path}: {len(data) / 1e6:.1f} MB")

    t_parse, lazy = best(lambda: BTF.parse(data))
    t_first, _ = best(lambda: lazy_first_find(data))
    t_eager, (ref, index) = best(lambda: eager(data), runs=2)
    print(f"  {len(lazy) - 1} types                              pybpf     eager ref   ratio")
    row("parse", t_parse, t_eager)
    row("parse + find('task_struct')", t_first, t_eager)

    warm = BTF.parse(data)
    warm.find("int")
    t_finds, _ = best(lambda: [BTF.find(warm, n) for n in NAMES], runs=1)
    t_cached, _ = best(lambda: [warm.find(n) for n in NAMES])
    t_dict, _ = best(lambda: [index.get(n, []) for n in NAMES])
    assert [warm.find(n) for n in NAMES] == [index.get(n, []) for n in NAMES]
    print(f"  {len(NAMES)} finds: first time {t_finds * 1e3:.2f} ms"
          f" ({t_finds / len(NAMES) * 1e6:.0f} us each), repeated {t_cached * 1e6:.0f} us"
          f" (eager dict: {t_dict * 1e6:.0f} us)")

    ts = lazy.find_one("task_struct", T.Struct.kind)
    t_decode, _ = best(lambda: BTF.parse(data)[ts])
    print(f"  parse + decode task_struct ({len(lazy[ts].members)} members):"
          f" {t_decode * 1e3:.2f} ms")

    t_compile, c = best(lambda: codec.compile(lazy, ts))
    zero = bytes(c.size)
    n = 200
    t_compiled, _ = best(lambda: [c.decode(zero) for _ in range(n)])
    t_oneshot, _ = best(lambda: [codec.decode(lazy, ts, zero) for _ in range(n)], runs=2)
    print(f"  codec task_struct: compile {t_compile * 1e3:.2f} ms; decode x{n}:"
          f" compiled {t_compiled * 1e3:.1f} ms, one-shot {t_oneshot * 1e3:.1f} ms"
          f" (x{t_oneshot / t_compiled:.1f})")
    event = BTF()
    i32 = event.add(T.Int("int", 4, 1, 0, 32))
    char = event.add(T.Int("char", 1, 1, 0, 8))
    ev = event.add(T.Struct("event", 532, [
        T.Member("pid", i32, 0),
        T.Member("comm", event.add(T.Array("", char, i32, 16)), 32),
        T.Member("filename", event.add(T.Array("", char, i32, 512)), 160)]))
    ec = codec.compile(event, ev)
    records = ec.encode({"pid": 1, "comm": b"bash", "filename": b"/bin/ls"}) * 10000
    t_many, _ = best(lambda: list(ec.decode_many(records)))
    t_each, _ = best(lambda: [ec.decode(records[i:i + 532])
                              for i in range(0, len(records), 532)])
    print(f"  struct event x10000: decode_many {t_many * 1e3:.1f} ms,"
          f" decode each {t_each * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
