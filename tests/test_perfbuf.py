"""PerfBuffer against the real kernel: per-CPU delivery, LOST records, wrapping
records, overwritable mode, CPU selection, wakeup watermark, no fd leaks."""
from __future__ import annotations

import os
import select
import struct
from typing import List, Tuple

import pytest

import pybpf
from pybpf.kernel import syscall
from pybpf import uapi
from pybpf.errors import BPFError
from pybpf.events.perfbuf import PerfBuffer
from pybpf.study.producer import Producer
from pybpf.kernel.sysinfo import online_cpus, possible_cpus

from conftest import built, on_cpu, require_kernel

# every test here also runs under a weakly ordered CPU's protocol
pytestmark = pytest.mark.usefixtures("ordering")

CPUS = online_cpus()


@pytest.fixture
def pb_map():
    require_kernel()
    with syscall.map_create(uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, len(possible_cpus()),
                            name="t_pb") as fd:
        with Producer(fd.fd) as prod:
            yield fd.fd, prod


def raw(i: int, size: int = 16) -> bytes:
    return struct.pack("<Q", i) + bytes([i & 0xFF]) * (size - 8)


def test_per_cpu_delivery(pb_map):
    fd, prod = pb_map
    got: List[Tuple[int, bytes]] = []
    with PerfBuffer(fd, lambda cpu, data: got.append((cpu, bytes(data)))) as pb:
        assert pb.cpus == CPUS
        for cpu in CPUS:
            with on_cpu(cpu):
                prod.perf_output(b"from cpu %d" % cpu + b"." * 8)   # 18 bytes
        n = 0
        for _ in range(20):       # one poll may see only the first CPU's wakeup
            n += pb.poll(timeout_ms=500)
            if n >= len(CPUS):
                break
    # raw samples are padded (with stale bytes) so that size + 4 is a multiple of 8
    assert sorted((cpu, len(d), d[:18]) for cpu, d in got) == \
        [(cpu, 20, b"from cpu %d" % cpu + b"." * 8) for cpu in CPUS]


def test_lost_samples_are_counted(pb_map):
    fd, prod = pb_map
    samples: List[int] = []
    lost: List[Tuple[int, int]] = []
    with PerfBuffer(fd, lambda cpu, d: samples.append(struct.unpack_from("<Q", d)[0]),
                    lost=lambda cpu, n: lost.append((cpu, n)), pages=1) as pb:
        with on_cpu(CPUS[0]):
            for i in range(300):           # 300 x 80 bytes: far more than one page
                prod.perf_output(raw(i, 64))
            first = pb.consume()
            prod.perf_output(raw(300, 64))  # room again: LOST, then this sample
            second = pb.consume()
    assert 0 < first < 300 and second == 1
    assert samples == list(range(first)) + [300]
    assert lost == [(CPUS[0], 300 - first)]


def test_records_wrapping_the_ring_end_are_whole(pb_map):
    fd, prod = pb_map
    got: List[bytes] = []
    with PerfBuffer(fd, lambda cpu, d: got.append(bytes(d)), pages=1) as pb:
        with on_cpu(CPUS[0]):
            for i in range(200):      # 4096 is no multiple of these record sizes
                prod.perf_output(raw(i, 60 + i % 5 * 8))
                assert pb.consume() == 1
    # size + 4 rounded up to 8, minus 4: what the kernel reports for raw data
    want = [raw(i, 60 + i % 5 * 8) for i in range(200)]
    assert [g[:len(w)] for g, w in zip(got, want)] == want


def test_overwritable_mode_reads_newest_first(pb_map):
    fd, prod = pb_map
    got: List[int] = []
    with PerfBuffer(fd, lambda cpu, d: got.append(struct.unpack_from("<Q", d)[0]),
                    pages=1, cpus=[CPUS[0]], overwrite=True) as pb:
        with on_cpu(CPUS[0]):
            for i in range(100):           # 100 x 80 bytes: the oldest are overwritten
                prod.perf_output(raw(i, 64))
            n = pb.consume()
            assert got == list(range(99, 99 - n, -1)) and 0 < n < 100
            got.clear()
            for i in range(100, 103):
                prod.perf_output(raw(i, 64))
            assert pb.consume() == 3       # only what is new since the last read
            assert got == [102, 101, 100]
            assert pb.consume() == 0


def test_cpu_selection_and_map_slots(pb_map):
    fd, prod = pb_map
    got = []
    with PerfBuffer(fd, lambda cpu, d: got.append(cpu), cpus=[CPUS[0]]) as pb:
        assert pb.cpus == [CPUS[0]]
        for cpu in CPUS:
            with on_cpu(cpu):
                prod.perf_output(b"x" * 12)
        assert pb.consume() == 1 and got == [CPUS[0]]
    # closing emptied the slot it filled (deleting it again finds nothing)
    assert syscall.map_delete(fd, struct.pack("<I", CPUS[0])) is False
    with pytest.raises(BPFError, match="offline or beyond"):
        PerfBuffer(fd, print, cpus=[len(possible_cpus())])
    with pytest.raises(BPFError, match="power of 2"):
        PerfBuffer(fd, print, pages=3)


def test_watermark_delays_the_wakeup(pb_map):
    fd, prod = pb_map
    got = []
    with PerfBuffer(fd, lambda cpu, d: got.append(bytes(d)), cpus=[CPUS[0]],
                    watermark=8192) as pb:
        with on_cpu(CPUS[0]):
            prod.perf_output(b"small" + b"\0" * 7)
        # under the watermark: no wakeup, the epoll fd stays quiet...
        assert select.select([pb], [], [], 0.05)[0] == []
        assert pb.poll(timeout_ms=50) == 1     # ...but poll() reads what is there
        assert got == [b"small" + b"\0" * 7]
        assert pb.poll(timeout_ms=20) == 0


def test_stop_from_callback(pb_map):
    fd, prod = pb_map
    seen = []
    with PerfBuffer(fd, lambda cpu, d: seen.append(d[0]) or (5 if len(seen) == 2 else 0),
                    cpus=[CPUS[0]]) as pb:
        with on_cpu(CPUS[0]):
            for i in range(4):
                prod.perf_output(bytes([i]) * 12)
        assert pb.consume() == -1           # a stop, never a count
        assert (pb.stopped, pb.stopped_after) == (5, 2)
        assert pb.consume() == 2
        assert pb.stopped is None
    assert seen == [0, 1, 2, 3]


def test_no_fd_leak(pb_map):
    fd, prod = pb_map
    with on_cpu(CPUS[0]):
        prod.perf_output(b"warm-up" * 2)    # loads the producer's program
    before = len(os.listdir("/proc/self/fd"))
    for overwrite in (False, True):
        pb = PerfBuffer(fd, lambda cpu, d: None, overwrite=overwrite)
        with on_cpu(CPUS[0]):
            prod.perf_output(b"y" * 12)
        pb.consume()
        pb.close()
        pb.close()
    assert len(os.listdir("/proc/self/fd")) == before
    with pytest.raises(BPFError, match="closed"):
        pb.poll(0)


def test_with_a_compiled_producer():
    require_kernel()
    with pybpf.BPFObject.open(built("pb_events.bpf.o")) as obj:
        obj.load()
        obj.data["count"] = 5
        got = []
        with PerfBuffer(obj.maps["events"],
                        lambda cpu, d: got.append((cpu,) + struct.unpack_from("<QQ", d))) as pb:
            with on_cpu(CPUS[-1]):
                syscall.prog_test_run(obj.programs["produce"].fd, bytes(64))
            assert pb.poll(timeout_ms=1000) == 5
    assert got == [(CPUS[-1], i, CPUS[-1]) for i in range(5)]


def test_poll_after_an_outer_select_took_the_wakeup(pb_map):
    """select()/epoll on fileno() consumes the perf event's readiness: poll() must
    still read the sample (it checks every ring's head, not the wakeup)."""
    fd, prod = pb_map
    got = []
    with PerfBuffer(fd, lambda cpu, d: got.append(bytes(d)), cpus=[CPUS[0]]) as pb:
        with on_cpu(CPUS[0]):
            prod.perf_output(b"outer" + b"\0" * 7)
        assert select.select([pb], [], [], 1.0)[0] == [pb]
        assert pb.poll(timeout_ms=0) == 1
        assert got == [b"outer" + b"\0" * 7]
