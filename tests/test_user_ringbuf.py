"""UserRingBuffer: Python produces, a BPF program drains (bpf_user_ringbuf_drain)."""
from __future__ import annotations

import errno
import os
import struct
import threading
from typing import List, Tuple

import pytest

import pybpf
from pybpf.kernel import syscall
from pybpf import uapi
from pybpf.errors import BPFError
from pybpf.events.ringbuf import RingBuffer, scan
from pybpf.events.user_ringbuf import UserRingBuffer

from conftest import built, require_kernel

# every test here also runs under a weakly ordered CPU's protocol
pytestmark = pytest.mark.usefixtures("ordering")

MSG = struct.Struct("<QQ")


@pytest.fixture
def drain_obj():
    """rb_user_drain.bpf.o loaded: (object, user ring, echo reader, echoed, drain())."""
    require_kernel()
    with pybpf.BPFObject.open(built("rb_user_drain.bpf.o")) as obj:
        obj.load()
        echoed: List[Tuple[int, int]] = []
        with UserRingBuffer(obj.maps["user_rb"]) as urb, \
                RingBuffer(obj.maps["echo_rb"], lambda mv: echoed.append(MSG.unpack(mv))) as rb:
            def drain() -> int:
                syscall.prog_test_run(obj.programs["drain"].fd, repeat=0)
                rb.consume()
                return obj.bss["last_ret"]
            yield obj, urb, echoed, drain


def test_round_trip_through_a_draining_program(drain_obj):
    obj, urb, echoed, drain = drain_obj
    for i in range(20):
        urb.write(MSG.pack(i, 1000 + i))
    assert urb.free == urb.size - 20 * 24
    assert drain() == 20
    assert echoed == [(i, 2 * (1000 + i)) for i in range(20)]
    assert urb.free == urb.size and urb.consumer_pos == urb.producer_pos == 480
    assert obj.bss["bad_size"] == 0


def test_reservations_submit_discard_and_context_manager(drain_obj):
    obj, urb, echoed, drain = drain_obj
    with urb.reserve(16) as buf:
        buf[:] = MSG.pack(1, 1)
    res = urb.reserve(16)
    res.buf[:] = MSG.pack(2, 2)
    res.discard()
    with pytest.raises(RuntimeError):
        with urb.reserve(16) as buf:
            buf[:] = MSG.pack(3, 3)
            raise RuntimeError("changed my mind")      # -> discarded
    with pytest.raises(BPFError, match="already"):
        res.submit()
    urb.write(MSG.pack(4, 4))
    assert drain() == 2                  # discarded records are skipped by the kernel
    assert echoed == [(1, 2), (4, 8)]
    assert urb.consumer_pos == urb.producer_pos == 4 * 24


def test_busy_reservation_stops_the_drain(drain_obj):
    obj, urb, echoed, drain = drain_obj
    held = urb.reserve(16)
    held.buf[:] = MSG.pack(10, 10)
    urb.write(MSG.pack(11, 11))
    m = urb.mapping
    assert scan(m.hdr, 0, m.producer[0]) == ([], 0)      # our own walk stops too
    assert drain() == 0 and echoed == []
    held.submit()
    assert len(scan(m.hdr, 0, m.producer[0])[0]) == 1    # one run of two records
    assert drain() == 2
    assert echoed == [(10, 20), (11, 22)]


def test_full_ring_and_sizes(drain_obj):
    obj, urb, echoed, drain = drain_obj
    with pytest.raises(BPFError) as e:
        urb.reserve(urb.size)
    assert e.value.errno == errno.E2BIG
    n = 0
    while urb.free >= 24:
        urb.write(MSG.pack(n, n))
        n += 1
    with pytest.raises(BPFError) as e:
        urb.write(MSG.pack(n, n))
    assert e.value.errno == errno.ENOSPC
    with pytest.raises(BPFError) as e:
        urb.reserve_blocking(16, timeout_ms=30)
    assert e.value.errno == errno.ETIMEDOUT
    assert drain() == n
    assert [s for s, _ in echoed] == list(range(n))


def test_blocking_reserve_waits_for_the_drain(drain_obj):
    obj, urb, echoed, drain = drain_obj
    while urb.free >= 24:
        urb.write(MSG.pack(0, 0))
    t = threading.Timer(0.05, lambda: syscall.prog_test_run(obj.programs["drain"].fd, repeat=0))
    t.start()
    try:
        res = urb.reserve_blocking(16, timeout_ms=10_000)   # the drain's wakeup frees us
    finally:
        t.join()
    res.buf[:] = MSG.pack(77, 7)
    res.submit()
    assert drain() == 1
    assert echoed[-1] == (77, 14)


def test_no_fd_leak_and_wrong_map():
    require_kernel()
    with syscall.map_create(uapi.BPF_MAP_TYPE_USER_RINGBUF, 0, 0, 4096) as fd:
        before = len(os.listdir("/proc/self/fd"))
        urb = UserRingBuffer(fd.fd)
        urb.write(b"abc")
        assert urb.layout()["records"][0]["len"] == 3
        urb.close()
        urb.close()
        assert len(os.listdir("/proc/self/fd")) == before
        with pytest.raises(BPFError, match="closed"):
            urb.reserve(8)
    with syscall.map_create(uapi.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096) as fd:
        with pytest.raises(BPFError, match="expected BPF_MAP_TYPE_USER_RINGBUF"):
            UserRingBuffer(fd.fd)
