"""What ``pybpf load`` tells about records that never arrived.

A BPF ring buffer keeps no drop count: when a record does not fit,
``bpf_ringbuf_reserve()`` fails and only the BPF program knows.  The positions
show when it may have happened: if, at a read, the bytes waiting
(``producer_pos - consumer_pos``) leave less room than the largest record
seen, the ring was full and the producer's next records were refused.
:class:`RingWatch` checks that before every read, says it once (with what to
do: a bigger ring, ``--ring-size``, or counting failed reserves in BPF, as
``docs/drop-accounting.md`` shows), and reports the counts at exit, with the
object's own drop counters when it has some (a map or a global whose name
says "drop" or "lost") and the perf buffers' lost records.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Sequence, TextIO, Tuple

from .. import uapi
from ..errors import BPFError
from ..events.ringmem import HDR_SIZE, record_size
from ..events.ringbuf import Ring

_COUNTER_NAME = re.compile(r"drop|lost", re.I)
_COUNTER_MAP_TYPES = frozenset({uapi.BPF_MAP_TYPE_PERCPU_ARRAY, uapi.BPF_MAP_TYPE_ARRAY})


def drop_counters(obj: Any) -> Dict[str, Callable[[], int]]:
    """The object's BPF-side drop counters, by name: one-slot arrays of u64 (summed
    over CPUs when per-CPU) and writable integer globals named like drops/dropped/lost."""
    found: Dict[str, Callable[[], int]] = {}
    for m in obj.maps.values():
        if (_COUNTER_NAME.search(m.name) and m.type in _COUNTER_MAP_TYPES
                and m.max_entries == 1 and m.value_size in (4, 8)):
            found[m.name] = _map_counter(m)
    for view in obj.sections.values():
        if view.map.spec.readonly:      # a counter is written by the program
            continue
        for name, (_, size, _) in view.variables.items():
            if _COUNTER_NAME.search(name) and size in (4, 8):
                found[f"{view.map.name}:{name}"] = _global_counter(view, name)
    return found


def _map_counter(m: Any) -> Callable[[], int]:
    def read() -> int:
        value = m.lookup(b"\0\0\0\0", 0)
        values = value if isinstance(value, list) else [value]
        return sum(v if isinstance(v, int) else int.from_bytes(v, "little") for v in values)
    return read


def _global_counter(view: Any, name: str) -> Callable[[], int]:
    def read() -> int:
        return int.from_bytes(view.raw(name), "little")
    return read


class RingWatch:
    """Overrun detection for the rings of one object: call :meth:`seen` per record,
    :meth:`check` before each read, :meth:`summary` at exit."""

    def __init__(self, obj: Any, err: TextIO):
        self.err = err
        self.rings: List[Ring] = []
        self.largest: Dict[str, int] = {}     # ring -> largest record (bytes in the ring)
        self.records: Dict[str, int] = {}     # ring -> records read
        self.full: Dict[str, int] = {}        # ring -> times it was found full
        self._was_full: Dict[str, bool] = {}
        self.lost: Dict[str, int] = {}        # perf buffer -> lost samples
        self.counters = drop_counters(obj)
        self._start = {name: self._read(name) for name in self.counters}
        self.warned = False

    def _read(self, name: str) -> int:
        try:
            return self.counters[name]()
        except BPFError:
            return 0

    def add(self, ring: Ring) -> None:
        self.rings.append(ring)
        self.largest[ring.name] = HDR_SIZE + 8
        self.records[ring.name] = 0
        self.full[ring.name] = 0

    def seen(self, ring: str, length: int) -> None:
        """One record of ``length`` payload bytes read from ``ring``."""
        self.seen_runs(ring, [(0, 1, 0, length)])

    def seen_runs(self, ring: str, runs: Sequence[Tuple[int, int, int, int]]) -> None:
        """The records of a pass over ``ring``: runs of (offset, count, stride, length)."""
        for _, count, _, length in runs:
            self.records[ring] += count
            size = record_size(length)
            if size > self.largest[ring]:
                self.largest[ring] = size

    def lost_samples(self, perf_map: str, count: int) -> None:
        self.lost[perf_map] = self.lost.get(perf_map, 0) + count

    def dropped(self) -> Dict[str, int]:
        """What each BPF drop counter went up by since the start."""
        return {name: self._read(name) - start for name, start in self._start.items()}

    def check(self) -> None:
        """Before a read: is a ring full (a record as large as any seen would not fit)?"""
        for ring in self.rings:
            waiting = ring.avail
            full = ring.size - waiting < self.largest[ring.name]
            if full and not self._was_full.get(ring.name):
                self.full[ring.name] += 1
                if not self.warned:
                    self._warn(ring, waiting)
            self._was_full[ring.name] = full
        if not self.warned and any(self.dropped().values()):
            self._warn(None, 0)

    def _warn(self, ring: Any, waiting: int) -> None:
        self.warned = True
        if ring is not None:
            what = (f"ring buffer {ring.name!r} ran full ({waiting} of {ring.size} bytes "
                    "waiting): records that did not fit were dropped by the kernel, "
                    "which counts none for ring buffers")
        else:
            what = "the object's drop counter went up: records were dropped"
        drops = self.dropped()
        counted = (f"; its BPF counters say: {_counts(drops)} so far" if drops else
                   "; to count them, count failed bpf_ringbuf_reserve()/output() in the "
                   "BPF program (docs/drop-accounting.md)")
        size = f" (now {ring.size})" if ring is not None else ""
        self.err.write(f"pybpf: {what}{counted}; a bigger ring keeps more: "
                       f"--ring-size BYTES{size}\n")
        self.err.flush()

    def summary(self) -> None:
        """The counts at exit, when anything may have been lost."""
        drops = self.dropped()
        if not (any(self.full.values()) or any(drops.values()) or any(self.lost.values())):
            return
        parts = [f"{name}: {self.records[name]} record(s) read, found full "
                 f"{self.full[name]} time(s)" for name in self.records]
        parts += [f"{name}: {count} sample(s) lost" for name, count in self.lost.items()]
        if drops:
            parts.append(f"dropped (BPF counters): {_counts(drops)}")
        self.err.write("pybpf: " + "; ".join(parts) + "\n")
        self.err.flush()


def _counts(values: Dict[str, int]) -> str:
    return ", ".join(f"{name}={n}" for name, n in values.items())


def resize_rings(obj: Any, size: int) -> None:
    """Give every ring buffer map of ``obj`` ``size`` bytes (before load)."""
    for m in obj.maps.values():
        if m.type == uapi.BPF_MAP_TYPE_RINGBUF:
            m.max_entries = size
