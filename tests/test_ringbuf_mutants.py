"""RingBuffer behaviours the mutation run of pybpf/events/ringbuf.py showed untested
(issue 13): second passes, limits across rings, stops from every kind of callback,
batches of several runs, trailing discarded records, the asyncio wakeup, every
numeric column type.  Only the public API is used: these hold for any walk."""
from __future__ import annotations

import asyncio
import os
import re
import struct
from typing import Any, List, Tuple

import pytest

from pybpf import uapi
from pybpf.errors import BPFError
from pybpf.events.ringbuf import ColumnLayout, ListColumn, RecordBatch, RingBuffer
from pybpf.events.ringmem import record_size
from pybpf.kernel import syscall
from pybpf.study.producer import Producer

from conftest import require_kernel, ring_with_producer

pytestmark = pytest.mark.usefixtures("ordering")

SIZE = 16384


@pytest.fixture
def rb_map():
    with ring_with_producer(SIZE, "t_rbm") as ring:
        yield ring


@pytest.fixture
def two_rings():
    with ring_with_producer(4096, "t_rma") as a, ring_with_producer(4096, "t_rmb") as b:
        yield a, b


def settled(rb: RingBuffer, index: int = 0) -> Tuple[int, int]:
    ring = rb.ring(index)
    return ring.consumer_pos, ring.producer_pos


# ------------------------------------------------------------------ second passes


@pytest.mark.parametrize("sizes", [(8, 8), (8, 24)])   # a run handed out in C / one by one
def test_a_record_produced_during_a_callback_is_read_in_the_same_call(rb_map, sizes):
    fd, prod = rb_map
    got: List[bytes] = []

    def cb(mv):
        got.append(bytes(mv))
        if len(got) == 2:
            prod.output(b"L" * 40)           # arrives while the pass is handed out
    with RingBuffer(fd, cb) as rb:
        prod.output(b"a" * sizes[0])
        prod.output(b"b" * sizes[1])
        assert rb.consume() == 3
        assert got == [b"a" * sizes[0], b"b" * sizes[1], b"L" * 40]
        total = record_size(sizes[0]) + record_size(sizes[1]) + record_size(40)
        assert settled(rb) == (total, total)
        assert rb.consume() == 0


def test_one_call_reads_at_most_one_ring_size_under_a_producer_that_never_stops(rb_map):
    fd, prod = rb_map
    calls = []

    def cb(mv):
        calls.append(len(mv))
        prod.output(b"p" * 120)              # every record brings another: 128 bytes each
    with RingBuffer(fd, cb) as rb:
        prod.output(b"p" * 120)
        assert rb.consume() == SIZE // 128   # one ring's worth of bytes, then it returns
        assert calls == [120] * (SIZE // 128)
        assert rb.ring().avail == 128        # the last one's record waits
        cons, prod_pos = settled(rb)
        assert cons == SIZE and prod_pos == SIZE + 128


# ------------------------------------------------------------------ limits


def test_consume_n_counts_across_rings_in_order(two_rings):
    (a, pa), (b, pb) = two_rings
    got: List[Tuple[str, bytes]] = []
    with RingBuffer(a, lambda mv: got.append(("a", bytes(mv)))) as rb:
        rb.add(b, lambda mv: got.append(("b", bytes(mv))))
        for i in range(3):
            pa.output(bytes([i]) * 16)
            pb.output(bytes([10 + i]) * 16)
        assert rb.consume_n(4) == 4
        assert got == [("a", bytes([0]) * 16), ("a", bytes([1]) * 16),
                       ("a", bytes([2]) * 16), ("b", bytes([10]) * 16)]
        assert rb.avail(0) == 0 and rb.avail(1) == 2 * record_size(16)
        assert rb.consume_n(1) == 1
        assert got[-1] == ("b", bytes([11]) * 16)
        assert rb.consume_n(5) == 1
        assert got[-1] == ("b", bytes([12]) * 16)
        assert rb.consume_n(5) == 0 and len(got) == 6


@pytest.mark.parametrize("n", [1, 2, 4, 5, 6])
def test_consume_n_stops_inside_runs_and_after_discards(rb_map, n):
    fd, prod = rb_map
    got: List[bytes] = []
    data = [b"a" * 16, b"b" * 16, b"c" * 16, b"d" * 40, b"e" * 16, b"f" * 16]
    with RingBuffer(fd, lambda mv: got.append(bytes(mv))) as rb:
        for i, d in enumerate(data):
            prod.output(d)
            if i == 2:
                prod.reserve(b"x" * 8, discard=True)
        assert rb.consume_n(n) == n
        assert got == data[:n]
        sizes = [record_size(len(d)) for d in data]
        done = sum(sizes[:n]) + (record_size(8) if n > 3 else 0)
        assert settled(rb)[0] == done
        assert rb.consume() == len(data) - n
        assert got == data


def test_records_after_consume_n_and_between_rings(two_rings):
    (a, pa), (b, pb) = two_rings
    with RingBuffer(a) as rb:
        rb.add(b)
        pa.output(b"first of a")
        pb.output(b"first of b")
        pb.output(b"second of b")
        assert [bytes(r) for r in rb.records(timeout_ms=0)] == \
            [b"first of a", b"first of b", b"second of b"]
        assert rb.avail(0) == rb.avail(1) == 0


# ------------------------------------------------------------------ stops


@pytest.mark.parametrize("mode", ["struct", "columns"])
@pytest.mark.parametrize("value, code", [(-5, -5), ("stop", -1), (True, -1), (3, -1)])
def test_a_stop_returned_by_odd(rb_map, mode, value, code):
    fd, prod = rb_map
    fixed: List[int] = []
    odd: List[bytes] = []

    def on_fixed(obj):
        if mode == "struct":
            fixed.extend(r[0] for r in obj)
        else:
            fixed.extend(obj.f0.tolist())
    kw: dict = {"struct": "<Q"} if mode == "struct" else {"columns": "Q"}
    with RingBuffer(fd, on_fixed, odd=lambda mv: odd.append(bytes(mv)) or value, **kw) as rb:
        prod.output(struct.pack("<Q", 1))
        prod.output(b"odd")
        prod.output(b"odd two")
        prod.output(struct.pack("<Q", 2))
        assert rb.consume() == code
        assert rb.stopped == value and rb.stopped_after == 2
        assert fixed == [1] and odd == [b"odd"]
        assert rb.consume() == code        # the second odd one stops again
        assert rb.stopped_after == 1 and odd == [b"odd", b"odd two"]
        assert fixed == [1]
        assert rb.consume() == 1 and rb.stopped is None
        assert fixed == [1, 2]
        assert settled(rb)[0] == settled(rb)[1]


@pytest.mark.parametrize("mode", ["struct", "columns", "batch"])
def test_a_stop_returned_by_a_bulk_callback(rb_map, mode):
    fd, prod = rb_map
    calls: List[Any] = []

    def cb(obj):
        if mode == "struct":
            calls.append([r[0] for r in obj])
        elif mode == "columns":
            calls.append(obj.f0.tolist())
        else:
            calls.append([bytes(v) for v in obj])
        return -9 if len(calls) == 1 else None
    kw: dict = {"struct": "<Q", "odd": lambda mv: None} if mode == "struct" else \
        {"columns": "Q", "odd": lambda mv: None} if mode == "columns" else {"batch": True}
    with RingBuffer(fd, cb, **kw) as rb:
        prod.output(struct.pack("<Q", 1))
        prod.output(struct.pack("<Q", 2))
        prod.output(b"odd one")
        prod.output(struct.pack("<Q", 3))
        first = rb.consume()
        assert first == -9 and rb.stopped == -9
        if mode == "batch":                     # every record was in the batch
            assert calls == [[struct.pack("<Q", 1), struct.pack("<Q", 2), b"odd one",
                              struct.pack("<Q", 3)]]
            assert rb.stopped_after == 4 and rb.ring().avail == 0
        else:                                   # the run of two, then the stop
            assert calls == [[1, 2]] and rb.stopped_after == 2
            assert rb.ring().avail == record_size(7) + record_size(8)
            assert rb.consume() == 2 and calls == [[1, 2], [3]]
        assert settled(rb)[0] == settled(rb)[1]


def test_stop_codes_and_stopped_is_reset(rb_map):
    fd, prod = rb_map
    values = iter([False, 0, None, "", -3, 7])
    with RingBuffer(fd, lambda mv: next(values)) as rb:
        for i in range(6):
            prod.output(bytes([i]) * 8)
        assert rb.consume() == -3
        assert (rb.stopped, rb.stopped_after) == (-3, 5)
        assert rb.consume() == -1 and (rb.stopped, rb.stopped_after) == (7, 1)
        assert rb.consume() == 0 and rb.stopped is None


def test_stop_in_the_first_ring_leaves_the_second_unread(two_rings):
    (a, pa), (b, pb) = two_rings
    got: List[str] = []
    with RingBuffer(a, lambda mv: got.append("a") or "halt") as rb:
        rb.add(b, lambda mv: got.append("b"))
        pa.output(b"1" * 8)
        pa.output(b"2" * 8)
        pb.output(b"3" * 8)
        assert rb.consume() == -1 and rb.stopped == "halt" and rb.stopped_after == 1
        assert got == ["a"] and rb.avail(1) == record_size(8)
    with RingBuffer(b, lambda mv: got.append("b")) as rb2:
        rb2.add(a, lambda mv: got.append("a"))
        assert rb2.consume() == 2 and rb2.stopped is None
    assert got == ["a", "b", "a"]


# ------------------------------------------------------------------ batches


def test_a_batch_of_two_runs(rb_map):
    fd, prod = rb_map
    out = {}

    def on_batch(batch: RecordBatch):
        out["len"] = len(batch)
        out["runs"] = len(batch.runs)
        out["offsets"] = list(batch.offsets())
        out["sizes"] = list(batch.sizes())
        out["unpack"] = list(batch.unpack("<QI"))
        out["unpack_struct"] = list(batch.unpack(struct.Struct("<I")))
        out["views"] = [bytes(v) for v in batch]
        out["taken"] = batch.taken()
    with RingBuffer(fd, on_batch, batch=True) as rb:
        first = [struct.pack("<QI", i, 100 + i) + b"\xaa" * 4 for i in range(3)]   # 16 bytes
        second = [struct.pack("<QI", 10 + i, 200 + i) + b"\xbb" * 12 for i in range(2)]  # 24
        for d in first + second:
            prod.output(d)
        assert rb.consume() == 5
    assert out["len"] == 5 and out["runs"] == 2
    assert out["offsets"] == [8, 32, 56, 80, 112]
    assert out["sizes"] == [16, 16, 16, 24, 24]
    assert out["unpack"] == [(0, 100), (1, 101), (2, 102), (10, 200), (11, 201)]
    assert out["unpack_struct"] == [(0,), (1,), (2,), (10,), (11,)]
    assert out["views"] == first + second
    assert out["taken"] == 5


def test_batch_offsets_of_one_run_after_a_wrap_of_positions(rb_map):
    fd, prod = rb_map
    offsets = []
    with RingBuffer(fd, lambda b: offsets.append(list(b.offsets())), batch=True) as rb:
        prod.output(b"x" * 40)
        assert rb.consume() == 1
        for i in range(3):
            prod.output(bytes([i]) * 8)
        assert rb.consume() == 3
    assert offsets == [[8], [56, 72, 88]]


@pytest.mark.parametrize("pulled, left", [(0, 5), (2, 3), (3, 2), (4, 1), (5, 0)])
def test_a_raising_batch_callback_consumes_what_it_pulled(rb_map, pulled, left):
    fd, prod = rb_map
    seen: List[bytes] = []

    def on_batch(batch):
        if seen:                  # the second call: take everything
            seen.extend(bytes(v) for v in batch)
            return None
        it = iter(batch)
        for _ in range(pulled):
            seen.append(bytes(next(it)))
        raise RuntimeError("stop here")
    data = [b"a" * 8, b"b" * 8, b"c" * 8, b"d" * 24, b"e" * 24]
    with RingBuffer(fd, on_batch, batch=True) as rb:
        for d in data:
            prod.output(d)
        with pytest.raises(RuntimeError, match="stop here"):
            rb.consume()
        assert seen == data[:pulled]
        assert rb.ring().avail == sum(record_size(len(d)) for d in data[pulled:])
        if pulled:
            assert rb.consume() == left
            assert seen == data


@pytest.mark.parametrize("how", ["offsets", "unpack", "rows"])
def test_a_raising_batch_callback_counts_offsets_unpack_and_rows(rb_map, how):
    fd, prod = rb_map
    calls = []

    def on_batch(batch):
        calls.append(len(batch))
        if len(calls) > 1:
            return None
        it = {"offsets": batch.offsets, "unpack": lambda: batch.unpack("<Q"),
              "rows": lambda: batch.rows("<Q")}[how]()
        next(it)
        next(it)
        raise RuntimeError("after two")
    with RingBuffer(fd, on_batch, batch=True) as rb:
        for i in range(4):
            prod.output(struct.pack("<Q", i))
        with pytest.raises(RuntimeError):
            rb.consume()
        assert rb.ring().avail == 2 * record_size(8)
        assert rb.consume() == 2
    assert calls == [4, 2]


def test_batch_errors_name_the_record(rb_map):
    fd, prod = rb_map
    errors = []

    def on_batch(batch):
        for call in (lambda: batch.unpack("<QQ"), lambda: batch.rows("<Q"),
                     lambda: batch.columns("Q")):
            with pytest.raises(BPFError) as e:
                call()
            errors.append(str(e.value))
    with RingBuffer(fd, on_batch, batch=True) as rb:
        prod.output(struct.pack("<Q", 1))
        prod.output(b"twelve bytes")
        assert rb.consume() == 2
    assert errors == ["record of 8 bytes is shorter than '<QQ'",
                      "record of 12 bytes does not match '<Q' (8 bytes)",
                      "record of 12 bytes does not match 'Q' (8 bytes)"]


def test_batch_columns_of_two_runs(rb_map):
    fd, prod = rb_map
    out = []

    def on_batch(batch):
        out.extend((len(c), c.f0.tolist(), c.f1.tolist()) for c in batch.columns("Ii"))
    with RingBuffer(fd, on_batch, batch=True) as rb:
        for i in range(5):
            prod.reserve(struct.pack("Ii", i, -i), discard=(i == 2))
        assert rb.consume() == 4
    assert out == [(2, [0, 1], [0, -1]), (2, [3, 4], [-3, -4])]


# ------------------------------------------------------------------ discarded records


def test_trailing_discarded_records_are_consumed_by_records(rb_map):
    fd, prod = rb_map
    with RingBuffer(fd) as rb:
        prod.output(b"k" * 8)
        prod.reserve(b"d" * 8, discard=True)
        prod.reserve(b"e" * 24, discard=True)
        assert [bytes(r) for r in rb.records(timeout_ms=0)] == [b"k" * 8]
        total = record_size(8) * 2 + record_size(24)
        assert settled(rb) == (total, total)
        prod.reserve(b"only" * 4, discard=True)
        assert list(rb.records(timeout_ms=0)) == []
        assert settled(rb) == (total + record_size(16),) * 2


@pytest.mark.parametrize("mode", ["each", "batch", "struct", "columns"])
def test_trailing_and_leading_discards_in_every_mode(rb_map, mode):
    fd, prod = rb_map
    got: List[int] = []

    def cb(obj):
        if mode == "each":
            got.append(struct.unpack("<Q", obj)[0])
        elif mode == "batch":
            got.extend(v[0] for v in obj.unpack("<Q"))
        elif mode == "struct":
            got.extend(r[0] for r in obj)
        else:
            got.extend(obj.f0.tolist())
    kw: dict = {"each": {}, "batch": {"batch": True}, "struct": {"struct": "<Q"},
                "columns": {"columns": "Q"}}[mode]
    with RingBuffer(fd, cb, **kw) as rb:
        prod.reserve(struct.pack("<Q", 99), discard=True)
        prod.output(struct.pack("<Q", 1))
        prod.output(struct.pack("<Q", 2))
        prod.reserve(struct.pack("<Q", 98), discard=True)
        prod.reserve(b"z" * 16, discard=True)
        assert rb.consume() == 2
        assert got == [1, 2]
        assert settled(rb) == (4 * record_size(8) + record_size(16),) * 2
        prod.output(struct.pack("<Q", 3))
        prod.reserve(struct.pack("<Q", 97), discard=True)
        assert rb.consume() == 1 and got == [1, 2, 3]
        assert rb.ring().avail == 0


@pytest.mark.parametrize("mode", ["each", "struct", "columns", "batch"])
def test_a_pass_of_discarded_records_only(rb_map, mode):
    fd, prod = rb_map
    calls: List[Any] = []
    kw: dict = {"each": {}, "batch": {"batch": True}, "struct": {"struct": "<Q"},
                "columns": {"columns": "Q"}}[mode]
    with RingBuffer(fd, calls.append, **kw) as rb:
        prod.reserve(struct.pack("<Q", 1), discard=True)
        prod.reserve(b"x" * 24, discard=True)
        assert rb.consume() == 0
        assert calls == []
        assert settled(rb) == (record_size(8) + record_size(24),) * 2


# ------------------------------------------------------------------ asyncio


def test_poll_async_is_woken_by_the_epoll_fd(rb_map):
    fd, prod = rb_map
    got: List[bytes] = []

    async def main():
        with RingBuffer(fd, lambda mv: got.append(bytes(mv))) as rb:
            loop = asyncio.get_running_loop()
            loop.call_later(0.01, prod.output, b"wake")
            # no timeout of its own: only the wakeup can end this wait
            n = await asyncio.wait_for(rb.poll_async(timeout_ms=None), 60)
            assert loop.remove_reader(rb.fileno()) is False   # poll_async removed it
            assert await rb.poll_async(timeout_ms=1) == 0        # times out quietly
            assert loop.remove_reader(rb.fileno()) is False
            return n
    assert asyncio.run(main()) == 1
    assert got == [b"wake"]


def test_poll_async_reads_what_is_there_without_waiting(rb_map):
    fd, prod = rb_map
    got: List[bytes] = []

    async def main():
        with RingBuffer(fd, lambda mv: got.append(bytes(mv))) as rb:
            prod.output(b"ready", flags=uapi.BPF_RB_NO_WAKEUP)    # no wakeup will come
            return await asyncio.wait_for(rb.poll_async(timeout_ms=None), 60)
    assert asyncio.run(main()) == 1
    assert got == [b"ready"]


def test_async_iteration_waits_for_new_records(two_rings):
    (a, pa), (b, pb) = two_rings

    async def main():
        with RingBuffer(a) as rb:
            rb.add(b)
            pa.output(b"before")
            loop = asyncio.get_running_loop()
            recs = []

            async def take():
                agen = rb.arecords()
                try:
                    async for rec in agen:
                        recs.append(bytes(rec))
                        if len(recs) == 1:
                            loop.call_later(0.01, pb.output, b"later on b")
                        if len(recs) == 2:
                            loop.call_later(0.01, pa.output, b"later on a")
                        if len(recs) == 3:
                            break
                finally:
                    await agen.aclose()     # at once on every interpreter (PyPy collects late)
            await asyncio.wait_for(take(), 60)
            assert rb.avail(0) == rb.avail(1) == 0
            return recs
    assert asyncio.run(main()) == [b"before", b"later on b", b"later on a"]


# ------------------------------------------------------------------ column types


def test_columns_of_every_numeric_type(rb_map, fast_paths):
    fd, prod = rb_map
    # CPython: zero-copy strided views of the mapping; PyPy: lists its JIT fills fast
    kind = ListColumn if fast_paths == "pypy" else memoryview
    fmt = "BbHhIiqQfd"             # native alignment: 0 1 2 4 8 12 16 24 32 40 -> 48 bytes
    names = ["u8", "s8", "u16", "s16", "u32", "s32", "s64", "u64", "f32", "f64"]
    rows = [(200 + i, -100 - i, 60000 + i, -30000 - i, 4_000_000_000 + i, -2_000_000_000 - i,
             -(1 << 62) - i, (1 << 63) + i, 1.5 + i, -2.25 - i) for i in range(3)]
    got = []

    def on_cols(cols):
        assert [c.format for c in cols] == list("BbHhIiqQfd")
        assert [type(c) for c in cols] == [kind] * 10
        assert [c.itemsize for c in cols] == [1, 1, 2, 2, 4, 4, 8, 8, 4, 8]
        assert cols.u64.tobytes() == struct.pack("3Q", *((1 << 63) + i for i in range(3)))
        assert (sum(cols.s32), max(cols.u16), [cols.u8[1], cols.u8[-1]]) == \
            (-6_000_000_003, 60002, [201, 202])
        got.append({n: cols[n].tolist() for n in names})
        copied = cols.copy()
        got.append({n: list(copied[n]) for n in names})
        assert [copied[n].typecode for n in names] == list("BbHhIiqQfd")
    layout = ColumnLayout(fmt, names)
    assert layout.length == 48
    assert [f[1:] for f in layout.fields] == [
        (0, "B", 1), (1, "b", 1), (2, "H", 2), (4, "h", 2), (8, "I", 4), (12, "i", 4),
        (16, "q", 8), (24, "Q", 8), (32, "f", 4), (40, "d", 8)]
    with RingBuffer(fd, on_cols, columns=layout) as rb:
        for r in rows:
            prod.output(struct.pack(fmt, *r))
        assert rb.consume() == 3
    want = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    assert got == [want, want]


def test_column_layout_offsets_counts_padding_and_strings():
    lay = ColumnLayout("=B3xI2H4sq")
    assert lay.length == 24 and lay.what == "'=B3xI2H4sq'"
    assert lay.fields == (("f0", 0, "B", 1), ("f1", 4, "I", 4), ("f2", 8, "H", 2),
                          ("f3", 10, "H", 2), ("f4", 12, "s", 4), ("f5", 16, "q", 8))
    assert ColumnLayout("BI").fields == (("f0", 0, "B", 1), ("f1", 4, "I", 4))  # aligned
    assert ColumnLayout("3B5x").fields == (("f0", 0, "B", 1), ("f1", 1, "B", 1),
                                           ("f2", 2, "B", 1))
    assert ColumnLayout("@2l").fields == (("f0", 0, "q", 8), ("f1", 8, "q", 8))
    assert ColumnLayout("<LxxxxQ").fields == (("f0", 0, "I", 4), ("f1", 8, "Q", 8))
    with pytest.raises(BPFError, match=r"field 'f1' at offset 1 of '=BI' is not naturally"):
        ColumnLayout("=BI")
    with pytest.raises(BPFError, match=r"field 'b' at offset 5 of '=HHxI' is not"):
        ColumnLayout("=HHxI", ["a", "", "b"])
    with pytest.raises(BPFError, match=r"bad struct format 'Q Z': bad char"):
        ColumnLayout("Q Z")
    with pytest.raises(BPFError, match=r"native byte order, not '!I'"):
        ColumnLayout("!I")
    for code in "p?cnNeP":
        with pytest.raises(BPFError, match=re.escape(f"field type '{code}' of 'Q{code}' is not numeric")):
            ColumnLayout(f"Q{code}")


def test_string_columns_of_a_format_keep_their_nul_bytes(rb_map):
    fd, prod = rb_map
    got = []

    def on_cols(cols):
        got.append((cols.f0.tolist(), cols.f1, cols[2].tolist(), len(cols)))
    with RingBuffer(fd, on_cols, columns="I4sI") as rb:
        prod.output(struct.pack("I4sI", 1, b"ab", 7))
        prod.output(struct.pack("I4sI", 2, b"wxyz", 8))
        assert rb.consume() == 2
    assert got == [([1, 2], [b"ab\0\0", b"wxyz"], [7, 8], 2)]


# ------------------------------------------------------------------ the API around the rings


def test_rings_by_index_name_and_map(two_rings):
    (a, pa), (b, pb) = two_rings

    class MapLike:
        def __init__(self, fd):
            self.fd = fd
    with RingBuffer(a) as rb:
        second = rb.add(MapLike(b), lambda mv: None)
        assert [r.name for r in rb.rings] == ["t_rma", "t_rmb"]
        assert rb.ring(1) is second and rb.ring("t_rmb") is second
        assert rb.ring(MapLike(b)) is second and rb.ring() is rb.rings[0]
        for key in (2, -1, "nope", MapLike(-5)):
            with pytest.raises(BPFError, match=re.escape(f"no ring {key!r} in this RingBuffer")):
                rb.ring(key)
        rb.rings.clear()                    # a copy: the RingBuffer keeps its rings
        assert len(rb.rings) == 2
        assert repr(rb) == "RingBuffer(t_rma, t_rmb)"
        pb.output(b"12345")
        assert (rb.avail(1), rb.avail("t_rma"), rb.ring_size(1)) == (record_size(5), 0, 4096)
        assert (second.consumer_pos, second.producer_pos) == (0, record_size(5))
        with pytest.raises(BPFError, match="^ring 't_rma' has no callback: use records\\(\\)$"):
            rb.consume()
        assert rb.avail(1) == record_size(5)     # nothing was read
    with pytest.raises(BPFError, match="^RingBuffer is closed$"):
        rb.add(b, print)
    for call in (rb.consume, lambda: rb.consume_n(1), lambda: rb.poll(0),
                 lambda: next(rb.records(0))):
        with pytest.raises(BPFError, match="^RingBuffer is closed$"):
            call()


def _fds():
    return sorted(os.listdir("/proc/self/fd"))


def test_a_refused_ring_buffer_leaves_no_fd_open(rb_map):
    fd, prod = rb_map
    before = _fds()
    kept = []       # the errors, their tracebacks and so the refused objects, kept alive
    for kw in ({"batch": True, "columns": "Q"}, {"odd": print}, {"columns": "Q?"}):
        with pytest.raises(BPFError) as refused:
            RingBuffer(fd, print, **kw)
        kept.append(refused)
    with pytest.raises(BPFError) as refused:
        RingBuffer(2, print)           # not a map: refused after the epoll set was made
    kept.append(refused)
    assert _fds() == before            # closed by the constructor, not by a finaliser


def test_mode_errors_name_the_choice(rb_map):
    fd, prod = rb_map
    for kw in ({"batch": True, "columns": "Q"}, {"struct": "Q", "columns": "Q"},
               {"batch": True, "struct": "Q", "columns": "Q"}):
        with pytest.raises(BPFError, match="^choose one of batch=True, struct=FORMAT and columns=$"):
            RingBuffer(fd, print, **kw)
    for kw in ({}, {"batch": True}):
        with pytest.raises(BPFError, match="^odd= only applies with struct= or columns=$"):
            RingBuffer(fd, print, odd=print, **kw)
    got = []
    with RingBuffer(fd, lambda mv: got.append(bytes(mv)), struct="") as rb:   # no format
        prod.output(b"abc")
        assert rb.consume() == 1
    assert got == [b"abc"]


def test_poll_reads_what_is_there_without_waiting(rb_map):
    fd, prod = rb_map
    got = []
    with RingBuffer(fd, lambda mv: got.append(bytes(mv))) as rb:
        prod.output(b"quiet", flags=uapi.BPF_RB_NO_WAKEUP)    # no wakeup will come
        assert rb.poll(timeout_ms=None) == 1
        prod.output(b"loud")
        assert rb.poll(timeout_ms=None) == 1
        assert [bytes(r) for r in rb.records(timeout_ms=0)] == []
    assert got == [b"quiet", b"loud"]


def test_records_waits_for_a_wakeup_and_stops_on_an_empty_wait(rb_map):
    fd, prod = rb_map
    import threading
    with RingBuffer(fd) as rb:
        timer = threading.Timer(0.02, prod.output, (b"from a thread",))
        timer.start()
        try:
            it = rb.records(timeout_ms=60_000)
            assert bytes(next(it)) == b"from a thread"     # the wakeup ended the wait
            it.close()
        finally:
            timer.join()
        assert settled(rb)[0] == record_size(13)
        assert list(rb.records(timeout_ms=1)) == []       # an empty wait ends it


def test_close_from_a_callback_with_two_rings_returns_the_count(two_rings):
    (a, pa), (b, pb) = two_rings
    seen: List[bytes] = []
    rb = RingBuffer(a, lambda mv: seen.append(bytes(mv)) or rb.close())
    rb.add(b, lambda mv: seen.append(bytes(mv)))
    pa.output(b"one")
    pb.output(b"two")
    assert rb.consume() == 1
    assert seen == [b"one"]
    with pytest.raises(BPFError, match="^RingBuffer is closed$"):
        rb.consume()


@pytest.mark.parametrize("mode", ["batch", "struct", "columns"])
def test_close_from_a_bulk_callback_publishes_its_records(rb_map, mode):
    fd, prod = rb_map
    calls = []
    kw: dict = {"batch": {"batch": True}, "struct": {"struct": "<Q"},
                "columns": {"columns": "Q"}}[mode]

    def cb(obj):
        calls.append(len(list(obj)) if mode != "columns" else len(obj))
        rb.close()
    rb = RingBuffer(fd, cb, **kw)
    for i in range(3):
        prod.output(struct.pack("<Q", i))
    assert rb.consume() == 3 and calls == [3]
    with RingBuffer(fd, lambda mv: calls.append(bytes(mv))) as rb2:
        assert rb2.ring().consumer_pos == 3 * record_size(8)
        prod.output(b"next")
        assert rb2.consume() == 1
    assert calls == [3, b"next"]


# ------------------------------------------------------------------ runs of equal records


def _pattern(length: int, tag: int) -> bytes:
    """A payload made of copies of its own length word (a trap for a walk that reads
    payload words as headers), tagged in its first byte."""
    body = (struct.pack("=I", length) * (length // 4 + 1))[:length]
    return bytes([tag]) + body[1:]


@pytest.mark.parametrize("k", [2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, 100])
def test_a_run_broken_after_k_records_in_every_mode(rb_map, k):
    fd, prod = rb_map
    data = [_pattern(16, i) for i in range(k)] + [_pattern(20, 200)] + \
        [_pattern(16, 100 + i) for i in range(3)] + [_pattern(16, 250)]
    discard = {k + 2}
    want = [d for i, d in enumerate(data) if i not in discard]
    each: List[bytes] = []
    batch_out: List[Any] = []

    def on_batch(batch):
        batch_out.append(([bytes(batch.buffer[o:o + n]) for o, n in
                           zip(batch.offsets(), batch.sizes())], [len(v) for v in batch]))
    for i, d in enumerate(data):
        prod.reserve(d, discard=i in discard)
    total = sum(record_size(len(d)) for d in data)
    with RingBuffer(fd, lambda mv: each.append(bytes(mv))) as rb:
        assert rb.consume() == len(want)
        assert settled(rb) == (total, total)
    assert each == want
    for i, d in enumerate(data):            # the same records again, for batch mode
        prod.reserve(d, discard=i in discard)
    with RingBuffer(fd, on_batch, batch=True) as rb:
        assert rb.consume() == len(want)
    assert batch_out == [(want, [len(d) for d in want])]
    cols: List[Any] = []
    odd: List[bytes] = []
    for i, d in enumerate(data):            # and for columns, the 20-byte one odd
        prod.reserve(d, discard=i in discard)
    with RingBuffer(fd, lambda c: cols.append(c.copy()["f0"].tolist()), columns="Q8x",
                    odd=lambda mv: odd.append(bytes(mv))) as rb:
        assert rb.consume() == len(want)
        assert settled(rb) == (3 * total, 3 * total)
    firsts = [struct.unpack_from("Q", d)[0] for d in want if len(d) == 16]
    assert [x for c in cols for x in c] == firsts
    assert [len(c) for c in cols] == [k, 1, 2]    # the discarded one splits a run
    assert odd == [_pattern(20, 200)]


@pytest.mark.parametrize("limit", [1, 3, 8, 9, 15])
def test_consume_n_inside_a_long_run_then_the_rest(rb_map, limit):
    fd, prod = rb_map
    got: List[bytes] = []
    data = [_pattern(24, i) for i in range(12)] + [_pattern(8, 77)]
    with RingBuffer(fd, lambda mv: got.append(bytes(mv))) as rb:
        for d in data:
            prod.output(d)
        n = min(limit, len(data))
        assert rb.consume_n(limit) == n
        assert got == data[:n]
        assert settled(rb)[0] == sum(record_size(len(d)) for d in data[:n])
        assert rb.consume_n(100) == len(data) - n
        assert got == data


def test_columns_of_a_btf_struct_cut_its_c_strings(rb_map):
    """A BTF codec as columns= (parsed, not loaded): field names from BTF, char arrays
    cut at their first NUL, records of another size to odd= (or an error naming it)."""
    import pybpf
    from pybpf.btf import codec
    from conftest import built
    fd, prod = rb_map
    with pybpf.BPFObject.open(built("exec.bpf.o")) as obj:
        event = codec.compile(obj.btf, obj.btf.find("event")[0])
    layout = ColumnLayout(event)
    assert (layout.length, layout.what, [f[0] for f in layout.fields]) == \
        (532, "struct event", ["pid", "comm", "filename"])
    assert ColumnLayout(event, ["a", "b", "c"]).by_name["c"] == ("c", 20, "s", 512)
    rows, odd = [], []

    def on_cols(cols):
        rows.extend(zip(cols.pid.tolist(), cols.comm, cols["filename"]))
    with RingBuffer(fd, on_cols, columns=event, odd=lambda mv: odd.append(bytes(mv))) as rb:
        prod.output(struct.pack("<i16s512s", 7, b"sh\0junk", b"/bin/sh"))
        prod.output(struct.pack("<i16s512s", -1, b"x" * 16, b"\0tail"))
        prod.output(b"short")
        assert rb.consume() == 3
    assert rows == [(7, b"sh", b"/bin/sh"), (-1, b"x" * 16, b"")]
    assert odd == [b"short"]
    with RingBuffer(fd, print, columns=event) as rb:
        prod.output(b"short")
        with pytest.raises(BPFError, match=r"^ring 't_rbm': record of 5 bytes does not match "
                                           r"columns struct event \(532 bytes\) and no odd= "
                                           r"callback$"):
            rb.consume()
        assert rb.ring().avail == 0
    with RingBuffer(fd, print, struct="<QI") as rb:
        prod.output(b"short")
        with pytest.raises(BPFError, match=r"^ring 't_rbm': record of 5 bytes does not match "
                                           r"struct '<QI' \(12 bytes\) and no odd= callback$"):
            rb.consume()


# ------------------------------------------------------------------ records() and its passes


def test_records_publishes_exactly_what_it_handed_out(rb_map):
    fd, prod = rb_map
    data = [b"a" * 8, b"b" * 8, b"c" * 8, b"d" * 30, b"e" * 8]
    with RingBuffer(fd) as rb:
        for d in data:
            prod.output(d)
        it = rb.records(timeout_ms=0)
        assert [bytes(next(it)) for _ in range(2)] == data[:2]
        assert settled(rb)[0] == 0                  # published when the pass ends...
        it.close()
        assert settled(rb)[0] == 2 * record_size(8)  # ...or the generator is closed
        it = rb.records(timeout_ms=0)
        assert [bytes(next(it)) for _ in range(2)] == data[2:4]
        it.close()
        assert settled(rb)[0] == 3 * record_size(8) + record_size(30)
        assert [bytes(r) for r in rb.records(timeout_ms=0)] == data[4:]
        assert settled(rb) == (sum(record_size(len(d)) for d in data),) * 2


def test_close_publishes_a_suspended_records_pass(rb_map):
    fd, prod = rb_map
    for d in (b"x" * 8, b"y" * 8, b"z" * 8):
        prod.output(d)
    rb = RingBuffer(fd)
    it = rb.records(timeout_ms=0)
    assert bytes(next(it)) == b"x" * 8
    rb.close()
    rb.close()
    with RingBuffer(fd) as rb2:
        assert rb2.ring().consumer_pos == record_size(8)
        assert [bytes(r) for r in rb2.records(timeout_ms=0)] == [b"y" * 8, b"z" * 8]


def test_a_consume_after_a_kept_records_pass_counts_it_once(rb_map):
    fd, prod = rb_map
    got: List[bytes] = []
    with RingBuffer(fd, lambda mv: got.append(bytes(mv))) as rb:
        for i in range(4):
            prod.output(bytes([i]) * 16)
        kept = rb.records(timeout_ms=0)
        assert bytes(next(kept)) == bytes([0]) * 16
        assert rb.consume_n(1) == 1 and got == [bytes([1]) * 16]
        assert settled(rb)[0] == 2 * record_size(16)
        again = rb.records(timeout_ms=0)
        assert bytes(next(again)) == bytes([2]) * 16
        # the old pass of kept ends (settled); kept goes on with a new pass, which
        # settles again's: every record is handed out once
        assert [bytes(r) for r in kept] == [bytes([3]) * 16]
        assert settled(rb) == (4 * record_size(16),) * 2
        assert list(again) == []
        assert settled(rb) == (4 * record_size(16),) * 2
        assert got == [bytes([1]) * 16]


def test_records_of_a_wrapped_ring_in_two_passes(rb_map):
    fd, prod = rb_map
    with RingBuffer(fd) as rb:
        prod.seq((SIZE - 64) // 24, flags=0)        # 16-byte records up to 64 before the end
        n = len(list(rb.records(timeout_ms=0)))
        assert n == (SIZE - 64) // 24
        start = settled(rb)[0]
        data = [bytes([i]) * 40 for i in range(4)]  # 48 bytes each: the 2nd one wraps
        for d in data:
            prod.output(d)
        got = [(bytes(r), r.contiguous) for r in rb.records(timeout_ms=0)]
        assert got == [(d, True) for d in data]
        assert settled(rb) == (start + 4 * 48,) * 2


# ------------------------------------------------------------------ callbacks that raise


@pytest.mark.parametrize("pulled", [0, 1, 2, 3])
def test_a_raising_rows_callback_consumes_the_rows_it_pulled(rb_map, pulled):
    fd, prod = rb_map
    rows: List[int] = []
    calls = []

    def on_rows(it):
        calls.append(1)
        if len(calls) == 1:
            for _ in range(pulled):
                rows.append(next(it)[0])
            raise RuntimeError("rows")
        rows.extend(r[0] for r in it)
    with RingBuffer(fd, on_rows, struct="<Q", odd=lambda mv: rows.append(-1)) as rb:
        for i in range(3):
            prod.output(struct.pack("<Q", i))
        prod.output(b"odd")
        prod.output(struct.pack("<Q", 9))
        with pytest.raises(RuntimeError, match="rows"):
            rb.consume()
        assert rows == list(range(pulled))
        left = 3 - pulled
        assert rb.ring().avail == left * record_size(8) + record_size(3) + record_size(8)
        assert rb.consume() == left + 2
        assert rows == [0, 1, 2, -1, 9]


def test_a_raising_columns_callback_leaves_its_run(rb_map):
    fd, prod = rb_map
    seen = []

    def on_cols(cols):
        seen.append(cols.f0.tolist())
        if len(seen) == 2:
            raise RuntimeError("cols")
    with RingBuffer(fd, on_cols, columns="Q") as rb:
        prod.output(struct.pack("<Q", 1))
        prod.output(struct.pack("<Q", 2))
        prod.reserve(struct.pack("<Q", 0), discard=True)
        prod.output(struct.pack("<Q", 3))
        prod.output(struct.pack("<Q", 4))
        with pytest.raises(RuntimeError, match="cols"):
            rb.consume()
        # the second run stays, and the discarded record before it
        assert rb.ring().avail == 3 * record_size(8)
        assert rb.consume() == 2
    assert seen == [[1, 2], [3, 4], [3, 4]]


def test_a_raising_odd_callback_consumes_its_record(rb_map):
    fd, prod = rb_map
    rows: List[int] = []
    odd: List[bytes] = []

    def on_odd(mv):
        odd.append(bytes(mv))
        if len(odd) == 1:
            raise RuntimeError("odd")
    with RingBuffer(fd, lambda it: rows.extend(r[0] for r in it), struct="<Q",
                    odd=on_odd) as rb:
        prod.output(struct.pack("<Q", 1))
        prod.output(b"first odd")
        prod.output(b"second odd")   # another size: a second run of odd records
        prod.output(struct.pack("<Q", 2))
        with pytest.raises(RuntimeError, match="odd"):
            rb.consume()
        assert rows == [1] and odd == [b"first odd"]
        assert rb.ring().avail == record_size(10) + record_size(8)
        assert rb.consume() == 2
    assert rows == [1, 2] and odd == [b"first odd", b"second odd"]


@pytest.mark.parametrize("at", [0, 1, 3])
def test_a_raising_callback_inside_a_run_consumes_up_to_it(rb_map, at):
    fd, prod = rb_map
    seen: List[int] = []

    def cb(mv):
        seen.append(mv[0])
        if len(seen) == at + 1:
            raise RuntimeError("each")
    with RingBuffer(fd, cb) as rb:
        for i in range(5):
            prod.output(bytes([i]) * 16)        # one run of five
        with pytest.raises(RuntimeError, match="each"):
            rb.consume()
        assert rb.ring().avail == (4 - at) * record_size(16)
        assert rb.consume() == 4 - at
    assert seen == list(range(5))


def test_defaults_name_the_first_ring_and_names_may_repeat():
    require_kernel()
    with syscall.map_create(uapi.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, name="t_same") as a, \
            syscall.map_create(uapi.BPF_MAP_TYPE_RINGBUF, 0, 0, 8192, name="t_same") as b, \
            Producer(b.fd) as pb:
        with RingBuffer(a) as rb:
            rb.add(b)
            pb.output(b"on b")
            assert (rb.ring_size(), rb.ring_size(1)) == (4096, 8192)
            assert (rb.avail(), rb.avail(1)) == (0, record_size(4))
            assert rb.layout()["consumer_pos"] == 0
            assert rb.ring("t_same") is rb.ring(0)      # the first of that name
            assert rb.ring("t_same").size == 4096


def test_handed_out_objects_take_no_new_attributes(rb_map):
    fd, prod = rb_map
    errors = []

    def on_batch(batch):
        for obj in [batch] + batch.columns("Q"):
            try:
                obj.extra = 1
            except AttributeError:
                errors.append(type(obj).__name__)
    with RingBuffer(fd, on_batch, batch=True) as rb:
        prod.output(struct.pack("<Q", 5))
        assert rb.consume() == 1
    layout = ColumnLayout("Q")
    with pytest.raises(AttributeError):
        layout.extra = 1
    assert errors == ["RecordBatch", "Columns"]


def _ring_mappings() -> int:
    """Ring buffer maps mmapped into this process now."""
    with open("/proc/self/maps") as f:
        return sum("anon_inode:bpf-map" in line for line in f)


def test_a_ring_epoll_refuses_is_unmapped_at_once(two_rings, monkeypatch):
    (a, _), (b, _) = two_rings
    with RingBuffer(a, print) as rb:
        before = _ring_mappings()

        def refuse(fd: int, token: int, events: int = 0) -> None:
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(rb._epoll, "register", refuse)
        with pytest.raises(OSError, match="No space left on device") as info:
            rb.add(b, print)
        # unmapped by add() itself, while the error and its frames (the ring) are alive
        assert _ring_mappings() == before and info.value.errno == 28
        assert [r.name for r in rb.rings] == ["t_rma"]
