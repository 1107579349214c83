"""The seed-claim programs (bpf/seed_*.bpf.c) load, attach and write the records
tools/seed_claims.py relies on; and the tool's order analysis, on synthetic streams."""
from __future__ import annotations

import os
import struct
import sys
from typing import Dict, List

import pytest

import pybpf
from pybpf.kernel.sysinfo import online_cpus

from conftest import ROOT, built, require_kernel

sys.path.insert(0, str(ROOT / "tools"))
import seed_claims as tool  # noqa: E402

CPUS = online_cpus()


# ------------------------------------------------------------------ order analysis (no kernel)

def ev(seq: int, pid: int, kind: int, ts: int = 0) -> tuple:
    return (seq, ts or seq * 1000, pid, 0, kind, 0)


def test_order_stats_in_order_stream():
    events = [ev(0, 7, tool.FORK), ev(1, 7, tool.EXEC), ev(2, 8, tool.FORK), ev(3, 7, tool.EXIT)]
    assert tool.order_stats(events) == {"events": 4, "out_of_order": 0, "procs": 2,
                                        "violations": 0, "window_ns": 0}


def test_order_stats_counts_late_events_and_causal_violations():
    # as a per-CPU reader delivers them: CPU 0's events, then CPU 1's
    events = [ev(1, 7, tool.EXEC), ev(3, 8, tool.EXIT), ev(0, 7, tool.FORK),
              ev(2, 8, tool.FORK), ev(4, 9, tool.FORK)]
    stats = tool.order_stats(events)
    assert stats["out_of_order"] == 2          # seq 0 after 3, seq 2 after 3
    assert stats["violations"] == 2            # 7: exec before fork; 8: exit before fork
    assert stats["procs"] == 3
    assert stats["window_ns"] == 3000          # seq 0 (ts 0) arrived after ts 3000


def test_burst_plans_split_every_record():
    plans = tool.burst_plans(7, [0, 1])
    assert plans == {"all on CPU 0": {0: 7}, "even": {0: 4, 1: 3}}


# ------------------------------------------------------------------ seed_order

def test_order_program_sees_fork_exec_exit_on_both_transports():
    require_kernel()
    streams: Dict[str, List[tuple]] = {"rb": [], "pb": []}
    with pybpf.BPFObject.open(built("seed_order.bpf.o")) as obj:
        obj.load()
        obj.maps["tracked"][os.getpid()] = 1
        assert len(obj.attach()) == 3
        with pybpf.RingBuffer(obj.maps["rb"],
                              lambda d: streams["rb"].append(tool.ORDER.unpack_from(d))) as rb, \
                pybpf.PerfBuffer(obj.maps["pb"],
                                 lambda cpu, d: streams["pb"].append(tool.ORDER.unpack_from(d)),
                                 pages=4) as pb:
            child = os.fork()
            if child == 0:
                try:
                    os.execv(tool.TRUE, [tool.TRUE])
                finally:
                    os._exit(127)
            assert os.waitpid(child, 0)[1] == 0
            rb.consume()
            pb.consume()
        assert obj.bss["rb_dropped"] == obj.bss["pb_dropped"] == 0
    mine = [e for e in streams["rb"] if e[2] == child]
    assert [e[4] for e in mine] == [tool.FORK, tool.EXEC, tool.EXIT]
    assert mine[0][5] == os.getpid()                       # the fork names its parent
    assert [e[0] for e in mine] == sorted(e[0] for e in mine)
    assert all(e[3] in CPUS for e in mine)
    # the same events, the same seqs, on the per-CPU transport
    assert sorted(e for e in streams["pb"] if e[2] == child) == sorted(mine)


# ------------------------------------------------------------------ seed_burst

@pytest.mark.parametrize("cpu", CPUS)
def test_burst_program_fills_each_buffer_on_the_chosen_cpu(cpu):
    require_kernel()
    ring, pages = 8192, 1
    fits_rb, fits_pb = ring // tool.BURST_REC, pages * 4096 // tool.BURST_REC
    burst = 150
    got: Dict[str, List] = {"rb": [], "pb": []}
    lost: Dict[int, int] = {}
    with pybpf.BPFObject.open(built("seed_burst.bpf.o")) as obj:
        obj.maps["rb"].max_entries = ring
        obj.load()
        with pybpf.RingBuffer(obj.maps["rb"], lambda d: got["rb"].append(bytes(d))) as rb, \
                pybpf.PerfBuffer(obj.maps["pb"], lambda c, d: got["pb"].append((c, bytes(d))),
                                 lost=lambda c, n: lost.__setitem__(c, n), pages=pages) as pb:
            tool.run_burst(obj, "burst_rb", {cpu: burst})
            tool.run_burst(obj, "burst_pb", {cpu: burst})
            assert obj.maps["rb_drops"][0][cpu] == burst - fits_rb
            assert obj.maps["pb_drops"][0][cpu] == burst - fits_pb
            assert rb.consume() == fits_rb
            assert pb.consume() == fits_pb
            tool.run_burst(obj, "burst_pb", {cpu: 1})      # brings the LOST record out
            pb.consume()
    assert lost == {cpu: burst - fits_pb}
    assert all(len(r) == 64 and struct.unpack_from("=QQ", r)[1] == cpu for r in got["rb"])
    samples = got["pb"][:fits_pb]
    assert all(c == cpu and len(d) >= 60 and struct.unpack_from("=QQ", d)[1] == cpu
               for c, d in samples)


# ------------------------------------------------------------------ seed_bench

def read_bench(cfg: "tool.Config", obj: pybpf.BPFObject) -> List[int]:
    """The seq of every record the row's program wrote, in delivery order."""
    big = cfg.prog.endswith("big")
    fmt = "=i" if big else "=8xQ"          # big_event.pid carries seq; else {ts, seq}
    size = tool.BIG_EVENT if big else tool.EVENT.size
    seqs: List[int] = []

    def take(data) -> None:
        assert len(data) >= size
        seqs.append(struct.unpack_from(fmt, data)[0])
    if cfg.perf:
        with pybpf.PerfBuffer(obj.maps["pb"], lambda cpu, d: take(d), pages=8,
                              wakeup_events=cfg.wakeup_events) as pb:
            obj.programs["bench_" + cfg.prog].attach()
            trigger(obj)
            pb.consume()
    else:
        with pybpf.RingBuffer(obj.maps["rb"], take) as rb:
            obj.programs["bench_" + cfg.prog].attach()
            trigger(obj)
            rb.consume()
    return seqs


def trigger(obj: pybpf.BPFObject) -> None:
    os.getpgid(0)                          # not ours yet: filtered out
    obj.bss["producer_tgid"] = os.getpid()
    for _ in range(3):
        os.getpgid(0)
    obj.bss["producer_tgid"] = 0


# the producer rows cover every BPF-side variant (the live rows add consumers only)
@pytest.mark.parametrize("cfg", tool.producer_configs(500), ids=lambda c: c.name)
def test_bench_program_writes_batch_per_getpgid(cfg):
    require_kernel()
    with cfg.open(batch=4) as obj:
        seqs = read_bench(cfg, obj)
        assert obj.bss["dropped"] == 0
        assert obj.bss["next_seq"] == 12
    assert sorted(seqs) == list(range(12))
