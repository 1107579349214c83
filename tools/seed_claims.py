#!/usr/bin/env python3
"""Reproduce the seed article's ring buffer claims with pybpf (docs/seed-claims.md).

    python3 tools/seed_claims.py ordering   [--quick]   fork/exec/exit order: ringbuf vs perfbuf
    python3 tools/seed_claims.py memory     [--quick]   bursts into equal memory: one ring vs per-CPU
    python3 tools/seed_claims.py throughput [--quick]   bench_ringbufs.c-shaped table, pybpf consumers
    python3 tools/seed_claims.py all        [--quick]

Needs root and `make` (build/seed_order.bpf.o, seed_burst.bpf.o, seed_bench.bpf.o).
The throughput consumers are the ones of tools/bench_ringbuf.py, imported from it.
"""
from __future__ import annotations

import argparse
import os
import platform
import select
import statistics
import struct
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tools"))

import pybpf  # noqa: E402
from pybpf.kernel import syscall
from pybpf import uapi
from pybpf.events.ringmem import record_size  # noqa: E402
from pybpf.events.ringmem import PAGE_SIZE  # noqa: E402
from pybpf.kernel.sysinfo import online_cpus  # noqa: E402
from bench_ringbuf import EVENT, Drain, Libbpf, _make  # noqa: E402


def build_object(name: str) -> str:
    path = ROOT / "build" / name
    if not path.exists():
        raise SystemExit(f"{path} missing: run 'make' first")
    return str(path)


@contextmanager
def pinned(cpus: Sequence[int]) -> Iterator[None]:
    """Run the calling process on ``cpus`` for the duration of the block."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def fork_child(body: Callable[[], None]) -> int:
    """Fork a child that runs ``body`` and leaves with os._exit (never through our
    cleanup: the parent's rings, links and fds are not the child's to close)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            body()
        except BaseException:
            code = 1
        os._exit(code)
    return pid


def reap(pids: Sequence[int]) -> None:
    """Wait for children we forked; kill (by pid) the ones still running."""
    for pid in pids:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
        except ChildProcessError:
            pass


# ================================================================== 1. ordering

ORDER = struct.Struct("=QQIIII")        # struct order_event: seq, ts, pid, cpu, type, ppid
FORK, EXEC, EXIT = 1, 2, 3
TRUE = "/bin/true"


def spawn_loop(count: int, go: int) -> None:
    """A worker: wait for the go byte (none: the parent gave up), then fork + exec +
    wait ``count`` times."""
    if not os.read(go, 1):
        return
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            try:
                os.execv(TRUE, [TRUE])
            finally:
                os._exit(127)
        os.waitpid(pid, 0)


def order_stats(events: Sequence[tuple]) -> Dict[str, int]:
    """Delivery-order defects of one transport's event stream.

    out_of_order: events delivered after an event with a higher seq.
    violations:   processes whose fork, exec, exit did not arrive in that order.
    window_ns:    how far back in time the latest arrival was: the buffering a
                  consumer would need to restore the order by timestamp.
    """
    late, top, newest, window = 0, -1, 0, 0
    where: Dict[Tuple[int, int], int] = {}
    for pos, (seq, ts, pid, _cpu, kind, _ppid) in enumerate(events):
        if seq < top:
            late += 1
        else:
            top = seq
        newest = max(newest, ts)
        window = max(window, newest - ts)
        where[pid, kind] = pos
    procs = [pid for pid, kind in where if kind == FORK]
    bad = 0
    for pid in procs:
        order = [where[pid, k] for k in (FORK, EXEC, EXIT) if (pid, k) in where]
        bad += order != sorted(order)
    return {"events": len(events), "out_of_order": late, "procs": len(procs),
            "violations": bad, "window_ns": window}


def cross_cpu(events: Sequence[tuple]) -> Tuple[int, int]:
    """(processes whose fork, exec and exit did not all run on one CPU, processes)."""
    cpus: Dict[int, set] = {}
    forked = set()
    for _seq, _ts, pid, cpu, kind, _ppid in events:
        cpus.setdefault(pid, set()).add(cpu)
        if kind == FORK:
            forked.add(pid)
    return sum(len(cpus[p]) > 1 for p in forked), len(forked)


def busy_wait(us: float) -> None:
    """Simulated per-event work of a consumer."""
    end = time.perf_counter() + us / 1e6
    while time.perf_counter() < end:
        pass


def ordering(quick: bool, procs: Optional[int], workers: int, pages: int,
             work_us: float) -> None:
    total = procs or (1000 if quick else 4000)
    per = -(-total // workers)
    print(f"\n## ordering: {per * workers} short-lived {TRUE} (fork+exec+exit) from "
          f"{workers} workers on {len(online_cpus())} CPUs"
          + (f", consumer working {work_us:g} us per event" if work_us else "") + "\n")
    go_r, go_w = os.pipe()
    pids = [fork_child(lambda: spawn_loop(per, go_r)) for _ in range(workers)]
    os.close(go_r)
    try:
        with pybpf.BPFObject.open(build_object("seed_order.bpf.o")) as obj:
            obj.load()
            for pid in pids:
                obj.maps["tracked"][pid] = 1
            obj.attach()
            ring_kib = obj.maps["rb"].max_entries >> 10
            streams: Dict[str, List[tuple]] = {"ringbuf": [], "perfbuf": []}
            lost = [0]

            def on_rb(data) -> None:
                streams["ringbuf"].append(ORDER.unpack_from(data))
                if work_us:
                    busy_wait(work_us)

            def on_pb(cpu, data) -> None:
                streams["perfbuf"].append(ORDER.unpack_from(data))
                if work_us:
                    busy_wait(work_us)

            def on_lost(cpu, n) -> None:
                lost[0] += n

            with pybpf.RingBuffer(obj.maps["rb"], on_rb) as rb, \
                    pybpf.PerfBuffer(obj.maps["pb"], on_pb, lost=on_lost, pages=pages) as pb, \
                    select.epoll() as ep:
                ep.register(rb.fileno(), select.EPOLLIN)
                ep.register(pb.fileno(), select.EPOLLIN)
                t0 = time.perf_counter()
                os.write(go_w, b"g" * workers)
                alive = set(pids)
                while alive:
                    ep.poll(0.05)
                    rb.consume()
                    pb.consume()    # every CPU: poll() would miss rings whose (one-shot)
                                    # perf readiness the outer epoll already took
                    alive = {p for p in alive if os.waitpid(p, os.WNOHANG)[0] == 0}
                elapsed = time.perf_counter() - t0
                while rb.consume() + pb.consume():
                    pass
            drops = {"ringbuf": obj.bss["rb_dropped"], "perfbuf": obj.bss["pb_dropped"]}
    finally:
        os.close(go_w)
        reap(pids)
    moved, forked = cross_cpu(streams["ringbuf"])
    print(f"{forked} processes traced in {elapsed:.1f} s; {moved} ({100 * moved / max(forked, 1):.0f}%) "
          f"had fork, exec and exit on more than one CPU")
    print(f"perfbuf: {pages} pages per CPU, wakeup every sample; ringbuf: "
          f"{ring_kib} KiB, adaptive wakeups; one consumer thread "
          "polls both\n")
    print("| transport | events | out of order (by seq) | causal violations (processes) | "
          "reorder window | drops |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, events in streams.items():
        s = order_stats(events)
        extra = f" (+{lost[0]} lost)" if name == "perfbuf" and lost[0] else ""
        print(f"| {name} | {s['events']} | {s['out_of_order']} "
              f"({100 * s['out_of_order'] / max(s['events'], 1):.2f}%) | {s['violations']} of "
              f"{s['procs']} | {s['window_ns'] / 1e3:.1f} us | {drops[name]}{extra} |")


# ================================================================== 2. memory

BURST_REC = 72          # bytes per record in either buffer (bpf/seed_burst.bpf.c)
MAX_BURST = 128         # records per test run (MAX_BURST in the program)


def run_burst(obj: pybpf.BPFObject, prog: str, plan: Dict[int, int]) -> None:
    """Write plan[cpu] records on each CPU: raw_tp test runs with BPF_F_TEST_RUN_ON_CPU."""
    fd = obj.programs[prog].fd
    left = dict(plan)
    while any(left.values()):
        for cpu, n in left.items():          # interleaved, as concurrent CPUs would
            k = min(n, MAX_BURST)
            if k:
                obj.bss["burst"] = k
                syscall.prog_test_run(fd, flags=uapi.BPF_F_TEST_RUN_ON_CPU, cpu=cpu, repeat=0)
                left[cpu] = n - k


def burst_plans(records: int, cpus: Sequence[int]) -> Dict[str, Dict[int, int]]:
    even = {c: records // len(cpus) + (i < records % len(cpus)) for i, c in enumerate(cpus)}
    return {"all on CPU %d" % cpus[0]: {cpus[0]: records}, "even": even}


def memory(quick: bool, total_kib: int) -> None:
    cpus = online_cpus()
    total = total_kib << 10
    per_cpu = total // len(cpus)
    pages = per_cpu // PAGE_SIZE
    if pages < 1 or pages & (pages - 1) or total & (total - 1):
        raise SystemExit(f"--kib {total_kib}: the ring and {len(cpus)} per-CPU buffers of "
                         "a power-of-2 number of pages are needed")
    cap_rb, cap_pb = total // BURST_REC, per_cpu // BURST_REC
    fractions = (0.5, 1.0, 1.5) if quick else (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
    print(f"\n## memory: equal total memory, {total_kib} KiB: one shared ring vs "
          f"{len(cpus)} perf buffers of {per_cpu >> 10} KiB\n")
    print(f"records of {BURST_REC} bytes in either buffer: the ring holds {cap_rb}, each "
          f"per-CPU buffer {cap_pb}. The consumer is paused during each burst, then drains.\n")
    with pybpf.BPFObject.open(build_object("seed_burst.bpf.o")) as obj:
        obj.maps["rb"].max_entries = total
        obj.load()
        counts = {"rb": 0, "pb": 0}
        lost: Dict[int, int] = {}

        def on_rb(data) -> None:
            counts["rb"] += 1

        def on_pb(cpu, data) -> None:
            counts["pb"] += 1

        def on_lost(cpu, n) -> None:
            lost[cpu] = lost.get(cpu, 0) + n

        print("| burst (records) | of total memory | spread | ringbuf drops | perfbuf drops "
              "(BPF error, per CPU) | perfbuf LOST records | accounted |")
        print("|---:|---:|---|---:|---:|---:|---|")
        with pybpf.RingBuffer(obj.maps["rb"], on_rb) as rb, \
                pybpf.PerfBuffer(obj.maps["pb"], on_pb, lost=on_lost, pages=pages,
                                 cpus=cpus) as pb:
            for frac in fractions:
                records = round(frac * cap_rb)
                for spread, plan in burst_plans(records, cpus).items():
                    obj.maps["rb_drops"][0] = 0
                    obj.maps["pb_drops"][0] = 0
                    counts.update(rb=0, pb=0)
                    lost.clear()
                    run_burst(obj, "burst_rb", plan)
                    run_burst(obj, "burst_pb", plan)
                    rb.consume()
                    pb.consume()
                    got = dict(counts)
                    # the kernel writes a PERF_RECORD_LOST only with the next sample
                    # that fits: one more sample per CPU brings them out
                    run_burst(obj, "burst_pb", {c: 1 for c in cpus})
                    pb.consume()
                    rb_drops = obj.maps["rb_drops"][0]
                    pb_drops = obj.maps["pb_drops"][0]
                    ok = (got["rb"] + sum(rb_drops) == records
                          and got["pb"] + sum(pb_drops) == records
                          and sum(lost.values()) == sum(pb_drops))
                    per = "+".join(str(pb_drops[c]) for c in cpus)
                    print(f"| {records} | {100 * records * BURST_REC / total:.0f}% | {spread} | "
                          f"{sum(rb_drops)} | {sum(pb_drops)} ({per}) | {sum(lost.values())} | "
                          f"{'yes' if ok else 'NO'} |")
    print("\naccounted: consumed + BPF-counted drops == burst for both, and the LOST "
          "records sum to the BPF-counted perfbuf drops.")
    need = 1 << (-(-cap_rb * BURST_REC // PAGE_SIZE) - 1).bit_length()     # pages, a power of 2
    print(f"To take a {cap_rb}-record burst on any one CPU without drops, perf buffers need "
          f"{need * PAGE_SIZE >> 10} KiB per CPU ({len(cpus) * need * PAGE_SIZE >> 10} KiB in "
          f"all); the shared ring needs {total_kib} KiB.")


# ================================================================== 3. throughput

NOTIFY_DEFAULT, NOTIFY_NONE, NOTIFY_SAMPLED = 0, 1, 2
BIG_EVENT = 532         # sizeof(struct event) of bpf/exec.h, the seed's exec event


class Config:
    """One row: BPF program (transport, record), API, notification, consumer."""

    def __init__(self, name: str, prog: str, consumer: str = "count",
                 notify: int = NOTIFY_DEFAULT, rate: int = 500, use_output: bool = False,
                 wakeup_events: int = 1):
        self.name, self.prog, self.consumer = name, prog, consumer
        self.notify, self.rate, self.use_output = notify, rate, use_output
        self.wakeup_events = wakeup_events

    @property
    def perf(self) -> bool:
        return self.prog.startswith("pb")

    def open(self, batch: int, ring: Optional[int] = None) -> pybpf.BPFObject:
        obj = pybpf.BPFObject.open(build_object("seed_bench.bpf.o"))
        try:
            obj.rodata["batch_cnt"] = batch
            obj.rodata["use_output"] = int(self.use_output)
            obj.rodata["notify"] = self.notify
            obj.rodata["sample_rate"] = self.rate
            if ring:
                obj.maps["rb"].max_entries = ring
            obj.load()
        except BaseException:
            obj.close()
            raise
        return obj


def producer_configs(rate: int) -> List[Config]:
    return [
        Config("rb reserve/submit, adaptive", "rb"),
        Config("rb output, adaptive", "rb", use_output=True),
        Config("rb reserve/submit, NO_WAKEUP", "rb", notify=NOTIFY_NONE),
        Config(f"rb reserve/submit, FORCE every {rate}", "rb", notify=NOTIFY_SAMPLED, rate=rate),
        Config("rb reserve/submit, FORCE every record", "rb", notify=NOTIFY_SAMPLED, rate=1),
        Config(f"pb output, wakeup_events={rate}", "pb", wakeup_events=rate),
        Config("pb output, wakeup_events=1", "pb"),
        Config(f"rb reserve/submit, {BIG_EVENT} B event", "rb_big"),
        Config(f"rb output, {BIG_EVENT} B event (scratch + copy)", "rb_big", use_output=True),
        Config(f"pb output, {BIG_EVENT} B event (scratch + copy), wakeup_events={rate}",
               "pb_big", wakeup_events=rate),
    ]


def live_configs(rate: int) -> List[Config]:
    return [
        Config("rb reserve, adaptive, pybpf callback", "rb", "count"),
        Config("rb reserve, adaptive, pybpf batch", "rb", "batch"),
        Config("rb reserve, adaptive, pybpf columns", "rb", "columns"),
        Config("rb output, adaptive, pybpf batch", "rb", "batch", use_output=True),
        Config("rb reserve, NO_WAKEUP (busy poll), pybpf batch", "rb", "batch", NOTIFY_NONE),
        Config(f"rb reserve, FORCE every {rate}, pybpf batch", "rb", "batch", NOTIFY_SAMPLED,
               rate),
        Config(f"rb reserve, FORCE every {rate}, pybpf callback", "rb", "count",
               NOTIFY_SAMPLED, rate),
        Config("rb reserve, adaptive, libbpf ctypes callback", "rb", "libbpf"),
        Config("pb, wakeup_events=1, pybpf callback", "pb", "count"),
        Config(f"pb, wakeup_events={rate}, pybpf callback", "pb", "count", wakeup_events=rate),
    ]


def consumer_for(cfg: Config, obj: pybpf.BPFObject, pages: int, lib: Optional[Libbpf]
                 ) -> Tuple[Drain, int, Callable[[], None]]:
    """(drain, fd to wait on, close) for the row's consumer.  Ring consumers are
    tools/bench_ringbuf.py's; the perf one counts samples in a PerfBuffer callback."""
    if cfg.perf:
        acc = {"n": 0}

        def on_sample(cpu, data) -> None:
            acc["n"] += 1
        pb = pybpf.PerfBuffer(obj.maps["pb"], on_sample, lost=lambda cpu, n: None,
                              pages=pages, wakeup_events=cfg.wakeup_events)

        def drain() -> Tuple[int, float, int]:
            acc["n"] = 0
            t0 = time.perf_counter()
            pb.consume()
            return acc["n"], time.perf_counter() - t0, acc["n"]
        return drain, pb.fileno(), pb.close
    fd = obj.maps["rb"].fd
    if cfg.consumer == "libbpf":
        drain, close = lib.consumer(fd, "count")
        return drain, fd, close
    drain, rb = _make(fd, cfg.consumer)
    return drain, rb.fileno(), rb.close


def drain_all(drain: Drain) -> Tuple[int, int]:
    """Consume until empty: (records, their total)."""
    n = total = 0
    while True:
        k, _, t = drain()
        if not k:
            return n, total
        n, total = n + k, total + t


def producer_cost(cfg: Config, calls: int, batch: int, rounds: int) -> float:
    """CPU ns per record written by the BPF program alone: this process is the
    producer (the program runs in its syscalls, so its CPU time is the
    producer's), nothing consumes while it runs, the buffer is big enough for
    a round and is emptied (untimed) between rounds."""
    cpu = online_cpus()[-1]
    big = cfg.prog.endswith("big")
    per_rec = record_size(BIG_EVENT if big else EVENT.size) + 16   # perf samples: <= 16 more
    need = calls * batch * per_rec
    ring = 1 << max(need - 1, PAGE_SIZE).bit_length()
    with cfg.open(batch, ring) as obj:
        drain, _, close = consumer_for(cfg, obj, ring // PAGE_SIZE, None)
        try:
            obj.programs["bench_" + cfg.prog].attach()
            obj.bss["producer_tgid"] = os.getpid()
            times = []
            with pinned([cpu]):
                for _ in range(rounds):
                    before = obj.bss["next_seq"]
                    t0 = time.process_time()
                    for _ in range(calls):
                        os.getpgid(0)
                    dt = time.process_time() - t0
                    written = obj.bss["next_seq"] - before
                    got, _ = drain_all(drain)
                    if obj.bss["dropped"] or got != written or written != calls * batch:
                        raise SystemExit(f"{cfg.name}: {written} written, {got} consumed, "
                                         f"{obj.bss['dropped']} dropped; expected "
                                         f"{calls * batch} and no drops")
                    times.append(dt / written)
        finally:
            close()
    return statistics.median(times) * 1e9


def produce_getpgid(go: int, seconds: float, cpu: Optional[int]) -> None:
    """The producer process: getpgid() in a tight loop for ``seconds`` after the go
    byte (none: the parent gave up)."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    if not os.read(go, 1):
        return
    getpgid, clock = os.getpgid, time.perf_counter
    end = clock() + seconds
    while clock() < end:
        for _ in range(32):
            getpgid(0)


def consume_while(drain: Drain, wait_fd: int, busy: bool, seconds: float, go: int
                  ) -> Dict[str, float]:
    """Consume until the producer's window ends; count sleeps ended by a notification
    and the CPU time the consumer used."""
    consumed = total = drains = wakeups = 0
    with select.epoll() as ep:
        ep.register(wait_fd, select.EPOLLIN)
        os.write(go, b"g")
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        end = t0 + seconds
        while time.perf_counter() < end:
            if not busy and not ep.poll(0):
                if not ep.poll(0.05):
                    continue                 # a timeout, not a wakeup
                wakeups += 1
            n, _, t = drain()
            consumed, total, drains = consumed + n, total + t, drains + (n > 0)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    return {"consumed": consumed, "total": total, "drains": drains, "wakeups": wakeups,
            "seconds": elapsed, "cpu": cpu}


def run_live(cfg: Config, seconds: float, batch: int, pages: int,
             lib: Optional[Libbpf]) -> Dict[str, float]:
    """One producer process and this consumer, concurrently, for ``seconds``."""
    cpus = online_cpus()
    cons_cpu, prod_cpu = (cpus[0], cpus[1]) if len(cpus) > 1 else (cpus[0], None)
    with cfg.open(batch) as obj:
        drain, wait_fd, close = consumer_for(cfg, obj, pages, lib)
        try:
            obj.programs["bench_" + cfg.prog].attach()
            go_r, go_w = os.pipe()
            child = fork_child(lambda: produce_getpgid(go_r, seconds, prod_cpu))
            os.close(go_r)
            try:
                obj.bss["producer_tgid"] = child
                with pinned([cons_cpu]):
                    res = consume_while(drain, wait_fd, cfg.notify == NOTIFY_NONE, seconds, go_w)
            finally:
                os.close(go_w)
                reap([child])
                obj.bss["producer_tgid"] = 0
            late, late_total = drain_all(drain)   # after the window: for the check only
            produced, dropped = obj.bss["next_seq"], obj.bss["dropped"]
        finally:
            close()
    if res["consumed"] + late != produced:
        raise SystemExit(f"{cfg.name}: consumed {res['consumed'] + late} of {produced} records")
    if cfg.consumer in ("batch", "columns") and \
            res["total"] + late_total != produced * (produced - 1) // 2:
        raise SystemExit(f"{cfg.name}: seq sum mismatch: records lost or duplicated")
    dt = res["seconds"]
    return {"produced": produced / dt, "consumed": res["consumed"] / dt, "drops": dropped / dt,
            "drop_pct": 100 * dropped / max(produced + dropped, 1),
            "wakeups": res["wakeups"] / dt, "per_drain": res["consumed"] / max(res["drains"], 1),
            "busy": 100 * res["cpu"] / dt, "per_cpu_s": res["consumed"] / max(res["cpu"], 1e-9)}


def throughput(quick: bool, seconds: Optional[float], rounds: Optional[int], batch: int,
               rate: int, pages: int) -> None:
    seconds = seconds or (0.5 if quick else 2.0)
    rounds = rounds or (1 if quick else 3)
    cpus = online_cpus()
    calls = 20 if quick else 40
    print(f"\n## throughput: getpgid() triggers tp/syscalls/sys_enter_getpgid, whose program "
          f"writes {batch} records per call ({EVENT.size}-byte {{ts, seq}}, "
          f"{record_size(EVENT.size)} bytes in the ring, unless noted)\n")
    print(f"### producer alone: CPU ns per record, {calls * batch} records per round, "
          f"median of 5; this process on CPU {cpus[-1]}, nothing consuming during a round\n")
    print("| BPF side | CPU ns/record | M records/CPU-s |")
    print("|---|---:|---:|")
    for cfg in producer_configs(rate):
        ns = producer_cost(cfg, calls, batch, 5)
        print(f"| {cfg.name} | {ns:.1f} | {1e3 / ns:.2f} |")
    try:
        lib: Optional[Libbpf] = Libbpf()
    except OSError as e:
        lib = None
        print(f"\n(libbpf through ctypes unavailable, its row is skipped: {e})")
    configs = [c for c in live_configs(rate) if c.consumer != "libbpf" or lib is not None]
    print(f"\n### producer and consumer together (bench_ringbufs.c's shape): a producer "
          f"process on CPU {cpus[-1]}, the consumer on CPU {cpus[0]}; 512 KiB ring, {pages} "
          f"pages per CPU for perf; {seconds:g} s per run, {rounds} round(s) over all rows, "
          f"median (consumed: min-max)\n")
    runs: Dict[str, List[Dict[str, float]]] = {c.name: [] for c in configs}
    for _ in range(rounds):             # interleaved: a noisy moment hits every row alike
        for cfg in configs:
            runs[cfg.name].append(run_live(cfg, seconds, batch, pages, lib))
    print("| config | produced M/s | consumed M/s | consumer CPU % | consumed M/CPU-s | "
          "drops % | wakeups/s | records per drain |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for cfg in configs:
        rs = runs[cfg.name]
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        spread = ""
        if rounds > 1:
            lo, hi = min(r["consumed"] for r in rs), max(r["consumed"] for r in rs)
            spread = f" ({lo / 1e6:.2f}-{hi / 1e6:.2f})"
        print(f"| {cfg.name} | {med['produced'] / 1e6:.2f} | {med['consumed'] / 1e6:.2f}{spread} | "
              f"{med['busy']:.0f} | {med['per_cpu_s'] / 1e6:.2f} | {med['drop_pct']:.1f} | "
              f"{med['wakeups']:.0f} | {med['per_drain']:.0f} |")


# ================================================================== main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("claim", choices=("ordering", "memory", "throughput", "all"))
    parser.add_argument("--quick", action="store_true", help="each claim in well under 20 s")
    parser.add_argument("--procs", type=int, help="ordering: processes to spawn")
    parser.add_argument("--workers", type=int, default=4, help="ordering: spawning workers")
    parser.add_argument("--order-pages", type=int, default=64,
                        help="ordering: perf buffer pages per CPU")
    parser.add_argument("--work-us", type=float, default=0,
                        help="ordering: simulated consumer work per event (microseconds)")
    parser.add_argument("--kib", type=int, default=64, help="memory: total KiB per transport")
    parser.add_argument("--seconds", type=float, help="throughput: seconds per run")
    parser.add_argument("--rounds", type=int, help="throughput: runs per row (median)")
    parser.add_argument("--batch", type=int, default=500, help="throughput: records per syscall")
    parser.add_argument("--sample-rate", type=int, default=500,
                        help="throughput: sampled notification every N records")
    parser.add_argument("--pages", type=int, default=128, help="throughput: perf pages per CPU")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("seed_claims: needs root (BPF programs, perf events)", file=sys.stderr)
        return 1
    if not 0 < args.batch <= 512:
        parser.error("--batch must be 1..512 (MAX_BATCH in bpf/seed_bench.bpf.c)")
    print(f"pybpf seed claims: Python {platform.python_version()}, {platform.machine()}, "
          f"{len(online_cpus())} CPUs, kernel {platform.release()}")
    if args.claim in ("ordering", "all"):
        ordering(args.quick, args.procs, args.workers, args.order_pages, args.work_us)
    if args.claim in ("memory", "all"):
        memory(args.quick, args.kib)
    if args.claim in ("throughput", "all"):
        throughput(args.quick, args.seconds, args.rounds, args.batch, args.sample_rate,
                   args.pages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
