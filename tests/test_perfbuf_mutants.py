"""PerfBuffer behaviours the mutation run of pybpf/events/perfbuf.py showed untested
(issue 13): exact ring capacity and LOST records with or without a lost callback,
what close() releases (fds, mappings, map slots), zero-copy views, samples from other
processes, wakeup settings, per-CPU reads, stops, errors."""
from __future__ import annotations

import gc
import mmap
import os
import select
import struct
import sys
from typing import Any, List, Tuple

import pytest

from pybpf import uapi
from pybpf.errors import BPFError
from pybpf.events.perfbuf import PerfBuffer
from pybpf.kernel import syscall
from pybpf.kernel.sysinfo import online_cpus, possible_cpus
from pybpf.study.producer import Producer

from conftest import on_cpu, require_kernel

pytestmark = pytest.mark.usefixtures("ordering")

CPUS = online_cpus()
PAGE = mmap.PAGESIZE


@pytest.fixture
def pb_map():
    require_kernel()
    with syscall.map_create(uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, len(possible_cpus()),
                            name="t_pbm") as fd:
        with Producer(fd.fd) as prod:
            with on_cpu(CPUS[0]):
                prod.perf_output(b"warm-up" * 2)     # loads the producer's program
            yield fd.fd, prod


def sample(i: int, size: int) -> bytes:
    return struct.pack("<Q", i) + bytes([i & 0xFF]) * (size - 8)


def perf_fds() -> int:
    """Open fds of perf events (each ring: its event fd and the mapping's own)."""
    n = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            n += "perf_event" in os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass
    return n


def perf_mappings() -> int:
    with open("/proc/self/maps") as f:
        return sum("perf_event" in line for line in f)


def slot(fd: int, cpu: int) -> bool:
    """Whether the map has an event in ``cpu``'s slot (deleting finds one)."""
    return syscall.map_delete(fd, struct.pack("<I", cpu))


# ------------------------------------------------------------------ capacity, LOST


@pytest.mark.parametrize("with_lost", [True, False])
def test_a_full_ring_holds_exactly_its_size_then_counts_lost(pb_map, with_lost):
    fd, prod = pb_map
    got: List[Tuple[int, int, int]] = []
    lost: List[Tuple[int, int]] = []
    cb_lost = (lambda cpu, n: lost.append((cpu, n))) if with_lost else None
    with PerfBuffer(fd, lambda cpu, d: got.append((cpu, len(d), struct.unpack_from("<Q", d)[0])),
                    lost=cb_lost, pages=1, cpus=[CPUS[0]]) as pb:
        with on_cpu(CPUS[0]):
            # 68 raw bytes: 8 header + 4 size + 68 = 80-byte records; 51 fit in a page
            for i in range(60):
                prod.perf_output(sample(i, 68))
            assert pb.consume() == PAGE // 80
            prod.perf_output(sample(60, 68))
            assert pb.consume() == 1          # the LOST record is no sample
            assert pb.consume() == 0
    n = PAGE // 80
    assert got == [(CPUS[0], 68, i) for i in range(n)] + [(CPUS[0], 68, 60)]
    assert lost == ([(CPUS[0], 60 - n)] if with_lost else [])


def test_raw_sizes_are_padded_to_size_plus_4_a_multiple_of_8(pb_map):
    fd, prod = pb_map
    got: List[bytes] = []
    with PerfBuffer(fd, lambda cpu, d: got.append(bytes(d)), cpus=[CPUS[0]]) as pb:
        with on_cpu(CPUS[0]):
            for size in (1, 4, 5, 12, 13, 20, 100):
                prod.perf_output(bytes(range(1, size + 1)))
            assert pb.consume() == 7
    assert [len(d) for d in got] == [4, 4, 12, 12, 20, 20, 100]
    assert [d[:n] for d, n in zip(got, (1, 4, 5, 12, 13, 20, 100))] == \
        [bytes(range(1, n + 1)) for n in (1, 4, 5, 12, 13, 20, 100)]


def test_records_are_views_of_the_mapping_unless_they_wrap(pb_map):
    """Zero-copy: a record that does not wrap (the one ending exactly at the end of the
    ring included) is a slice of the mapping; one that wraps is a copy, whole."""
    fd, prod = pb_map
    seen: List[Tuple[bytes, bool]] = []
    with PerfBuffer(fd, lambda cpu, d: seen.append((bytes(d), isinstance(d.obj, mmap.mmap))),
                    pages=1, cpus=[CPUS[0]]) as pb:
        with on_cpu(CPUS[0]):
            # 52 raw bytes: 64-byte records; 64 of them end exactly at the end of the ring
            for i in range(64):
                prod.perf_output(sample(i, 52))
                assert pb.consume() == 1
            for i in range(40):                   # 100 raw bytes: 112-byte records
                prod.perf_output(sample(i, 100))
                assert pb.consume() == 1
            for i in range(57):
                prod.perf_output(sample(i, 52))
            prod.perf_output(sample(7, 44))
            prod.perf_output(sample(8, 20))
            prod.perf_output(sample(9, 20))
            assert pb.consume() == 60
    assert seen[:64] == [(sample(i, 52), True) for i in range(64)]
    # the 37th starts at 36 * 112 = 4032 and ends 48 bytes into the next lap: a copy
    assert seen[64:104] == [(sample(i, 100), i != 36) for i in range(40)]
    # from 40 * 112 - 4096 = 384: 57 records of 64 and one of 56 reach 4088, then a
    # record whose header ends the lap: its size word and data start the next one
    assert seen[104:] == [(sample(i, 52), True) for i in range(57)] + \
        [(sample(7, 44), True), (sample(8, 20), True), (sample(9, 20), True)]


# ------------------------------------------------------------------ close


def test_close_releases_every_fd_mapping_and_slot(pb_map):
    fd, prod = pb_map
    base_fds, base_maps = perf_fds(), perf_mappings()
    all_fds = len(os.listdir("/proc/self/fd"))
    pb = PerfBuffer(fd, lambda cpu, d: None)
    assert perf_fds() == base_fds + 2 * len(CPUS)          # event fd + the mapping's own
    assert perf_mappings() == base_maps + len(CPUS)
    pb.close()
    assert (perf_fds(), perf_mappings()) == (base_fds, base_maps)
    assert len(os.listdir("/proc/self/fd")) == all_fds     # epoll and the map's dup too
    assert [slot(fd, c) for c in CPUS] == [False] * len(CPUS)
    for call in (pb.consume, lambda: pb.consume_cpu(CPUS[0]), lambda: pb.poll(0)):
        with pytest.raises(BPFError, match="^PerfBuffer is closed$"):
            call()


def test_close_from_a_callback_closes_the_events_at_once(pb_map):
    """close() inside a callback: the rings are still referenced by the read in
    progress, yet their event fds must be closed by close() itself, not by the GC."""
    fd, prod = pb_map
    base = perf_fds()
    during: List[int] = []
    pb: Any = None

    def cb(cpu, data):
        pb.close()
        during.append(perf_fds())
    pb = PerfBuffer(fd, cb, cpus=[CPUS[0]])
    with on_cpu(CPUS[0]):
        prod.perf_output(b"x" * 12)
    with pytest.raises(BPFError, match="closed"):
        pb.consume()
    # the event fd is gone; only the mapping, kept by the record view, may remain
    assert during and during[0] <= base + 1
    assert perf_fds() == base
    assert slot(fd, CPUS[0]) is False


def test_the_slot_of_each_cpu_holds_its_event(pb_map):
    fd, prod = pb_map
    with PerfBuffer(fd, lambda cpu, d: None, cpus=[CPUS[-1]]) as pb:
        assert pb.cpus == [CPUS[-1]]
        assert repr(pb) == f"PerfBuffer(t_pbm, cpus=[{CPUS[-1]}])"
        assert select.select([pb.fileno()], [], [], 0)[0] == []
        with on_cpu(CPUS[-1]):
            prod.perf_output(b"z" * 12)
            assert pb.consume() == 1
            others = [c for c in range(len(possible_cpus())) if c != CPUS[-1]]
            assert [slot(fd, c) for c in others] == [False] * len(others)
            assert slot(fd, CPUS[-1]) is True      # taken out: samples go nowhere now
            prod.perf_output(b"z" * 12)
            assert pb.consume() == 0
    assert slot(fd, CPUS[-1]) is False


# ------------------------------------------------------------------ producers, wakeups


def test_samples_from_another_process_are_delivered(pb_map):
    """The events count every process (pid -1), not only ours."""
    fd, prod = pb_map
    got: List[bytes] = []
    with PerfBuffer(fd, lambda cpu, d: got.append(bytes(d)), cpus=[CPUS[0]]) as pb:
        pid = os.fork()
        if pid == 0:           # the child: one sample, from its own context
            try:
                with on_cpu(CPUS[0]):
                    prod.perf_output(b"from the child")
            finally:
                os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        assert pb.consume() == 1
    assert [g[:14] for g in got] == [b"from the child"]


def test_wakeup_events_counts_samples(pb_map):
    fd, prod = pb_map
    with PerfBuffer(fd, lambda cpu, d: None, cpus=[CPUS[0]], wakeup_events=3) as pb:
        with on_cpu(CPUS[0]):
            prod.perf_output(b"a" * 12)
            prod.perf_output(b"b" * 12)
            assert select.select([pb], [], [], 0.05)[0] == []
            prod.perf_output(b"c" * 12)
            assert select.select([pb], [], [], 5)[0] == [pb]
        assert pb.poll(0) == 3


def test_a_watermark_wakes_once_its_bytes_are_there(pb_map):
    fd, prod = pb_map
    with PerfBuffer(fd, lambda cpu, d: None, cpus=[CPUS[0]], watermark=2048) as pb:
        with on_cpu(CPUS[0]):
            for i in range(20):        # 20 x 80 bytes: under the watermark
                prod.perf_output(sample(i, 68))
            assert select.select([pb], [], [], 0.05)[0] == []
            for i in range(10):        # 30 x 80 bytes: over it
                prod.perf_output(sample(i, 68))
            assert select.select([pb], [], [], 5)[0] == [pb]
        assert pb.consume() == 30


def test_poll_waits_then_reads(pb_map):
    fd, prod = pb_map
    got = []
    with PerfBuffer(fd, lambda cpu, d: got.append(bytes(d[:5])), cpus=[CPUS[0]]) as pb:
        assert pb.poll(timeout_ms=0) == 0
        with on_cpu(CPUS[0]):
            prod.perf_output(b"first" + b"\0" * 7)
        assert pb.poll(timeout_ms=5000) == 1
        with on_cpu(CPUS[0]):
            prod.perf_output(b"again" + b"\0" * 7, )
        assert select.select([pb], [], [], 5)[0] == [pb]   # the wakeup is there...
        assert pb.poll(timeout_ms=None) == 1              # ...and poll reads at once
    assert got == [b"first", b"again"]


# ------------------------------------------------------------------ per CPU, stops


@pytest.mark.skipif(len(CPUS) < 2, reason="needs two online CPUs")
def test_consume_cpu_reads_only_that_cpu(pb_map):
    fd, prod = pb_map
    got: List[Tuple[int, bytes]] = []
    with PerfBuffer(fd, lambda cpu, d: got.append((cpu, bytes(d[:4])))) as pb:
        for cpu in CPUS[:2]:
            with on_cpu(cpu):
                prod.perf_output(b"cpu%d" % cpu + b"\0" * 8)
                prod.perf_output(b"CPU%d" % cpu + b"\0" * 8)
        assert pb.consume_cpu(CPUS[1]) == 2
        assert got == [(CPUS[1], b"cpu%d" % CPUS[1]), (CPUS[1], b"CPU%d" % CPUS[1])]
        assert pb.consume_cpu(CPUS[1]) == 0
        assert pb.consume_cpu(max(possible_cpus()) + 1) == 0     # no ring there
        assert pb.consume() == 2
        assert got[2:] == [(CPUS[0], b"cpu%d" % CPUS[0]), (CPUS[0], b"CPU%d" % CPUS[0])]


@pytest.mark.skipif(len(CPUS) < 2, reason="needs two online CPUs")
def test_a_stop_in_the_second_ring_counts_the_first(pb_map):
    fd, prod = pb_map
    seen: List[int] = []

    def cb(cpu, d):
        seen.append(cpu)
        return -4 if cpu == CPUS[1] else None
    with PerfBuffer(fd, cb, cpus=CPUS[:2]) as pb:
        for cpu in CPUS[:2]:
            with on_cpu(cpu):
                for _ in range(3):
                    prod.perf_output(b"s" * 12)
        assert pb.consume() == -4
        assert (pb.stopped, pb.stopped_after) == (-4, 4)
        assert seen == [CPUS[0]] * 3 + [CPUS[1]]
        assert pb.consume() == -4 and pb.stopped_after == 1
        assert pb.consume() == -4 and pb.stopped_after == 1
        assert pb.consume() == 0 and pb.stopped is None


@pytest.mark.parametrize("value, code", [("stop", -1), (True, -1), (-22, -22), (1, -1)])
def test_stop_values_in_overwrite_mode(pb_map, value, code):
    fd, prod = pb_map
    seen: List[int] = []
    with PerfBuffer(fd, lambda cpu, d: seen.append(struct.unpack_from("<Q", d)[0]) or value,
                    cpus=[CPUS[0]], overwrite=True) as pb:
        with on_cpu(CPUS[0]):
            for i in range(3):
                prod.perf_output(sample(i, 20))
        assert pb.consume() == code
        assert (pb.stopped, pb.stopped_after) == (value, 1)
        assert seen == [2]


# ------------------------------------------------------------------ overwrite mode


def test_overwrite_mode_with_less_than_a_ring_and_after_many_wraps(pb_map):
    fd, prod = pb_map
    got: List[int] = []
    with PerfBuffer(fd, lambda cpu, d: got.append(struct.unpack_from("<Q", d)[0]),
                    pages=1, cpus=[CPUS[0]], overwrite=True) as pb:
        with on_cpu(CPUS[0]):
            assert pb.consume() == 0
            for i in range(5):
                prod.perf_output(sample(i, 52))     # 64-byte records
            assert pb.consume() == 5 and got == [4, 3, 2, 1, 0]
            assert pb.consume() == 0
            got.clear()
            for i in range(5, 5 + 64 * 3 + 10):     # three ring sizes and a bit
                prod.perf_output(sample(i, 52))
            # all of the ring: 64 records of 64 bytes, the oldest one included
            assert pb.consume() == 64
            last = 5 + 64 * 3 + 10 - 1
            assert got == list(range(last, last - 64, -1))
            got.clear()
            prod.perf_output(sample(1000, 52))
            assert pb.consume() == 1 and got == [1000]


def test_overwrite_mode_stops_at_a_partly_overwritten_record(pb_map):
    fd, prod = pb_map
    got: List[int] = []
    with PerfBuffer(fd, lambda cpu, d: got.append(struct.unpack_from("<Q", d)[0]),
                    pages=1, cpus=[CPUS[0]], overwrite=True) as pb:
        with on_cpu(CPUS[0]):
            for i in range(60):
                prod.perf_output(sample(i, 68))     # 80-byte records: 4096 % 80 = 16
            n = pb.consume()
    # 51 whole records fit; the 52nd, oldest, is partly overwritten: not delivered
    assert n == PAGE // 80 and got == list(range(59, 59 - n, -1))


def test_errors_name_the_fault(pb_map):
    fd, prod = pb_map
    for pages in (0, -2, 3, 6):
        with pytest.raises(BPFError, match=f"^pages must be a power of 2, got {pages}$"):
            PerfBuffer(fd, print, pages=pages)
    slots = len(possible_cpus())
    with pytest.raises(BPFError, match=rf"^CPUs \[{slots}, {slots + 1}\] are offline or beyond "
                                       rf"the {slots} slots of map 't_pbm'$"):
        PerfBuffer(fd, print, cpus=[CPUS[0], slots, slots + 1])
    with syscall.map_create(uapi.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="t_arr") as arr:
        with pytest.raises(BPFError, match="expected BPF_MAP_TYPE_PERF_EVENT_ARRAY"):
            PerfBuffer(arr.fd, print)
    with syscall.map_create(uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 1, name="t_one") as one:
        with PerfBuffer(one.fd, print) as pb:
            assert pb.cpus == [0]


def test_an_overwrite_read_pauses_the_ring(pb_map):
    """While a read walks an overwritable ring, the writer is paused: a sample written
    meanwhile (here, by the callback) is dropped and counted as lost."""
    fd, prod = pb_map
    got: List[bytes] = []
    lost: List[Tuple[int, int]] = []

    def cb(cpu, d):
        got.append(bytes(d[:6]))
        if len(got) == 1:
            prod.perf_output(b"during" + b"\0" * 6)
    with PerfBuffer(fd, cb, lost=lambda cpu, n: lost.append((cpu, n)), cpus=[CPUS[0]],
                    overwrite=True) as pb:
        with on_cpu(CPUS[0]):
            prod.perf_output(b"before" + b"\0" * 6)
            assert pb.consume() == 1
            assert pb.consume() == 0              # the one written while paused is gone
            prod.perf_output(b"after!" + b"\0" * 6)
            assert pb.consume() == 1              # newest first: the sample, then LOST
    assert got == [b"before", b"after!"]
    assert lost == [(CPUS[0], 1)]


def test_a_ring_that_cannot_be_mapped_leaks_nothing(pb_map):
    """2^20 pages per CPU: the kernel refuses the mapping (ENOMEM) without allocating
    it; the error names the CPU and the size, and every fd opened so far is closed
    while the error (and its frames) are still alive."""
    fd, prod = pb_map
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(BPFError) as info:
        PerfBuffer(fd, print, pages=1 << 20, cpus=[CPUS[0]])
    assert str(info.value).startswith(
        f"mmap of the perf ring of CPU {CPUS[0]} (1048576 pages): ")
    assert "check ulimit -l / perf_event_mlock_kb" in str(info.value)
    assert info.value.errno is not None and info.value.errno > 0
    if sys.implementation.name == "pypy":
        gc.collect()    # PyPy's mmap keeps a dup of the fd it failed to map until collected
    assert len(os.listdir("/proc/self/fd")) == before
    assert slot(fd, CPUS[0]) is False


@pytest.mark.skipif(len(CPUS) < 2, reason="needs two online CPUs")
def test_an_online_cpu_beyond_the_slots_is_refused(pb_map):
    with syscall.map_create(uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 1, name="t_one") as one:
        before = len(os.listdir("/proc/self/fd"))
        with pytest.raises(BPFError, match=rf"^CPUs \[{CPUS[1]}\] are offline or beyond the 1 "
                                           r"slots of map 't_one'$"):
            PerfBuffer(one.fd, print, cpus=[CPUS[1]])
        assert len(os.listdir("/proc/self/fd")) == before


def test_a_sample_over_32_kib_is_whole(pb_map):
    """Record sizes are u16: a 40000-byte sample (a 40016-byte record) must not read
    as a negative, corrupt size."""
    from pybpf.study.producer import R0, R1, R2, R3, R4, R5, R6, Asm, _epilogue, _lookup_param
    fd, prod = pb_map
    size = 40000
    value = bytes((i * 7 + i // 256) & 0xFF for i in range(size))
    with syscall.map_create(uapi.BPF_MAP_TYPE_ARRAY, 4, size, 1, name="t_big") as arr:
        syscall.map_update(arr.fd, bytes(4), value)
        asm = _lookup_param(Asm().movr(R6, R1), arr.fd)
        asm.movr(R4, R0).mov(R5, size).movr(R1, R6).ld_map(R2, fd)
        asm._emit(uapi.BPF_ALU | uapi.BPF_MOV | uapi.BPF_K, R3, imm=-1)  # BPF_F_CURRENT_CPU
        asm.call(uapi.BPF_FUNC_perf_event_output)
        prog, _ = syscall.prog_load(uapi.BPF_PROG_TYPE_SOCKET_FILTER, bytes(_epilogue(asm)),
                                    "GPL", name="t_big_out")
        with prog:
            got: List[bytes] = []
            with PerfBuffer(fd, lambda cpu, d: got.append(bytes(d)), pages=16,
                            cpus=[CPUS[0]]) as pb:
                with on_cpu(CPUS[0]):
                    syscall.prog_test_run(prog.fd, bytes(64))
                    assert pb.consume() == 1
    assert len(got) == 1 and len(got[0]) == size + 4 and got[0][:size] == value


def test_close_unmaps_even_while_the_mapping_object_is_referenced(pb_map):
    """close() itself unmaps and closes (not the GC): here the callback keeps the
    mmap object its views come from (``memoryview.obj``), not a view of it."""
    fd, prod = pb_map
    base_fds, base_maps = perf_fds(), perf_mappings()
    kept: List[Any] = []
    pb = PerfBuffer(fd, lambda cpu, d: kept.append(d.obj), cpus=[CPUS[0]])
    assert (pb.stopped, pb.stopped_after) == (None, 0)
    with on_cpu(CPUS[0]):
        prod.perf_output(b"r" * 12)
    assert pb.consume() == 1
    assert isinstance(kept[0], mmap.mmap) and not kept[0].closed
    pb.close()
    assert kept[0].closed
    assert (perf_fds(), perf_mappings()) == (base_fds, base_maps)


def test_poll_waits_for_a_sample_that_comes_later(pb_map):
    import threading
    fd, prod = pb_map
    got: List[bytes] = []

    def later():
        with on_cpu(CPUS[0]):
            prod.perf_output(b"later" + b"\0" * 7)
    with PerfBuffer(fd, lambda cpu, d: got.append(bytes(d[:5])), cpus=[CPUS[0]]) as pb:
        timer = threading.Timer(0.02, later)
        timer.start()
        try:
            assert pb.poll(timeout_ms=60_000) == 1     # the wakeup ends the wait
        finally:
            timer.join()
    assert got == [b"later"]
