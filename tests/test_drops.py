"""The drop-accounting idiom (bpf/drops.bpf.c, docs/drop-accounting.md): a ring of
one page filled without consuming; the BPF side counts every refused record, per
CPU, and consumed + dropped == produced, exactly."""
from __future__ import annotations

import struct
from typing import List

import pytest

import pybpf
from pybpf.kernel import syscall
from pybpf.events.ringmem import record_size
from pybpf.kernel.sysinfo import online_cpus, possible_cpus

from conftest import built, on_cpu, require_kernel

RING = 4096
REC = 64                                  # struct drop_rec
FITS = RING // record_size(REC)           # 56 records of 72 bytes in one page


@pytest.fixture
def drops_obj():
    require_kernel()
    with pybpf.BPFObject.open(built("drops.bpf.o")) as obj:
        obj.load()
        yield obj


def produce(obj: pybpf.BPFObject, count: int) -> None:
    obj.bss["count"] = count
    syscall.prog_test_run(obj.programs["produce"].fd, repeat=0)   # syscall programs: no repeat


def dropped(obj: pybpf.BPFObject) -> int:
    """The user-space half of the idiom: a per-CPU lookup is a list, one value per CPU."""
    return sum(obj.maps["drops"][0])


def consume(obj: pybpf.BPFObject) -> List[int]:
    seqs: List[int] = []
    with pybpf.RingBuffer(obj.maps["rb"], lambda d: seqs.append(struct.unpack_from("=Q", d)[0])) as rb:
        rb.consume()
    return seqs


def test_ring_is_one_page(drops_obj):
    assert drops_obj.maps["rb"].max_entries == RING
    assert FITS == 56


@pytest.mark.parametrize("use_output", [0, 1], ids=["reserve", "output"])
def test_full_ring_counts_exact_drops(drops_obj, use_output):
    drops_obj.bss["use_output"] = use_output
    produce(drops_obj, 100)
    assert dropped(drops_obj) == 100 - FITS          # before anything is consumed
    seqs = consume(drops_obj)
    assert seqs == list(range(FITS))                 # the first ones, in order, none twice
    assert len(seqs) + dropped(drops_obj) == 100


def test_accounting_holds_across_rounds(drops_obj):
    produced = consumed = 0
    for count in (10, 100, 56, 57, 3):
        produce(drops_obj, count)
        produced += count
        consumed += len(consume(drops_obj))
        assert consumed + dropped(drops_obj) == produced
    assert dropped(drops_obj) == (100 - FITS) + (57 - FITS)
    assert drops_obj.bss["next_seq"] == consumed     # seq counts the records written


def test_drops_are_counted_per_cpu(drops_obj):
    for cpu in online_cpus():
        with on_cpu(cpu):                           # a test run runs on the caller's CPU
            produce(drops_obj, FITS + 1 + cpu)
            consume(drops_obj)
    per_cpu = drops_obj.maps["drops"][0]
    assert len(per_cpu) == len(possible_cpus())
    for cpu in online_cpus():
        assert per_cpu[cpu] == 1 + cpu
