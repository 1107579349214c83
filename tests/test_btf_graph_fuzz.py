"""Fuzzing the type graph itself: random records of every kind referring to each
other (cycles, fan-outs, zero-size and 2**32-1-element arrays included) grafted
into a real object as a map definition and a global's type, then run through
everything a consumer does (hostile.exercise).  Each example must end with
``ok`` or a pybpf error within a CPU-time alarm and a traced-memory bound.
Fixed seed, bounded budget (CI)."""
from __future__ import annotations

import signal
from typing import List, Tuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import built
from hostile import (ARRAY, CONST, DATASEC, ENUM, EXEC_IDS, FLOAT, FUNC_PROTO, FWD, INT, PTR,
                     RESTRICT, STRUCT, TYPE_TAG, TYPEDEF, UNION, VAR, VOLATILE, RawBTF,
                     exec_object, exercise, info, section_data, with_btf)
from pybpf.errors import BPFError

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CPU_SECONDS = 10                     # per example (the target is 2 s; room for PyPy)
MEMORY_BYTES = 200 << 20

KINDS = [PTR, TYPEDEF, CONST, VOLATILE, RESTRICT, TYPE_TAG, ARRAY, STRUCT, UNION,
         FUNC_PROTO, VAR, DATASEC, INT, ENUM, FWD, FLOAT]
COUNTS = st.sampled_from([0, 1, 2, 16, 0x7FFFFFFF, 0xFFFFFFFF])
NAMES = ["", "event", "a", "b", "task_struct", "x___v2"]

Record = Tuple[int, int, int, int, List[Tuple[int, int, int]]]
#: what a reference past the new records names: void, int, char, struct event, struct trace_entry
OLD_TYPES = [0, EXEC_IDS["int"], 19, 30, EXEC_IDS["trace_entry"]]
REFS = st.integers(0, 12 + len(OLD_TYPES) - 1)     # mostly the new records: cycles, fan-outs


def records():
    """(kind, name, size_or_count, ref, items) for a few new types."""
    return st.lists(st.tuples(
        st.sampled_from(KINDS), st.integers(0, len(NAMES) - 1), COUNTS, REFS,
        st.lists(st.tuples(st.integers(0, len(NAMES) - 1), REFS,
                           st.sampled_from([0, 8, 32, 1 << 20])), max_size=3)),
        min_size=1, max_size=12)


def build(btf: RawBTF, recs: List[Record]) -> int:
    """Append the records; returns the first new id."""
    first = len(btf.offsets) + 1
    names = [btf.name(n) if n else 0 for n in NAMES]

    def to(ref: int) -> int:
        return first + ref % len(recs) if ref < 12 else OLD_TYPES[ref - 12]

    for kind, name, count, ref, items in recs:
        ref = to(ref)
        if kind in (PTR, TYPEDEF, CONST, VOLATILE, RESTRICT, TYPE_TAG):
            btf.add(names[name] if kind == TYPEDEF else 0, info(kind), ref)
        elif kind == ARRAY:
            btf.add(0, info(ARRAY), 0, ref, 4, count)
        elif kind in (STRUCT, UNION):
            words = [names[name], info(kind, len(items)), count & 0xFFFF]
            for n, t, off in items:
                words += [names[n], to(t), off]
            btf.add(*words)
        elif kind == FUNC_PROTO:
            words = [0, info(kind, len(items)), ref]
            for n, t, _ in items:
                words += [names[n], to(t)]
            btf.add(*words)
        elif kind == VAR:
            btf.add(names[name] or names[2], info(VAR), ref, 1)
        elif kind == DATASEC:
            words = [names[name] or names[2], info(DATASEC, len(items)), count & 0xFFFF]
            for _, t, off in items:
                words += [to(t), off, 4]
            btf.add(*words)
        elif kind == INT:
            btf.add(names[name] or names[2], info(INT), 4, 32)
        elif kind == ENUM:
            words = [names[name], info(ENUM, len(items)), 4]
            for n, _, off in items:
                words += [names[n] or names[3], off]
            btf.add(*words)
        elif kind == FWD:
            btf.add(names[name] or names[2], info(FWD), 0)
        else:
            btf.add(names[name] or names[2], info(FLOAT), 8)
    return first


class _OutOfTime(Exception):
    pass


def _alarm(signum, frame):
    raise _OutOfTime()


def _rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


class _Memory:
    """Peak traced memory (tracemalloc), or where an interpreter has none (PyPy) the
    growth of the resident set: either way, what one example may allocate."""

    def __init__(self) -> None:
        try:
            import tracemalloc
        except ImportError:
            tracemalloc = None
        self._tm = tracemalloc

    def start(self) -> None:
        if self._tm is not None:
            self._tm.start()
        self._base = _rss()

    def stop(self) -> int:
        if self._tm is None:
            return _rss() - self._base
        _, peak = self._tm.get_traced_memory()
        self._tm.stop()
        return peak


def bounded(raw: bytes) -> None:
    """exercise(raw) under a CPU-time alarm and a bound on the memory it takes."""
    old = signal.signal(signal.SIGPROF, _alarm)
    signal.setitimer(signal.ITIMER_PROF, CPU_SECONDS)
    memory = _Memory()
    memory.start()
    try:
        exercise(raw)
    except BPFError:
        pass
    except _OutOfTime:
        raise AssertionError(f"still running after {CPU_SECONDS} s of CPU") from None
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)
        peak = memory.stop()
    assert peak < MEMORY_BYTES, f"{peak} bytes"


try:
    BASE_BTF = section_data(exec_object(), ".BTF")
except BaseException:          # reported by the test itself (built() fails with a hint)
    BASE_BTF = b""


@SETTINGS
@given(records(), st.integers(0, 11), st.integers(0, 11))
def test_fuzz_type_graphs(recs, map_pick, global_pick):
    built("exec.bpf.o")
    btf = RawBTF(BASE_BTF)
    first = build(btf, recs)
    btf.set(EXEC_IDS["rb"], 2, first + map_pick % len(recs))
    btf.set(EXEC_IDS["target_pid"], 2, first + global_pick % len(recs))
    bounded(with_btf(exec_object(), btf))
